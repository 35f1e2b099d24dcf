//! The stand-in's one error type, for its own failures: it could not listen, or it was asked
//! to build something Notion would not have (a schema without a title property).
//!
//! What the stand-in answers its clients is not an error of its own: Notion's error bodies
//! are plain values (`crate::reply`) that the HTTP layer renders.

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
    /// A database or data source schema Notion would not have; the text says what is wrong.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// No database with that ID exists in the stand-in.
    #[error("no database with ID {0}")]
    UnknownDatabase(String),
}

impl Error {
    /// Whether trying again may succeed: a taken port may free up; a bad schema stays bad.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Listen { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_may_free_up_and_a_bad_schema_does_not() {
        let taken = Error::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert!(taken.is_retryable());
        assert!(!Error::InvalidSchema("no title".into()).is_retryable());
        assert!(!Error::UnknownDatabase("x".into()).is_retryable());
    }
}
