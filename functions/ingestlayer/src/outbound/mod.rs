//! Destinations beyond Slack, as adapters: how a message is sent to each and what each
//! answer means for delivery ([`Verdict`]). The first is the outbound webhook
//! ([`webhook`]): a signed POST to a URL of the user's, behind the address guard
//! ([`ssrf`]).

pub mod card;
pub mod discord;
pub mod email;
pub mod message;
pub mod notion;
pub mod ssrf;
pub mod telegram;
pub mod webhook;

use std::time::Duration;

/// What delivery does after a destination answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The destination took it; `receipt` is what it said (a status, a message id). `hold`:
    /// the destination said the target takes nothing more for that long (Discord's
    /// `X-RateLimit-Remaining: 0` with its `X-RateLimit-Reset-After`).
    Delivered {
        receipt: String,
        hold: Option<Duration>,
    },
    /// The destination said when to come back: the target waits exactly that long.
    RetryAfter { wait: Duration, reason: String },
    /// The destination said every target reached the same way waits that long (Discord's
    /// global rate limit): the target and the platform's sender wait.
    RetryAfterAll { wait: Duration, reason: String },
    /// A transient failure: retry by the destination's schedule. `maybe_sent` when the
    /// destination may have taken it (a timeout, a 5xx).
    Retry { reason: String, maybe_sent: bool },
    /// The message itself is refused and always will be: park it with the reason.
    Park { reason: String },
    /// The target takes nothing until someone acts: pause it, keep its backlog, say how.
    PauseTarget { reason: String, hint: String },
    /// The credential every target of the account is reached with no longer works (a
    /// revoked Slack token): pause them all, keep their backlogs, say how.
    PauseAccount { reason: String, hint: String },
}

impl Verdict {
    /// One line for logs, the journey and the DLQ.
    pub fn summary(&self) -> String {
        match self {
            Verdict::Delivered { receipt, .. } => format!("delivered ({receipt})"),
            Verdict::RetryAfter { wait, reason } | Verdict::RetryAfterAll { wait, reason } => {
                format!("{reason}; retry after {} s", wait.as_secs())
            }
            Verdict::Retry { reason, .. } => reason.clone(),
            Verdict::Park { reason } => reason.clone(),
            Verdict::PauseTarget { reason, .. } | Verdict::PauseAccount { reason, .. } => {
                reason.clone()
            }
        }
    }
}

/// The longest wait a destination's Retry-After may impose (a larger one is capped).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Reads a `Retry-After` header: delay-seconds, or an HTTP date (RFC 9110 §10.2.3),
/// capped at [`MAX_RETRY_AFTER`]. `now` is seconds since the epoch.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: i64) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(text).ok()?;
            let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
            Duration::from_secs(at.saturating_sub(u64::try_from(now).unwrap_or(0)))
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What a request that got no (whole) answer from `platform` means: a connection never
/// made certainly sent nothing; a timeout or an answer cut off may have been taken. The
/// error is stripped of its URL (a Telegram token is in it) and `secret` is scrubbed from
/// what remains, as a second guard.
pub fn transport(platform: &str, e: reqwest::Error, secret: Option<&str>) -> Verdict {
    let e = e.without_url();
    let mut cause = root_cause(&e);
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        cause = cause.replace(secret, "[redacted]");
    }
    if e.is_connect() {
        Verdict::Retry {
            reason: format!("could not connect to {platform}: {cause}"),
            maybe_sent: false,
        }
    } else if e.is_timeout() {
        Verdict::Retry {
            reason: format!("{platform} did not answer in time: {cause}"),
            maybe_sent: true,
        }
    } else {
        Verdict::Retry {
            reason: format!("no answer from {platform}: {cause}"),
            maybe_sent: true,
        }
    }
}

/// The innermost cause of an error (`Connection refused (os error 111)`), which says more
/// than reqwest's own `error sending request`.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

/// How two parts of a message share a length budget: each gets what it needs when both fit;
/// otherwise the first gets at least half (or what it needs, if less) and the second the
/// rest, and what the second does not use goes back to the first.
pub fn share(budget: usize, first: usize, second: usize) -> (usize, usize) {
    let a = first.min(budget.saturating_sub(second).max(budget / 2));
    let b = second.min(budget - a);
    (first.min(budget - b), b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_is_capped() {
        assert_eq!(retry_after(&with("30"), 0), Some(Duration::from_secs(30)));
        // 1994-11-06T08:49:37Z is 784111777.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            retry_after(&with(date), 784_111_777 - 90),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after(&with(date), 784_111_777 + 5),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&with("86400"), 0), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&with("soon"), 0), None);
        assert_eq!(retry_after(&HeaderMap::new(), 0), None);
    }
}
