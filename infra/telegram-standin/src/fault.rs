//! Injected faults: the ways Telegram fails that a sender must survive.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

/// A fault for the next `times` `sendMessage` requests to a chat (or to any chat).
///
/// Faults are checked after the token (an unknown token is still 401) and before everything
/// else. They wait in a FIFO queue: a request takes the first queued fault whose `chat_id`
/// matches, that fault's `times` goes down by one, and it leaves the queue at zero. One request
/// is affected by at most one fault.
///
/// Over HTTP (`POST /_standin/faults`, one object or an array of them):
///
/// ```json
/// {"chat_id": -1002, "times": 2, "kind": {"http_status": 502}}
/// {"chat_id": "@alerts", "kind": {"rate_limited": {"retry_after": 30}}}
/// {"kind": {"delay_ms": 5000}}
/// {"kind": {"accept_then_fail": 502}}
/// {"kind": {"accept_then_delay_ms": 5000}}
/// ```
///
/// `chat_id` is optional (absent or null: any chat), an integer or `@username`, matched against
/// the request's `chat_id` after resolving usernames; `times` defaults to 1.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "FaultWire")]
pub struct Fault {
    /// The chat the fault applies to (`-1002`, `"@alerts"`); `None` means any chat.
    pub chat: Option<String>,
    /// How many matching requests the fault affects. Zero affects none.
    pub times: u32,
    /// What the affected requests get.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault for the next request to any chat.
    pub fn once(kind: FaultKind) -> Fault {
        Fault::times(1, kind)
    }

    /// A fault for the next `times` requests to any chat.
    pub fn times(times: u32, kind: FaultKind) -> Fault {
        Fault {
            chat: None,
            times,
            kind,
        }
    }

    /// Restricts the fault to one chat, by ID.
    #[must_use]
    pub fn in_chat(mut self, chat_id: i64) -> Fault {
        self.chat = Some(chat_id.to_string());
        self
    }

    /// Restricts the fault to one chat, by `@username`.
    #[must_use]
    pub fn in_chat_named(mut self, username: &str) -> Fault {
        self.chat = Some(format!("@{}", username.trim_start_matches('@')));
        self
    }
}

/// What a faulted `sendMessage` request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Nothing is sent; the answer is that HTTP status with
    /// `{"ok":false,"error_code":N,"description":"<reason phrase>"}`, e.g. 502 `Bad Gateway`.
    /// A status outside 400..=599 becomes 500.
    HttpStatus(u16),
    /// Nothing is sent; the answer is a 429 with `retry_after` as given (0 allowed), in the
    /// description, in `parameters.retry_after` and in `Retry-After`.
    RateLimited {
        /// Seconds.
        retry_after: u64,
    },
    /// Telegram is slow: the request waits this long, then is decided and answered as usual.
    /// It is decided whether or not the client is still waiting, so a client that timed out
    /// may still find its message sent.
    Delay(Duration),
    /// The ambiguous case: the request is decided as usual and, if accepted, the message is
    /// sent; the answer is then this HTTP status (as [`FaultKind::HttpStatus`]) instead of
    /// the success. A refused request gets its refusal.
    AcceptThenFail(u16),
    /// The ambiguous case: the request is decided as usual (the message is sent if accepted)
    /// and the answer, whatever it is, is held back this long, so a client with a shorter
    /// timeout never sees it.
    AcceptThenDelay(Duration),
}

impl FaultKind {
    /// The status an injected server error answers with.
    pub(crate) fn status(status: u16) -> u16 {
        if (400..=599).contains(&status) {
            status
        } else {
            500
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultWire {
    #[serde(default)]
    chat_id: Option<ChatWire>,
    #[serde(default = "one")]
    times: u32,
    kind: FaultKindWire,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ChatWire {
    Id(i64),
    Name(String),
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
        retry_after: u64,
    },
    DelayMs(u64),
    AcceptThenFail(u16),
    AcceptThenDelayMs(u64),
}

fn one_sec() -> u64 {
    1
}

impl TryFrom<FaultWire> for Fault {
    type Error = String;

    fn try_from(wire: FaultWire) -> Result<Fault, String> {
        let chat = match wire.chat_id {
            None => None,
            Some(ChatWire::Id(id)) => Some(id.to_string()),
            Some(ChatWire::Name(name)) if name.trim().is_empty() => {
                return Err(
                    "chat_id is empty: give an integer id, \"@username\" or leave it out".into(),
                )
            }
            Some(ChatWire::Name(name)) => Some(name.trim().to_owned()),
        };
        let kind = match wire.kind {
            FaultKindWire::HttpStatus(status) => FaultKind::HttpStatus(status),
            FaultKindWire::RateLimited { retry_after } => FaultKind::RateLimited { retry_after },
            FaultKindWire::DelayMs(ms) => FaultKind::Delay(Duration::from_millis(ms)),
            FaultKindWire::AcceptThenFail(status) => FaultKind::AcceptThenFail(status),
            FaultKindWire::AcceptThenDelayMs(ms) => {
                FaultKind::AcceptThenDelay(Duration::from_millis(ms))
            }
        };
        Ok(Fault {
            chat,
            times: wire.times,
            kind,
        })
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

    /// Takes one use of the first fault for this request; `matches` tells whether a fault's
    /// `chat` names the request's chat.
    pub(crate) fn take(&mut self, matches: impl Fn(&str) -> bool) -> Option<FaultKind> {
        let index = self
            .0
            .iter()
            .position(|fault| fault.chat.as_deref().is_none_or(&matches))?;
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
            parse(r#"{"chat_id": -1002, "times": 2, "kind": {"http_status": 502}}"#),
            Fault::times(2, FaultKind::HttpStatus(502)).in_chat(-1002)
        );
        assert_eq!(
            parse(r#"{"chat_id": "@alerts", "kind": {"rate_limited": {"retry_after": 30}}}"#),
            Fault::once(FaultKind::RateLimited { retry_after: 30 }).in_chat_named("alerts")
        );
        assert_eq!(
            parse(r#"{"kind": {"delay_ms": 5000}}"#),
            Fault::once(FaultKind::Delay(Duration::from_secs(5)))
        );
        assert_eq!(
            parse(r#"{"chat_id": null, "kind": {"accept_then_fail": 502}}"#),
            Fault::once(FaultKind::AcceptThenFail(502))
        );
        assert_eq!(
            parse(r#"{"kind": {"accept_then_delay_ms": 250}}"#),
            Fault::once(FaultKind::AcceptThenDelay(Duration::from_millis(250)))
        );
    }

    #[test]
    fn unknown_kinds_fields_and_empty_chats_are_refused() {
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"explode":1}}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"http_status":500},"tims":2}"#).is_err());
        assert!(
            serde_json::from_str::<Fault>(r#"{"chat_id":"","kind":{"http_status":500}}"#).is_err()
        );
    }

    #[test]
    fn faults_are_taken_in_order_and_only_for_their_chat() {
        let mut faults = Faults::default();
        faults.push(Fault::times(2, FaultKind::HttpStatus(500)).in_chat(-5));
        faults.push(Fault::once(FaultKind::HttpStatus(502)));
        let chat = |id: &'static str| move |c: &str| c == id;
        assert_eq!(faults.take(chat("7")), Some(FaultKind::HttpStatus(502)));
        assert_eq!(faults.take(chat("7")), None);
        assert_eq!(faults.take(chat("-5")), Some(FaultKind::HttpStatus(500)));
        assert_eq!(faults.take(chat("-5")), Some(FaultKind::HttpStatus(500)));
        assert_eq!(faults.take(chat("-5")), None);
    }
}
