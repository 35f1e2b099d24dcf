//! Pacing: waiting for a channel's posting slot. Slots live in the channel state, so all
//! instances together post at most once per interval; a slot close enough is slept for
//! here (on tokio's clock), a later one hands the rest of the group back to SQS.

use std::future::Future;
use std::time::Duration;

use crate::delivery::channel_store::ChannelStore;
use crate::delivery::clock::Clock;
use crate::delivery::decide::{self, Slot};
use crate::delivery::retry::{SLOT_AHEAD, SLOT_LEAD};
use crate::ids::GroupId;

/// Takes the channel's next slot, sleeping for it while it is at most `max_inline_wait`
/// away; returns [`Slot::Post`] at the slot's first moment, or what becomes of the rest
/// ([`Slot::Rest`]), never [`Slot::Sleep`] or [`Slot::At`].
pub async fn wait_for_slot(
    channels: &dyn ChannelStore,
    clock: &dyn Clock,
    group: &GroupId,
    interval: Duration,
    max_inline_wait: Duration,
) -> Slot {
    wait_for_slot_at(channels, clock, group, interval, max_inline_wait)
        .await
        .0
}

/// [`wait_for_slot`], with when the slot began (the next one is `interval` after it; see
/// [`decide::late_post`]). The instance wakes [`SLOT_LEAD`] before the slot, takes it
/// ahead (within [`SLOT_AHEAD`]) and sleeps to its start, so the post leaves on time
/// whatever the write's latency (one write: it asks for the slot the wait named); every
/// sleep runs to a moment on the clock, not for a length measured before a request.
pub async fn wait_for_slot_at(
    channels: &dyn ChannelStore,
    clock: &dyn Clock,
    group: &GroupId,
    interval: Duration,
    max_inline_wait: Duration,
) -> (Slot, i64) {
    let mut told = None;
    loop {
        let now_ms = clock.now_ms();
        let gate = channels
            .acquire(group, interval, now_ms, SLOT_AHEAD, told)
            .await;
        match decide::slot(gate, group, max_inline_wait) {
            Slot::Sleep(d) => {
                told = Some(now_ms + d.as_millis() as i64);
                let wake = now_ms + d.saturating_sub(SLOT_LEAD).as_millis() as i64;
                sleep_until(clock, wake).await;
            }
            Slot::At(at) => {
                sleep_until(clock, at).await;
                return (Slot::Post, at);
            }
            other => return (other, now_ms),
        }
    }
}

/// Sends on a slot that began at `slot_ms` (from [`wait_for_slot_at`]): `send` is given the
/// moment it leaves, and its answer is returned with that moment. A send that leaves more
/// than [`decide::LATE_POST`] after its slot moves the next slot an interval after it (see
/// [`decide::late_post`]), and the move is written while the send is in flight, not after
/// its answer: another instance takes the next slot [`SLOT_AHEAD`] of its start, and a
/// slow answer (Slack's take up to seconds) would let it take the old one first and post
/// less than an interval after this send.
pub async fn send_on_slot<F: Future>(
    channels: &dyn ChannelStore,
    clock: &dyn Clock,
    group: &GroupId,
    slot_ms: i64,
    interval: Duration,
    send: impl FnOnce(i64) -> F,
) -> (F::Output, i64) {
    let sent_ms = clock.now_ms();
    let hold = async {
        if let Some(until_ms) = decide::late_post(slot_ms, sent_ms, interval) {
            if let Err(e) = channels.hold_until(group, until_ms).await {
                tracing::warn!(error = %e, "could not move the next slot after a late send");
            }
        }
    };
    let ((), answer) = tokio::join!(hold, send(sent_ms));
    (answer, sent_ms)
}

/// Sleeps until `at_ms` on `clock` (not at all when that has passed).
async fn sleep_until(clock: &dyn Clock, at_ms: i64) {
    if let Ok(left) = u64::try_from(at_ms - clock.now_ms()) {
        tokio::time::sleep(Duration::from_millis(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::channel_store::{Pause, PauseScope};
    use crate::delivery::clock::TokioClock;
    use crate::delivery::decide::Rest;
    use crate::delivery::fake::FakeState;
    use crate::delivery::retry::{paced_interval, MAX_INLINE_WAIT, STATE_UNAVAILABLE_RETRY};

    const T0: i64 = 1_700_000_000_000;

    fn alerts() -> GroupId {
        GroupId::from_queue("default:#alerts")
    }

    /// Empty channel state and a clock at [`T0`] that moves with tokio's.
    fn start() -> (FakeState, TokioClock) {
        (FakeState::default(), TokioClock::starting_at(T0))
    }

    /// The next slot of `group` on a 1-per-second channel.
    async fn next_slot(state: &FakeState, clock: &TokioClock, group: &GroupId) -> Slot {
        wait_for_slot(state, clock, group, paced_interval(1000), MAX_INLINE_WAIT).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_posted_one_slot_per_interval_never_closer() {
        let (state, clock) = start();
        for _ in 0..10 {
            assert_eq!(next_slot(&state, &clock, &alerts()).await, Slot::Post);
        }
        let times = state.slot_times();
        assert_eq!(times.len(), 10);
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], 1040, "{times:?}");
        }
        assert_eq!(clock.elapsed(), Duration::from_millis(9 * 1040));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_channels_table_never_delays_a_post_past_its_slot() {
        let (state, clock) = start();
        // Each conditional write answers after 150 ms, as the table does under a burst's
        // writes: within the instance's lead of 200 ms only when a slot ahead is taken with
        // one write (the slot the wait named), not two.
        *state.slot_latency.lock().unwrap() = Duration::from_millis(150);
        let mut posts = Vec::new();
        for _ in 0..6 {
            let (slot, at) = wait_for_slot_at(
                &state,
                &clock,
                &alerts(),
                paced_interval(1000),
                MAX_INLINE_WAIT,
            )
            .await;
            assert_eq!(slot, Slot::Post);
            posts.push((at, clock.now_ms()));
        }
        // The first slot was due: its answer came 150 ms into it (a late post; see
        // decide::late_post). Every later one was taken ahead and slept to its start.
        assert_eq!(posts[0], (T0, T0 + 150));
        for (i, pair) in posts.windows(2).enumerate().skip(1) {
            let ((slot_a, post_a), (slot_b, post_b)) = (pair[0], pair[1]);
            assert_eq!(post_a, slot_a, "post {} left at its slot", i + 1);
            assert_eq!(post_b, slot_b, "post {} left at its slot", i + 2);
            assert_eq!(post_b - post_a, 1040, "{posts:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_send_moves_the_next_slot_before_its_slow_answer_comes() {
        let (state, clock) = start();
        // The channel was idle: its slot is due, and the write answers 80 ms into it.
        *state.slot_latency.lock().unwrap() = Duration::from_millis(80);
        let interval = paced_interval(1000);
        let (slot, slot_ms) =
            wait_for_slot_at(&state, &clock, &alerts(), interval, MAX_INLINE_WAIT).await;
        assert_eq!((slot, slot_ms), (Slot::Post, T0));
        // This instance's post is slow to answer (900 ms); meanwhile another instance wants
        // the channel's next slot, and takes it ahead of its start.
        let slow_send = |sent_ms: i64| async move {
            tokio::time::sleep(Duration::from_millis(900)).await;
            sent_ms
        };
        let other = async {
            let (slot, at) =
                wait_for_slot_at(&state, &clock, &alerts(), interval, MAX_INLINE_WAIT).await;
            assert_eq!(slot, Slot::Post);
            at
        };
        let alerts = alerts();
        let ((answered, sent_ms), other_at) = tokio::join!(
            send_on_slot(&state, &clock, &alerts, slot_ms, interval, slow_send),
            other
        );
        assert_eq!(answered, sent_ms, "the send was given the moment it left");
        assert_eq!(sent_ms, T0 + 80, "a late send");
        assert_eq!(
            other_at - sent_ms,
            1040,
            "the other instance's post left an interval after the late one, not after its slot"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_on_time_leaves_the_next_slot_where_it_was() {
        let (state, clock) = start();
        let interval = paced_interval(1000);
        let (_, slot_ms) =
            wait_for_slot_at(&state, &clock, &alerts(), interval, MAX_INLINE_WAIT).await;
        let ((), sent_ms) = send_on_slot(&state, &clock, &alerts(), slot_ms, interval, |_| async {
            tokio::time::sleep(Duration::from_millis(900)).await;
        })
        .await;
        assert_eq!(sent_ms, T0);
        assert_eq!(next_slot(&state, &clock, &alerts()).await, Slot::Post);
        assert_eq!(state.slot_times().last(), Some(&(T0 + 1040)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_silences_the_channel_for_exactly_retry_after_and_no_other_channel() {
        let (state, clock) = start();
        let growth = GroupId::from_queue("default:#growth");
        assert_eq!(next_slot(&state, &clock, &alerts()).await, Slot::Post);
        // Slack answered the post 429, Retry-After: 30.
        state
            .hold_until(&alerts(), clock.now_ms() + 30_000)
            .await
            .unwrap();
        assert_eq!(
            next_slot(&state, &clock, &alerts()).await,
            Slot::Rest(Rest::Defer(Duration::from_secs(30))),
            "30 s is too long to sleep: the rest goes back to SQS for exactly that long"
        );
        assert_eq!(
            next_slot(&state, &clock, &growth).await,
            Slot::Post,
            "another channel flows"
        );
        tokio::time::advance(Duration::from_millis(28_000)).await;
        assert_eq!(
            next_slot(&state, &clock, &alerts()).await,
            Slot::Post,
            "2 s before the end, the rest of the wait is slept in process"
        );
        assert_eq!(state.slot_times().last(), Some(&(T0 + 30_000)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_retry_after_is_waited_out_in_process() {
        let (state, clock) = start();
        state.hold_until(&alerts(), T0 + 2_000).await.unwrap();
        let slot = next_slot(&state, &clock, &alerts()).await;
        assert_eq!(slot, Slot::Post);
        assert_eq!(clock.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_never_moves_a_later_slot_earlier() {
        let (state, clock) = start();
        state.hold_until(&alerts(), T0 + 30_000).await.unwrap();
        state.hold_until(&alerts(), T0 + 2_000).await.unwrap();
        assert_eq!(
            next_slot(&state, &clock, &alerts()).await,
            Slot::Rest(Rest::Defer(Duration::from_secs(30)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_channel_parks_and_unreadable_state_waits() {
        let (state, clock) = start();
        let pause = Pause {
            error: "is_archived".into(),
            hint: "unarchive it".into(),
        };
        state
            .record_pause(&PauseScope::Channel(alerts()), &pause, "now")
            .await
            .unwrap();
        assert_eq!(
            next_slot(&state, &clock, &alerts()).await,
            Slot::Rest(Rest::Park(
                "channel paused (is_archived): unarchive it".into()
            ))
        );
        *state.down.lock().unwrap() = true;
        assert_eq!(
            next_slot(&state, &clock, &alerts()).await,
            Slot::Rest(Rest::Defer(STATE_UNAVAILABLE_RETRY))
        );
    }
}
