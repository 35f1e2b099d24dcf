//! Events as clients send them: two request shapes map to the same [`IncomingEvent`], the
//! native `{"name", "data", "id"?, "time"?}` and CloudEvents 1.0 structured JSON
//! (`specversion`, `type`, `id`, `source`, `data`), with every problem located by JSON
//! pointer; and the limits on how deep and wide an event's data may be.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::event::{ClientId, EventName, FieldError, IncomingEvent};

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
    use crate::event::Envelope;
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
    fn nesting_depth_counts_brackets_outside_strings() {
        assert_eq!(nesting_depth("1"), 0);
        assert_eq!(nesting_depth("{}"), 1);
        assert_eq!(nesting_depth(r#"{"a":[{"b":"[[[{{"}],"c":{}}"#), 3);
        assert_eq!(nesting_depth(r#"["\"[", ["\\"]]"#), 2);
    }

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
}
