//! Feeds the handlers the way Lambda does: the ingest handler behind an HTTP server, the
//! SQS consumers from the emulator's queues with event-source-mapping semantics.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::Body as AxumBody;
use ingestlayer::handlers::connect::ConnectDeps;
use ingestlayer::handlers::delivery::DeliveryDeps;
use ingestlayer::handlers::ingest::IngestDeps;
use ingestlayer::handlers::pipeline::PipelineDeps;

/// Lambda's synchronous payload limit: bodies above it never reach the function.
const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// Serves the HTTP API until the task is dropped: `/slack/*` through the slack-connect
/// handler (when given), everything else through ingest, as API Gateway's routes do.
pub async fn serve_ingest(
    listener: tokio::net::TcpListener,
    deps: Arc<IngestDeps>,
    connect: Option<Arc<ConnectDeps>>,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let deps = deps.clone();
        let connect = connect.clone();
        async move {
            match connect {
                Some(c) if is_connect_path(req.uri().path()) => call_connect(req, &c).await,
                _ => call_ingest(req, &deps).await,
            }
        }
    });
    axum::serve(listener, app).await
}

/// One HTTP request through the slack-connect handler.
pub async fn call_connect(
    req: axum::extract::Request,
    deps: &ConnectDeps,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, LAMBDA_PAYLOAD_LIMIT)
        .await
        .unwrap_or_default();
    let lambda_req =
        lambda_http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
    let response = match ingestlayer::handlers::connect::handle(lambda_req, deps).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    axum::response::Response::from_parts(parts, AxumBody::from(body.as_ref().to_vec()))
}

/// One HTTP request through the ingest handler, as API Gateway would pass it.
pub async fn call_ingest(
    req: axum::extract::Request,
    deps: &IngestDeps,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, LAMBDA_PAYLOAD_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            let mut r = axum::response::Response::new(AxumBody::from(
                r#"{"error":{"code":"payload_too_large","message":"the body is above the 6 MB that reaches the function"}}"#,
            ));
            *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return r;
        }
    };
    let lambda_req =
        lambda_http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
    let response = match ingestlayer::handlers::ingest::handle(lambda_req, deps).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    axum::response::Response::from_parts(parts, AxumBody::from(body.as_ref().to_vec()))
}

/// A queue the local event source mapping reads.
#[derive(Clone, Debug)]
pub struct QueueFeed {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    /// Long-poll wait per receive, in seconds (0 returns at once).
    pub wait_seconds: i32,
}

impl QueueFeed {
    /// Receives up to 10 messages (FIFO: in group order, one batch per group at a time).
    pub async fn receive(&self) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Deletes every message of the batch the handler did not report failed.
    pub async fn settle(
        &self,
        messages: &[Message],
        response: &SqsBatchResponse,
    ) -> Result<(), String> {
        let failed: HashSet<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.contains(m.message_id().unwrap_or_default()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        self.sqs
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        Ok(())
    }
}

/// The Lambda SQS event for received messages.
pub fn to_event(messages: &[Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r.md5_of_body = m.md5_of_body.clone();
            r.event_source = Some("aws:sqs".into());
            r.attributes = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            r
        })
        .collect();
    event
}

/// One invocation of the pipeline handler from the events queue. Returns how many
/// messages it received (0: the queue looked empty).
pub async fn pump_pipeline(feed: &QueueFeed, deps: &PipelineDeps) -> Result<usize, String> {
    let messages = feed.receive().await?;
    if messages.is_empty() {
        return Ok(0);
    }
    let response = ingestlayer::handlers::pipeline::handle(to_event(&messages), deps).await;
    feed.settle(&messages, &response).await?;
    Ok(messages.len())
}

/// One invocation of the slack-delivery handler from the Slack FIFO queue.
pub async fn pump_delivery(feed: &QueueFeed, deps: &DeliveryDeps) -> Result<usize, String> {
    let messages = feed.receive().await?;
    if messages.is_empty() {
        return Ok(0);
    }
    let response = ingestlayer::handlers::delivery::handle(to_event(&messages), deps).await;
    feed.settle(&messages, &response).await?;
    Ok(messages.len())
}

/// Binds the ingest server.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// The routes template.yaml gives the slack-connect function.
pub fn is_connect_path(path: &str) -> bool {
    path.starts_with("/slack/") || path == "/destinations" || path.starts_with("/destinations/")
}
