//! Block Kit validation: the limits Slack enforces on `chat.postMessage`, reported the way Slack
//! reports them (`invalid_blocks` with `"errors": ["<reason> [json-pointer:/blocks/0/text]"]`).
//!
//! Reasonable, not exhaustive: every block type ingestlayer renders is checked field by field;
//! element types inside `actions` and `rich_text` are checked only for shape.

use serde_json::{Map, Value};

/// At most this many blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// A header's `plain_text` length limit, in characters.
pub const MAX_HEADER_TEXT: usize = 150;
/// A section's `text` length limit, in characters.
pub const MAX_SECTION_TEXT: usize = 3000;
/// At most this many `fields` in a section.
pub const MAX_SECTION_FIELDS: usize = 10;
/// Each section field's length limit, in characters.
pub const MAX_FIELD_TEXT: usize = 2000;
/// At most this many elements in a context block.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// Each context text element's length limit, in characters.
pub const MAX_CONTEXT_TEXT: usize = 3000;
/// At most this many elements in an actions block.
pub const MAX_ACTIONS_ELEMENTS: usize = 25;

const KNOWN_TYPES: &[&str] = &[
    "header",
    "section",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
];

const ANY_TEXT: &[&str] = &["plain_text", "mrkdwn"];
const PLAIN_TEXT: &[&str] = &["plain_text"];

/// Checks a `blocks` value. `Err` holds one human-readable reason per problem found.
pub(crate) fn validate(blocks: &Value) -> Result<(), Vec<String>> {
    let mut errors = Errors::default();
    match blocks {
        Value::Array(items) => {
            if items.len() > MAX_BLOCKS {
                errors.push(
                    "/blocks",
                    format!("no more than {MAX_BLOCKS} items allowed"),
                );
            }
            for (i, block) in items.iter().enumerate() {
                check_block(&mut errors, &format!("/blocks/{i}"), block);
            }
        }
        _ => errors.push("/blocks", "must be an array"),
    }
    errors.finish()
}

#[derive(Default)]
struct Errors(Vec<String>);

impl Errors {
    fn push(&mut self, pointer: &str, reason: impl std::fmt::Display) {
        self.0.push(format!("{reason} [json-pointer:{pointer}]"));
    }

    fn finish(self) -> Result<(), Vec<String>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

fn check_block(errors: &mut Errors, path: &str, block: &Value) {
    let Some(obj) = block.as_object() else {
        errors.push(path, "must be an object");
        return;
    };
    if let Some(block_id) = obj.get("block_id") {
        check_string(errors, &format!("{path}/block_id"), block_id, 255);
    }
    match obj.get("type") {
        None => errors.push(&format!("{path}/type"), "missing required field: type"),
        Some(Value::String(kind)) => match kind.as_str() {
            "header" => check_header(errors, path, obj),
            "section" => check_section(errors, path, obj),
            "context" => check_context(errors, path, obj),
            "divider" => {}
            "actions" => check_actions(errors, path, obj),
            "image" => check_image(errors, path, obj),
            "rich_text" => check_rich_text(errors, path, obj),
            other => errors.push(
                &format!("{path}/type"),
                format!(
                    "unsupported type: {other} (expected one of {})",
                    KNOWN_TYPES.join(", ")
                ),
            ),
        },
        Some(_) => errors.push(&format!("{path}/type"), "must be a string"),
    }
}

fn check_header(errors: &mut Errors, path: &str, obj: &Map<String, Value>) {
    match obj.get("text") {
        Some(text) => check_text_object(
            errors,
            &format!("{path}/text"),
            text,
            PLAIN_TEXT,
            MAX_HEADER_TEXT,
        ),
        None => errors.push(&format!("{path}/text"), "missing required field: text"),
    }
}

fn check_section(errors: &mut Errors, path: &str, obj: &Map<String, Value>) {
    let text = obj.get("text").filter(|v| !v.is_null());
    let fields = obj.get("fields").filter(|v| !v.is_null());
    if text.is_none() && fields.is_none() {
        errors.push(path, "must provide either text or fields");
    }
    if let Some(text) = text {
        check_text_object(
            errors,
            &format!("{path}/text"),
            text,
            ANY_TEXT,
            MAX_SECTION_TEXT,
        );
    }
    if let Some(fields) = fields {
        let fields_path = format!("{path}/fields");
        match fields.as_array() {
            Some(items) => {
                if items.is_empty() {
                    errors.push(&fields_path, "must provide at least 1 item");
                }
                if items.len() > MAX_SECTION_FIELDS {
                    errors.push(
                        &fields_path,
                        format!("no more than {MAX_SECTION_FIELDS} items allowed"),
                    );
                }
                for (i, field) in items.iter().enumerate() {
                    check_text_object(
                        errors,
                        &format!("{fields_path}/{i}"),
                        field,
                        ANY_TEXT,
                        MAX_FIELD_TEXT,
                    );
                }
            }
            None => errors.push(&fields_path, "must be an array"),
        }
    }
    if let Some(accessory) = obj.get("accessory") {
        check_element(errors, &format!("{path}/accessory"), accessory);
    }
}

fn check_context(errors: &mut Errors, path: &str, obj: &Map<String, Value>) {
    let elements_path = format!("{path}/elements");
    let Some(elements) = obj.get("elements") else {
        errors.push(&elements_path, "missing required field: elements");
        return;
    };
    let Some(items) = elements.as_array() else {
        errors.push(&elements_path, "must be an array");
        return;
    };
    if items.is_empty() {
        errors.push(&elements_path, "must provide at least 1 item");
    }
    if items.len() > MAX_CONTEXT_ELEMENTS {
        errors.push(
            &elements_path,
            format!("no more than {MAX_CONTEXT_ELEMENTS} items allowed"),
        );
    }
    for (i, element) in items.iter().enumerate() {
        let element_path = format!("{elements_path}/{i}");
        match element.get("type").and_then(Value::as_str) {
            Some("plain_text" | "mrkdwn") => {
                check_text_object(errors, &element_path, element, ANY_TEXT, MAX_CONTEXT_TEXT);
            }
            Some("image") => check_image_element(errors, &element_path, element),
            Some(other) => errors.push(
                &format!("{element_path}/type"),
                format!("unsupported type: {other} (expected plain_text, mrkdwn or image)"),
            ),
            None => errors.push(
                &format!("{element_path}/type"),
                "missing required field: type",
            ),
        }
    }
}

fn check_actions(errors: &mut Errors, path: &str, obj: &Map<String, Value>) {
    let elements_path = format!("{path}/elements");
    let Some(items) = obj.get("elements").and_then(Value::as_array) else {
        errors.push(
            &elements_path,
            "missing required field: elements (an array)",
        );
        return;
    };
    if items.is_empty() {
        errors.push(&elements_path, "must provide at least 1 item");
    }
    if items.len() > MAX_ACTIONS_ELEMENTS {
        errors.push(
            &elements_path,
            format!("no more than {MAX_ACTIONS_ELEMENTS} items allowed"),
        );
    }
    for (i, element) in items.iter().enumerate() {
        check_element(errors, &format!("{elements_path}/{i}"), element);
    }
}

/// Interactive elements: shape only, plus a button's label and URL limits.
fn check_element(errors: &mut Errors, path: &str, element: &Value) {
    let Some(obj) = element.as_object() else {
        errors.push(path, "must be an object");
        return;
    };
    match obj.get("type").and_then(Value::as_str) {
        None => errors.push(&format!("{path}/type"), "missing required field: type"),
        Some("button") => {
            match obj.get("text") {
                Some(text) => {
                    check_text_object(errors, &format!("{path}/text"), text, PLAIN_TEXT, 75);
                }
                None => errors.push(&format!("{path}/text"), "missing required field: text"),
            }
            if let Some(url) = obj.get("url") {
                check_string(errors, &format!("{path}/url"), url, 3000);
            }
            if let Some(action_id) = obj.get("action_id") {
                check_string(errors, &format!("{path}/action_id"), action_id, 255);
            }
        }
        Some("image") => check_image_element(errors, path, element),
        Some(_) => {}
    }
}

fn check_image(errors: &mut Errors, path: &str, obj: &Map<String, Value>) {
    if obj.get("slack_file").is_none() {
        match obj.get("image_url") {
            Some(url) => check_string(errors, &format!("{path}/image_url"), url, 3000),
            None => errors.push(
                &format!("{path}/image_url"),
                "missing required field: image_url",
            ),
        }
    }
    match obj.get("alt_text") {
        Some(alt) => check_string(errors, &format!("{path}/alt_text"), alt, 2000),
        None => errors.push(
            &format!("{path}/alt_text"),
            "missing required field: alt_text",
        ),
    }
    if let Some(title) = obj.get("title") {
        check_text_object(errors, &format!("{path}/title"), title, PLAIN_TEXT, 2000);
    }
}

fn check_image_element(errors: &mut Errors, path: &str, element: &Value) {
    match element.as_object() {
        Some(obj) => check_image(errors, path, obj),
        None => errors.push(path, "must be an object"),
    }
}

fn check_rich_text(errors: &mut Errors, path: &str, obj: &Map<String, Value>) {
    let elements_path = format!("{path}/elements");
    let Some(items) = obj.get("elements").and_then(Value::as_array) else {
        errors.push(
            &elements_path,
            "missing required field: elements (an array)",
        );
        return;
    };
    for (i, element) in items.iter().enumerate() {
        if element.get("type").and_then(Value::as_str).is_none() {
            errors.push(
                &format!("{elements_path}/{i}/type"),
                "missing required field: type",
            );
        }
    }
}

/// A composition text object: `{"type": <one of allowed>, "text": <1..=max chars>}`.
fn check_text_object(errors: &mut Errors, path: &str, value: &Value, allowed: &[&str], max: usize) {
    let Some(obj) = value.as_object() else {
        errors.push(path, "must be a text object");
        return;
    };
    match obj.get("type").and_then(Value::as_str) {
        Some(kind) if allowed.contains(&kind) => {}
        Some(kind) => errors.push(
            &format!("{path}/type"),
            format!(
                "must be {} (got {kind})",
                if allowed.len() == 1 {
                    allowed.concat()
                } else {
                    allowed.join(" or ")
                }
            ),
        ),
        None => errors.push(&format!("{path}/type"), "missing required field: type"),
    }
    match obj.get("text") {
        Some(text) => check_string(errors, &format!("{path}/text"), text, max),
        None => errors.push(&format!("{path}/text"), "missing required field: text"),
    }
}

/// A string of 1..=max characters (Slack counts characters, not bytes).
fn check_string(errors: &mut Errors, path: &str, value: &Value, max: usize) {
    match value.as_str() {
        Some("") => errors.push(path, "must be more than 0 characters"),
        Some(s) if s.chars().count() > max => {
            errors.push(path, format!("must be less than {} characters", max + 1));
        }
        Some(_) => {}
        None => errors.push(path, "must be a string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(blocks: Value) -> Vec<String> {
        validate(&blocks).err().unwrap_or_default()
    }

    #[test]
    fn a_typical_ingestlayer_message_is_valid() {
        let blocks = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "feature.used", "emoji": true}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*feature*\ncsv.export"},
                {"type": "mrkdwn", "text": "*plan*\nfree"}
            ]},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "via ingestlayer"}]},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": "https://example.com"}]}
        ]);
        assert_eq!(errors(blocks), Vec::<String>::new());
    }

    #[test]
    fn errors_name_the_offending_json_pointer() {
        let errs = errors(json!([{"type": "header", "text": {"type": "mrkdwn", "text": ""}}]));
        assert_eq!(
            errs,
            vec![
                "must be plain_text (got mrkdwn) [json-pointer:/blocks/0/text/type]".to_owned(),
                "must be more than 0 characters [json-pointer:/blocks/0/text/text]".to_owned(),
            ]
        );
    }

    #[test]
    fn limits_are_counted_in_characters_not_bytes() {
        let text = "é".repeat(MAX_HEADER_TEXT);
        assert!(validate(
            &json!([{"type": "header", "text": {"type": "plain_text", "text": text}}])
        )
        .is_ok());
    }

    #[test]
    fn a_block_that_is_not_an_object_is_invalid() {
        assert_eq!(errors(json!(["header"])).len(), 1);
        assert_eq!(errors(json!({"type": "divider"})).len(), 1);
    }
}
