//! The slack-delivery function: messages from the Slack FIFO queue to chat.postMessage,
//! with every promise of DESIGN.md.
//!
//! - **Order.** A group (one workspace + channel) is processed in order; at its first
//!   failure that message and every later one of the group go back to SQS together, with a
//!   visibility timeout saying when to try again.
//! - **Nothing lost.** A message is deleted only when Slack took it or when it was parked in
//!   the DLQ with its reason (refused by Slack, its channel or workspace paused, or older
//!   than the age limit).
//! - **No duplicates.** The delivery ledger claims each (event, pipeline, destination) key
//!   before posting; after an uncertain outcome the channel's history is searched for the
//!   key (carried in message metadata) before posting again. So that history can be read,
//!   the bot joins a public channel before its first post there (it may post without
//!   joining, with `chat:write.public`, but not read). A channel whose history Slack will
//!   not show is paused at once with what to do; a check that cannot tell yet (Slack
//!   unreachable, more messages since the attempt than the look-back reads) waits and
//!   tries again, never posting on a guess.
//! - **Paced.** Each channel's next posting slot lives in DynamoDB, taken with a conditional
//!   write, so all instances together post at most once per interval; a 429 moves the slot
//!   to exactly Retry-After. Short waits are slept here, long ones go back to SQS.
//! - **Digests.** When enough of a channel's messages wait in one batch, they go out as one
//!   digest; a digest Slack refuses is split back into single posts.

pub mod channel_state;
pub mod digest;
pub mod ledger;
pub mod message;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use secrecy::SecretString;

use crate::aws::sqs::{send_all, Outgoing};
use crate::config::DeliveryConfig;
use crate::delivery::channel_state::{Channels, Gate, Membership, Pause};
use crate::delivery::digest::{digest, DigestItem, DIGEST_MAX};
use crate::delivery::ledger::{Entry, Ledger};
use crate::delivery::message::Delivery;
use crate::slack::answers::{classify, history_hint, operator_hint, Action};
use crate::slack::client::{HistoryCheck, Join, PostMessage, SlackClient};
use crate::slack::oauth::{OAuthClient, SlackAppSource};
use crate::slack::tokens::{TokenError, TokenSource, WorkspaceTokens};
use crate::slack::workspaces::Connections;

/// Seconds before retry n (by receive count) of a transient failure; jittered ±20 %.
pub const RETRY_SCHEDULE: &[u64] = &[1, 2, 5, 10, 30, 60, 120, 300, 600, 900];
/// SQS's longest visibility timeout.
const MAX_VISIBILITY: u64 = 43_200;

/// Message attributes a parked message carries in the DLQ.
pub mod park_attr {
    pub const REASON: &str = "ingestlayer_park_reason";
    pub const EVENT_ID: &str = "ingestlayer_event_id";
    pub const PIPELINE_ID: &str = "ingestlayer_pipeline_id";
    pub const CHANNEL: &str = "ingestlayer_channel";
}

/// What the delivery handler holds across invocations.
pub struct DeliveryDeps {
    pub slack: SlackClient,
    pub tokens: WorkspaceTokens,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub ledger: Ledger,
    pub channels: Channels,
    /// A message still undelivered this long after it was queued is parked.
    pub max_age: Duration,
    /// Pacing waits up to this long happen in process; longer ones go back to SQS.
    pub max_inline_wait: Duration,
    /// Seconds before retry n of a transient failure (by receive count; the last repeats).
    pub retry_schedule: Vec<u64>,
    /// Groups whose membership this instance already settled (joined, invite-only, or
    /// not joinable), so the channels table is read once per instance and channel.
    settled: Mutex<HashSet<String>>,
}

impl DeliveryDeps {
    /// The one constructor, used by the Lambda's main.rs, `make dev` and the tests: the
    /// clients, and token rotation when the Slack app's secret is configured. The app secret
    /// is read when a refresh is due, so a placeholder secret is a clear state then (the
    /// workspace pauses with the fix), never a cold-start failure.
    pub async fn load(sdk: &aws_config::SdkConfig, cfg: &DeliveryConfig) -> Result<Self, String> {
        let mut deps = Self::clients(sdk, cfg).map_err(|e| e.to_string())?;
        if let Some(arn) = &cfg.slack_app_secret_arn {
            let client = OAuthClient::new(&cfg.slack_api_url).map_err(|e| e.to_string())?;
            deps.tokens.set_app_source(
                client,
                std::sync::Arc::new(SlackAppSource::secret(
                    aws_sdk_secretsmanager::Client::new(sdk),
                    arn.clone(),
                )),
            );
        }
        Ok(deps)
    }

    fn clients(sdk: &aws_config::SdkConfig, cfg: &DeliveryConfig) -> Result<Self, reqwest::Error> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let connections = cfg.connections_table.as_ref().map(|table| Connections {
            dynamo: dynamo.clone(),
            table: table.clone(),
            secrets: secrets.clone(),
            secret_prefix: cfg.token_secret_prefix.clone(),
            kms_key_id: cfg.kms_key_id.clone().unwrap_or_default(),
        });
        Ok(Self {
            slack: SlackClient::new(&cfg.slack_api_url, cfg.slack_timeout)?,
            tokens: WorkspaceTokens::new(
                TokenSource::new(cfg.token.clone(), secrets),
                connections,
                None,
            ),
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: cfg.slack_queue_url.clone(),
            dlq_url: cfg.slack_dlq_url.clone(),
            ledger: Ledger {
                client: dynamo.clone(),
                table: cfg.deliveries_table.clone(),
            },
            channels: Channels {
                client: dynamo,
                table: cfg.channels_table.clone(),
            },
            max_age: cfg.max_age,
            max_inline_wait: MAX_INLINE_WAIT,
            retry_schedule: RETRY_SCHEDULE.to_vec(),
            settled: Mutex::new(HashSet::new()),
        })
    }
}

/// Pacing waits up to this long are slept in process.
pub const MAX_INLINE_WAIT: Duration = Duration::from_millis(2500);

/// What happened to one message, for the batch response and the visibility changes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Done,
    /// Try again after this long; the rest of the group waits with it.
    Later(Duration),
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A parsed message of the batch.
struct Item<'r> {
    record: &'r SqsMessage,
    delivery: Delivery,
    key: String,
}

/// Handles one batch from the Slack FIFO queue: each group (workspace + channel) in
/// order, groups one after another.
pub async fn handle(event: SqsEvent, deps: &DeliveryDeps) -> SqsBatchResponse {
    let mut groups: Vec<(String, Vec<&SqsMessage>)> = Vec::new();
    for record in &event.records {
        let group = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, list)) => list.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    let mut team_pauses: HashMap<String, Option<Pause>> = HashMap::new();
    let mut fates: Vec<(&SqsMessage, Fate)> = Vec::new();
    for (group, records) in &groups {
        let span = tracing::info_span!("group", group = %group, messages = records.len());
        let _enter = span.enter();
        fates.extend(process_group(group, records, deps, &mut team_pauses).await);
    }
    let mut failures = Vec::new();
    let mut later = Vec::new();
    for (record, fate) in fates {
        if let Fate::Later(d) = fate {
            failures.push(record.message_id.clone().unwrap_or_default());
            if let Some(h) = &record.receipt_handle {
                later.push((h.clone(), d));
            }
        }
    }
    hand_back(deps, &later).await;
    crate::aws::sqs::batch_response(failures)
}

async fn process_group<'r>(
    group: &str,
    records: &[&'r SqsMessage],
    deps: &DeliveryDeps,
    team_pauses: &mut HashMap<String, Option<Pause>>,
) -> Vec<(&'r SqsMessage, Fate)> {
    let mut out: Vec<(&'r SqsMessage, Fate)> = Vec::new();
    let team = group.split(':').next().unwrap_or_default().to_owned();
    let rest_later = |from: &[&'r SqsMessage], d: Duration| {
        from.iter()
            .map(|r| (*r, Fate::Later(d)))
            .collect::<Vec<_>>()
    };

    // A paused workspace: its messages wait in the DLQ with the reason.
    let pause = match team_pauses.get(&team) {
        Some(p) => p.clone(),
        None => match deps.channels.workspace_pause(&team).await {
            Ok(p) => {
                team_pauses.insert(team.clone(), p.clone());
                p
            }
            Err(e) => {
                tracing::warn!(error = %e, outcome = "retry", "could not read workspace state");
                return rest_later(records, Duration::from_secs(5));
            }
        },
    };
    if let Some(p) = pause {
        for r in records {
            let reason = pause_reason("team#", &p);
            let fate = park(r, parse(r).ok().as_ref(), &reason, deps).await;
            out.push((*r, fate));
        }
        return out;
    }

    // Parse, check age and the ledger, in order.
    let mut pending: Vec<Item<'r>> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let delivery = match parse(r) {
            Ok(d) => d,
            Err(reason) => {
                out.push((*r, park(r, None, &reason, deps).await));
                continue;
            }
        };
        let key = delivery.key();
        if let Some(age) = age(r) {
            if age > deps.max_age {
                let reason = format!(
                    "not delivered within {} of being queued; gave up",
                    human(deps.max_age)
                );
                out.push((*r, park(r, Some(&delivery), &reason, deps).await));
                continue;
            }
        }
        match deps.ledger.begin(&key, now_ms()).await {
            Ok(Entry::Clear) => pending.push(Item {
                record: r,
                delivery,
                key,
            }),
            Ok(Entry::Delivered { ts }) => {
                tracing::info!(event_id = %delivery.event_id, ts = %ts, outcome = "already_delivered", "already posted; acknowledged without posting again");
                out.push((*r, Fate::Done));
            }
            Ok(Entry::Uncertain { since_ms }) => {
                match history_check(&delivery, group, &key, since_ms, deps).await {
                    HistoryCheck::Found(ts) => {
                        tracing::info!(event_id = %delivery.event_id, ts = %ts, outcome = "already_delivered", "found in the channel's history after an uncertain attempt; not posting again");
                        if let Err(e) = deps.ledger.delivered(&key, &ts, None).await {
                            tracing::warn!(error = %e, "could not record the delivery");
                        }
                        out.push((*r, Fate::Done));
                    }
                    HistoryCheck::NotFound => pending.push(Item {
                        record: r,
                        delivery,
                        key,
                    }),
                    HistoryCheck::Refused(error) => {
                        // Retrying cannot tell either: surface it now, keep the backlog.
                        let hint = history_hint(&error, &delivery.channel);
                        tracing::error!(event_id = %delivery.event_id, channel = %delivery.channel, slack_error = %error, action = %hint, outcome = "pause_channel", "cannot tell whether an earlier attempt posted: Slack will not show the channel's history; channel paused");
                        let pause = Pause { error, hint };
                        release(deps, &pending).await;
                        let pk = crate::delivery::channel_state::channel_pk(group);
                        if let Err(e) = deps.channels.pause(&pk, &pause, &now_text()).await {
                            tracing::warn!(error = %e, "could not record the pause; the messages are parked anyway");
                        }
                        let reason = pause_reason(&pk, &pause);
                        for it in &pending {
                            let fate = park(it.record, Some(&it.delivery), &reason, deps).await;
                            out.push((it.record, fate));
                        }
                        for r in &records[i..] {
                            let fate = park(r, parse(r).ok().as_ref(), &reason, deps).await;
                            out.push((*r, fate));
                        }
                        return out;
                    }
                    HistoryCheck::Unavailable(e) => {
                        let d = retry_delay(receive_count(r), &deps.retry_schedule);
                        tracing::warn!(event_id = %delivery.event_id, error = %e, retry_in_s = d.as_secs(), outcome = "retry", "cannot tell whether an earlier attempt posted; waiting rather than risking a duplicate");
                        release(deps, &pending).await;
                        out.extend(pending.iter().map(|it| (it.record, Fate::Later(d))));
                        out.extend(rest_later(&records[i..], d));
                        return out;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, outcome = "retry", "delivery ledger unavailable");
                release(deps, &pending).await;
                out.extend(
                    pending
                        .iter()
                        .map(|it| (it.record, Fate::Later(Duration::from_secs(5)))),
                );
                out.extend(rest_later(&records[i..], Duration::from_secs(5)));
                return out;
            }
        }
    }
    if pending.is_empty() {
        return out;
    }

    // Digest when enough messages of the channel wait; otherwise one post each.
    let threshold = pending[0].delivery.digest_threshold;
    let mut units: std::collections::VecDeque<Vec<Item<'r>>> =
        if threshold >= 2 && pending.len() >= threshold {
            let mut units = std::collections::VecDeque::new();
            let mut current = Vec::new();
            for item in pending {
                current.push(item);
                if current.len() == DIGEST_MAX {
                    units.push_back(std::mem::take(&mut current));
                }
            }
            if !current.is_empty() {
                units.push_back(current);
            }
            units
        } else {
            pending.into_iter().map(|i| vec![i]).collect()
        };

    while let Some(unit) = units.pop_front() {
        let interval = paced_interval(unit[0].delivery.min_interval_ms);
        // Before taking a slot, so the time between slot and post stays short. A token
        // failure is handled after the slot, as for the post.
        if let Ok(token) = deps.tokens.token(&team).await {
            ensure_member(group, &unit[0].delivery.channel, &token, deps).await;
        }
        // Wait for the channel's slot.
        let gate = loop {
            match deps.channels.acquire(group, interval, now_ms()).await {
                Ok(Gate::Wait(d)) if d <= deps.max_inline_wait => tokio::time::sleep(d).await,
                Ok(g) => break Ok(g),
                Err(e) => break Err(e),
            }
        };
        match gate {
            Ok(Gate::Go) => {}
            Ok(Gate::Wait(d)) => {
                tracing::info!(
                    wait_ms = d.as_millis() as u64,
                    outcome = "paced",
                    "channel busy; the rest of its messages wait in the queue"
                );
                let rest: Vec<Item<'r>> =
                    unit.into_iter().chain(units.drain(..).flatten()).collect();
                defer_all(&rest, d, deps, &mut out).await;
                return out;
            }
            Ok(Gate::Paused(p)) => {
                let reason = pause_reason("chan#", &p);
                let rest: Vec<Item<'r>> =
                    unit.into_iter().chain(units.drain(..).flatten()).collect();
                park_all(&rest, &reason, deps, &mut out).await;
                return out;
            }
            Err(e) => {
                tracing::warn!(error = %e, outcome = "retry", "channel state unavailable");
                let rest: Vec<Item<'r>> =
                    unit.into_iter().chain(units.drain(..).flatten()).collect();
                defer_all(&rest, Duration::from_secs(5), deps, &mut out).await;
                return out;
            }
        }

        let token = match deps.tokens.token(&team).await {
            Ok(t) => t,
            Err(
                e @ (TokenError::NotConnected(_)
                | TokenError::Revoked(_)
                | TokenError::App(crate::slack::oauth::AppError::NotConfigured(_))),
            ) => {
                let hint = e.to_string();
                tracing::error!(team = %team, action = %hint, outcome = "pause_workspace", "workspace has no usable token; its backlog waits in the DLQ");
                let error = match e {
                    TokenError::App(_) => "app_not_configured",
                    _ => "not_connected",
                };
                let pause = Pause {
                    error: error.into(),
                    hint,
                };
                team_pauses.insert(team.clone(), Some(pause.clone()));
                let rest: Vec<Item<'r>> =
                    unit.into_iter().chain(units.drain(..).flatten()).collect();
                pause_and_park(
                    &crate::delivery::channel_state::team_pk(&team),
                    &pause,
                    &rest,
                    deps,
                    &mut out,
                )
                .await;
                return out;
            }
            Err(e) => {
                tracing::error!(error = %e, outcome = "retry", "no Slack token; the workspace's messages wait");
                let rest: Vec<Item<'r>> =
                    unit.into_iter().chain(units.drain(..).flatten()).collect();
                defer_all(&rest, Duration::from_secs(60), deps, &mut out).await;
                return out;
            }
        };
        let (answer, channel) = post_unit(&unit, &token, deps).await;
        let first = &unit[0].delivery;
        let event_ids: Vec<&str> = unit.iter().map(|i| i.delivery.event_id.as_str()).collect();
        match classify(&answer) {
            Action::Delivered {
                ts,
                channel: channel_id,
            } => {
                for item in &unit {
                    if let Err(e) = deps
                        .ledger
                        .delivered(&item.key, &ts, channel_id.as_deref())
                        .await
                    {
                        tracing::warn!(event_id = %item.delivery.event_id, error = %e, "posted, but the ledger could not record it");
                    }
                    out.push((item.record, Fate::Done));
                }
                if let Some(id) = channel_id.filter(|id| *id != channel) {
                    let _ = deps.channels.set_channel_id(group, &id).await;
                }
                tracing::info!(event_ids = ?event_ids, pipeline = %first.pipeline_id, channel = %first.channel, ts = %ts, digest = unit.len() > 1, outcome = "delivered", "posted to Slack");
            }
            Action::WaitRetryAfter(d) => {
                tracing::warn!(channel = %first.channel, retry_after_s = d.as_secs(), outcome = "rate_limited", "Slack rate-limited the channel; it is silent for exactly Retry-After");
                let _ = deps
                    .channels
                    .hold_until(group, now_ms() + d.as_millis() as i64)
                    .await;
                let rest: Vec<Item<'r>> =
                    unit.into_iter().chain(units.drain(..).flatten()).collect();
                defer_all(&rest, d, deps, &mut out).await;
                return out;
            }
            Action::Retry {
                reason,
                maybe_posted,
            } => {
                let d = retry_delay(receive_count(unit[0].record), &deps.retry_schedule);
                tracing::warn!(event_ids = ?event_ids, channel = %first.channel, reason = %reason, maybe_posted, retry_in_s = d.as_secs(), outcome = "retry", "transient Slack failure; will retry");
                let (tried, rest): (Vec<Item<'r>>, Vec<Item<'r>>) =
                    (unit, units.drain(..).flatten().collect());
                if !maybe_posted {
                    release(deps, &tried).await;
                }
                release(deps, &rest).await;
                out.extend(
                    tried
                        .iter()
                        .chain(&rest)
                        .map(|i| (i.record, Fate::Later(d))),
                );
                return out;
            }
            Action::Park { reason } if unit.len() > 1 => {
                tracing::warn!(reason = %reason, outcome = "split_digest", "Slack refused the digest; posting its messages one by one");
                for item in unit.into_iter().rev() {
                    units.push_front(vec![item]);
                }
            }
            Action::Park { reason } => {
                park_all(&unit, &reason, deps, &mut out).await;
            }
            Action::PauseChannel { error } => {
                let hint = operator_hint(&error, &first.channel);
                tracing::error!(channel = %first.channel, slack_error = %error, action = %hint, outcome = "pause_channel", "channel paused; its backlog waits in the DLQ");
                let pause = Pause { error, hint };
                let rest: Vec<Item<'r>> =
                    unit.into_iter().chain(units.drain(..).flatten()).collect();
                pause_and_park(
                    &crate::delivery::channel_state::channel_pk(group),
                    &pause,
                    &rest,
                    deps,
                    &mut out,
                )
                .await;
                return out;
            }
            Action::PauseWorkspace { error } => {
                let hint = operator_hint(&error, &first.channel);
                tracing::error!(team = %first.team, slack_error = %error, action = %hint, outcome = "pause_workspace", "workspace paused; its backlog waits in the DLQ");
                let pause = Pause { error, hint };
                // The token no longer works: read it again once the workspace is reconnected.
                deps.tokens.invalidate(&team).await;
                team_pauses.insert(team.clone(), Some(pause.clone()));
                let rest: Vec<Item<'r>> =
                    unit.into_iter().chain(units.drain(..).flatten()).collect();
                pause_and_park(
                    &crate::delivery::channel_state::team_pk(&team),
                    &pause,
                    &rest,
                    deps,
                    &mut out,
                )
                .await;
                return out;
            }
        }
    }
    out
}

/// The slot length for a channel: its interval plus a margin (5 % + 50 ms) for the
/// latency between taking a slot and Slack receiving the post, so that posts never
/// arrive closer together than the interval.
fn paced_interval(min_interval_ms: u64) -> Duration {
    Duration::from_millis(min_interval_ms + min_interval_ms / 20 + 50)
}

fn parse(r: &SqsMessage) -> Result<Delivery, String> {
    match r.body.as_deref().map(serde_json::from_str::<Delivery>) {
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(format!("unreadable delivery message: {e}")),
        None => Err("delivery message has no body".into()),
    }
}

fn receive_count(r: &SqsMessage) -> usize {
    r.attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// How long ago the message was first sent to the queue.
fn age(r: &SqsMessage) -> Option<Duration> {
    let sent: i64 = r.attributes.get("SentTimestamp")?.parse().ok()?;
    Some(Duration::from_millis((now_ms() - sent).max(0) as u64))
}

fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Marks items that were claimed but not tried as certainly not posted.
async fn release(deps: &DeliveryDeps, items: &[Item<'_>]) {
    for item in items {
        if let Err(e) = deps.ledger.not_posted(&item.key).await {
            tracing::warn!(event_id = %item.delivery.event_id, error = %e, "could not release the ledger entry; the next attempt checks history first");
        }
    }
}

/// The park reason for messages of a paused channel (`chan#…`) or workspace (`team#…`).
fn pause_reason(pk: &str, p: &Pause) -> String {
    let scope = if pk.starts_with("team#") {
        "workspace"
    } else {
        "channel"
    };
    format!("{scope} paused ({}): {}", p.error, p.hint)
}

/// Records the pause of a channel or workspace (`pk`) and parks its waiting messages with
/// the reason, where they wait for the fix and a redrive.
async fn pause_and_park<'r>(
    pk: &str,
    pause: &Pause,
    items: &[Item<'r>],
    deps: &DeliveryDeps,
    out: &mut Vec<(&'r SqsMessage, Fate)>,
) {
    if let Err(e) = deps.channels.pause(pk, pause, &now_text()).await {
        tracing::warn!(error = %e, "could not record the pause; the messages are parked anyway");
    }
    park_all(items, &pause_reason(pk, pause), deps, out).await;
}

/// Hands claimed but untried messages back to SQS, to come back after `d`.
async fn defer_all<'r>(
    items: &[Item<'r>],
    d: Duration,
    deps: &DeliveryDeps,
    out: &mut Vec<(&'r SqsMessage, Fate)>,
) {
    release(deps, items).await;
    out.extend(items.iter().map(|i| (i.record, Fate::Later(d))));
}

async fn park_all<'r>(
    items: &[Item<'r>],
    reason: &str,
    deps: &DeliveryDeps,
    out: &mut Vec<(&'r SqsMessage, Fate)>,
) {
    release(deps, items).await;
    for item in items {
        let fate = park(item.record, Some(&item.delivery), reason, deps).await;
        out.push((item.record, fate));
    }
}

async fn history_check(
    delivery: &Delivery,
    group: &str,
    key: &str,
    since_ms: i64,
    deps: &DeliveryDeps,
) -> HistoryCheck {
    let token = match deps.tokens.token(&delivery.team).await {
        Ok(t) => t,
        Err(e) => return HistoryCheck::Unavailable(e.to_string()),
    };
    let token = &token;
    let channel = match deps.channels.channel_id(group).await {
        Ok(Some(id)) => id,
        Ok(None) if delivery.channel.starts_with('#') => {
            // History takes channel ids: resolve the name the pipeline uses.
            match deps.slack.resolve_channel(token, &delivery.channel).await {
                Ok(Some(id)) => {
                    let _ = deps.channels.set_channel_id(group, &id).await;
                    id
                }
                // No such channel among those the bot can see: nothing can have been
                // posted to it. (A channel the bot was removed from after posting is
                // checked by the id recorded when it was in, and answers not_in_channel.)
                Ok(None) => return HistoryCheck::NotFound,
                Err(e) => return HistoryCheck::Unavailable(e.to_string()),
            }
        }
        Ok(None) => delivery.channel.clone(),
        Err(e) => return HistoryCheck::Unavailable(e.to_string()),
    };
    // Look from a minute before the earlier attempt began (clock skew).
    let oldest = since_ms / 1000 - 60;
    match deps.slack.find_posted(token, &channel, key, oldest).await {
        // Posted with chat:write.public without joining, or removed since: join, read again.
        HistoryCheck::Refused(e) if e == "not_in_channel" => {
            forget_membership(group, deps).await;
            match deps.slack.join_channel(token, &channel).await {
                Ok(Join::Member { id }) => {
                    record_membership(group, Membership::Member, Some(&id), deps).await;
                    deps.slack.find_posted(token, &channel, key, oldest).await
                }
                Ok(Join::Refused(why)) => {
                    tracing::warn!(channel = %delivery.channel, slack_error = %why, "the bot cannot join the channel to read its history");
                    HistoryCheck::Refused(e)
                }
                Err(why) => HistoryCheck::Unavailable(why.to_string()),
            }
        }
        other => other,
    }
}

/// Before the first post to a channel, makes the bot a member of it when it is a public
/// channel the bot has not joined, so that a later no-duplicate check can read its
/// history. Best effort: whatever happens here, the post goes ahead and Slack's answer to
/// it decides; only a settled outcome is remembered.
async fn ensure_member(group: &str, channel: &str, token: &SecretString, deps: &DeliveryDeps) {
    if settled(group, deps) {
        return;
    }
    let state = match deps.channels.state(group).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "channel state unavailable; posting without checking membership");
            return;
        }
    };
    if state.membership.is_some() {
        settle(group, deps);
        return;
    }
    let id = match state.channel_id {
        Some(id) => id,
        None if channel.starts_with('#') => {
            let wanted = channel.trim_start_matches('#');
            match deps.slack.list_channels(token).await {
                Ok(list) => match list.into_iter().find(|c| c.name == wanted) {
                    Some(c) if c.is_member => {
                        record_membership(group, Membership::Member, Some(&c.id), deps).await;
                        return;
                    }
                    Some(c) if c.is_private => {
                        record_membership(group, Membership::InviteOnly, Some(&c.id), deps).await;
                        return;
                    }
                    Some(c) => c.id,
                    // Not visible (yet): the post tells.
                    None => return,
                },
                Err(e) => {
                    tracing::warn!(channel = %channel, error = %e, "could not list channels; posting without joining");
                    return;
                }
            }
        }
        None => channel.to_owned(),
    };
    match deps.slack.join_channel(token, &id).await {
        Ok(Join::Member { id }) => {
            tracing::info!(channel = %channel, channel_id = %id, "joined the channel before posting");
            record_membership(group, Membership::Member, Some(&id), deps).await;
        }
        Ok(Join::Refused(e)) if e == "method_not_supported_for_channel_type" => {
            record_membership(group, Membership::InviteOnly, Some(&id), deps).await;
        }
        Ok(Join::Refused(e)) => {
            // E.g. missing_scope on an install from before channels:join: posting still
            // works; this instance does not ask again.
            tracing::warn!(channel = %channel, slack_error = %e, "could not join the channel; posting without joining (an uncertain post there cannot be checked until the app is in it)");
            settle(group, deps);
        }
        Err(e) => {
            tracing::warn!(channel = %channel, error = %e, "could not join the channel; posting without joining");
        }
    }
}

fn settled(group: &str, deps: &DeliveryDeps) -> bool {
    deps.settled
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(group)
}

fn settle(group: &str, deps: &DeliveryDeps) {
    deps.settled
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(group.to_owned());
}

async fn record_membership(
    group: &str,
    membership: Membership,
    channel_id: Option<&str>,
    deps: &DeliveryDeps,
) {
    if let Err(e) = deps
        .channels
        .set_membership(group, Some(membership), channel_id)
        .await
    {
        tracing::warn!(error = %e, "could not record the channel's membership");
    }
    settle(group, deps);
}

async fn forget_membership(group: &str, deps: &DeliveryDeps) {
    deps.settled
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(group);
    if let Err(e) = deps.channels.set_membership(group, None, None).await {
        tracing::warn!(error = %e, "could not forget the channel's membership");
    }
}

/// Posts one message or a digest; returns Slack's answer and the channel posted to.
async fn post_unit(
    unit: &[Item<'_>],
    token: &SecretString,
    deps: &DeliveryDeps,
) -> (crate::slack::answers::Answer, String) {
    let first = &unit[0].delivery;
    let (message, metadata) = if unit.len() == 1 {
        (
            first.message.clone(),
            serde_json::json!({
                "event_type": "ingestlayer_delivery",
                "event_payload": {"key": unit[0].key, "event_id": first.event_id, "pipeline_id": first.pipeline_id}
            }),
        )
    } else {
        let items: Vec<DigestItem<'_>> = unit
            .iter()
            .map(|i| DigestItem {
                event_name: &i.delivery.event_name,
                event_id: &i.delivery.event_id,
                message: &i.delivery.message,
                link: i.delivery.link.as_deref(),
            })
            .collect();
        (
            digest(&items),
            serde_json::json!({
                "event_type": "ingestlayer_digest",
                "event_payload": {
                    "keys": unit.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
                    "event_ids": unit.iter().map(|i| i.delivery.event_id.as_str()).collect::<Vec<_>>()
                }
            }),
        )
    };
    let answer = deps
        .slack
        .post_message(
            token,
            &PostMessage {
                channel: &first.channel,
                text: &message.text,
                blocks: &message.blocks,
                metadata: Some(metadata),
                unfurl_links: false,
                unfurl_media: false,
            },
        )
        .await;
    (answer, first.channel.clone())
}

/// Moves the message to the DLQ with its reason; it is deleted from the queue only when
/// that worked.
async fn park(
    record: &SqsMessage,
    delivery: Option<&Delivery>,
    reason: &str,
    deps: &DeliveryDeps,
) -> Fate {
    let group = record
        .attributes
        .get("MessageGroupId")
        .cloned()
        .or_else(|| delivery.map(Delivery::group_id))
        .unwrap_or_else(|| "unknown".into());
    // A fresh dedup id: the same message parked again after a redrive must land again.
    let dedup = format!(
        "{}-{}",
        delivery
            .map(Delivery::key)
            .unwrap_or_else(|| record.message_id.clone().unwrap_or_default())
            .chars()
            .take(64)
            .collect::<String>(),
        ulid::Ulid::new()
    );
    let mut attributes = HashMap::from([(park_attr::REASON.to_owned(), reason.to_owned())]);
    if let Some(d) = delivery {
        attributes.insert(park_attr::EVENT_ID.into(), d.event_id.clone());
        attributes.insert(park_attr::PIPELINE_ID.into(), d.pipeline_id.clone());
        attributes.insert(park_attr::CHANNEL.into(), d.channel.clone());
    }
    let message = Outgoing {
        body: record.body.clone().unwrap_or_else(|| "{}".into()),
        group_id: Some(group),
        dedup_id: Some(dedup),
        attributes,
    };
    match send_all(&deps.sqs, &deps.dlq_url, std::slice::from_ref(&message))
        .await
        .remove(0)
    {
        Ok(()) => {
            tracing::error!(event_id = %delivery.map(|d| d.event_id.as_str()).unwrap_or("?"), reason = %reason, outcome = "parked", "message parked in the DLQ with its reason");
            Fate::Done
        }
        Err(e) => {
            tracing::error!(reason = %reason, error = %e, outcome = "retry", "could not park the message; it stays queued");
            Fate::Later(Duration::from_secs(30))
        }
    }
}

/// Delay before the next try of a transient failure, by receive count, jittered ±20 %.
pub fn retry_delay(receive_count: usize, schedule: &[u64]) -> Duration {
    let Some(last) = schedule.len().checked_sub(1) else {
        return Duration::from_secs(1);
    };
    let base = schedule[receive_count.saturating_sub(1).min(last)] as f64;
    let jitter = rand::random_range(0.8..=1.2);
    Duration::from_secs_f64((base * jitter).max(1.0))
}

/// Sets each failed message's visibility so it comes back when it should.
async fn hand_back(deps: &DeliveryDeps, later: &[(String, Duration)]) {
    for chunk in later.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (handle, d))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(d.as_secs().clamp(1, MAX_VISIBILITY) as i32)
                    .build()
                    .ok()
            })
            .collect();
        let result = deps
            .sqs
            .change_message_visibility_batch()
            .queue_url(&deps.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) if !out.failed.is_empty() => {
                tracing::warn!(failed = out.failed.len(), "some visibility changes failed; those messages return after the queue's visibility timeout")
            }
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "visibility change failed; messages return after the queue's visibility timeout")
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn retry_delays_grow_and_are_capped() {
        assert!(retry_delay(1, RETRY_SCHEDULE) <= Duration::from_secs_f64(1.2));
        assert!(retry_delay(5, RETRY_SCHEDULE) >= Duration::from_secs(24));
        assert!(retry_delay(500, RETRY_SCHEDULE) <= Duration::from_secs(1080));
        assert_eq!(retry_delay(3, &[]), Duration::from_secs(1));
    }
}
