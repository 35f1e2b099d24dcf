//! The stand-in's own failures: it could not listen, or a test or operator asked for something
//! that cannot be (a token that is not a bot token, a chat ID of the wrong sign, an unknown
//! chat).
//!
//! What the stand-in answers its clients is not an error of its own: Telegram's refusals are
//! plain values (`rejection`) that the HTTP layer turns into responses.

use std::net::SocketAddr;

use crate::ChatKind;

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
    /// A bot token is `<bot id>:<secret>`, the ID digits, as BotFather issues them.
    #[error("a bot token is <bot id>:<secret> with a numeric bot id, e.g. 123456:standin-token")]
    BadToken,
    /// Telegram gives private chats positive IDs and every other chat a negative one.
    #[error("chat id {id} cannot be a {kind} chat: private chats have positive ids, groups, supergroups and channels negative ones")]
    ChatIdSign { id: i64, kind: ChatKind },
    /// The chat was never registered with `add_chat`.
    #[error("no chat {0} is registered (add it with add_chat)")]
    UnknownChat(i64),
    /// Blocking is for private chats, kicking for the others.
    #[error("cannot {action} in chat {id}: it is a {kind} chat")]
    WrongChatKind {
        id: i64,
        kind: ChatKind,
        action: &'static str,
    },
    /// A username is 5 to 32 letters, digits and underscores (`@` optional).
    #[error("{0:?} is not a Telegram username (5-32 letters, digits or underscores)")]
    BadUsername(String),
}

impl Error {
    /// Whether trying again may succeed: a port that was taken may be free later; the other
    /// errors are in the request and stay.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Listen { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_may_free_up_and_a_bad_token_does_not() {
        let taken = Error::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert!(taken.is_retryable());
        assert!(!Error::BadToken.is_retryable());
    }
}
