//! Delivery's sense of time, injected: pacing slots, Retry-After holds, ledger claims and
//! the age limit all read this clock, never the wall clock directly, so tests drive them
//! with `tokio::time::pause()`.

use std::time::Duration;

/// Milliseconds since the Unix epoch, now.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;

    /// Now as RFC 3339 text (when a pause began, for operators).
    fn now_text(&self) -> String {
        let nanos = i128::from(self.now_ms()) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }
}

/// The system's wall clock: what the Lambda uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// A clock that starts at a given moment and then follows tokio's clock, so that under
/// `tokio::time::pause()` it moves only when the runtime's time is advanced (or a sleep
/// auto-advances it).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_ms: i64) -> Self {
        Self {
            start_ms,
            start: tokio::time::Instant::now(),
        }
    }

    /// How long since the clock started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.start.elapsed().as_millis() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_only_with_tokio_time() {
        let clock = TokioClock::starting_at(1_700_000_000_000);
        assert_eq!(clock.now_ms(), 1_700_000_000_000);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(clock.now_ms(), 1_700_000_030_000);
        assert_eq!(clock.now_text(), "2023-11-14T22:13:50Z");
    }
}
