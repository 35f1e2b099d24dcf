//! `ingestlayer events send|get`: one event through the stack's ingest API (the door every
//! client uses, so it is authenticated, validated and routed like theirs), and a stored event
//! read back from the events table.
//!
//! A stored event is printed whole on stdout because the operator asked for it; nothing here
//! logs it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use crate::error::CliError;
use crate::stack::{reach, Stack, Target};

/// How long `events send` waits for the API.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `make dev` keeps its API key.
const DEV_ENV: &str = ".ingestlayer/dev.env";

/// The API key: `--key`, else `INGESTLAYER_API_KEY` (clap reads both into `given`).
pub fn api_key(given: Option<String>) -> Result<SecretString, CliError> {
    match given.filter(|k| !k.trim().is_empty()) {
        Some(k) => Ok(SecretString::from(k.trim().to_owned())),
        None => Err(CliError::Usage(format!(
            "no API key: give --key KEY or set INGESTLAYER_API_KEY. `make dev` keeps its key in \
             {DEV_ENV} (`export $(grep INGESTLAYER_API_KEY {DEV_ENV})`); otherwise create one for the stack \
             (`ingestlayer keys`, or `make keys` locally)"
        ))),
    }
}

/// `--data`: a JSON object inline, or `@FILE` holding one.
pub fn read_data(arg: &str) -> Result<Value, CliError> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| CliError::Io {
                what: "reading the event data",
                path: Path::new(path).to_owned(),
                source,
            })?,
            path.to_owned(),
        ),
        None => (arg.to_owned(), "--data".to_owned()),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(CliError::Usage(format!(
            "{from}: the event's data is a JSON object, e.g. '{{\"user_id\": \"u_42\"}}'"
        ))),
        Err(e) => Err(CliError::Usage(format!(
            "{from} is not JSON ({e}): give a JSON object, or @FILE to read one from a file"
        ))),
    }
}

/// The request body of `POST /v1/events`.
pub fn body(name: &str, data: Value, id: Option<&str>) -> Value {
    let mut b = json!({"name": name, "data": data});
    if let Some(id) = id {
        b["id"] = json!(id);
    }
    b
}

/// Posts one event to the stack's `ApiUrl`; the 202's body (`id`, `status`, `duplicate`).
pub async fn send(stack: &Stack, body: &Value, key: &SecretString) -> Result<Value, CliError> {
    let base = stack.output("ApiUrl")?.trim_end_matches('/');
    let url = format!("{base}/v1/events");
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .map_err(|e| CliError::Stack(format!("cannot make an HTTP client: {e}")))?;
    let answer = client
        .post(&url)
        .bearer_auth(key.expose_secret())
        .json(body)
        .send()
        .await
        .map_err(|e| {
            let hint = match &stack.target {
                Target::Local { .. } => {
                    "start it with `make dev` (its ingest API listens on PORT, 3000 by default)"
                }
                Target::Deployed { .. } => {
                    "check the network, and that the stack's ApiUrl output is its HTTP API"
                }
            };
            CliError::Stack(format!(
                "sending the event: could not reach the ingest API at {url} of the {} ({}): {hint}",
                stack.target.describe(),
                if e.is_timeout() {
                    "timed out"
                } else {
                    "no answer"
                }
            ))
        })?;
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap_or_default();
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(parsed),
        401 | 403 => Err(CliError::Usage(format!(
            "the API at {url} refused the key ({status}: {}): set INGESTLAYER_API_KEY (or \
             --key) to a key of this stack; `make dev` keeps its key in {DEV_ENV}",
            problem(&parsed, &text)
        ))),
        400..=499 => Err(CliError::Usage(format!(
            "the API refused the event ({status}): {}",
            problem(&parsed, &text)
        ))),
        _ => Err(CliError::Stack(format!(
            "the API at {url} answered {status}: {}; try again, and see the ingest function's \
             logs if it persists",
            problem(&parsed, &text)
        ))),
    }
}

/// The API's `{"error": {"code", "message", "details"}}`, one line each.
fn problem(parsed: &Value, text: &str) -> String {
    let e = &parsed["error"];
    let Some(message) = e["message"].as_str() else {
        return text.chars().take(300).collect();
    };
    let mut s = match e["code"].as_str() {
        Some(code) => format!("{code}: {message}"),
        None => message.to_owned(),
    };
    for d in e["details"].as_array().into_iter().flatten() {
        let pointer = d["pointer"].as_str().unwrap_or("");
        if !pointer.is_empty() && message.contains(pointer) {
            continue;
        }
        s.push_str(&format!(
            "\n  {}: {}",
            d["pointer"].as_str().unwrap_or(""),
            d["message"].as_str().unwrap_or("")
        ));
    }
    s
}

/// Prints the API's answer to `send`.
pub fn print_sent(answer: &Value, out: &mut dyn Write, as_json: bool) {
    if as_json {
        writeln!(out, "{answer}").ok();
        return;
    }
    let id = answer["id"].as_str().unwrap_or("?");
    if answer["duplicate"].as_bool() == Some(true) {
        writeln!(
            out,
            "{id}  duplicate: this id was already accepted; the original stands"
        )
        .ok();
    } else {
        writeln!(out, "{id}  accepted").ok();
    }
}

/// `events get ID`: the stored item, as stored, with its envelope parsed. An item past its
/// `expires_at` is gone (DynamoDB's TTL only deletes it later).
pub async fn get(
    stack: &Stack,
    id: &str,
    now_epoch: i64,
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    let table = stack.output("EventsTableName")?;
    let answer = stack
        .dynamo()
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| reach(&stack.target, "reading the events table", e))?;
    let missing = || {
        CliError::Stack(format!(
            "no event {id:?} in the events table {table}: give the id as the API answered it \
             (an id a client chose is stored as <source>:<id>); events are kept for the stack's \
             EventTtlDays"
        ))
    };
    let item = answer.item.ok_or_else(missing)?;
    let mut doc: Map<String, Value> = serde_dynamo::from_item(item).map_err(|e| {
        CliError::Stack(format!(
            "the event {id} in {table} is not readable as JSON: {e}"
        ))
    })?;
    if doc["expires_at"].as_i64().is_some_and(|t| t < now_epoch) {
        return Err(missing());
    }
    if let Some(Value::String(s)) = doc.get("envelope") {
        if let Ok(v) = serde_json::from_str::<Value>(s) {
            doc.insert("envelope".to_owned(), v);
        }
    }
    if as_json {
        writeln!(out, "{}", Value::Object(doc)).ok();
        return Ok(());
    }
    for (k, v) in &doc {
        if k == "envelope" {
            continue;
        }
        let shown = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        writeln!(out, "{k:<12} {shown}").ok();
    }
    let envelope = doc.get("envelope").cloned().unwrap_or(Value::Null);
    writeln!(
        out,
        "envelope:\n{}",
        serde_json::to_string_pretty(&envelope).unwrap_or_default()
    )
    .ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_a_json_object_inline_or_from_a_file() {
        assert_eq!(
            read_data(r#"{"user_id": "u_42"}"#).unwrap(),
            json!({"user_id": "u_42"})
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.json");
        std::fs::write(&f, r#"{"count": 1}"#).unwrap();
        assert_eq!(
            read_data(&format!("@{}", f.display())).unwrap(),
            json!({"count": 1})
        );
        assert!(read_data("[1]").unwrap_err().to_string().contains("object"));
        assert!(read_data("{nope")
            .unwrap_err()
            .to_string()
            .contains("@FILE"));
        let missing = read_data("@/no/such/file.json").unwrap_err().to_string();
        assert!(missing.contains("/no/such/file.json"), "{missing}");
    }

    #[test]
    fn a_missing_key_says_what_to_set_and_where_make_dev_keeps_it() {
        let m = api_key(None).unwrap_err().to_string();
        assert!(m.contains("--key") && m.contains("INGESTLAYER_API_KEY") && m.contains(DEV_ENV));
        assert!(api_key(Some("  ".into())).is_err());
        assert_eq!(
            api_key(Some("il_k".into())).unwrap().expose_secret(),
            "il_k"
        );
    }

    #[test]
    fn the_body_carries_the_id_only_when_given() {
        assert_eq!(
            body("a.b", json!({}), None),
            json!({"name": "a.b", "data": {}})
        );
        assert_eq!(
            body("a.b", json!({}), Some("x")),
            json!({"name": "a.b", "data": {}, "id": "x"})
        );
    }

    #[test]
    fn the_apis_error_reads_as_code_message_and_pointers() {
        let v = json!({"error": {"code": "invalid_event", "message": "bad", "details": [{"pointer": "/name", "message": "too long"}]}});
        assert_eq!(problem(&v, ""), "invalid_event: bad\n  /name: too long");
        assert_eq!(problem(&Value::Null, "plain"), "plain");
    }
}
