//! A stand-in for the Slack Web API that behaves like Slack where ingestlayer cares.
//!
//! It serves `chat.postMessage`, `conversations.history` and `auth.test` under `/api` (so
//! `SLACK_API_URL` is [`Standin::api_url`]), enforcing Slack's rules: tokens, channel
//! membership and archive state, `no_text`, `msg_too_long`, Block Kit limits (`invalid_blocks`
//! with an `errors` array), `invalid_metadata_format`, and a per-channel rate limit answered with
//! HTTP 429 and `Retry-After`. Tests drive it in process through [`Standin`]: they read what was
//! posted, inject [`Fault`]s, and shape channels. `make dev` runs the `slack-standin` binary.
//!
//! Control endpoints outside `/api`, for a local stack:
//! - `GET /_standin/messages?channel=#alerts`: accepted messages, oldest first (all channels
//!   without `channel`).
//! - `GET /_standin/requests`: every `chat.postMessage` request with its outcome.
//! - `POST /_standin/faults`: a [`Fault`] as JSON, or an array of them (format on [`Fault`]).
//! - `POST /_standin/channels`: `{"name":"#secret","private":true,"bot_member":false,"archived":false}`.
//! - `POST /_standin/reset`: forget messages, requests, faults, channels and rate-limit state.

mod api;
pub mod blocks;
mod channel;
mod fault;
mod pacing;
mod render;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use fault::{Fault, FaultKind};

use state::Shared;

/// How the stand-in behaves. Build with struct update syntax over [`Default`].
#[derive(Clone, PartialEq)]
pub struct StandinConfig {
    /// Sustained `chat.postMessage` rate per channel (Slack: about 1/s). A value that is not
    /// finite and positive (e.g. `f64::INFINITY`) disables rate limiting. Default 1.0.
    pub rate_per_channel_per_sec: f64,
    /// Posts a channel may make back to back before the rate applies; at least 1. Default 1.
    pub burst: u32,
    /// Print each accepted message to stdout as a box. Default false.
    pub print_messages: bool,
    /// The bot tokens Slack accepts; `None` accepts any token starting with `xox`.
    /// Default `None`.
    pub accepted_tokens: Option<Vec<String>>,
}

impl std::fmt::Debug for StandinConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandinConfig")
            .field("rate_per_channel_per_sec", &self.rate_per_channel_per_sec)
            .field("burst", &self.burst)
            .field("print_messages", &self.print_messages)
            .field(
                "accepted_tokens",
                &self
                    .accepted_tokens
                    .as_ref()
                    .map(|t| format!("[{} redacted]", t.len())),
            )
            .finish()
    }
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            rate_per_channel_per_sec: 1.0,
            burst: 1,
            print_messages: false,
            accepted_tokens: None,
        }
    }
}

/// A message Slack accepted from `chat.postMessage`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedMessage {
    /// The channel's name without `#`, lower case (`alerts`), whichever form was posted to.
    pub channel: String,
    /// The channel's ID (`C…`), as the response's `channel` field reports it.
    pub channel_id: String,
    /// The message timestamp Slack assigned; unique and increasing across the stand-in.
    pub ts: String,
    /// The `text` argument as sent.
    pub text: Option<String>,
    /// The `blocks` argument, parsed (a JSON array).
    pub blocks: Option<serde_json::Value>,
    /// The `metadata` argument, parsed: `{"event_type": .., "event_payload": {..}}`.
    pub metadata: Option<serde_json::Value>,
    /// The token that posted it.
    pub token: String,
    /// When it was accepted (tokio's clock, so paused-time tests see paused time).
    pub at: Instant,
}

/// One `chat.postMessage` request and what Slack answered, accepted or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The channel's name without `#` when it resolves, else the value as sent (normalised),
    /// empty when the request named no channel.
    pub channel: String,
    /// When the request arrived (tokio's clock).
    pub at: Instant,
    /// The HTTP status of the response.
    pub status: u16,
    /// The Slack error (`ratelimited`, `invalid_blocks`, ...); `None` when accepted.
    pub error: Option<String>,
    /// The assigned `ts` when accepted.
    pub ts: Option<String>,
}

/// A running stand-in. Dropping it stops accepting connections; [`Standin::shutdown`] also
/// waits (briefly) for the server task.
pub struct Standin {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Standin {
    /// Binds `127.0.0.1:0`, serves in a tokio task, and returns once the port is bound.
    pub async fn start(config: StandinConfig) -> std::io::Result<Standin> {
        Standin::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Binds `addr`, serves in a tokio task, and returns once the port is bound.
    pub async fn start_on(addr: SocketAddr, config: StandinConfig) -> std::io::Result<Standin> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, reachable(addr)));
        let app = api::router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "slack stand-in stopped serving");
            }
        });
        Ok(Standin {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL clients use as `SLACK_API_URL`, e.g. `http://127.0.0.1:PORT/api`
    /// (an unspecified bind address is reported as `127.0.0.1`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api", reachable(self.addr))
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every accepted `chat.postMessage`, in acceptance order.
    pub fn messages(&self) -> Vec<PostedMessage> {
        self.shared.messages(None)
    }

    /// The accepted messages of one channel, in acceptance order; `#alerts`, `alerts` and the
    /// channel ID all name the same channel.
    pub fn messages_in(&self, channel: &str) -> Vec<PostedMessage> {
        self.shared.messages(Some(channel))
    }

    /// Every `chat.postMessage` request, including rejected ones, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Queues a fault behind those already queued (see [`Fault`] for how they are consumed).
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Creates a channel (or changes an existing one). Posting to a private channel the bot
    /// is not in fails with `not_in_channel`; reading history needs membership in any channel.
    /// Public channels accept posts without membership, as with the `chat:write.public` scope.
    pub fn create_channel(&self, name: &str, private: bool, bot_member: bool) {
        self.shared.create_channel(name, private, bot_member);
    }

    /// Archives a channel (creating it first if unknown): posts then fail with `is_archived`.
    pub fn archive_channel(&self, name: &str) {
        self.shared.archive_channel(name);
    }

    /// The ID of a known channel (`#alerts`, `alerts`), `None` if unknown.
    pub fn channel_id(&self, name: &str) -> Option<String> {
        self.shared.channel_id(name)
    }

    /// Forgets messages, requests, faults, channels and rate-limit state.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting connections and waits up to one second for requests in flight
    /// (a delayed response may still be pending; it is then abandoned).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl std::fmt::Debug for Standin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standin").field("addr", &self.addr).finish()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
    } else {
        addr
    }
}
