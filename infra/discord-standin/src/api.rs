//! HTTP: Execute Webhook (and Get Webhook with Token) under `/api/v10`, the control endpoints
//! under `/_standin`. Handlers translate requests into calls on [`Shared`] and [`Reply`]s into
//! responses.

use std::sync::Arc;

use axum::body::{Body as AxumBody, Bytes};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::reply::{Body, Reply};
use crate::state::{Before, Shared};
use crate::{Fault, WebhookMessage};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v10/webhooks/{id}/{token}", any(webhook))
        .route("/api/{*rest}", any(not_found))
        .route(
            "/_standin/webhooks",
            post(create_webhook).get(list_webhooks),
        )
        .route("/_standin/webhooks/{id}", delete(delete_webhook))
        .route("/_standin/webhooks/{id}/messages", get(list_messages))
        .route("/_standin/requests", get(list_requests))
        .route("/_standin/faults", post(add_faults))
        .route("/_standin/reset", post(reset))
        .with_state(shared)
}

/// `POST` executes the webhook, `GET` reads it (Get Webhook with Token).
async fn webhook(
    State(shared): State<Arc<Shared>>,
    Path((id, token)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if method == Method::GET {
        return respond(shared.get_webhook(&id, &token));
    }
    if method != Method::POST {
        return respond(Reply::method_not_allowed());
    }
    let arrived = Instant::now();
    match shared.before(&id, &token, arrived) {
        Before::Answer(reply) => return respond(reply),
        Before::Wait(delay) => tokio::time::sleep(delay).await,
        Before::Go => {}
    }
    let outcome = shared.execute(&id, &token, uri.query(), &body, arrived);
    if let Some(delay) = outcome.delay {
        tokio::time::sleep(delay).await;
    }
    respond(outcome.reply)
}

async fn not_found() -> Response {
    respond(Reply::not_found())
}

fn respond(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        Body::Json(body) => {
            let mut response = (status, body.to_string()).into_response();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Body::Text { content_type, text } => {
            let mut response = (status, text).into_response();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Body::Empty => {
            let mut response = Response::new(AxumBody::empty());
            *response.status_mut() = status;
            response
        }
    };
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    respond(Reply::json(status.as_u16(), body.clone()))
}

fn control_error(detail: impl std::fmt::Display) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"message": "invalid control request", "detail": detail.to_string()}),
    )
}

fn webhook_json(webhook: &crate::Webhook) -> Value {
    json!({
        "id": webhook.id,
        "token": webhook.token,
        "name": webhook.name,
        "channel_id": webhook.channel_id,
        "guild_id": webhook.guild_id,
        "url": webhook.url,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /_standin/webhooks` `{"name": "alerts"}` (body optional): the new webhook with its
/// token and execute URL.
async fn create_webhook(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        CreateWebhook::default()
    } else {
        match serde_json::from_slice::<CreateWebhook>(&body) {
            Ok(request) => request,
            Err(error) => return control_error(error),
        }
    };
    let name = request.name.unwrap_or_else(|| "webhook".to_owned());
    json_response(StatusCode::OK, &webhook_json(&shared.create_webhook(&name)))
}

async fn list_webhooks(State(shared): State<Arc<Shared>>) -> Response {
    let webhooks: Vec<Value> = shared.webhooks().iter().map(webhook_json).collect();
    json_response(StatusCode::OK, &Value::Array(webhooks))
}

async fn delete_webhook(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if shared.delete_webhook(&id) {
        respond(Reply::no_content())
    } else {
        respond(Reply::unknown_webhook())
    }
}

/// `GET /_standin/webhooks/{id}/messages`: the accepted messages of one webhook, oldest first.
async fn list_messages(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let messages: Vec<Value> = shared
        .messages(Some(&id))
        .iter()
        .map(message_json)
        .collect();
    json_response(StatusCode::OK, &Value::Array(messages))
}

fn message_json(message: &WebhookMessage) -> Value {
    json!({
        "id": message.id,
        "webhook_id": message.webhook_id,
        "channel_id": message.channel_id,
        "thread_id": message.thread_id,
        "content": message.content,
        "username": message.username,
        "avatar_url": message.avatar_url,
        "embeds": message.embeds,
        "allowed_mentions": message.allowed_mentions,
        "flags": message.flags,
        "tts": message.tts,
        "wait": message.waited,
        "timestamp": message.timestamp,
        "pings": {
            "everyone": message.pings.everyone,
            "here": message.pings.here,
            "users": message.pings.users,
            "roles": message.pings.roles,
        },
    })
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> Response {
    let requests: Vec<Value> = shared
        .requests()
        .into_iter()
        .map(|r| {
            json!({
                "webhook_id": r.webhook_id,
                "status": r.status,
                "code": r.code,
                "message_id": r.message_id,
            })
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(requests))
}

async fn add_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    // A single fault or an array of them.
    let value = match serde_json::from_slice::<Value>(&body) {
        Ok(value) => value,
        Err(error) => return control_error(error),
    };
    let faults = if value.is_array() {
        serde_json::from_value::<Vec<Fault>>(value)
    } else {
        serde_json::from_value::<Fault>(value).map(|f| vec![f])
    };
    let faults = match faults {
        Ok(faults) => faults,
        Err(error) => return control_error(error),
    };
    let queued = faults.len();
    for fault in faults {
        shared.inject(fault);
    }
    json_response(StatusCode::OK, &json!({"queued": queued}))
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    respond(Reply::no_content())
}
