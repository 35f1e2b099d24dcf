//! The stand-in's one error type, for its own failures: it could not listen, or it was
//! started with a malformed option.
//!
//! What the stand-in answers its clients is not an error of its own: a Web API refusal
//! (`{"ok":false,"error":"<code>"}`, [`crate::rejection`]) and the install page's error page
//! ([`crate::AuthorizeError`]) are Slack's answers, plain values that the HTTP layer turns into
//! responses, as the library's refusal enums are (see `ingestlayer::error`).
//! [`crate::Standin::approve`] returns the page's [`crate::AuthorizeError`] as that value.

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
    /// `--oauth-client` is not `CLIENT_ID:CLIENT_SECRET`.
    #[error("expected CLIENT_ID:CLIENT_SECRET")]
    BadClient,
}

impl Error {
    /// Whether starting again may succeed: a port that was taken may be free later; a
    /// malformed `--oauth-client` stays malformed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Listen { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_may_free_up_and_a_bad_client_flag_does_not() {
        let taken = Error::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert!(taken.is_retryable());
        assert!(!Error::BadClient.is_retryable());
    }
}
