//! HTTP: Slack's Web API surface under `/api`, Slack's install page under `/oauth/v2`, and the
//! control endpoints under `/_standin`. Handlers translate requests into [`ApiRequest`]s and
//! [`Rejection`]s into Slack's responses.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    RETRY_AFTER, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::oauth::{first, AuthorizeError};
use crate::rejection::Rejection;
use crate::state::{ApiRequest, InvalidJson, Shared};
use crate::{consent, Fault};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/chat.postMessage", any(post_message))
        .route("/api/conversations.history", any(history))
        .route("/api/chat.getPermalink", any(permalink))
        .route("/api/auth.test", any(auth_test))
        .route("/api/conversations.list", any(conversations_list))
        .route("/api/conversations.join", any(conversations_join))
        .route("/api/oauth.v2.access", any(oauth_access))
        .route("/api/auth.revoke", any(auth_revoke))
        .route("/api/users.lookupByEmail", any(lookup_by_email))
        .route("/api/conversations.replies", any(replies))
        .route("/api/chat.update", any(chat_update))
        .route("/api/{method}", any(unknown_method))
        .route(
            consent::FORM_ACTION,
            get(authorize_page).post(authorize_decision),
        )
        .route("/_standin/messages", get(list_messages))
        .route("/_standin/requests", get(list_requests))
        .route("/_standin/faults", post(add_faults))
        .route("/_standin/channels", post(add_channel))
        .route("/_standin/channels/invite", post(invite_bot))
        .route("/_standin/users", post(add_user))
        .route("/_standin/click", post(click))
        .route("/_standin/tokens/expire", post(expire_token))
        .route("/_standin/tokens/revoke", post(revoke_token))
        .route("/_standin/reset", post(reset))
        .with_state(shared)
}

async fn post_message(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    let outcome = shared.post_message(&request);
    if let Some(delay) = outcome.delay {
        tokio::time::sleep(delay).await;
    }
    slack_response(outcome.result)
}

async fn history(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.history(&request))
}

async fn permalink(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.permalink(&request))
}

async fn auth_test(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.auth_test(&request))
}

async fn conversations_list(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.conversations_list(&request))
}

async fn conversations_join(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.join(&request))
}

#[derive(Deserialize)]
struct InviteBody {
    name: String,
}

/// `POST /_standin/channels/invite` `{"name":"#secret"}`: the bot is invited; answers the
/// `member_joined_channel` callback Slack would send (404 for an unknown channel).
async fn invite_bot(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(invite) = serde_json::from_slice::<InviteBody>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"ok": false, "error": "expected {\"name\": \"#channel\"}"})),
        )
            .into_response();
    };
    match shared.invite_bot(&invite.name) {
        Some(event) => axum::Json(event).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"ok": false, "error": "channel_not_found"})),
        )
            .into_response(),
    }
}

async fn auth_revoke(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.auth_revoke(&request))
}

async fn replies(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.replies(&request))
}

async fn chat_update(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.update(&request))
}

async fn lookup_by_email(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_request(&headers, uri.query(), &body);
    slack_response(shared.lookup_by_email(&request))
}

/// `oauth.v2.access` takes form-encoded arguments only (query string or body, the body
/// winning), as Slack does: a JSON body is not read.
async fn oauth_access(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params = if is_json(&headers) {
        Vec::new()
    } else {
        query_pairs_bytes(&body)
    };
    params.extend(uri.query().map(query_pairs).unwrap_or_default());
    slack_response(shared.oauth_access(basic_credentials(&headers), &params))
}

/// `Authorization: Basic base64(client_id:client_secret)`. A Basic header that does not decode
/// counts as empty credentials (so `invalid_client_id`), not as no header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let credentials = decoded
        .as_deref()
        .and_then(|d| d.split_once(':'))
        .map(|(id, secret)| (id.to_owned(), secret.to_owned()));
    Some(credentials.unwrap_or_default())
}

/// `GET /oauth/v2/authorize`: the consent page, or an error page for a request Slack would
/// refuse.
async fn authorize_page(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let pairs = uri.query().map(query_pairs).unwrap_or_default();
    match shared.authorize(&pairs) {
        Ok(request) => html_response(StatusCode::OK, consent::page(&request, shared.team_name())),
        Err(error) => authorize_error(error),
    }
}

/// `POST /oauth/v2/authorize`: the consent page's Allow or Cancel button.
async fn authorize_decision(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let pairs = query_pairs_bytes(&body);
    let request = match shared.authorize(&pairs) {
        Ok(request) => request,
        Err(error) => return authorize_error(error),
    };
    let location = match first(&pairs, "decision") {
        Some("allow") => shared.approve(&request),
        Some("cancel") => request.denied_redirect(),
        _ => return authorize_error(AuthorizeError::InvalidDecision),
    };
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(LOCATION, location);
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => authorize_error(AuthorizeError::BadRedirectUri),
    }
}

fn authorize_error(error: AuthorizeError) -> Response {
    html_response(StatusCode::BAD_REQUEST, consent::error_page(error))
}

/// An HTML page that runs no script, cannot be framed, and is not cached.
fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn unknown_method() -> Response {
    slack_response(Err(Rejection::UnknownMethod))
}

/// Reads a Web API call the way Slack does: arguments from the query string, then from a JSON
/// body (`Content-Type: application/json`) or a form body (anything else), the body winning.
/// The token comes from `Authorization: Bearer`, else from a `token` argument in the query
/// string or form body (Slack ignores a `token` inside a JSON body).
fn parse_request(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> ApiRequest {
    let mut params = query.map(form_pairs).unwrap_or_default();
    let mut token = bearer_token(headers).or_else(|| string_param(&params, "token"));

    let body_params = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Map::new())
    } else if is_json(headers) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(InvalidJson),
        }
    } else {
        let form = form_pairs_bytes(body);
        token = token.or_else(|| string_param(&form, "token"));
        Ok(form)
    };
    let params = body_params.map(|body| {
        params.extend(body);
        params
    });
    ApiRequest { token, params }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn string_param(params: &Map<String, Value>, key: &str) -> Option<String> {
    params.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn form_pairs(query: &str) -> Map<String, Value> {
    form_pairs_bytes(query.as_bytes())
}

fn form_pairs_bytes(bytes: &[u8]) -> Map<String, Value> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// Form-encoded pairs in order, repeats kept (see [`first`]).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query_pairs_bytes(query.as_bytes())
}

fn query_pairs_bytes(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn slack_response(result: Result<Value, Rejection>) -> Response {
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = json_response(status, &rejection.body());
            if let Some(secs) = rejection.retry_after_secs() {
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
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn control_error(detail: impl std::fmt::Display) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"ok": false, "error": "invalid_json", "detail": detail.to_string()}),
    )
}

async fn list_messages(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let query = uri.query().map(form_pairs).unwrap_or_default();
    let channel = string_param(&query, "channel").filter(|c| !c.is_empty());
    let messages: Vec<Value> = shared
        .messages(channel.as_deref())
        .into_iter()
        .map(|m| {
            json!({
                "channel": m.channel,
                "channel_id": m.channel_id,
                "ts": m.ts,
                "text": m.text,
                "blocks": m.blocks,
                "metadata": m.metadata,
                "thread_ts": m.thread_ts,
                "user": m.user,
                "edits": m.edits,
                // The token that posted it: stand-in tokens are test values, and tests check
                // which workspace's token a delivery used.
                "token": m.token,
            })
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(messages))
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> Response {
    let requests: Vec<Value> = shared
        .requests()
        .into_iter()
        .map(|r| {
            json!({
                "channel": r.channel,
                "status": r.status,
                "error": r.error,
                "ts": r.ts,
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
    json_response(StatusCode::OK, &json!({"ok": true, "queued": queued}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    name: String,
    #[serde(default)]
    private: bool,
    #[serde(default = "yes")]
    bot_member: bool,
    #[serde(default)]
    archived: bool,
}

fn yes() -> bool {
    true
}

async fn add_channel(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let channel = match serde_json::from_slice::<ChannelBody>(&body) {
        Ok(channel) => channel,
        Err(error) => return control_error(error),
    };
    shared.create_channel(&channel.name, channel.private, channel.bot_member);
    if channel.archived {
        shared.archive_channel(&channel.name);
    }
    json_response(
        StatusCode::OK,
        &json!({"ok": true, "channel": {"id": shared.channel_id(&channel.name)}}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    email: String,
    id: String,
}

async fn add_user(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<UserBody>(&body) {
        Ok(user) => {
            shared.add_user(&user.email, &user.id);
            json_response(StatusCode::OK, &json!({"ok": true}))
        }
        Err(error) => control_error(error),
    }
}

/// `POST /_standin/click`: a person clicks a message's button. No `Debug`: it holds the
/// signing secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClickBody {
    channel: String,
    ts: String,
    action_id: String,
    user: String,
    signing_secret: String,
}

/// Answers the signed request Slack would send to the app's interactivity URL (`body` and
/// `headers`), for the caller to deliver; 404 when there is no such button to click.
async fn click(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let click = match serde_json::from_slice::<ClickBody>(&body) {
        Ok(click) => click,
        Err(error) => return control_error(error),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    match shared.click(
        &click.channel,
        &click.ts,
        &click.action_id,
        &click.user,
        &click.signing_secret,
        now,
    ) {
        Some(interaction) => {
            let headers: Map<String, Value> = interaction
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v)))
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"ok": true, "body": interaction.body, "headers": headers}),
            )
        }
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"ok": false, "error": "no_such_button"}),
        ),
    }
}

/// `{"token": "…"}`. No `Debug`: it holds a token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

async fn expire_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<TokenBody>(&body) {
        Ok(body) => {
            shared.expire_token(&body.token);
            json_response(StatusCode::OK, &json!({"ok": true}))
        }
        Err(error) => control_error(error),
    }
}

async fn revoke_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<TokenBody>(&body) {
        Ok(body) => {
            shared.revoke_token(&body.token);
            json_response(StatusCode::OK, &json!({"ok": true}))
        }
        Err(error) => control_error(error),
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    json_response(StatusCode::OK, &json!({"ok": true}))
}
