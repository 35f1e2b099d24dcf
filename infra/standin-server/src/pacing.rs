//! A platform's rate limit as a token bucket per key (a Slack channel, a Notion
//! integration), answering with the whole seconds to wait, as `Retry-After` says them.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// One bucket per key. `rate` tokens per second refill up to `burst`; a request takes one.
///
/// Time comes from `tokio::time::Instant`, so tests that pause tokio's clock pace the stand-in
/// too.
#[derive(Debug)]
pub struct Pacer {
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
    pub fn new(rate: f64, burst: u32) -> Pacer {
        Pacer {
            rate: (rate.is_finite() && rate > 0.0).then_some(rate),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `key`, or says how long until one is available: whole seconds
    /// rounded up, at least one, so that waiting that long is always enough.
    pub fn take(&mut self, key: &str, now: Instant) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let burst = self.burst;
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
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

    pub fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_second_allows_one_then_asks_for_one_second() {
        let mut pacer = Pacer::new(1.0, 1);
        let t0 = Instant::now();
        assert_eq!(pacer.take("C1", t0), Ok(()));
        assert_eq!(pacer.take("C1", t0), Err(1));
        assert_eq!(pacer.take("C2", t0), Ok(()));
        assert_eq!(pacer.take("C1", t0 + Duration::from_millis(1000)), Ok(()));
    }

    #[test]
    fn slow_rates_ask_for_whole_seconds_rounded_up() {
        let mut pacer = Pacer::new(0.4, 1);
        let t0 = Instant::now();
        assert_eq!(pacer.take("C1", t0), Ok(()));
        assert_eq!(pacer.take("C1", t0), Err(3));
    }

    #[test]
    fn fast_rates_still_ask_for_at_least_one_second() {
        let mut pacer = Pacer::new(100.0, 1);
        let t0 = Instant::now();
        assert_eq!(pacer.take("C1", t0), Ok(()));
        assert_eq!(pacer.take("C1", t0), Err(1));
    }

    #[test]
    fn burst_allows_that_many_back_to_back() {
        let mut pacer = Pacer::new(1.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(pacer.take("C1", t0), Ok(()));
        }
        assert!(pacer.take("C1", t0).is_err());
    }

    #[test]
    fn an_infinite_rate_never_limits() {
        let mut pacer = Pacer::new(f64::INFINITY, 1);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(pacer.take("C1", t0), Ok(()));
        }
    }

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
}
