//! Feeds the functions the way Lambda does: the HTTP API's requests as API Gateway (HTTP
//! API, payload 2.0) events to ingest and slack-connect, the SQS consumers from the
//! emulator's queues with event-source-mapping semantics.
//!
//! Each path has two forms: through the function's binary ([`LambdaFunction`], what
//! `make dev` and the binaries tests run) and through its handler in process (the fast
//! handler tests).

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::Body as AxumBody;
use ingestlayer::connect::ConnectDeps;
use ingestlayer::delivery::DeliveryDeps;
use ingestlayer::ingress::IngestDeps;
use ingestlayer::routing::PipelineDeps;
use serde_json::{json, Value};

use crate::error::{BoxError, Error, Result};
use crate::lambda_api::LambdaFunction;

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

/// One HTTP request through the slack-connect function's router, in process.
pub async fn call_connect(
    req: axum::extract::Request,
    deps: &ConnectDeps,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, LAMBDA_PAYLOAD_LIMIT)
        .await
        .unwrap_or_default();
    let req = axum::extract::Request::from_parts(parts, AxumBody::from(bytes));
    match ingestlayer::connect::handle(req, deps).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// One HTTP request through the ingest function's router, in process, as API Gateway
/// would pass it (above Lambda's payload limit it never reaches the function).
pub async fn call_ingest(
    req: axum::extract::Request,
    deps: &Arc<IngestDeps>,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, LAMBDA_PAYLOAD_LIMIT).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let req = axum::extract::Request::from_parts(parts, AxumBody::from(bytes));
    match ingestlayer::ingress::handle(req, deps).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
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
    pub async fn receive(&self) -> Result<Vec<Message>> {
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
            .map_err(|e| Error::aws(format!("receiving from {}", self.url), e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// The queue's ARN, as Lambda names a record's source (`eventSourceARN`): the account
    /// and name from its URL (`…/<account>/<name>`), the region from the client.
    pub fn arn(&self) -> String {
        let mut parts = self.url.trim_end_matches('/').rsplit('/');
        let name = parts.next().unwrap_or_default();
        let account = parts.next().unwrap_or_default();
        let region = self
            .sqs
            .config()
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        format!("arn:aws:sqs:{region}:{account}:{name}")
    }

    /// The Lambda SQS event for messages received from this queue.
    pub fn event(&self, messages: &[Message]) -> SqsEvent {
        let arn = self.arn();
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
                r.event_source_arn = Some(arn.clone());
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

    /// Deletes every message of the batch the handler did not report failed.
    pub async fn settle(&self, messages: &[Message], response: &SqsBatchResponse) -> Result<()> {
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
            .map_err(|e| Error::aws(format!("deleting handled messages from {}", self.url), e))?;
        Ok(())
    }
}

/// One invocation from `feed`: receives a batch, hands its SQS event to `invoke` and
/// deletes what it did not report failed. Returns how many messages it received (0: the
/// queue looked empty). A failed invocation deletes nothing (the batch comes back after
/// its visibility timeout, as with Lambda) and is the error.
pub async fn pump_with<F, Fut>(feed: &QueueFeed, invoke: F) -> Result<usize>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse>>,
{
    pump_batch_with(feed, Batching::default(), invoke).await
}

/// An event source mapping's `BatchSize` and `MaximumBatchingWindowInSeconds`.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub size: usize,
    pub window: Duration,
}

impl Default for Batching {
    /// What a FIFO source allows: 10, no window.
    fn default() -> Self {
        Self {
            size: 10,
            window: Duration::ZERO,
        }
    }
}

/// [`pump_with`] gathering up to `batching.size` messages (10 a receive) for at most
/// `batching.window` after the first, as Lambda's SQS poller does.
pub async fn pump_batch_with<F, Fut>(
    feed: &QueueFeed,
    batching: Batching,
    invoke: F,
) -> Result<usize>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse>>,
{
    let mut messages = feed.receive().await?;
    if messages.is_empty() {
        return Ok(0);
    }
    let deadline = tokio::time::Instant::now() + batching.window;
    while messages.len() < batching.size && tokio::time::Instant::now() < deadline {
        let more = QueueFeed {
            wait_seconds: 0,
            ..feed.clone()
        }
        .receive()
        .await?;
        if more.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        messages.extend(more);
    }
    let response = invoke(feed.event(&messages)).await?;
    for chunk in messages.chunks(10) {
        feed.settle(chunk, &response).await?;
    }
    Ok(messages.len())
}

/// One invocation of a function's binary from `feed`, continuing the X-Ray trace of the
/// batch's first message (its `AWSTraceHeader`), as Lambda's SQS event source does.
pub async fn pump_function(feed: &QueueFeed, function: &LambdaFunction) -> Result<usize> {
    pump_function_batched(feed, function, Batching::default()).await
}

/// One invocation of the slack-delivery binary from the Slack queue or else the drain
/// queue, as [`pump_delivery`] does in process.
pub async fn pump_delivery_function(
    feeds: &DeliveryFeeds,
    function: &LambdaFunction,
) -> Result<usize> {
    match pump_function(&feeds.messages, function).await? {
        0 => pump_function(&feeds.drains, function).await,
        n => Ok(n),
    }
}

/// [`pump_function`] with an event source's batching (the warehouse's 100 messages and
/// 5-second window).
pub async fn pump_function_batched(
    feed: &QueueFeed,
    function: &LambdaFunction,
    batching: Batching,
) -> Result<usize> {
    pump_batch_with(feed, batching, |event| async move {
        let trace = event
            .records
            .first()
            .and_then(|r| r.attributes.get("AWSTraceHeader").cloned());
        let event = serde_json::to_value(&event)
            .map_err(|e| Error::invalid("the SQS event does not serialize", Some(e.into())))?;
        let response = function.invoke_traced(&event, trace.as_deref()).await?;
        serde_json::from_value::<SqsBatchResponse>(response).map_err(|source| Error::BadResponse {
            function: function.name().to_owned(),
            expected: "an SQS batch response",
            source,
        })
    })
    .await
}

/// One invocation of the pipeline handler (in process) from the events queue.
pub async fn pump_pipeline(feed: &QueueFeed, deps: &PipelineDeps) -> Result<usize> {
    pump_with(feed, |event| async move {
        Ok(ingestlayer::routing::handle(event, deps).await)
    })
    .await
}

/// One invocation of the warehouse handler (in process) from the warehouse queue.
pub async fn pump_warehouse(
    feed: &QueueFeed,
    deps: &ingestlayer::warehouse::WarehouseDeps,
    batching: Batching,
) -> Result<usize> {
    pump_batch_with(feed, batching, |event| async move {
        Ok(ingestlayer::warehouse::handle(event, deps).await)
    })
    .await
}

/// slack-delivery's two event sources: the Slack queue (channels' messages) and the drain
/// queue (busy channels' drain tickets).
#[derive(Clone, Debug)]
pub struct DeliveryFeeds {
    pub messages: QueueFeed,
    pub drains: QueueFeed,
}

impl DeliveryFeeds {
    /// Both of a stack's queues, read with `wait_seconds` long polls.
    pub fn new(
        sqs: &aws_sdk_sqs::Client,
        res: &crate::resources::Resources,
        wait_seconds: i32,
    ) -> Self {
        let feed = |url: &String| QueueFeed {
            sqs: sqs.clone(),
            url: url.clone(),
            wait_seconds,
        };
        Self {
            messages: feed(&res.slack_queue_url),
            drains: feed(&res.slack_drain_queue_url),
        }
    }
}

/// One invocation of the slack-delivery handler (in process) from the Slack queue, or, when
/// it gives nothing, from the drain queue; returns how many messages it received (0: both
/// looked empty). One at a time, messages before tickets, so a test's burst is all in its
/// backlog before the drain starts, as when tickets queued behind it (the bench runs both
/// sources at once, as Lambda does). See [`pump_delivery_from`].
pub async fn pump_delivery(feeds: &DeliveryFeeds, deps: &DeliveryDeps) -> Result<usize> {
    match pump_delivery_from(&feeds.messages, deps, |_| ()).await? {
        0 => pump_delivery_from(&feeds.drains, deps, |_| ()).await,
        n => Ok(n),
    }
}

/// One invocation of the slack-delivery handler (in process) from one of its sources,
/// stopped at the function's timeout as Lambda stops it: nothing of the batch is settled
/// and its messages come back when their visibility ends (the binaries' runner does the
/// same). Without it, a drain slowed down by a loaded emulator could outlive its messages'
/// lease here, which Lambda never lets happen. The batch is shown to `seen` as the
/// invocation takes it up (the bench notes when each channel's first message was).
pub async fn pump_delivery_from(
    feed: &QueueFeed,
    deps: &DeliveryDeps,
    seen: impl FnOnce(&SqsEvent),
) -> Result<usize> {
    let timeout = delivery_timeout()?;
    pump_with(feed, |event| async move {
        seen(&event);
        tokio::time::timeout(timeout, ingestlayer::delivery::handle(event, deps))
            .await
            .map_err(|_| Error::Timeout {
                function: "slack-delivery (in process)".into(),
                after: timeout,
                tail: String::new(),
            })
    })
    .await
}

/// slack-delivery's `Timeout` in template.yaml (Lambda's default, 3 s, if it gives none); a
/// template that cannot be read is an error, not a silent 3 s.
fn delivery_timeout() -> Result<Duration> {
    static TIMEOUT: std::sync::OnceLock<std::result::Result<Duration, String>> =
        std::sync::OnceLock::new();
    TIMEOUT
        .get_or_init(|| {
            crate::template::Template::load()
                .map(|t| {
                    let seconds = t
                        .function_number("SlackDeliveryFunction", "Timeout")
                        .unwrap_or(3);
                    Duration::from_secs(seconds)
                })
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| {
            Error::invalid(
                format!("slack-delivery's timeout from template.yaml: {e}"),
                None,
            )
        })
}

/// Serves the HTTP API until the task is dropped through the functions' binaries:
/// `/slack/*` and `/destinations*` to slack-connect, everything else to ingest (the local
/// stand-in for API Gateway's 404 on other routes, so the ingest function names the
/// routes there are).
pub async fn serve_functions(
    listener: tokio::net::TcpListener,
    ingest: Arc<LambdaFunction>,
    connect: Arc<LambdaFunction>,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let function = if is_connect_path(req.uri().path()) {
            connect.clone()
        } else {
            ingest.clone()
        };
        async move { call_function(req, &function).await }
    });
    axum::serve(listener, app).await
}

/// One HTTP request through a function's binary, as API Gateway's HTTP API passes it.
pub async fn call_function(
    req: axum::extract::Request,
    function: &LambdaFunction,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, LAMBDA_PAYLOAD_LIMIT).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let event = http_event(&parts, &bytes);
    match function.invoke(&event).await {
        Ok(answer) => match http_response(&answer) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(function = function.name(), error = %e, "malformed function response");
                gateway_error(502, "Internal Server Error")
            }
        },
        Err(e) => {
            tracing::error!(function = function.name(), error = %e, "invocation failed");
            match e {
                Error::Timeout { .. } => gateway_error(503, "Service Unavailable"),
                _ => gateway_error(500, "Internal Server Error"),
            }
        }
    }
}

/// API Gateway's own answer when the integration fails.
fn gateway_error(status: u16, message: &str) -> axum::response::Response {
    let mut r =
        axum::response::Response::new(AxumBody::from(json!({ "message": message }).to_string()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn too_large() -> axum::response::Response {
    let mut r = axum::response::Response::new(AxumBody::from(
        r#"{"error":{"code":"payload_too_large","message":"the body is above the 6 MB that reaches the function"}}"#,
    ));
    *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The API Gateway HTTP API (payload format 2.0) event for a request: headers lower-case
/// and comma-joined, cookies in `cookies`, a body that is not UTF-8 in base64.
pub fn http_event(parts: &http::request::Parts, body: &[u8]) -> Value {
    use base64::Engine as _;
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == http::header::COOKIE {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        headers.insert(name.as_str().to_owned(), Value::from(values.join(",")));
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost")
        .to_owned();
    headers
        .entry("host")
        .or_insert_with(|| Value::from(host.clone()));
    let query = parts.uri.query().unwrap_or_default();
    let mut params = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match params.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                params.insert(k.into_owned(), Value::from(v.into_owned()));
            }
        }
    }
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = time::OffsetDateTime::now_utc();
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "requestId": ulid::Ulid::new().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default(),
            "timeEpoch": now.unix_timestamp() * 1000 + i64::from(now.millisecond()),
        },
        "isBase64Encoded": encoded,
    });
    if !body.is_empty() {
        event["body"] = Value::from(body);
    }
    if !params.is_empty() {
        event["queryStringParameters"] = Value::Object(params);
    }
    if !cookies.is_empty() {
        event["cookies"] = Value::from(cookies);
    }
    event
}

/// The HTTP response API Gateway makes of a payload 2.0 answer: `statusCode`, `headers`,
/// `cookies` (as Set-Cookie), `body` (base64 when `isBase64Encoded`).
pub fn http_response(answer: &Value) -> Result<axum::response::Response> {
    use base64::Engine as _;
    let invalid = |what: &str, e: BoxError| Error::invalid(what, Some(e));
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .ok_or_else(|| Error::invalid("the answer has no valid statusCode", None))?;
    let text = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| invalid("the base64 body does not decode", e.into()))?
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = axum::response::Response::new(AxumBody::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (k, v) in answer["headers"].as_object().into_iter().flatten() {
        let value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| invalid(&format!("the header name {k:?}"), e.into()))?;
        headers.append(
            name,
            http::HeaderValue::from_str(&value)
                .map_err(|e| invalid(&format!("the value of the header {k}"), e.into()))?,
        );
    }
    for cookie in answer["cookies"].as_array().into_iter().flatten() {
        if let Some(c) = cookie.as_str() {
            headers.append(
                http::header::SET_COOKIE,
                http::HeaderValue::from_str(c)
                    .map_err(|e| invalid("a cookie of the answer", e.into()))?,
            );
        }
    }
    Ok(response)
}

/// Binds the ingest server.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// The routes template.yaml gives the slack-connect function.
pub fn is_connect_path(path: &str) -> bool {
    path.starts_with("/slack/") || path == "/destinations" || path.starts_with("/destinations/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_becomes_an_http_api_v2_event() {
        let req = http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1:3000/v1/events?a=1&a=2&b=x%20y")
            .header("host", "127.0.0.1:3000")
            .header("X-Custom", "one")
            .header("x-custom", "two")
            .header("cookie", "il_session=abc; other=1")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let event = http_event(&parts, br#"{"name":"x"}"#);
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/v1/events");
        assert_eq!(event["rawQueryString"], "a=1&a=2&b=x%20y");
        assert_eq!(event["queryStringParameters"]["a"], "1,2");
        assert_eq!(event["queryStringParameters"]["b"], "x y");
        assert_eq!(event["headers"]["x-custom"], "one,two");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["il_session=abc", "other=1"]));
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["stage"], "$default");
        assert_eq!(event["body"], r#"{"name":"x"}"#);
        assert_eq!(event["isBase64Encoded"], false);

        let (parts, ()) = http::Request::builder()
            .uri("/v1/webhooks/x")
            .body(())
            .unwrap()
            .into_parts();
        let binary = http_event(&parts, &[0xff, 0x00]);
        assert_eq!(binary["isBase64Encoded"], true);
        assert_eq!(binary["body"], "/wA=");
    }

    #[tokio::test]
    async fn an_http_api_v2_answer_becomes_the_response() {
        let r = http_response(&json!({
            "statusCode": 302,
            "headers": {"location": "/destinations", "x-n": 1},
            "cookies": ["a=1; HttpOnly", "b=2"],
            "body": "aGk=",
            "isBase64Encoded": true
        }))
        .unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], "/destinations");
        assert_eq!(r.headers()["x-n"], "1");
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; HttpOnly", "b=2"]);
        let body = axum::body::to_bytes(r.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"hi");
        assert!(http_response(&json!({"body": "x"})).is_err());
    }
}
