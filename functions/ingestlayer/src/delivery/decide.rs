//! The delivery core: what happens to each message of a group, decided by plain functions
//! with no I/O. Their inputs are what the group loop ([`super::group`]) read or was told
//! (the ledger's entry, the channel's slot, a history check, Slack's classified answer, the
//! time from the injected clock); their output is the next step: post, sleep inline, skip
//! as already posted, or what becomes of the rest of the group ([`Rest`]: hand it back to
//! SQS, park it, or pause its channel or workspace and park it).

use std::time::Duration;

use crate::delivery::channel_store::{Gate, Pause, PauseScope};
use crate::delivery::ledger::Entry;
use crate::delivery::platform::{Found, Verdict};
use crate::delivery::retry::{retry_delay, STATE_UNAVAILABLE_RETRY, TOKEN_UNAVAILABLE_RETRY};
use crate::error::Error;
use crate::ids::{GroupId, TeamId};

/// What happened to one message in the end, for the batch response and the visibility
/// changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fate {
    Done,
    /// Try again after this long; the rest of the group waits with it.
    Later(Duration),
}

/// What becomes of the message at hand and every later one of its group: a FIFO group
/// never lets a later message pass an earlier one.
#[derive(Debug, Clone, PartialEq)]
pub enum Rest {
    /// Back to SQS, to come again after this long; ledger claims of messages not tried are
    /// released.
    Defer(Duration),
    /// Parked in the DLQ with this reason.
    Park(String),
    /// Record this pause, then park the messages with its reason, where they wait for the
    /// fix and a redrive.
    Pause(PauseScope, Pause),
}

impl Rest {
    /// The reason the parked messages carry, for [`Rest::Park`] and [`Rest::Pause`].
    pub fn park_reason(&self) -> Option<String> {
        match self {
            Rest::Defer(_) => None,
            Rest::Park(reason) => Some(reason.clone()),
            Rest::Pause(scope, pause) => Some(pause_reason(scope, pause)),
        }
    }
}

/// The park reason of a message whose channel or workspace is paused.
pub fn pause_reason(scope: &PauseScope, p: &Pause) -> String {
    let what = match scope {
        PauseScope::Channel(_) => "channel",
        PauseScope::Workspace(_) => "workspace",
    };
    format!("{what} paused ({}): {}", p.error, p.hint)
}

/// Before anything else: a paused workspace parks the whole group (the pause is already
/// recorded); state that cannot be read hands the group back.
pub fn workspace(team: &TeamId, pause: &Result<Option<Pause>, Error>) -> Option<Rest> {
    match pause {
        Ok(None) => None,
        Ok(Some(p)) => Some(Rest::Park(pause_reason(
            &PauseScope::Workspace(team.clone()),
            p,
        ))),
        Err(_) => Some(Rest::Defer(STATE_UNAVAILABLE_RETRY)),
    }
}

/// The park reason of a message still undelivered `max_age` after it was queued, if it is.
pub fn too_old(sent_ms: Option<i64>, now_ms: i64, max_age: Duration) -> Option<String> {
    let age = Duration::from_millis((now_ms - sent_ms?).max(0) as u64);
    (age > max_age).then(|| {
        format!(
            "not delivered within {} of being queued; gave up",
            human(max_age)
        )
    })
}

/// What the ledger's entry means for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    /// Claimed, never posted: post it.
    Post,
    /// Slack already took it: acknowledge without posting.
    AlreadyPosted {
        ts: String,
    },
    /// An earlier attempt may have posted: look in the channel's history first.
    CheckHistory {
        since_ms: i64,
    },
    /// Another invocation is posting it now: wait this long (its claim's lease) rather than
    /// post beside it.
    Held {
        wait: Duration,
    },
    Rest(Rest),
}

pub fn admit(entry: Result<Entry, Error>) -> Admit {
    match entry {
        Ok(Entry::Clear) => Admit::Post,
        Ok(Entry::Delivered { ts }) => Admit::AlreadyPosted { ts },
        Ok(Entry::Uncertain { since_ms }) => Admit::CheckHistory { since_ms },
        Ok(Entry::Busy { wait }) => Admit::Held {
            wait: wait.max(Duration::from_secs(1)),
        },
        Err(_) => Admit::Rest(Rest::Defer(STATE_UNAVAILABLE_RETRY)),
    }
}

/// What a history check after an uncertain attempt means.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterHistory {
    Post,
    /// Found: record it in the ledger and acknowledge without posting.
    AlreadyPosted {
        ts: String,
    },
    Rest(Rest),
}

/// Found → skip; not found → post; Slack refuses to show the history → pause the channel
/// at once (retrying cannot tell either); cannot tell yet → wait, never post on a guess.
pub fn after_history(
    found: Found,
    group: &GroupId,
    receive_count: usize,
    schedule: &[u64],
) -> AfterHistory {
    match found {
        Ok(Some(ts)) => AfterHistory::AlreadyPosted { ts },
        Ok(None) => AfterHistory::Post,
        Err(Verdict::PauseTarget { reason, hint }) => AfterHistory::Rest(Rest::Pause(
            PauseScope::Channel(group.clone()),
            Pause {
                error: reason,
                hint,
            },
        )),
        Err(Verdict::PauseAccount { reason, hint }) => AfterHistory::Rest(Rest::Pause(
            PauseScope::Workspace(group.team()),
            Pause {
                error: reason,
                hint,
            },
        )),
        Err(Verdict::RetryAfter { wait, .. } | Verdict::RetryAfterAll { wait, .. }) => {
            AfterHistory::Rest(Rest::Defer(wait))
        }
        Err(_) => AfterHistory::Rest(Rest::Defer(retry_delay(receive_count, schedule))),
    }
}

/// How the messages to post are grouped into posts, as sizes in order: one digest per
/// [`crate::delivery::digest::DIGEST_MAX`] messages when at least `threshold` (≥ 2) wait,
/// otherwise one post each.
pub fn units(pending: usize, threshold: usize) -> Vec<usize> {
    use crate::delivery::digest::DIGEST_MAX;
    if threshold >= 2 && pending >= threshold {
        let mut sizes = vec![DIGEST_MAX; pending / DIGEST_MAX];
        if !pending.is_multiple_of(DIGEST_MAX) {
            sizes.push(pending % DIGEST_MAX);
        }
        sizes
    } else {
        vec![1; pending]
    }
}

/// What becomes of a channel's batch when busy channels have a backlog buffer
/// ([`crate::delivery::buffer`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Into the channel's backlog, to go out in its next digest.
    Spill,
    /// Posted from the batch as queued (the group loop takes the slot right before it
    /// posts, as ever).
    Post,
    /// The backlog could not be read: the batch comes back after this (posting it now
    /// could pass messages waiting there).
    Later(Duration),
}

/// The most messages the Slack queue's event source hands one invocation (template.yaml's
/// `BatchSize`, SQS FIFO's limit).
pub const FULL_BATCH: usize = 10;

/// The first question for a batch of `messages` of a channel that digests (`digests`) or
/// not: a full batch ([`FULL_BATCH`]) of a channel that digests goes to the backlog without
/// a look at the backlog or the slot. Behind a backlog that holds anything it goes there
/// anyway; with the backlog empty, more of the channel may wait behind it in the queue (a
/// burst), and from the backlog the next post carries all of them rather than these alone,
/// even when the slot is due. So the batches of a burst, most of its messages, cost no
/// read. A channel that posts each message alone gains nothing there. `None`: ask the
/// backlog ([`route_by_backlog`]).
pub fn route_by_batch(messages: usize, digests: bool) -> Option<Route> {
    (digests && messages >= FULL_BATCH).then_some(Route::Spill)
}

/// The next question: does the channel's backlog hold anything? Then the batch goes behind
/// it; `None`: ask the slot ([`route_by_slot`]).
pub fn route_by_backlog(empty: &Result<bool, Error>) -> Option<Route> {
    match empty {
        Ok(true) => None,
        Ok(false) => Some(Route::Spill),
        Err(_) => Some(Route::Later(STATE_UNAVAILABLE_RETRY)),
    }
}

/// With the backlog empty, at `now_ms`: a slot due now posts the batch at once; a later one
/// sends the batch to the backlog, so the channel's next post can carry more than one
/// batch; an unreadable slot goes the usual way (the group loop retries it).
pub fn route_by_slot(next_slot: &Result<Option<i64>, Error>, now_ms: i64) -> Route {
    match next_slot {
        Ok(Some(at)) if *at > now_ms => Route::Spill,
        Ok(_) | Err(_) => Route::Post,
    }
}

/// How much later than its slot a post may leave before the next slot moves (within the
/// slot's margin: see `retry::PACING_MARGIN_MS`).
pub const LATE_POST: Duration = Duration::from_millis(10);

/// A post sent at `sent_ms` on a slot taken at `slot_ms` (the next slot is `interval` after
/// that): when it went out more than [`LATE_POST`] after its slot (a slow write of the slot,
/// a loaded instance), the next slot must be an interval after the post itself, or the two
/// posts reach Slack closer than its rate allows. `Some(until)`: hold the channel until then.
pub fn late_post(slot_ms: i64, sent_ms: i64, interval: Duration) -> Option<i64> {
    (sent_ms - slot_ms > LATE_POST.as_millis() as i64)
        .then(|| sent_ms + interval.as_millis() as i64)
}

/// Posts a drain round read ahead makes (see [`drain_reads_ahead`]): a digest each, or one
/// message each when the channel does not digest. Read while the round before posts, it
/// has that round's posting to be read and claimed in.
pub const DRAIN_POSTS_PER_ROUND: usize = 2;

/// How many posts a drain round makes: [`DRAIN_POSTS_PER_ROUND`] when read ahead; one when
/// read in line (a drain's first round, or one after a linger), whose reading and claiming
/// stand between the last post and the next, so claiming fewer keeps them short.
pub fn drain_posts(read_ahead: bool) -> usize {
    if read_ahead {
        DRAIN_POSTS_PER_ROUND
    } else {
        1
    }
}

/// How many of the backlog's oldest messages a drain round of `posts` posts takes, given
/// how they go out (`units`: the post sizes, in order, as
/// [`crate::delivery::threads::units`] cuts them).
pub fn drain_take(units: &[usize], posts: usize) -> usize {
    units.iter().take(posts).sum()
}

/// After a drain round, at `now_ms`, of a drain that began at `started_ms` with `budget`:
/// whether another round follows (at once, or after a linger), or what becomes of the
/// ticket (`None`: done, the backlog is empty; `Some(d)`: back to the queue for `d`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DrainStep {
    Again,
    /// The round emptied the backlog: look once more after this long.
    Linger(Duration),
    Ticket(Option<Duration>),
}

/// The longest a drain that emptied its backlog with a post waits before looking again. A
/// burst still arriving fills the backlog meanwhile, and this invocation, which holds the
/// channel, posts it at the next slot; without the look the drain would end, and the next
/// one start only when SQS delivered the channel's next ticket.
pub const DRAIN_LINGER_MAX: Duration = Duration::from_millis(600);

/// How long a round's first post should still wait for its slot when the drain looks
/// again after a linger: room for the tables' latency to vary between rounds.
pub const LINGER_SPARE: Duration = Duration::from_millis(300);

/// How long the drain waits before its next look, given the last (`linger`) and how long
/// the round's first post then waited for its slot (`waited`): the look moves later by
/// what the post had to spare beyond [`LINGER_SPARE`], earlier by what it lacked, so that
/// reading and claiming the backlog end just before the slot whatever the tables' latency
/// (the most events per post, none of them late), within `0..=DRAIN_LINGER_MAX`.
pub fn next_linger(linger: Duration, waited: Option<Duration>) -> Duration {
    let Some(waited) = waited else {
        return linger;
    };
    let spare = waited.as_millis() as i64 - LINGER_SPARE.as_millis() as i64;
    let next = (linger.as_millis() as i64 + spare).clamp(0, DRAIN_LINGER_MAX.as_millis() as i64);
    Duration::from_millis(next as u64)
}

/// What a drain round left behind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoundEnd {
    /// Messages still wait in the backlog.
    pub left: bool,
    /// The next round was read and claimed while this one posted.
    pub ahead: bool,
    /// The wait the round's first unsettled message asked for.
    pub later: Option<Duration>,
    /// The round settled messages (posted, found posted, parked), so the channel is busy.
    pub settled: bool,
}

/// Whether the drain reads and claims the next round while this one posts: while the
/// budget has time for another round. The next round holds what reached the backlog
/// since this one was read (a burst still arriving); when nothing did, the drain looks
/// again after its linger. A round read ahead is posted whatever the time once this one is
/// done, so the budget counts to its read.
pub fn drain_reads_ahead(started_ms: i64, now_ms: i64, budget: Duration) -> bool {
    now_ms - started_ms < budget.as_millis() as i64
}

/// `linger`: see [`next_linger`].
pub fn drain_step(
    end: RoundEnd,
    linger: Duration,
    started_ms: i64,
    now_ms: i64,
    budget: Duration,
) -> DrainStep {
    let within =
        |d: Duration| now_ms + (d.as_millis() as i64) - started_ms < budget.as_millis() as i64;
    match end.later {
        Some(d) => DrainStep::Ticket(Some(d)),
        None if end.ahead => DrainStep::Again,
        None if !end.left && end.settled && within(linger) => DrainStep::Linger(linger),
        // Emptied with a post but out of time to look again: a burst may still be
        // arriving, so the next invocation looks (at once, as below). Ending here left
        // it to the spill's next ticket, a slot or two later.
        None if !end.left && end.settled => DrainStep::Ticket(Some(Duration::ZERO)),
        None if !end.left => DrainStep::Ticket(None),
        None if within(Duration::ZERO) => DrainStep::Again,
        // Out of time with messages left: the ticket comes back at once, and the next
        // invocation waits for the slot itself.
        None => DrainStep::Ticket(Some(Duration::ZERO)),
    }
}

/// What the channel's posting slot says.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// The slot is taken: post now.
    Post,
    /// The slot beginning at this time (ms since the epoch) is taken: post at it.
    At(i64),
    /// The slot is this close: sleep, then ask again.
    Sleep(Duration),
    Rest(Rest),
}

/// Short waits are slept in process, long ones go back to SQS; a paused channel parks the
/// rest (its pause is recorded already).
pub fn slot(gate: Result<Gate, Error>, group: &GroupId, max_inline_wait: Duration) -> Slot {
    match gate {
        Ok(Gate::At(at)) => Slot::At(at),
        Ok(Gate::Wait(d)) if d <= max_inline_wait => Slot::Sleep(d),
        Ok(Gate::Wait(d)) => Slot::Rest(Rest::Defer(d)),
        Ok(Gate::Paused(p)) => Slot::Rest(Rest::Park(pause_reason(
            &PauseScope::Channel(group.clone()),
            &p,
        ))),
        Err(_) => Slot::Rest(Rest::Defer(STATE_UNAVAILABLE_RETRY)),
    }
}

/// A platform's sender hold (`next`: its next slot, ms since the epoch, as the channel
/// state keeps it) at `now_ms`: go when none is ahead, sleep a short one out, hand a longer
/// one back; unreadable state waits as for a channel.
pub fn sender_hold(
    next: Result<Option<i64>, Error>,
    now_ms: i64,
    max_inline_wait: Duration,
) -> Slot {
    match next {
        Ok(Some(at)) if at > now_ms => {
            let wait = Duration::from_millis((at - now_ms) as u64);
            if wait <= max_inline_wait {
                Slot::Sleep(wait)
            } else {
                Slot::Rest(Rest::Defer(wait))
            }
        }
        Ok(_) => Slot::Post,
        Err(_) => Slot::Rest(Rest::Defer(STATE_UNAVAILABLE_RETRY)),
    }
}

/// No token for the workspace: a workspace that is not connected, revoked the app, or
/// whose app credentials are missing is paused with the fix; anything else (Secrets
/// Manager unreachable) is waited out.
pub fn without_token(e: &Error, team: &TeamId) -> Rest {
    let (error, hint) = match e {
        Error::NotConnected { .. } => ("not_connected", e.to_string()),
        Error::AppNotConfigured { .. } => (
            "app_not_configured",
            format!("refreshing the rotating bot token needs the Slack app's credentials: {e}"),
        ),
        _ => return Rest::Defer(TOKEN_UNAVAILABLE_RETRY),
    };
    Rest::Pause(
        PauseScope::Workspace(team.clone()),
        Pause {
            error: error.into(),
            hint,
        },
    )
}

/// What Slack's classified answer to a post means.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterPost {
    /// Record every message of the post as delivered; `channel_id` is what Slack reported.
    Delivered {
        ts: String,
        channel_id: Option<String>,
    },
    /// Rate limited: the channel posts nothing before `until_ms`; the rest waits that long.
    RateLimited { until_ms: i64, wait: Duration },
    /// A transient failure: the post and the rest come back after `delay`. When
    /// `maybe_posted`, the post's ledger claim stays (the next attempt checks history).
    Retry {
        delay: Duration,
        maybe_posted: bool,
        reason: String,
    },
    /// Slack refused a digest: post its messages one by one instead.
    SplitDigest { reason: String },
    /// Slack refused the message itself: park just it, go on with the next.
    Park(String),
    /// The channel or workspace cannot take messages: pause it and park the rest.
    Pause(PauseScope, Pause),
}

/// Context of a post for [`after_post`].
#[derive(Debug, Clone)]
pub struct Posted<'a> {
    pub group: &'a GroupId,
    /// Messages in the post (more than one for a digest).
    pub messages: usize,
    /// The first message's receive count (retry schedule step).
    pub receive_count: usize,
    pub now_ms: i64,
}

/// What becomes of a post's messages after Slack's answer, read as the shared
/// [`Verdict`]; `channel_id` is the channel id Slack reported for a post it took.
pub fn after_post(
    verdict: Verdict,
    channel_id: Option<String>,
    posted: &Posted<'_>,
    schedule: &[u64],
) -> AfterPost {
    match verdict {
        Verdict::Delivered { receipt, .. } => AfterPost::Delivered {
            ts: receipt,
            channel_id,
        },
        Verdict::RetryAfter { wait, .. } | Verdict::RetryAfterAll { wait, .. } => {
            AfterPost::RateLimited {
                until_ms: posted.now_ms + wait.as_millis() as i64,
                wait,
            }
        }
        Verdict::Retry { reason, maybe_sent } => AfterPost::Retry {
            delay: retry_delay(posted.receive_count, schedule),
            maybe_posted: maybe_sent,
            reason,
        },
        Verdict::Park { reason } if posted.messages > 1 => AfterPost::SplitDigest { reason },
        Verdict::Park { reason } => AfterPost::Park(reason),
        Verdict::PauseTarget { reason, hint } => AfterPost::Pause(
            PauseScope::Channel(posted.group.clone()),
            Pause {
                error: reason,
                hint,
            },
        ),
        Verdict::PauseAccount { reason, hint } => AfterPost::Pause(
            PauseScope::Workspace(posted.group.team()),
            Pause {
                error: reason,
                hint,
            },
        ),
    }
}

/// What a failed post records as the channel's last error (see
/// [`super::channel_store::ChannelStore::record_error`]); `None` for a post that landed.
pub fn post_error(after: &AfterPost) -> Option<String> {
    match after {
        AfterPost::Delivered { .. } => None,
        AfterPost::RateLimited { wait, .. } => Some(format!(
            "ratelimited: waited {} (Retry-After)",
            human(*wait)
        )),
        AfterPost::Retry { reason, .. } => Some(format!("{reason} (retried)")),
        AfterPost::SplitDigest { reason } => {
            Some(format!("{reason} (digest posted one by one instead)"))
        }
        AfterPost::Park(reason) => Some(format!("{reason} (parked)")),
        AfterPost::Pause(_, pause) => Some(format!("{}: {} (paused)", pause.error, pause.hint)),
    }
}

/// A duration as operators read it: `2 h`, `30 min`, `45 s`.
pub fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::retry::{retry_delay_with, MAX_INLINE_WAIT, RETRY_SCHEDULE};
    use crate::delivery::slack_platform::{found, verdict};
    use crate::slack::answers::{classify, Answer, SlackBody, MAX_RETRY_AFTER};
    use crate::slack::client::HistoryCheck;
    const ZERO: Duration = Duration::ZERO;

    /// Slack's answer as the group loop reads it: classified, then as the shared verdict.
    fn slack(answer: &Answer) -> Verdict {
        verdict(classify(answer), "#alerts")
    }

    fn group() -> GroupId {
        GroupId::from_queue("T0123:#alerts")
    }

    fn team() -> TeamId {
        group().team()
    }

    fn down() -> Error {
        Error::Slack {
            what: "reading the channels table".into(),
            detail: "connection refused".into(),
            source: None,
        }
    }

    fn pause(error: &str) -> Pause {
        Pause {
            error: error.into(),
            hint: "invite the app".into(),
        }
    }

    fn posted(messages: usize, receive_count: usize) -> Posted<'static> {
        static GROUP: std::sync::OnceLock<GroupId> = std::sync::OnceLock::new();
        Posted {
            group: GROUP.get_or_init(group),
            messages,
            receive_count,
            now_ms: 1_000_000,
        }
    }

    fn within_jitter(d: Duration, receive_count: usize, schedule: &[u64]) -> bool {
        d >= retry_delay_with(receive_count, schedule, 0.8)
            && d <= retry_delay_with(receive_count, schedule, 1.2)
    }

    #[test]
    fn a_slot_close_enough_is_slept_for_and_a_later_one_hands_the_rest_back() {
        let g = group();
        assert_eq!(slot(Ok(Gate::At(5)), &g, MAX_INLINE_WAIT), Slot::At(5));
        assert_eq!(
            slot(
                Ok(Gate::Wait(Duration::from_millis(900))),
                &g,
                MAX_INLINE_WAIT
            ),
            Slot::Sleep(Duration::from_millis(900))
        );
        assert_eq!(
            slot(Ok(Gate::Wait(MAX_INLINE_WAIT)), &g, MAX_INLINE_WAIT),
            Slot::Sleep(MAX_INLINE_WAIT)
        );
        assert_eq!(
            slot(Ok(Gate::Wait(Duration::from_secs(30))), &g, MAX_INLINE_WAIT),
            Slot::Rest(Rest::Defer(Duration::from_secs(30)))
        );
    }

    #[test]
    fn a_held_sender_is_slept_out_when_close_and_handed_back_when_far() {
        let now = 1_000_000;
        assert_eq!(sender_hold(Ok(None), now, MAX_INLINE_WAIT), Slot::Post);
        assert_eq!(
            sender_hold(Ok(Some(now - 5)), now, MAX_INLINE_WAIT),
            Slot::Post,
            "a hold that is over"
        );
        assert_eq!(
            sender_hold(Ok(Some(now + 900)), now, MAX_INLINE_WAIT),
            Slot::Sleep(Duration::from_millis(900))
        );
        assert_eq!(
            sender_hold(Ok(Some(now + 64_570)), now, MAX_INLINE_WAIT),
            Slot::Rest(Rest::Defer(Duration::from_millis(64_570)))
        );
        assert_eq!(
            sender_hold(Err(down()), now, MAX_INLINE_WAIT),
            Slot::Rest(Rest::Defer(STATE_UNAVAILABLE_RETRY))
        );
    }

    #[test]
    fn a_paused_channel_parks_the_rest_with_its_pause_and_unreadable_state_waits() {
        let g = group();
        let Slot::Rest(Rest::Park(reason)) = slot(
            Ok(Gate::Paused(pause("not_in_channel"))),
            &g,
            MAX_INLINE_WAIT,
        ) else {
            panic!("a paused channel parks");
        };
        assert_eq!(reason, "channel paused (not_in_channel): invite the app");
        assert_eq!(
            slot(Err(down()), &g, MAX_INLINE_WAIT),
            Slot::Rest(Rest::Defer(STATE_UNAVAILABLE_RETRY))
        );
    }

    #[test]
    fn retry_after_is_honoured_exactly_from_now() {
        let after = after_post(
            Verdict::RetryAfter {
                wait: Duration::from_secs(30),
                reason: "Slack answered 429".into(),
            },
            None,
            &posted(1, 1),
            RETRY_SCHEDULE,
        );
        assert_eq!(
            after,
            AfterPost::RateLimited {
                until_ms: 1_030_000,
                wait: Duration::from_secs(30)
            }
        );
    }

    #[test]
    fn retry_after_is_capped_at_an_hour() {
        let answer = Answer::Http {
            status: 429,
            retry_after: Some(Duration::from_secs(7200)),
            body: None,
        };
        let AfterPost::RateLimited { until_ms, wait } =
            after_post(slack(&answer), None, &posted(1, 1), RETRY_SCHEDULE)
        else {
            panic!("a 429 rate-limits");
        };
        assert_eq!(wait, MAX_RETRY_AFTER);
        assert_eq!(until_ms, 1_000_000 + MAX_RETRY_AFTER.as_millis() as i64);
    }

    #[test]
    fn a_transient_failure_retries_by_the_receive_count_schedule() {
        for count in [1, 3, 6, 10, 50] {
            let AfterPost::Retry {
                delay,
                maybe_posted,
                ..
            } = after_post(
                Verdict::Retry {
                    reason: "HTTP 500".into(),
                    maybe_sent: true,
                },
                None,
                &posted(1, count),
                RETRY_SCHEDULE,
            )
            else {
                panic!("a 5xx retries");
            };
            assert!(maybe_posted);
            assert!(
                within_jitter(delay, count, RETRY_SCHEDULE),
                "{count}: {delay:?}"
            );
        }
    }

    #[test]
    fn a_failure_that_did_not_post_says_so_so_its_claim_is_released() {
        let answer = Answer::Transport {
            maybe_sent: false,
            error: "connection refused".into(),
        };
        let AfterPost::Retry { maybe_posted, .. } =
            after_post(slack(&answer), None, &posted(1, 1), RETRY_SCHEDULE)
        else {
            panic!("a connection failure retries");
        };
        assert!(!maybe_posted);
        let answer = Answer::Transport {
            maybe_sent: true,
            error: "timed out".into(),
        };
        let AfterPost::Retry { maybe_posted, .. } =
            after_post(slack(&answer), None, &posted(1, 1), RETRY_SCHEDULE)
        else {
            panic!("a timeout retries");
        };
        assert!(
            maybe_posted,
            "a timeout may have posted: check history next time"
        );
    }

    #[test]
    fn a_refused_message_is_parked_with_its_reason_and_a_refused_digest_is_split() {
        let refused = || Verdict::Park {
            reason: "Slack refused the message: invalid_blocks".into(),
        };
        assert_eq!(
            after_post(refused(), None, &posted(1, 1), RETRY_SCHEDULE),
            AfterPost::Park("Slack refused the message: invalid_blocks".into())
        );
        assert!(matches!(
            after_post(refused(), None, &posted(5, 1), RETRY_SCHEDULE),
            AfterPost::SplitDigest { .. }
        ));
    }

    #[test]
    fn channel_errors_pause_the_channel_and_token_errors_the_workspace() {
        let body = |error: &str| Answer::Http {
            status: 200,
            retry_after: None,
            body: Some(SlackBody {
                ok: false,
                error: Some(error.into()),
                ts: None,
                channel: None,
            }),
        };
        let AfterPost::Pause(scope, p) = after_post(
            slack(&body("not_in_channel")),
            None,
            &posted(1, 1),
            RETRY_SCHEDULE,
        ) else {
            panic!("not_in_channel pauses");
        };
        assert_eq!(scope, PauseScope::Channel(group()));
        assert_eq!(p.error, "not_in_channel");
        assert!(!p.hint.is_empty());
        let AfterPost::Pause(scope, p) = after_post(
            slack(&body("token_revoked")),
            None,
            &posted(1, 1),
            RETRY_SCHEDULE,
        ) else {
            panic!("token_revoked pauses");
        };
        assert_eq!(scope, PauseScope::Workspace(team()));
        assert_eq!(p.error, "token_revoked");
        assert_eq!(
            pause_reason(&scope, &p),
            format!("workspace paused (token_revoked): {}", p.hint)
        );
    }

    #[test]
    fn slacks_ok_is_delivered_with_the_channel_it_reports() {
        let answer = Answer::Http {
            status: 200,
            retry_after: None,
            body: Some(SlackBody {
                ok: true,
                error: None,
                ts: Some("1.2".into()),
                channel: Some("C0123ABCD".into()),
            }),
        };
        assert_eq!(
            after_post(
                slack(&answer),
                crate::delivery::post::channel_id(&answer),
                &posted(1, 1),
                RETRY_SCHEDULE
            ),
            AfterPost::Delivered {
                ts: "1.2".into(),
                channel_id: Some("C0123ABCD".into())
            }
        );
    }

    #[test]
    fn a_paused_workspace_parks_its_whole_group_and_unreadable_state_waits() {
        assert_eq!(workspace(&team(), &Ok(None)), None);
        assert_eq!(
            workspace(&team(), &Ok(Some(pause("token_revoked")))),
            Some(Rest::Park(
                "workspace paused (token_revoked): invite the app".into()
            ))
        );
        assert_eq!(
            workspace(&team(), &Err(down())),
            Some(Rest::Defer(STATE_UNAVAILABLE_RETRY))
        );
    }

    #[test]
    fn a_workspace_without_a_usable_token_is_paused_with_the_fix_and_an_unreadable_one_waits() {
        let revoked = Error::NotConnected {
            team: "T0123".into(),
            revoked: true,
        };
        let Rest::Pause(scope, p) = without_token(&revoked, &team()) else {
            panic!("a revoked token pauses");
        };
        assert_eq!(scope, PauseScope::Workspace(team()));
        assert_eq!(p.error, "not_connected");
        assert!(p.hint.contains("reconnect Slack"), "{}", p.hint);
        assert!(matches!(
            without_token(
                &Error::NotConnected {
                    team: "T0123".into(),
                    revoked: false
                },
                &team()
            ),
            Rest::Pause(_, Pause { error, .. }) if error == "not_connected"
        ));
        assert!(matches!(
            without_token(
                &Error::AppNotConfigured {
                    source: std::sync::Arc::new(Error::reason("placeholder"))
                },
                &team()
            ),
            Rest::Pause(_, Pause { error, .. }) if error == "app_not_configured"
        ));
        assert_eq!(
            without_token(
                &Error::Upstream {
                    what: "the Slack token secret".into(),
                    detail: "timeout".into(),
                    retryable: true
                },
                &team()
            ),
            Rest::Defer(TOKEN_UNAVAILABLE_RETRY)
        );
    }

    #[test]
    fn a_message_past_the_age_limit_is_parked_with_the_limit_named() {
        let hour = Duration::from_secs(3600);
        assert_eq!(too_old(Some(0), 3_600_000, hour), None);
        assert_eq!(
            too_old(Some(0), 3_600_001, hour).as_deref(),
            Some("not delivered within 1 h of being queued; gave up")
        );
        assert_eq!(
            too_old(Some(0), 10, Duration::ZERO).as_deref(),
            Some("not delivered within 0 s of being queued; gave up")
        );
        assert_eq!(
            too_old(None, 10, Duration::ZERO),
            None,
            "no SentTimestamp: no age"
        );
        assert_eq!(human(Duration::from_secs(1800)), "30 min");
    }

    #[test]
    fn the_ledger_decides_post_skip_or_check_history() {
        assert_eq!(admit(Ok(Entry::Clear)), Admit::Post);
        assert_eq!(
            admit(Ok(Entry::Delivered { ts: "1.2".into() })),
            Admit::AlreadyPosted { ts: "1.2".into() }
        );
        assert_eq!(
            admit(Ok(Entry::Uncertain { since_ms: 5 })),
            Admit::CheckHistory { since_ms: 5 }
        );
        assert_eq!(
            admit(Err(down())),
            Admit::Rest(Rest::Defer(STATE_UNAVAILABLE_RETRY))
        );
        // Another invocation holds it: wait out its lease (at least a second), never post.
        assert_eq!(
            admit(Ok(Entry::Busy {
                wait: Duration::from_secs(12)
            })),
            Admit::Held {
                wait: Duration::from_secs(12)
            }
        );
        assert_eq!(
            admit(Ok(Entry::Busy {
                wait: Duration::from_millis(3)
            })),
            Admit::Held {
                wait: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn after_an_uncertain_attempt_history_decides_and_never_guesses() {
        let g = group();
        let check = |c| after_history(found(c, "#alerts"), &g, 4, RETRY_SCHEDULE);
        assert_eq!(
            check(HistoryCheck::Found("1.2".into())),
            AfterHistory::AlreadyPosted { ts: "1.2".into() }
        );
        assert_eq!(check(HistoryCheck::NotFound), AfterHistory::Post);
        let AfterHistory::Rest(Rest::Pause(scope, p)) =
            check(HistoryCheck::Refused("not_in_channel".into()))
        else {
            panic!("a refused history pauses the channel");
        };
        assert_eq!(scope, PauseScope::Channel(g.clone()));
        assert_eq!(p.error, "not_in_channel");
        let AfterHistory::Rest(Rest::Defer(d)) = check(HistoryCheck::Unavailable("timeout".into()))
        else {
            panic!("an unreadable history waits");
        };
        assert!(within_jitter(d, 4, RETRY_SCHEDULE), "{d:?}");
    }

    #[test]
    fn enough_waiting_messages_go_out_as_digests_of_at_most_48() {
        assert_eq!(units(2, 3), vec![1, 1]);
        assert_eq!(units(3, 3), vec![3]);
        assert_eq!(units(30, 3), vec![30]);
        assert_eq!(units(48, 3), vec![48]);
        assert_eq!(units(100, 3), vec![48, 48, 4]);
        assert_eq!(units(5, 0), vec![1; 5], "0 never digests");
        assert_eq!(units(5, 1), vec![1; 5], "a digest of one is a post");
        assert_eq!(units(0, 3), Vec::<usize>::new());
    }

    #[test]
    fn only_parking_outcomes_carry_a_park_reason() {
        assert_eq!(Rest::Defer(Duration::from_secs(1)).park_reason(), None);
        assert_eq!(Rest::Park("r".into()).park_reason().as_deref(), Some("r"));
        assert_eq!(
            Rest::Pause(PauseScope::Channel(group()), pause("is_archived"))
                .park_reason()
                .as_deref(),
            Some("channel paused (is_archived): invite the app")
        );
    }

    #[test]
    fn a_failed_post_names_its_error_and_what_became_of_it_and_a_landed_one_nothing() {
        assert_eq!(
            post_error(&AfterPost::Delivered {
                ts: "1.2".into(),
                channel_id: None
            }),
            None
        );
        assert_eq!(
            post_error(&AfterPost::Pause(
                PauseScope::Channel(group()),
                pause("not_in_channel")
            ))
            .unwrap(),
            format!("not_in_channel: {} (paused)", pause("not_in_channel").hint)
        );
        assert_eq!(
            post_error(&AfterPost::RateLimited {
                until_ms: 0,
                wait: Duration::from_secs(30)
            })
            .unwrap(),
            "ratelimited: waited 30 s (Retry-After)"
        );
        assert_eq!(
            post_error(&AfterPost::Park("msg_too_long".into())).unwrap(),
            "msg_too_long (parked)"
        );
    }
    #[test]
    fn a_batch_goes_behind_a_backlog_and_into_it_when_the_slot_is_not_due() {
        let t0 = 1_700_000_000_000;
        assert_eq!(route_by_backlog(&Ok(false)), Some(Route::Spill));
        assert_eq!(route_by_backlog(&Ok(true)), None);
        assert_eq!(
            route_by_backlog(&Err(Error::invalid("x", "y"))),
            Some(Route::Later(STATE_UNAVAILABLE_RETRY))
        );
        assert_eq!(route_by_slot(&Ok(None), t0), Route::Post);
        assert_eq!(route_by_slot(&Ok(Some(t0)), t0), Route::Post);
        assert_eq!(route_by_slot(&Ok(Some(t0 + 1)), t0), Route::Spill);
        // An unreadable slot: the group loop retries it as ever.
        assert_eq!(
            route_by_slot(&Err(Error::invalid("x", "y")), t0),
            Route::Post
        );
    }

    #[test]
    fn a_full_batch_of_a_digesting_channel_goes_to_the_backlog_unread() {
        // It may have more of a burst behind it: into the backlog, with no read asked.
        assert_eq!(route_by_batch(FULL_BATCH, true), Some(Route::Spill));
        // Below a full batch, or a channel that posts each message alone: ask the backlog.
        assert_eq!(route_by_batch(FULL_BATCH - 1, true), None);
        assert_eq!(route_by_batch(FULL_BATCH, false), None);
    }

    #[test]
    fn a_post_that_went_out_late_moves_the_next_slot_after_it() {
        let t0 = 1_700_000_000_000;
        let interval = Duration::from_millis(1_040);
        assert_eq!(late_post(t0, t0 + 2, interval), None, "on time");
        assert_eq!(late_post(t0, t0 + 10, interval), None);
        assert_eq!(late_post(t0, t0 + 11, interval), Some(t0 + 11 + 1_040));
        assert_eq!(
            late_post(t0, t0 + 300, interval),
            Some(t0 + 300 + 1_040),
            "300 ms late: the next post comes an interval after this one"
        );
    }

    #[test]
    fn a_drain_round_takes_a_few_posts_worth() {
        // Digests: two posts of 48.
        let ahead = drain_posts(true);
        assert_eq!(ahead, 2);
        assert_eq!(drain_take(&units(300, 3), ahead), 2 * 48);
        assert_eq!(drain_take(&units(60, 3), ahead), 60);
        // No digests: two messages.
        assert_eq!(drain_take(&units(300, 0), ahead), 2);
        // Runs of thread keys, each its own post or digest: two of them.
        assert_eq!(drain_take(&[3, 2, 2, 2], ahead), 5);
        assert_eq!(drain_take(&[], ahead), 0);
        // Read in line, between two posts: one post's worth.
        assert_eq!(drain_take(&units(300, 3), drain_posts(false)), 48);
        assert_eq!(drain_take(&[3, 2, 2, 2], drain_posts(false)), 3);
    }

    #[test]
    fn a_drain_goes_on_while_it_has_time_and_messages_and_hands_its_ticket_back_otherwise() {
        let t0 = 1_700_000_000_000;
        let budget = Duration::from_secs(15);
        let busy = RoundEnd {
            left: true,
            settled: true,
            ..RoundEnd::default()
        };
        assert_eq!(
            drain_step(busy, ZERO, t0, t0 + 1_045, budget),
            DrainStep::Again
        );
        assert_eq!(
            drain_step(RoundEnd::default(), ZERO, t0, t0 + 1_045, budget),
            DrainStep::Ticket(None),
            "nothing left and nothing settled: done"
        );
        assert_eq!(
            drain_step(busy, ZERO, t0, t0 + 15_000, budget),
            DrainStep::Ticket(Some(ZERO)),
            "out of time: the ticket comes back at once, for the next invocation to post at the slot"
        );
        // A 429 or a failure: the ticket waits what the group loop asked for, even with
        // the next round claimed ahead (it is handed back).
        let wait = Duration::from_secs(30);
        for ahead in [false, true] {
            let stopped = RoundEnd {
                later: Some(wait),
                ahead,
                ..busy
            };
            assert_eq!(
                drain_step(stopped, ZERO, t0, t0 + 10, budget),
                DrainStep::Ticket(Some(wait))
            );
        }
    }

    #[test]
    fn a_round_read_ahead_is_posted_and_only_read_while_the_budget_lasts() {
        let t0 = 1_700_000_000_000;
        let budget = Duration::from_secs(15);
        assert!(drain_reads_ahead(t0, t0 + 14_999, budget));
        assert!(!drain_reads_ahead(t0, t0 + 15_000, budget));
        // Claimed ahead, it is posted even past the budget.
        let ahead = RoundEnd {
            left: true,
            ahead: true,
            settled: true,
            later: None,
        };
        assert_eq!(
            drain_step(ahead, ZERO, t0, t0 + 17_000, budget),
            DrainStep::Again
        );
    }

    #[test]
    fn a_drain_that_emptied_its_backlog_with_a_post_looks_once_more_before_the_next_slot() {
        let t0 = 1_700_000_000_000;
        let budget = Duration::from_secs(15);
        let linger = Duration::from_millis(400);
        let emptied = RoundEnd {
            settled: true,
            ..RoundEnd::default()
        };
        assert_eq!(
            drain_step(emptied, linger, t0, t0 + 1_045, budget),
            DrainStep::Linger(linger)
        );
        // The look would end past the budget: the ticket comes back at once, and the next
        // invocation looks.
        assert_eq!(
            drain_step(emptied, linger, t0, t0 + 14_700, budget),
            DrainStep::Ticket(Some(ZERO))
        );
        // A look that found nothing ends it.
        assert_eq!(
            drain_step(RoundEnd::default(), linger, t0, t0 + 1_400, budget),
            DrainStep::Ticket(None)
        );
    }

    #[test]
    fn the_look_moves_so_the_round_ends_just_before_the_slot() {
        let ms = Duration::from_millis;
        // Fast tables: the post waited 700 ms for its slot; the next look comes 400 ms
        // later (700 less the 300 ms to spare), up to the most a look waits.
        assert_eq!(next_linger(ZERO, Some(ms(700))), ms(400));
        assert_eq!(next_linger(ms(400), Some(ms(800))), DRAIN_LINGER_MAX);
        // Slow tables: the post waited 100 ms, 200 ms short of the spare: 200 ms earlier.
        assert_eq!(next_linger(ms(300), Some(ms(100))), ms(100));
        // A post that waited nothing (late): the look comes at once.
        assert_eq!(next_linger(ms(250), Some(ZERO)), ZERO);
        // Nothing posted: as before.
        assert_eq!(next_linger(ms(300), None), ms(300));
        // Converges: a round whose reading and claiming take 600 ms of a 1,040 ms slot.
        let mut linger = ZERO;
        for _ in 0..10 {
            let waited = ms(1040 - 600).saturating_sub(linger);
            linger = next_linger(linger, Some(waited));
        }
        assert_eq!(linger, ms(140), "the post then waits the 300 ms spare");
    }
}
