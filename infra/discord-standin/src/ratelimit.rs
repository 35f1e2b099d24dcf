//! Discord's rate limits as fixed windows: a bucket allows `requests` requests, then refuses
//! until the window that its first request opened has passed (`X-RateLimit-Reset-After`).
//!
//! Docs: <https://discord.com/developers/docs/topics/rate-limits>. Discord describes each
//! bucket by a limit, the requests remaining and when it resets, which is a fixed window; the
//! stand-in keeps one per webhook (`webhook_id + webhook_token`, a top-level resource of the
//! path) and one global.
//!
//! Time comes from `tokio::time::Instant`, so tests that pause tokio's clock pace the stand-in
//! too.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// A limit of `requests` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in one window; at least 1 is used.
    pub requests: u32,
    /// The window's length; at least one millisecond is used.
    pub per: Duration,
}

impl RateLimit {
    /// `requests` requests per `per`.
    pub const fn new(requests: u32, per: Duration) -> RateLimit {
        RateLimit { requests, per }
    }

    /// Discord's commonly observed limit for executing one webhook: 5 requests per 2 seconds.
    /// The docs give no number ("rate limits should not be hard coded"); this is what Discord
    /// answers in `X-RateLimit-Limit` / `X-RateLimit-Reset-After` for webhooks in practice
    /// (see <https://birdie0.github.io/discord-webhooks-guide/other/rate_limits.html>).
    pub const WEBHOOK: RateLimit = RateLimit::new(5, Duration::from_secs(2));

    /// Discord's documented global limit: 50 requests per second
    /// (<https://discord.com/developers/docs/topics/rate-limits#global-rate-limit>).
    pub const GLOBAL: RateLimit = RateLimit::new(50, Duration::from_secs(1));

    fn requests(&self) -> u32 {
        self.requests.max(1)
    }

    fn per(&self) -> Duration {
        self.per.max(Duration::from_millis(1))
    }
}

/// Where a bucket stands after a request, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Until the window resets; on a refusal, how long to wait (`retry_after`).
    pub(crate) reset_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    opened: Instant,
    used: u32,
}

/// Fixed windows by key.
#[derive(Debug)]
pub(crate) struct Windows {
    limit: RateLimit,
    buckets: HashMap<String, Bucket>,
}

impl Windows {
    pub(crate) fn new(limit: RateLimit) -> Windows {
        Windows {
            limit,
            buckets: HashMap::new(),
        }
    }

    /// Counts a request against `key`'s bucket: `Ok` with the quota left, or `Err` with the
    /// wait until the window resets (nothing counted).
    pub(crate) fn take(&mut self, key: &str, now: Instant) -> Result<Quota, Quota> {
        let limit = self.limit.requests();
        let per = self.limit.per();
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            opened: now,
            used: 0,
        });
        if now.saturating_duration_since(bucket.opened) >= per {
            *bucket = Bucket {
                opened: now,
                used: 0,
            };
        }
        let reset_after = (bucket.opened + per).saturating_duration_since(now);
        if bucket.used < limit {
            bucket.used += 1;
            Ok(Quota {
                limit,
                remaining: limit - bucket.used,
                reset_after,
            })
        } else {
            Err(Quota {
                limit,
                remaining: 0,
                reset_after,
            })
        }
    }

    /// The quota `key` has now, counting nothing.
    pub(crate) fn peek(&self, key: &str, now: Instant) -> Quota {
        let limit = self.limit.requests();
        let per = self.limit.per();
        match self.buckets.get(key) {
            Some(bucket) if now.saturating_duration_since(bucket.opened) < per => Quota {
                limit,
                remaining: limit.saturating_sub(bucket.used),
                reset_after: (bucket.opened + per).saturating_duration_since(now),
            },
            _ => Quota {
                limit,
                remaining: limit,
                reset_after: per,
            },
        }
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_requests_then_refuses_until_it_resets() {
        let mut windows = Windows::new(RateLimit::WEBHOOK);
        let t0 = Instant::now();
        for remaining in (0..5).rev() {
            assert_eq!(windows.take("w", t0).unwrap().remaining, remaining);
        }
        let refused = windows
            .take("w", t0 + Duration::from_millis(500))
            .unwrap_err();
        assert_eq!(refused.reset_after, Duration::from_millis(1500));
        assert_eq!(refused.remaining, 0);
        assert!(windows.take("other", t0).is_ok());
        let after = windows.take("w", t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(
            (after.remaining, after.reset_after),
            (4, Duration::from_secs(2))
        );
    }

    #[test]
    fn peeking_counts_nothing() {
        let mut windows = Windows::new(RateLimit::new(2, Duration::from_secs(1)));
        let t0 = Instant::now();
        assert_eq!(windows.peek("w", t0).remaining, 2);
        windows.take("w", t0).unwrap();
        assert_eq!(windows.peek("w", t0).remaining, 1);
        assert_eq!(windows.peek("w", t0).remaining, 1);
    }

    #[test]
    fn a_zero_limit_still_allows_one_request() {
        let mut windows = Windows::new(RateLimit::new(0, Duration::ZERO));
        let t0 = Instant::now();
        assert!(windows.take("w", t0).is_ok());
        assert!(windows.take("w", t0).is_err());
    }
}
