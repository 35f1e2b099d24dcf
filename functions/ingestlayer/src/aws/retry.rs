//! Retrying AWS calls inside one invocation: the one backoff policy, as data.
//!
//! Two kinds of call retry here. Batch calls that leave part of the batch unprocessed
//! (BatchGetItem's UnprocessedKeys, BatchWriteItem's UnprocessedItems) send the rest again
//! after [`UNPROCESSED`]'s delays; a write that must not be lost (a refreshed Slack token,
//! whose refresh token is already spent) runs again through [`with_retries`]. Longer waits
//! never happen in process: those messages go back to SQS.

use std::future::Future;
use std::time::Duration;

/// Waits before each further attempt: `delays[i]` before attempt `i + 2`, jittered up to
/// `jitter_percent` above, so the attempts are `delays.len() + 1` in all.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub delays: &'static [Duration],
    pub jitter_percent: u64,
}

/// Unprocessed batch items: 100 ms doubling to 2 s (about 4 s in all), jittered +50 %, so
/// instances that were throttled together do not retry together.
pub const UNPROCESSED: Backoff = Backoff {
    delays: &[
        Duration::from_millis(100),
        Duration::from_millis(200),
        Duration::from_millis(400),
        Duration::from_millis(800),
        Duration::from_millis(1600),
        Duration::from_millis(2000),
    ],
    jitter_percent: 50,
};

/// Storing a value that exists nowhere else (a refreshed Slack token): about 6 s in all.
pub const MUST_STORE: Backoff = Backoff {
    delays: &[
        Duration::from_millis(100),
        Duration::from_millis(300),
        Duration::from_millis(700),
        Duration::from_millis(1500),
        Duration::from_millis(3000),
    ],
    jitter_percent: 0,
};

impl Backoff {
    /// How many attempts in all.
    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The wait before attempt `attempt` (1-based): none before the first, `None` when the
    /// attempts are spent.
    pub fn before(&self, attempt: usize) -> Option<Duration> {
        match attempt {
            0 | 1 => Some(Duration::ZERO),
            n => self.delays.get(n - 2).map(|d| self.jittered(*d)),
        }
    }

    fn jittered(&self, d: Duration) -> Duration {
        if self.jitter_percent == 0 {
            return d;
        }
        let ms = d.as_millis() as u64;
        let extra = rand::random_range(0..=ms * self.jitter_percent / 100);
        Duration::from_millis(ms + extra)
    }
}

/// Runs `attempt` until it succeeds or the backoff's attempts are spent; the last error
/// then. Every failure but the last is logged with the wait before the next attempt.
pub async fn with_retries<T, E, F, Fut>(backoff: &Backoff, mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => match backoff.before(n + 1) {
                Some(wait) => {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "attempt failed; retrying");
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
                None => return Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_first_attempt_waits_nothing_and_the_last_is_bounded() {
        assert_eq!(UNPROCESSED.before(1), Some(Duration::ZERO));
        for n in 2..=UNPROCESSED.attempts() {
            let d = UNPROCESSED.before(n).expect("within attempts");
            let base = UNPROCESSED.delays[n - 2];
            assert!(d >= base && d <= base * 3 / 2, "{n}: {d:?}");
        }
        assert_eq!(UNPROCESSED.before(UNPROCESSED.attempts() + 1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_fails_twice_is_retried_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let r: Result<u32, &str> = with_retries(&MUST_STORE, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err("throttled"),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(r, Ok(2));
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_keeps_failing_gives_up_after_the_schedule_with_the_last_error() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let r: Result<(), String> = with_retries(&MUST_STORE, || async {
            Err(format!("failure {}", calls.fetch_add(1, Ordering::SeqCst)))
        })
        .await;
        assert_eq!(r, Err("failure 5".to_owned()));
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert_eq!(started.elapsed(), Duration::from_millis(5600));
    }
}
