//! HTTP: the Bot API surface at `/bot{token}/{method}` and the control endpoints under
//! `/_standin`. Handlers translate requests into [`ApiCall`]s and [`Rejection`]s into
//! Telegram's answers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::rejection::Rejection;
use crate::state::{ApiCall, Plan, Shared};
use crate::{ChatKind, Fault, ParseMode, SentMessage};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_standin/messages", get(all_messages))
        .route("/_standin/chats/{chat}/messages", get(chat_messages))
        .route("/_standin/requests", get(requests))
        .route("/_standin/faults", post(add_faults))
        .route("/_standin/chats", post(add_chat))
        .route("/_standin/chats/{chat}/{action}", post(chat_action))
        .route("/_standin/bots", post(add_bot))
        .route("/_standin/reset", post(reset))
        .route("/{bot}/{method}", any(bot_method))
        .fallback(not_found)
        .with_state(shared)
}

/// `/bot{token}/{method}`. The token is checked first (401), then the method (404); method
/// names are case-insensitive as on Telegram.
async fn bot_method(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return not_found().await;
    };
    let call = ApiCall {
        token: token.to_owned(),
        params: parse_params(&headers, uri.query(), &body),
    };
    match method.to_ascii_lowercase().as_str() {
        "sendmessage" => send_message(shared, call).await,
        "getme" => telegram_response(shared.get_me(&call)),
        _ => telegram_response(shared.get_me(&call).and(Err(Rejection::NotFound))),
    }
}

async fn send_message(shared: Arc<Shared>, call: ApiCall) -> Response {
    match shared.plan_send(&call) {
        Plan::Answer(result) => telegram_response(result),
        Plan::AnswerAfter(result, delay) => {
            tokio::time::sleep(delay).await;
            telegram_response(result)
        }
        Plan::DecideAfter(delay) => {
            // Decided in its own task so the outcome does not depend on whether the client is
            // still connected when the delay ends.
            let decided = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                shared.send(&call)
            })
            .await;
            telegram_response(decided.unwrap_or(Err(Rejection::Http(500))))
        }
    }
}

async fn not_found() -> Response {
    telegram_response(Err(Rejection::NotFound))
}

/// Arguments as the Bot API reads them: the query string, then a JSON body
/// (`Content-Type: application/json`) or a form body (anything else), the body winning.
fn parse_params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, Rejection> {
    let mut params = query.map(|q| form_pairs(q.as_bytes())).unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let body_params = if is_json(headers) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            _ => return Err(Rejection::BadJson),
        }
    } else {
        form_pairs(body)
    };
    params.extend(body_params);
    Ok(params)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
}

fn form_pairs(bytes: &[u8]) -> Map<String, Value> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// `{"ok":true,"result":…}`, or the refusal with its status (and `Retry-After` on a 429:
/// Telegram documents the body's `retry_after`; the header is a courtesy to HTTP clients).
fn telegram_response(result: Result<Value, Rejection>) -> Response {
    match result {
        Ok(value) => json_response(StatusCode::OK, &json!({"ok": true, "result": value})),
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = json_response(status, &rejection.body());
            if let Some(secs) = rejection.retry_after() {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn control_error(status: StatusCode, detail: impl std::fmt::Display) -> Response {
    json_response(
        status,
        &json!({"ok": false, "description": detail.to_string()}),
    )
}

fn message_json(m: &SentMessage) -> Value {
    json!({
        "chat_id": m.chat_id,
        "message_id": m.message_id,
        "bot_id": m.bot_id,
        "date": m.date,
        "text": m.text,
        "raw_text": m.raw_text,
        "parse_mode": m.parse_mode.map(|ParseMode::Html| "HTML"),
        "link_preview_disabled": m.link_preview_disabled,
        "entities": m.entities.iter().map(crate::Entity::to_json).collect::<Vec<_>>(),
    })
}

fn messages_response(messages: &[SentMessage]) -> Response {
    json_response(
        StatusCode::OK,
        &Value::Array(messages.iter().map(message_json).collect()),
    )
}

async fn all_messages(State(shared): State<Arc<Shared>>) -> Response {
    messages_response(&shared.messages(None))
}

/// `GET /_standin/chats/{id}/messages`: `{id}` an integer or `@username`.
async fn chat_messages(State(shared): State<Arc<Shared>>, Path(chat): Path<String>) -> Response {
    match shared.chat_id(&chat) {
        Some(id) => messages_response(&shared.messages(Some(id))),
        None => control_error(
            StatusCode::NOT_FOUND,
            format!("no chat {chat} is registered"),
        ),
    }
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    let requests: Vec<Value> = shared
        .requests()
        .into_iter()
        .map(|r| json!({"chat_id": r.chat_id, "status": r.status, "description": r.description}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(requests))
}

async fn add_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let value = match serde_json::from_slice::<Value>(&body) {
        Ok(value) => value,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error),
    };
    let faults = if value.is_array() {
        serde_json::from_value::<Vec<Fault>>(value)
    } else {
        serde_json::from_value::<Fault>(value).map(|f| vec![f])
    };
    let faults = match faults {
        Ok(faults) => faults,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error),
    };
    let queued = faults.len();
    for fault in faults {
        shared.inject(fault);
    }
    json_response(StatusCode::OK, &json!({"ok": true, "queued": queued}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatBody {
    id: i64,
    #[serde(rename = "type")]
    kind: ChatKind,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

async fn add_chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let chat = match serde_json::from_slice::<ChatBody>(&body) {
        Ok(chat) => chat,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error),
    };
    let added = shared.add_chat(chat.id, chat.kind).and_then(|()| {
        if let Some(title) = &chat.title {
            shared.set_chat_title(chat.id, title)?;
        }
        if let Some(username) = &chat.username {
            shared.set_chat_username(chat.id, username)?;
        }
        Ok(())
    });
    match added {
        Ok(()) => json_response(StatusCode::OK, &json!({"ok": true})),
        Err(error) => control_error(StatusCode::BAD_REQUEST, error),
    }
}

/// `POST /_standin/chats/{id}/block` (`unblock`, `kick`, `unkick`).
async fn chat_action(
    State(shared): State<Arc<Shared>>,
    Path((chat, action)): Path<(String, String)>,
) -> Response {
    let Some(id) = shared.chat_id(&chat) else {
        return control_error(
            StatusCode::NOT_FOUND,
            format!("no chat {chat} is registered"),
        );
    };
    let done = match action.as_str() {
        "block" => shared.set_blocked(id, true),
        "unblock" => shared.set_blocked(id, false),
        "kick" => shared.set_kicked(id, true),
        "unkick" => shared.set_kicked(id, false),
        _ => {
            return control_error(
                StatusCode::NOT_FOUND,
                format!("unknown action {action:?}: block, unblock, kick or unkick"),
            )
        }
    };
    match done {
        Ok(()) => json_response(StatusCode::OK, &json!({"ok": true})),
        Err(error) => control_error(StatusCode::BAD_REQUEST, error),
    }
}

/// `{"token": "…"}`. No `Debug`: it holds a token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BotBody {
    token: String,
}

async fn add_bot(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let bot = match serde_json::from_slice::<BotBody>(&body) {
        Ok(bot) => bot,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error),
    };
    match shared.add_bot(&bot.token) {
        Ok(id) => json_response(StatusCode::OK, &json!({"ok": true, "bot_id": id})),
        Err(error) => control_error(StatusCode::BAD_REQUEST, error),
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    json_response(StatusCode::OK, &json!({"ok": true}))
}
