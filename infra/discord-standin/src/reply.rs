//! Discord's answers as plain values; `api` turns them into HTTP responses.
//!
//! Docs: <https://discord.com/developers/docs/topics/opcodes-and-status-codes#json> (JSON
//! error codes: 10015 Unknown webhook, 50006 Cannot send an empty message, 50027 Invalid
//! webhook token, 50035 Invalid Form Body, 50109 invalid JSON) and
//! <https://discord.com/developers/docs/topics/rate-limits> (headers and the 429 body).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::form::FormErrors;
use crate::ratelimit::Quota;

/// The `X-RateLimit-Bucket` of Execute Webhook: the same for every webhook, since a bucket
/// is "non-inclusive of top-level resources in the path" (the webhook's id and token).
pub(crate) const WEBHOOK_BUCKET: &str = "5e2b0f1c9d8a7b6c4d3e2f1a0b9c8d7e";

/// An answer: status, body, headers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Body,
    pub(crate) headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    Json(Value),
    Text {
        content_type: &'static str,
        text: String,
    },
    Empty,
}

/// Which limit a 429 is about (`X-RateLimit-Scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    User,
    Global,
}

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Body::Json(body),
            headers: Vec::new(),
        }
    }

    pub(crate) fn no_content() -> Reply {
        Reply {
            status: 204,
            body: Body::Empty,
            headers: Vec::new(),
        }
    }

    /// The Discord JSON error code of the body, if any.
    pub(crate) fn code(&self) -> Option<u64> {
        match &self.body {
            Body::Json(body) => body.get("code").and_then(Value::as_u64),
            _ => None,
        }
    }

    pub(crate) fn unknown_webhook() -> Reply {
        Reply::json(404, json!({"message": "Unknown Webhook", "code": 10015}))
    }

    /// A known webhook id with the wrong token. Discord answers 401 with code 50027.
    pub(crate) fn invalid_token() -> Reply {
        Reply::json(
            401,
            json!({"message": "Invalid Webhook Token", "code": 50027}),
        )
    }

    /// A path id that is no snowflake.
    pub(crate) fn not_snowflake(id: &str) -> Reply {
        let mut errors = FormErrors::default();
        errors.add(
            &["webhook_id"],
            "NUMBER_TYPE_COERCE",
            format!("Value \"{id}\" is not snowflake."),
        );
        Reply::form(errors)
    }

    pub(crate) fn invalid_json() -> Reply {
        Reply::json(
            400,
            json!({"message": "The request body contains invalid JSON.", "code": 50109}),
        )
    }

    pub(crate) fn form(errors: FormErrors) -> Reply {
        Reply::json(
            400,
            json!({"code": 50035, "message": "Invalid Form Body", "errors": errors.into_value()}),
        )
    }

    pub(crate) fn empty_message() -> Reply {
        Reply::json(
            400,
            json!({"message": "Cannot send an empty message", "code": 50006}),
        )
    }

    pub(crate) fn method_not_allowed() -> Reply {
        Reply::json(
            405,
            json!({"message": "405: Method Not Allowed", "code": 0}),
        )
    }

    pub(crate) fn not_found() -> Reply {
        Reply::json(404, json!({"message": "404: Not Found", "code": 0}))
    }

    /// A server-side failure with the body Discord's edge sends for that status (see
    /// [`crate::FaultKind::HttpStatus`]).
    pub(crate) fn server_error(status: u16) -> Reply {
        let status = if (400..=599).contains(&status) {
            status
        } else {
            500
        };
        match status {
            502 => Reply {
                status,
                body: Body::Text {
                    content_type: "text/html",
                    text: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                           <center><h1>502 Bad Gateway</h1></center>\r\n\
                           <hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
                        .to_owned(),
                },
                headers: Vec::new(),
            },
            503 | 504 => Reply {
                status,
                body: Body::Text {
                    content_type: "text/plain",
                    text: "upstream connect error or disconnect/reset before headers. \
                           reset reason: overflow"
                        .to_owned(),
                },
                headers: Vec::new(),
            },
            _ => Reply::json(
                status,
                json!({"message": format!("{status}: {}", reason(status)), "code": 0}),
            ),
        }
    }

    /// HTTP 429 as the docs show it: `Retry-After` (whole seconds, rounded up), the JSON body
    /// with `retry_after` (fractional seconds) and `global`, `X-RateLimit-Scope`, and
    /// `X-RateLimit-Global: true` on the global limit. A per-webhook 429 also carries the
    /// bucket's headers; the global one does not, as in the docs' example.
    pub(crate) fn rate_limited(retry_after: Duration, scope: Scope, quota: Option<Quota>) -> Reply {
        let global = scope == Scope::Global;
        let mut reply = Reply::json(
            429,
            json!({
                "message": "You are being rate limited.",
                "retry_after": millis_f64(retry_after),
                "global": global,
            }),
        );
        let whole = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        reply.headers.push(("retry-after", whole.to_string()));
        if global {
            reply
                .headers
                .push(("x-ratelimit-global", "true".to_owned()));
            reply
                .headers
                .push(("x-ratelimit-scope", "global".to_owned()));
        } else {
            reply.headers.push(("x-ratelimit-scope", "user".to_owned()));
        }
        if let Some(quota) = quota {
            reply = reply.with_quota(quota);
        }
        reply
    }

    /// Adds the bucket's `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds, wall
    /// clock), `-Reset-After` and `-Bucket` headers.
    #[must_use]
    pub(crate) fn with_quota(mut self, quota: Quota) -> Reply {
        let reset = SystemTime::now()
            .checked_add(quota.reset_after)
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        self.headers.extend([
            ("x-ratelimit-limit", quota.limit.to_string()),
            ("x-ratelimit-remaining", quota.remaining.to_string()),
            ("x-ratelimit-reset", format!("{:.3}", reset.as_secs_f64())),
            (
                "x-ratelimit-reset-after",
                format!("{:.3}", quota.reset_after.as_secs_f64()),
            ),
            ("x-ratelimit-bucket", WEBHOOK_BUCKET.to_owned()),
        ]);
        self
    }
}

/// Seconds with millisecond precision, as Discord writes `retry_after`.
fn millis_f64(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_in_the_header_and_keeps_millis_in_the_body() {
        let reply = Reply::rate_limited(Duration::from_millis(1234), Scope::User, None);
        assert!(reply.headers.contains(&("retry-after", "2".to_owned())));
        assert_eq!(
            reply.body,
            Body::Json(
                json!({"message": "You are being rate limited.", "retry_after": 1.234, "global": false})
            )
        );
    }

    #[test]
    fn statuses_outside_errors_become_500() {
        assert_eq!(Reply::server_error(200).status, 500);
        assert_eq!(Reply::server_error(503).status, 503);
    }
}
