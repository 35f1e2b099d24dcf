//! The destination-delivery function: messages from the destinations FIFO queue to
//! webhooks, Discord, Telegram, email and Notion, with Slack delivery's promises.
//!
//! - **No target waits on another.** A message group is one target (a webhook endpoint, a
//!   Discord webhook, a Telegram chat, a recipient list, a Notion database); the groups of a
//!   batch are processed concurrently, each in order. Slack has its own queue and function,
//!   so nothing here ever delays Slack.
//! - **Nothing lost.** A message is deleted only when the destination took it or when it
//!   was parked in the destinations DLQ with its reason, where `ingestlayer dlq redrive`
//!   sends it back.
//! - **No duplicates, as far as each platform lets us tell.** The delivery ledger claims
//!   each (event, pipeline, destination) before sending. After an ambiguous failure (a
//!   timeout, a 5xx) Notion is asked whether the page exists before creating it again;
//!   webhooks carry the same `webhook-id` on every attempt so receivers can deduplicate;
//!   Discord, Telegram and email offer no way to ask, so the message is sent again marked
//!   as such (the README says so for each).
//! - **Paced.** Each platform's pacing unit (a Discord webhook, a Telegram chat, the SES
//!   account, a Notion integration) takes its slots from the channel state shared with
//!   Slack delivery, so all instances together keep the platform's rate; a 429 holds the
//!   unit for exactly its Retry-After.
//! - **Paused with a hint.** An answer that means the target takes nothing until someone
//!   acts (a deleted webhook, a bot blocked in a chat, an unshared database, 410 Gone)
//!   pauses that target alone and parks its messages with what to do.
//!
//! The platform adapters live in [`crate::outbound`]; [`platform`] puts each behind the one
//! [`Platform`] trait the loop drives.

pub mod platform;
pub mod secrets;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;
use tracing::Instrument;

use crate::config::DestinationsConfig;
use crate::delivery::channel_state::Channels;
use crate::delivery::channel_store::{ChannelStore, Pause, PauseScope};
use crate::delivery::clock::{Clock, SystemClock};
use crate::delivery::decide::{self, Fate, Rest, Slot};
use crate::delivery::ledger::{Entry, Ledger, LedgerStore};
use crate::delivery::pacing::{send_on_slot, wait_for_slot_at};
use crate::delivery::park::{send_to_dlq, Parking};
use crate::delivery::retry::{
    paced_interval, retry_delay, visibility_secs, MAX_INLINE_WAIT, PARK_FAILED_RETRY,
    STATE_UNAVAILABLE_RETRY,
};
use crate::error::Result;
use crate::ids::{DeliveryKey, GroupId};
use crate::journey::{Outcome, Record, Stage};
use crate::outbound::message::Outbound;
use crate::outbound::Verdict;

pub use crate::delivery::platform::Platform;
pub use platform::{Destination, Platforms};

/// How many short rate-limit waits one group sleeps through in one invocation.
const MAX_INLINE_RATE_WAITS: usize = 3;

/// What the destination-delivery handler holds across invocations.
pub struct DispatchDeps {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub ledger: Arc<dyn LedgerStore>,
    pub channels: Arc<dyn ChannelStore>,
    pub clock: Arc<dyn Clock>,
    /// A message still undelivered this long after it was queued is parked.
    pub max_age: Duration,
    /// Pacing waits up to this long happen in process; longer ones go back to SQS.
    pub max_inline_wait: Duration,
    pub platforms: Platforms,
    pub journey: Option<crate::journey::JourneyStore>,
}

impl DispatchDeps {
    /// The one constructor, used by the Lambda's main.rs, `make dev` and the tests.
    pub async fn load(sdk: &aws_config::SdkConfig, cfg: &DestinationsConfig) -> Result<Self> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        Ok(Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: cfg.queue_url.clone(),
            dlq_url: cfg.dlq_url.clone(),
            ledger: Arc::new(Ledger {
                client: dynamo.clone(),
                table: cfg.deliveries_table.clone(),
            }),
            channels: Arc::new(Channels {
                client: dynamo,
                table: cfg.channels_table.clone(),
            }),
            clock: Arc::new(SystemClock),
            max_age: cfg.max_age,
            max_inline_wait: MAX_INLINE_WAIT,
            platforms: Platforms::load(sdk, cfg)?,
            journey: cfg
                .journey
                .as_ref()
                .map(|j| crate::journey::JourneyStore::new(sdk, j)),
        })
    }
}

/// What one group's processing decided: each message's fate and the journey records.
#[derive(Default)]
struct Out<'r> {
    fates: Vec<(&'r SqsMessage, Fate)>,
    journey: Vec<Record>,
}

/// Handles one batch of the destinations queue: its groups concurrently, each in order.
pub async fn handle(event: SqsEvent, deps: &DispatchDeps) -> SqsBatchResponse {
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
    let outs = join_all(groups.iter().map(|(group, records)| {
        let span = tracing::info_span!("group", group = %group, messages = records.len());
        process(records, deps).instrument(span)
    }))
    .await;
    let mut failures = Vec::new();
    let mut later = Vec::new();
    let mut journey = Vec::new();
    for out in outs {
        journey.extend(out.journey);
        for (record, fate) in out.fates {
            if let Fate::Later(d) = fate {
                failures.push(record.message_id.clone().unwrap_or_default());
                if let Some(h) = &record.receipt_handle {
                    later.push((h.clone(), visibility_secs(d)));
                }
            }
        }
    }
    crate::journey::metrics::observe(&journey);
    if let Some(store) = &deps.journey {
        store.write(journey).await;
    }
    crate::aws::sqs::hand_back(&deps.sqs, &deps.queue_url, &later).await;
    crate::aws::sqs::batch_response(failures)
}

/// A readable message of the group, with its record.
struct Item<'r> {
    record: &'r SqsMessage,
    message: Outbound,
}

/// Processes one group's messages in order.
async fn process<'r>(records: &[&'r SqsMessage], deps: &DispatchDeps) -> Out<'r> {
    let mut out = Out::default();
    let mut i = 0;
    // Rate limits waited out in process, in this group; after a few the group goes back.
    let mut inline_waits = 0;
    while i < records.len() {
        let record = records[i];
        let message = match parse(record) {
            Ok(m) => m,
            Err(reason) => {
                let fate = park(record, None, &reason, deps).await;
                out.fates.push((record, fate));
                i += 1;
                continue;
            }
        };
        let now_ms = deps.clock.now_ms();
        if let Some(reason) = decide::too_old(sent_ms(record), now_ms, deps.max_age) {
            out.journey
                .push(journey(&message, record, Outcome::Parked, now_ms).reason(&reason));
            let fate = park(record, Some(&message), &reason, deps).await;
            out.fates.push((record, fate));
            i += 1;
            continue;
        }
        let platform = deps.platforms.get(&message.target);
        let pacing = GroupId::from_queue(&platform.pacing_key(&message));
        let interval = paced_interval(platform.interval(&message).as_millis() as u64);
        let (slot, slot_ms) = wait_for_slot_at(
            deps.channels.as_ref(),
            deps.clock.as_ref(),
            &pacing,
            interval,
            deps.max_inline_wait,
        )
        .await;
        if let Slot::Rest(rest) = slot {
            let outcome = match rest {
                Rest::Defer(_) => Outcome::Paced,
                _ => Outcome::Parked,
            };
            rest_of(
                rest,
                outcome,
                "waiting for the target's slot",
                &records[i..],
                deps,
                &mut out,
            )
            .await;
            return out;
        }

        // Checked once the target's slot is taken, right before sending: a global rate
        // limit answered to another target meanwhile holds this one too.
        if let Some(rest) = sender_held(deps, platform, &mut inline_waits).await {
            rest_of(
                rest,
                Outcome::Paced,
                "every target of the platform waits (its sender's rate limit)",
                &records[i..],
                deps,
                &mut out,
            )
            .await;
            return out;
        }

        // A digest: the email destination takes every waiting message of its recipients
        // in one email when there are enough of them.
        let mut unit = vec![Item { record, message }];
        let threshold = unit[0].message.digest_threshold;
        if threshold >= 2 && platform.digests() {
            let waiting: Vec<Item<'r>> = records[i + 1..]
                .iter()
                .map_while(|r| parse(r).ok().map(|message| Item { record: r, message }))
                .collect();
            if waiting.len() + 1 >= threshold {
                unit.extend(waiting);
            }
        }
        let taken = unit.len();

        // The ledger: what earlier attempts left.
        let mut todo: Vec<Item<'r>> = Vec::new();
        let mut resent = false;
        for item in unit {
            let now_ms = deps.clock.now_ms();
            // Another invocation is sending it now (wait for it, never send beside it), or the
            // ledger could not be read: it and the rest wait.
            let (wait, reason) = match deps.ledger.begin(&item.message.key(), now_ms).await {
                Ok(Entry::Clear) => {
                    todo.push(item);
                    continue;
                }
                Ok(Entry::Delivered { ts }) => {
                    let mut rec =
                        journey(&item.message, item.record, Outcome::AlreadyPosted, now_ms);
                    rec.ts = Some(ts);
                    out.journey.push(rec);
                    out.fates.push((item.record, Fate::Done));
                    continue;
                }
                Ok(Entry::Uncertain { since_ms }) => {
                    // An earlier attempt may have delivered it: ask the platform, where it
                    // can tell.
                    match platform.find(&item.message, since_ms).await {
                        Some(Ok(Some(receipt))) => {
                            let _recorded = record_delivered(deps, &item.message, &receipt).await;
                            let mut rec =
                                journey(&item.message, item.record, Outcome::AlreadyPosted, now_ms)
                                    .reason("found delivered after an unconfirmed attempt");
                            rec.ts = Some(receipt);
                            out.journey.push(rec);
                            out.fates.push((item.record, Fate::Done));
                        }
                        Some(Ok(None)) => todo.push(item),
                        Some(Err(verdict)) => {
                            // Cannot tell yet: never send on a guess. A rate limit on the
                            // question holds the target as one on a send would.
                            let wait = match &verdict {
                                Verdict::RetryAfter { wait, .. }
                                | Verdict::RetryAfterAll { wait, .. } => {
                                    hold(deps, platform, &pacing, &verdict, *wait).await;
                                    *wait
                                }
                                _ => retry_delay(receive_count(item.record), platform.schedule()),
                            };
                            if matches!(
                                verdict,
                                Verdict::PauseTarget { .. } | Verdict::PauseAccount { .. }
                            ) {
                                deps.platforms.forget(&item.message.target);
                            }
                            let reason = format!(
                                "could not check whether an earlier attempt was delivered: {}",
                                verdict.summary()
                            );
                            // It stays uncertain, and no longer held by this invocation.
                            unsure(deps, std::slice::from_ref(&item)).await;
                            let rest: Vec<&'r SqsMessage> = std::iter::once(item.record)
                                .chain(records[i + taken..].iter().copied())
                                .collect();
                            release(deps, &todo).await;
                            let claimed: Vec<&'r SqsMessage> =
                                todo.iter().map(|t| t.record).collect();
                            let all: Vec<&'r SqsMessage> =
                                claimed.into_iter().chain(rest).collect();
                            rest_of(
                                Rest::Defer(wait),
                                Outcome::Retry,
                                &reason,
                                &all,
                                deps,
                                &mut out,
                            )
                            .await;
                            return out;
                        }
                        None => {
                            resent = true;
                            todo.push(item);
                        }
                    }
                    continue;
                }
                Ok(Entry::Busy { wait }) => (
                    wait.max(Duration::from_secs(1)),
                    "another invocation is sending it now; waiting for it rather than risking a duplicate".to_owned(),
                ),
                Err(e) => (
                    STATE_UNAVAILABLE_RETRY,
                    format!("the delivery ledger could not be read: {e}"),
                ),
            };
            release(deps, &todo).await;
            let all: Vec<&'r SqsMessage> = todo
                .iter()
                .map(|t| t.record)
                .chain(std::iter::once(item.record))
                .chain(records[i + taken..].iter().copied())
                .collect();
            rest_of(
                Rest::Defer(wait),
                Outcome::Retry,
                &reason,
                &all,
                deps,
                &mut out,
            )
            .await;
            return out;
        }
        if todo.is_empty() {
            i += taken;
            continue;
        }

        let messages: Vec<&Outbound> = todo.iter().map(|t| &t.message).collect();
        // The ledger's claims (and a held sender's check) come between the slot and the
        // send: a send that left late moves the target's next slot an interval after it.
        let (answer, started) = send_on_slot(
            deps.channels.as_ref(),
            deps.clock.as_ref(),
            &pacing,
            slot_ms,
            interval,
            |started| platform.send(&messages, resent, started / 1000),
        )
        .await;
        let verdict = platform.classify(&answer);
        let now_ms = deps.clock.now_ms();
        let digest_of = (todo.len() > 1).then_some(todo.len());
        match verdict {
            Verdict::Delivered { receipt, hold } => {
                for item in &todo {
                    let _recorded = record_delivered(deps, &item.message, &receipt).await;
                    let outcome = if digest_of.is_some() {
                        Outcome::Digested
                    } else {
                        Outcome::Posted
                    };
                    let mut rec = journey(&item.message, item.record, outcome, now_ms);
                    rec.ts = Some(receipt.clone());
                    rec.digest_of = digest_of;
                    rec.slack_ms = Some((now_ms - started).max(0) as u64);
                    rec.received_ms = Some(item.message.received_ms).filter(|&r| r > 0);
                    if resent {
                        rec.reason = Some("sent again after an unconfirmed attempt".into());
                    }
                    out.journey.push(rec);
                    out.fates.push((item.record, Fate::Done));
                }
                if let Some(hold) = hold {
                    hold_pacing(deps, &pacing, hold).await;
                }
                i += taken;
            }
            Verdict::RetryAfter { wait, ref reason }
            | Verdict::RetryAfterAll { wait, ref reason } => {
                let reason = reason.clone();
                release(deps, &todo).await;
                hold(deps, platform, &pacing, &verdict, wait).await;
                if wait <= deps.max_inline_wait && inline_waits < MAX_INLINE_RATE_WAITS {
                    inline_waits += 1;
                    // Waited out here: the same messages are tried again at their slot.
                    for item in &todo {
                        let mut rec =
                            journey(&item.message, item.record, Outcome::RateLimited, now_ms)
                                .reason(&reason);
                        rec.wait_ms = Some(wait.as_millis() as u64);
                        out.journey.push(rec);
                    }
                    continue;
                }
                let all: Vec<&'r SqsMessage> = todo
                    .iter()
                    .map(|t| t.record)
                    .chain(records[i + taken..].iter().copied())
                    .collect();
                rest_of(
                    Rest::Defer(wait),
                    Outcome::RateLimited,
                    &reason,
                    &all,
                    deps,
                    &mut out,
                )
                .await;
                return out;
            }
            Verdict::Retry { reason, maybe_sent } => {
                if maybe_sent {
                    unsure(deps, &todo).await;
                } else {
                    release(deps, &todo).await;
                }
                let attempt = receive_count(todo[0].record);
                let rest = match platform.retry_after_attempt(attempt) {
                    Some(wait) => Rest::Defer(wait),
                    None => Rest::Park(format!("gave up after {attempt} attempts: {reason}")),
                };
                let outcome = match rest {
                    Rest::Defer(_) => Outcome::Retry,
                    _ => Outcome::Parked,
                };
                if let Err(e) = deps
                    .channels
                    .record_error(&pacing, &reason, &deps.clock.now_text())
                    .await
                {
                    tracing::warn!(error = %e, "could not record the target's last error");
                }
                let all: Vec<&'r SqsMessage> = todo
                    .iter()
                    .map(|t| t.record)
                    .chain(records[i + taken..].iter().copied())
                    .collect();
                rest_of(rest, outcome, &reason, &all, deps, &mut out).await;
                return out;
            }
            Verdict::Park { reason } => {
                release(deps, &todo).await;
                for item in &todo {
                    out.journey.push(
                        journey(&item.message, item.record, Outcome::Parked, now_ms)
                            .reason(&reason),
                    );
                    let fate = park(item.record, Some(&item.message), &reason, deps).await;
                    out.fates.push((item.record, fate));
                }
                i += taken;
            }
            // A destination's credential reaches one target here (a Telegram bot token is
            // stored per chat destination), so an account-level refusal pauses the target.
            Verdict::PauseTarget { reason, hint } | Verdict::PauseAccount { reason, hint } => {
                release(deps, &todo).await;
                deps.platforms.forget(&todo[0].message.target);
                let scope =
                    PauseScope::Channel(GroupId::from_queue(&todo[0].message.target.group_id()));
                let pause = Pause {
                    error: reason,
                    hint,
                };
                let all: Vec<&'r SqsMessage> = todo
                    .iter()
                    .map(|t| t.record)
                    .chain(records[i + taken..].iter().copied())
                    .collect();
                rest_of(
                    Rest::Pause(scope, pause),
                    Outcome::Parked,
                    "",
                    &all,
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

/// Carries out what becomes of `records` (the rest of a group, in order): back to SQS, or
/// parked (after recording the pause, for a paused target).
async fn rest_of<'r>(
    rest: Rest,
    outcome: Outcome,
    why: &str,
    records: &[&'r SqsMessage],
    deps: &DispatchDeps,
    out: &mut Out<'r>,
) {
    let now_ms = deps.clock.now_ms();
    let (reason, hint) = match &rest {
        Rest::Defer(wait) => {
            for r in records {
                if let Ok(m) = parse(r) {
                    let mut rec = journey(&m, r, outcome, now_ms).reason(why);
                    rec.wait_ms = Some(wait.as_millis() as u64);
                    out.journey.push(rec);
                }
                out.fates.push((r, Fate::Later(*wait)));
            }
            return;
        }
        Rest::Park(reason) => (reason.clone(), None),
        Rest::Pause(scope, pause) => {
            if let Err(e) = deps
                .channels
                .record_pause(scope, pause, &deps.clock.now_text())
                .await
            {
                tracing::warn!(error = %e, "could not record the pause; the messages are parked anyway");
            }
            tracing::error!(target_group = %scope.key(), error = %pause.error, hint = %pause.hint, "target paused");
            (
                format!("target paused ({}): {}", pause.error, pause.hint),
                Some(pause.hint.clone()),
            )
        }
    };
    for r in records {
        let message = parse(r).ok();
        if let Some(m) = &message {
            let mut rec = journey(m, r, Outcome::Parked, now_ms).reason(&reason);
            rec.hint.clone_from(&hint);
            out.journey.push(rec);
        }
        let fate = park(r, message.as_ref(), &reason, deps).await;
        out.fates.push((r, fate));
    }
}

/// After a rate limit (`verdict`): holds the target's pacing unit, and for one that holds
/// every target ([`Verdict::RetryAfterAll`]) the platform's sender too, until `now + wait`.
async fn hold(
    deps: &DispatchDeps,
    platform: &Destination,
    pacing: &GroupId,
    verdict: &Verdict,
    wait: Duration,
) {
    hold_pacing(deps, pacing, wait).await;
    if let (Verdict::RetryAfterAll { .. }, Some(sender)) = (verdict, platform.sender_key()) {
        hold_pacing(deps, &GroupId::from_queue(sender), wait).await;
    }
}

/// While the platform's sender is held (a global rate limit): sleeps a short hold out here
/// (counted in `inline_waits`), or says what becomes of the group for a longer one.
async fn sender_held(
    deps: &DispatchDeps,
    platform: &Destination,
    inline_waits: &mut usize,
) -> Option<Rest> {
    let sender = GroupId::from_queue(platform.sender_key()?);
    loop {
        let next = deps.channels.next_slot(&sender).await;
        match decide::sender_hold(next, deps.clock.now_ms(), deps.max_inline_wait) {
            Slot::Post | Slot::At(_) => return None,
            Slot::Sleep(wait) if *inline_waits < MAX_INLINE_RATE_WAITS => {
                *inline_waits += 1;
                tokio::time::sleep(wait).await;
            }
            Slot::Sleep(wait) => return Some(Rest::Defer(wait)),
            Slot::Rest(rest) => return Some(rest),
        }
    }
}

/// Holds the pacing unit until `wait` after now (after a 429, or a platform's "no more for
/// now"): counted from when the answer arrived, as Retry-After is, not from when the request
/// left (the next request goes out at the hold's first moment).
async fn hold_pacing(deps: &DispatchDeps, pacing: &GroupId, wait: Duration) {
    let until = deps.clock.now_ms() + wait.as_millis() as i64;
    if let Err(e) = deps.channels.hold_until(pacing, until).await {
        tracing::warn!(error = %e, "could not record the target's wait");
    }
}

async fn record_delivered(deps: &DispatchDeps, m: &Outbound, receipt: &str) -> Result<()> {
    let r = deps.ledger.delivered(&m.key(), receipt, None).await;
    if let Err(e) = &r {
        tracing::warn!(event_id = %m.event_id, error = %e, "delivered, but the ledger could not record it");
    }
    r
}

/// Marks claimed messages whose attempt may have delivered them: the next attempt asks the
/// platform at once.
async fn unsure(deps: &DispatchDeps, items: &[Item<'_>]) {
    let keys: Vec<DeliveryKey> = items.iter().map(|i| i.message.key()).collect();
    for (item, r) in items.iter().zip(deps.ledger.unsure_all(&keys).await) {
        if let Err(e) = r {
            tracing::warn!(event_id = %item.message.event_id, error = %e, "could not mark the attempt unsure; the next one waits for the claim to go stale");
        }
    }
}

/// Marks claimed messages that were certainly not delivered.
async fn release(deps: &DispatchDeps, items: &[Item<'_>]) {
    for item in items {
        if let Err(e) = deps.ledger.not_posted(&item.message.key()).await {
            tracing::warn!(event_id = %item.message.event_id, error = %e, "could not release the ledger entry");
        }
    }
}

/// Moves the message to the destinations DLQ with its reason; [`Fate::Done`] only when that
/// worked.
async fn park(
    record: &SqsMessage,
    m: Option<&Outbound>,
    reason: &str,
    deps: &DispatchDeps,
) -> Fate {
    let parking = m.map(|m| Parking {
        event_id: &m.event_id,
        pipeline_id: &m.pipeline_id,
        channel: m.target.describe(),
        key: m.key().to_string(),
        group: m.target.group_id(),
    });
    match send_to_dlq(&deps.sqs, &deps.dlq_url, record, parking.as_ref(), reason).await {
        Ok(_) => {
            tracing::error!(event_id = %m.map(|m| m.event_id.as_str()).unwrap_or("?"), reason = %reason, outcome = "parked", "message parked in the DLQ with its reason");
            Fate::Done
        }
        Err(e) => {
            tracing::error!(reason = %reason, error = %e, outcome = "retry", "could not park the message; it stays queued");
            Fate::Later(PARK_FAILED_RETRY)
        }
    }
}

/// A delivery record about `m` at `now_ms`.
fn journey(m: &Outbound, r: &SqsMessage, outcome: Outcome, now_ms: i64) -> Record {
    let mut rec = Record::new(
        &m.event_id,
        Stage::Delivery,
        outcome,
        now_ms,
        &format!("{}#{}", m.pipeline_id, m.destination),
    )
    .pipeline(&m.pipeline_id);
    rec.channels = vec![m.target.describe()];
    rec.event_name = Some(m.event_name.clone());
    rec.attempt = Some(receive_count(r));
    rec
}

/// The record's body as an [`Outbound`]; the error is the park reason.
fn parse(r: &SqsMessage) -> std::result::Result<Outbound, String> {
    match r.body.as_deref().map(serde_json::from_str::<Outbound>) {
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(format!("unreadable destination message: {e}")),
        None => Err("destination message has no body".into()),
    }
}

fn receive_count(r: &SqsMessage) -> usize {
    r.attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

fn sent_ms(r: &SqsMessage) -> Option<i64> {
    r.attributes.get("SentTimestamp")?.parse().ok()
}
