//! Block Kit validation: the limits Slack enforces on `chat.postMessage`, reported the way Slack
//! reports them (`invalid_blocks` with `"errors": ["<reason> [json-pointer:/blocks/0/text]"]`).
//!
//! Reasonable, not exhaustive: every block type ingestlayer renders is checked field by field,
//! buttons included (label, `url`, `value`, `action_id` unique in the message, `style`); other
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
/// A button's `plain_text` label limit, in characters.
pub const MAX_BUTTON_TEXT: usize = 75;
/// A button's `url` limit, in characters.
pub const MAX_BUTTON_URL: usize = 3000;
/// A button's `value` limit, in characters.
pub const MAX_BUTTON_VALUE: usize = 2000;
/// An `action_id` (and a `block_id`) limit, in characters.
pub const MAX_ID: usize = 255;
/// The styles a button may take (none is the default style).
const BUTTON_STYLES: &[&str] = &["primary", "danger"];

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

/// Checks a `blocks` value as `chat.postMessage` does. `Err` holds one human-readable reason
/// per problem found, each naming its JSON pointer; the API answers them as `invalid_blocks`.
pub fn validate(blocks: &Value) -> Result<(), Vec<String>> {
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
struct Errors {
    reasons: Vec<String>,
    /// The `block_id`s and `action_id`s seen so far: each must be unique in the message.
    block_ids: Vec<String>,
    action_ids: Vec<String>,
}

impl Errors {
    fn push(&mut self, pointer: &str, reason: impl std::fmt::Display) {
        self.reasons
            .push(format!("{reason} [json-pointer:{pointer}]"));
    }

    /// Records an id at `pointer`, reporting it when the message already has it.
    fn unique(&mut self, pointer: &str, kind: &str, id: &Value) {
        let Some(id) = id.as_str() else { return };
        let seen = match kind {
            "block_id" => &mut self.block_ids,
            _ => &mut self.action_ids,
        };
        if seen.iter().any(|s| s == id) {
            self.push(
                pointer,
                format!("{kind} must be unique in the message: {id:?} is used twice"),
            );
        } else {
            seen.push(id.to_owned());
        }
    }

    fn finish(self) -> Result<(), Vec<String>> {
        if self.reasons.is_empty() {
            Ok(())
        } else {
            Err(self.reasons)
        }
    }
}

fn check_block(errors: &mut Errors, path: &str, block: &Value) {
    let Some(obj) = block.as_object() else {
        errors.push(path, "must be an object");
        return;
    };
    if let Some(block_id) = obj.get("block_id") {
        let pointer = format!("{path}/block_id");
        check_string(errors, &pointer, block_id, MAX_ID);
        errors.unique(&pointer, "block_id", block_id);
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

/// Interactive elements: shape only, every `action_id` unique in the message, and a button
/// checked field by field.
fn check_element(errors: &mut Errors, path: &str, element: &Value) {
    let Some(obj) = element.as_object() else {
        errors.push(path, "must be an object");
        return;
    };
    if let Some(action_id) = obj.get("action_id") {
        let pointer = format!("{path}/action_id");
        check_string(errors, &pointer, action_id, MAX_ID);
        errors.unique(&pointer, "action_id", action_id);
    }
    match obj.get("type").and_then(Value::as_str) {
        None => errors.push(&format!("{path}/type"), "missing required field: type"),
        Some("button") => check_button(errors, path, obj),
        Some("image") => check_image_element(errors, path, element),
        Some(_) => {}
    }
}

/// A button: a plain_text label of at most 75 characters, `url` ≤ 3000, `value` ≤ 2000,
/// `style` `primary` or `danger` when given.
fn check_button(errors: &mut Errors, path: &str, obj: &Map<String, Value>) {
    match obj.get("text") {
        Some(text) => check_text_object(
            errors,
            &format!("{path}/text"),
            text,
            PLAIN_TEXT,
            MAX_BUTTON_TEXT,
        ),
        None => errors.push(&format!("{path}/text"), "missing required field: text"),
    }
    if let Some(url) = obj.get("url") {
        check_string(errors, &format!("{path}/url"), url, MAX_BUTTON_URL);
    }
    if let Some(value) = obj.get("value") {
        check_string(errors, &format!("{path}/value"), value, MAX_BUTTON_VALUE);
    }
    if let Some(style) = obj.get("style") {
        if !style.as_str().is_some_and(|s| BUTTON_STYLES.contains(&s)) {
            errors.push(
                &format!("{path}/style"),
                format!("must be one of {}", BUTTON_STYLES.join(", ")),
            );
        }
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

    fn button(extra: Value) -> Value {
        let mut b = json!({"type": "button", "text": {"type": "plain_text", "text": "Open"}});
        if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(extra.clone());
        }
        b
    }

    fn actions(elements: Vec<Value>) -> Value {
        json!([{"type": "actions", "elements": elements}])
    }

    /// The pointers of the errors, without their reasons.
    fn pointers(blocks: Value) -> Vec<String> {
        errors(blocks)
            .iter()
            .map(|e| {
                e.rsplit("[json-pointer:")
                    .next()
                    .unwrap_or("")
                    .trim_end_matches(']')
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn buttons_exactly_at_their_limits_are_valid() {
        let mut elements = vec![button(json!({
            "text": {"type": "plain_text", "text": "b".repeat(MAX_BUTTON_TEXT), "emoji": true},
            "url": format!("https://x.example/{}", "u".repeat(MAX_BUTTON_URL - 18)),
            "value": "v".repeat(MAX_BUTTON_VALUE),
            "action_id": "a".repeat(MAX_ID),
            "style": "primary",
        }))];
        for i in 1..MAX_ACTIONS_ELEMENTS {
            let style = if i % 2 == 0 { "danger" } else { "primary" };
            elements.push(button(
                json!({"action_id": format!("b{i}"), "style": style}),
            ));
        }
        assert_eq!(errors(actions(elements)), Vec::<String>::new());
    }

    #[test]
    fn rejects_an_actions_block_with_more_than_25_elements() {
        let elements: Vec<Value> = (0..=MAX_ACTIONS_ELEMENTS)
            .map(|i| button(json!({"action_id": format!("b{i}")})))
            .collect();
        assert_eq!(pointers(actions(elements)), vec!["/blocks/0/elements"]);
        assert_eq!(pointers(actions(vec![])), vec!["/blocks/0/elements"]);
    }

    #[test]
    fn rejects_a_button_label_that_is_long_empty_or_mrkdwn() {
        let long = button(json!({"text": {"type": "plain_text", "text": "b".repeat(76)}}));
        let empty = button(json!({"text": {"type": "plain_text", "text": ""}}));
        let md = button(json!({"text": {"type": "mrkdwn", "text": "*b*"}}));
        let none = json!({"type": "button", "url": "https://x.example"});
        assert_eq!(
            pointers(actions(vec![long, empty, md, none])),
            vec![
                "/blocks/0/elements/0/text/text",
                "/blocks/0/elements/1/text/text",
                "/blocks/0/elements/2/text/type",
                "/blocks/0/elements/3/text",
            ]
        );
    }

    #[test]
    fn rejects_a_button_url_value_or_action_id_over_its_limit() {
        let url =
            button(json!({"url": format!("https://x.example/{}", "u".repeat(MAX_BUTTON_URL))}));
        let value = button(json!({"value": "v".repeat(MAX_BUTTON_VALUE + 1)}));
        let id = button(json!({"action_id": "a".repeat(MAX_ID + 1)}));
        let empty_value = button(json!({"value": ""}));
        assert_eq!(
            pointers(actions(vec![url, value, id, empty_value])),
            vec![
                "/blocks/0/elements/0/url",
                "/blocks/0/elements/1/value",
                "/blocks/0/elements/2/action_id",
                "/blocks/0/elements/3/value",
            ]
        );
    }

    #[test]
    fn rejects_a_button_style_other_than_primary_or_danger() {
        let errs = errors(actions(vec![
            button(json!({"style": "default"})),
            button(json!({"style": 1})),
        ]));
        assert_eq!(
            errs,
            vec![
                "must be one of primary, danger [json-pointer:/blocks/0/elements/0/style]",
                "must be one of primary, danger [json-pointer:/blocks/0/elements/1/style]",
            ]
        );
    }

    #[test]
    fn rejects_an_action_id_used_twice_in_one_message() {
        let blocks = json!([
            {"type": "section", "text": {"type": "mrkdwn", "text": "hi"},
             "accessory": button(json!({"action_id": "mute"}))},
            {"type": "actions", "elements": [
                button(json!({"action_id": "link_0"})),
                button(json!({"action_id": "mute"})),
            ]},
            {"type": "actions", "elements": [button(json!({"action_id": "link_0"}))]}
        ]);
        let errs = errors(blocks);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("action_id must be unique in the message: \"mute\""));
        assert!(errs[0].ends_with("[json-pointer:/blocks/1/elements/1/action_id]"));
        assert!(errs[1].ends_with("[json-pointer:/blocks/2/elements/0/action_id]"));
        // Distinct ids, and buttons without one, are fine.
        assert!(validate(&actions(vec![button(json!({})), button(json!({}))])).is_ok());
    }

    #[test]
    fn rejects_a_block_id_used_twice_in_one_message() {
        let blocks = json!([
            {"type": "divider", "block_id": "a"},
            {"type": "divider", "block_id": "b"},
            {"type": "divider", "block_id": "a"}
        ]);
        assert_eq!(pointers(blocks), vec!["/blocks/2/block_id"]);
    }
}
