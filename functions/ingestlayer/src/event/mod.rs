//! Events as ingestlayer keeps them: names, ids, the stored [`Envelope`] and who sent it.
//! How a request body becomes an event is in [`incoming`].

pub mod incoming;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use time::OffsetDateTime;

/// The longest event name or client-given id we accept.
pub const MAX_NAME_LEN: usize = 128;
/// The longest event id: a client-given id scoped by its source (`<source>:<client id>`).
pub const MAX_ID_LEN: usize = 256;

/// One thing wrong with a request, located by JSON pointer into the request body: what a
/// 400 answer lists, not one of the library's failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// RFC 6901 pointer into the request body, e.g. `/data/count` or `/events/3/name`.
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// An event name such as `feature.used`: 1–128 characters, starting with a letter or
/// digit, then letters, digits and `_ . : / -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventName(String);

impl EventName {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::reason("event name is empty"));
        }
        if s.chars().count() > MAX_NAME_LEN {
            return Err(Error::reason(format!(
                "event name is longer than {MAX_NAME_LEN} characters"
            )));
        }
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c));
        if !(first_ok && rest_ok) {
            return Err(Error::reason(format!(
                "event name {s:?} may hold only letters, digits and _ . : / - and must start with a letter or digit"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<EventName> for String {
    fn from(n: EventName) -> String {
        n.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id a client (or a webhook sender) gave its event: 1–128 visible ASCII characters.
/// It names the event only together with its source (see [`EventId::scoped`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::reason("id is empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(Error::reason(format!(
                "id is longer than {MAX_NAME_LEN} characters"
            )));
        }
        if !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::reason(
                "id may hold only visible ASCII characters (no spaces)",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event's id, as answered in the 202, stored, signed in links and shown in Slack.
///
/// An id the sender gave is scoped by the source that sent it: `<source>:<client id>`, so
/// `web-app:order-1` for an API key of source `web-app` and `webhook:stripe:evt_1` for the
/// webhook source `stripe`. A server-assigned id is a bare ULID (it holds no `:`). API-key
/// source names hold no `:` and are never `webhook`, so no two sources can name the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::reason("id is empty"));
        }
        if s.len() > MAX_ID_LEN {
            return Err(Error::reason(format!(
                "id is longer than {MAX_ID_LEN} characters"
            )));
        }
        if !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::reason(
                "id may hold only visible ASCII characters (no spaces)",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh server id.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }

    /// The id of the event `source` named `client`: `<source>:<client>`.
    pub fn scoped(source: &str, client: &ClientId) -> Self {
        Self(format!("{source}:{}", client.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<EventId> for String {
    fn from(n: EventId) -> String {
        n.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event as a client sent it, parsed but not yet accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    pub name: EventName,
    /// The sender's own id for the event, unscoped.
    pub id: Option<ClientId>,
    pub time: Option<OffsetDateTime>,
    pub data: Value,
    /// CloudEvents context attributes other than `type`, `id`, `time` and `data`
    /// (`specversion`, `source`, `subject`, extensions), when the event came as a CloudEvent.
    pub cloudevent: Option<Map<String, Value>>,
    /// Where a signed webhook came from (provider, source, delivery id and the provider's
    /// envelope around the data), when the event came through `/v1/webhooks/{source}`.
    pub webhook: Option<Map<String, Value>>,
}

/// An accepted event: what is stored and what flows through the queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: EventId,
    pub name: EventName,
    /// When the event happened, as the client said; absent when it did not say.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The source that sent it: the API key's source name, or `webhook:<source>` for a
    /// verified webhook. Set by ingest from the credential, never from the payload.
    pub source: String,
    /// The event's fields, kept whole.
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudevent: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Map<String, Value>>,
}

/// Who sent an event, as filters and templates see it (`$source`, `$webhook`). Ingest sets
/// it from the credential that authenticated the request, so a sender cannot write it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The recorded source: an API key's source name, or `webhook:<source>`.
    pub source: &'a str,
    /// A verified webhook's context (`provider`, `source`, `delivery_id`, and the provider's
    /// envelope around the data); `None` for events sent with an API key.
    pub webhook: Option<&'a Map<String, Value>>,
    /// The CloudEvents context attributes (`specversion`, `source`, `subject`, extensions)
    /// when the event came as a CloudEvent (`$cloudevent.*`).
    pub cloudevent: Option<&'a Map<String, Value>>,
}

impl Envelope {
    /// Who sent this event.
    pub fn origin(&self) -> Origin<'_> {
        Origin {
            source: &self.source,
            webhook: self.webhook.as_ref(),
            cloudevent: self.cloudevent.as_ref(),
        }
    }

    /// Accepts `event` from `source` now: scopes the client's id by `source`
    /// (`<source>:<id>`) or assigns a ULID.
    pub fn accept(event: IncomingEvent, source: &str, received_at: OffsetDateTime) -> Self {
        Self {
            id: match &event.id {
                Some(client) => EventId::scoped(source, client),
                None => EventId::generate(),
            },
            name: event.name,
            time: event.time,
            received_at,
            source: source.to_owned(),
            data: event.data,
            cloudevent: event.cloudevent,
            webhook: event.webhook,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::incoming::parse_incoming;
    use serde_json::json;

    #[test]
    fn event_names_are_checked() {
        assert!(EventName::parse("feature.used").is_ok());
        assert!(EventName::parse("com.github.workflow_run:completed").is_ok());
        assert!(EventName::parse(".hidden").is_err());
        assert!(EventName::parse("has space").is_err());
        assert!(EventName::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn client_ids_are_scoped_by_their_source_and_server_ids_are_bare_ulids() {
        let e = parse_incoming(&json!({"name": "a", "id": "webhook:stripe:evt_1"}), "").unwrap();
        let env = Envelope::accept(e, "web-app", OffsetDateTime::now_utc());
        assert_eq!(env.id.as_str(), "web-app:webhook:stripe:evt_1");
        let e = parse_incoming(&json!({"name": "a", "id": "evt_1"}), "").unwrap();
        let env = Envelope::accept(e, "webhook:stripe", OffsetDateTime::now_utc());
        assert_eq!(env.id.as_str(), "webhook:stripe:evt_1");
        let e = parse_incoming(&json!({"name": "a"}), "").unwrap();
        let env = Envelope::accept(e, "web-app", OffsetDateTime::now_utc());
        assert!(!env.id.as_str().contains(':'), "{}", env.id);
        // The longest client id under the longest source name is still a valid event id.
        let e = parse_incoming(&json!({"name": "a", "id": "i".repeat(MAX_NAME_LEN)}), "").unwrap();
        let env = Envelope::accept(e, &"s".repeat(64), OffsetDateTime::now_utc());
        assert!(EventId::parse(env.id.as_str()).is_ok());
        assert!(parse_incoming(
            &json!({"name": "a", "id": "i".repeat(MAX_NAME_LEN + 1)}),
            ""
        )
        .is_err());
    }

    /// The limit is serde_json's own: an envelope that deep is what the pipeline reads, one
    /// level deeper it cannot read.
    #[test]
    fn envelope_round_trips_through_json() {
        let e = parse_incoming(&json!({"name": "a", "data": {"x": 1}}), "").unwrap();
        let env = Envelope::accept(e, "web-app", OffsetDateTime::now_utc());
        assert_eq!(env.id.as_str().len(), 26, "a ULID");
        let back: Envelope = serde_json::from_str(&serde_json::to_string(&env).unwrap()).unwrap();
        assert_eq!(back, env);
    }
}
