//! Injected faults: the ways Slack fails that a client must survive.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

use crate::channel::{ChannelRef, Channels};

/// A fault to apply to the next `times` matching `chat.postMessage` requests.
///
/// Faults are checked after authentication (and after reading the body, so `invalid_json` comes
/// first) and before everything else: channel, content, rate limit. They are kept in a FIFO queue: a request takes the first queued fault whose
/// `channel` matches, that fault's `times` goes down by one, and it leaves the queue at zero.
/// One request is affected by at most one fault.
///
/// Over HTTP (`POST /_standin/faults`, a single object or an array of them):
///
/// ```json
/// {"channel": "#alerts", "times": 2, "kind": {"http_status": 503}}
/// {"kind": {"slack_error": "token_revoked"}}
/// {"kind": {"rate_limited": {"retry_after_secs": 30}}}
/// {"kind": {"delay_ms": 5000}}
/// {"kind": {"accept_then_delay_ms": 5000}}
/// ```
///
/// `channel` is optional (absent or null: any channel) and matches `#alerts`, `alerts` and the
/// channel's ID alike; `times` defaults to 1.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "FaultWire")]
pub struct Fault {
    /// The channel the fault applies to; `None` means any channel.
    pub channel: Option<String>,
    /// How many matching requests the fault affects. Zero affects none.
    pub times: u32,
    /// What the affected requests get.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault for the next matching request on any channel.
    pub fn once(kind: FaultKind) -> Fault {
        Fault::times(1, kind)
    }

    /// A fault for the next `times` requests on any channel.
    pub fn times(times: u32, kind: FaultKind) -> Fault {
        Fault {
            channel: None,
            times,
            kind,
        }
    }

    /// Restricts the fault to one channel (`#alerts`, `alerts` or an ID).
    #[must_use]
    pub fn on_channel(mut self, channel: &str) -> Fault {
        self.channel = Some(channel.to_owned());
        self
    }
}

/// What a faulted `chat.postMessage` request gets. Nothing is posted unless stated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// That HTTP status (500, 503, ...) with body `{"ok":false,"error":"internal_error"}`.
    /// A value outside 200..=599 becomes 500.
    HttpStatus(u16),
    /// HTTP 200 with `{"ok":false,"error":"<name>"}`, e.g. `not_in_channel`, `token_revoked`,
    /// `invalid_blocks`, `fatal_error`.
    SlackError(String),
    /// HTTP 429, `Retry-After: <retry_after_secs>` (as given, 0 allowed),
    /// body `{"ok":false,"error":"ratelimited"}`.
    RateLimited {
        /// The `Retry-After` header value, in seconds.
        retry_after_secs: u64,
    },
    /// Slack is slow and does not post: after the delay the response is HTTP 200
    /// `{"ok":false,"error":"request_timeout"}`. A client with a shorter timeout sees a timeout.
    Delay(Duration),
    /// Slack posts the message (the request goes through normal validation and rate limiting
    /// and is recorded if accepted), then the response, whatever it is, is held back for the
    /// delay: "Slack accepted but the client timed out".
    AcceptThenDelay(Duration),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultWire {
    #[serde(default)]
    channel: Option<String>,
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
    SlackError(String),
    RateLimited {
        #[serde(default = "one_sec")]
        retry_after_secs: u64,
    },
    DelayMs(u64),
    AcceptThenDelayMs(u64),
}

fn one_sec() -> u64 {
    1
}

impl From<FaultWire> for Fault {
    fn from(wire: FaultWire) -> Fault {
        let kind = match wire.kind {
            FaultKindWire::HttpStatus(status) => FaultKind::HttpStatus(status),
            FaultKindWire::SlackError(name) => FaultKind::SlackError(name),
            FaultKindWire::RateLimited { retry_after_secs } => {
                FaultKind::RateLimited { retry_after_secs }
            }
            FaultKindWire::DelayMs(ms) => FaultKind::Delay(Duration::from_millis(ms)),
            FaultKindWire::AcceptThenDelayMs(ms) => {
                FaultKind::AcceptThenDelay(Duration::from_millis(ms))
            }
        };
        Fault {
            channel: wire.channel,
            times: wire.times,
            kind,
        }
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

    /// Takes one use of the first fault matching the request's channel key (see
    /// [`Channels::key`]); `None` for a request without a usable channel.
    pub(crate) fn take(
        &mut self,
        channels: &Channels,
        request_channel: Option<&str>,
    ) -> Option<FaultKind> {
        let index = self.0.iter().position(|fault| match &fault.channel {
            None => true,
            Some(wanted) => match (ChannelRef::parse(wanted), request_channel) {
                (Some(wanted), Some(key)) => channels.key(&wanted) == key,
                _ => false,
            },
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
            parse(r##"{"channel":"#alerts","times":2,"kind":{"http_status":503}}"##),
            Fault::times(2, FaultKind::HttpStatus(503)).on_channel("#alerts")
        );
        assert_eq!(
            parse(r#"{"kind":{"slack_error":"token_revoked"}}"#),
            Fault::once(FaultKind::SlackError("token_revoked".into()))
        );
        assert_eq!(
            parse(r#"{"kind":{"rate_limited":{"retry_after_secs":30}}}"#),
            Fault::once(FaultKind::RateLimited {
                retry_after_secs: 30
            })
        );
        assert_eq!(
            parse(r#"{"kind":{"delay_ms":5000}}"#),
            Fault::once(FaultKind::Delay(Duration::from_secs(5)))
        );
        assert_eq!(
            parse(r#"{"channel":null,"kind":{"accept_then_delay_ms":250}}"#),
            Fault::once(FaultKind::AcceptThenDelay(Duration::from_millis(250)))
        );
    }

    #[test]
    fn unknown_kinds_and_fields_are_rejected() {
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"explode":1}}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"http_status":500},"tims":2}"#).is_err());
    }

    #[test]
    fn faults_are_taken_in_order_and_only_for_their_channel() {
        let channels = Channels::default();
        let mut faults = Faults::default();
        faults.push(Fault::times(2, FaultKind::HttpStatus(500)).on_channel("#alerts"));
        faults.push(Fault::once(FaultKind::HttpStatus(503)));
        assert_eq!(
            faults.take(&channels, Some("other")),
            Some(FaultKind::HttpStatus(503))
        );
        assert_eq!(faults.take(&channels, Some("other")), None);
        assert_eq!(
            faults.take(&channels, Some("alerts")),
            Some(FaultKind::HttpStatus(500))
        );
        assert_eq!(
            faults.take(&channels, Some("alerts")),
            Some(FaultKind::HttpStatus(500))
        );
        assert_eq!(faults.take(&channels, Some("alerts")), None);
    }
}
