//! Slack's refusals: each is an `{"ok":false,"error":"<code>"}` answer with its HTTP status.
//!
//! A [`Rejection`] is what the stand-in answers a client, as Slack would, not a failure of
//! the stand-in: the Web API methods return it as a plain value and `api` turns it into the
//! response. The stand-in's own failures are [`crate::error::Error`].

use serde_json::{json, Value};

/// Why Slack said no. Each becomes `{"ok":false,"error":"<code>"}` with the given HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    NotAuthed,
    InvalidAuth,
    TokenRevoked,
    TokenExpired,
    InvalidJson,
    InvalidArguments,
    ChannelNotFound,
    NotInChannel,
    IsArchived,
    NoText,
    MsgTooLong,
    InvalidBlocks(Vec<String>),
    InvalidMetadataFormat,
    InvalidTsOldest,
    InvalidTsLatest,
    RateLimited { retry_after_secs: u64 },
    RequestTimeout,
    Http(u16),
    Injected(String),
    UnknownMethod,
    InvalidCode,
    InvalidClientId,
    BadClientSecret,
    BadRedirectUri,
    InvalidGrantType,
    InvalidRefreshToken,
    UsersNotFound,
    InvalidTypes,
    MethodNotSupportedForChannelType,
    InvalidCursor,
    MessageNotFound,
    ThreadNotFound,
    InvalidThreadTs,
    CantUpdateMessage,
}

impl Rejection {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Rejection::RateLimited { .. } => 429,
            Rejection::Http(status) => *status,
            _ => 200,
        }
    }

    pub(crate) fn code(&self) -> &str {
        match self {
            Rejection::NotAuthed => "not_authed",
            Rejection::InvalidAuth => "invalid_auth",
            Rejection::TokenRevoked => "token_revoked",
            Rejection::TokenExpired => "token_expired",
            Rejection::InvalidJson => "invalid_json",
            Rejection::InvalidArguments => "invalid_arguments",
            Rejection::ChannelNotFound => "channel_not_found",
            Rejection::NotInChannel => "not_in_channel",
            Rejection::IsArchived => "is_archived",
            Rejection::NoText => "no_text",
            Rejection::MsgTooLong => "msg_too_long",
            Rejection::InvalidBlocks(_) => "invalid_blocks",
            Rejection::InvalidMetadataFormat => "invalid_metadata_format",
            Rejection::InvalidTsOldest => "invalid_ts_oldest",
            Rejection::InvalidTsLatest => "invalid_ts_latest",
            Rejection::RateLimited { .. } => "ratelimited",
            Rejection::RequestTimeout => "request_timeout",
            Rejection::Http(_) => "internal_error",
            Rejection::Injected(name) => name,
            Rejection::UnknownMethod => "unknown_method",
            Rejection::InvalidCode => "invalid_code",
            Rejection::InvalidClientId => "invalid_client_id",
            Rejection::BadClientSecret => "bad_client_secret",
            Rejection::BadRedirectUri => "bad_redirect_uri",
            Rejection::InvalidGrantType => "invalid_grant_type",
            Rejection::InvalidRefreshToken => "invalid_refresh_token",
            Rejection::UsersNotFound => "users_not_found",
            Rejection::InvalidTypes => "invalid_types",
            Rejection::MethodNotSupportedForChannelType => "method_not_supported_for_channel_type",
            Rejection::InvalidCursor => "invalid_cursor",
            Rejection::MessageNotFound => "message_not_found",
            Rejection::ThreadNotFound => "thread_not_found",
            Rejection::InvalidThreadTs => "invalid_thread_ts",
            Rejection::CantUpdateMessage => "cant_update_message",
        }
    }

    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Rejection::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({"ok": false, "error": self.code()});
        if let Rejection::InvalidBlocks(errors) = self {
            body["errors"] = json!(errors);
            body["response_metadata"] = json!({
                "messages": errors.iter().map(|e| format!("[ERROR] {e}")).collect::<Vec<_>>()
            });
        }
        body
    }
}
