//! Notion's request rate limit as a token bucket per integration.
//!
//! <https://developers.notion.com/reference/request-limits>: "The rate limit for incoming
//! requests per connection is an average of three requests per second. Some bursts beyond the
//! average rate are allowed." Over it Notion answers 429 `rate_limited` with a `Retry-After`
//! header "set as an integer number of seconds", after which requests "should no longer be rate
//! limited". The docs do not size the burst; it is [`crate::StandinConfig::burst`].

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// One bucket per integration token. `rate` tokens per second refill up to `burst`; a request
/// takes one. Time comes from `tokio::time::Instant`, so tests that pause tokio's clock pace
/// the stand-in too.
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: Option<f64>,
    burst: f64,
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Pacer {
    /// A `rate` that is not finite and positive disables limiting; `burst` is at least 1.
    pub(crate) fn new(rate: f64, burst: u32) -> Pacer {
        Pacer {
            rate: (rate.is_finite() && rate > 0.0).then_some(rate),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for the integration, or says how long until one is available: whole
    /// seconds rounded up, at least one, so that waiting that long is always enough.
    pub(crate) fn take(&mut self, integration: &str, now: Instant) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let burst = self.burst;
        let bucket = self
            .buckets
            .entry(integration.to_owned())
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = Duration::from_secs_f64(((1.0 - bucket.tokens) / rate).min(86_400.0));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Err(secs.max(1))
        }
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_per_second_with_a_burst_of_three_then_one_second() {
        let mut pacer = Pacer::new(3.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(pacer.take("a", t0), Ok(()));
        }
        assert_eq!(pacer.take("a", t0), Err(1));
        assert_eq!(pacer.take("b", t0), Ok(()), "buckets are per integration");
        assert_eq!(pacer.take("a", t0 + Duration::from_millis(334)), Ok(()));
        assert!(pacer.take("a", t0 + Duration::from_millis(334)).is_err());
    }

    #[test]
    fn slow_rates_ask_for_whole_seconds_rounded_up() {
        let mut pacer = Pacer::new(0.4, 1);
        let t0 = Instant::now();
        assert_eq!(pacer.take("a", t0), Ok(()));
        assert_eq!(pacer.take("a", t0), Err(3));
    }

    #[test]
    fn an_infinite_rate_never_limits() {
        let mut pacer = Pacer::new(f64::INFINITY, 1);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(pacer.take("a", t0), Ok(()));
        }
    }
}
