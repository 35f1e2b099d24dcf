//! The local stack's one error type. Every fallible function of the crate returns
//! [`Result<T>`]; each variant keeps its cause (`#[source]`), and the two edges turn it into
//! words once: `make dev`'s `main` prints it and exits, the HTTP server answers API
//! Gateway's own 500/502/503 and logs it.
//!
//! A message names what failed and what to do about it (build a binary, add a value to the
//! local values table, give `--pipelines`); for the emulator it carries the SDK's whole cause
//! chain, for a function its output's last lines.
//!
//! A variant exists where a caller branches on it (a function's [`Error::Timeout`] is API
//! Gateway's 503, a failed cold start is [`Error::Init`] or [`Error::Exited`]) or where its
//! message needs the structure (a binary not built, a template value the local stack does
//! not map). The library's and the command line's errors pass through whole.

use std::path::PathBuf;
use std::time::Duration;

/// How to build the function binaries the local stack runs.
pub const BUILD_HINT: &str =
    "cargo build -p ingest -p pipeline -p slack-delivery -p destination-delivery -p slack-connect (make dev and make test do)";

/// A boxed cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the local stack's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the emulator failed, or the SDK could not build its request. The message
    /// carries the cause's whole chain, as the SDK's `DisplayErrorContext` prints it.
    #[error("{what}: {}", aws_sdk_sqs::error::DisplayErrorContext(source.as_ref()))]
    Aws {
        what: String,
        #[source]
        source: BoxError,
    },
    /// A local file or this executable's path could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Something read is not what it must be: a function's HTTP answer, a document that is
    /// not a DynamoDB item.
    #[error("{what}{}", source.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    Invalid {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    /// template.yaml does not parse.
    #[error("template.yaml does not parse: {0}")]
    TemplateParse(#[source] serde_norway::Error),
    /// template.yaml has no function of this logical id.
    #[error("template.yaml has no function {0}")]
    NoFunction(String),
    /// A value of template.yaml (a function's variable, an output) that the local stack
    /// cannot resolve; `reason` says what to add or change.
    #[error("{var}: {reason}")]
    Template { var: String, reason: String },
    /// A function's binary has not been built.
    #[error("the {binary} binary is not at {}: build it with {BUILD_HINT}", path.display())]
    NoBinary { binary: &'static str, path: PathBuf },
    /// `make dev` was given a pipelines folder that is not there.
    #[error("the pipelines folder {} does not exist: give --pipelines DIR", .0.display())]
    NoPipelinesFolder(PathBuf),
    /// A function's process could not be started.
    #[error("{function}: the binary could not be started: {what}: {source}")]
    Spawn {
        function: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A function failed its cold start and reported why.
    #[error(
        "{function} failed at cold start ({error_type}: {message}); its output ends with:\n{tail}"
    )]
    Init {
        function: String,
        error_type: String,
        message: String,
        tail: String,
    },
    /// A function's process exited.
    #[error("{function} exited ({status}); its output ends with:\n{tail}")]
    Exited {
        function: String,
        status: String,
        tail: String,
    },
    /// A function did not answer within its timeout (or its cold start within
    /// [`crate::lambda_api::INIT_TIMEOUT`]).
    #[error("{function} did not answer within {after:?}; its output ends with:\n{tail}")]
    Timeout {
        function: String,
        after: Duration,
        tail: String,
    },
    /// A function's handler answered with an error.
    #[error("{function} answered with an error ({error_type}): {message}")]
    Handler {
        function: String,
        error_type: String,
        message: String,
    },
    /// A function answered, but not with what its caller reads (`expected`: "JSON", "an SQS
    /// batch response").
    #[error("{function} answered something that is not {expected}: {source}")]
    BadResponse {
        function: String,
        expected: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A call into the library failed.
    #[error(transparent)]
    Lib(#[from] ingestlayer::error::Error),
    /// A call into the command line's library failed (applying the pipeline files).
    #[error(transparent)]
    Cli(#[from] ingestlayer_cli::error::CliError),
}

impl Error {
    /// Whether trying again may succeed: an emulator call or a file that failed, a function
    /// that timed out or died, or a library call the library says is transient. A wrong
    /// template, a missing binary or folder and a wrong answer stay wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Aws { .. } | Error::Io { .. } | Error::Timeout { .. } | Error::Exited { .. } => {
                true
            }
            Error::Lib(e) => e.is_retryable(),
            Error::Cli(e) => e.is_retryable(),
            Error::Invalid { .. }
            | Error::TemplateParse(_)
            | Error::NoFunction(_)
            | Error::Template { .. }
            | Error::NoBinary { .. }
            | Error::NoPipelinesFolder(_)
            | Error::Spawn { .. }
            | Error::Init { .. }
            | Error::Handler { .. }
            | Error::BadResponse { .. } => false,
        }
    }

    /// A failed AWS call (or an SDK request that could not be built), with what was being
    /// done; the message carries the whole cause chain.
    pub fn aws<E>(what: impl Into<String>, e: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Aws {
            what: what.into(),
            source: Box::new(e),
        }
    }

    /// A local I/O failure, with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// Something read that is not what it must be, with its cause when there is one.
    pub fn invalid(what: impl Into<String>, source: Option<BoxError>) -> Self {
        Error::Invalid {
            what: what.into(),
            source,
        }
    }

    /// The function's output tail, when the error carries one.
    pub fn tail(&self) -> &str {
        match self {
            Self::Init { tail, .. } | Self::Exited { tail, .. } | Self::Timeout { tail, .. } => {
                tail
            }
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_may_pass_on_a_second_try_says_so() {
        let io = || std::io::Error::other("disk");
        assert!(Error::io("writing dev.env")(io()).is_retryable());
        assert!(!Error::NoFunction("Nope".into()).is_retryable());
        assert!(!Error::NoPipelinesFolder("pipelines".into()).is_retryable());
        assert!(Error::Lib(ingestlayer::error::Error::Slack {
            what: "x".into(),
            detail: "timed out".into(),
            source: None,
        })
        .is_retryable());
        assert!(!Error::Cli(ingestlayer_cli::error::CliError::Usage("x".into())).is_retryable());
    }
}
