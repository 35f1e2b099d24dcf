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
//! event: `webhook:stripe`, or an API key's source name) and `$webhook.*` (a verified
//! webhook's context: `$webhook.provider`, `$webhook.source`, `$webhook.delivery_id`, …).
//! Every message's context line names the source.

use std::sync::LazyLock;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use regex::Regex;
use serde_json::{json, Map, Value};

use crate::event::Origin;
use crate::slack::block_kit::{cut, cut_escaped, escape, limits, mrkdwn, RenderedMessage};

/// Longest value shown in one field, so a card stays readable.
const FIELD_VALUE_CHARS: usize = 300;

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern, covered by tests
    Regex::new(
        r"\$\{(event|webhook)((?:\.[A-Za-z0-9_-]+)+)\}|\$(event|webhook)((?:\.[A-Za-z0-9_-]+)+)|\$\{(name|source)\}|\$(name|source)\b",
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
    /// Text or a link's label: the value is escaped.
    Text,
    /// The very start of a link's target (`<$event.url|…>`): an http(s) URL value is kept as
    /// a URL, anything else is encoded as a part.
    TargetStart,
    /// Inside a link's target after its start: the value is percent-encoded as a part.
    Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reference {
    Event(Vec<String>),
    Webhook(Vec<String>),
    Name,
    Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Ref(Reference, Place),
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateText(Vec<Piece>);

impl TemplateText {
    /// Parses `$event.a.b`, `${event.a.b}`, `$webhook.a`, `$name` and `$source` references,
    /// noting for each whether it stands in a link's target (`<…|` or `<…>`).
    pub fn parse(s: &str) -> Self {
        let mut pieces = Vec::new();
        let mut last = 0;
        let mut place = Place::Text;
        let advance = |text: &str, place: &mut Place| {
            for c in text.chars() {
                *place = match (*place, c) {
                    (Place::Text, '<') => Place::TargetStart,
                    (Place::TargetStart | Place::Target, '|' | '>') => Place::Text,
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
            let path = |i: usize| -> Vec<String> {
                caps.get(i)
                    .map(|m| {
                        m.as_str()
                            .trim_start_matches('.')
                            .split('.')
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let kind = caps
                .get(1)
                .map(|k| (k.as_str(), path(2)))
                .or_else(|| caps.get(3).map(|k| (k.as_str(), path(4))))
                .or_else(|| caps.get(5).map(|k| (k.as_str(), Vec::new())))
                .or_else(|| caps.get(6).map(|k| (k.as_str(), Vec::new())));
            let value = match kind {
                Some(("event", p)) => Reference::Event(p),
                Some(("webhook", p)) => Reference::Webhook(p),
                Some(("source", _)) => Reference::Source,
                _ => Reference::Name,
            };
            pieces.push(Piece::Ref(value, place));
            // A reference is part of the target: what follows it is no longer its start.
            if place == Place::TargetStart {
                place = Place::Target;
            }
            last = whole.end();
        }
        if last < s.len() {
            pieces.push(Piece::Text(s[last..].to_owned()));
        }
        Self(pieces)
    }

    /// Renders with every substituted value escaped (percent-encoded in a link's target); a
    /// missing field renders as `–`.
    fn render(&self, input: &RenderInput<'_>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            let (value, place) = match p {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::Ref(value, place) => (value, *place),
            };
            let text = match value {
                Reference::Name => Some(input.event_name.to_owned()),
                Reference::Source => Some(input.origin.source.to_owned()),
                Reference::Event(path) => lookup(input.context, path).map(display_value),
                Reference::Webhook(path) => input
                    .origin
                    .webhook
                    .and_then(|w| lookup_map(w, path))
                    .map(display_value),
            };
            match text {
                Some(t) => out.push_str(&in_place(&t, place)),
                None => out.push('–'),
            }
        }
        out
    }
}

/// `value` made safe for where it stands.
fn in_place(value: &str, place: Place) -> String {
    match place {
        Place::Text => escape(value),
        Place::TargetStart if is_web_url(value) => {
            escape(&utf8_percent_encode(value, URL_WHOLE).to_string())
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
}

/// A destination's message template. Empty parts fall back to the default card: a header
/// with the event name and a section of the event's key fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    header: Option<TemplateText>,
    text: Option<TemplateText>,
    fields: Option<Vec<Vec<String>>>,
}

impl Template {
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
        Ok(Self {
            header: raw.header.as_deref().map(TemplateText::parse),
            text: raw.text.as_deref().map(TemplateText::parse),
            fields,
        })
    }
}

/// What a message is rendered from.
pub struct RenderInput<'a> {
    pub event_name: &'a str,
    pub event_id: &'a str,
    /// Who sent the event (`$source`, `$webhook`); the message names the source.
    pub origin: Origin<'a>,
    /// The event's fields plus attached entities.
    pub context: &'a Value,
    /// A link to the full stored event, shown when something was truncated.
    pub full_event_url: Option<&'a str>,
    /// What the pipeline's steps worked out for this event, by step kind (`throttle`,
    /// `threshold`, `rollup`, `heartbeat`): `$throttle.held`, `$rollup.count`, …
    pub vars: Option<&'a Map<String, Value>>,
}

/// Renders `input` with `template` into Block Kit within Slack's limits.
pub fn render(template: &Template, input: &RenderInput<'_>) -> RenderedMessage {
    let mut truncated = false;
    let mut blocks = Vec::new();

    let header_raw = match &template.header {
        Some(t) => t.render(input),
        None => escape(input.event_name),
    };
    let header = cut(&header_raw, limits::HEADER_TEXT, &mut truncated);
    blocks.push(
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
    );

    if let Some(text) = &template.text {
        let body = cut(&text.render(input), limits::SECTION_TEXT, &mut truncated);
        if !body.trim().is_empty() {
            blocks.push(json!({"type": "section", "text": mrkdwn(body)}));
        }
    }

    let pairs: Vec<(String, String)> = match &template.fields {
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
    };
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

    let mut context = format!(
        "ingestlayer · from {} · `{}`",
        escape(input.origin.source),
        escape(input.event_id)
    );
    if truncated {
        match input.full_event_url {
            Some(url) => context.push_str(&format!(" · truncated: <{url}|view the full event>")),
            None => context.push_str(" · truncated: the full event is stored under this id"),
        }
    }
    let context = cut(&context, limits::CONTEXT_TEXT, &mut truncated);
    blocks.push(json!({"type": "context", "elements": [mrkdwn(context)]}));
    blocks.truncate(limits::BLOCKS);

    let mut fallback = escape(input.event_name);
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

fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
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
        for blocks in [&m.blocks, &d.blocks] {
            let mut found = Vec::new();
            mrkdwn_objects(&Value::Array(blocks.clone()), &mut found);
            // section text, one field, context: and the digest's section and context.
            assert!(found.len() >= 2, "{blocks:?}");
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
}
