//! What Discord decides for Execute Webhook: the webhook, faults, rate limits, the body's
//! rules, and the record of everything executed. No HTTP here; `api` translates.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Map, Value};
use time::macros::format_description;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::fault::{Fault, FaultKind, Faults};
use crate::form::FormErrors;
use crate::mentions::{is_snowflake, Pings};
use crate::ratelimit::{Quota, Windows};
use crate::reply::{Body, Reply, Scope};
use crate::validate::{self, Invalid, Parsed};
use crate::{RecordedRequest, StandinConfig, Webhook, WebhookMessage};

/// The default webhook's id: exists from start-up, survives [`Shared::reset`].
pub const DEFAULT_WEBHOOK_ID: &str = "1000000000000000001";
/// The default webhook's token.
pub const DEFAULT_WEBHOOK_TOKEN: &str = "standin-token";
const DEFAULT_WEBHOOK_NAME: &str = "ingestlayer";
/// The stand-in's one guild, and the default webhook's channel.
const GUILD_ID: &str = "1000000000000000010";
const DEFAULT_CHANNEL_ID: &str = "1000000000000000100";
/// Discord's epoch, 2015-01-01T00:00:00Z, in Unix milliseconds.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// What the handler does before handling an Execute Webhook request.
#[derive(Debug)]
pub(crate) enum Before {
    /// Answer now.
    Answer(Reply),
    /// Wait, then handle it.
    Wait(Duration),
    /// Handle it now.
    Go,
}

/// An Execute Webhook answer and how long to hold it back.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) reply: Reply,
    pub(crate) delay: Option<Duration>,
}

/// The stand-in's state, shared by the server task and the [`crate::Standin`] handle.
pub(crate) struct Shared {
    config: StandinConfig,
    addr: SocketAddr,
    state: Mutex<State>,
}

struct State {
    /// By id.
    webhooks: BTreeMap<String, Webhook>,
    messages: Vec<WebhookMessage>,
    requests: Vec<RecordedRequest>,
    faults: Faults,
    per_webhook: Option<Windows>,
    global: Option<Windows>,
    last_snowflake: u64,
}

impl State {
    /// A snowflake for now (wall clock), unique and increasing.
    fn next_snowflake(&mut self) -> String {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
            .saturating_sub(DISCORD_EPOCH_MS);
        let id = (ms << 22).max(self.last_snowflake.saturating_add(1));
        self.last_snowflake = id;
        id.to_string()
    }
}

impl Shared {
    pub(crate) fn new(config: StandinConfig, addr: SocketAddr) -> Shared {
        let shared = Shared {
            state: Mutex::new(State {
                webhooks: BTreeMap::new(),
                messages: Vec::new(),
                requests: Vec::new(),
                faults: Faults::default(),
                per_webhook: config.webhook_rate_limit.map(Windows::new),
                global: config.global_rate_limit.map(Windows::new),
                last_snowflake: 0,
            }),
            config,
            addr,
        };
        shared.seed_default_webhook();
        shared
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn seed_default_webhook(&self) {
        let webhook = self.webhook(
            DEFAULT_WEBHOOK_ID,
            DEFAULT_WEBHOOK_TOKEN,
            DEFAULT_WEBHOOK_NAME,
            DEFAULT_CHANNEL_ID,
        );
        self.lock().webhooks.insert(webhook.id.clone(), webhook);
    }

    fn webhook(&self, id: &str, token: &str, name: &str, channel_id: &str) -> Webhook {
        Webhook {
            id: id.to_owned(),
            token: token.to_owned(),
            name: name.to_owned(),
            channel_id: channel_id.to_owned(),
            guild_id: GUILD_ID.to_owned(),
            url: format!("{}/webhooks/{id}/{token}", self.api_url()),
        }
    }

    /// `http://ADDR/api/v10`.
    pub(crate) fn api_url(&self) -> String {
        format!("http://{}/api/v10", self.addr)
    }

    /// A new webhook in a channel of its own, with a random 68-character token.
    pub(crate) fn create_webhook(&self, name: &str) -> Webhook {
        let mut state = self.lock();
        let id = state.next_snowflake();
        let channel_id = state.next_snowflake();
        let token = Alphanumeric.sample_string(&mut rand::rng(), 68);
        let webhook = self.webhook(&id, &token, name, &channel_id);
        state.webhooks.insert(id, webhook.clone());
        webhook
    }

    pub(crate) fn delete_webhook(&self, id: &str) -> bool {
        self.lock().webhooks.remove(id).is_some()
    }

    pub(crate) fn default_webhook(&self) -> Option<Webhook> {
        self.lock().webhooks.get(DEFAULT_WEBHOOK_ID).cloned()
    }

    pub(crate) fn webhooks(&self) -> Vec<Webhook> {
        self.lock().webhooks.values().cloned().collect()
    }

    /// Get Webhook with Token: the webhook object, without `user`.
    pub(crate) fn get_webhook(&self, id: &str, token: &str) -> Reply {
        let state = self.lock();
        match find(&state, id, token) {
            Ok(webhook) => Reply::json(
                200,
                json!({
                    "type": 1,
                    "id": webhook.id,
                    "name": webhook.name,
                    "avatar": null,
                    "channel_id": webhook.channel_id,
                    "guild_id": webhook.guild_id,
                    "application_id": null,
                    "token": webhook.token,
                }),
            ),
            Err(reply) => reply,
        }
    }

    /// The checks before a request is handled: the webhook exists, then the first fault
    /// that is not an accept-then one.
    pub(crate) fn before(&self, id: &str, token: &str, arrived: Instant) -> Before {
        let mut guard = self.lock();
        let state = &mut *guard;
        if let Err(reply) = find(state, id, token) {
            record(state, id, arrived, &reply, None);
            drop(guard);
            log_answer(id, &reply);
            return Before::Answer(reply);
        }
        let reply = match state.faults.take(id, false) {
            None => return Before::Go,
            Some(FaultKind::Delay(delay)) => return Before::Wait(delay),
            Some(FaultKind::HttpStatus(status)) => {
                let reply = Reply::server_error(status);
                match (&reply.body, &state.per_webhook) {
                    (Body::Json(_), Some(windows)) => {
                        reply.with_quota(windows.peek(&bucket_key(id, token), arrived))
                    }
                    _ => reply,
                }
            }
            Some(FaultKind::RateLimited {
                retry_after,
                global,
            }) => {
                let scope = if global { Scope::Global } else { Scope::User };
                let quota = state
                    .per_webhook
                    .as_ref()
                    .filter(|_| !global)
                    .map(|windows| Quota {
                        remaining: 0,
                        reset_after: retry_after,
                        ..windows.peek(&bucket_key(id, token), arrived)
                    });
                Reply::rate_limited(retry_after, scope, quota)
            }
            // Accept-then kinds are never taken here.
            Some(FaultKind::AcceptThenStatus(_) | FaultKind::AcceptThenDelay(_)) => {
                return Before::Go
            }
        };
        record(state, id, arrived, &reply, None);
        drop(guard);
        log_answer(id, &reply);
        Before::Answer(reply)
    }

    /// Execute Webhook: rate limits, then the body's rules; stores an accepted message and
    /// applies an accept-then fault to its answer.
    pub(crate) fn execute(
        &self,
        id: &str,
        token: &str,
        query: Option<&str>,
        body: &[u8],
        arrived: Instant,
    ) -> Outcome {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let (reply, message, delay) = match self.decide(state, id, token, query, body, now) {
            Ok((message, reply)) => {
                let mut reply = reply;
                let mut delay = None;
                match state.faults.take(id, true) {
                    Some(FaultKind::AcceptThenStatus(status)) => {
                        reply = Reply::server_error(status);
                    }
                    Some(FaultKind::AcceptThenDelay(wait)) => delay = Some(wait),
                    _ => {}
                }
                let message = WebhookMessage {
                    at: arrived,
                    ..message
                };
                (reply, Some(message), delay)
            }
            Err(reply) => (reply, None, None),
        };
        record(
            state,
            id,
            arrived,
            &reply,
            message.as_ref().map(|m| m.id.clone()),
        );
        if let Some(message) = &message {
            state.messages.push(message.clone());
        }
        drop(guard);

        log_answer(id, &reply);
        if let (Some(message), true) = (&message, self.config.print_messages) {
            print_message(message);
        }
        Outcome { reply, delay }
    }

    fn decide(
        &self,
        state: &mut State,
        id: &str,
        token: &str,
        query: Option<&str>,
        body: &[u8],
        now: Instant,
    ) -> Result<(WebhookMessage, Reply), Reply> {
        let webhook = find(state, id, token)?.clone();
        let key = bucket_key(id, token);
        // The global limit counts every request; a request it refuses counts nowhere else.
        if let Some(global) = &mut state.global {
            if let Err(quota) = global.take("global", now) {
                return Err(Reply::rate_limited(quota.reset_after, Scope::Global, None));
            }
        }
        let quota = match &mut state.per_webhook {
            Some(windows) => match windows.take(&key, now) {
                Ok(quota) => Some(quota),
                Err(quota) => {
                    return Err(Reply::rate_limited(
                        quota.reset_after,
                        Scope::User,
                        Some(quota),
                    ))
                }
            },
            None => None,
        };
        let with_quota = |reply: Reply| match quota {
            Some(quota) => reply.with_quota(quota),
            None => reply,
        };

        let query = Query::parse(query).map_err(|errors| with_quota(Reply::form(errors)))?;
        let body = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            _ => return Err(with_quota(Reply::invalid_json())),
        };
        let parsed = match validate::message(&body, &self.config.default_parse) {
            Ok(parsed) => parsed,
            Err(Invalid::Form(errors)) => return Err(with_quota(Reply::form(errors))),
            Err(Invalid::Empty) => return Err(with_quota(Reply::empty_message())),
        };
        let message = self.message(state, &webhook, parsed, body, &query, now);
        let reply = if query.wait {
            Reply::json(200, message_json(&message, &webhook))
        } else {
            Reply::no_content()
        };
        Ok((message, with_quota(reply)))
    }

    fn message(
        &self,
        state: &mut State,
        webhook: &Webhook,
        parsed: Parsed,
        body: Map<String, Value>,
        query: &Query,
        now: Instant,
    ) -> WebhookMessage {
        let pings = parsed
            .content
            .as_deref()
            .map(|content| parsed.allowed.pings(content))
            .unwrap_or_default();
        WebhookMessage {
            id: state.next_snowflake(),
            webhook_id: webhook.id.clone(),
            channel_id: query
                .thread_id
                .clone()
                .unwrap_or_else(|| webhook.channel_id.clone()),
            thread_id: query.thread_id.clone(),
            content: parsed.content,
            username: parsed.username,
            avatar_url: parsed.avatar_url,
            tts: parsed.tts,
            embeds: parsed.embeds,
            flags: parsed.flags,
            allowed_mentions: body.get("allowed_mentions").cloned(),
            body: Value::Object(body),
            waited: query.wait,
            pings,
            at: now,
            timestamp: timestamp(),
        }
    }

    pub(crate) fn messages(&self, webhook_id: Option<&str>) -> Vec<WebhookMessage> {
        self.lock()
            .messages
            .iter()
            .filter(|m| webhook_id.is_none_or(|id| m.webhook_id == id))
            .cloned()
            .collect()
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Forgets messages, requests, faults, rate-limit state and created webhooks; the default
    /// webhook comes back if it was deleted.
    pub(crate) fn reset(&self) {
        {
            let mut state = self.lock();
            state.webhooks.clear();
            state.messages.clear();
            state.requests.clear();
            state.faults.clear();
            if let Some(windows) = &mut state.per_webhook {
                windows.clear();
            }
            if let Some(windows) = &mut state.global {
                windows.clear();
            }
        }
        self.seed_default_webhook();
    }
}

/// The webhook at `id` if `token` is its token: an id that is no snowflake is a form error,
/// an unknown id `Unknown Webhook`, a wrong token `Invalid Webhook Token`.
fn find<'s>(state: &'s State, id: &str, token: &str) -> Result<&'s Webhook, Reply> {
    if !is_snowflake(id) {
        return Err(Reply::not_snowflake(id));
    }
    let webhook = state.webhooks.get(id).ok_or_else(Reply::unknown_webhook)?;
    if webhook.token == token {
        Ok(webhook)
    } else {
        Err(Reply::invalid_token())
    }
}

/// Discord keys webhook limits by `webhook_id + webhook_token`.
fn bucket_key(id: &str, token: &str) -> String {
    format!("{id}/{token}")
}

fn record(state: &mut State, id: &str, at: Instant, reply: &Reply, message_id: Option<String>) {
    state.requests.push(RecordedRequest {
        webhook_id: id.to_owned(),
        at,
        status: reply.status,
        code: reply.code(),
        message_id,
    });
}

fn log_answer(id: &str, reply: &Reply) {
    tracing::info!(
        webhook_id = id,
        status = reply.status,
        code = reply.code().unwrap_or(0),
        "execute webhook answered"
    );
}

/// Execute Webhook's query string.
#[derive(Debug, Default)]
struct Query {
    wait: bool,
    thread_id: Option<String>,
}

impl Query {
    /// Booleans as Discord reads them: `True`, `true`, `1` / `False`, `false`, `0`
    /// (<https://discord.com/developers/docs/reference#boolean-query-strings>).
    fn parse(query: Option<&str>) -> Result<Query, FormErrors> {
        let mut parsed = Query::default();
        let mut errors = FormErrors::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "wait" => match value {
                    "True" | "true" | "1" => parsed.wait = true,
                    "False" | "false" | "0" => parsed.wait = false,
                    _ => errors.add(
                        &["wait"],
                        "BASE_TYPE_BOOLEAN",
                        "Must be either true or false.",
                    ),
                },
                "thread_id" if is_snowflake(value) => parsed.thread_id = Some(value.to_owned()),
                "thread_id" => errors.add(
                    &["thread_id"],
                    "NUMBER_TYPE_COERCE",
                    format!("Value \"{value}\" is not snowflake."),
                ),
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(errors)
        }
    }
}

/// The message object Execute Webhook answers with `wait=true`
/// (<https://discord.com/developers/docs/resources/message#message-object>).
pub(crate) fn message_json(message: &WebhookMessage, webhook: &Webhook) -> Value {
    let embeds: Vec<Value> = message
        .embeds
        .iter()
        .map(|embed| {
            let mut embed = embed.clone();
            if let Value::Object(map) = &mut embed {
                // "type ... will be rich regardless of if you try to set it".
                map.insert("type".to_owned(), Value::String("rich".to_owned()));
            }
            embed
        })
        .collect();
    json!({
        "id": message.id,
        "type": 0,
        "content": message.content.clone().unwrap_or_default(),
        "channel_id": message.channel_id,
        "author": {
            "id": webhook.id,
            "username": message.username.clone().unwrap_or_else(|| webhook.name.clone()),
            "avatar": null,
            "discriminator": "0000",
            "bot": true,
        },
        "attachments": [],
        "embeds": embeds,
        "mentions": message.pings.users.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        "mention_roles": message.pings.roles,
        "mention_everyone": message.pings.everyone || message.pings.here,
        "pinned": false,
        "tts": message.tts,
        "timestamp": message.timestamp,
        "edited_timestamp": null,
        "flags": message.flags,
        "components": [],
        "webhook_id": message.webhook_id,
    })
}

/// ISO 8601 with microseconds and `+00:00`, as Discord writes timestamps.
fn timestamp() -> String {
    OffsetDateTime::now_utc()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
        ))
        .unwrap_or_default()
}

/// A few lines on stdout: who posted where, the content's first line, embed titles, pings.
/// Never the token.
fn print_message(message: &WebhookMessage) {
    let mut out = String::new();
    let who = message.username.as_deref().unwrap_or("webhook");
    let first = message
        .content
        .as_deref()
        .and_then(|c| c.lines().next())
        .unwrap_or("");
    let first: String = first.chars().take(120).collect();
    out.push_str(&format!(
        "discord webhook {} · {who}: {first}\n",
        message.webhook_id
    ));
    for embed in &message.embeds {
        let title = embed
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("(embed)");
        let title: String = title.chars().take(120).collect();
        out.push_str(&format!("  ▌ {title}\n"));
    }
    let pings = describe(&message.pings);
    out.push_str(&format!("  pings: {pings}\n"));
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

fn describe(pings: &Pings) -> String {
    let mut parts = Vec::new();
    if pings.everyone {
        parts.push("@everyone".to_owned());
    }
    if pings.here {
        parts.push("@here".to_owned());
    }
    parts.extend(pings.users.iter().map(|id| format!("<@{id}>")));
    parts.extend(pings.roles.iter().map(|id| format!("<@&{id}>")));
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn wait_reads_discords_boolean_spellings() {
        for yes in ["wait=true", "wait=True", "wait=1", "x=1&wait=true"] {
            assert!(Query::parse(Some(yes)).unwrap().wait, "{yes}");
        }
        for no in ["", "wait=false", "wait=False", "wait=0"] {
            assert!(!Query::parse(Some(no)).unwrap().wait, "{no}");
        }
        assert!(Query::parse(Some("wait=yes")).is_err());
    }

    #[test]
    fn snowflakes_increase_and_carry_the_time() {
        let shared = Shared::new(
            StandinConfig::default(),
            SocketAddr::from(([127, 0, 0, 1], 1)),
        );
        let mut state = shared.lock();
        let a: u64 = state.next_snowflake().parse().unwrap();
        let b: u64 = state.next_snowflake().parse().unwrap();
        assert!(b > a);
        // After 2024-01-01 in Discord's epoch.
        assert!((a >> 22) + DISCORD_EPOCH_MS > 1_704_067_200_000);
    }

    #[test]
    fn timestamps_look_like_discords() {
        let ts = timestamp();
        assert_eq!(ts.len(), "2024-01-01T00:00:00.000000+00:00".len(), "{ts}");
        assert!(ts.ends_with("+00:00"));
    }
}
