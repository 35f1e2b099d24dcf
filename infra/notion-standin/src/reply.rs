//! Notion's error answers: `{"object":"error","status":…,"code":…,"message":…}`.
//!
//! Codes and statuses are those of <https://developers.notion.com/reference/status-codes>.
//! Where that page gives a "message" example the stand-in uses it; elsewhere the message is the
//! page's description of the code (older copies of the page listed the descriptions in a column
//! headed "message"), or the wording real Notion responses carry as noted per constructor.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::fault::Failure;
use crate::ids;

/// One error answer. A value, not a failure of the stand-in: handlers return it and the HTTP
/// layer renders it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NotionError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// `Retry-After` in whole seconds, for 429.
    pub(crate) retry_after: Option<u64>,
    /// Boxed: most errors have none, and `Result`s stay small.
    pub(crate) additional_data: Option<Box<Value>>,
}

impl NotionError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> NotionError {
        NotionError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            additional_data: None,
        }
    }

    /// The bearer token is missing or no integration's. The message is what Notion answers.
    pub(crate) fn unauthorized() -> NotionError {
        NotionError::new(401, "unauthorized", "API token is invalid.")
    }

    /// No `Notion-Version` header (the status-codes page's example message).
    pub(crate) fn missing_version() -> NotionError {
        NotionError::new(
            400,
            "missing_version",
            "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.",
        )
    }

    /// A request body or parameter that does not match the schema; `message` names what.
    pub(crate) fn validation(message: impl Into<String>) -> NotionError {
        NotionError::new(400, "validation_error", message)
    }

    pub(crate) fn invalid_json() -> NotionError {
        NotionError::new(400, "invalid_json", "Error parsing JSON body.")
    }

    pub(crate) fn invalid_request_url() -> NotionError {
        NotionError::new(400, "invalid_request_url", "Invalid request URL.")
    }

    /// `kind` is `database`, `data_source` or `page`: the wording of Notion's 404 for an object
    /// that does not exist or is not shared with the integration.
    pub(crate) fn not_found(kind: &str, id: &str) -> NotionError {
        NotionError::new(
            404,
            "object_not_found",
            format!(
                "Could not find {kind} with ID: {id}. Make sure the relevant pages and databases are shared with your integration."
            ),
        )
    }

    pub(crate) fn rate_limited(retry_after_secs: u64) -> NotionError {
        NotionError {
            retry_after: Some(retry_after_secs),
            ..NotionError::new(
                429,
                "rate_limited",
                "This request exceeds the number of requests allowed. Slow down and try again.",
            )
        }
    }

    /// A request before 2025-09-03 that names a database with more than one data source, as
    /// the upgrade guide shows it
    /// (<https://developers.notion.com/docs/upgrade-guide-2025-09-03>).
    pub(crate) fn multiple_data_sources(database_id: &str, data_sources: &[String]) -> NotionError {
        NotionError {
            additional_data: Some(Box::new(json!({
                "error_type": "multiple_data_sources_for_database",
                "database_id": database_id,
                "child_data_source_ids": data_sources,
                "minimum_api_version": "2025-09-03",
            }))),
            ..NotionError::validation(
                "Databases with multiple data sources are not supported in this API version.",
            )
        }
    }

    pub(crate) fn failure(failure: Failure) -> NotionError {
        let (status, code, message) = failure.parts();
        NotionError::new(status, code, message)
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({
            "object": "error",
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request_id": ids::new(),
        });
        if let (Some(extra), Some(map)) = (&self.additional_data, body.as_object_mut()) {
            map.insert("additional_data".to_owned(), (**extra).clone());
        }
        body
    }
}

impl IntoResponse for NotionError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON value as Notion's validation messages quote it (`instead was \`"x"\``), cut short so
/// a 2,001-character string does not come back whole.
pub(crate) fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let head: String = text.chars().take(57).collect();
        format!("{head}...")
    } else {
        text
    }
}
