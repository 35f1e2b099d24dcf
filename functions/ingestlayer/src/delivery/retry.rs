//! Retry policy as data: every delay delivery waits or hands back to SQS is named here,
//! with the small functions that pick one (by receive count, jittered) and the pacing
//! margin.

use std::time::Duration;

/// Seconds before retry n (by receive count) of a transient failure; jittered ±20 %.
pub const RETRY_SCHEDULE: &[u64] = &[1, 2, 5, 10, 30, 60, 120, 300, 600, 900];
/// How far a retry delay may stray from the schedule, either way (a fraction).
pub const RETRY_JITTER: f64 = 0.2;
/// SQS's longest visibility timeout, in seconds.
pub const MAX_VISIBILITY_SECS: u64 = 43_200;
/// Pacing waits up to this long are slept in process; longer ones go back to SQS.
pub const MAX_INLINE_WAIT: Duration = Duration::from_millis(2500);
/// A channel's slot this close is taken ahead of its start, so the post goes out at the
/// slot's first moment rather than a conditional write's latency after it. Short, so a
/// late post's hold (see `decide::late_post`, written while the post is in flight:
/// `pacing::send_on_slot`) lands before another instance takes the next slot.
pub const SLOT_AHEAD: Duration = Duration::from_millis(250);
/// Waiting for a slot, the instance wakes this long before it begins to take it (within
/// [`SLOT_AHEAD`], with room for the write's latency: under a burst the tables are busy
/// with the backlog's writes, and a write that lands after the slot makes its post late).
pub const SLOT_LEAD: Duration = Duration::from_millis(200);
/// The ledger or the channels table could not be read: try the group again after this.
pub const STATE_UNAVAILABLE_RETRY: Duration = Duration::from_secs(5);
/// Parking a message in the DLQ failed: it stays queued and comes back after this.
pub const PARK_FAILED_RETRY: Duration = Duration::from_secs(30);
/// No Slack token could be read (Secrets Manager, a refresh): the workspace's messages
/// come back after this.
pub const TOKEN_UNAVAILABLE_RETRY: Duration = Duration::from_secs(60);
/// The pacing slot's margin over the channel's interval: this fraction of it (2 %)...
pub const PACING_MARGIN_DIVISOR: u64 = 50;
/// ...plus this. A 1-per-second channel gets a slot every 1,040 ms (0.96 posts/s under a
/// backlog). Two posts reach Slack closer than a second only if the later one went out
/// more than 40 ms early relative to the earlier, and neither can: each is sent at its
/// slot's first moment (the slot is taken ahead, see `SLOT_AHEAD`), and one sent more than
/// `decide::LATE_POST` (10 ms) after its slot moves the next slot an interval after it.
/// What is left is the spread in the send-to-Slack latency of two posts, 30 ms here. (Before
/// slots were taken ahead, the slot write's own latency sat between slot and post, and a
/// 45 ms margin let the stand-in answer 429 on a loaded 2-core machine; the margin was
/// 5 % + 50 ms, 0.91 posts/s.)
pub const PACING_MARGIN_MS: u64 = 20;
/// A history check looks from this long before the uncertain attempt began (clock skew).
pub const HISTORY_SKEW_SECS: i64 = 60;

/// Delay before the next try of a transient failure, by receive count, jittered ±20 %.
pub fn retry_delay(receive_count: usize, schedule: &[u64]) -> Duration {
    retry_delay_with(
        receive_count,
        schedule,
        rand::random_range(1.0 - RETRY_JITTER..=1.0 + RETRY_JITTER),
    )
}

/// [`retry_delay`] with the jitter factor given (`1.0` is the schedule's own delay); never
/// under one second.
pub fn retry_delay_with(receive_count: usize, schedule: &[u64], jitter: f64) -> Duration {
    let Some(last) = schedule.len().checked_sub(1) else {
        return Duration::from_secs(1);
    };
    let base = schedule[receive_count.saturating_sub(1).min(last)] as f64;
    Duration::from_secs_f64((base * jitter).max(1.0))
}

/// The slot length for a channel: its interval plus a margin (2 % + 20 ms) for the
/// latency between taking a slot and Slack receiving the post, so that posts never
/// arrive closer together than the interval.
pub fn paced_interval(min_interval_ms: u64) -> Duration {
    Duration::from_millis(
        min_interval_ms + min_interval_ms / PACING_MARGIN_DIVISOR + PACING_MARGIN_MS,
    )
}

/// A delay as an SQS visibility timeout: whole seconds, at least 1, at most 12 h.
pub fn visibility_secs(d: Duration) -> i32 {
    d.as_secs().clamp(1, MAX_VISIBILITY_SECS) as i32
}

/// The visibility a message handed back to wait `d` gets: none when it need not wait (a
/// drain's ticket out of budget, for the next invocation to take up while the channel's
/// slot comes round), else [`visibility_secs`]. Rounded up to a second, the ticket came
/// back after the slot: the next post was 0.7 s late at each handoff.
pub fn hand_back_secs(d: Duration) -> i32 {
    if d.is_zero() {
        0
    } else {
        visibility_secs(d)
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

    #[test]
    fn the_receive_count_picks_the_step_of_the_schedule_and_the_last_repeats() {
        let at = |n| retry_delay_with(n, RETRY_SCHEDULE, 1.0).as_secs();
        assert_eq!(at(0), 1);
        assert_eq!(at(1), 1);
        assert_eq!(at(2), 2);
        assert_eq!(at(3), 5);
        assert_eq!(at(5), 30);
        assert_eq!(at(6), 60);
        assert_eq!(at(10), 900);
        assert_eq!(at(11), 900);
        assert_eq!(at(10_000), 900);
    }

    #[test]
    fn jitter_stays_within_a_fifth_either_way_and_never_under_a_second() {
        assert_eq!(
            retry_delay_with(5, RETRY_SCHEDULE, 0.8),
            Duration::from_secs(24)
        );
        assert_eq!(
            retry_delay_with(5, RETRY_SCHEDULE, 1.2),
            Duration::from_secs(36)
        );
        assert_eq!(
            retry_delay_with(1, RETRY_SCHEDULE, 0.8),
            Duration::from_secs(1)
        );
        for _ in 0..200 {
            let d = retry_delay(7, RETRY_SCHEDULE);
            assert!(
                d >= Duration::from_secs(96) && d <= Duration::from_secs(144),
                "{d:?}"
            );
        }
    }

    #[test]
    fn a_one_step_schedule_retries_every_second() {
        for n in 1..20 {
            assert!(retry_delay(n, &[1]) <= Duration::from_secs_f64(1.2));
        }
    }

    #[test]
    fn a_slot_is_the_interval_plus_two_percent_and_twenty_milliseconds() {
        assert_eq!(paced_interval(1000), Duration::from_millis(1040));
        assert_eq!(paced_interval(0), Duration::from_millis(20));
        assert_eq!(paced_interval(2000), Duration::from_millis(2060));
    }

    #[test]
    fn visibility_timeouts_are_whole_seconds_between_one_and_twelve_hours() {
        assert_eq!(visibility_secs(Duration::from_millis(300)), 1);
        assert_eq!(visibility_secs(Duration::from_secs(30)), 30);
        assert_eq!(visibility_secs(Duration::from_secs(100_000)), 43_200);
        assert_eq!(hand_back_secs(Duration::ZERO), 0, "no wait: back at once");
        assert_eq!(hand_back_secs(Duration::from_millis(300)), 1);
        assert_eq!(hand_back_secs(Duration::from_secs(30)), 30);
    }
}
