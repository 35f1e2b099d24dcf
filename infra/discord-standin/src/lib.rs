//! A stand-in for Discord's Execute Webhook that behaves like Discord where ingestlayer cares.
//!
//! The API base URL (`DISCORD_API_URL`) is [`Standin::api_url`], `http://ADDR/api/v10`:
//! - `POST /api/v10/webhooks/{id}/{token}` executes a webhook
//!   (<https://discord.com/developers/docs/resources/webhook#execute-webhook>): a JSON body
//!   (`content`, `username`, `avatar_url`, `tts`, `embeds`, `allowed_mentions`, `flags`, ...);
//!   `?wait=true` answers 200 with the created message object, else 204. Unknown id: 404
//!   `{"message": "Unknown Webhook", "code": 10015}`; known id, wrong token: 401 `{"message":
//!   "Invalid Webhook Token", "code": 50027}`; an id that is no snowflake: 400 (50035).
//! - The body's rules: content up to 2000 characters, up to
//!   10 embeds, the embed limits (title 256, description 4096, 25 fields, field name 256,
//!   field value 1024, footer text 2048, author name 256, 6000 in total), answered as 400
//!   `{"code": 50035, "message": "Invalid Form Body", "errors": {...}}` with the failing
//!   field's path; an empty message as 400 `{"message": "Cannot send an empty message",
//!   "code": 50006}`; a body that is not a JSON object as 400 (50109).
//! - Rate limits (<https://discord.com/developers/docs/topics/rate-limits>): a fixed window per
//!   webhook ([`StandinConfig::webhook_rate_limit`], default 5 per 2 s) and a global one
//!   ([`StandinConfig::global_rate_limit`], default 50 per s). Every Execute Webhook answer
//!   from Discord's API carries `X-RateLimit-Limit`, `-Remaining`, `-Reset`, `-Reset-After` and
//!   `-Bucket`; over a limit the answer is 429 with `Retry-After` and `{"message": "You are
//!   being rate limited.", "retry_after": <s>, "global": <bool>}`, plus `X-RateLimit-Scope`
//!   (`user`, or `global` with `X-RateLimit-Global: true`).
//! - `GET /api/v10/webhooks/{id}/{token}`: the webhook object (Get Webhook with Token), for a
//!   client that checks a webhook URL before using it.
//!
//! Each accepted message is recorded with the mentions it would ping under its
//! `allowed_mentions` ([`Pings`]), read with [`Standin::messages`]. Tests inject [`Fault`]s.
//!
//! One webhook exists from start-up, [`Standin::default_webhook`]: id [`DEFAULT_WEBHOOK_ID`],
//! token [`DEFAULT_WEBHOOK_TOKEN`], so `make dev` can seed a pipeline with a fixed URL.
//!
//! Control endpoints outside `/api`, for a local stack:
//! - `POST /_standin/webhooks` `{"name": "alerts"}`: a new webhook (`id`, `token`, `url`, ...);
//!   `GET /_standin/webhooks` lists them; `DELETE /_standin/webhooks/{id}` deletes one
//!   (executing it then answers 404 10015).
//! - `GET /_standin/webhooks/{id}/messages`: its accepted messages, oldest first, each with
//!   `pings`.
//! - `GET /_standin/requests`: every Execute Webhook request with its status and code.
//! - `POST /_standin/faults`: a [`Fault`] as JSON, or an array of them (format on [`Fault`]).
//! - `POST /_standin/reset`: forget messages, requests, faults, rate-limit state and created
//!   webhooks (the default webhook stays or comes back).

mod api;
pub mod error;
mod fault;
mod form;
mod mentions;
mod ratelimit;
mod reply;
mod state;
mod validate;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

pub use error::{Error, Result};
pub use fault::{Fault, FaultKind};
pub use mentions::{MentionType, Pings};
pub use ratelimit::RateLimit;
pub use state::{DEFAULT_WEBHOOK_ID, DEFAULT_WEBHOOK_TOKEN};

use state::Shared;

/// How the stand-in behaves. Build with struct update syntax over [`Default`].
#[derive(Debug, Clone, PartialEq)]
pub struct StandinConfig {
    /// The limit per webhook (`webhook_id + webhook_token`); `None` disables it.
    /// Default [`RateLimit::WEBHOOK`], 5 requests per 2 seconds: what Discord commonly
    /// answers for webhooks (the docs give no number).
    pub webhook_rate_limit: Option<RateLimit>,
    /// The global limit over all requests; `None` disables it. Default
    /// [`RateLimit::GLOBAL`], the documented 50 requests per second.
    pub global_rate_limit: Option<RateLimit>,
    /// What `allowed_mentions` parses when a message has none. Default `[Users]`, Discord's
    /// documented default for webhooks; `[Users, Roles, Everyone]` is the default of regular
    /// messages, a stricter check of a client that forgets `allowed_mentions`.
    pub default_parse: Vec<MentionType>,
    /// Print each accepted message to stdout (a few lines, never the token). Default false.
    pub print_messages: bool,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            webhook_rate_limit: Some(RateLimit::WEBHOOK),
            global_rate_limit: Some(RateLimit::GLOBAL),
            default_parse: vec![MentionType::Users],
            print_messages: false,
        }
    }
}

/// A webhook registered in the stand-in. `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id, a snowflake.
    pub id: String,
    /// Its token, the secret part of the URL.
    pub token: String,
    /// Its default name (the author's name when a message sets no `username`).
    pub name: String,
    /// The channel it posts to.
    pub channel_id: String,
    /// The channel's guild.
    pub guild_id: String,
    /// The execute URL, `http://ADDR/api/v10/webhooks/{id}/{token}`.
    pub url: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .field("name", &self.name)
            .field("channel_id", &self.channel_id)
            .finish()
    }
}

/// A message Discord accepted from Execute Webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookMessage {
    /// The message id Discord assigned (a snowflake, unique and increasing).
    pub id: String,
    /// The webhook that posted it.
    pub webhook_id: String,
    /// The channel it is in (the thread's id with `?thread_id=`).
    pub channel_id: String,
    /// `?thread_id=` as sent.
    pub thread_id: Option<String>,
    /// `content` as sent.
    pub content: Option<String>,
    /// `username` as sent.
    pub username: Option<String>,
    /// `avatar_url` as sent.
    pub avatar_url: Option<String>,
    /// `tts` as sent (false when absent).
    pub tts: bool,
    /// `embeds` as sent.
    pub embeds: Vec<serde_json::Value>,
    /// `flags` as sent (0 when absent).
    pub flags: u64,
    /// `allowed_mentions` as sent.
    pub allowed_mentions: Option<serde_json::Value>,
    /// The whole request body.
    pub body: serde_json::Value,
    /// Whether the request had `?wait=true`.
    pub waited: bool,
    /// The mentions it would ping.
    pub pings: Pings,
    /// When the request arrived (tokio's clock, so paused-time tests see paused time).
    pub at: Instant,
    /// When it was stored, ISO 8601 as in the message object (wall clock).
    pub timestamp: String,
}

/// One Execute Webhook request and what Discord answered, accepted or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The webhook id of the path, as sent.
    pub webhook_id: String,
    /// When the request arrived (tokio's clock).
    pub at: Instant,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The Discord JSON error code of the answer, if any (10015, 50035, ...).
    pub code: Option<u64>,
    /// The stored message's id, when one was stored (also under an accept-then fault).
    pub message_id: Option<String>,
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
        let shared = Arc::new(Shared::new(config, bound.addr()));
        let server = bound.serve(api::router(Arc::clone(&shared)), "discord stand-in");
        Ok(Standin { shared, server })
    }

    /// The base URL clients use as `DISCORD_API_URL`, `http://127.0.0.1:PORT/api/v10` (an
    /// unspecified bind address is reported as `127.0.0.1`).
    pub fn api_url(&self) -> String {
        self.shared.api_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The webhook that exists from start-up: id [`DEFAULT_WEBHOOK_ID`], token
    /// [`DEFAULT_WEBHOOK_TOKEN`]. `None` after [`Standin::delete_webhook`] of it (until
    /// [`Standin::reset`]).
    pub fn default_webhook(&self) -> Option<Webhook> {
        self.shared.default_webhook()
    }

    /// Registers a webhook named `name` in a channel of its own, with a fresh id and a random
    /// token; its [`Webhook::url`] is ready to execute.
    pub fn create_webhook(&self, name: &str) -> Webhook {
        self.shared.create_webhook(name)
    }

    /// Deletes a webhook: executing it then answers 404 `Unknown Webhook` (10015). Its
    /// messages stay readable. False when there was no such webhook.
    pub fn delete_webhook(&self, id: &str) -> bool {
        self.shared.delete_webhook(id)
    }

    /// The registered webhooks, by id.
    pub fn webhooks(&self) -> Vec<Webhook> {
        self.shared.webhooks()
    }

    /// The accepted messages of one webhook, in acceptance order.
    pub fn messages(&self, webhook_id: &str) -> Vec<WebhookMessage> {
        self.shared.messages(Some(webhook_id))
    }

    /// Every accepted message, in acceptance order.
    pub fn all_messages(&self) -> Vec<WebhookMessage> {
        self.shared.messages(None)
    }

    /// Every Execute Webhook request, refused ones included, in arrival order (a request held
    /// back by [`FaultKind::Delay`] is recorded when it is handled).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Queues a fault behind those already queued (see [`Fault`] for how they are consumed).
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Forgets messages, requests, faults, rate-limit state and created webhooks; the
    /// default webhook stays (or comes back) and the configuration stays.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting connections and waits up to one second for requests in flight
    /// (a delayed answer may still be pending; it is then abandoned).
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
