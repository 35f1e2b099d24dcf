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
//! - **Digests.** When enough of a channel's messages wait, they go out as one digest (up to
//!   [`digest::DIGEST_MAX`]); a digest Slack refuses is split back into single posts. A
//!   digest gathers only consecutive messages of one thread key ([`threads`]).
//! - **Backlogs.** A FIFO batch holds at most 10 messages, so a busy channel's batches go
//!   to its backlog ([`buffer`], `BUFFER_TABLE`) while its slot is not due, and a drain
//!   ticket posts the backlog a digest at a time: a burst of 1,000 reads in about 21 posts,
//!   not 100. Tickets have a queue of their own (`SLACK_DRAIN_QUEUE_URL`), the function's
//!   second event source, so a channel's drain never waits behind the messages other
//!   channels queued meanwhile.
//! - **Threads and owners.** A message with a thread key replies in that key's thread of the
//!   day ([`threads`], stored in the state table); a destination's owner email is mentioned
//!   ([`mention`]), never failing the message.
//!
//! The decisions are plain functions in [`decide`], over the ledger and channel state
//! ([`ledger::LedgerStore`], [`channel_store::ChannelStore`]), Slack's classified answer and
//! the injected [`clock::Clock`]; [`group`] carries them out. This module holds the
//! function's [`DeliveryDeps`] and its [`handle`].

pub mod buffer;
pub mod channel_state;
pub mod channel_store;
pub mod clock;
pub mod decide;
pub mod digest;
pub mod group;
mod history;
pub mod ledger;
mod membership;
pub mod mention;
pub mod message;
pub mod ops_notice;
pub mod pacing;
pub mod park;
pub mod platform;
mod post;
pub mod retry;
pub mod slack_platform;
pub mod threads;

#[cfg(test)]
mod fake;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::Instrument;

use crate::config::DeliveryConfig;
use crate::delivery::channel_state::Channels;
use crate::delivery::channel_store::ChannelStore;
use crate::delivery::clock::{Clock, SystemClock};
use crate::delivery::decide::Fate;
use crate::delivery::group::TeamPauses;
use crate::delivery::ledger::{Ledger, LedgerStore};
use crate::error::{Error, Result};
use crate::ids::{ChannelRef, GroupId};
use crate::slack::client::SlackClient;
use crate::slack::oauth::{OAuthClient, SlackAppSource};
use crate::slack::tokens::{TokenSource, WorkspaceTokens};
use crate::slack::workspaces::Connections;

pub use park::park_attr;
pub use retry::{retry_delay, MAX_INLINE_WAIT, RETRY_SCHEDULE};

/// What the delivery handler holds across invocations.
pub struct DeliveryDeps {
    pub slack: SlackClient,
    pub tokens: WorkspaceTokens,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// Where drain tickets are queued: the function's second event source (the Slack queue
    /// itself when no drain queue is configured).
    pub drain_queue_url: String,
    pub dlq_url: String,
    pub ledger: Arc<dyn LedgerStore>,
    pub channels: Arc<dyn ChannelStore>,
    /// Where delivery reads the time: the system clock, or a test's.
    pub clock: Arc<dyn Clock>,
    /// A message still undelivered this long after it was queued is parked.
    pub max_age: Duration,
    /// Pacing waits up to this long happen in process; longer ones go back to SQS.
    pub max_inline_wait: Duration,
    /// Seconds before retry n of a transient failure (by receive count; the last repeats).
    pub retry_schedule: Vec<u64>,
    /// Where pauses and parked messages are noticed (once per channel per hour); `None`
    /// turns notices off.
    pub ops_channel: Option<ChannelRef>,
    /// Where each delivery attempt is recorded (one batched write per invocation).
    pub journey: Option<crate::journey::JourneyStore>,
    /// Each thread key's thread of the day (`STATE_TABLE`); `None` posts unthreaded.
    pub threads: Option<threads::ThreadStore>,
    /// Owner lookups this instance made, with their TTLs.
    pub mentions: mention::Mentions,
    /// Busy channels' backlogs (`BUFFER_TABLE`); `None`: batches wait in the queue.
    pub buffer: Option<buffer::Buffer>,
    /// How long one invocation drains a backlog before handing its ticket back.
    pub drain_budget: Duration,
    /// Groups whose membership this instance already settled (joined, invite-only, or
    /// not joinable), so the channels table is read once per instance and channel.
    settled: Mutex<HashSet<GroupId>>,
    /// The channel id this instance last recorded for each group, so a post records it
    /// only when it is new or changed (a renamed channel), not once a post.
    channel_ids: Mutex<HashMap<GroupId, String>>,
}

impl DeliveryDeps {
    /// Records `id` as the group's channel id unless this instance already did.
    pub(crate) async fn remember_channel_id(&self, group: &GroupId, id: &str) {
        let known = |ids: &HashMap<GroupId, String>| ids.get(group).is_some_and(|k| k == id);
        if known(
            &self
                .channel_ids
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return;
        }
        match self.channels.set_channel_id(group, id).await {
            Ok(()) => {
                self.channel_ids
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(group.clone(), id.to_owned());
            }
            Err(e) => tracing::warn!(error = %e, "could not record the channel's id"),
        }
    }

    /// The one constructor, used by the Lambda's main.rs, `make dev` and the tests: the
    /// clients, and token rotation when the Slack app's secret is configured. The app secret
    /// is read when a refresh is due, so a placeholder secret is a clear state then (the
    /// workspace pauses with the fix), never a cold-start failure.
    pub async fn load(sdk: &aws_config::SdkConfig, cfg: &DeliveryConfig) -> Result<Self> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let dynamo_for_threads = dynamo.clone();
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let connections = cfg.connections_table.as_ref().map(|table| Connections {
            dynamo: dynamo.clone(),
            table: table.clone(),
            secrets: secrets.clone(),
            secret_prefix: cfg.token_secret_prefix.clone(),
            kms_key_id: cfg.kms_key_id.clone().unwrap_or_default(),
        });
        let slack = SlackClient::new(&cfg.slack_api_url, cfg.slack_timeout)
            .map_err(|e| Error::slack("building the Slack client", e))?;
        let mut tokens = WorkspaceTokens::new(
            TokenSource::new(cfg.token.clone(), secrets),
            connections,
            None,
        );
        if let Some(arn) = &cfg.slack_app_secret_arn {
            let client = OAuthClient::new(&cfg.slack_api_url)
                .map_err(|e| Error::slack("building the Slack OAuth client", e))?;
            tokens.set_app_source(
                client,
                Arc::new(SlackAppSource::secret(
                    aws_sdk_secretsmanager::Client::new(sdk),
                    arn.clone(),
                )),
            );
        }
        Ok(Self {
            slack,
            tokens,
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: cfg.slack_queue_url.clone(),
            drain_queue_url: cfg
                .slack_drain_queue_url
                .clone()
                .unwrap_or_else(|| cfg.slack_queue_url.clone()),
            dlq_url: cfg.slack_dlq_url.clone(),
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
            retry_schedule: RETRY_SCHEDULE.to_vec(),
            ops_channel: cfg
                .ops_channel
                .as_deref()
                .map(ChannelRef::parse)
                .transpose()
                .map_err(|e| Error::invalid("OPS_CHANNEL", e))?,
            journey: cfg
                .journey
                .as_ref()
                .map(|j| crate::journey::JourneyStore::new(sdk, j)),
            threads: cfg.state_table.as_ref().map(|table| threads::ThreadStore {
                client: dynamo_for_threads.clone(),
                table: table.clone(),
            }),
            mentions: mention::Mentions::default(),
            buffer: cfg.buffer_table.as_ref().map(|table| buffer::Buffer {
                client: dynamo_for_threads.clone(),
                table: table.clone(),
            }),
            drain_budget: DRAIN_BUDGET,
            settled: Mutex::new(HashSet::new()),
            channel_ids: Mutex::new(HashMap::new()),
        })
    }
}

/// How long one invocation drains a backlog (the function's timeout is 30 s; a round
/// started just before this ends within a few seconds).
pub const DRAIN_BUDGET: Duration = Duration::from_secs(15);
/// Each drain round first hides its ticket for this long (seconds): far longer than a round
/// takes (two posts and their bookkeeping), so no other invocation drains the channel
/// meanwhile. An invocation that dies
/// mid-drain delays the backlog by at most this.
pub const DRAIN_LEASE_SECS: i32 = 40;

/// Handles one batch from one of the function's two event sources: the Slack FIFO queue
/// (channels' messages) or the drain queue (channels' drain tickets). Each group (a
/// channel's messages, or a channel's drain tickets) is handled in order within it, the
/// groups side by side. Each group is its own channel's (or backlog's), paced by its own
/// slot: ten channels' drain tickets in one batch drain at once, where one after another the
/// tenth waited out the nine before it.
pub async fn handle(event: SqsEvent, deps: &DeliveryDeps) -> SqsBatchResponse {
    // The drain budget counts from the invocation's start, for every drain in it.
    let started_ms = deps.clock.now_ms();
    // Lambda never mixes two sources in one batch: what is handed back goes back where it
    // came from.
    let queue = source_queue(&event, deps);
    let mut groups: Vec<(GroupId, Vec<&SqsMessage>)> = Vec::new();
    for record in &event.records {
        let group = GroupId::from_queue(
            record
                .attributes
                .get("MessageGroupId")
                .map(String::as_str)
                .unwrap_or_default(),
        );
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, list)) => list.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    // Each drain round leases every message of the invocation, so none of them (the
    // tickets above all) reaches another invocation while this one may still post.
    let leases = Leases {
        queue,
        handles: tokio::sync::Mutex::new(
            event
                .records
                .iter()
                .filter_map(|r| r.receipt_handle.clone())
                .map(|h| (h, DRAIN_LEASE_SECS))
                .collect(),
        ),
    };
    let outcomes = futures_util::future::join_all(groups.iter().map(|(group, records)| {
        // The channel the group drains, when it is a drain ticket's.
        let drains = records.first().and_then(|r| buffer::drained_by(r));
        let leases = &leases;
        async move { one_group(group, records, drains.as_ref(), leases, deps, started_ms).await }
    }))
    .await;
    let mut failures = Vec::new();
    let mut later = Vec::new();
    let mut journey = Vec::new();
    for (fates, group_journey) in outcomes {
        for (record, fate) in fates {
            if let Fate::Later(d) = fate {
                failures.push(record.message_id.clone().unwrap_or_default());
                if let Some(h) = &record.receipt_handle {
                    later.push((h.clone(), d));
                }
            }
        }
        journey.extend(group_journey);
    }
    crate::journey::metrics::observe(&journey);
    if let Some(store) = &deps.journey {
        store.write(journey).await;
    }
    hand_back(deps, queue, &later).await;
    crate::aws::sqs::batch_response(failures)
}

/// The queue the batch came from: the drain queue when its records name it as their
/// source (`eventSourceARN`, whose last part is the queue's name), else the Slack queue.
fn source_queue<'d>(event: &SqsEvent, deps: &'d DeliveryDeps) -> &'d str {
    let drain_name = deps.drain_queue_url.rsplit('/').next().unwrap_or_default();
    let from_drains = event
        .records
        .first()
        .and_then(|r| r.event_source_arn.as_deref())
        .and_then(|arn| arn.rsplit(':').next())
        .is_some_and(|name| !name.is_empty() && name == drain_name);
    if from_drains {
        &deps.drain_queue_url
    } else {
        &deps.queue_url
    }
}

/// The invocation's messages, with the queue they came from: each drain round extends
/// their visibility.
struct Leases<'q> {
    queue: &'q str,
    handles: tokio::sync::Mutex<Vec<(String, i32)>>,
}

/// One group of a batch: a drain ticket's backlog drained, or a channel's messages routed
/// (posted, moved into its backlog, or kept waiting); `drains` is the channel whose backlog
/// it drains when it is a ticket's. The workspace pauses it learns are its own (another
/// group of the invocation reads a workspace's state for itself).
async fn one_group<'r>(
    group: &GroupId,
    records: &[&'r SqsMessage],
    drains: Option<&GroupId>,
    leases: &Leases<'_>,
    deps: &DeliveryDeps,
    started_ms: i64,
) -> (Vec<(&'r SqsMessage, Fate)>, Vec<crate::journey::Record>) {
    let mut team_pauses = TeamPauses::new();
    // Every line logged while the group is processed carries its events' ids.
    let event_ids: Vec<String> = records.iter().filter_map(|r| peek_event_id(r)).collect();
    let span = tracing::info_span!("group", group = %group, messages = records.len(), event_ids = ?event_ids);
    match (&deps.buffer, drains) {
        (Some(buf), Some(channel)) => {
            drain(
                channel,
                records,
                leases,
                buf,
                deps,
                started_ms,
                &mut team_pauses,
            )
            .instrument(span)
            .await
        }
        (None, Some(_)) => {
            // A ticket with no backlog configured (BUFFER_TABLE removed): nothing to drain.
            (
                records.iter().map(|r| (*r, Fate::Done)).collect(),
                Vec::new(),
            )
        }
        (buf, None) => {
            let route = match buf {
                Some(buf) => route(group, records, buf, deps).await,
                None => decide::Route::Post,
            };
            match route {
                decide::Route::Post => {
                    let out = group::process(group, records, deps, &mut team_pauses)
                        .instrument(span)
                        .await;
                    (out.fates, out.journey)
                }
                decide::Route::Spill => match buf {
                    Some(buf) => spill(group, records, buf, deps).instrument(span).await,
                    None => (Vec::new(), Vec::new()),
                },
                decide::Route::Later(d) => {
                    tracing::warn!(
                        outcome = "retry",
                        "the channel's backlog could not be read; the batch waits"
                    );
                    (
                        records.iter().map(|r| (*r, Fate::Later(d))).collect(),
                        Vec::new(),
                    )
                }
            }
        }
    }
}

/// Where a channel's batch goes when busy channels have backlogs: a full batch of a
/// channel that digests into its backlog unread; else behind a backlog that holds anything,
/// into it when the slot is not due, or posted at once.
async fn route(
    group: &GroupId,
    records: &[&SqsMessage],
    buf: &buffer::Buffer,
    deps: &DeliveryDeps,
) -> decide::Route {
    let digests = records
        .first()
        .and_then(|r| parse_delivery(r))
        .is_some_and(|d| d.digest_threshold >= 2);
    if let Some(route) = decide::route_by_batch(records.len(), digests) {
        return route;
    }
    let empty = buf.is_empty(group).await;
    if let Err(e) = &empty {
        tracing::warn!(error = %e, "could not read the channel's backlog");
    }
    if let Some(route) = decide::route_by_backlog(&empty) {
        return route;
    }
    let next = deps.channels.next_slot(group).await;
    decide::route_by_slot(&next, deps.clock.now_ms())
}

/// Moves a batch into its channel's backlog and queues a drain ticket; the batch leaves the
/// queue only when both are done (else it comes back, and storing it again rewrites it).
async fn spill<'r>(
    group: &GroupId,
    records: &[&'r SqsMessage],
    buf: &buffer::Buffer,
    deps: &DeliveryDeps,
) -> (Vec<(&'r SqsMessage, Fate)>, Vec<crate::journey::Record>) {
    let later = |d| records.iter().map(|r| (*r, Fate::Later(d))).collect();
    let now_ms = deps.clock.now_ms();
    let expires_at = now_ms / 1000 + deps.max_age.as_secs() as i64 + 86_400;
    if let Err(e) = buf.put(group, records, expires_at).await {
        tracing::warn!(error = %e, outcome = "retry", "could not store the batch in the channel's backlog; it waits in the queue");
        return (later(retry::STATE_UNAVAILABLE_RETRY), Vec::new());
    }
    let last = records
        .last()
        .and_then(|r| r.message_id.clone())
        .unwrap_or_default();
    let ticket = crate::aws::sqs::Outgoing {
        body: buffer::ticket_body(group),
        group_id: Some(buffer::ticket_group(group)),
        dedup_id: Some(format!("drain-{last}").chars().take(128).collect()),
        attributes: Default::default(),
    };
    let sent = crate::aws::sqs::send_all(
        &deps.sqs,
        &deps.drain_queue_url,
        std::slice::from_ref(&ticket),
    )
    .await;
    if let Some(Err(e)) = sent.into_iter().next() {
        tracing::warn!(error = %e, outcome = "retry", "could not queue the backlog's drain ticket; the batch waits in the queue");
        return (later(retry::STATE_UNAVAILABLE_RETRY), Vec::new());
    }
    let journey = records
        .iter()
        .filter_map(|r| parse_delivery(r).map(|d| (r, d)))
        .map(|(r, d)| {
            group::record(&d, r, crate::journey::Outcome::Paced, now_ms)
                .reason("the channel is busy: waiting in its backlog to go out in its next digest")
        })
        .collect();
    tracing::info!(
        outcome = "buffered",
        messages = records.len(),
        "the channel is busy; the batch waits in its backlog"
    );
    (records.iter().map(|r| (*r, Fate::Done)).collect(), journey)
}

/// Posts a channel's backlog, oldest first, a few posts per round through the group loop,
/// until it is empty, a message asks to wait, or the budget is spent; removes what the loop
/// settled. The tickets (one batch of the channel's ticket group) are done when the backlog
/// is; else the first comes back when the loop says and the others are dropped. The budget
/// counts from `started_ms`, when the invocation began.
///
/// While a round posts, the next is read (what reached the backlog since) and claimed, so
/// the tables' latency stays off the time between posts; a round read in line (the first,
/// or one after a linger) makes one post, to keep that latency short.
async fn drain<'r>(
    group: &GroupId,
    tickets: &[&'r SqsMessage],
    leases: &Leases<'_>,
    buf: &buffer::Buffer,
    deps: &DeliveryDeps,
    started_ms: i64,
    team_pauses: &mut TeamPauses,
) -> (Vec<(&'r SqsMessage, Fate)>, Vec<crate::journey::Record>) {
    // The records of every round the drain reads: a round read ahead borrows them while
    // the round before it posts.
    let records = elsa::sync::FrozenVec::new();
    let reader = Reader {
        group,
        leases,
        buf,
        deps,
        records: &records,
    };
    let mut journey = Vec::new();
    // Settled messages not yet cleared from the backlog: the next read clears them while it
    // reads (those still there are left out), so the bookkeeping of one post overlaps the
    // preparation of the next.
    let mut settling: Vec<String> = Vec::new();
    let mut linger = Duration::ZERO;
    let mut rounds = 0_usize;
    let mut ahead: Option<Round<'_>> = None;
    let ticket_wait = loop {
        let round = match ahead.take() {
            Some(round) => round,
            None => {
                let clearing = std::mem::take(&mut settling);
                match reader.read(&clearing, &clearing, None, team_pauses).await {
                    Ok(Some(round)) => round,
                    Ok(None) => break None,
                    Err(e) => {
                        tracing::warn!(error = %e, outcome = "retry", "could not read the channel's backlog");
                        break Some(retry::STATE_UNAVAILABLE_RETRY);
                    }
                }
            }
        };
        rounds += 1;
        let read_ahead =
            decide::drain_reads_ahead(started_ms, deps.clock.now_ms(), deps.drain_budget);
        let clearing = if read_ahead {
            std::mem::take(&mut settling)
        } else {
            Vec::new()
        };
        // What the round posts and what it cleared are older than its last message.
        let after = round.items.last().map(|b| b.sk.clone());
        // The read ahead learns workspace pauses apart; those the posts learnt win.
        let mut ahead_pauses = team_pauses.clone();
        let Round {
            items,
            claimed,
            more,
            read_ahead: was_ahead,
        } = round;
        let (out, next) =
            futures_util::join!(group::post(group, claimed, deps, team_pauses), async {
                if read_ahead {
                    Some(
                        reader
                            .read(&clearing, &[], after.as_deref(), &mut ahead_pauses)
                            .await,
                    )
                } else {
                    None
                }
            });
        for (team, pause) in ahead_pauses {
            team_pauses.entry(team).or_insert(pause);
        }
        journey.extend(out.journey);
        if !was_ahead {
            // The look after a linger is timed by how long a round read in line waited.
            linger = decide::next_linger(linger, out.waited);
        }
        let (settled, later) = settle(&items, &out.fates);
        if let Some((_, sk)) = &later {
            if let Err(e) = buf.count_try(group, sk).await {
                tracing::warn!(error = %e, "could not count the backlog message's try");
            }
        }
        let whole = settled.len() == items.len();
        let any = !settled.is_empty();
        settling.extend(settled);
        let (next, left) = match next {
            Some(Ok(next)) => (next, false),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "could not read the channel's backlog ahead; reading it after the post");
                (None, more)
            }
            None => (None, more),
        };
        let end = decide::RoundEnd {
            left: left || next.is_some() || !whole,
            ahead: next.is_some(),
            later: later.map(|(d, _)| d),
            settled: any,
        };
        match decide::drain_step(
            end,
            linger,
            started_ms,
            deps.clock.now_ms(),
            deps.drain_budget,
        ) {
            decide::DrainStep::Again => ahead = next,
            decide::DrainStep::Linger(d) => {
                tracing::debug!(
                    linger_ms = d.as_millis() as u64,
                    "backlog emptied; looking again before the next slot"
                );
                tokio::time::sleep(d).await;
            }
            decide::DrainStep::Ticket(wait) => {
                if let Some(next) = next {
                    // Claimed ahead, behind a message that comes back: released, in order.
                    let out = next
                        .claimed
                        .hand_back(wait.unwrap_or(Duration::ZERO), deps)
                        .await;
                    journey.extend(out.journey);
                    settling.extend(settle(&next.items, &out.fates).0);
                }
                break wait;
            }
        }
    };
    clear(buf, group, &settling).await;
    match ticket_wait {
        None => tracing::info!(
            rounds,
            outcome = "drained",
            "the channel's backlog had nothing more at the drain's last read"
        ),
        Some(d) => tracing::info!(
            rounds,
            wait_ms = d.as_millis() as u64,
            outcome = "ticket_back",
            "the channel's backlog waits; its ticket goes back to the queue"
        ),
    }
    let fates = tickets
        .iter()
        .enumerate()
        .map(|(i, t)| match ticket_wait {
            Some(d) if i == 0 => (*t, Fate::Later(d)),
            _ => (*t, Fate::Done),
        })
        .collect();
    (fates, journey)
}

/// One round of a drain: the backlog's next messages, as many as a few posts carry, read
/// and claimed.
struct Round<'a> {
    items: Vec<buffer::Buffered>,
    claimed: group::Claimed<'a>,
    /// The read found messages behind the round's.
    more: bool,
    /// Read while the round before it posted.
    read_ahead: bool,
}

/// Reads a channel's backlog round by round.
struct Reader<'a> {
    group: &'a GroupId,
    leases: &'a Leases<'a>,
    buf: &'a buffer::Buffer,
    deps: &'a DeliveryDeps,
    records: &'a elsa::sync::FrozenVec<Box<[SqsMessage]>>,
}

impl<'a> Reader<'a> {
    /// The backlog's next round, claimed in the ledger: its messages queued after `after`
    /// (read ahead: after the round posting now), leaving out `skip` (settled, not yet
    /// cleared); `None` when nothing else waits. Clears `clearing` meanwhile.
    ///
    /// The backlog's messages are not hidden by SQS as queued ones are: only the ticket
    /// is. Each read first extends the visibility of every message of the invocation (the
    /// tickets, and any other channel's batch it carries), so no second invocation drains
    /// the channel, or takes a batch this one settled, while this one may still post
    /// (either would post twice).
    async fn read(
        &self,
        clearing: &[String],
        skip: &[String],
        after: Option<&str>,
        team_pauses: &mut TeamPauses,
    ) -> crate::error::Result<Option<Round<'a>>> {
        let posts = decide::drain_posts(after.is_some());
        let limit = digest::DIGEST_MAX * posts;
        let (_, loaded) = futures_util::join!(clear(self.buf, self.group, clearing), async {
            let leases = self.leases.handles.lock().await;
            crate::aws::sqs::hand_back(&self.deps.sqs, self.leases.queue, &leases).await;
            self.buf
                .load_after(self.group, after, limit + skip.len())
                .await
        });
        let mut items: Vec<buffer::Buffered> = loaded?
            .into_iter()
            .filter(|b| !skip.contains(&b.sk))
            .take(limit)
            .collect();
        if items.is_empty() {
            return Ok(None);
        }
        let parsed: Vec<Option<message::Delivery>> = items
            .iter()
            .map(|b| parse_delivery(&b.as_record(self.group)))
            .collect();
        let keys: Vec<Option<&str>> = parsed
            .iter()
            .map(|d| d.as_ref().and_then(|d| d.thread_key.as_deref()))
            .collect();
        let threshold = parsed
            .iter()
            .flatten()
            .next()
            .map(|d| d.digest_threshold)
            .unwrap_or(0);
        let take = decide::drain_take(&threads::units(&keys, threshold), posts)
            .max(1)
            .min(items.len());
        // A full read may have had more behind it.
        let more = items.len() >= limit || take < items.len();
        items.truncate(take);
        let records: &'a [SqsMessage] = self.records.push_get(
            items
                .iter()
                .map(|b| b.as_record(self.group))
                .collect::<Box<[_]>>(),
        );
        let refs: Vec<&'a SqsMessage> = records.iter().collect();
        let claimed = group::claim(self.group, &refs, self.deps, team_pauses).await;
        Ok(Some(Round {
            items,
            claimed,
            more,
            read_ahead: after.is_some(),
        }))
    }
}

/// The backlog keys of the round's settled messages, and the wait and key of the first
/// that comes back later.
fn settle(
    items: &[buffer::Buffered],
    fates: &[(&SqsMessage, Fate)],
) -> (Vec<String>, Option<(Duration, String)>) {
    let mut settled = Vec::new();
    let mut later = None;
    for (record, fate) in fates {
        let Some(item) = items
            .iter()
            .find(|b| Some(b.record_id()) == record.message_id)
        else {
            continue;
        };
        match fate {
            Fate::Done => settled.push(item.sk.clone()),
            Fate::Later(d) => {
                later.get_or_insert((*d, item.sk.clone()));
            }
        }
    }
    (settled, later)
}

/// Clears settled messages from a channel's backlog. Those it cannot stay; the next drain
/// finds them in the ledger and does not post them again.
async fn clear(buf: &buffer::Buffer, group: &GroupId, settled: &[String]) {
    if settled.is_empty() {
        return;
    }
    if let Err(e) = buf.remove(group, settled).await {
        tracing::warn!(error = %e, "could not clear settled messages from the channel's backlog");
    }
}

/// A queued delivery, when its body reads as one.
fn parse_delivery(r: &SqsMessage) -> Option<message::Delivery> {
    serde_json::from_str(r.body.as_deref()?).ok()
}

/// The event id of a queued delivery, without reading the rest of it.
fn peek_event_id(r: &SqsMessage) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        event_id: String,
    }
    serde_json::from_str::<Peek>(r.body.as_deref()?)
        .ok()
        .map(|p| p.event_id)
}

/// Sets each failed message's visibility in `queue`, where it came from, so it comes back
/// when it should.
async fn hand_back(deps: &DeliveryDeps, queue: &str, later: &[(String, Duration)]) {
    let later: Vec<(String, i32)> = later
        .iter()
        .map(|(handle, d)| (handle.clone(), retry::hand_back_secs(*d)))
        .collect();
    crate::aws::sqs::hand_back(&deps.sqs, queue, &later).await;
}

#[cfg(test)]
impl DeliveryDeps {
    /// Deps for unit tests: the ledger and channel state in `state`, Slack at `slack_api_url`
    /// with the static token `xoxb-test`, the system clock, and AWS clients that point
    /// nowhere (the paths under test never park).
    pub(crate) fn with_fake(slack_api_url: &str, state: Arc<fake::FakeState>) -> Self {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let token = crate::config::TokenConfig::Env(secrecy::SecretString::from("xoxb-test"));
        Self {
            slack: SlackClient::new(slack_api_url, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("Slack client: {e}")),
            tokens: WorkspaceTokens::new(
                TokenSource::new(token, aws_sdk_secretsmanager::Client::new(&sdk)),
                None,
                None,
            ),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queue_url: "http://127.0.0.1:9/queue".into(),
            drain_queue_url: "http://127.0.0.1:9/drains".into(),
            dlq_url: "http://127.0.0.1:9/dlq".into(),
            ledger: state.clone(),
            channels: state,
            clock: Arc::new(SystemClock),
            max_age: Duration::from_secs(3600),
            max_inline_wait: MAX_INLINE_WAIT,
            retry_schedule: RETRY_SCHEDULE.to_vec(),
            ops_channel: None,
            journey: None,
            threads: None,
            mentions: mention::Mentions::default(),
            buffer: None,
            drain_budget: DRAIN_BUDGET,
            settled: Mutex::new(HashSet::new()),
            channel_ids: Mutex::new(HashMap::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(arn: Option<&str>) -> SqsEvent {
        let mut record = SqsMessage::default();
        record.event_source_arn = arn.map(str::to_owned);
        let mut event = SqsEvent::default();
        event.records = vec![record];
        event
    }

    #[test]
    fn a_batch_goes_back_to_the_queue_its_records_name_as_their_source() {
        let deps = DeliveryDeps::with_fake("http://127.0.0.1:9", Arc::default());
        let arn = |name: &str| format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        assert_eq!(
            source_queue(&from(Some(&arn("drains"))), &deps),
            deps.drain_queue_url
        );
        assert_eq!(
            source_queue(&from(Some(&arn("queue"))), &deps),
            deps.queue_url
        );
        // A name that only ends like the drain queue's, or no source at all: the Slack queue.
        assert_eq!(
            source_queue(&from(Some(&arn("old-drains"))), &deps),
            deps.queue_url
        );
        assert_eq!(source_queue(&from(None), &deps), deps.queue_url);
        assert_eq!(source_queue(&SqsEvent::default(), &deps), deps.queue_url);
    }
}
