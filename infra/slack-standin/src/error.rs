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
