//! Telegram's refusals: each is `{"ok":false,"error_code":N,"description":"…"}` with HTTP
//! status N (https://core.telegram.org/bots/api#making-requests), a 429 also with
//! `parameters.retry_after` (https://core.telegram.org/bots/api#responseparameters).
//!
//! A [`Rejection`] is what the stand-in answers a client, as Telegram would, not a failure of
//! the stand-in ([`crate::Error`]); `api` turns it into the response.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    Unauthorized,
    NotFound,
    /// The body was declared JSON and is not a JSON object.
    BadJson,
    ChatIdEmpty,
    ChatNotFound,
    TextEmpty,
    TooLong,
    CantParseEntities(String),
    /// A `parse_mode` Telegram does not know.
    UnsupportedParseMode,
    /// `Markdown` or `MarkdownV2`: valid on Telegram, not parsed by the stand-in.
    ParseModeNotImplemented(String),
    BadLinkPreviewOptions,
    BlockedByUser,
    KickedFromGroup,
    KickedFromSupergroup,
    NotChannelMember,
    TooManyRequests {
        retry_after: u64,
    },
    /// An injected server error.
    Http(u16),
}

impl Rejection {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Rejection::Unauthorized => 401,
            Rejection::NotFound => 404,
            Rejection::BlockedByUser
            | Rejection::KickedFromGroup
            | Rejection::KickedFromSupergroup
            | Rejection::NotChannelMember => 403,
            Rejection::TooManyRequests { .. } => 429,
            Rejection::Http(status) => *status,
            _ => 400,
        }
    }

    pub(crate) fn description(&self) -> String {
        match self {
            Rejection::Unauthorized => "Unauthorized".to_owned(),
            Rejection::NotFound => "Not Found".to_owned(),
            // The docs do not give this one; the stand-in's wording.
            Rejection::BadJson => "Bad Request: can't parse JSON object".to_owned(),
            Rejection::ChatIdEmpty => "Bad Request: chat_id is empty".to_owned(),
            Rejection::ChatNotFound => "Bad Request: chat not found".to_owned(),
            Rejection::TextEmpty => "Bad Request: message text is empty".to_owned(),
            Rejection::TooLong => "Bad Request: message is too long".to_owned(),
            Rejection::CantParseEntities(detail) => {
                format!("Bad Request: can't parse entities: {detail}")
            }
            Rejection::UnsupportedParseMode => "Bad Request: unsupported parse_mode".to_owned(),
            Rejection::ParseModeNotImplemented(mode) => format!(
                "Bad Request: unsupported parse_mode: the stand-in parses only HTML; \
                 {mode} is valid on Telegram but not implemented here"
            ),
            Rejection::BadLinkPreviewOptions => {
                "Bad Request: can't parse link preview options JSON object".to_owned()
            }
            Rejection::BlockedByUser => "Forbidden: bot was blocked by the user".to_owned(),
            Rejection::KickedFromGroup => {
                "Forbidden: bot was kicked from the group chat".to_owned()
            }
            Rejection::KickedFromSupergroup => {
                "Forbidden: bot was kicked from the supergroup chat".to_owned()
            }
            Rejection::NotChannelMember => {
                "Forbidden: bot is not a member of the channel chat".to_owned()
            }
            Rejection::TooManyRequests { retry_after } => {
                format!("Too Many Requests: retry after {retry_after}")
            }
            Rejection::Http(status) => reason(*status).to_owned(),
        }
    }

    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            Rejection::TooManyRequests { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({
            "ok": false,
            "error_code": self.status(),
            "description": self.description(),
        });
        if let Some(retry_after) = self.retry_after() {
            body["parameters"] = json!({"retry_after": retry_after});
        }
        body
    }
}

/// The reason phrase Telegram's front end puts in the description of a server error.
fn reason(status: u16) -> &'static str {
    match status {
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_carries_retry_after_in_the_description_and_the_parameters() {
        assert_eq!(
            Rejection::TooManyRequests { retry_after: 7 }.body(),
            json!({"ok": false, "error_code": 429,
                   "description": "Too Many Requests: retry after 7",
                   "parameters": {"retry_after": 7}})
        );
    }

    #[test]
    fn a_server_error_names_its_status() {
        assert_eq!(
            Rejection::Http(502).body(),
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})
        );
    }
}
