//! A stand-in for the Telegram Bot API's `sendMessage` that behaves like Telegram where
//! ingestlayer cares.
//!
//! Requests go to `{base}/bot{token}/{method}` as with `https://api.telegram.org`, where the
//! base is [`Standin::api_url`] (ingestlayer's `TELEGRAM_API_URL`). Method names are
//! case-insensitive, arguments come from the query string and a JSON or form-encoded body
//! (the body winning), GET or POST alike. Every answer is
//! `{"ok":true,"result":…}` or `{"ok":false,"error_code":N,"description":"…"}` with HTTP status
//! N (https://core.telegram.org/bots/api#making-requests).
//!
//! Methods:
//! - `getMe`: the bot's `User`.
//! - `sendMessage` (https://core.telegram.org/bots/api#sendmessage): `chat_id` (integer or
//!   `@username` of a supergroup or channel), `text`, `parse_mode` (`HTML`; `Markdown` and
//!   `MarkdownV2` are refused with a note that the stand-in does not parse them),
//!   `link_preview_options` (`{"is_disabled":true}`) and the legacy `disable_web_page_preview`.
//!   The answer is the `Message`: `message_id` (per chat, from 1), `from` (or `sender_chat` in a
//!   channel), `chat`, `date`, `text` (tags removed, entities decoded, trimmed), `entities`.
//!
//! Refusals, with Telegram's descriptions: 401 `Unauthorized` (unknown token), 404 `Not Found`
//! (unknown method), 400 `Bad Request: chat_id is empty`, `…: chat not found`,
//! `…: message text is empty`, `…: message is too long` (over 4096 after entity parsing, see
//! [`LengthUnit`]), `…: can't parse entities: …` (see [`html`]), `…: unsupported parse_mode`;
//! 403 `Forbidden: bot was blocked by the user`, `…: bot was kicked from the group chat`,
//! `…: bot was kicked from the supergroup chat`, `…: bot is not a member of the channel chat`;
//! 429 `Too Many Requests: retry after N` with `parameters.retry_after` (and `Retry-After`)
//! when a flood limit is hit (see [`StandinConfig`]).
//!
//! Tests drive the stand-in in process through [`Standin`]: they register bots and chats, block
//! or kick the bot, inject [`Fault`]s and read what was sent. `make dev` runs the
//! `telegram-standin` binary.
//!
//! Control endpoints under `/_standin`, for a local stack:
//! - `GET /_standin/chats/{id}/messages` (`{id}` an integer or `@username`): the chat's messages,
//!   oldest first; `GET /_standin/messages`: every chat's.
//! - `GET /_standin/requests`: every `sendMessage` request with its outcome.
//! - `POST /_standin/faults`: a [`Fault`] as JSON, or an array of them (format on [`Fault`]).
//! - `POST /_standin/chats`: `{"id": -1001, "type": "supergroup", "title": "…", "username": "…"}`.
//! - `POST /_standin/chats/{id}/block`, `…/unblock`, `…/kick`, `…/unkick`.
//! - `POST /_standin/bots`: `{"token": "123:abc"}`.
//! - `POST /_standin/reset`: forget messages, requests, faults and flood-limit state (bots and
//!   chats stay).

mod api;
mod chat;
pub mod error;
mod fault;
pub mod html;
mod pacing;
mod rejection;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

pub use chat::ChatKind;
pub use error::{Error, Result};
pub use fault::{Fault, FaultKind};
pub use html::{Entity, EntityKind, LengthUnit, Strictness};

use state::Shared;

/// The bot token the binary registers by default.
pub const DEFAULT_TOKEN: &str = "123456:standin-token";

/// How the stand-in behaves. Build with struct update syntax over [`Default`].
///
/// Flood limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
/// "avoid sending more than one message per second" in a chat, "we may allow short bursts",
/// "not more than 30 messages per second or so" in bulk, "not able to send more than 20
/// messages per minute to the same group". Each limit is per bot.
#[derive(Clone, PartialEq)]
pub struct StandinConfig {
    /// Sustained messages per second in one chat. Not finite and positive (e.g.
    /// `f64::INFINITY`, 0): no per-chat limit. Default 1.0.
    pub per_chat_per_sec: f64,
    /// Messages a chat may take back to back before the per-chat rate applies; at least 1.
    /// Telegram does not say how long its bursts are. Default 3.
    pub per_chat_burst: u32,
    /// Messages in any 60 seconds in one group or supergroup; 0: no group limit. Default 20.
    pub per_group_per_minute: u32,
    /// Sustained messages per second across all chats. Not finite and positive: no limit.
    /// Default 30.0.
    pub per_bot_per_sec: f64,
    /// Messages back to back across all chats before the per-bot rate applies. Default 30.
    pub per_bot_burst: u32,
    /// The longest text after entity parsing. Default 4096.
    pub max_text_length: usize,
    /// How the length is counted. Default [`LengthUnit::Utf16`].
    pub length_unit: LengthUnit,
    /// How a bare `&` in HTML is treated. Default [`Strictness::Documented`] (refused).
    pub html_strictness: Strictness,
    /// Bot tokens registered at start (more with [`Standin::add_bot`]). Default none.
    pub bot_tokens: Vec<String>,
    /// Print each sent message to stdout, one line. Default false.
    pub print_messages: bool,
}

impl std::fmt::Debug for StandinConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandinConfig")
            .field("per_chat_per_sec", &self.per_chat_per_sec)
            .field("per_chat_burst", &self.per_chat_burst)
            .field("per_group_per_minute", &self.per_group_per_minute)
            .field("per_bot_per_sec", &self.per_bot_per_sec)
            .field("per_bot_burst", &self.per_bot_burst)
            .field("max_text_length", &self.max_text_length)
            .field("length_unit", &self.length_unit)
            .field("html_strictness", &self.html_strictness)
            .field(
                "bot_tokens",
                &format!("[{} redacted]", self.bot_tokens.len()),
            )
            .field("print_messages", &self.print_messages)
            .finish()
    }
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            per_chat_per_sec: 1.0,
            per_chat_burst: 3,
            per_group_per_minute: 20,
            per_bot_per_sec: 30.0,
            per_bot_burst: 30,
            max_text_length: 4096,
            length_unit: LengthUnit::default(),
            html_strictness: Strictness::default(),
            bot_tokens: Vec::new(),
            print_messages: false,
        }
    }
}

impl StandinConfig {
    /// No flood limits at all, for tests about anything but pacing.
    pub fn unlimited() -> StandinConfig {
        StandinConfig {
            per_chat_per_sec: f64::INFINITY,
            per_group_per_minute: 0,
            per_bot_per_sec: f64::INFINITY,
            ..StandinConfig::default()
        }
    }
}

/// The `parse_mode` a message was sent with (only HTML is parsed by the stand-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    Html,
}

/// A message Telegram accepted from `sendMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub chat_id: i64,
    /// Per chat, from 1, increasing.
    pub message_id: i64,
    /// The sending bot's ID (the token's part before `:`).
    pub bot_id: i64,
    /// Unix seconds (wall clock), the `Message.date` answered.
    pub date: i64,
    /// When it was accepted, on tokio's clock (paused-time tests see paused time).
    pub at: Instant,
    /// The `text` argument as sent (HTML source when `parse_mode` was HTML).
    pub raw_text: String,
    /// The text as Telegram shows it: tags removed, entities decoded, trimmed.
    pub text: String,
    pub entities: Vec<Entity>,
    pub parse_mode: Option<ParseMode>,
    /// `link_preview_options.is_disabled` or `disable_web_page_preview`.
    pub link_preview_disabled: bool,
}

/// One `sendMessage` request and what Telegram answered, accepted or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The chat, when the request named a registered one.
    pub chat_id: Option<i64>,
    /// When it was answered (tokio's clock).
    pub at: Instant,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The `description` of a refusal; `None` when accepted.
    pub description: Option<String>,
}

/// A running stand-in. Dropping it stops accepting connections; [`Standin::shutdown`] also
/// waits (briefly) for the server task.
pub struct Standin {
    shared: Arc<Shared>,
    server: standin_server::Server,
}

impl Standin {
    /// Binds `127.0.0.1:0`, serves in a tokio task, and returns once the port is bound.
    pub async fn start(config: StandinConfig) -> Result<Standin> {
        Standin::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Binds `addr`, serves in a tokio task, and returns once the port is bound.
    pub async fn start_on(addr: SocketAddr, config: StandinConfig) -> Result<Standin> {
        let bound = standin_server::Bound::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let shared = Arc::new(Shared::new(config)?);
        let server = bound.serve(api::router(Arc::clone(&shared)), "telegram stand-in");
        Ok(Standin { shared, server })
    }

    /// The base URL clients use as `TELEGRAM_API_URL`, `http://127.0.0.1:PORT` (an unspecified
    /// bind address is reported as `127.0.0.1`); methods are at `{base}/bot{token}/{method}`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Registers a bot token (`<bot id>:<secret>`); returns the bot ID. Requests with any
    /// other token answer 401.
    pub fn add_bot(&self, token: &str) -> Result<i64> {
        self.shared.add_bot(token)
    }

    /// Registers a chat the bots can write to (or changes a known chat's kind). Private chats
    /// have positive IDs, the others negative ones, as on Telegram.
    pub fn add_chat(&self, chat_id: i64, kind: ChatKind) -> Result<()> {
        self.shared.add_chat(chat_id, kind)
    }

    /// Gives a chat a public username, so `chat_id: "@username"` reaches it (supergroups and
    /// channels; Telegram does not resolve people's usernames for `sendMessage`).
    pub fn set_chat_username(&self, chat_id: i64, username: &str) -> Result<()> {
        self.shared.set_chat_username(chat_id, username)
    }

    /// Sets a chat's title (a private chat's first name), as answered in `Message.chat`.
    pub fn set_chat_title(&self, chat_id: i64, title: &str) -> Result<()> {
        self.shared.set_chat_title(chat_id, title)
    }

    /// The person blocks the bots in a private chat: `sendMessage` answers 403
    /// `Forbidden: bot was blocked by the user`.
    pub fn block_bot(&self, chat_id: i64) -> Result<()> {
        self.shared.set_blocked(chat_id, true)
    }

    /// The person unblocks the bots again.
    pub fn unblock_bot(&self, chat_id: i64) -> Result<()> {
        self.shared.set_blocked(chat_id, false)
    }

    /// The bots are removed from a group, supergroup or channel: `sendMessage` answers 403
    /// `Forbidden: bot was kicked from the group chat` (`…supergroup chat`; in a channel
    /// `Forbidden: bot is not a member of the channel chat`).
    pub fn kick_bot(&self, chat_id: i64) -> Result<()> {
        self.shared.set_kicked(chat_id, true)
    }

    /// The bots are added back.
    pub fn unkick_bot(&self, chat_id: i64) -> Result<()> {
        self.shared.set_kicked(chat_id, false)
    }

    /// The ID of a registered chat named by ID or `@username`.
    pub fn chat_id(&self, chat: &str) -> Option<i64> {
        self.shared.chat_id(chat)
    }

    /// The messages sent to one chat, in order.
    pub fn messages(&self, chat_id: i64) -> Vec<SentMessage> {
        self.shared.messages(Some(chat_id))
    }

    /// Every message sent, in order.
    pub fn all_messages(&self) -> Vec<SentMessage> {
        self.shared.messages(None)
    }

    /// Every `sendMessage` request, refused ones included, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Queues a fault behind those already queued (see [`Fault`] for how they are consumed).
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Forgets messages, requests, faults, message IDs and flood-limit state; bots and chats
    /// (and their blocked or kicked state) stay.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting connections and waits up to one second for requests in flight
    /// (a delayed response may still be pending; it is then abandoned).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

impl std::fmt::Debug for Standin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standin")
            .field("addr", &self.server.addr())
            .finish()
    }
}
