//! The library's one error type. Every fallible function of the library returns
//! [`Result<T>`]; each variant keeps its cause (`#[source]`) and answers
//! [`Error::is_retryable`], and the edges convert it once: to an HTTP status in the HTTP
//! functions, to a retried or parked message in the queue consumers, to a cold-start
//! failure in `main.rs`.
//!
//! The message of a variant names what was being done (`"reading the Slack token secret"`)
//! and, for AWS, the SDK's whole cause chain; it never carries a secret or a payload.
//!
//! A variant exists only where a caller branches on it: [`Error::NotConnected`] and
//! [`Error::AppNotConfigured`] pause a workspace instead of retrying; [`Error::Invalid`]
//! is a misconfigured webhook source rather than an unreachable one; [`Error::SlackRefused`]
//! is Slack's own "no". A cached failure is shared as `Arc<Error>` (it stays the cause),
//! never turned into a `String`.
//!
//! Refusals are not errors. Why input was refused (a bad signature, an expired link or
//! state, a schema violation) is a plain domain value returned by a pure check and mapped
//! by its caller to an answer: `purpose::TokenError`, `event_links::LinkError`,
//! `slack::oauth::StateError`, `slack::request_signing::SignatureError`,
//! `ingress::webhooks::verify::Rejection`, `event::FieldError`, `routing::filter::FilterError`.
//! A call that can both refuse and fail returns the refusal inside its `Ok`
//! (`Result<Result<(), StateError>>`).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A boxed cause.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to an AWS service failed. `retryable` is false only when the service said the
    /// request itself is wrong (a validation error, a missing resource, access denied).
    #[error("{what}: {detail}")]
    Aws {
        what: String,
        /// The SDK's cause chain, as `DisplayErrorContext` prints it.
        detail: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// A call to Slack's Web API failed before Slack answered (connect, timeout, a body
    /// that is not Slack's JSON). Always retryable.
    #[error("{what}: {detail}")]
    Slack {
        what: String,
        detail: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Slack answered `ok: false` to a call that is not a post (those are classified by
    /// [`crate::slack::answers`]).
    #[error("{what}: Slack answered {code}")]
    SlackRefused {
        what: String,
        code: String,
        retryable: bool,
    },
    /// A call that failed for a whole batch, or that left part of a batch undone after
    /// every retry (DynamoDB's unprocessed items), reported for each item it concerns.
    #[error("{}{detail}", if what.is_empty() { String::new() } else { format!("{what}: ") })]
    Upstream {
        what: String,
        detail: String,
        retryable: bool,
    },
    /// Something we read (a stored item, a secret's value, a queue message) is not what it
    /// must be. Not retryable: the same bytes fail the same way.
    #[error("{}{reason}", if what.is_empty() { String::new() } else { format!("{what}: ") })]
    Invalid { what: String, reason: String },
    /// A thing that must exist does not.
    #[error("{0}")]
    NotFound(String),
    /// Another writer changed the item first (a conditional write failed).
    #[error("{0}")]
    Conflict(String),
    /// The function's configuration is missing or wrong; fixing the stack fixes it.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A Slack workspace has no usable connection: it was never connected, or it revoked
    /// the app. Someone connects it from the destinations page; delivery pauses the
    /// workspace until then.
    #[error("workspace {team} {}", if *revoked {
        "revoked the app: reconnect Slack from the destinations page"
    } else {
        "is not connected: connect Slack from the destinations page"
    })]
    NotConnected { team: String, revoked: bool },
    /// The Slack app's credentials secret still holds the placeholder template.yaml puts
    /// there, or misses a field (`source` says which): the operator fills the secret.
    /// Shared (`Arc`) because the answer is cached for [`crate::slack::oauth::APP_RECHECK`].
    #[error("the Slack app is not configured yet: {source}; put {{\"client_id\", \"client_secret\", \"signing_secret\"}} from the app's Basic Information page into the secret")]
    AppNotConfigured {
        #[source]
        source: Arc<Error>,
    },
}

impl Error {
    /// Whether the same call, made again later, may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Aws { retryable, .. }
            | Error::SlackRefused { retryable, .. }
            | Error::Upstream { retryable, .. } => *retryable,
            Error::Slack { .. } => true,
            Error::Invalid { .. }
            | Error::NotFound(_)
            | Error::Conflict(_)
            | Error::Config(_)
            | Error::NotConnected { .. }
            | Error::AppNotConfigured { .. } => false,
        }
    }

    /// An AWS SDK error, with what was being done. Service errors whose code says the request
    /// is at fault are permanent; throttling, 5xx, timeouts and connection failures are
    /// retryable.
    pub fn aws<E, R>(
        what: impl Into<String>,
        e: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Self
    where
        E: StdError
            + aws_smithy_types::error::metadata::ProvideErrorMetadata
            + Send
            + Sync
            + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let retryable = match &e {
            SdkError::ServiceError(s) => !is_permanent_code(s.err().code()),
            SdkError::ConstructionFailure(_) => false,
            _ => true,
        };
        Error::Aws {
            what: what.into(),
            detail: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            retryable,
            source: Box::new(e),
        }
    }

    /// The same failure, for another item it concerns (an error is not `Clone`: its cause
    /// stays with the first).
    pub fn for_another(&self) -> Self {
        Error::Upstream {
            what: String::new(),
            detail: self.to_string(),
            retryable: self.is_retryable(),
        }
    }

    /// A stored or received value that is not what it must be.
    pub fn invalid(what: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Why a value given to a parser is refused, as the person who wrote it should read it
    /// (the caller names the field).
    pub fn reason(reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: String::new(),
            reason: reason.into(),
        }
    }

    /// A failed HTTP exchange with Slack (never carries the URL's query or a token).
    pub fn slack(what: impl Into<String>, e: reqwest::Error) -> Self {
        let e = e.without_url();
        Error::Slack {
            what: what.into(),
            detail: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// Service error codes that say the request is wrong, so the same request always fails.
fn is_permanent_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ValidationException"
                | "ResourceNotFoundException"
                | "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidParameterException"
                | "InvalidParameterValue"
                | "InvalidRequestException"
                | "DecryptionFailure"
                | "AWS.SimpleQueueService.NonExistentQueue"
                | "QueueDoesNotExist"
                | "KMSInvalidStateException"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_types::body::SdkBody;

    fn service_error(code: &str) -> Error {
        let err = aws_sdk_dynamodb::operation::get_item::GetItemError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code(code)
                .message("m")
                .build(),
        );
        let raw = HttpResponse::new(400u16.try_into().expect("status"), SdkBody::empty());
        Error::aws("reading an item", SdkError::service_error(err, raw))
    }

    #[test]
    fn throttling_is_retryable_and_a_bad_request_is_not() {
        assert!(service_error("ProvisionedThroughputExceededException").is_retryable());
        assert!(service_error("ThrottlingException").is_retryable());
        assert!(!service_error("ValidationException").is_retryable());
        assert!(!service_error("ResourceNotFoundException").is_retryable());
    }

    #[test]
    fn an_aws_error_names_what_was_being_done_and_keeps_its_cause() {
        let e = service_error("ValidationException");
        assert!(e.to_string().starts_with("reading an item: "), "{e}");
        assert!(e.source().is_some());
    }

    #[test]
    fn bad_data_and_conflicts_are_permanent() {
        assert!(!Error::invalid("the pipeline item", "no event").is_retryable());
        assert!(!Error::Conflict("changed since read".into()).is_retryable());
        assert!(!Error::NotFound("no such source".into()).is_retryable());
    }

    #[test]
    fn a_workspace_without_a_connection_waits_for_someone_to_connect_it() {
        let never = Error::NotConnected {
            team: "T0123".into(),
            revoked: false,
        };
        assert!(!never.is_retryable());
        assert_eq!(
            never.to_string(),
            "workspace T0123 is not connected: connect Slack from the destinations page"
        );
        let revoked = Error::NotConnected {
            team: "T0123".into(),
            revoked: true,
        };
        assert!(revoked
            .to_string()
            .contains("revoked the app: reconnect Slack"));
    }

    #[test]
    fn an_unconfigured_slack_app_keeps_what_is_missing_as_its_cause() {
        let e = Error::AppNotConfigured {
            source: Arc::new(Error::reason("the Slack app secret has no signing_secret")),
        };
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("not configured yet"), "{e}");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("the Slack app secret has no signing_secret")
        );
    }
}
