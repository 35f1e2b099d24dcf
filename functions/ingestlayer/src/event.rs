//! Events as clients send them and as ingestlayer keeps them.
//!
//! Two request shapes are accepted and map to the same [`Envelope`]:
//! the native `{"name", "data", "id"?, "time"?}` and CloudEvents 1.0 structured JSON
//! (`specversion`, `type`, `id`, `source`, `data`).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use time::OffsetDateTime;

/// The longest event name or client-given id we accept.
pub const MAX_NAME_LEN: usize = 128;
/// The longest event id: a client-given id scoped by its source (`<source>:<client id>`).
pub const MAX_ID_LEN: usize = 256;

/// One thing wrong with a request, located by JSON pointer into the request body.
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
}

impl Envelope {
    /// Who sent this event.
    pub fn origin(&self) -> Origin<'_> {
        Origin {
            source: &self.source,
            webhook: self.webhook.as_ref(),
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

/// The deepest nesting of arrays and objects the pipeline can read in a stored envelope,
/// counted the way [`nesting_depth`] counts (`{}` is 1): serde_json's recursion limit of 128
/// refuses the 128th level.
pub const MAX_STORED_DEPTH: usize = 127;

/// How deeply arrays and objects nest in the JSON text `json`: 0 for a scalar, 1 for `{}`
/// or `[1]`, 2 for `{"a":[]}`. Brackets inside strings do not count.
pub fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// How many fields `data` holds: the members of every object in it, at any depth.
pub fn field_count(data: &Value) -> usize {
    match data {
        Value::Object(m) => m.len() + m.values().map(field_count).sum::<usize>(),
        Value::Array(a) => a.iter().map(field_count).sum(),
        _ => 0,
    }
}

const NATIVE_FIELDS: [&str; 4] = ["name", "data", "id", "time"];

/// Parses one event from a request body value. `at` is the JSON pointer of `value` in the
/// request (`""` for a single event, `/events/3` in a batch). Every problem found is
/// returned, each with its pointer.
pub fn parse_incoming(value: &Value, at: &str) -> Result<IncomingEvent, Vec<FieldError>> {
    let Some(obj) = value.as_object() else {
        return Err(vec![FieldError::new(at, "an event must be a JSON object")]);
    };
    if obj.contains_key("specversion") {
        parse_cloudevent(obj, at)
    } else {
        parse_native(obj, at)
    }
}

fn parse_native(obj: &Map<String, Value>, at: &str) -> Result<IncomingEvent, Vec<FieldError>> {
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !NATIVE_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                format!("{at}/{}", escape_pointer(key)),
                format!("unknown field {key:?}: an event has name, data, id and time (put your fields inside data)"),
            ));
        }
    }
    let name = required_name(obj.get("name"), &format!("{at}/name"), "name", &mut errors);
    let id = optional_id(obj.get("id"), &format!("{at}/id"), &mut errors);
    let time = optional_time(obj.get("time"), &format!("{at}/time"), &mut errors);
    let data = data_object(obj.get("data"), &format!("{at}/data"), &mut errors);
    match (name, errors.is_empty()) {
        (Some(name), true) => Ok(IncomingEvent {
            name,
            id,
            time,
            data,
            cloudevent: None,
            webhook: None,
        }),
        _ => Err(errors),
    }
}

fn parse_cloudevent(obj: &Map<String, Value>, at: &str) -> Result<IncomingEvent, Vec<FieldError>> {
    let mut errors = Vec::new();
    match obj.get("specversion").and_then(Value::as_str) {
        Some("1.0") => {}
        _ => errors.push(FieldError::new(
            format!("{at}/specversion"),
            "specversion must be \"1.0\" (CloudEvents 1.0 structured JSON)",
        )),
    }
    let name = required_name(obj.get("type"), &format!("{at}/type"), "type", &mut errors);
    let id = match obj.get("id") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                format!("{at}/id"),
                "a CloudEvent needs an id (a non-empty string)",
            ));
            None
        }
        some => optional_id(some, &format!("{at}/id"), &mut errors),
    };
    match obj.get("source").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => {}
        _ => errors.push(FieldError::new(
            format!("{at}/source"),
            "a CloudEvent needs a non-empty source (URI-reference)",
        )),
    }
    if let Some(ct) = obj.get("datacontenttype") {
        let json = ct
            .as_str()
            .is_some_and(|s| s.starts_with("application/json") || s.ends_with("+json"));
        if !json {
            errors.push(FieldError::new(
                format!("{at}/datacontenttype"),
                "only JSON data is accepted (datacontenttype application/json)",
            ));
        }
    }
    if obj.contains_key("data_base64") {
        errors.push(FieldError::new(
            format!("{at}/data_base64"),
            "binary data is not accepted: send a JSON object in data",
        ));
    }
    let time = optional_time(obj.get("time"), &format!("{at}/time"), &mut errors);
    let data = data_object(obj.get("data"), &format!("{at}/data"), &mut errors);
    let context: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "type" | "id" | "time" | "data"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match (name, errors.is_empty()) {
        (Some(name), true) => Ok(IncomingEvent {
            name,
            id,
            time,
            data,
            cloudevent: Some(context),
            webhook: None,
        }),
        _ => Err(errors),
    }
}

fn required_name(
    value: Option<&Value>,
    pointer: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<EventName> {
    match value {
        None => {
            errors.push(FieldError::new(
                pointer,
                format!("{field} is required (the event name, e.g. \"feature.used\")"),
            ));
            None
        }
        Some(Value::String(s)) => match EventName::parse(s) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(FieldError::new(pointer, e.to_string()));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                pointer,
                format!("{field} must be a string"),
            ));
            None
        }
    }
}

fn optional_id(
    value: Option<&Value>,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) -> Option<ClientId> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match ClientId::parse(s) {
            Ok(id) => Some(id),
            Err(e) => {
                errors.push(FieldError::new(pointer, e.to_string()));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(pointer, "id must be a string"));
            None
        }
    }
}

fn optional_time(
    value: Option<&Value>,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) -> Option<OffsetDateTime> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            match OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Some(t),
                Err(_) => {
                    errors.push(FieldError::new(
                        pointer,
                        format!(
                            "time {s:?} is not an RFC 3339 timestamp (e.g. 2026-11-27T09:30:00Z)"
                        ),
                    ));
                    None
                }
            }
        }
        Some(_) => {
            errors.push(FieldError::new(pointer, "time must be an RFC 3339 string"));
            None
        }
    }
}

fn data_object(value: Option<&Value>, pointer: &str, errors: &mut Vec<FieldError>) -> Value {
    match value {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            errors.push(FieldError::new(
                pointer,
                "data must be a JSON object of the event's fields",
            ));
            Value::Null
        }
    }
}

/// Escapes a key for use as one JSON pointer segment (RFC 6901).
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_native_shape() {
        let e = parse_incoming(
            &json!({"name": "feature.used", "data": {"feature": "csv.export"}, "id": "evt-1", "time": "2026-11-27T09:30:00Z"}),
            "",
        )
        .unwrap();
        assert_eq!(e.name.as_str(), "feature.used");
        assert_eq!(e.id.unwrap().as_str(), "evt-1");
        assert_eq!(e.data, json!({"feature": "csv.export"}));
        assert_eq!(e.time.unwrap().unix_timestamp(), 1_795_771_800);
    }

    #[test]
    fn maps_a_cloudevent_to_the_same_envelope() {
        let e = parse_incoming(
            &json!({"specversion": "1.0", "type": "feature.used", "id": "ce-1", "source": "/web", "subject": "u1", "data": {"feature": "api"}}),
            "",
        )
        .unwrap();
        assert_eq!(e.name.as_str(), "feature.used");
        assert_eq!(e.id.unwrap().as_str(), "ce-1");
        assert_eq!(e.data, json!({"feature": "api"}));
        let ce = e.cloudevent.unwrap();
        assert_eq!(ce["source"], "/web");
        assert_eq!(ce["subject"], "u1");
        assert!(!ce.contains_key("data"));
    }

    #[test]
    fn reports_every_problem_with_its_pointer() {
        let errs = parse_incoming(
            &json!({"name": "", "data": [1], "time": "yesterday", "props": {}}),
            "/events/2",
        )
        .unwrap_err();
        let pointers: Vec<_> = errs.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/events/2/name"), "{pointers:?}");
        assert!(pointers.contains(&"/events/2/data"), "{pointers:?}");
        assert!(pointers.contains(&"/events/2/time"), "{pointers:?}");
        assert!(pointers.contains(&"/events/2/props"), "{pointers:?}");
    }

    #[test]
    fn rejects_a_cloudevent_with_a_null_id() {
        let errors = parse_incoming(
            &json!({"specversion": "1.0", "type": "a", "id": null, "source": "/web"}),
            "",
        )
        .unwrap_err();
        assert_eq!(errors[0].pointer, "/id");
    }

    #[test]
    fn rejects_a_cloudevent_without_source_or_id() {
        let errs = parse_incoming(&json!({"specversion": "1.0", "type": "x"}), "").unwrap_err();
        let pointers: Vec<_> = errs.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/id", "/source"]);
    }

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

    #[test]
    fn nesting_depth_counts_brackets_outside_strings() {
        assert_eq!(nesting_depth("1"), 0);
        assert_eq!(nesting_depth("{}"), 1);
        assert_eq!(nesting_depth(r#"{"a":[{"b":"[[[{{"}],"c":{}}"#), 3);
        assert_eq!(nesting_depth(r#"["\"[", ["\\"]]"#), 2);
    }

    /// The limit is serde_json's own: an envelope that deep is what the pipeline reads, one
    /// level deeper it cannot read.
    #[test]
    fn the_stored_depth_limit_is_what_the_pipeline_can_read() {
        let nested = |levels: usize| -> String {
            let e = parse_incoming(&json!({"name": "a"}), "").unwrap();
            let env = Envelope::accept(e, "s", OffsetDateTime::now_utc());
            let json = serde_json::to_string(&env).unwrap();
            // The envelope is level 1 and `data` level 2; fill `data` down to `levels`.
            let inner = "[".repeat(levels - 2) + &"]".repeat(levels - 2);
            json.replace(r#""data":{}"#, &format!(r#""data":{{"x":{inner}}}"#))
        };
        let at_limit = nested(MAX_STORED_DEPTH);
        assert_eq!(nesting_depth(&at_limit), MAX_STORED_DEPTH);
        assert!(serde_json::from_str::<Envelope>(&at_limit).is_ok());
        let over = nested(MAX_STORED_DEPTH + 1);
        assert_eq!(nesting_depth(&over), MAX_STORED_DEPTH + 1);
        let err = serde_json::from_str::<Envelope>(&over).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }

    #[test]
    fn envelope_round_trips_through_json() {
        let e = parse_incoming(&json!({"name": "a", "data": {"x": 1}}), "").unwrap();
        let env = Envelope::accept(e, "web-app", OffsetDateTime::now_utc());
        assert_eq!(env.id.as_str().len(), 26, "a ULID");
        let back: Envelope = serde_json::from_str(&serde_json::to_string(&env).unwrap()).unwrap();
        assert_eq!(back, env);
    }
}
