//! The stand-in's one error type, for its own failures: it could not listen.
//!
//! What the stand-in answers its clients (`Unknown Webhook`, `Invalid Form Body`, a 429) is not
//! an error of its own: those are Discord's answers, plain values (`crate::rejection`) that the
//! HTTP layer turns into responses.

use std::net::SocketAddr;

/// `Result` with the stand-in's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be listened on (most often: the port is taken).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether starting again may succeed: a port that was taken may be free later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Listen { .. })
    }
}
