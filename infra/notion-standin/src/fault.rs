//! Injected faults: the ways Notion fails that a client must survive.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

use crate::ids;

/// A fault for the next `times` matching `/v1` requests.
///
/// Faults are checked after authentication, the `Notion-Version` header and the rate limit,
/// once the request's data source is known (a page's parent, the data source in the path), and
/// before anything else. They wait in a FIFO queue: a request takes the first queued fault that
/// matches it, whose `times` goes down by one; at zero it leaves the queue. One request takes at
/// most one fault.
///
/// Over HTTP (`POST /_standin/faults`, one object or an array of them):
///
/// ```json
/// {"data_source_id": "…", "times": 2, "kind": {"error": "bad_gateway"}}
/// {"kind": {"error": "conflict_error"}}
/// {"kind": {"rate_limited": {"retry_after_secs": 30}}}
/// {"kind": {"delay_ms": 5000}}
/// {"kind": {"accept_then_error": "gateway_timeout"}}
/// {"kind": {"accept_then_delay_ms": 65000}}
/// ```
///
/// `data_source_id` is optional (absent or null: any request, including `GET
/// /v1/databases/{id}`); with it, only requests naming that data source match (a page created
/// in it, a query or retrieval of it). `times` defaults to 1.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "FaultWire")]
pub struct Fault {
    /// The data source the fault applies to (either ID form); `None` means any request.
    pub data_source_id: Option<String>,
    /// How many matching requests the fault affects. Zero affects none.
    pub times: u32,
    /// What the affected requests get.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault for the next request.
    pub fn once(kind: FaultKind) -> Fault {
        Fault::times(1, kind)
    }

    /// A fault for the next `times` requests.
    pub fn times(times: u32, kind: FaultKind) -> Fault {
        Fault {
            data_source_id: None,
            times,
            kind,
        }
    }

    /// Restricts the fault to requests naming one data source.
    #[must_use]
    pub fn on_data_source(mut self, data_source_id: &str) -> Fault {
        self.data_source_id = Some(data_source_id.to_owned());
        self
    }
}

/// What a faulted request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Notion fails at once with that error; nothing is created.
    Error(Failure),
    /// HTTP 429 `rate_limited` with `Retry-After: <retry_after_secs>` (as given, 0 allowed);
    /// nothing is created.
    RateLimited {
        /// The `Retry-After` header value, in seconds.
        retry_after_secs: u64,
    },
    /// Notion is slow: the request waits this long, then is handled as usual. A client that
    /// hangs up first drops the request with its connection, as with any HTTP server.
    Delay(Duration),
    /// The ambiguous failure: the request is handled as usual (a page IS created), then the
    /// answer is this error instead of the page.
    AcceptThenError(Failure),
    /// The ambiguous failure: the request is handled as usual (a page IS created), then the
    /// answer is held back this long, so a client with a shorter timeout never sees it.
    AcceptThenDelay(Duration),
}

/// Notion's failure answers (<https://developers.notion.com/reference/status-codes>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// 500 `internal_server_error`.
    InternalServerError,
    /// 502 `bad_gateway`.
    BadGateway,
    /// 503 `service_unavailable`.
    ServiceUnavailable,
    /// 504 `gateway_timeout`.
    GatewayTimeout,
    /// 409 `conflict_error`.
    #[serde(rename = "conflict_error")]
    Conflict,
}

impl Failure {
    /// HTTP status, `code` and `message`. The messages are the status-codes page's
    /// descriptions of each code.
    pub(crate) fn parts(self) -> (u16, &'static str, &'static str) {
        match self {
            Failure::InternalServerError => (
                500,
                "internal_server_error",
                "Unexpected error occurred. Reach out to Notion support.",
            ),
            Failure::BadGateway => (
                502,
                "bad_gateway",
                "Notion encountered an issue while attempting to complete this request (e.g., failed to establish a connection with an upstream server). Please try again.",
            ),
            Failure::ServiceUnavailable => (
                503,
                "service_unavailable",
                "Notion is unavailable. Try again later. This can occur when the time to respond to a request takes longer than 60 seconds, the maximum request timeout.",
            ),
            Failure::GatewayTimeout => (
                504,
                "gateway_timeout",
                "Notion timed out while attempting to complete this request. Please try again later.",
            ),
            Failure::Conflict => (
                409,
                "conflict_error",
                "The transaction could not be completed, potentially due to a data collision. Make sure the parameters are up to date and try again.",
            ),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultWire {
    #[serde(default)]
    data_source_id: Option<String>,
    #[serde(default = "one")]
    times: u32,
    kind: FaultKindWire,
}

fn one() -> u32 {
    1
}

fn one_sec() -> u64 {
    1
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum FaultKindWire {
    Error(Failure),
    RateLimited {
        #[serde(default = "one_sec")]
        retry_after_secs: u64,
    },
    DelayMs(u64),
    AcceptThenError(Failure),
    AcceptThenDelayMs(u64),
}

impl From<FaultWire> for Fault {
    fn from(wire: FaultWire) -> Fault {
        let kind = match wire.kind {
            FaultKindWire::Error(failure) => FaultKind::Error(failure),
            FaultKindWire::RateLimited { retry_after_secs } => {
                FaultKind::RateLimited { retry_after_secs }
            }
            FaultKindWire::DelayMs(ms) => FaultKind::Delay(Duration::from_millis(ms)),
            FaultKindWire::AcceptThenError(failure) => FaultKind::AcceptThenError(failure),
            FaultKindWire::AcceptThenDelayMs(ms) => {
                FaultKind::AcceptThenDelay(Duration::from_millis(ms))
            }
        };
        Fault {
            data_source_id: wire.data_source_id,
            times: wire.times,
            kind,
        }
    }
}

/// The queue of pending faults.
#[derive(Debug, Default)]
pub(crate) struct Faults(VecDeque<Fault>);

impl Faults {
    /// Queues a fault, its data source in the dashed form (an ID that is no UUID is kept as
    /// given and matches nothing).
    pub(crate) fn push(&mut self, mut fault: Fault) {
        if fault.times == 0 {
            return;
        }
        if let Some(id) = fault.data_source_id.as_deref().and_then(ids::parse) {
            fault.data_source_id = Some(id);
        }
        self.0.push_back(fault);
    }

    /// Takes one use of the first fault matching a request about `data_source` (dashed form).
    pub(crate) fn take(&mut self, data_source: Option<&str>) -> Option<FaultKind> {
        let index = self
            .0
            .iter()
            .position(|fault| match &fault.data_source_id {
                None => true,
                Some(wanted) => Some(wanted.as_str()) == data_source,
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

    const DS: &str = "164b19c5-58e5-4a47-a3a9-c905d9519c65";

    #[test]
    fn the_documented_json_forms_parse() {
        let parse = |s: &str| serde_json::from_str::<Fault>(s).unwrap();
        assert_eq!(
            parse(&format!(
                r#"{{"data_source_id":"{DS}","times":2,"kind":{{"error":"bad_gateway"}}}}"#
            )),
            Fault::times(2, FaultKind::Error(Failure::BadGateway)).on_data_source(DS)
        );
        assert_eq!(
            parse(r#"{"kind":{"error":"conflict_error"}}"#),
            Fault::once(FaultKind::Error(Failure::Conflict))
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
            parse(r#"{"kind":{"accept_then_error":"gateway_timeout"}}"#),
            Fault::once(FaultKind::AcceptThenError(Failure::GatewayTimeout))
        );
        assert_eq!(
            parse(r#"{"data_source_id":null,"kind":{"accept_then_delay_ms":250}}"#),
            Fault::once(FaultKind::AcceptThenDelay(Duration::from_millis(250)))
        );
    }

    #[test]
    fn unknown_kinds_and_fields_are_rejected() {
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"explode":1}}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"error":"teapot"}}"#).is_err());
        assert!(
            serde_json::from_str::<Fault>(r#"{"kind":{"error":"bad_gateway"},"tims":2}"#).is_err()
        );
    }

    #[test]
    fn faults_are_taken_in_order_and_only_for_their_data_source() {
        let mut faults = Faults::default();
        let compact = DS.replace('-', "");
        faults
            .push(Fault::times(2, FaultKind::Error(Failure::BadGateway)).on_data_source(&compact));
        faults.push(Fault::once(FaultKind::Error(Failure::Conflict)));
        assert_eq!(
            faults.take(Some("00000000-0000-4000-8000-000000000000")),
            Some(FaultKind::Error(Failure::Conflict))
        );
        assert_eq!(faults.take(None), None);
        assert_eq!(
            faults.take(Some(DS)),
            Some(FaultKind::Error(Failure::BadGateway))
        );
        assert_eq!(
            faults.take(Some(DS)),
            Some(FaultKind::Error(Failure::BadGateway))
        );
        assert_eq!(faults.take(Some(DS)), None);
    }
}
