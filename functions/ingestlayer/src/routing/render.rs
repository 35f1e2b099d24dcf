//! Slack messages from events: templates with `$event.*` references, rendered into Block
//! Kit that is always valid and inside Slack's limits.
//!
//! Every event value is escaped (`&`, `<`, `>`), so an event can never produce a mention, a
//! channel ping or a link; the template's own text is the operator's and is kept as written.
//! Every mrkdwn text object is `verbatim`, so Slack does not turn URLs or `#channel` names
//! found in values into links. A value placed in the target of a template's own link
//! (`<https://x/$event.id|label>`) is percent-encoded, so it cannot end the target or change
//! the label. Oversized values are cut with `…` and the message then says it was truncated.
//!
//! Besides `$event.*` and `$name`, a template sees `$source` (the source that sent the
//! event: `webhook:stripe`, or an API key's source name), `$webhook.*` (a verified
//! webhook's context: `$webhook.provider`, `$webhook.source`, `$webhook.delivery_id`, …),
//! `$cloudevent.*` (a CloudEvent's attributes) and what the pipeline's steps worked out:
//! `$throttle.*`, `$threshold.*`, `$rollup.*`, `$heartbeat.*`. A braced reference takes
//! formatters (`${event.amount_due | money: event.currency}`, see [`super::format`]).
//! Every message's context line names the source; the card says what a throttle held back,
//! which threshold was reached and which heartbeat went missing or came back. A template's
//! `buttons` become one `actions` block of link buttons before the context line.

use std::sync::LazyLock;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use regex::Regex;
use serde_json::{json, Map, Value};

use crate::event::Origin;
use crate::outbound::card::{Card, Field, Link, Span};
use crate::routing::format::{
    self, display_value, time_of, time_token, Formatted, Formatter, Output, TimeStyle,
};
use crate::slack::block_kit::{cut, cut_escaped, escape, limits, mrkdwn, RenderedMessage};

/// Longest value shown in one field, so a card stays readable.
const FIELD_VALUE_CHARS: usize = 300;

/// Most link buttons one template may have.
pub const MAX_BUTTONS: usize = 5;

/// The pipeline step kinds whose variables templates see (`$throttle.held`).
const STEP_VARS: [&str; 4] = ["throttle", "threshold", "rollup", "heartbeat"];

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern, covered by tests
    Regex::new(
        r"\$\{\s*(event|webhook|cloudevent|throttle|threshold|rollup|heartbeat|name|source)\b([^}]*)\}|\$(event|webhook|cloudevent|throttle|threshold|rollup|heartbeat)((?:\.[A-Za-z0-9_-]+)+)|\$(name|source)\b",
    )
    .unwrap()
});

/// Everything but RFC 3986's unreserved characters: a value as one part of a URL.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What may not stand in a URL as written, nor in a Slack link's target: a whole URL keeps
/// its `/`, `?`, `=` and `&` but never ends the target (`|`, `>`) or opens markup (`<`).
const URL_WHOLE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'|')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^');

/// Where in the template's text a reference stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Text: the value is escaped; a time is a Slack date token in mrkdwn.
    Text,
    /// A link's label (`<…|label>`): escaped, and a time is plain text (no token in a label).
    Label,
    /// The very start of a link's target (`<$event.url|…>`): an http(s) URL value is kept as
    /// a URL, anything else is encoded as a part.
    TargetStart,
    /// Inside a link's target after its start: the value is percent-encoded as a part.
    Target,
}

/// What a template's text becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// mrkdwn: values escaped, times as Slack date tokens.
    Mrkdwn,
    /// plain_text (the header, a button's label): values escaped, times as UTC text.
    Plain,
    /// A button's URL: the whole text is a link's target, nothing is HTML-escaped.
    Url,
    /// A card for another platform: values as they are (each platform escapes them), times
    /// as UTC text; a link's target is still percent-encoded.
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reference {
    Event(Vec<String>),
    Webhook(Vec<String>),
    CloudEvent(Vec<String>),
    /// A step's variable: `$throttle.held` is `Var("throttle", ["held"])`.
    Var(&'static str, Vec<String>),
    Name,
    Source,
}

impl Reference {
    /// `root` and the dotted path after it (`.a.b`; empty for `name` and `source`).
    fn new(root: &str, path: &str) -> Option<Self> {
        let segments: Vec<String> = if path.is_empty() {
            Vec::new()
        } else {
            path.strip_prefix('.')?
                .split('.')
                .map(str::to_owned)
                .collect()
        };
        let valid = |s: &String| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !segments.iter().all(valid) {
            return None;
        }
        let takes_path = !matches!(root, "name" | "source");
        if takes_path == segments.is_empty() {
            return None;
        }
        Some(match root {
            "event" => Self::Event(segments),
            "webhook" => Self::Webhook(segments),
            "cloudevent" => Self::CloudEvent(segments),
            "name" => Self::Name,
            "source" => Self::Source,
            other => Self::Var(STEP_VARS.into_iter().find(|k| *k == other)?, segments),
        })
    }

    /// A formatter's argument: `event.currency` or `$event.currency`.
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix('$').unwrap_or(s);
        match s.find('.') {
            Some(dot) => Self::new(&s[..dot], &s[dot..]),
            None => Self::new(s, ""),
        }
    }

    fn resolve(&self, input: &RenderInput<'_>) -> Option<Value> {
        match self {
            Self::Name => Some(Value::String(input.event_name.to_owned())),
            Self::Source => Some(Value::String(input.origin.source.to_owned())),
            Self::Event(path) => lookup(input.context, path).cloned(),
            Self::Webhook(path) => input
                .origin
                .webhook
                .and_then(|w| lookup_map(w, path))
                .cloned(),
            Self::CloudEvent(path) => input
                .origin
                .cloudevent
                .and_then(|c| lookup_map(c, path))
                .cloned(),
            Self::Var(kind, path) => input
                .vars
                .and_then(|v| v.get(*kind))
                .and_then(|v| lookup(v, path))
                .cloned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Ref {
        reference: Reference,
        formatters: Vec<Formatter<Reference>>,
        place: Place,
    },
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateText(Vec<Piece>);

impl TemplateText {
    /// Parses `$event.a.b`, `${event.a.b | formatter: arg | …}`, `$webhook.a`,
    /// `$cloudevent.a`, `$throttle.a` (and the other steps'), `$name` and `$source`
    /// references, noting for each whether it stands in a link's target (`<…|` or `<…>`) or
    /// label. The error names the malformed reference or formatter.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_in(s, false)
    }

    /// Parses a URL template: the whole text is a link's target.
    fn parse_url(s: &str) -> Result<Self, String> {
        Self::parse_in(s, true)
    }

    fn parse_in(s: &str, url: bool) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut last = 0;
        let mut place = if url { Place::TargetStart } else { Place::Text };
        let advance = |text: &str, place: &mut Place| {
            for c in text.chars() {
                *place = match (*place, c) {
                    (Place::TargetStart, _) if url => Place::Target,
                    (p, _) if url => p,
                    (Place::Text, '<') => Place::TargetStart,
                    (Place::TargetStart | Place::Target, '|') => Place::Label,
                    (Place::TargetStart | Place::Target | Place::Label, '>') => Place::Text,
                    (Place::TargetStart, _) => Place::Target,
                    (p, _) => p,
                };
            }
        };
        for caps in REFERENCE.captures_iter(s) {
            let Some(whole) = caps.get(0) else { continue };
            if whole.start() > last {
                let text = &s[last..whole.start()];
                advance(text, &mut place);
                pieces.push(Piece::Text(text.to_owned()));
            }
            let group = |i: usize| caps.get(i).map(|m| m.as_str());
            let (reference, formatters) = match (group(1), group(3), group(5)) {
                (Some(root), _, _) => {
                    let inner = group(2).unwrap_or_default();
                    let mut parts = inner.split('|');
                    let path = parts.next().unwrap_or_default().trim();
                    let reference = Reference::new(root, path).ok_or_else(|| {
                        format!(
                            "{:?} is not a reference such as ${{event.plan}} or ${{event.amount | money: usd}}",
                            whole.as_str()
                        )
                    })?;
                    let parts: Vec<&str> = parts.collect();
                    let formatters = format::parse_chain(&parts, Reference::parse)
                        .map_err(|m| format!("in {:?}: {m}", whole.as_str()))?;
                    (reference, formatters)
                }
                (None, Some(root), _) => {
                    let reference = Reference::new(root, group(4).unwrap_or_default())
                        .ok_or_else(|| format!("{:?} is not a reference", whole.as_str()))?;
                    (reference, Vec::new())
                }
                (None, None, root) => {
                    let reference = Reference::new(root.unwrap_or("name"), "")
                        .ok_or_else(|| format!("{:?} is not a reference", whole.as_str()))?;
                    (reference, Vec::new())
                }
            };
            pieces.push(Piece::Ref {
                reference,
                formatters,
                place,
            });
            // A reference is part of the target: what follows it is no longer its start.
            if place == Place::TargetStart {
                place = Place::Target;
            }
            last = whole.end();
        }
        if last < s.len() {
            pieces.push(Piece::Text(s[last..].to_owned()));
        }
        Ok(Self(pieces))
    }

    /// Renders with every substituted value escaped (percent-encoded in a link's target); a
    /// missing field renders as `–`.
    fn render(&self, input: &RenderInput<'_>, surface: Surface) -> String {
        self.render_counting(input, surface).0
    }

    /// A button's URL; `None` when a reference in it names nothing.
    fn render_url(&self, input: &RenderInput<'_>) -> Option<String> {
        match self.render_counting(input, Surface::Url) {
            (url, 0) => Some(url),
            _ => None,
        }
    }

    /// The rendered text and how many references named nothing.
    fn render_counting(&self, input: &RenderInput<'_>, surface: Surface) -> (String, usize) {
        let mut out = String::new();
        let mut missing = 0;
        for p in &self.0 {
            let (reference, formatters, place) = match p {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::Ref {
                    reference,
                    formatters,
                    place,
                } => (reference, formatters, *place),
            };
            let mut value = reference
                .resolve(input)
                .map(Formatted::Value)
                .unwrap_or(Formatted::Missing);
            let resolve = |r: &Reference| r.resolve(input);
            for f in formatters {
                value = format::apply(f, value, &resolve);
            }
            let tokens = surface == Surface::Mrkdwn && place == Place::Text;
            match format::finish(value, tokens) {
                Output::Plain(t) => out.push_str(&in_place(&t, place, surface)),
                Output::Markup(m) => out.push_str(&m),
                Output::Missing => {
                    missing += 1;
                    out.push('–');
                }
            }
        }
        (out, missing)
    }

    /// The literal text the template starts with, before any reference.
    fn literal_start(&self) -> Option<&str> {
        match self.0.first() {
            Some(Piece::Text(t)) => Some(t),
            _ => None,
        }
    }

    fn has_references(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Ref { .. }))
    }

    /// The text for a card: the template's own text, the values (raw) and its links, told
    /// apart. A link (`<https://…|label>`) whose target is not an http(s) URL (a Slack
    /// mention such as `<!here>`) stays text as written.
    fn spans(&self, input: &RenderInput<'_>) -> Vec<Span> {
        let mut spans = Spans::default();
        for p in &self.0 {
            match p {
                Piece::Text(t) => {
                    for c in t.chars() {
                        spans.literal(c);
                    }
                }
                Piece::Ref {
                    reference,
                    formatters,
                    place,
                } => {
                    let mut value = reference
                        .resolve(input)
                        .map(Formatted::Value)
                        .unwrap_or(Formatted::Missing);
                    let resolve = |r: &Reference| r.resolve(input);
                    for f in formatters {
                        value = format::apply(f, value, &resolve);
                    }
                    let text = match format::finish(value, false) {
                        Output::Plain(t) | Output::Markup(t) => in_place(&t, *place, Surface::Raw),
                        Output::Missing => "–".to_owned(),
                    };
                    spans.value(&text);
                }
            }
        }
        spans.finish()
    }

    /// Renders the text raw: values as they are, times as UTC text.
    pub fn render_raw(&self, input: &RenderInput<'_>) -> String {
        self.render(input, Surface::Raw)
    }
}

/// Splits a template's text into spans while it is read, character by character, with the
/// place state of [`TemplateText::parse_in`].
#[derive(Default)]
struct Spans {
    out: Vec<Span>,
    /// Inside `<…`: the target so far and, after `|`, the label.
    link: Option<(String, Option<String>)>,
}

impl Spans {
    fn push_text(&mut self, text: &str, value: bool) {
        match (self.out.last_mut(), value) {
            (Some(Span::Text { text: t }), false) | (Some(Span::Value { text: t }), true) => {
                t.push_str(text)
            }
            _ if text.is_empty() => {}
            (_, false) => self.out.push(Span::Text { text: text.into() }),
            (_, true) => self.out.push(Span::Value { text: text.into() }),
        }
    }

    fn literal(&mut self, c: char) {
        match (&mut self.link, c) {
            (None, '<') => self.link = Some((String::new(), None)),
            (None, c) => self.push_text(c.encode_utf8(&mut [0; 4]), false),
            (Some((_, label @ None)), '|') => *label = Some(String::new()),
            (Some(_), '>') => {
                if let Some((url, label)) = self.link.take() {
                    if is_web_url(&url) {
                        self.out.push(Span::Link {
                            label: label.unwrap_or_default(),
                            url,
                        });
                    } else {
                        let written = match label {
                            Some(l) => format!("<{url}|{l}>"),
                            None => format!("<{url}>"),
                        };
                        self.push_text(&written, false);
                    }
                }
            }
            (Some((url, None)), c) => url.push(c),
            (Some((_, Some(label))), c) => label.push(c),
        }
    }

    fn value(&mut self, text: &str) {
        match &mut self.link {
            None => self.push_text(text, true),
            Some((url, None)) => url.push_str(text),
            Some((_, Some(label))) => label.push_str(text),
        }
    }

    fn finish(mut self) -> Vec<Span> {
        if let Some((url, label)) = self.link.take() {
            let written = match label {
                Some(l) => format!("<{url}|{l}"),
                None => format!("<{url}"),
            };
            self.push_text(&written, false);
        }
        self.out
    }
}

/// `value` made safe for where it stands.
fn in_place(value: &str, place: Place, surface: Surface) -> String {
    match place {
        Place::Text | Place::Label if surface == Surface::Raw => value.to_owned(),
        Place::Text | Place::Label => escape(value),
        Place::TargetStart if is_web_url(value) => {
            let url = utf8_percent_encode(value, URL_WHOLE).to_string();
            match surface {
                Surface::Url | Surface::Raw => url,
                Surface::Mrkdwn | Surface::Plain => escape(&url),
            }
        }
        Place::TargetStart | Place::Target => utf8_percent_encode(value, URL_PART).to_string(),
    }
}

fn is_web_url(value: &str) -> bool {
    url::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// A template as written in a pipeline item, before its references are checked.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTemplate {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    #[serde(default)]
    pub buttons: Option<Vec<RawButton>>,
}

/// A link button as written: its label and URL, both templates.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawButton {
    pub text: String,
    pub url: String,
}

/// A link button: a plain_text label and a URL whose values are percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Button {
    text: TemplateText,
    url: TemplateText,
}

/// A destination's message template. Empty parts fall back to the default card: a header
/// with the event name and a section of the event's key fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    header: Option<TemplateText>,
    text: Option<TemplateText>,
    fields: Option<Vec<Vec<String>>>,
    buttons: Vec<Button>,
}

impl Template {
    /// Checks every reference, formatter and button; an error is `(field, message)`, the
    /// field relative to the template (`text`, `buttons[1].url`).
    pub(crate) fn from_raw(raw: RawTemplate) -> Result<Self, (String, String)> {
        let fields = match raw.fields {
            None => None,
            Some(list) => {
                let mut paths = Vec::new();
                for (i, f) in list.iter().enumerate() {
                    let f = f.strip_prefix("$event.").unwrap_or(f);
                    let path: Vec<String> = f.split('.').map(str::to_owned).collect();
                    if path.iter().any(|s| s.is_empty()) {
                        return Err((
                            format!("fields[{i}]"),
                            format!("{f:?} is not a field path such as plan or user.account"),
                        ));
                    }
                    paths.push(path);
                }
                Some(paths)
            }
        };
        let text_of = |field: &str, s: Option<&str>| {
            s.map(TemplateText::parse)
                .transpose()
                .map_err(|m| (field.to_owned(), m))
        };
        let raw_buttons = raw.buttons.unwrap_or_default();
        if raw_buttons.len() > MAX_BUTTONS {
            return Err((
                "buttons".to_owned(),
                format!(
                    "{} buttons; a message takes at most {MAX_BUTTONS}",
                    raw_buttons.len()
                ),
            ));
        }
        let mut buttons = Vec::new();
        for (i, b) in raw_buttons.iter().enumerate() {
            if b.text.trim().is_empty() {
                return Err((format!("buttons[{i}].text"), "must not be empty".to_owned()));
            }
            let text =
                TemplateText::parse(&b.text).map_err(|m| (format!("buttons[{i}].text"), m))?;
            let url = TemplateText::parse_url(b.url.trim())
                .map_err(|m| (format!("buttons[{i}].url"), m))?;
            let start = url.literal_start().map(str::to_ascii_lowercase);
            let web_start = start
                .as_deref()
                .is_none_or(|s| s.starts_with("https://") || s.starts_with("http://"));
            if !web_start || (!url.has_references() && !is_web_url(b.url.trim())) {
                return Err((
                    format!("buttons[{i}].url"),
                    format!(
                        "{:?} is not an http(s) URL: start it with https:// or with a reference to one",
                        b.url
                    ),
                ));
            }
            buttons.push(Button { text, url });
        }
        Ok(Self {
            header: text_of("header", raw.header.as_deref())?,
            text: text_of("text", raw.text.as_deref())?,
            fields,
            buttons,
        })
    }
}

/// What a message is rendered from.
pub struct RenderInput<'a> {
    pub event_name: &'a str,
    pub event_id: &'a str,
    /// Who sent the event (`$source`, `$webhook`, `$cloudevent`); the message names the source.
    pub origin: Origin<'a>,
    /// The event's fields plus attached entities.
    pub context: &'a Value,
    /// A link to the full stored event, shown when something was truncated.
    pub full_event_url: Option<&'a str>,
    /// What the pipeline's steps worked out for this event, by step kind (`throttle`,
    /// `threshold`, `rollup`, `heartbeat`): `$throttle.held`, `$rollup.count`, …
    pub vars: Option<&'a Map<String, Value>>,
}

/// Renders `input` with `template` into Block Kit within Slack's limits: a header, the
/// template's text, what the steps did, the fields, the link buttons, and a context line.
pub fn render(template: &Template, input: &RenderInput<'_>) -> RenderedMessage {
    let mut truncated = false;
    let mut blocks = Vec::new();
    let vars = input.vars;

    let headline = match &template.header {
        Some(t) => t.render(input, Surface::Plain),
        None => vars
            .and_then(heartbeat_header)
            .unwrap_or_else(|| escape(input.event_name)),
    };
    let header = cut(&headline, limits::HEADER_TEXT, &mut truncated);
    blocks.push(
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
    );

    if let Some(text) = &template.text {
        let body = cut(
            &text.render(input, Surface::Mrkdwn),
            limits::SECTION_TEXT,
            &mut truncated,
        );
        if !body.trim().is_empty() {
            blocks.push(json!({"type": "section", "text": mrkdwn(body)}));
        }
    }

    let steps: Vec<String> = vars
        .map(|v| [threshold_line(v), heartbeat_line(v)])
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    if !steps.is_empty() {
        let body = cut(&steps.join("\n"), limits::SECTION_TEXT, &mut truncated);
        blocks.push(json!({"type": "section", "text": mrkdwn(body)}));
    }

    let pairs = field_pairs(template, input);
    if pairs.len() > limits::SECTION_FIELDS {
        truncated = true;
    }
    let fields: Vec<Value> = pairs
        .iter()
        .take(limits::SECTION_FIELDS)
        .map(|(label, value)| {
            let label = cut(&escape(label), 100, &mut truncated);
            let value = cut_escaped(
                value,
                FIELD_VALUE_CHARS.min(limits::FIELD_TEXT - label.len() - 4),
                &mut truncated,
            );
            mrkdwn(format!("*{label}*\n{value}"))
        })
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }

    let buttons = link_buttons(template, input);
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }

    let mut context = format!(
        "ingestlayer · from {} · `{}`",
        escape(input.origin.source),
        escape(input.event_id)
    );
    if let Some(held) = vars.and_then(throttle_note) {
        context.push_str(" · ");
        context.push_str(&held);
    }
    if truncated {
        match input.full_event_url {
            Some(url) => context.push_str(&format!(" · truncated: <{url}|view the full event>")),
            None => context.push_str(" · truncated: the full event is stored under this id"),
        }
    }
    let context = cut(&context, limits::CONTEXT_TEXT, &mut truncated);
    blocks.push(json!({"type": "context", "elements": [mrkdwn(context)]}));
    blocks.truncate(limits::BLOCKS);

    let mut fallback = match (&template.header, vars.and_then(heartbeat_header)) {
        (None, Some(h)) => h,
        _ => escape(input.event_name),
    };
    let summary: Vec<String> = pairs
        .iter()
        .take(limits::SECTION_FIELDS)
        .map(|(k, v)| format!("{} {}", escape(k), escape(v)))
        .collect();
    if !summary.is_empty() {
        fallback.push_str(": ");
        fallback.push_str(&summary.join(", "));
    }
    let mut ignored = false;
    let text = cut(&fallback, limits::FALLBACK_TEXT, &mut ignored);

    RenderedMessage {
        text,
        blocks,
        truncated,
    }
}

/// Renders `input` with `template` into the platform-neutral [`Card`] the destinations
/// beyond Slack render from: the same headline, text, step lines, fields, link buttons and
/// context line as the Block Kit message, every value raw (each platform escapes it).
pub fn card(template: &Template, input: &RenderInput<'_>) -> Card {
    let vars = input.vars;
    let title = match &template.header {
        Some(t) => t.render_raw(input),
        None => vars
            .and_then(heartbeat_header)
            .map(|h| slack_plain(&h))
            .unwrap_or_else(|| input.event_name.to_owned()),
    };
    let text = template
        .text
        .as_ref()
        .map(|t| t.spans(input))
        .unwrap_or_default();
    let notes = vars
        .map(|v| [threshold_line(v), heartbeat_line(v)])
        .into_iter()
        .flatten()
        .flatten()
        .map(|l| slack_plain(&l))
        .collect();
    let fields = field_pairs(template, input)
        .into_iter()
        .map(|(name, value)| Field { name, value })
        .collect();
    let buttons = template
        .buttons
        .iter()
        .filter_map(|b| {
            let label = slack_plain(&b.text.render(input, Surface::Plain));
            if label.trim().is_empty() {
                return None;
            }
            let url = url::Url::parse(&b.url.render_url(input)?)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))?
                .to_string();
            Some(Link { label, url })
        })
        .collect();
    let mut footer = format!(
        "ingestlayer · from {} · {}",
        input.origin.source, input.event_id
    );
    if let Some(held) = vars.and_then(throttle_note) {
        footer.push_str(" · ");
        footer.push_str(&slack_plain(&held));
    }
    Card {
        title,
        text,
        notes,
        fields,
        buttons,
        footer,
        link: input.full_event_url.map(str::to_owned),
        truncated: false,
    }
}

/// Slack text we built (escaped, with date tokens) as plain text: each date token becomes
/// its UTC fallback, and `&amp;`, `&lt;`, `&gt;` their characters.
fn slack_plain(s: &str) -> String {
    static DATE: LazyLock<Regex> = LazyLock::new(|| {
        #[allow(clippy::unwrap_used)] // a constant pattern, covered by tests
        Regex::new(r"<!date\^[0-9]+\^[^|>]*\|([^>]*)>").unwrap()
    });
    DATE.replace_all(s, "$1")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The fields a message shows, as (label, value) pairs: the template's `fields`, or the
/// event's key fields.
fn field_pairs(template: &Template, input: &RenderInput<'_>) -> Vec<(String, String)> {
    match &template.fields {
        Some(paths) => paths
            .iter()
            .map(|p| {
                let v = lookup(input.context, p)
                    .map(display_value)
                    .unwrap_or_else(|| "–".into());
                (p.join("."), v)
            })
            .collect(),
        None => key_fields(input.context),
    }
}

/// The template's link buttons as Block Kit `button` elements. A button whose label renders
/// empty, or whose URL names a missing value, is not http(s) or is too long, is left out.
fn link_buttons(template: &Template, input: &RenderInput<'_>) -> Vec<Value> {
    template
        .buttons
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let mut ignored = false;
            let text = cut(
                &b.text.render(input, Surface::Plain),
                limits::BUTTON_TEXT,
                &mut ignored,
            );
            if text.trim().is_empty() {
                return None;
            }
            let url = url::Url::parse(&b.url.render_url(input)?)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))?
                .to_string();
            if url.chars().count() > limits::BUTTON_URL {
                return None;
            }
            Some(json!({
                "type": "button",
                "action_id": format!("link_{i}"),
                "text": {"type": "plain_text", "text": text, "emoji": true},
                "url": url,
            }))
        })
        .collect()
}

/// A step variable as an escaped count (`1,204`).
fn count_text(v: &Value) -> String {
    escape(&format::number(v).unwrap_or_else(|| display_value(v)))
}

/// A step variable as escaped text.
fn var_text(step: &Value, key: &str) -> Option<String> {
    step.get(key)
        .filter(|v| !v.is_null())
        .map(|v| escape(&display_value(v)))
}

/// `and 14 more since 10:02`, when a throttle held events back before this one.
fn throttle_note(vars: &Map<String, Value>) -> Option<String> {
    let throttle = vars.get("throttle")?;
    let held = throttle.get("held")?;
    let n = held
        .as_u64()
        .or_else(|| held.as_str().and_then(|s| s.trim().parse().ok()))?;
    if n == 0 {
        return None;
    }
    let mut note = format!("and {} more", count_text(held));
    if let Some(at) = throttle.get("since").and_then(time_of) {
        // Over a window longer than a day, the time alone would not say which day.
        let long = throttle
            .get("window")
            .and_then(Value::as_str)
            .and_then(window_seconds)
            .is_some_and(|s| s > 86_400);
        let style = if long {
            TimeStyle::DateTime
        } else {
            TimeStyle::Time
        };
        note.push_str(&format!(" since {}", time_token(at, style)));
    }
    Some(note)
}

/// `5 events within 10m (first 10:02, last 10:09)`, when a threshold was reached.
fn threshold_line(vars: &Map<String, Value>) -> Option<String> {
    let threshold = vars.get("threshold")?;
    let mut line = match threshold.get("count").filter(|c| !c.is_null()) {
        Some(c) => format!("{} events", count_text(c)),
        None => "Threshold reached".to_owned(),
    };
    if let Some(window) = var_text(threshold, "window") {
        line.push_str(&format!(" within {window}"));
    }
    let times: Vec<String> = ["first", "last"]
        .into_iter()
        .filter_map(|k| {
            let at = threshold.get(k).and_then(time_of)?;
            Some(format!("{k} {}", time_token(at, TimeStyle::Time)))
        })
        .collect();
    if !times.is_empty() {
        line.push_str(&format!(" ({})", times.join(", ")));
    }
    Some(line)
}

/// The header of a heartbeat message: `Missing: nightly-export` or `Back: nightly-export`.
fn heartbeat_header(vars: &Map<String, Value>) -> Option<String> {
    let heartbeat = vars.get("heartbeat")?;
    let key = var_text(heartbeat, "key").unwrap_or_else(|| "–".to_owned());
    Some(match heartbeat.get("status").and_then(Value::as_str) {
        Some("missing") => format!("Missing: {key}"),
        Some("recovered") => format!("Back: {key}"),
        Some(other) => format!("Heartbeat {}: {key}", escape(other)),
        None => format!("Heartbeat: {key}"),
    })
}

/// `Last seen 3 hours ago · expected every 1h (10m grace)`, for a heartbeat message.
fn heartbeat_line(vars: &Map<String, Value>) -> Option<String> {
    let heartbeat = vars.get("heartbeat")?;
    let mut line = match heartbeat.get("last_seen").and_then(time_of) {
        Some(at) => format!("Last seen {}", time_token(at, TimeStyle::Ago)),
        None => "Never seen".to_owned(),
    };
    if let Some(interval) = var_text(heartbeat, "interval") {
        line.push_str(&format!(" · expected every {interval}"));
        if let Some(grace) = var_text(heartbeat, "grace") {
            line.push_str(&format!(" ({grace} grace)"));
        }
    }
    Some(line)
}

/// `30s`, `10m`, `1h`, `7d` in seconds.
fn window_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].trim().parse().ok()?;
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    n.checked_mul(per)
}

/// The default card's fields: each scalar top-level field, then the scalar attributes of
/// attached objects as `object.attribute`, in the event's own order.
fn key_fields(ctx: &Value) -> Vec<(String, String)> {
    let Value::Object(map) = ctx else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut nested: Vec<(&String, &Map<String, Value>)> = Vec::new();
    for (k, v) in map {
        match v {
            Value::Object(inner) => nested.push((k, inner)),
            Value::Null => {}
            other => out.push((k.clone(), display_value(other))),
        }
    }
    for (k, inner) in nested {
        for (ik, iv) in inner {
            if !iv.is_object() && !iv.is_null() {
                out.push((format!("{k}.{ik}"), display_value(iv)));
            }
        }
    }
    out
}

fn lookup<'v>(ctx: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(ctx, |v, seg| v.get(seg.as_str()))
}

fn lookup_map<'v>(map: &'v Map<String, Value>, path: &[String]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    lookup(map.get(first.as_str())?, rest)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::delivery::digest::{digest, DigestItem};

    pub(crate) fn input<'a>(name: &'a str, ctx: &'a Value) -> RenderInput<'a> {
        RenderInput {
            event_name: name,
            event_id: "01TEST",
            origin: Origin {
                source: "web-app",
                webhook: None,
                cloudevent: None,
            },
            context: ctx,
            full_event_url: None,
            vars: None,
        }
    }

    fn all_text(m: &RenderedMessage) -> String {
        serde_json::to_string(&m.blocks).unwrap() + &m.text
    }

    #[test]
    fn a_card_keeps_the_templates_text_its_values_and_its_links_apart_and_raw() {
        let t = template(json!({
            "header": "Usage by $event.user",
            "text": "*$event.user* used <https://app.example/u/$event.user|open $event.user> & <!here>",
            "fields": ["plan"],
            "buttons": [{"text": "Account", "url": "https://app.example/a/$event.user"}]
        }));
        let ctx = json!({"user": "<b>a&b</b>", "plan": "free"});
        let c = card(&t, &input("feature.used", &ctx));
        assert_eq!(c.title, "Usage by <b>a&b</b>", "raw: each platform escapes");
        assert_eq!(
            c.text,
            vec![
                Span::Text { text: "*".into() },
                Span::Value {
                    text: "<b>a&b</b>".into()
                },
                Span::Text {
                    text: "* used ".into()
                },
                Span::Link {
                    url: "https://app.example/u/%3Cb%3Ea%26b%3C%2Fb%3E".into(),
                    label: "open <b>a&b</b>".into()
                },
                Span::Text {
                    text: " & <!here>".into()
                },
            ]
        );
        assert_eq!(
            c.fields,
            vec![Field {
                name: "plan".into(),
                value: "free".into()
            }]
        );
        assert_eq!(c.buttons[0].label, "Account");
        assert!(c.buttons[0].url.starts_with("https://app.example/a/"));
        assert!(!c.buttons[0].url.contains('<'), "{}", c.buttons[0].url);
        assert_eq!(c.footer, "ingestlayer · from web-app · 01TEST");
    }

    #[test]
    fn a_card_states_step_results_as_plain_text_with_utc_times() {
        let ctx = json!({});
        let mut vars = Map::new();
        vars.insert(
            "threshold".into(),
            json!({"count": 5, "window": "10m", "first": 1_700_000_000_000i64}),
        );
        let mut i = input("login.failed", &ctx);
        i.vars = Some(&vars);
        let c = card(&Template::default(), &i);
        assert_eq!(c.notes.len(), 1);
        assert!(
            c.notes[0].starts_with("5 events within 10m"),
            "{}",
            c.notes[0]
        );
        assert!(c.notes[0].contains("UTC"), "{}", c.notes[0]);
        assert!(!c.notes[0].contains("<!date"), "{}", c.notes[0]);
    }

    #[test]
    fn the_default_card_has_a_header_and_the_key_fields() {
        let ctx = json!({"email": "ada@acme.com", "plan": "pro", "source": "marketing-site"});
        let m = render(&Template::default(), &input("user.signed_up", &ctx));
        assert_eq!(m.blocks[0]["type"], "header");
        assert_eq!(m.blocks[0]["text"]["text"], "user.signed_up");
        let fields = m.blocks[1]["fields"].as_array().unwrap();
        assert_eq!(fields[0]["text"], "*email*\nada@acme.com");
        assert_eq!(fields[1]["text"], "*plan*\npro");
        assert_eq!(fields[2]["text"], "*source*\nmarketing-site");
        assert_eq!(
            m.text,
            "user.signed_up: email ada@acme.com, plan pro, source marketing-site"
        );
        assert!(!m.truncated);
    }

    #[test]
    fn enriched_attributes_appear_as_dotted_fields() {
        let ctx = json!({"feature": "csv.export", "user": {"account": "acme", "plan": "pro"}});
        let m = render(&Template::default(), &input("feature.used", &ctx));
        let texts: Vec<_> = m.blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            texts.contains(&"*user.account*\nacme".to_owned()),
            "{texts:?}"
        );
    }

    #[test]
    fn event_values_can_never_mention_or_link() {
        let ctx = json!({"note": "<!channel> <@U123> <https://evil|click> & co"});
        let m = render(&Template::default(), &input("x<!here>", &ctx));
        let all = all_text(&m);
        assert!(
            !all.contains("<!channel>")
                && !all.contains("<@U123>")
                && !all.contains("<https")
                && !all.contains("<!here>")
        );
        assert!(all.contains("&lt;!channel&gt;"));
        assert!(all.contains("&amp; co"));
    }

    /// Every mrkdwn object anywhere in `blocks`.
    fn mrkdwn_objects(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => {
                if m.get("type") == Some(&json!("mrkdwn")) {
                    out.push(v.clone());
                }
                m.values().for_each(|x| mrkdwn_objects(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| mrkdwn_objects(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_mrkdwn_text_object_is_verbatim() {
        let t = Template::from_raw(RawTemplate {
            text: Some("see $event.url in #general".into()),
            ..Default::default()
        })
        .unwrap();
        let ctx = json!({"url": "https://evil.example", "big": "b".repeat(5000)});
        let m = render(
            &t,
            &RenderInput {
                full_event_url: Some("https://x/v1/events/1?sig=a"),
                vars: None,
                ..input("e", &ctx)
            },
        );
        let d = digest(&[DigestItem {
            event_name: "e",
            event_id: "1",
            message: &m,
            link: Some("https://x/l"),
        }]);
        // The message's section text, one field and context; the digest's one section.
        for (blocks, least) in [(&m.blocks, 2), (&d.blocks, 1)] {
            let mut found = Vec::new();
            mrkdwn_objects(&Value::Array(blocks.clone()), &mut found);
            assert!(found.len() >= least, "{blocks:?}");
            for o in found {
                assert_eq!(o["verbatim"], true, "{o}");
            }
            // plain_text takes no verbatim.
            assert!(blocks[0]["text"].get("verbatim").is_none());
        }
    }

    #[test]
    fn a_value_in_a_link_target_is_percent_encoded_and_cannot_change_the_label() {
        let t = Template::from_raw(RawTemplate {
            text: Some(
                "<https://x.example/e/$event.id?v=${event.id}|open $event.label> <$event.url|invoice> <$event.bad|bad> <@$event.user>"
                    .into(),
            ),
            ..Default::default()
        })
        .unwrap();
        let ctx = json!({
            "id": "a|evil label> <!channel",
            "label": "x|y <b>",
            "url": "https://invoice.example/i/1?a=1&b=2|x",
            "bad": "javascript:alert(1)",
            "user": "U1|x> <!here"
        });
        let m = render(&t, &input("e", &ctx));
        let text = m.blocks[1]["text"]["text"].as_str().unwrap();
        assert_eq!(
            text,
            "<https://x.example/e/a%7Cevil%20label%3E%20%3C%21channel?v=a%7Cevil%20label%3E%20%3C%21channel|open x|y &lt;b&gt;> \
             <https://invoice.example/i/1?a=1&amp;b=2%7Cx|invoice> \
             <javascript%3Aalert%281%29|bad> <@U1%7Cx%3E%20%3C%21here>"
        );
    }

    #[test]
    fn templates_see_the_source_and_webhook_and_every_message_names_the_source() {
        let t = Template::from_raw(RawTemplate {
            header: Some("$name via ${source}".into()),
            text: Some(
                "from $source ($webhook.provider, $webhook.missing, ${webhook.source})".into(),
            ),
            ..Default::default()
        })
        .unwrap();
        let webhook = json!({"provider": "stripe", "source": "stripe"});
        let ctx = json!({"source": "forged", "webhook": {"provider": "forged"}});
        let stripe = RenderInput {
            origin: Origin {
                source: "webhook:stripe",
                webhook: webhook.as_object(),
                cloudevent: None,
            },
            ..input("invoice.payment_failed", &ctx)
        };
        let m = render(&t, &stripe);
        assert_eq!(
            m.blocks[0]["text"]["text"],
            "invoice.payment_failed via webhook:stripe"
        );
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "from webhook:stripe (stripe, –, stripe)"
        );
        let context = m.blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert_eq!(context, "ingestlayer · from webhook:stripe · `01TEST`");
        // Sent with an API key: the source is the key's, and there is no webhook context.
        let m = render(&t, &input("invoice.payment_failed", &ctx));
        assert_eq!(m.blocks[1]["text"]["text"], "from web-app (–, –, –)");
        let m = render(&Template::default(), &input("invoice.payment_failed", &ctx));
        let context = m.blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert_eq!(context, "ingestlayer · from web-app · `01TEST`");
    }

    #[test]
    fn templates_substitute_event_fields_escaped() {
        let raw = RawTemplate {
            header: Some("$name for ${event.user.account}".into()),
            text: Some("*$event.user_id* used `$event.feature` ($event.missing)".into()),
            buttons: None,
            fields: Some(vec!["plan".into(), "$event.user.owner".into()]),
        };
        let t = Template::from_raw(raw).unwrap();
        let ctx = json!({"user_id": "u<1>", "feature": "api", "plan": "free", "user": {"account": "acme", "owner": "maria"}});
        let m = render(&t, &input("feature.used", &ctx));
        assert_eq!(m.blocks[0]["text"]["text"], "feature.used for acme");
        assert_eq!(m.blocks[1]["text"]["text"], "*u&lt;1&gt;* used `api` (–)");
        assert_eq!(m.blocks[2]["fields"][1]["text"], "*user.owner*\nmaria");
    }

    #[test]
    fn oversized_events_stay_inside_block_kit_limits() {
        let mut map = Map::new();
        for i in 0..40 {
            map.insert(format!("field_{i}"), json!("x".repeat(5000)));
        }
        map.insert("amp".into(), json!("&".repeat(5000)));
        let ctx = Value::Object(map);
        let long_name = "n".repeat(128);
        let m = render(
            &Template::default(),
            &RenderInput {
                full_event_url: Some("https://x/v1/events/1?sig=a"),
                vars: None,
                ..input(&long_name, &ctx)
            },
        );
        assert!(m.truncated);
        assert!(m.blocks.len() <= limits::BLOCKS);
        assert!(
            m.blocks[0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= limits::HEADER_TEXT
        );
        let fields = m.blocks[1]["fields"].as_array().unwrap();
        assert!(fields.len() <= limits::SECTION_FIELDS);
        for f in fields {
            assert!(f["text"].as_str().unwrap().chars().count() <= limits::FIELD_TEXT);
        }
        assert!(m.text.chars().count() <= limits::FALLBACK_TEXT);
        let ctx_text = m.blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(ctx_text.contains("<https://x/v1/events/1?sig=a|view the full event>"));
    }

    #[test]
    fn a_long_template_text_is_cut_to_the_section_limit() {
        let t = Template::from_raw(RawTemplate {
            text: Some("$event.big".into()),
            ..Default::default()
        })
        .unwrap();
        let ctx = json!({"big": "y".repeat(10_000)});
        let m = render(&t, &input("e", &ctx));
        assert_eq!(
            m.blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            limits::SECTION_TEXT
        );
        assert!(m.truncated);
    }

    fn template(raw: Value) -> Template {
        Template::from_raw(serde_json::from_value(raw).unwrap()).unwrap()
    }

    fn load_error(raw: Value) -> (String, String) {
        Template::from_raw(serde_json::from_value(raw).unwrap()).unwrap_err()
    }

    /// Slack's verdict on the rendered blocks, through the stand-in's validator.
    fn assert_valid(m: &RenderedMessage) {
        if let Err(errors) = slack_standin::blocks::validate(&Value::Array(m.blocks.clone())) {
            panic!(
                "invalid blocks {errors:?}: {}",
                Value::Array(m.blocks.clone())
            );
        }
    }

    fn block<'m>(m: &'m RenderedMessage, kind: &str) -> Vec<&'m Value> {
        m.blocks.iter().filter(|b| b["type"] == kind).collect()
    }

    fn context_text(m: &RenderedMessage) -> &str {
        m.blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap()
    }

    #[test]
    fn formatters_render_money_numbers_times_and_defaults_in_text() {
        let t = template(json!({"text":
            "${event.amount_due | money: event.currency} · ${event.yen | money: JPY} · ${event.count | number} · \
             ${event.created | date} · ${event.created | datetime} · ${event.created | ago} · \
             ${event.plan | default: free} · ${event.missing | number | default: 0}"}));
        let ctx = json!({"amount_due": 4900, "currency": "usd", "yen": 500, "count": 12345,
                         "created": 1_700_000_000, "plan": ""});
        let m = render(&t, &input("invoice.paid", &ctx));
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "$49.00 · ¥500 · 12,345 · <!date^1700000000^{date_short_pretty}|Nov 14, 2023> · \
             <!date^1700000000^{date_short_pretty} {time}|Nov 14, 2023 22:13 UTC> · \
             <!date^1700000000^{ago}|Nov 14, 2023 22:13 UTC> · free · 0"
        );
        assert_valid(&m);
    }

    #[test]
    fn a_value_a_formatter_cannot_read_is_shown_raw_and_escaped() {
        let t = template(json!({
            "header": "${event.amount | money: usd} ${event.when | date}",
            "text": "${event.amount | money: usd} ${event.amount | number} ${event.when | ago} ${event.note | default: <none>}"
        }));
        let ctx = json!({"amount": "a<b>&c", "when": "<!channel>", "note": null});
        let m = render(&t, &input("e", &ctx));
        assert_eq!(
            m.blocks[0]["text"]["text"],
            "a&lt;b&gt;&amp;c &lt;!channel&gt;"
        );
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "a&lt;b&gt;&amp;c a&lt;b&gt;&amp;c &lt;!channel&gt; &lt;none&gt;"
        );
        let all = all_text(&m);
        assert!(!all.contains("<!channel>") && !all.contains("<b>"));
    }

    #[test]
    fn times_are_plain_utc_text_where_slack_shows_no_tokens() {
        let t = template(json!({
            "header": "Paid ${event.at | datetime}",
            "text": "<https://x.example/day/${event.at | date}|on ${event.at | date}> ${event.at | date}"
        }));
        let ctx = json!({"at": "2023-11-14T22:13:20Z"});
        let m = render(&t, &input("e", &ctx));
        assert_eq!(m.blocks[0]["text"]["text"], "Paid Nov 14, 2023 22:13 UTC");
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "<https://x.example/day/Nov%2014%2C%202023|on Nov 14, 2023> \
             <!date^1700000000^{date_short_pretty}|Nov 14, 2023>"
        );
    }

    #[test]
    fn an_unknown_or_malformed_formatter_is_a_load_error_naming_field_and_formatter() {
        let (field, message) = load_error(json!({"text": "${event.amount | upper}"}));
        assert_eq!(field, "text");
        assert!(message.contains("unknown formatter \"upper\""), "{message}");
        assert!(message.contains("${event.amount | upper}"), "{message}");
        let (field, message) = load_error(json!({"header": "${event.amount | money: xyz}"}));
        assert_eq!(field, "header");
        assert!(message.contains("\"xyz\" is not an ISO 4217"), "{message}");
        let (field, message) = load_error(json!({"text": "${event.amount | money}"}));
        assert_eq!(field, "text");
        assert!(message.contains("\"money\" needs a currency"), "{message}");
        let (field, message) = load_error(json!({"text": "${event. | number}"}));
        assert_eq!(field, "text");
        assert!(message.contains("is not a reference"), "{message}");
        let (field, message) = load_error(
            json!({"buttons": [{"text": "${event.x | date: 1}", "url": "https://x.example"}]}),
        );
        assert_eq!(field, "buttons[0].text");
        assert!(message.contains("\"date\" takes no argument"), "{message}");
        // Text that merely looks like a template is left alone.
        let m = render(
            &template(json!({"text": "${foo} costs $5 ${event"})),
            &input("e", &json!({})),
        );
        assert_eq!(m.blocks[1]["text"]["text"], "${foo} costs $5 ${event");
    }

    #[test]
    fn templates_see_cloudevent_attributes_and_step_variables() {
        let t = template(json!({"text":
            "$cloudevent.subject ${cloudevent.source} · $throttle.held held since ${throttle.since | datetime} · \
             ${threshold.count} in $threshold.window, first ${threshold.first | ago} · \
             ${rollup.count | number} (${rollup.distinct} users) · $heartbeat.key · $rollup.missing"}));
        let ce = json!({"source": "/web<app>", "subject": "u1", "type": "feature.used"});
        let vars = json!({
            "throttle": {"held": 14, "since": 1_700_000_000_000i64, "window": "1h"},
            "threshold": {"count": 5, "first": 1_700_000_000_000i64, "last": 1_700_000_540_000i64, "window": "10m"},
            "rollup": {"count": 12345, "distinct": 2, "window": "7d"},
            "heartbeat": {"key": "nightly-export", "status": "missing"}
        });
        let ctx = json!({});
        let m = render(
            &t,
            &RenderInput {
                origin: Origin {
                    source: "web-app",
                    webhook: None,
                    cloudevent: ce.as_object(),
                },
                vars: vars.as_object(),
                ..input("feature.used", &ctx)
            },
        );
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "u1 /web&lt;app&gt; · 14 held since <!date^1700000000^{date_short_pretty} {time}|Nov 14, 2023 22:13 UTC> · \
             5 in 10m, first <!date^1700000000^{ago}|Nov 14, 2023 22:13 UTC> · \
             12,345 (2 users) · nightly-export · –"
        );
        // Without a CloudEvent or step variables, the references render as missing.
        let m = render(&t, &input("feature.used", &ctx));
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "– – · – held since – · – in –, first – · – (– users) · – · –"
        );
    }

    fn with_vars<'a>(ctx: &'a Value, vars: &'a Value) -> RenderInput<'a> {
        RenderInput {
            vars: vars.as_object(),
            ..input("user.login_failed", ctx)
        }
    }

    #[test]
    fn a_throttled_message_says_how_many_were_held_back_since_when() {
        let ctx = json!({"user_id": "u1"});
        let vars = json!({"throttle": {"held": 14, "since": 1_700_000_000_000i64, "window": "1h"}});
        let m = render(&Template::default(), &with_vars(&ctx, &vars));
        assert_eq!(
            context_text(&m),
            "ingestlayer · from web-app · `01TEST` · and 14 more since <!date^1700000000^{time}|22:13 UTC>"
        );
        assert_valid(&m);
        // Over a window longer than a day the date is given too.
        let vars = json!({"throttle": {"held": 1204, "since": 1_700_000_000, "window": "7d"}});
        let m = render(&Template::default(), &with_vars(&ctx, &vars));
        assert!(context_text(&m).ends_with(
            "and 1,204 more since <!date^1700000000^{date_short_pretty} {time}|Nov 14, 2023 22:13 UTC>"
        ));
        // Nothing held: nothing said.
        let vars = json!({"throttle": {"held": 0, "since": null, "window": "1h"}});
        let m = render(&Template::default(), &with_vars(&ctx, &vars));
        assert_eq!(context_text(&m), "ingestlayer · from web-app · `01TEST`");
    }

    #[test]
    fn a_threshold_message_says_how_many_events_within_which_window() {
        let ctx = json!({"user_id": "u1"});
        let vars = json!({"threshold": {"count": 5, "first": 1_700_000_000_000i64, "last": 1_700_000_540_000i64, "window": "10m"}});
        let m = render(&Template::default(), &with_vars(&ctx, &vars));
        assert_eq!(m.blocks[0]["text"]["text"], "user.login_failed");
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "5 events within 10m (first <!date^1700000000^{time}|22:13 UTC>, last <!date^1700000540^{time}|22:22 UTC>)"
        );
        assert_eq!(m.blocks[2]["fields"][0]["text"], "*user_id*\nu1");
        assert_valid(&m);
        // After the template's own text.
        let t = template(json!({"text": "Failed logins for $event.user_id"}));
        let m = render(&t, &with_vars(&ctx, &vars));
        assert_eq!(m.blocks[1]["text"]["text"], "Failed logins for u1");
        assert!(m.blocks[2]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("5 events within 10m"));
    }

    #[test]
    fn a_heartbeat_message_says_which_key_went_missing_or_came_back() {
        let ctx = json!({});
        let missing = json!({"heartbeat": {"key": "nightly-<export>", "status": "missing",
            "last_seen": 1_700_000_000_000i64, "interval": "1h", "grace": "10m"}});
        let m = render(&Template::default(), &with_vars(&ctx, &missing));
        assert_eq!(
            m.blocks[0]["text"]["text"],
            "Missing: nightly-&lt;export&gt;"
        );
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "Last seen <!date^1700000000^{ago}|Nov 14, 2023 22:13 UTC> · expected every 1h (10m grace)"
        );
        assert_eq!(m.text, "Missing: nightly-&lt;export&gt;");
        assert_valid(&m);
        let never = json!({"heartbeat": {"key": "backup", "status": "missing", "interval": "1d", "grace": "1h"}});
        let m = render(&Template::default(), &with_vars(&ctx, &never));
        assert_eq!(
            m.blocks[1]["text"]["text"],
            "Never seen · expected every 1d (1h grace)"
        );
        let back = json!({"heartbeat": {"key": "backup", "status": "recovered", "last_seen": 1_700_000_000, "interval": "1h", "grace": "10m"}});
        let m = render(&Template::default(), &with_vars(&ctx, &back));
        assert_eq!(m.blocks[0]["text"]["text"], "Back: backup");
        // The template's header wins.
        let t = template(json!({"header": "Cron $heartbeat.key is ${heartbeat.status}"}));
        let m = render(&t, &with_vars(&ctx, &back));
        assert_eq!(m.blocks[0]["text"]["text"], "Cron backup is recovered");
        assert_eq!(m.text, "user.login_failed");
    }

    #[test]
    fn link_buttons_come_before_the_context_with_encoded_values() {
        let t = template(json!({"buttons": [
            {"text": "Open ${event.customer} in Stripe", "url": "https://dashboard.stripe.com/customers/${event.customer}?q=$event.q"},
            {"text": "Invoice", "url": "$event.invoice_url"},
            {"text": "Bad", "url": "${event.bad}"},
            {"text": "Missing", "url": "https://x.example/${event.missing}"},
            {"text": "Docs", "url": "https://docs.example/a b"}
        ]}));
        let ctx = json!({"customer": "cus_1/../x <&>", "q": "a&b=c|d",
            "invoice_url": "https://invoice.example/i/1?a=1&b=2", "bad": "javascript:alert(1)"});
        let m = render(&t, &input("invoice.paid", &ctx));
        let actions = block(&m, "actions");
        assert_eq!(actions.len(), 1);
        assert_eq!(m.blocks[m.blocks.len() - 2]["type"], "actions");
        let buttons = actions[0]["elements"].as_array().unwrap();
        assert_eq!(
            buttons[0],
            json!({"type": "button", "action_id": "link_0",
                "text": {"type": "plain_text", "text": "Open cus_1/../x &lt;&amp;&gt; in Stripe", "emoji": true},
                "url": "https://dashboard.stripe.com/customers/cus_1%2F..%2Fx%20%3C%26%3E?q=a%26b%3Dc%7Cd"})
        );
        assert_eq!(buttons[1]["url"], "https://invoice.example/i/1?a=1&b=2");
        assert_eq!(buttons[1]["action_id"], "link_1");
        // `javascript:` and a missing value leave their buttons out.
        assert_eq!(buttons[2]["action_id"], "link_4");
        assert_eq!(buttons[2]["url"], "https://docs.example/a%20b");
        assert_eq!(buttons.len(), 3);
        assert_valid(&m);
    }

    #[test]
    fn buttons_stay_inside_slacks_limits() {
        let t = template(json!({"fields": [], "buttons": [
            {"text": "$event.label", "url": "https://x.example/$event.long"},
            {"text": "$event.empty", "url": "https://x.example/"},
            {"text": "Short", "url": "https://x.example/${event.short}"}
        ]}));
        let ctx =
            json!({"label": "é".repeat(200), "long": "y".repeat(3000), "empty": "", "short": "ok"});
        let m = render(&t, &input("e", &ctx));
        let buttons = block(&m, "actions")[0]["elements"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(buttons.len(), 1, "{buttons:?}");
        assert_eq!(buttons[0]["url"], "https://x.example/ok");
        // Only the label was cut: the message is not truncated for it.
        let ctx = json!({"label": "&".repeat(100), "long": "y", "empty": "e", "short": "ok"});
        let m = render(&t, &input("e", &ctx));
        let buttons = block(&m, "actions")[0]["elements"]
            .as_array()
            .unwrap()
            .clone();
        let label = buttons[0]["text"]["text"].as_str().unwrap();
        assert!(
            label.chars().count() <= limits::BUTTON_TEXT && label.ends_with("&amp;…"),
            "{label}"
        );
        assert!(!m.truncated);
        assert_valid(&m);
    }

    #[test]
    fn button_templates_are_checked_when_the_pipeline_loads() {
        let six: Vec<Value> = (0..6)
            .map(|i| json!({"text": format!("b{i}"), "url": "https://x.example"}))
            .collect();
        let (field, message) = load_error(json!({"buttons": six}));
        assert_eq!(field, "buttons");
        assert!(message.contains("at most 5"), "{message}");
        let (field, message) = load_error(
            json!({"buttons": [{"text": "a", "url": "https://x.example"}, {"text": "b", "url": "ftp://x.example/$event.id"}]}),
        );
        assert_eq!(field, "buttons[1].url");
        assert!(message.contains("not an http(s) URL"), "{message}");
        let (field, _) = load_error(json!({"buttons": [{"text": "a", "url": "not a url"}]}));
        assert_eq!(field, "buttons[0].url");
        let (field, _) =
            load_error(json!({"buttons": [{"text": " ", "url": "https://x.example"}]}));
        assert_eq!(field, "buttons[0].text");
        let (field, message) = load_error(
            json!({"buttons": [{"text": "a", "url": "https://x.example/${event.id | nope}"}]}),
        );
        assert_eq!(field, "buttons[0].url");
        assert!(message.contains("unknown formatter \"nope\""), "{message}");
        assert!(serde_json::from_value::<RawTemplate>(
            json!({"buttons": [{"text": "a", "url": "https://x", "style": "primary"}]})
        )
        .is_err());
    }

    fn mute() -> Value {
        json!({"type": "button", "action_id": "mute", "value": "acme|7d",
            "text": {"type": "plain_text", "text": "Mute this account for 7 days"}})
    }

    #[test]
    fn add_button_creates_the_actions_block_before_the_context() {
        let mut m = render(&Template::default(), &input("e", &json!({"a": 1})));
        assert!(crate::slack::block_kit::add_button(&mut m, mute()));
        let n = m.blocks.len();
        assert_eq!(m.blocks[n - 2]["type"], "actions");
        assert_eq!(m.blocks[n - 2]["elements"][0]["action_id"], "mute");
        assert_eq!(m.blocks[n - 1]["type"], "context");
        assert_valid(&m);
        // The same action_id again is refused.
        assert!(!crate::slack::block_kit::add_button(&mut m, mute()));
        assert_eq!(m.blocks[n - 2]["elements"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn add_button_joins_the_template_buttons_within_slacks_limits() {
        use crate::slack::block_kit::add_button;
        let t = template(json!({"buttons": [{"text": "Open", "url": "https://x.example"}]}));
        let mut m = render(&t, &input("e", &json!({})));
        let long_label = json!({"type": "button", "action_id": "x",
            "text": {"type": "plain_text", "text": "m".repeat(100)}, "style": "danger"});
        assert!(add_button(&mut m, long_label));
        assert!(add_button(&mut m, mute()));
        let actions = block(&m, "actions");
        assert_eq!(actions.len(), 1);
        let elements = actions[0]["elements"].as_array().unwrap();
        assert_eq!(elements.len(), 3);
        assert_eq!(
            elements[1]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            75
        );
        assert_valid(&m);
        // Refused: a link id already taken, a bad style, an oversized value, not a button.
        let mut taken = mute();
        taken["action_id"] = json!("link_0");
        assert!(!add_button(&mut m, taken));
        let mut styled = mute();
        styled["action_id"] = json!("s");
        styled["style"] = json!("default");
        assert!(!add_button(&mut m, styled));
        let mut big = mute();
        big["action_id"] = json!("v");
        big["value"] = json!("v".repeat(2001));
        assert!(!add_button(&mut m, big));
        assert!(!add_button(&mut m, json!({"type": "image"})));
        // At most 25 elements.
        for i in 3..25 {
            let mut b = mute();
            b["action_id"] = json!(format!("b{i}"));
            assert!(add_button(&mut m, b), "{i}");
        }
        let mut one_more = mute();
        one_more["action_id"] = json!("b25");
        assert!(!add_button(&mut m, one_more));
        assert_eq!(
            block(&m, "actions")[0]["elements"]
                .as_array()
                .unwrap()
                .len(),
            25
        );
        assert_valid(&m);
        // No room for another block.
        let mut full = RenderedMessage {
            text: "t".into(),
            blocks: vec![json!({"type": "divider"}); limits::BLOCKS],
            truncated: false,
        };
        assert!(!add_button(&mut full, mute()));
        assert_eq!(full.blocks.len(), limits::BLOCKS);
    }

    #[test]
    fn every_rendered_card_is_valid_block_kit() {
        let t = template(json!({
            "header": "${event.title | default: Untitled} for ${event.amount | money: event.currency}",
            "text": "<$event.url|${event.at | date}> $event.big",
            "fields": ["email", "user.account"],
            "buttons": [{"text": "$event.big", "url": "$event.url"}]
        }));
        let ctx = json!({"title": "t".repeat(400), "amount": 4900, "currency": "EUR",
            "url": "https://x.example/a?b=c", "at": 1_700_000_000, "big": "<&>".repeat(2000),
            "email": "a@b.c", "user": {"account": "acme"}});
        let vars = json!({
            "throttle": {"held": 3, "since": 1_700_000_000},
            "threshold": {"count": 5, "first": 1_700_000_000, "last": 1_700_000_060, "window": "10m"},
            "heartbeat": {"key": "k", "status": "missing", "interval": "1h", "grace": "10m"}
        });
        let m = render(
            &t,
            &RenderInput {
                full_event_url: Some("https://x/v1/events/1?sig=a"),
                ..with_vars(&ctx, &vars)
            },
        );
        assert!(m.truncated);
        assert_valid(&m);
        let m = render(&Template::default(), &with_vars(&ctx, &vars));
        assert_valid(&m);
    }

    #[test]
    fn a_pipeline_with_a_bad_template_is_refused_naming_the_destination_field() {
        use crate::routing::pipelines::Pipeline;
        let doc = |template: Value| {
            json!({"id": "p", "events": ["invoice.paid"],
                "destinations": [{"type": "slack", "channel": "#billing", "template": template}]})
        };
        let e = Pipeline::from_json(&doc(json!({"text": "${event.amount | cents}"}))).unwrap_err();
        assert_eq!(e.field, "destinations[0].template.text");
        assert!(
            e.message.contains("unknown formatter \"cents\""),
            "{}",
            e.message
        );
        let six = vec![json!({"text": "b", "url": "https://x.example"}); 6];
        let e = Pipeline::from_json(&doc(json!({"buttons": six}))).unwrap_err();
        assert_eq!(e.field, "destinations[0].template.buttons");
        let ok = doc(json!({
            "text": "${event.amount | money: event.currency} ${event.created | ago}",
            "buttons": [{"text": "Open", "url": "https://dashboard.stripe.com/invoices/${event.id}"}]
        }));
        assert!(Pipeline::from_json(&ok).unwrap().is_some());
    }
}
