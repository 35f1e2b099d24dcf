//! The ingest API's answers: JSON bodies `{"error": {"code", "message", "details"?}}`, the
//! 401 challenge, the 405 with its `Allow` header, and the message summing up an event's
//! problems. Every handler of the ingest router answers through these, so the shapes the
//! OpenAPI contract checks live in one place.

use axum::response::Response;
use serde_json::{json, Value};

use crate::event::FieldError;

/// A JSON answer with `status`.
pub(crate) fn respond(status: u16, body: &Value) -> Response {
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// An error answer: `code`, a human `message` and, for events, the problems found.
pub(crate) fn error(
    status: u16,
    code: &str,
    message: &str,
    details: Option<Vec<FieldError>>,
) -> Response {
    if (400..500).contains(&status) {
        crate::journey::metrics::refused(code);
    }
    let mut body = json!({"error": {"code": code, "message": message}});
    if let Some(d) = details {
        body["error"]["details"] = json!(d);
    }
    respond(status, &body)
}

/// An event refused: `code`, a message summing up `details`, and the details themselves.
pub(crate) fn refused(status: u16, code: &str, details: Vec<FieldError>) -> Response {
    error(status, code, &summary(code, &details), Some(details))
}

/// 405 with the `Allow` header naming the method the route takes.
pub(crate) fn method_not_allowed(allow: &'static str, message: &str) -> Response {
    let mut response = error(405, "method_not_allowed", message, None);
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    response
}

/// 401 for the API key, with the challenge RFC 6750 asks for.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = error(401, "unauthorized", message, None);
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"ingestlayer\""),
    );
    response
}

/// One line naming what is wrong with an event and every problem found.
pub(crate) fn summary(code: &str, details: &[FieldError]) -> String {
    let what = match code {
        "schema_violation" => "the event does not match its schema",
        "event_too_large" => "the event is too large",
        "too_many_fields" => "the event has too many fields",
        "too_deeply_nested" => "the event is nested too deeply",
        _ => "the event is invalid",
    };
    let list: Vec<String> = details
        .iter()
        .map(|d| {
            if d.pointer.is_empty() {
                d.message.clone()
            } else {
                format!("{}: {}", d.pointer, d.message)
            }
        })
        .collect();
    format!("{what}: {}", list.join("; "))
}
