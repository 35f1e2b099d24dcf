//! Injected faults: the ways Discord fails that a client must survive.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

/// A fault for the next `times` matching Execute Webhook requests.
///
/// Faults wait in a FIFO queue. A request to a known webhook (an unknown one answers 404
/// first) takes the first queued fault whose `webhook_id` matches, before rate limits and
/// validation; that fault's `times` goes down by one and it leaves the queue at zero. The
/// accept-then kinds ([`FaultKind::AcceptThenStatus`], [`FaultKind::AcceptThenDelay`]) are
/// taken only by a request that Discord accepts, so they hit the next message that is really
/// stored. One request takes at most one fault of each of the two groups.
///
/// Over HTTP (`POST /_standin/faults`, a single object or an array of them):
///
/// ```json
/// {"webhook_id": "1000000000000000001", "times": 2, "kind": {"http_status": 503}}
/// {"kind": {"rate_limited": {"retry_after": 1.5, "global": true}}}
/// {"kind": {"delay_ms": 5000}}
/// {"kind": {"accept_then_status": 500}}
/// {"kind": {"accept_then_delay_ms": 30000}}
/// ```
///
/// `webhook_id` is optional (absent or null: any webhook); `times` defaults to 1;
/// `retry_after` (seconds, fractional) defaults to 1 and `global` to false.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "FaultWire")]
pub struct Fault {
    /// The webhook the fault applies to; `None` means any webhook.
    pub webhook_id: Option<String>,
    /// How many matching requests the fault affects. Zero affects none.
    pub times: u32,
    /// What the affected requests get.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault for the next matching request to any webhook.
    pub fn once(kind: FaultKind) -> Fault {
        Fault::times(1, kind)
    }

    /// A fault for the next `times` requests to any webhook.
    pub fn times(times: u32, kind: FaultKind) -> Fault {
        Fault {
            webhook_id: None,
            times,
            kind,
        }
    }

    /// Restricts the fault to one webhook, by id.
    #[must_use]
    pub fn on_webhook(mut self, webhook_id: &str) -> Fault {
        self.webhook_id = Some(webhook_id.to_owned());
        self
    }
}

/// What a faulted request gets.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// That HTTP status instead of an answer; nothing is stored. Bodies are what Discord's
    /// edge sends (not documented; as observed): 500 `{"message": "500: Internal Server
    /// Error", "code": 0}` with the rate-limit headers; 502 Cloudflare's HTML `502 Bad Gateway`
    /// page; 503 and 504 a `text/plain` proxy message (`upstream connect error or
    /// disconnect/reset before headers. reset reason: overflow`); any other status `{"message":
    /// "<status>: <reason>", "code": 0}`. A value outside 400..=599 becomes 500.
    HttpStatus(u16),
    /// HTTP 429 with `retry_after` (body, fractional seconds) and `Retry-After` (header, whole
    /// seconds rounded up); `global` sets `"global": true`, `X-RateLimit-Global: true` and
    /// `X-RateLimit-Scope: global` (else scope `user`). Nothing is stored or counted.
    RateLimited {
        /// How long Discord asks the client to wait.
        retry_after: Duration,
        /// Whether it is the global limit.
        global: bool,
    },
    /// Discord is slow: the request waits this long before it is handled at all (rate
    /// limits, validation, storing). A client that gives up first has its connection closed,
    /// the handler is dropped with it and nothing is stored: safe to retry.
    Delay(Duration),
    /// Discord stores the message, then answers this status (as [`FaultKind::HttpStatus`])
    /// instead of 200/204: "accepted, but the client saw a failure".
    AcceptThenStatus(u16),
    /// Discord stores the message, then holds its normal answer back this long: "accepted, but
    /// the client timed out". Discord offers no way to list a webhook's messages, so the
    /// client cannot tell this from [`FaultKind::Delay`].
    AcceptThenDelay(Duration),
}

impl FaultKind {
    /// Whether the fault applies after the message is stored.
    pub(crate) fn after_accept(&self) -> bool {
        matches!(
            self,
            FaultKind::AcceptThenStatus(_) | FaultKind::AcceptThenDelay(_)
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultWire {
    #[serde(default)]
    webhook_id: Option<String>,
    #[serde(default = "one")]
    times: u32,
    kind: FaultKindWire,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum FaultKindWire {
    HttpStatus(u16),
    RateLimited {
        #[serde(default = "one_sec")]
        retry_after: f64,
        #[serde(default)]
        global: bool,
    },
    DelayMs(u64),
    AcceptThenStatus(u16),
    AcceptThenDelayMs(u64),
}

fn one_sec() -> f64 {
    1.0
}

impl From<FaultWire> for Fault {
    fn from(wire: FaultWire) -> Fault {
        let kind = match wire.kind {
            FaultKindWire::HttpStatus(status) => FaultKind::HttpStatus(status),
            FaultKindWire::RateLimited {
                retry_after,
                global,
            } => FaultKind::RateLimited {
                retry_after: seconds(retry_after),
                global,
            },
            FaultKindWire::DelayMs(ms) => FaultKind::Delay(Duration::from_millis(ms)),
            FaultKindWire::AcceptThenStatus(status) => FaultKind::AcceptThenStatus(status),
            FaultKindWire::AcceptThenDelayMs(ms) => {
                FaultKind::AcceptThenDelay(Duration::from_millis(ms))
            }
        };
        Fault {
            webhook_id: wire.webhook_id,
            times: wire.times,
            kind,
        }
    }
}

/// Seconds as a duration; negative, NaN or absurd values are clamped to 0..=1 day.
fn seconds(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value.min(86_400.0))
    } else {
        Duration::ZERO
    }
}

/// The queue of pending faults.
#[derive(Debug, Default)]
pub(crate) struct Faults(VecDeque<Fault>);

impl Faults {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.0.push_back(fault);
        }
    }

    /// Takes one use of the first fault for `webhook_id` whose kind is (`after_accept`) or is
    /// not an accept-then kind.
    pub(crate) fn take(&mut self, webhook_id: &str, after_accept: bool) -> Option<FaultKind> {
        let index = self.0.iter().position(|fault| {
            fault.kind.after_accept() == after_accept
                && fault
                    .webhook_id
                    .as_deref()
                    .is_none_or(|id| id == webhook_id)
        })?;
        let fault = self.0.get_mut(index)?;
        fault.times = fault.times.saturating_sub(1);
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.0.remove(index);
        }
        Some(kind)
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn the_documented_json_forms_parse() {
        let parse = |s: &str| serde_json::from_str::<Fault>(s).unwrap();
        assert_eq!(
            parse(r#"{"webhook_id":"1","times":2,"kind":{"http_status":503}}"#),
            Fault::times(2, FaultKind::HttpStatus(503)).on_webhook("1")
        );
        assert_eq!(
            parse(r#"{"kind":{"rate_limited":{"retry_after":1.5,"global":true}}}"#),
            Fault::once(FaultKind::RateLimited {
                retry_after: Duration::from_millis(1500),
                global: true
            })
        );
        assert_eq!(
            parse(r#"{"kind":{"rate_limited":{}}}"#),
            Fault::once(FaultKind::RateLimited {
                retry_after: Duration::from_secs(1),
                global: false
            })
        );
        assert_eq!(
            parse(r#"{"kind":{"delay_ms":5000}}"#),
            Fault::once(FaultKind::Delay(Duration::from_secs(5)))
        );
        assert_eq!(
            parse(r#"{"webhook_id":null,"kind":{"accept_then_status":500}}"#),
            Fault::once(FaultKind::AcceptThenStatus(500))
        );
        assert_eq!(
            parse(r#"{"kind":{"accept_then_delay_ms":250}}"#),
            Fault::once(FaultKind::AcceptThenDelay(Duration::from_millis(250)))
        );
    }

    #[test]
    fn unknown_kinds_and_fields_are_rejected() {
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"explode":1}}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"http_status":500},"tims":2}"#).is_err());
    }

    #[test]
    fn faults_are_taken_in_order_by_webhook_and_group() {
        let mut faults = Faults::default();
        faults.push(Fault::once(FaultKind::AcceptThenStatus(500)));
        faults.push(Fault::times(2, FaultKind::HttpStatus(502)).on_webhook("1"));
        faults.push(Fault::once(FaultKind::HttpStatus(503)));
        assert_eq!(faults.take("2", false), Some(FaultKind::HttpStatus(503)));
        assert_eq!(faults.take("2", false), None);
        assert_eq!(faults.take("1", false), Some(FaultKind::HttpStatus(502)));
        assert_eq!(faults.take("1", false), Some(FaultKind::HttpStatus(502)));
        assert_eq!(faults.take("1", false), None);
        assert_eq!(
            faults.take("1", true),
            Some(FaultKind::AcceptThenStatus(500))
        );
        assert_eq!(faults.take("1", true), None);
    }
}
