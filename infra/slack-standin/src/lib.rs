//! A stand-in for the Slack Web API that behaves like Slack where ingestlayer cares.
//!
//! Web API methods under `/api` (so `SLACK_API_URL` is [`Standin::api_url`]):
//! - `chat.postMessage`, enforcing Slack's rules: tokens, channel membership and archive state,
//!   `no_text`, `msg_too_long`, Block Kit limits (`invalid_blocks` with an `errors` array),
//!   `invalid_metadata_format`, and a per-channel rate limit answered with HTTP 429 and
//!   `Retry-After`.
//! - `conversations.history` (newest first, `limit` per page, `has_more` and
//!   `response_metadata.next_cursor` to page on; `not_in_channel` where the bot is not a
//!   member, public or private), `conversations.list` (`types`, `exclude_archived`; each
//!   channel with `is_private`, `is_member`, `is_archived`), `auth.test`.
//! - `conversations.join`: the bot joins a public channel (`channels:join`); a private one
//!   answers `method_not_supported_for_channel_type`.
//!
//! Channels can exist without the bot in them ([`Standin::create_channel`]): a public one
//! takes posts anyway (as with `chat:write.public`) but shows its history only once the bot
//! joined; a private one answers `not_in_channel` to both until the bot is invited
//! ([`Standin::invite_bot`], which also returns the `member_joined_channel` callback).
//! - `oauth.v2.access`: exchanges a one-time code from the install flow (single use, 10 minutes,
//!   same `redirect_uri` as at authorize) or, with [`StandinConfig::token_rotation`], a refresh
//!   token (single use; the access token it came with stops at once with `token_expired`). App
//!   credentials as HTTP Basic or `client_id`/`client_secret` form fields. Errors:
//!   `invalid_client_id`, `bad_client_secret`, `invalid_code`, `bad_redirect_uri`,
//!   `invalid_grant_type`, `invalid_refresh_token`.
//! - `auth.revoke`: the calling token then fails with `token_revoked` (`test=true` revokes
//!   nothing).
//! - `users.lookupByEmail`: users registered with [`Standin::add_user`], else `users_not_found`.
//! - Threads: `chat.postMessage` with `thread_ts` replies in the thread of a top-level message
//!   of the channel; a ts that is no message there answers `thread_not_found`, a reply's ts (or
//!   no ts at all) `invalid_thread_ts`. Replies stay out of `conversations.history` (their
//!   parent shows `reply_count` and `latest_reply`); `conversations.replies` reads a thread,
//!   parent first (`thread_not_found` for an unknown ts).
//! - `chat.update`: replaces the text and blocks of the bot's message, checked as a post is;
//!   `message_not_found`, `cant_update_message` (a person's message, [`Standin::post_as_user`]),
//!   `invalid_blocks`, `no_text`, `msg_too_long`.
//!
//! Interactivity: [`Standin::click`] is a person clicking a message's button: the signed
//! `block_actions` request Slack sends to the app's interactivity URL, for the test to deliver
//! (as with [`sign_event_request`] for Events API callbacks).
//!
//! Every method checks the token as Slack does: revoked tokens fail with `token_revoked`,
//! expired ones (rotating tokens after 12 hours, replaced ones, [`Standin::expire_token`]) with
//! `token_expired`, tokens issued by `oauth.v2.access` pass, and any other token passes by
//! [`StandinConfig::accepted_tokens`] or fails with `invalid_auth`.
//!
//! Slack's install page, at the stand-in's root ([`Standin::authorize_url`]):
//! - `GET /oauth/v2/authorize?client_id=…&scope=a,b&user_scope=…&redirect_uri=…&state=…`: a
//!   consent page, "Install ingestlayer to Stand-in workspace", listing the scopes, with an
//!   **Allow** and a **Cancel** button (plain HTML forms, no script). An unknown `client_id`, a
//!   missing or non-`http(s)` `redirect_uri` or no scope at all gets an HTML error page (400)
//!   and no redirect.
//! - `POST /oauth/v2/authorize` (the buttons): Allow answers 302 to
//!   `redirect_uri?code=…&state=…`, Cancel 302 to `redirect_uri?error=access_denied&state=…`.
//!   [`Standin::approve`] is Allow without a browser.
//!
//! Tests drive the stand-in in process through [`Standin`]: they read what was posted, inject
//! [`Fault`]s, shape channels, register users and expire or revoke tokens. For tests of an app's
//! Events API endpoint, [`sign_event_request`] signs a request as Slack does. `make dev` runs the
//! `slack-standin` binary.
//!
//! Control endpoints outside `/api`, for a local stack:
//! - `GET /_standin/messages?channel=#alerts`: accepted messages, oldest first (all channels
//!   without `channel`).
//! - `GET /_standin/requests`: every `chat.postMessage` request with its outcome.
//! - `POST /_standin/faults`: a [`Fault`] as JSON, or an array of them (format on [`Fault`]).
//! - `POST /_standin/channels`: `{"name":"#secret","private":true,"bot_member":false,"archived":false}`.
//! - `POST /_standin/channels/invite`: `{"name":"#secret"}`: the bot is invited; the answer is
//!   the `member_joined_channel` Events API callback to sign and deliver.
//! - `POST /_standin/users`: `{"email":"ada@example.com","id":"U0ADA"}`, for `users.lookupByEmail`.
//! - `POST /_standin/click`: `{"channel":"#alerts","ts":"…","action_id":"…","user":"U0ADA",
//!   "signing_secret":"…"}`: the signed interaction request (`body`, `headers`) to deliver to
//!   the app's `/slack/interactions`; 404 when the message has no such button.
//! - `POST /_standin/tokens/expire`, `POST /_standin/tokens/revoke`: `{"token":"xoxb-…"}`.
//! - `POST /_standin/reset`: forget messages, requests, faults, channels, rate-limit state,
//!   users, codes, issued tokens and revocations.

mod api;
pub mod blocks;
mod channel;
mod consent;
pub mod error;
mod fault;
mod oauth;
mod rejection;
mod signing;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub use error::{Error, Result};
pub use fault::{Fault, FaultKind};
pub use oauth::AuthorizeError;
pub use signing::sign_event_request;

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
    /// The bot tokens Slack accepts besides those `oauth.v2.access` issues; `None` accepts any
    /// token starting with `xox`. Default `None`.
    pub accepted_tokens: Option<Vec<String>>,
    /// The workspace's team ID, in `auth.test`, messages and installs. Default `T0STANDIN`.
    pub team_id: String,
    /// The workspace's name, on the consent page and in `auth.test`. Default `Stand-in`.
    pub team_name: String,
    /// The registered apps, as `(client_id, client_secret)`.
    /// Default one app: `("standin-client-id", "standin-client-secret")`.
    pub oauth_clients: Vec<(String, String)>,
    /// Slack's token rotation: installs hand out `xoxe.xoxb-` access tokens that expire after
    /// 12 hours (`expires_in: 43200`) with a single-use `xoxe-1-` refresh token. Default false.
    pub token_rotation: bool,
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
            .field("team_id", &self.team_id)
            .field("team_name", &self.team_name)
            .field(
                "oauth_clients",
                &self
                    .oauth_clients
                    .iter()
                    .map(|(id, _)| format!("{id}:[redacted]"))
                    .collect::<Vec<_>>(),
            )
            .field("token_rotation", &self.token_rotation)
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
            team_id: "T0STANDIN".to_owned(),
            team_name: "Stand-in".to_owned(),
            oauth_clients: vec![(
                "standin-client-id".to_owned(),
                "standin-client-secret".to_owned(),
            )],
            token_rotation: false,
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
    /// The token that posted it (empty for a person's message, [`Standin::post_as_user`]).
    pub token: String,
    /// When it was accepted (tokio's clock, so paused-time tests see paused time).
    pub at: Instant,
    /// The thread it replies in (its parent's ts); `None` for a top-level message.
    pub thread_ts: Option<String>,
    /// Who posted it: the bot ([`Standin::bot_user_id`]) or a person.
    pub user: String,
    /// How many times `chat.update` changed it (its text and blocks are the latest).
    pub edits: usize,
}

/// A Slack interaction request (a click on a message's button) as Slack sends it to the app's
/// interactivity request URL: the form-encoded body `payload=<json>`, signed with the app's
/// signing secret. POST `body` with `Content-Type: application/x-www-form-urlencoded`,
/// `X-Slack-Request-Timestamp: {timestamp}` and `X-Slack-Signature: {signature}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub body: String,
    pub timestamp: i64,
    pub signature: String,
    /// The `block_actions` payload inside `body`.
    pub payload: serde_json::Value,
}

impl Interaction {
    /// The request's headers, ready to send.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("x-slack-request-timestamp", self.timestamp.to_string()),
            ("x-slack-signature", self.signature.clone()),
        ]
    }
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
        let server = bound.serve(api::router(Arc::clone(&shared)), "slack stand-in");
        Ok(Standin { shared, server })
    }

    /// The base URL clients use as `SLACK_API_URL`, e.g. `http://127.0.0.1:PORT/api`
    /// (an unspecified bind address is reported as `127.0.0.1`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.server.addr())
    }

    /// Slack's install page on the stand-in, `http://127.0.0.1:PORT/oauth/v2/authorize`: where
    /// an app sends the installer instead of `https://slack.com/oauth/v2/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("http://{}{}", self.server.addr(), consent::FORM_ACTION)
    }

    /// Clicks Allow without a browser: takes the authorize URL's query string (or the whole
    /// authorize URL) and returns the URL Allow redirects to, `redirect_uri?code=…&state=…`.
    /// `Err` holds the error page Slack would show instead of the consent page (its
    /// [`AuthorizeError::code`]: `invalid_client_id`, `bad_redirect_uri`, `invalid_scope`):
    /// Slack's answer, not a failure of the stand-in.
    pub fn approve(&self, authorize_query: &str) -> Result<String, AuthorizeError> {
        let pairs = api::query_pairs(authorize_query_part(authorize_query));
        let request = self.shared.authorize(&pairs)?;
        Ok(self.shared.approve(&request))
    }

    /// Registers a workspace member for `users.lookupByEmail` (case-insensitive on the email).
    pub fn add_user(&self, email: &str, id: &str) {
        self.shared.add_user(email, id);
    }

    /// Makes Web API calls with `token` fail with `token_expired` from now on, as when a
    /// rotating token outlives its 12 hours. Any token, issued here or not. A rotating token's
    /// refresh token keeps working.
    pub fn expire_token(&self, token: &str) {
        self.shared.expire_token(token);
    }

    /// Makes Web API calls with `token` fail with `token_revoked` from now on, as after
    /// `auth.revoke` or an uninstall. Any token, issued here or not; the refresh token issued
    /// with it stops working too.
    pub fn revoke_token(&self, token: &str) {
        self.shared.revoke_token(token);
    }

    /// How many times `oauth.v2.access` has exchanged a refresh token.
    pub fn refresh_count(&self) -> usize {
        self.shared.refresh_count()
    }

    /// A person clicks the button `action_id` of message `ts` in `channel`: the signed
    /// `block_actions` request Slack then sends to the app's interactivity URL, built from the
    /// message as it is now (its blocks, the button's `value` and `block_id`), signed with
    /// `signing_secret` at `timestamp` (unix seconds). `None` when the channel, the message or
    /// a button with that `action_id` on it does not exist: nothing to click.
    pub fn click(
        &self,
        channel: &str,
        ts: &str,
        action_id: &str,
        user_id: &str,
        signing_secret: &str,
        timestamp: i64,
    ) -> Option<Interaction> {
        self.shared
            .click(channel, ts, action_id, user_id, signing_secret, timestamp)
    }

    /// A person (`user_id`) posts `text` in `channel` (in the thread of `thread_ts` if given),
    /// as a message the bot did not write (`chat.update` answers `cant_update_message` for
    /// it). Returns its ts; `None` for an unknown channel or thread.
    pub fn post_as_user(
        &self,
        channel: &str,
        user_id: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> Option<String> {
        self.shared.post_as_user(channel, user_id, text, thread_ts)
    }

    /// The replies in the thread of `thread_ts` in `channel`, oldest first (the parent not
    /// included).
    pub fn replies(&self, channel: &str, thread_ts: &str) -> Vec<PostedMessage> {
        self.messages_in(channel)
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(thread_ts))
            .collect()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Every accepted `chat.postMessage`, in acceptance order.
    pub fn messages(&self) -> Vec<PostedMessage> {
        self.shared.messages(None)
    }

    /// The accepted messages after the first `first`, in acceptance order: a reader that
    /// keeps count reads each message once (until [`reset`](Self::reset)).
    pub fn messages_from(&self, first: usize) -> Vec<PostedMessage> {
        self.shared.messages_from(first)
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

    /// Invites the bot to a known channel, as `/invite @app` does, and returns the Events API
    /// callback Slack then sends to the app: an `event_callback` whose event is
    /// `member_joined_channel` for the bot user ([`Standin::bot_user_id`]) with the channel's
    /// ID. Sign it with [`sign_event_request`]. `None` when the channel is unknown.
    pub fn invite_bot(&self, name: &str) -> Option<serde_json::Value> {
        self.shared.invite_bot(name)
    }

    /// The bot's user ID, as `auth.test` and install answers report it.
    pub fn bot_user_id(&self) -> &'static str {
        self.shared.bot_user_id()
    }

    /// The channels (names without `#`) the bot joined with `conversations.join`, in order,
    /// already-member joins included.
    pub fn joins(&self) -> Vec<String> {
        self.shared.joins()
    }

    /// Archives a channel (creating it first if unknown): posts then fail with `is_archived`.
    pub fn archive_channel(&self, name: &str) {
        self.shared.archive_channel(name);
    }

    /// The ID of a known channel (`#alerts`, `alerts`), `None` if unknown.
    pub fn channel_id(&self, name: &str) -> Option<String> {
        self.shared.channel_id(name)
    }

    /// Forgets messages, requests, faults, channels, rate-limit state, users, codes, issued
    /// tokens and revocations; the configuration stays.
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

/// The query of an authorize URL, or the value itself when it is already just a query.
fn authorize_query_part(value: &str) -> &str {
    let value = value.trim();
    match value.split_once('?') {
        Some((before, query)) if !before.contains(['=', '&']) => query,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approve_takes_a_query_or_a_whole_authorize_url() {
        assert_eq!(
            authorize_query_part("client_id=a&state=x"),
            "client_id=a&state=x"
        );
        assert_eq!(authorize_query_part("?client_id=a"), "client_id=a");
        assert_eq!(
            authorize_query_part("https://slack.com/oauth/v2/authorize?client_id=a"),
            "client_id=a"
        );
        assert_eq!(
            authorize_query_part("client_id=a&state=what?"),
            "client_id=a&state=what?"
        );
    }
}
