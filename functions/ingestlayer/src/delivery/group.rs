//! One FIFO group (a workspace's channel) of a batch, in order: the loop that carries out
//! what [`super::decide`] decides. It reads and writes the ledger and channel state, asks
//! Slack, parks, and says for each message whether it is done or comes back later; at the
//! group's first failure that message and every later one come back together.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;

use crate::delivery::channel_store::{Pause, PauseScope};
use crate::delivery::decide::{self, Admit, AfterHistory, AfterPost, Fate, Posted, Rest, Slot};
use crate::delivery::ledger::Entry;
use crate::delivery::message::{Delivery, Item};
use crate::delivery::park::park;
use crate::delivery::platform::{Platform, Verdict};
use crate::delivery::slack_platform::SlackPlatform;
use crate::delivery::{membership, mention, ops_notice, pacing, post, threads, DeliveryDeps};
use crate::error::Error;
use crate::ids::{DeliveryKey, GroupId, TeamId};
use crate::journey::{Outcome, Record, Stage};

/// The workspace pauses learnt during one batch, so each workspace is read once.
pub type TeamPauses = HashMap<TeamId, Option<Pause>>;

/// What becomes of each message of a group, and what its journey records.
#[derive(Default)]
pub(super) struct Out<'r> {
    pub(super) fates: Vec<(&'r SqsMessage, Fate)>,
    pub(super) journey: Vec<Record>,
    /// How long the first post waited for its slot (the time the group had to spare).
    pub(super) waited: Option<Duration>,
}

impl<'r> Out<'r> {
    fn push(&mut self, r: &'r SqsMessage, fate: Fate) {
        self.fates.push((r, fate));
    }
}

/// Why the rest of a group goes back to the queue, as its journey tells it.
struct Why {
    outcome: Outcome,
    reason: String,
    slack: Option<String>,
}

impl Why {
    fn retry(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Retry,
            reason: reason.into(),
            slack: None,
        }
    }
}

/// A delivery record about `d` (received for the `receive_count(r)`th time) at `now_ms`.
pub(super) fn record(d: &Delivery, r: &SqsMessage, outcome: Outcome, now_ms: i64) -> Record {
    let mut rec = Record::new(
        &d.event_id,
        Stage::Delivery,
        outcome,
        now_ms,
        &format!("{}#{}", d.pipeline_id, d.destination),
    )
    .pipeline(&d.pipeline_id);
    rec.channels = vec![d.channel.to_string()];
    rec.event_name = Some(d.event_name.clone());
    rec.attempt = Some(receive_count(r));
    rec
}

/// A group's messages read, checked for age and claimed in the ledger: the digest units
/// left to post, in order, and what became of the others.
pub(super) struct Claimed<'r> {
    out: Out<'r>,
    units: VecDeque<Vec<Item<'r>>>,
}

impl<'r> Claimed<'r> {
    fn settled(out: Out<'r>) -> Self {
        Self {
            out,
            units: VecDeque::new(),
        }
    }

    /// Gives the units back unposted, to come back after `wait`: released in the ledger
    /// as never tried, in order.
    pub(super) async fn hand_back(self, wait: Duration, deps: &DeliveryDeps) -> Out<'r> {
        let Self { mut out, units } = self;
        let rest: Vec<Item<'r>> = units.into_iter().flatten().collect();
        let why = Why::retry("waits, in order, behind a message that comes back later");
        finish(Rest::Defer(wait), why, &rest, &[], deps, &mut out).await;
        out
    }
}

/// Processes one group's messages in order: claims them, then posts them.
pub(super) async fn process<'r>(
    group: &GroupId,
    records: &[&'r SqsMessage],
    deps: &DeliveryDeps,
    team_pauses: &mut TeamPauses,
) -> Out<'r> {
    let claimed = claim(group, records, deps, team_pauses).await;
    post(group, claimed, deps, team_pauses).await
}

/// Reads a group's messages in order, parks those that cannot go, and claims the rest in
/// the ledger at once; those found posted already are done. Stops, as the group loop
/// does, at the first message that must come back later.
pub(super) async fn claim<'r>(
    group: &GroupId,
    records: &[&'r SqsMessage],
    deps: &DeliveryDeps,
    team_pauses: &mut TeamPauses,
) -> Claimed<'r> {
    let mut out: Out<'r> = Out::default();
    let team = group.team();
    let slack: SlackPlatform<'_, 'r> = SlackPlatform::new(deps);

    // A paused workspace: its messages wait in the DLQ with the reason.
    let pause = match team_pauses.get(&team) {
        Some(p) => Ok(p.clone()),
        None => {
            let p = deps.channels.workspace_pause(&team).await;
            if let Ok(p) = &p {
                team_pauses.insert(team.clone(), p.clone());
            }
            p
        }
    };
    if let Err(e) = &pause {
        tracing::warn!(error = %e, outcome = "retry", "could not read workspace state");
    }
    if let Some(rest) = decide::workspace(&team, &pause) {
        let why = Why::retry("the workspace's state could not be read");
        finish(rest, why, &[], records, deps, &mut out).await;
        return Claimed::settled(out);
    }

    // Parse and check age, in order; then claim the rest in the ledger at once (one
    // request for a whole digest).
    let mut candidates: Vec<(&'r SqsMessage, Delivery, DeliveryKey)> = Vec::new();
    for r in records {
        let delivery = match parse(r) {
            Ok(d) => d,
            Err(e) => {
                out.push(r, park(r, None, &e.to_string(), deps).await);
                continue;
            }
        };
        let now_ms = deps.clock.now_ms();
        if let Some(reason) = decide::too_old(sent_ms(r), now_ms, deps.max_age) {
            out.journey
                .push(record(&delivery, r, Outcome::Parked, now_ms).reason(&reason));
            out.push(r, park(r, Some(&delivery), &reason, deps).await);
            continue;
        }
        let key = delivery.key();
        candidates.push((r, delivery, key));
    }
    let keys: Vec<DeliveryKey> = candidates.iter().map(|(_, _, k)| k.clone()).collect();
    let entries = deps.ledger.begin_all(&keys, deps.clock.now_ms()).await;
    let mut claimed = candidates.into_iter().zip(entries);
    let mut pending: Vec<Item<'r>> = Vec::new();
    while let Some(((r, delivery, key), entry)) = claimed.next() {
        let now_ms = deps.clock.now_ms();
        if let Err(e) = &entry {
            tracing::warn!(error = %e, outcome = "retry", "delivery ledger unavailable");
        }
        match decide::admit(entry) {
            Admit::Post => pending.push(Item {
                record: r,
                delivery,
                key,
                owner: None,
            }),
            Admit::AlreadyPosted { ts } => {
                tracing::info!(event_id = %delivery.event_id, ts = %ts, outcome = "already_delivered", "already posted; acknowledged without posting again");
                let mut rec = record(&delivery, r, Outcome::AlreadyPosted, now_ms)
                    .reason("the delivery ledger has it as posted");
                rec.ts = Some(ts);
                out.journey.push(rec);
                out.push(r, Fate::Done);
            }
            Admit::Rest(rest) => {
                let why = Why::retry("the delivery ledger could not be read");
                let unread = left_over(r, claimed, &mut pending, deps).await;
                finish(rest, why, &pending, &unread, deps, &mut out).await;
                return Claimed::settled(out);
            }
            Admit::Held { wait } => {
                tracing::info!(event_id = %delivery.event_id, wait_ms = wait.as_millis() as u64, outcome = "retry", "another invocation is posting it now; waiting for it");
                let why = Why::retry(
                    "another invocation is posting it now; waiting for it rather than risking a duplicate",
                );
                let unread = left_over(r, claimed, &mut pending, deps).await;
                finish(Rest::Defer(wait), why, &pending, &unread, deps, &mut out).await;
                return Claimed::settled(out);
            }
            Admit::CheckHistory { since_ms } => {
                let item = Item {
                    record: r,
                    delivery,
                    key,
                    owner: None,
                };
                let found = slack
                    .find(&item, since_ms)
                    .await
                    .unwrap_or(Err(Verdict::Retry {
                        reason: "Slack's history could not be searched".into(),
                        maybe_sent: false,
                    }));
                if let Err(Verdict::Retry { reason, .. }) = &found {
                    tracing::warn!(event_id = %item.delivery.event_id, error = %reason, outcome = "retry", "cannot tell whether an earlier attempt posted; waiting rather than risking a duplicate");
                }
                let decided =
                    decide::after_history(found, group, receive_count(r), slack.schedule());
                match decided {
                    AfterHistory::Post => pending.push(item),
                    AfterHistory::AlreadyPosted { ts } => {
                        tracing::info!(event_id = %item.delivery.event_id, ts = %ts, outcome = "already_delivered", "found in the channel's history after an uncertain attempt; not posting again");
                        if let Err(e) = deps.ledger.delivered(&item.key, &ts, None).await {
                            tracing::warn!(error = %e, "could not record the delivery");
                        }
                        let mut rec = record(&item.delivery, r, Outcome::AlreadyPosted, now_ms)
                            .reason("found in the channel's history after an uncertain attempt");
                        rec.ts = Some(ts);
                        out.journey.push(rec);
                        out.push(r, Fate::Done);
                    }
                    AfterHistory::Rest(rest) => {
                        if let Rest::Pause(_, p) = &rest {
                            // Retrying cannot tell either: surface it now, keep the backlog.
                            tracing::error!(event_id = %item.delivery.event_id, channel = %item.delivery.channel, slack_error = %p.error, action = %p.hint, outcome = "pause_channel", "cannot tell whether an earlier attempt posted: Slack will not show the channel's history; channel paused");
                        }
                        let why = Why::retry(
                            "cannot tell yet whether an earlier attempt posted; checking again rather than risking a duplicate",
                        );
                        // It stays uncertain, and this invocation no longer holds it.
                        unsure(deps, std::slice::from_ref(&item.key)).await;
                        let unread = left_over(r, claimed, &mut pending, deps).await;
                        finish(rest, why, &pending, &unread, deps, &mut out).await;
                        return Claimed::settled(out);
                    }
                }
            }
        }
    }

    let Some(first) = pending.first() else {
        return Claimed::settled(out);
    };
    // Digest when enough messages of the channel wait; otherwise one post each.
    // A digest gathers only consecutive messages of one thread key.
    let threshold = first.delivery.digest_threshold;
    let keys: Vec<Option<String>> = pending
        .iter()
        .map(|i| i.delivery.thread_key.clone())
        .collect();
    let keys: Vec<Option<&str>> = keys.iter().map(Option::as_deref).collect();
    let mut units: VecDeque<Vec<Item<'r>>> = VecDeque::new();
    let mut items = pending.into_iter();
    for size in threads::units(&keys, threshold) {
        units.push_back(items.by_ref().take(size).collect());
    }
    Claimed { out, units }
}

/// Posts a group's claimed units in order, each at its channel's slot; at the first that
/// cannot go, it and every later one come back together.
pub(super) async fn post<'r>(
    group: &GroupId,
    claimed: Claimed<'r>,
    deps: &DeliveryDeps,
    team_pauses: &mut TeamPauses,
) -> Out<'r> {
    let Claimed { mut out, mut units } = claimed;
    let team = group.team();
    let slack: SlackPlatform<'_, 'r> = SlackPlatform::new(deps);
    // Paused since the units were claimed (a drain claims a round while the one before it
    // posts): they are parked as the claim would have.
    if let (false, Some(Some(p))) = (units.is_empty(), team_pauses.get(&team)) {
        if let Some(rest) = decide::workspace(&team, &Ok(Some(p.clone()))) {
            let claimed: Vec<Item<'r>> = units.drain(..).flatten().collect();
            finish(rest, Why::retry(""), &claimed, &[], deps, &mut out).await;
            return out;
        }
    }
    while let Some(mut unit) = units.pop_front() {
        let interval = slack.interval(&unit[0]);
        // Before taking a slot, so the time between slot and post stays short. A token
        // failure is handled after the slot, as for the post.
        if let Ok(token) = deps.tokens.token(team.as_str()).await {
            membership::ensure_member(group, &unit[0].delivery.channel, &token, deps).await;
            for item in &mut unit {
                if let Some(email) = &item.delivery.mention {
                    item.owner = Some(mention::resolve(&team, email, &token, deps).await);
                }
            }
        }
        let first = &unit[0].delivery;
        let thread = match thread_of(first, deps).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, outcome = "retry", "the key's thread could not be read");
                let why = Why::retry("the key's thread could not be read");
                let rest_items = rest_of(unit, &mut units);
                finish(
                    Rest::Defer(crate::delivery::retry::STATE_UNAVAILABLE_RETRY),
                    why,
                    &rest_items,
                    &[],
                    deps,
                    &mut out,
                )
                .await;
                return out;
            }
        };
        let asked_ms = deps.clock.now_ms();
        let (slot, slot_ms) = pacing::wait_for_slot_at(
            deps.channels.as_ref(),
            deps.clock.as_ref(),
            group,
            interval,
            deps.max_inline_wait,
        )
        .await;
        let waited_ms = u64::try_from(deps.clock.now_ms() - asked_ms).unwrap_or(0);
        // The first post's wait tells how much the round's reading and claiming left over.
        out.waited.get_or_insert(Duration::from_millis(waited_ms));
        if let Slot::Rest(rest) = slot {
            let why = match &rest {
                Rest::Defer(d) if *d == crate::delivery::retry::STATE_UNAVAILABLE_RETRY => {
                    tracing::warn!(outcome = "retry", "channel state unavailable");
                    Why::retry("the channel's pacing state could not be read")
                }
                Rest::Defer(d) => {
                    tracing::info!(
                        wait_ms = d.as_millis() as u64,
                        outcome = "paced",
                        "channel busy; the rest of its messages wait in the queue"
                    );
                    Why {
                        outcome: Outcome::Paced,
                        reason: "the channel's next posting slot is later; waiting in the queue"
                            .into(),
                        slack: None,
                    }
                }
                _ => Why::retry(""),
            };
            let rest_items = rest_of(unit, &mut units);
            finish(rest, why, &rest_items, &[], deps, &mut out).await;
            return out;
        }

        // The post reads the token again (cached); a failure is told apart here.
        let token = match deps.tokens.token(team.as_str()).await {
            Ok(t) => t,
            Err(e) => {
                let rest = decide::without_token(&e, &team);
                let why = Why::retry(format!("no usable Slack token yet: {e}"));
                if let Rest::Pause(_, p) = &rest {
                    tracing::error!(team = %team, action = %p.hint, outcome = "pause_workspace", "workspace has no usable token; its backlog waits in the DLQ");
                    team_pauses.insert(team.clone(), Some(p.clone()));
                } else {
                    tracing::error!(error = %e, outcome = "retry", "no Slack token; the workspace's messages wait");
                }
                let rest_items = rest_of(unit, &mut units);
                finish(rest, why, &rest_items, &[], deps, &mut out).await;
                return out;
            }
        };
        let reply_to = thread.as_ref().and_then(|(_, ts)| ts.as_deref());
        let messages: Vec<&Item<'r>> = unit.iter().collect();
        let threaded = slack.in_thread(reply_to);
        let (sent, sent_ms) = pacing::send_on_slot(
            deps.channels.as_ref(),
            deps.clock.as_ref(),
            group,
            slot_ms,
            interval,
            |sent_ms| threaded.send(&messages, false, sent_ms / 1000),
        )
        .await;
        let verdict = slack.classify(&sent);
        let channel_id = post::channel_id(&sent.answer);
        let slack_said = sent.answer.summary();
        let channel = sent.channel;
        let slack_ms = u64::try_from(deps.clock.now_ms() - sent_ms).unwrap_or(0);
        let first = &unit[0].delivery;
        let event_ids: Vec<&str> = unit.iter().map(|i| i.delivery.event_id.as_str()).collect();
        let posted = Posted {
            group,
            messages: unit.len(),
            receive_count: receive_count(unit[0].record),
            now_ms: deps.clock.now_ms(),
        };
        let decided = decide::after_post(verdict, channel_id, &posted, slack.schedule());
        if let Some(error) = decide::post_error(&decided) {
            if let Err(e) = deps
                .channels
                .record_error(group, &error, &deps.clock.now_text())
                .await
            {
                tracing::warn!(error = %e, "could not record the channel's last error");
            }
        }
        match decided {
            AfterPost::Delivered { ts, channel_id } => {
                // The ledger records the digest's events at once (one request in DynamoDB)
                // while Slack is asked for the permalink and the thread is remembered.
                let keys: Vec<DeliveryKey> = unit.iter().map(|i| i.key.clone()).collect();
                let link = async {
                    match deps
                        .slack
                        .permalink(&token, channel_id.as_deref().unwrap_or(&channel), &ts)
                        .await
                    {
                        Ok(link) => Some(link).filter(|l| !l.is_empty()),
                        Err(e) => {
                            tracing::info!(error = %e, "no permalink for the post; the journey keeps its ts");
                            None
                        }
                    }
                };
                let threaded = async {
                    if let Some((pk, existing)) = &thread {
                        record_thread(
                            pk,
                            existing.as_deref(),
                            sent.thread_gone.as_deref(),
                            &ts,
                            deps,
                        )
                        .await;
                    }
                };
                let (recorded, permalink, ()) = futures_util::join!(
                    deps.ledger.delivered_all(&keys, &ts, channel_id.as_deref()),
                    link,
                    threaded
                );
                let now_ms = deps.clock.now_ms();
                let outcome = if unit.len() > 1 {
                    Outcome::Digested
                } else {
                    Outcome::Posted
                };
                for item in &unit {
                    let mut rec = record(&item.delivery, item.record, outcome, now_ms);
                    rec.ts = Some(ts.clone());
                    rec.permalink = permalink.clone();
                    rec.slack = Some(slack_said.clone());
                    rec.wait_ms = Some(waited_ms);
                    rec.slack_ms = Some(slack_ms);
                    rec.received_ms = Some(item.delivery.received_ms).filter(|ms| *ms > 0);
                    rec.digest_of = (unit.len() > 1).then_some(unit.len());
                    out.journey.push(rec);
                }
                for (item, result) in unit.iter().zip(recorded) {
                    if let Err(e) = result {
                        tracing::warn!(event_id = %item.delivery.event_id, error = %e, "posted, but the ledger could not record it");
                    }
                    out.push(item.record, Fate::Done);
                }
                tracing::info!(event_ids = ?event_ids, pipeline = %first.pipeline_id, channel = %first.channel, ts = %ts, digest = unit.len() > 1, outcome = "delivered", "posted to Slack");
                if let Some(id) = channel_id.filter(|id| *id != channel) {
                    deps.remember_channel_id(group, &id).await;
                }
            }
            AfterPost::RateLimited { until_ms, wait } => {
                tracing::warn!(channel = %first.channel, retry_after_s = wait.as_secs(), outcome = "rate_limited", "Slack rate-limited the channel; it is silent for exactly Retry-After");
                let _ = deps.channels.hold_until(group, until_ms).await;
                let rest_items = rest_of(unit, &mut units);
                let why = Why {
                    outcome: Outcome::RateLimited,
                    reason: format!(
                        "Slack answered 429; the channel is silent for Retry-After ({} s)",
                        wait.as_secs()
                    ),
                    slack: Some(slack_said),
                };
                finish(Rest::Defer(wait), why, &rest_items, &[], deps, &mut out).await;
                return out;
            }
            AfterPost::Retry {
                delay,
                maybe_posted,
                reason,
            } => {
                tracing::warn!(event_ids = ?event_ids, channel = %first.channel, reason = %reason, maybe_posted, retry_in_s = delay.as_secs(), outcome = "retry", "transient Slack failure; will retry");
                let rest: Vec<Item<'r>> = units.drain(..).flatten().collect();
                if maybe_posted {
                    let keys: Vec<DeliveryKey> = unit.iter().map(|i| i.key.clone()).collect();
                    unsure(deps, &keys).await;
                } else {
                    release(deps, &unit).await;
                }
                let now_ms = deps.clock.now_ms();
                for i in &unit {
                    let mut rec = record(&i.delivery, i.record, Outcome::Retry, now_ms)
                        .reason(format!("transient Slack failure ({reason}); trying again"));
                    rec.slack = Some(slack_said.clone());
                    rec.wait_ms = Some(delay.as_millis() as u64);
                    out.journey.push(rec);
                    out.push(i.record, Fate::Later(delay));
                }
                let why = Why::retry("waits, in order, behind a message that is retried");
                finish(Rest::Defer(delay), why, &rest, &[], deps, &mut out).await;
                return out;
            }
            AfterPost::SplitDigest { reason } => {
                tracing::warn!(reason = %reason, outcome = "split_digest", "Slack refused the digest; posting its messages one by one");
                for item in unit.into_iter().rev() {
                    units.push_front(vec![item]);
                }
            }
            AfterPost::Park(reason) => {
                let why = Why {
                    outcome: Outcome::Parked,
                    reason: String::new(),
                    slack: Some(slack_said),
                };
                finish(Rest::Park(reason), why, &unit, &[], deps, &mut out).await;
            }
            AfterPost::Pause(scope, pause) => {
                match &scope {
                    PauseScope::Channel(_) => {
                        tracing::error!(channel = %first.channel, slack_error = %pause.error, action = %pause.hint, outcome = "pause_channel", "channel paused; its backlog waits in the DLQ");
                    }
                    PauseScope::Workspace(_) => {
                        tracing::error!(team = %team, slack_error = %pause.error, action = %pause.hint, outcome = "pause_workspace", "workspace paused; its backlog waits in the DLQ");
                        // The token no longer works: read it again once the workspace is
                        // reconnected.
                        deps.tokens.invalidate(team.as_str()).await;
                        team_pauses.insert(team.clone(), Some(pause.clone()));
                    }
                }
                let rest_items = rest_of(unit, &mut units);
                let why = Why {
                    outcome: Outcome::Parked,
                    reason: String::new(),
                    slack: Some(slack_said),
                };
                finish(
                    Rest::Pause(scope, pause),
                    why,
                    &rest_items,
                    &[],
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

/// The state-table key of `d`'s thread of the day and its `ts` if it was started: `None`
/// for a message without a thread key, or when delivery has no state table.
async fn thread_of(
    d: &Delivery,
    deps: &DeliveryDeps,
) -> Result<Option<(String, Option<String>)>, Error> {
    let (Some(key), Some(store)) = (&d.thread_key, &deps.threads) else {
        return Ok(None);
    };
    let day = threads::utc_day(deps.clock.now_ms());
    let pk = threads::thread_pk(&d.team, &d.channel, key, &day);
    let ts = store.get(&pk).await?;
    Ok(Some((pk, ts)))
}

/// After a post: a top-level post of a key with no thread yet (or whose thread was gone)
/// becomes the day's thread. A lost race keeps the winner's; a failed write is logged (the
/// next message of the key then starts another thread).
async fn record_thread(
    pk: &str,
    existing: Option<&str>,
    gone: Option<&str>,
    ts: &str,
    deps: &DeliveryDeps,
) {
    let Some(store) = &deps.threads else { return };
    let now_ms = deps.clock.now_ms();
    let stored = match (existing, gone) {
        (_, Some(old)) => store.restart(pk, old, ts, now_ms).await,
        (None, None) => store.start(pk, ts, now_ms).await,
        (Some(_), None) => return,
    };
    match stored {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(
                "another delivery started the key's thread first; later messages reply there"
            )
        }
        Err(e) => tracing::warn!(error = %e, "posted, but the key's thread could not be stored"),
    }
}

/// The unit at hand and every later one, in order.
fn rest_of<'r>(unit: Vec<Item<'r>>, units: &mut VecDeque<Vec<Item<'r>>>) -> Vec<Item<'r>> {
    unit.into_iter().chain(units.drain(..).flatten()).collect()
}

/// Carries out what becomes of the rest of a group: `claimed` messages (claimed in the
/// ledger, not tried: released first) and then `unread` records (not yet claimed), in order.
async fn finish<'r>(
    rest: Rest,
    why: Why,
    claimed: &[Item<'r>],
    unread: &[&'r SqsMessage],
    deps: &DeliveryDeps,
    out: &mut Out<'r>,
) {
    release(deps, claimed).await;
    let now_ms = deps.clock.now_ms();
    // What the journey says of each message: `why` for a deferral, the park reason (and
    // the pause's hint) for a park.
    let hint = match &rest {
        Rest::Pause(_, pause) => Some(pause.hint.clone()),
        _ => None,
    };
    let mut note = |d: &Delivery, r: &SqsMessage, reason: &str| {
        let outcome = match &rest {
            Rest::Defer(_) => why.outcome,
            _ => Outcome::Parked,
        };
        let mut rec = record(d, r, outcome, now_ms).reason(reason);
        rec.slack.clone_from(&why.slack);
        rec.hint.clone_from(&hint);
        if let Rest::Defer(wait) = &rest {
            rec.wait_ms = Some(wait.as_millis() as u64);
        }
        out.journey.push(rec);
    };
    let reason = match &rest {
        Rest::Defer(d) => {
            for i in claimed {
                note(&i.delivery, i.record, &why.reason);
            }
            for r in unread {
                if let Ok(delivery) = parse(r) {
                    note(&delivery, r, &why.reason);
                }
            }
            out.fates
                .extend(claimed.iter().map(|i| (i.record, Fate::Later(*d))));
            out.fates
                .extend(unread.iter().map(|r| (*r, Fate::Later(*d))));
            return;
        }
        Rest::Park(reason) => reason.clone(),
        Rest::Pause(scope, pause) => {
            if let Err(e) = deps
                .channels
                .record_pause(scope, pause, &deps.clock.now_text())
                .await
            {
                tracing::warn!(error = %e, "could not record the pause; the messages are parked anyway");
            }
            // Before parking, so the pause (not each parked message) is what is noticed.
            ops_notice::send(deps, ops_notice::paused(scope, pause)).await;
            decide::pause_reason(scope, pause)
        }
    };
    for item in claimed {
        note(&item.delivery, item.record, &reason);
    }
    let unread: Vec<(&'r SqsMessage, Option<Delivery>)> =
        unread.iter().map(|r| (*r, parse(r).ok())).collect();
    for (r, delivery) in &unread {
        if let Some(d) = delivery {
            note(d, r, &reason);
        }
    }
    for item in claimed {
        let fate = park(item.record, Some(&item.delivery), &reason, deps).await;
        out.push(item.record, fate);
    }
    for (r, delivery) in unread {
        let fate = park(r, delivery.as_ref(), &reason, deps).await;
        out.push(r, fate);
    }
}

/// What is left of a group when its loop stops at `first` (which stays as the ledger has it):
/// the messages claimed afresh after it join `claimed` (they are released as never tried);
/// those it took over from an uncertain attempt are marked unsure again, so the next attempt
/// checks the history at once; `first` and the rest come back as they are.
async fn left_over<'r>(
    first: &'r SqsMessage,
    rest: impl Iterator<
        Item = (
            (&'r SqsMessage, Delivery, DeliveryKey),
            Result<Entry, Error>,
        ),
    >,
    claimed: &mut Vec<Item<'r>>,
    deps: &DeliveryDeps,
) -> Vec<&'r SqsMessage> {
    let mut unread = vec![first];
    let mut taken_over = Vec::new();
    for ((record, delivery, key), entry) in rest {
        match entry {
            Ok(Entry::Clear) => claimed.push(Item {
                record,
                delivery,
                key,
                owner: None,
            }),
            Ok(Entry::Uncertain { .. }) => {
                taken_over.push(key);
                unread.push(record);
            }
            _ => unread.push(record),
        }
    }
    unsure(deps, &taken_over).await;
    unread
}

/// Marks keys this invocation holds without knowing whether they were posted (an attempt
/// that may have posted, a history that could not tell) as unsure: the next attempt checks
/// the history at once instead of waiting out this invocation's claim.
async fn unsure(deps: &DeliveryDeps, keys: &[DeliveryKey]) {
    if keys.is_empty() {
        return;
    }
    for (key, r) in keys.iter().zip(deps.ledger.unsure_all(keys).await) {
        if let Err(e) = r {
            tracing::warn!(key = %key, error = %e, "could not mark the attempt unsure; the next one waits for this claim to go stale");
        }
    }
}

/// Marks items that were claimed but not tried as certainly not posted.
async fn release(deps: &DeliveryDeps, items: &[Item<'_>]) {
    if items.is_empty() {
        return;
    }
    let keys: Vec<DeliveryKey> = items.iter().map(|i| i.key.clone()).collect();
    let released = deps.ledger.not_posted_all(&keys).await;
    for (item, r) in items.iter().zip(released) {
        if let Err(e) = r {
            tracing::warn!(event_id = %item.delivery.event_id, error = %e, "could not release the ledger entry; the next attempt checks history first");
        }
    }
}

/// The record's body as a [`Delivery`]; the error is the park reason.
pub(super) fn parse(r: &SqsMessage) -> Result<Delivery, Error> {
    match r.body.as_deref().map(serde_json::from_str::<Delivery>) {
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(Error::invalid("unreadable delivery message", e)),
        None => Err(Error::NotFound("delivery message has no body".into())),
    }
}

fn receive_count(r: &SqsMessage) -> usize {
    r.attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// When the message was first sent to the queue (ms since the epoch).
fn sent_ms(r: &SqsMessage) -> Option<i64> {
    r.attributes.get("SentTimestamp")?.parse().ok()
}

#[cfg(test)]
mod tests {
    //! The group loop against the in-memory fake and the Slack stand-in, for the paths
    //! that do not park (parking is tested through the emulator).
    use std::sync::Arc;
    use std::time::Duration;

    use slack_standin::{Fault, FaultKind, Standin, StandinConfig};

    use super::*;
    use crate::delivery::channel_store::ChannelStore;
    use crate::delivery::clock::{Clock, SystemClock};
    use crate::delivery::fake::{FakeState, Status};
    use crate::delivery::ledger::LedgerStore;
    use crate::delivery::retry::STATE_UNAVAILABLE_RETRY;
    use crate::slack::block_kit::RenderedMessage;

    struct Setup {
        standin: Standin,
        state: Arc<FakeState>,
        deps: DeliveryDeps,
    }

    async fn setup() -> Setup {
        let standin = Standin::start(StandinConfig {
            rate_per_channel_per_sec: f64::INFINITY,
            ..StandinConfig::default()
        })
        .await
        .unwrap();
        let state = Arc::new(FakeState::default());
        let deps = DeliveryDeps::with_fake(&standin.api_url(), state.clone());
        Setup {
            standin,
            state,
            deps,
        }
    }

    fn delivery(n: usize, digest_threshold: usize) -> Delivery {
        Delivery {
            v: 1,
            event_id: format!("local:e{n}"),
            event_name: "signup".into(),
            received_ms: 0,
            pipeline_id: "p".into(),
            destination: 0,
            team: TeamId::default_team(),
            channel: crate::ids::ChannelRef::parse("#alerts").unwrap(),
            message: RenderedMessage {
                text: format!("message {n}"),
                blocks: Vec::new(),
                truncated: false,
            },
            min_interval_ms: 0,
            digest_threshold,
            link: None,
            thread_key: None,
            mention: None,
        }
    }

    /// `n` single posts to #alerts (no digest): messages 1 to n.
    fn deliveries(n: usize) -> Vec<Delivery> {
        (1..=n).map(|i| delivery(i, 0)).collect()
    }

    /// `d` as SQS hands it out for the `receive_count`th time.
    fn record_received(d: &Delivery, receive_count: usize) -> SqsMessage {
        let mut r = SqsMessage::default();
        r.message_id = Some(d.event_id.clone());
        r.receipt_handle = Some(format!("h-{}", d.event_id));
        r.body = Some(serde_json::to_string(d).unwrap());
        r.attributes = HashMap::from([
            ("MessageGroupId".to_owned(), d.group_id()),
            (
                "ApproximateReceiveCount".to_owned(),
                receive_count.to_string(),
            ),
            ("SentTimestamp".to_owned(), SystemClock.now_ms().to_string()),
        ]);
        r
    }

    async fn run(s: &Setup, deliveries: &[Delivery]) -> Vec<(String, Fate)> {
        run_received(s, deliveries, 1).await
    }

    async fn run_received(
        s: &Setup,
        deliveries: &[Delivery],
        receive_count: usize,
    ) -> Vec<(String, Fate)> {
        let records: Vec<SqsMessage> = deliveries
            .iter()
            .map(|d| record_received(d, receive_count))
            .collect();
        let refs: Vec<&SqsMessage> = records.iter().collect();
        let mut pauses = TeamPauses::new();
        process(&deliveries[0].group(), &refs, &s.deps, &mut pauses)
            .await
            .fates
            .into_iter()
            .map(|(r, f)| (r.message_id.clone().unwrap(), f))
            .collect()
    }

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("local:e{i}")).collect()
    }

    /// Messages 1 to n, each with `fate`.
    fn all(n: usize, fate: Fate) -> Vec<(String, Fate)> {
        ids(n).into_iter().map(|id| (id, fate)).collect()
    }

    #[tokio::test]
    async fn messages_are_posted_in_order_and_recorded_as_delivered() {
        let s = setup().await;
        let ds = deliveries(3);
        let fates = run(&s, &ds).await;
        assert_eq!(fates, all(3, Fate::Done));
        let texts: Vec<String> = s
            .standin
            .messages_in("alerts")
            .into_iter()
            .filter_map(|m| m.text)
            .collect();
        assert_eq!(texts, ["message 1", "message 2", "message 3"]);
        assert!(
            s.state.last_errors.lock().unwrap().is_empty(),
            "a post that landed records no error"
        );
        for d in &ds {
            assert!(matches!(
                s.state.status(&d.key()),
                Some(Status::Delivered { .. })
            ));
        }
    }

    #[tokio::test]
    async fn a_message_the_ledger_has_as_delivered_is_acknowledged_without_posting() {
        let s = setup().await;
        let d = delivery(1, 0);
        s.state.delivered(&d.key(), "1.2", None).await.unwrap();
        let fates = run(&s, std::slice::from_ref(&d)).await;
        assert_eq!(fates, vec![("local:e1".to_owned(), Fate::Done)]);
        assert!(s.standin.messages().is_empty(), "posted again");
    }

    #[tokio::test]
    async fn enough_waiting_messages_go_out_as_one_digest() {
        let s = setup().await;
        let ds: Vec<Delivery> = (1..=3).map(|n| delivery(n, 3)).collect();
        let fates = run(&s, &ds).await;
        assert!(fates.iter().all(|(_, f)| *f == Fate::Done), "{fates:?}");
        let posted = s.standin.messages_in("alerts");
        assert_eq!(posted.len(), 1);
        let metadata = posted[0].metadata.clone().unwrap();
        assert_eq!(metadata["event_type"], "ingestlayer_digest");
        assert_eq!(
            metadata["event_payload"]["event_ids"],
            serde_json::json!(ids(3))
        );
    }

    #[tokio::test]
    async fn after_a_transient_failure_the_post_and_every_later_message_come_back_in_order() {
        let s = setup().await;
        s.standin
            .inject(Fault::once(FaultKind::HttpStatus(500)).on_channel("#alerts"));
        let ds = deliveries(3);
        let fates = run(&s, &ds).await;
        let got: Vec<&String> = fates.iter().map(|(id, _)| id).collect();
        assert_eq!(got, ids(3).iter().collect::<Vec<_>>(), "order kept");
        let last = s.state.last_errors.lock().unwrap()[&ds[0].group()].clone();
        assert!(
            last.contains("500") && last.ends_with("(retried)"),
            "the channel's last error: {last}"
        );
        let Fate::Later(d) = fates[0].1 else {
            panic!("{fates:?}");
        };
        assert!(fates.iter().all(|(_, f)| *f == Fate::Later(d)), "{fates:?}");
        assert!(
            d <= Duration::from_secs_f64(1.2),
            "first retry after about a second"
        );
        // A 500 may have posted: the first keeps its claim, so the next attempt checks
        // history; the others were never tried and are released.
        assert!(matches!(
            s.state.status(&ds[0].key()),
            Some(Status::Posting { .. })
        ));
        assert_eq!(s.state.status(&ds[1].key()), Some(Status::NotPosted));
        assert_eq!(s.state.status(&ds[2].key()), Some(Status::NotPosted));
    }

    /// Slack down through the whole retry schedule: at every receive count the post and the
    /// rest are handed back for that step's delay, never parked, the first keeping its claim;
    /// once Slack is up, both are posted, in order, once.
    #[tokio::test]
    async fn a_long_outage_is_handed_back_at_every_receive_count_and_never_parked() {
        use crate::delivery::retry::{retry_delay_with, RETRY_SCHEDULE};
        let s = setup().await;
        let ds = deliveries(2);
        // Step 5 of the schedule (30 s) is left out: it is also how long a message whose
        // parking failed waits, so there a park could pass for a retry.
        let counts: Vec<usize> = (1..=12).chain([50, 999]).filter(|c| *c != 5).collect();
        s.standin.inject(
            Fault::times(counts.len() as u32, FaultKind::HttpStatus(503)).on_channel("#alerts"),
        );
        for &count in &counts {
            let fates = run_received(&s, &ds, count).await;
            let Fate::Later(d) = fates[0].1 else {
                panic!("{count}: {fates:?}");
            };
            assert_eq!(fates, all(2, Fate::Later(d)), "{count}");
            assert!(
                d >= retry_delay_with(count, RETRY_SCHEDULE, 0.8)
                    && d <= retry_delay_with(count, RETRY_SCHEDULE, 1.2),
                "{count}: {d:?}"
            );
            assert!(matches!(
                s.state.status(&ds[0].key()),
                Some(Status::Posting { .. })
            ));
            assert_eq!(s.state.status(&ds[1].key()), Some(Status::NotPosted));
        }
        let failures = s
            .standin
            .requests()
            .iter()
            .filter(|r| r.status == 503)
            .count();
        assert_eq!(
            failures,
            counts.len(),
            "each attempt posted (after a history check)"
        );
        assert!(s.standin.messages().is_empty());

        let fates = run_received(&s, &ds, 1000).await;
        assert_eq!(fates, all(2, Fate::Done));
        let texts: Vec<String> = s
            .standin
            .messages_in("alerts")
            .into_iter()
            .filter_map(|m| m.text)
            .collect();
        assert_eq!(texts, ["message 1", "message 2"]);
    }

    #[tokio::test]
    async fn a_429_holds_the_channel_for_retry_after_and_hands_back_the_rest() {
        let s = setup().await;
        s.standin.inject(
            Fault::once(FaultKind::RateLimited {
                retry_after_secs: 30,
            })
            .on_channel("#alerts"),
        );
        let ds = deliveries(2);
        let before = SystemClock.now_ms();
        let fates = run(&s, &ds).await;
        assert_eq!(fates, all(2, Fate::Later(Duration::from_secs(30))));
        let next = s.state.next_at_ms.lock().unwrap()[&ds[0].group()];
        assert!(next >= before + 30_000, "held until Retry-After ends");
        assert!(next <= SystemClock.now_ms() + 30_000);
        assert_eq!(s.state.status(&ds[0].key()), Some(Status::NotPosted));
        assert_eq!(s.state.status(&ds[1].key()), Some(Status::NotPosted));
    }

    #[tokio::test]
    async fn a_channel_whose_slot_is_far_hands_its_messages_back_until_then() {
        let s = setup().await;
        let ds = deliveries(2);
        s.state
            .hold_until(&ds[0].group(), SystemClock.now_ms() + 10_000)
            .await
            .unwrap();
        let fates = run(&s, &ds).await;
        for (_, f) in &fates {
            let Fate::Later(d) = f else {
                panic!("{fates:?}")
            };
            assert!(
                *d > Duration::from_secs(9) && *d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
        assert!(s.standin.messages().is_empty());
        assert_eq!(s.state.status(&ds[0].key()), Some(Status::NotPosted));
    }

    #[tokio::test]
    async fn unreadable_state_hands_the_whole_group_back_in_order() {
        let s = setup().await;
        *s.state.down.lock().unwrap() = true;
        let ds = deliveries(3);
        let fates = run(&s, &ds).await;
        assert_eq!(fates, all(3, Fate::Later(STATE_UNAVAILABLE_RETRY)));
        assert!(s.standin.messages().is_empty());
    }

    #[tokio::test]
    async fn a_ledger_that_cannot_be_read_hands_back_that_message_and_every_later_one() {
        let s = setup().await;
        let ds = deliveries(3);
        // The second message's claim fails: the first was claimed and is released, untried.
        *s.state.ledger_down_after.lock().unwrap() = Some(1);
        let fates = run(&s, &ds).await;
        assert_eq!(fates, all(3, Fate::Later(STATE_UNAVAILABLE_RETRY)));
        assert!(s.standin.messages().is_empty());
        assert_eq!(s.state.status(&ds[0].key()), Some(Status::NotPosted));
        assert_eq!(s.state.status(&ds[1].key()), None);
    }
}
