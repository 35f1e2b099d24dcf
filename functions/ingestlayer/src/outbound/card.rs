//! The one message model every destination beyond Slack renders from: a card of raw,
//! unescaped text, made by routing from the pipeline's template (the same template Slack's
//! Block Kit comes from). Each platform escapes it for its own markup and cuts it at its own
//! limits ([`super::discord`], [`super::telegram`], [`super::email`], [`super::notion`]); the
//! webhook sends the event whole instead.
//!
//! Text is kept as spans, so a renderer can tell the operator's own template text (kept as
//! written, markup and all) from an event's values (always escaped).

use serde::{Deserialize, Serialize};

/// A platform-neutral message. Every string is raw: nothing is escaped yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The headline: the template's header, or the event name.
    pub title: String,
    /// The template's `text`, as spans; empty when the template has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text: Vec<Span>,
    /// What the pipeline's steps did (`5 events within 10m`), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The key fields, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// The template's link buttons (http(s) URLs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Link>,
    /// The context line: `ingestlayer · from web-app · local:01J…`.
    pub footer: String,
    /// A signed link to the full stored event, shown when a renderer had to cut something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Routing already left something out (more fields than a card shows).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A piece of a template's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Span {
    /// The operator's text, as written in the template (it may hold Slack-style `*bold*`).
    Text { text: String },
    /// An event's value: escape it wherever it is shown.
    Value { text: String },
    /// A link written in the template (`<https://…|label>`): `url` is an http(s) URL with
    /// every value in it percent-encoded; `label` is shown as text and escaped.
    Link { url: String, label: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub label: String,
    pub url: String,
}

impl Card {
    /// The text as plain text: links as `label (url)`.
    pub fn plain_text(&self) -> String {
        self.text
            .iter()
            .map(|s| match s {
                Span::Text { text } | Span::Value { text } => text.clone(),
                Span::Link { url, label } if label.trim().is_empty() => url.clone(),
                Span::Link { url, label } => format!("{label} ({url})"),
            })
            .collect()
    }
}

/// How a platform counts a text's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Unicode scalar values (Discord, Notion, Telegram after entity parsing).
    Chars,
    /// UTF-16 code units (how JavaScript-based platforms count).
    Utf16,
}

impl Unit {
    fn of(self, c: char) -> usize {
        match self {
            Unit::Chars => 1,
            Unit::Utf16 => c.len_utf16(),
        }
    }

    pub fn len(self, s: &str) -> usize {
        s.chars().map(|c| self.of(c)).sum()
    }
}

/// `s` cut to at most `max` units, ending in `…` when cut; the flag says whether it was.
pub fn cut_to(s: &str, max: usize, unit: Unit) -> (String, bool) {
    if unit.len(s) <= max {
        return (s.to_owned(), false);
    }
    let room = max.saturating_sub(1); // `…` is one unit either way
    let mut used = 0;
    let mut out = String::new();
    for c in s.chars() {
        used += unit.of(c);
        if used > room {
            break;
        }
        out.push(c);
    }
    if max > 0 {
        out.push('…');
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_within_the_limit_and_marks_the_cut() {
        assert_eq!(cut_to("hello", 5, Unit::Chars), ("hello".to_owned(), false));
        let (s, cut) = cut_to("hello world", 6, Unit::Chars);
        assert_eq!((s.as_str(), cut), ("hello…", true));
        let (s, cut) = cut_to("😀😀😀", 4, Unit::Utf16);
        assert!(cut);
        assert_eq!(s, "😀…");
        assert!(Unit::Utf16.len(&s) <= 4);
    }

    #[test]
    fn plain_text_shows_links_with_their_target() {
        let card = Card {
            text: vec![
                Span::Text {
                    text: "Usage by ".into(),
                },
                Span::Value {
                    text: "<b>acme</b>".into(),
                },
                Span::Text { text: ": ".into() },
                Span::Link {
                    url: "https://app.example/a".into(),
                    label: "open".into(),
                },
            ],
            ..Card::default()
        };
        assert_eq!(
            card.plain_text(),
            "Usage by <b>acme</b>: open (https://app.example/a)"
        );
    }
}
