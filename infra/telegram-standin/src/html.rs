//! Telegram's HTML parse mode: the tag set and the error messages of the parser behind the Bot
//! API (TDLib's `parse_html`), so a sender sees the same `can't parse entities: …` answers.
//!
//! Docs: <https://core.telegram.org/bots/api#html-style>. Supported tags: `b strong i em u ins
//! s strike del span class="tg-spoiler" tg-spoiler a href code pre blockquote [expandable]
//! tg-emoji emoji-id`; entities `&lt; &gt; &amp; &quot;` and numeric ones (`&#123;`, `&#x1F600;`).
//!
//! Where the docs and the real parser differ the docs win by default ([`Strictness::Documented`]):
//! the docs say every `&` that is not part of an entity must be written `&amp;`, while the real
//! parser keeps a bare `&` (and an unknown named entity such as `&nbsp;`) as text. A sender that
//! forgets to escape user data gets away with it on Telegram until the data happens to contain
//! `&lt` or `&amp`, so the stand-in refuses it. [`Strictness::Telegram`] behaves as the real
//! parser does.

use std::cmp::Reverse;

/// How a message's text is measured against the 4096 limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthUnit {
    /// UTF-16 code units, the unit of every offset and length in the Bot API (`MessageEntity`):
    /// a character outside the Basic Multilingual Plane (most emoji) counts 2. The stricter
    /// reading: text that passes here passes on Telegram.
    #[default]
    Utf16,
    /// Unicode scalar values: TDLib, which serves the Bot API, checks
    /// `utf8_length(text) > message_text_length_max` (td/telegram/MessageContent.cpp), which
    /// counts code points, so an emoji counts 1 there.
    CodePoints,
}

impl LengthUnit {
    /// The length of `text` in this unit.
    pub fn measure(self, text: &str) -> usize {
        match self {
            LengthUnit::Utf16 => utf16_len(text),
            LengthUnit::CodePoints => text.chars().count(),
        }
    }
}

/// How strictly `&` is checked in HTML text and attribute values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// The documented rule: a `&` that does not start `&lt;`, `&gt;`, `&amp;`, `&quot;` or a
    /// numeric entity is refused with `can't parse entities`.
    #[default]
    Documented,
    /// What Telegram's parser does: such a `&` is kept as text.
    Telegram,
}

/// A formatting entity of a sent message, as the Bot API's `MessageEntity`: offsets and lengths
/// in UTF-16 code units of the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub kind: EntityKind,
    pub offset: usize,
    pub length: usize,
}

/// The entity types the HTML tags produce (Bot API `MessageEntity.type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityKind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    Code,
    /// `<pre>`, with the language of a `<pre><code class="language-…">` block.
    Pre {
        language: Option<String>,
    },
    /// `<a href="…">`; the link text itself when `href` is empty.
    TextLink {
        url: String,
    },
    Blockquote,
    ExpandableBlockquote,
    CustomEmoji {
        custom_emoji_id: String,
    },
}

impl Entity {
    /// The Bot API's JSON form, e.g. `{"type":"bold","offset":0,"length":4}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "type": self.kind.type_name(),
            "offset": self.offset,
            "length": self.length,
        });
        match &self.kind {
            EntityKind::Pre {
                language: Some(language),
            } => value["language"] = language.clone().into(),
            EntityKind::TextLink { url } => value["url"] = url.clone().into(),
            EntityKind::CustomEmoji { custom_emoji_id } => {
                value["custom_emoji_id"] = custom_emoji_id.clone().into();
            }
            _ => {}
        }
        value
    }
}

impl EntityKind {
    /// The Bot API's `MessageEntity.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            EntityKind::Bold => "bold",
            EntityKind::Italic => "italic",
            EntityKind::Underline => "underline",
            EntityKind::Strikethrough => "strikethrough",
            EntityKind::Spoiler => "spoiler",
            EntityKind::Code => "code",
            EntityKind::Pre { .. } => "pre",
            EntityKind::TextLink { .. } => "text_link",
            EntityKind::Blockquote => "blockquote",
            EntityKind::ExpandableBlockquote => "expandable_blockquote",
            EntityKind::CustomEmoji { .. } => "custom_emoji",
        }
    }
}

/// Text with its entities, after parsing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Formatted {
    pub text: String,
    pub entities: Vec<Entity>,
}

/// Why the parser refused the HTML: the part after `can't parse entities: ` in Telegram's
/// description, e.g. `Unsupported start tag "p" at byte offset 0`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

const TAGS: [&str; 16] = [
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "span",
    "pre",
    "code",
    "blockquote",
];

/// A start tag waiting for its end tag.
struct Open {
    tag: String,
    /// `href`, the code language, the span class without `tg-`, or the custom emoji ID.
    argument: String,
    expandable: bool,
    /// UTF-16 offset in the output where the entity starts.
    offset: usize,
    /// Byte offset in the output, to read an `<a>` tag's text when it has no `href`.
    byte_start: usize,
}

/// An entity before `<pre><code class="language-…">` pairs are merged.
struct Raw {
    kind: EntityKind,
    offset: usize,
    length: usize,
    /// A `<code>`'s language, kept only until its enclosing `<pre>` closes.
    language: String,
}

/// Parses Telegram HTML into text and entities.
pub fn parse_html(html: &str, strictness: Strictness) -> Result<Formatted, ParseError> {
    let mut parser = Parser {
        html,
        bytes: html.as_bytes(),
        strictness,
        out: String::with_capacity(html.len()),
        utf16: 0,
    };
    parser.run()
}

struct Parser<'a> {
    html: &'a str,
    bytes: &'a [u8],
    strictness: Strictness,
    out: String,
    utf16: usize,
}

/// TDLib's `is_space`, which treats the end of input (`\0`) as space.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0 | 0x0b)
}

fn err<T>(message: String) -> Result<T, ParseError> {
    Err(ParseError(message))
}

impl Parser<'_> {
    /// The byte at `i`, or 0 past the end (the C string's terminator in TDLib).
    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    /// The character starting at byte `i` (always a char boundary where it is called).
    fn char_at(&self, i: usize) -> Option<char> {
        self.html.get(i..).and_then(|rest| rest.chars().next())
    }

    fn push(&mut self, c: char) {
        self.out.push(c);
        self.utf16 += c.len_utf16();
    }

    fn run(&mut self) -> Result<Formatted, ParseError> {
        let mut open: Vec<Open> = Vec::new();
        let mut raw: Vec<Raw> = Vec::new();
        let mut i = 0;
        while i < self.bytes.len() {
            match self.at(i) {
                b'&' => i = self.ampersand(i, |p, c| p.push(c))?,
                b'<' if self.at(i + 1) == b'/' => i = self.end_tag(i, &mut open, &mut raw)?,
                b'<' => i = self.start_tag(i, &mut open)?,
                _ => match self.char_at(i) {
                    Some(c) => {
                        self.push(c);
                        i += c.len_utf8();
                    }
                    None => i += 1,
                },
            }
        }
        if let Some(unclosed) = open.last() {
            return err(format!(
                "Can't find end tag corresponding to start tag {}",
                unclosed.tag
            ));
        }
        let mut entities: Vec<Entity> = raw
            .into_iter()
            .map(|r| Entity {
                kind: r.kind,
                offset: r.offset,
                length: r.length,
            })
            .collect();
        // Telegram lists entities by offset, the enclosing (longer) one first.
        entities.sort_by_key(|e| (e.offset, Reverse(e.length)));
        Ok(Formatted {
            text: std::mem::take(&mut self.out),
            entities,
        })
    }

    /// A `&` at `i`: a supported entity is decoded and handed to `emit`; anything else is text
    /// (Telegram) or an error (documented rule). Returns where to continue.
    fn ampersand(
        &mut self,
        i: usize,
        mut emit: impl FnMut(&mut Self, char),
    ) -> Result<usize, ParseError> {
        match self.decode_entity(i)? {
            Some((c, next)) => {
                emit(self, c);
                Ok(next)
            }
            None if self.strictness == Strictness::Documented => err(format!(
                "Character \"&\" at byte offset {i} must be escaped as \"&amp;\" (Telegram's \
                 HTML-style rule; the stand-in enforces it, Telegram itself keeps it as text)"
            )),
            None => {
                emit(self, '&');
                Ok(i + 1)
            }
        }
    }

    /// TDLib's `decode_html_entity`: `&#123;`, `&#x1f600;` (lower-case `x`), `&lt;`, `&gt;`,
    /// `&amp;`, `&quot;`, the `;` optional. `None` when `&` starts no supported entity.
    fn decode_entity(&self, pos: usize) -> Result<Option<(char, usize)>, ParseError> {
        let mut end = pos + 1;
        let code: u32;
        if self.at(end) == b'#' {
            end += 1;
            let hex = self.at(end) == b'x';
            if hex {
                end += 1;
            }
            let radix = if hex { 16 } else { 10 };
            let mut value: u64 = 0;
            while let Some(digit) = char::from(self.at(end)).to_digit(radix) {
                value = value.saturating_mul(u64::from(radix)) + u64::from(digit);
                end += 1;
            }
            if value == 0 || value >= 0x10ffff || end - pos >= 10 {
                return Ok(None);
            }
            code = u32::try_from(value).unwrap_or(0);
        } else {
            while self.at(end).is_ascii_alphabetic() {
                end += 1;
            }
            code = match self.html.get(pos + 1..end) {
                Some("lt") => u32::from('<'),
                Some("gt") => u32::from('>'),
                Some("amp") => u32::from('&'),
                Some("quot") => u32::from('"'),
                _ => return Ok(None),
            };
        }
        let Some(c) = char::from_u32(code) else {
            return err(
                "Text contains invalid Unicode characters after decoding HTML entities, \
                        check for unmatched surrogate code units"
                    .to_owned(),
            );
        };
        if self.at(end) == b';' {
            end += 1;
        }
        Ok(Some((c, end)))
    }

    fn skip_spaces(&self, mut i: usize) -> usize {
        while self.at(i) != 0 && is_space(self.at(i)) {
            i += 1;
        }
        i
    }

    fn lower(&self, from: usize, to: usize) -> String {
        self.html
            .get(from..to)
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    fn start_tag(&mut self, begin: usize, open: &mut Vec<Open>) -> Result<usize, ParseError> {
        let mut i = begin + 1;
        while !is_space(self.at(i)) && self.at(i) != b'>' {
            i += 1;
        }
        if self.at(i) == 0 {
            return err(format!("Unclosed start tag at byte offset {begin}"));
        }
        let tag = self.lower(begin + 1, i);
        if !TAGS.contains(&tag.as_str()) {
            return err(format!(
                "Unsupported start tag \"{tag}\" at byte offset {begin}"
            ));
        }

        let mut argument = String::new();
        let mut expandable = false;
        while self.at(i) != b'>' {
            i = self.skip_spaces(i);
            if self.at(i) == b'>' {
                break;
            }
            let name_start = i;
            while !is_space(self.at(i)) && self.at(i) != b'=' && self.at(i) != b'>' {
                i += 1;
            }
            let name = self.html.get(name_start..i).unwrap_or_default().to_owned();
            if name.is_empty() {
                return err(format!(
                    "Empty attribute name in the tag \"{tag}\" at byte offset {begin}"
                ));
            }
            i = self.skip_spaces(i);
            if self.at(i) != b'=' {
                // `<blockquote expandable>`: the one attribute without a value.
                if tag == "blockquote" && name.eq_ignore_ascii_case("expandable") {
                    expandable = true;
                    continue;
                }
                return err(format!(
                    "Expected equal sign in declaration of an attribute of the tag \"{tag}\" at \
                     byte offset {begin}"
                ));
            }
            i = self.skip_spaces(i + 1);
            if self.at(i) == 0 {
                return err(format!(
                    "Unclosed start tag \"{tag}\" at byte offset {begin}"
                ));
            }
            let value;
            (value, i) = self.attribute_value(i)?;
            if self.at(i) == 0 {
                return err(format!("Unclosed start tag at byte offset {begin}"));
            }
            match (tag.as_str(), name.as_str()) {
                ("a", "href") | ("tg-emoji", "emoji-id") => argument = value,
                ("code", "class") => {
                    if let Some(language) = value.strip_prefix("language-") {
                        argument = language.to_owned();
                    }
                }
                ("span", "class") => {
                    if let Some(class) = value.strip_prefix("tg-") {
                        argument = class.to_owned();
                    }
                }
                _ => {}
            }
        }
        if tag == "span" && argument != "spoiler" {
            return err(format!(
                "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
            ));
        }
        open.push(Open {
            tag,
            argument,
            expandable,
            offset: self.utf16,
            byte_start: self.out.len(),
        });
        Ok(i + 1)
    }

    /// An attribute value at `i`: a quoted string (entities decoded) or a name token
    /// (letters, digits, `.`, `-`; lower-cased). Returns it and where it ends.
    fn attribute_value(&mut self, mut i: usize) -> Result<(String, usize), ParseError> {
        let quote = self.at(i);
        if quote != b'\'' && quote != b'"' {
            let start = i;
            while self.at(i).is_ascii_alphanumeric() || self.at(i) == b'.' || self.at(i) == b'-' {
                i += 1;
            }
            if !is_space(self.at(i)) && self.at(i) != b'>' {
                return err(format!(
                    "Unexpected end of name token at byte offset {start}"
                ));
            }
            return Ok((self.lower(start, i), i));
        }
        i += 1;
        let mut value = String::new();
        while self.at(i) != quote && self.at(i) != 0 {
            if self.at(i) == b'&' {
                let mut decoded = None;
                i = self.ampersand(i, |_, c| decoded = Some(c))?;
                if let Some(c) = decoded {
                    value.push(c);
                }
                continue;
            }
            match self.char_at(i) {
                Some(c) => {
                    value.push(c);
                    i += c.len_utf8();
                }
                None => i += 1,
            }
        }
        if self.at(i) == quote {
            i += 1;
        }
        Ok((value, i))
    }

    fn end_tag(
        &mut self,
        begin: usize,
        open: &mut Vec<Open>,
        raw: &mut Vec<Raw>,
    ) -> Result<usize, ParseError> {
        let Some(current) = open.pop() else {
            return err(format!("Unexpected end tag at byte offset {begin}"));
        };
        let mut i = begin + 2;
        while !is_space(self.at(i)) && self.at(i) != b'>' {
            i += 1;
        }
        let end_name = self.lower(begin + 2, i);
        i = self.skip_spaces(i);
        if self.at(i) != b'>' {
            return err(format!("Unclosed end tag at byte offset {begin}"));
        }
        if !end_name.is_empty() && end_name != current.tag {
            return err(format!(
                "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_name}>\"",
                current.tag
            ));
        }
        if self.utf16 > current.offset {
            self.close(current, raw)?;
        }
        Ok(i + 1)
    }

    /// Turns a closed, non-empty tag into its entity (TDLib drops empty ones).
    fn close(&self, current: Open, raw: &mut Vec<Raw>) -> Result<(), ParseError> {
        let offset = current.offset;
        let length = self.utf16 - offset;
        let same_span = |r: &Raw| r.offset == offset && r.length == length;
        let kind = match current.tag.as_str() {
            "b" | "strong" => EntityKind::Bold,
            "i" | "em" => EntityKind::Italic,
            "u" | "ins" => EntityKind::Underline,
            "s" | "strike" | "del" => EntityKind::Strikethrough,
            "tg-spoiler" | "span" => EntityKind::Spoiler,
            "blockquote" if current.expandable => EntityKind::ExpandableBlockquote,
            "blockquote" => EntityKind::Blockquote,
            "tg-emoji" => match current.argument.parse::<i64>() {
                Ok(id) if id != 0 => EntityKind::CustomEmoji {
                    custom_emoji_id: id.to_string(),
                },
                _ => return err("Invalid custom emoji identifier specified".to_owned()),
            },
            "a" => {
                let url = if current.argument.is_empty() {
                    self.out
                        .get(current.byte_start..)
                        .unwrap_or_default()
                        .to_owned()
                } else {
                    current.argument
                };
                if url.trim().is_empty() {
                    return Ok(());
                }
                EntityKind::TextLink { url }
            }
            "pre" => {
                // `<pre><code class="language-x">…</code></pre>`: one pre entity with a language.
                if let Some(code) = raw.last_mut().filter(|r| {
                    r.kind == EntityKind::Code && same_span(r) && !r.language.is_empty()
                }) {
                    code.kind = EntityKind::Pre {
                        language: Some(std::mem::take(&mut code.language)),
                    };
                    return Ok(());
                }
                EntityKind::Pre { language: None }
            }
            "code" => {
                if let Some(pre) = raw.last_mut().filter(|r| {
                    r.kind == (EntityKind::Pre { language: None })
                        && same_span(r)
                        && !current.argument.is_empty()
                }) {
                    pre.kind = EntityKind::Pre {
                        language: Some(current.argument),
                    };
                    return Ok(());
                }
                raw.push(Raw {
                    kind: EntityKind::Code,
                    offset,
                    length,
                    language: current.argument,
                });
                return Ok(());
            }
            _ => return Ok(()),
        };
        raw.push(Raw {
            kind,
            offset,
            length,
            language: String::new(),
        });
        Ok(())
    }
}

/// The length of `text` in UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Strips leading and trailing whitespace as Telegram does before sending (a message of only
/// whitespace is empty), moving entities with the text and dropping those left empty.
pub(crate) fn trim(formatted: Formatted) -> Formatted {
    let is_trimmed = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let text = formatted.text.trim_start_matches(is_trimmed);
    let lead = utf16_len(&formatted.text[..formatted.text.len() - text.len()]);
    let text = text.trim_end_matches(is_trimmed).to_owned();
    let end = utf16_len(&text);
    let entities = formatted
        .entities
        .into_iter()
        .filter_map(|e| {
            let start = e.offset.saturating_sub(lead).min(end);
            let stop = (e.offset + e.length).saturating_sub(lead).min(end);
            (stop > start).then_some(Entity {
                kind: e.kind,
                offset: start,
                length: stop - start,
            })
        })
        .collect();
    Formatted { text, entities }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    fn parse(html: &str) -> Result<Formatted, String> {
        parse_html(html, Strictness::Documented).map_err(|e| e.0)
    }

    fn entity(kind: EntityKind, offset: usize, length: usize) -> Entity {
        Entity {
            kind,
            offset,
            length,
        }
    }

    // The error cases and messages of TDLib's own parse_html tests (test/message_entities.cpp).
    #[test]
    fn refuses_what_telegrams_parser_refuses_with_its_messages() {
        let cases = [
            ("🏟 🏟&lt;<abacaba", "Unclosed start tag at byte offset 13"),
            ("🏟 🏟&lt;<abac aba>", "Unsupported start tag \"abac\" at byte offset 13"),
            ("🏟 🏟&lt;<abac>", "Unsupported start tag \"abac\" at byte offset 13"),
            ("🏟 🏟&lt;<i   =aba>", "Empty attribute name in the tag \"i\" at byte offset 13"),
            (
                "🏟 🏟&lt;<i    aba>",
                "Expected equal sign in declaration of an attribute of the tag \"i\" at byte offset 13",
            ),
            ("🏟 🏟&lt;<i    aba  =  ", "Unclosed start tag \"i\" at byte offset 13"),
            ("🏟 🏟&lt;<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 27"),
            ("🏟 🏟&lt;<i    aba  =  \"&lt;&gt;&quot;>", "Unclosed start tag at byte offset 13"),
            ("🏟 🏟&lt;</", "Unexpected end tag at byte offset 13"),
            ("🏟 🏟&lt;<b></b></", "Unexpected end tag at byte offset 20"),
            ("🏟 🏟&lt;<i>a</i   ", "Unclosed end tag at byte offset 17"),
            (
                "🏟 🏟&lt;<i>a</em   >",
                "Unmatched end tag at byte offset 17, expected \"</i>\", found \"</em>\"",
            ),
            ("a < b", "Unsupported start tag \"\" at byte offset 2"),
            ("<b>bold", "Can't find end tag corresponding to start tag b"),
            ("<span>x</span>", "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"),
            ("<tg-emoji emoji-id=\"x\">👍</tg-emoji>", "Invalid custom emoji identifier specified"),
            (
                "&#xDFDF;",
                "Text contains invalid Unicode characters after decoding HTML entities, check for \
                 unmatched surrogate code units",
            ),
        ];
        for (html, message) in cases {
            assert_eq!(parse(html), Err(message.to_owned()), "{html}");
        }
    }

    #[test]
    fn decodes_the_four_named_entities_and_numeric_ones() {
        let parsed = parse("&lt;&gt;&amp;&quot;&#65;&#x1F600;").unwrap();
        assert_eq!(parsed.text, "<>&\"A😀");
    }

    #[test]
    fn a_bare_ampersand_is_refused_by_the_documented_rule_and_kept_by_telegrams_parser() {
        for html in [
            "fish & chips",
            "&nbsp;",
            "&#0;",
            "<a href=\"https://x.test/?a=1&b=2\">x</a>",
        ] {
            let error = parse(html).unwrap_err();
            assert!(
                error.starts_with("Character \"&\" at byte offset"),
                "{html}: {error}"
            );
        }
        let lenient = parse_html("fish & chips &nbsp;", Strictness::Telegram).unwrap();
        assert_eq!(lenient.text, "fish & chips &nbsp;");
    }

    #[test]
    fn tags_become_entities_in_utf16_units() {
        let parsed =
            parse("😀 <b>bold <i>both</i></b> <a href=\"https://x.test/?a=1&amp;b=2\">link</a>")
                .unwrap();
        assert_eq!(parsed.text, "😀 bold both link");
        assert_eq!(
            parsed.entities,
            vec![
                entity(EntityKind::Bold, 3, 9),
                entity(EntityKind::Italic, 8, 4),
                entity(
                    EntityKind::TextLink {
                        url: "https://x.test/?a=1&b=2".into()
                    },
                    13,
                    4
                ),
            ]
        );
    }

    #[test]
    fn every_documented_tag_is_accepted() {
        let html = "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>\
                    <strike>k</strike><del>d</del><span class=\"tg-spoiler\">p</span>\
                    <tg-spoiler>t</tg-spoiler><a href=\"http://www.example.com/\">a</a>\
                    <code>c</code><pre>p</pre><pre><code class=\"language-python\">x</code></pre>\
                    <blockquote>q</blockquote><blockquote expandable>x</blockquote>\
                    <tg-emoji emoji-id=\"5368324170671202286\">👍</tg-emoji>";
        let parsed = parse(html).unwrap();
        let types: Vec<&str> = parsed.entities.iter().map(|e| e.kind.type_name()).collect();
        assert_eq!(
            types,
            vec![
                "bold",
                "bold",
                "italic",
                "italic",
                "underline",
                "underline",
                "strikethrough",
                "strikethrough",
                "strikethrough",
                "spoiler",
                "spoiler",
                "text_link",
                "code",
                "pre",
                "pre",
                "blockquote",
                "expandable_blockquote",
                "custom_emoji"
            ]
        );
        assert_eq!(
            parsed.entities[14].kind,
            EntityKind::Pre {
                language: Some("python".into())
            }
        );
    }

    #[test]
    fn empty_tags_make_no_entity_and_an_a_without_href_links_its_text() {
        let parsed = parse("<b></b><a>https://x.test</a>").unwrap();
        assert_eq!(
            parsed.entities,
            vec![entity(
                EntityKind::TextLink {
                    url: "https://x.test".into()
                },
                0,
                14
            )]
        );
    }

    #[test]
    fn trimming_moves_entities_with_the_text() {
        let parsed = trim(parse("\n  <b>hi</b> there  \n<i> </i>").unwrap());
        assert_eq!(parsed.text, "hi there");
        assert_eq!(parsed.entities, vec![entity(EntityKind::Bold, 0, 2)]);
    }

    #[test]
    fn lengths_count_emoji_as_two_utf16_units_or_one_code_point() {
        assert_eq!(LengthUnit::Utf16.measure("a😀"), 3);
        assert_eq!(LengthUnit::CodePoints.measure("a😀"), 2);
    }
}
