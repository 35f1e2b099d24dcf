//! Block Kit: Slack's message format and its limits, and the few primitives every message
//! we build uses: escaped values, verbatim mrkdwn, and cuts that never split an entity.

use serde_json::{json, Value};

/// Block Kit limits (Slack's documented caps).
pub mod limits {
    pub const BLOCKS: usize = 50;
    pub const HEADER_TEXT: usize = 150;
    pub const SECTION_TEXT: usize = 3000;
    pub const SECTION_FIELDS: usize = 10;
    pub const FIELD_TEXT: usize = 2000;
    pub const CONTEXT_TEXT: usize = 3000;
    /// Fallback `text` we send; Slack's hard limit is 40 000, notifications show far less.
    pub const FALLBACK_TEXT: usize = 3000;
    /// Elements in one `actions` block.
    pub const ACTIONS_ELEMENTS: usize = 25;
    /// A button's plain_text label.
    pub const BUTTON_TEXT: usize = 75;
    /// A button's `url`.
    pub const BUTTON_URL: usize = 3000;
    /// A button's `value`, sent back to the app on a click.
    pub const BUTTON_VALUE: usize = 2000;
    /// An element's `action_id`.
    pub const ACTION_ID: usize = 255;
}

/// A chat.postMessage body without the channel: fallback `text` plus `blocks`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RenderedMessage {
    pub text: String,
    pub blocks: Vec<Value>,
    /// True when a value was cut or fields were left out.
    pub truncated: bool,
}

/// A mrkdwn text object Slack takes literally (`verbatim`): no automatic links for URLs,
/// `#channel` names or `@user` names found in the text; only explicit `<…>` markup links.
pub fn mrkdwn(text: impl Into<String>) -> Value {
    json!({"type": "mrkdwn", "text": text.into(), "verbatim": true})
}

/// Appends `button` (a Block Kit `button` element: a link button with `url`, or an
/// interactive one with `action_id` and `value`) to the message's `actions` block, creating
/// that block just before the trailing context block when there is none.
///
/// The label is cut to Slack's 75 characters. Returns false and leaves the message as it was
/// when the button would break one of Slack's rules: not a button with a non-empty
/// plain_text label, a `url`, `value` or `action_id` too long or not a string, a `style`
/// other than `primary` or `danger`, an `action_id` already in the message (template link
/// buttons take `link_0`…`link_4`), 25 elements already in the actions block, or 50 blocks.
pub fn add_button(message: &mut RenderedMessage, button: Value) -> bool {
    let Some(button) = checked_button(button) else {
        return false;
    };
    if let Some(id) = button.get("action_id").and_then(Value::as_str) {
        let mut taken = Vec::new();
        action_ids(&Value::Array(message.blocks.clone()), &mut taken);
        if taken.iter().any(|t| t == id) {
            return false;
        }
    }
    let is = |b: &Value, kind: &str| b.get("type").and_then(Value::as_str) == Some(kind);
    let actions = message.blocks.iter().rposition(|b| is(b, "actions"));
    match actions {
        Some(i) => {
            let Some(elements) = message.blocks[i]
                .get_mut("elements")
                .and_then(Value::as_array_mut)
            else {
                return false;
            };
            if elements.len() >= limits::ACTIONS_ELEMENTS {
                return false;
            }
            elements.push(button);
            true
        }
        None if message.blocks.len() >= limits::BLOCKS => false,
        None => {
            let at = match message.blocks.last() {
                Some(b) if is(b, "context") => message.blocks.len() - 1,
                _ => message.blocks.len(),
            };
            message
                .blocks
                .insert(at, json!({"type": "actions", "elements": [button]}));
            true
        }
    }
}

/// `button` with its label cut to Slack's limit, or `None` when it breaks another rule.
fn checked_button(mut button: Value) -> Option<Value> {
    let obj = button.as_object_mut()?;
    if obj.get("type").and_then(Value::as_str) != Some("button") {
        return None;
    }
    let text = obj.get_mut("text")?.as_object_mut()?;
    if text.get("type").and_then(Value::as_str) != Some("plain_text") {
        return None;
    }
    let label = text.get("text")?.as_str()?;
    if label.trim().is_empty() {
        return None;
    }
    let mut ignored = false;
    let label = cut(label, limits::BUTTON_TEXT, &mut ignored);
    text.insert("text".into(), Value::String(label));
    for (key, max) in [
        ("url", limits::BUTTON_URL),
        ("value", limits::BUTTON_VALUE),
        ("action_id", limits::ACTION_ID),
    ] {
        if let Some(v) = obj.get(key) {
            let n = v.as_str()?.chars().count();
            if n == 0 || n > max {
                return None;
            }
        }
    }
    if let Some(style) = obj.get("style") {
        if !matches!(style.as_str(), Some("primary" | "danger")) {
            return None;
        }
    }
    Some(button)
}

/// Every `action_id` anywhere in `v`.
fn action_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(id) = m.get("action_id").and_then(Value::as_str) {
                out.push(id.to_owned());
            }
            m.values().for_each(|x| action_ids(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| action_ids(x, out)),
        _ => {}
    }
}

/// Escapes Slack's control characters so a value can never become markup.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `raw` and cuts the result to `max` characters without splitting an entity.
pub fn cut_escaped(raw: &str, max: usize, truncated: &mut bool) -> String {
    let mut out = String::new();
    let mut used = 0;
    let total: usize = raw
        .chars()
        .map(|c| if matches!(c, '&' | '<' | '>') { 5 } else { 1 })
        .sum();
    if total <= max {
        return escape(raw);
    }
    *truncated = true;
    for c in raw.chars() {
        let piece = escape(&c.to_string());
        let n = piece.chars().count();
        if used + n + 1 > max {
            break;
        }
        out.push_str(&piece);
        used += n;
    }
    out.push('…');
    out
}

/// Cuts already-rendered text to `max` characters, never inside an `&…;` entity.
pub fn cut(s: &str, max: usize, truncated: &mut bool) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    *truncated = true;
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&') {
        if !out[amp..].contains(';') && out.len() - amp <= 5 {
            out.truncate(amp);
        }
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_never_splits_an_entity() {
        let mut t = false;
        let s = cut_escaped(&"&".repeat(10), 12, &mut t);
        assert!(t);
        assert_eq!(s, "&amp;&amp;…");
        let s = cut("ab&amp;cd", 5, &mut t);
        assert_eq!(s, "ab…");
    }
}
