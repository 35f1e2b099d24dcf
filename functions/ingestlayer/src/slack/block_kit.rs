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
