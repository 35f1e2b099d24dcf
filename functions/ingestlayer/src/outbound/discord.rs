//! Discord as a destination: each message is one embed posted with Execute Webhook
//! (<https://discord.com/developers/docs/resources/webhook#execute-webhook>) to the webhook
//! whose URL the destination's secret holds ([`WebhookUrl`]).
//!
//! - **Within Discord's limits** ([`render`]): title 256, description 4,096, 25 fields of
//!   256 (name) and 1,024 (value), footer 2,048, and 6,000 characters in all
//!   (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
//!   Characters are Unicode scalar values, counted untrimmed (Discord trims before counting,
//!   so this is the stricter reading). When something has to be cut, the embed links the
//!   full stored event (its title and a "View the full event" line) or, without a link, says
//!   the event is stored under the id in its footer.
//! - **Values are shown, never interpreted**: an event's values are escaped for Discord's
//!   markdown (a value cannot make a masked link, a heading or a mention), and every message
//!   carries `allowed_mentions: {"parse": []}`, so nothing in it pings anyone. The message
//!   has no `content` (the one part of a message whose mentions Discord parses): the embed
//!   carries everything. Bare `http(s)` URLs in values stay clickable.
//! - **Answers classified** ([`classify`]): a 429's fractional `retry_after` is honoured to
//!   the millisecond, `X-RateLimit-Remaining: 0` holds the webhook until its bucket resets,
//!   a deleted webhook or a wrong token pauses the target with what to do.
//! - **The token never leaves the request**: it is a path segment of the URL, so the URL is
//!   stripped from transport errors and never logged; `WebhookUrl`'s `Debug` redacts it.

use std::time::Duration;

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use super::card::{cut_to, Card, Span, Unit};
use super::{retry_after, transport, Verdict, MAX_RETRY_AFTER};

/// Discord's API base; config's `DISCORD_API_URL` overrides it (the stand-in, `make dev`).
pub use crate::config::DEFAULT_DISCORD_API_URL as DEFAULT_API_URL;

/// The pace per webhook: Discord answers webhooks with buckets of 5 requests per 2 seconds.
pub const MIN_INTERVAL: Duration = Duration::from_millis(400);

pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 2048;
/// Title, description, field names and values, footer text: all embeds of a message together.
pub const MAX_EMBED_TOTAL: usize = 6000;

/// Added to the footer when an earlier attempt may already have posted the message.
pub const RESENT_NOTE: &str = "(sent again after an unconfirmed attempt)";

/// What a pause for a deleted webhook or a wrong token asks of the user.
const HOOK_HINT: &str = "the webhook was deleted or its token is wrong: create a webhook in the \
                         channel's Integrations settings and store its URL in the destination's \
                         secret";

/// The hosts Discord's "Copy Webhook URL" gives, on the stable, canary and PTB clients.
const HOSTS: [&str; 6] = [
    "discord.com",
    "discordapp.com",
    "canary.discord.com",
    "ptb.discord.com",
    "canary.discordapp.com",
    "ptb.discordapp.com",
];

/// A webhook to execute: its id and its token, from the URL a user copies from Discord
/// (`https://discord.com/api/webhooks/{id}/{token}`). `Debug` leaves the token out.
#[derive(Clone)]
pub struct WebhookUrl {
    id: String,
    token: SecretString,
}

impl WebhookUrl {
    /// Reads a webhook URL as Discord gives it: `https://` on discord.com or discordapp.com
    /// (or their `canary.` and `ptb.` hosts), `/api/webhooks/{id}/{token}`, optionally with
    /// an API version (`/api/v10/webhooks/…`) and a trailing `/`. The error says what is
    /// wrong and never repeats the token.
    pub fn parse(s: &str) -> Result<Self, String> {
        const SHAPE: &str = "a Discord webhook URL looks like \
                             https://discord.com/api/webhooks/<id>/<token> (Copy Webhook URL in \
                             the channel's Integrations settings)";
        let url =
            url::Url::parse(s.trim()).map_err(|_| format!("the secret is not a URL: {SHAPE}"))?;
        if url.scheme() != "https" {
            return Err(format!("the webhook URL must start with https://: {SHAPE}"));
        }
        let host = url.host_str().unwrap_or_default();
        if !HOSTS.contains(&host) {
            return Err(format!(
                "the webhook URL's host is {host:?}, not discord.com: {SHAPE}"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
            return Err(format!(
                "the webhook URL has a user, password or port, which Discord's never has: {SHAPE}"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "the webhook URL must end with its token, without `?…` or `#…` (posting into a \
                 thread is not supported): {SHAPE}"
            ));
        }
        let mut segments: Vec<&str> = url
            .path_segments()
            .map(Iterator::collect)
            .unwrap_or_default();
        if segments.last() == Some(&"") {
            segments.pop();
        }
        let rest = match segments.as_slice() {
            ["api", "webhooks", rest @ ..] => rest,
            ["api", version, "webhooks", rest @ ..] if is_version(version) => rest,
            _ => {
                return Err(format!(
                    "the webhook URL's path must be /api/webhooks/<id>/<token>: {SHAPE}"
                ))
            }
        };
        let [id, token] = rest else {
            return Err(format!(
                "the webhook URL must end with /webhooks/<id>/<token>: {SHAPE}"
            ));
        };
        if !is_snowflake(id) {
            return Err(format!(
                "the part after /webhooks/ must be the webhook's id, a number: {SHAPE}"
            ));
        }
        let token_ok = !token.is_empty()
            && token.len() <= 200
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token_ok {
            return Err(format!(
                "the webhook URL's token (its last part) has characters a Discord token never \
                 has: {SHAPE}"
            ));
        }
        Ok(Self {
            id: (*id).to_owned(),
            token: SecretString::from(*token),
        })
    }

    /// The webhook's id (a snowflake): not secret, fit for logs.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookUrl")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .finish()
    }
}

fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok()
}

// ---------------------------------------------------------------------------------------
// Rendering

/// Markdown made of pieces a cut may fall between but never inside: a backslash and the
/// character it escapes, a whole masked link. Lengths are Discord's characters.
#[derive(Debug, Clone, Default)]
struct Pieces {
    text: String,
    /// After each piece: its end in bytes and the characters up to there.
    ends: Vec<(usize, usize)>,
}

impl Pieces {
    fn len(&self) -> usize {
        self.ends.last().map_or(0, |e| e.1)
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// One piece, kept whole.
    fn push(&mut self, piece: &str) {
        if piece.is_empty() {
            return;
        }
        let chars = self.len() + piece.chars().count();
        self.text.push_str(piece);
        self.ends.push((self.text.len(), chars));
    }

    /// Text as written: each character a piece.
    fn push_raw(&mut self, s: &str) {
        let mut buf = [0u8; 4];
        for c in s.chars() {
            self.push(c.encode_utf8(&mut buf));
        }
    }

    fn append(&mut self, other: &Pieces) {
        let (bytes, chars) = (self.text.len(), self.len());
        self.text.push_str(&other.text);
        self.ends
            .extend(other.ends.iter().map(|(b, c)| (b + bytes, c + chars)));
    }

    /// The whole when it has at most `max` characters; else the longest run of whole pieces
    /// that leaves room for `…`, and `…`. The flag says whether it was cut.
    fn cut(&self, max: usize) -> (String, bool) {
        if self.len() <= max {
            return (self.text.clone(), false);
        }
        if max == 0 {
            return (String::new(), true);
        }
        let end = self
            .ends
            .iter()
            .take_while(|(_, chars)| *chars < max)
            .last()
            .map_or(0, |(bytes, _)| *bytes);
        let mut out = self.text[..end].to_owned();
        out.push('…');
        (out, true)
    }
}

/// The characters that start or end markdown in Discord; a backslash before any of them
/// shows it as itself. `<` also starts mentions (`<@id>`, `<@&id>`, `<#id>`), custom emoji
/// and timestamps.
const MARKDOWN: &[char] = &[
    '\\', '*', '_', '~', '`', '|', '>', '<', '#', '-', '[', ']', '(', ')',
];

/// Characters a URL may keep when it stays a bare, clickable URL: Discord's URL rule takes
/// the whole token, so none of them can start markdown in it. Brackets, parentheses, `<`,
/// `>`, `|`, quotes and backslashes are not among them (they could close or open a link).
fn url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#@!$&'*+,;=%".contains(c)
}

fn is_bare_url(token: &str) -> bool {
    let lower = token.get(..8).unwrap_or(token).to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && token.len() > 8
        && token.chars().all(url_safe)
}

/// An event's value as literal text. With `keep_urls`, a whitespace-separated token that is
/// a plain http(s) URL is left as it is, so Discord still links it.
fn escaped(s: &str, keep_urls: bool) -> Pieces {
    let mut out = Pieces::default();
    let mut rest = s;
    while !rest.is_empty() {
        let word_at = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        out.push_raw(&rest[..word_at]);
        rest = &rest[word_at..];
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..word_end];
        rest = &rest[word_end..];
        if keep_urls && is_bare_url(word) {
            out.push_raw(word);
        } else {
            escape_word(&mut out, word);
        }
    }
    out
}

fn escape_word(out: &mut Pieces, word: &str) {
    let mut buf = [0u8; 4];
    for (i, c) in word.char_indices() {
        let after = &word[i + c.len_utf8()..];
        // `12.` (a word of digits and a dot) would start a numbered list.
        let list_number =
            c == '.' && after.is_empty() && i > 0 && word[..i].bytes().all(|b| b.is_ascii_digit());
        if MARKDOWN.contains(&c) || list_number {
            out.push(&format!("\\{c}"));
        } else if c == '@' && mentions_everyone(after) {
            // A zero-width space after `@` is how Discord's own libraries defuse it.
            out.push("@\u{200b}");
        } else {
            out.push(c.encode_utf8(&mut buf));
        }
    }
}

fn mentions_everyone(after_at: &str) -> bool {
    let lower = after_at.get(..8).unwrap_or(after_at).to_ascii_lowercase();
    lower.starts_with("everyone") || lower.starts_with("here")
}

/// A URL as the target of a masked link: what would end the link early is percent-encoded.
fn link_target(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            c if c.is_whitespace() => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

/// `[label](url)`, the label escaped, as one piece; a blank label shows the URL itself.
fn masked_link(label: &str, url: &str) -> String {
    if label.trim().is_empty() {
        return link_target(url);
    }
    format!("[{}]({})", escaped(label, false).text, link_target(url))
}

/// The card's text (template text as written, values escaped, links masked) and its notes.
fn body(card: &Card) -> Pieces {
    let mut out = Pieces::default();
    for span in &card.text {
        match span {
            Span::Text { text } => out.push_raw(text),
            Span::Value { text } => out.append(&escaped(text, true)),
            Span::Link { url, label } => out.push(&masked_link(label, url)),
        }
    }
    if !card.notes.is_empty() && !out.is_empty() {
        out.push_raw("\n\n");
    }
    for (i, note) in card.notes.iter().enumerate() {
        if i > 0 {
            out.push_raw("\n");
        }
        out.append(&escaped(note, true));
    }
    out
}

/// What a cut embed adds to its description.
fn notice(card: &Card) -> String {
    match &card.link {
        Some(link) => masked_link("View the full event", link),
        None => "Not everything fits here: the full event is stored under its id, in the \
                 footer."
            .to_owned(),
    }
}

/// The footer as plain text (Discord shows no markdown there), with the resend note kept
/// whole when the footer is cut.
fn footer(card: &Card, resent: bool) -> (String, bool) {
    let note = if resent { RESENT_NOTE } else { "" };
    let sep = if resent && !card.footer.is_empty() {
        " "
    } else {
        ""
    };
    let room = MAX_FOOTER - note.chars().count() - sep.len();
    let (text, cut) = cut_to(&card.footer, room, Unit::Chars);
    (format!("{text}{sep}{note}"), cut)
}

/// A field's name or value: Discord refuses an empty one, so a blank shows as a
/// zero-width space (not whitespace to Discord, and invisible).
fn nonblank(p: Pieces) -> Pieces {
    if p.text.trim().is_empty() {
        let mut blank = Pieces::default();
        blank.push("\u{200b}");
        blank
    } else {
        p
    }
}

struct Layout {
    embed: Map<String, Value>,
    cut: bool,
}

/// The Execute Webhook body for a card: one embed within every limit, with
/// `allowed_mentions: {"parse": []}`. `resent`: an earlier attempt may have posted it
/// already (a timeout, a 5xx), which the footer then says.
pub fn render(card: &Card, resent: bool) -> Value {
    let first = layout(card, resent, None);
    let embed = if first.cut || card.truncated {
        let mut cut = layout(card, resent, Some(notice(card)));
        if let Some(link) = &card.link {
            cut.embed.insert("url".into(), json!(link));
        }
        cut.embed
    } else {
        first.embed
    };
    json!({"embeds": [embed], "allowed_mentions": {"parse": []}})
}

/// The embed, with `notice` at the end of the description when given.
fn layout(card: &Card, resent: bool, notice: Option<String>) -> Layout {
    let mut cut = false;
    let mut embed = Map::new();

    let (title, title_cut) = escaped(&card.title, false).cut(MAX_TITLE);
    let (footer, footer_cut) = footer(card, resent);
    cut |= title_cut || footer_cut;
    let budget = MAX_EMBED_TOTAL - title.chars().count() - footer.chars().count();

    // The description's parts: the body may be cut, the buttons and the notice stay whole.
    let body = body(card);
    let buttons: Vec<String> = card
        .buttons
        .iter()
        .map(|b| masked_link(&b.label, &b.url))
        .collect();
    let mut tail: Vec<String> = Vec::new();
    if !buttons.is_empty() {
        tail.push(buttons.join(" · "));
    }
    tail.extend(notice);
    let description_need = {
        let tail_len: usize = tail.iter().map(|t| t.chars().count() + 2).sum();
        (body.len() + tail_len).min(MAX_DESCRIPTION)
    };

    let fields: Vec<(String, String)> = card
        .fields
        .iter()
        .take(MAX_FIELDS)
        .map(|f| {
            let (name, a) = nonblank(escaped(&f.name, false)).cut(MAX_FIELD_NAME);
            let (value, b) = nonblank(escaped(&f.value, true)).cut(MAX_FIELD_VALUE);
            cut |= a || b;
            (name, value)
        })
        .collect();
    cut |= card.fields.len() > MAX_FIELDS;
    let fields_need: usize = fields
        .iter()
        .map(|(n, v)| n.chars().count() + v.chars().count())
        .sum();

    let (_, fields_budget) = crate::outbound::share(budget, description_need, fields_need);
    let mut placed = Vec::new();
    let mut used = 0;
    for (i, (name, value)) in fields.iter().enumerate() {
        let (n, v) = (name.chars().count(), value.chars().count());
        if used + n + v <= fields_budget {
            used += n + v;
            placed.push(json!({"name": name, "value": value, "inline": true}));
            continue;
        }
        cut = true;
        // The last field that fits in part, if a useful part of its value does.
        let room = fields_budget.saturating_sub(used + n);
        if room >= 16 {
            let value = &card.fields[i].value;
            let (value, _) = nonblank(escaped(value, true)).cut(room.min(MAX_FIELD_VALUE));
            used += n + value.chars().count();
            placed.push(json!({"name": name, "value": value, "inline": true}));
        }
        break;
    }

    let description_budget = MAX_DESCRIPTION.min(budget - used);
    let (description, description_cut) = description(&body, &tail, description_budget);
    cut |= description_cut;

    if !title.is_empty() {
        embed.insert("title".into(), json!(title));
    }
    if !description.is_empty() {
        embed.insert("description".into(), json!(description));
    }
    if !placed.is_empty() {
        embed.insert("fields".into(), Value::Array(placed));
    }
    if !footer.is_empty() {
        embed.insert("footer".into(), json!({"text": footer}));
    }
    Layout { embed, cut }
}

/// The body, then each part of the tail, blank lines between, in at most `max` characters:
/// the body is cut first, then the tail's parts are dropped from the front (the notice,
/// last, goes last).
fn description(body: &Pieces, tail: &[String], max: usize) -> (String, bool) {
    let join = |text: &str, tail: &[&str]| {
        let mut parts: Vec<&str> = Vec::new();
        if !text.is_empty() {
            parts.push(text);
        }
        parts.extend(tail);
        parts.join("\n\n")
    };
    let mut tail: Vec<&str> = tail.iter().map(String::as_str).collect();
    let mut dropped = false;
    loop {
        let parts: usize = tail.iter().map(|t| t.chars().count()).sum();
        // With a body, a blank line before each part of the tail; without, between them.
        let with_body = parts + 2 * tail.len();
        if body.is_empty() && with_body.saturating_sub(2) <= max {
            return (join("", &tail), dropped);
        }
        if !body.is_empty() && with_body <= max {
            let (text, cut) = body.cut(max - with_body);
            return (join(&text, &tail), cut || dropped);
        }
        if tail.is_empty() {
            return (String::new(), true);
        }
        tail.remove(0);
        dropped = true;
    }
}

// ---------------------------------------------------------------------------------------
// Sending

/// Executes webhooks: one HTTP client that follows no redirects.
pub struct Discord {
    client: reqwest::Client,
    base: String,
}

impl Discord {
    /// `base` is [`DEFAULT_API_URL`] or the stand-in's; `timeout` bounds each request.
    pub fn new(base: &str, timeout: Duration) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // Discord asks HTTP API clients for `DiscordBot ($url, $version)`.
            .user_agent(concat!(
                "DiscordBot (ingestlayer, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Posts `body` ([`render`]'s) to the webhook with `?wait=true`, so Discord answers with
    /// the message it created, and says what the answer means (`now`: seconds since the
    /// epoch, for a dated Retry-After).
    #[tracing::instrument(skip_all, fields(webhook_id = %hook.id))]
    pub async fn send(&self, hook: &WebhookUrl, body: &Value, now: i64) -> Verdict {
        let url = format!(
            "{}/webhooks/{}/{}?wait=true",
            self.base,
            hook.id,
            hook.token.expose_secret()
        );
        let response = match self.client.post(url).json(body).send().await {
            Ok(response) => response,
            Err(e) => return transport("Discord", e, Some(hook.token.expose_secret())),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        match response.bytes().await {
            Ok(bytes) => classify(status, &headers, &bytes, now),
            // Discord answered 2xx: the message exists, only its id was lost.
            Err(_) if (200..300).contains(&status) => Verdict::Delivered {
                receipt: format!("HTTP {status}"),
                hold: hold(&headers),
            },
            Err(_) => classify(status, &headers, &[], now),
        }
    }
}

/// What an answer of Discord's means. `body` is the response body (JSON when Discord wrote
/// it; a proxy's HTML or text otherwise); `now` is seconds since the epoch.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8], now: i64) -> Verdict {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = json["message"].as_str().unwrap_or("").trim().to_owned();
    let code = json["code"].as_u64();
    // `404 Unknown Webhook (10015)`; Discord's own `500: Internal Server Error` as it is.
    let said = |status: u16| {
        let head = if message.is_empty() {
            format!("HTTP {status}")
        } else if message.starts_with(&status.to_string()) {
            message.clone()
        } else {
            format!("{status} {message}")
        };
        match code {
            Some(code) if code > 0 => format!("{head} ({code})"),
            _ => head,
        }
    };
    match status {
        200..=299 => Verdict::Delivered {
            receipt: json["id"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned),
            hold: hold(headers),
        },
        429 => rate_limited(headers, &json, now),
        401 | 404 => Verdict::PauseTarget {
            reason: format!(
                "Discord answered {}: the webhook cannot be used",
                said(status)
            ),
            hint: HOOK_HINT.into(),
        },
        // Invalid Form Body about the path, not the message: the id in the URL is wrong.
        400 if json["errors"].get("webhook_id").is_some() => Verdict::PauseTarget {
            reason: format!("Discord answered {}: the webhook id is wrong", said(status)),
            hint: HOOK_HINT.into(),
        },
        400 | 413 => Verdict::Park {
            reason: match form_error(&json["errors"]) {
                Some(detail) => format!("Discord refused the message: {message} ({detail})"),
                None => format!("Discord refused the message: {}", said(status)),
            },
        },
        403 => Verdict::PauseTarget {
            reason: format!(
                "Discord answered {}: the webhook may not post there",
                said(status)
            ),
            hint: "check that the webhook's channel (or thread) still exists and is not locked \
                   or archived, or create a new webhook in the channel's Integrations settings \
                   and store its URL in the destination's secret"
                .into(),
        },
        500..=599 => Verdict::Retry {
            reason: format!("Discord answered {}", said(status)),
            maybe_sent: true,
        },
        _ => Verdict::Retry {
            reason: format!("Discord answered {}", said(status)),
            maybe_sent: false,
        },
    }
}

/// The first error of an Invalid Form Body answer, as `path: message`
/// (`embeds.0.description: Must be 4096 or fewer in length.`).
fn form_error(errors: &Value) -> Option<String> {
    fn walk(node: &Value, path: &mut Vec<String>) -> Option<String> {
        let object = node.as_object()?;
        if let Some(first) = object.get("_errors").and_then(|e| e.get(0)) {
            let message = first["message"].as_str().unwrap_or("invalid");
            return Some(format!("{}: {message}", path.join(".")));
        }
        for (key, child) in object {
            path.push(key.clone());
            if let Some(found) = walk(child, path) {
                return Some(found);
            }
            path.pop();
        }
        None
    }
    walk(errors, &mut Vec::new())
}

/// A 429: wait what the body's `retry_after` says (fractional seconds, rounded up to the
/// millisecond), else what `Retry-After` says.
fn rate_limited(headers: &HeaderMap, json: &Value, now: i64) -> Verdict {
    let global = json["global"].as_bool().unwrap_or(false)
        || header(headers, "x-ratelimit-global").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || header(headers, "x-ratelimit-scope") == Some("global");
    let reason = if global {
        "Discord's global rate limit was hit (every webhook of this sender waits)".to_owned()
    } else if header(headers, "x-ratelimit-scope") == Some("shared") {
        "Discord rate-limited the webhook's channel (a limit shared with others)".to_owned()
    } else {
        "Discord rate-limited the webhook".to_owned()
    };
    let wait = json["retry_after"]
        .as_f64()
        .and_then(seconds)
        .or_else(|| retry_after(headers, now));
    match wait {
        Some(wait) if global => Verdict::RetryAfterAll { wait, reason },
        Some(wait) => Verdict::RetryAfter { wait, reason },
        None => Verdict::Retry {
            reason: format!("{reason}, without saying for how long"),
            maybe_sent: false,
        },
    }
}

/// `X-RateLimit-Reset-After` when the answer says the bucket is empty.
fn hold(headers: &HeaderMap) -> Option<Duration> {
    if header(headers, "x-ratelimit-remaining")?.trim() != "0" {
        return None;
    }
    header(headers, "x-ratelimit-reset-after")?
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(seconds)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

/// Fractional seconds rounded up to the millisecond, capped at [`MAX_RETRY_AFTER`].
fn seconds(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    let max = MAX_RETRY_AFTER.as_secs_f64();
    // The small epsilon keeps 1.234 (1233.9999… or 1234.0000…1 ms) at 1234 ms.
    let ms = (secs.min(max) * 1000.0 - 1e-6).ceil().max(0.0);
    Some(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::card::{Field, Link};
    use reqwest::header::HeaderValue;

    const TOKEN: &str = "aB3-dE_fGhIjKlMnOpQrStUvWxYz0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ01";

    fn a(n: usize) -> String {
        "a".repeat(n)
    }

    fn embed(body: &Value) -> &Value {
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        assert!(body.get("content").is_none());
        assert_eq!(body["embeds"].as_array().unwrap().len(), 1);
        &body["embeds"][0]
    }

    fn chars(v: &Value) -> usize {
        v.as_str().map_or(0, |s| s.chars().count())
    }

    /// Checks every limit as Discord counts it and returns the 6,000-limit total.
    fn within_limits(body: &Value) -> usize {
        let e = embed(body);
        assert!(chars(&e["title"]) <= MAX_TITLE);
        assert!(chars(&e["description"]) <= MAX_DESCRIPTION);
        assert!(chars(&e["footer"]["text"]) <= MAX_FOOTER);
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        assert!(fields.len() <= MAX_FIELDS);
        let mut total = chars(&e["title"]) + chars(&e["description"]) + chars(&e["footer"]["text"]);
        for f in &fields {
            assert!((1..=MAX_FIELD_NAME).contains(&chars(&f["name"])), "{f}");
            assert!((1..=MAX_FIELD_VALUE).contains(&chars(&f["value"])), "{f}");
            assert_eq!(f["inline"], true);
            total += chars(&f["name"]) + chars(&f["value"]);
        }
        assert!(total <= MAX_EMBED_TOTAL, "{total}");
        total
    }

    fn card() -> Card {
        Card {
            title: "invoice.paid".into(),
            text: vec![Span::Text {
                text: "Paid.".into(),
            }],
            footer: "ingestlayer · from api · api:e1".into(),
            link: Some("https://in.example/v1/events/e1?sig=abc".into()),
            ..Card::default()
        }
    }

    fn value(text: &str) -> Span {
        Span::Value { text: text.into() }
    }

    fn description(body: &Value) -> &str {
        embed(body)["description"].as_str().unwrap_or("")
    }

    fn is_cut(body: &Value) -> bool {
        description(body)
            .ends_with("[View the full event](https://in.example/v1/events/e1?sig=abc)")
            && embed(body)["url"] == "https://in.example/v1/events/e1?sig=abc"
    }

    #[test]
    fn a_small_card_is_one_embed_without_notice() {
        let mut c = card();
        c.notes = vec!["5 events within 10m".into()];
        c.fields = vec![Field {
            name: "plan".into(),
            value: "pro".into(),
        }];
        c.buttons = vec![Link {
            label: "Open".into(),
            url: "https://app.example/i/1".into(),
        }];
        let body = render(&c, false);
        within_limits(&body);
        let e = embed(&body);
        assert_eq!(e["title"], "invoice.paid");
        assert_eq!(
            e["description"],
            "Paid.\n\n5 events within 10m\n\n[Open](https://app.example/i/1)"
        );
        assert_eq!(
            e["fields"],
            json!([{"name": "plan", "value": "pro", "inline": true}])
        );
        assert_eq!(e["footer"]["text"], "ingestlayer · from api · api:e1");
        assert!(e.get("url").is_none());
    }

    #[test]
    fn a_title_of_256_is_kept_and_257_is_cut_with_the_link() {
        let mut c = card();
        c.title = a(MAX_TITLE);
        let body = render(&c, false);
        assert_eq!(embed(&body)["title"], a(MAX_TITLE));
        assert!(!is_cut(&body));

        c.title = a(MAX_TITLE + 1);
        let body = render(&c, false);
        within_limits(&body);
        assert_eq!(chars(&embed(&body)["title"]), MAX_TITLE);
        assert!(embed(&body)["title"].as_str().unwrap().ends_with('…'));
        assert!(is_cut(&body));
    }

    #[test]
    fn a_title_is_cut_between_an_escape_and_its_character_never_inside() {
        let mut c = card();
        c.title = format!("{}*b", a(MAX_TITLE - 2)); // escaped: 254 + `\*` + b = 257
        let body = render(&c, false);
        let title = embed(&body)["title"].as_str().unwrap();
        assert_eq!(title, format!("{}…", a(MAX_TITLE - 2)));
    }

    #[test]
    fn a_description_of_4096_is_kept_and_4097_is_cut_with_the_link() {
        let mut c = card();
        c.text = vec![value(&a(MAX_DESCRIPTION))];
        let body = render(&c, false);
        assert_eq!(description(&body), a(MAX_DESCRIPTION));
        assert!(!is_cut(&body));

        c.text = vec![value(&a(MAX_DESCRIPTION + 1))];
        let body = render(&c, false);
        within_limits(&body);
        assert_eq!(chars(&embed(&body)["description"]), MAX_DESCRIPTION);
        assert!(is_cut(&body));
        // 4031 + `…` + a blank line + the 62 characters of the link line.
        assert_eq!(
            description(&body),
            format!(
                "{}…\n\n[View the full event](https://in.example/v1/events/e1?sig=abc)",
                a(4031)
            )
        );
    }

    #[test]
    fn twenty_five_fields_are_kept_and_a_twenty_sixth_is_left_out_with_the_link() {
        let fields = |n: usize| -> Vec<Field> {
            (0..n)
                .map(|i| Field {
                    name: format!("f{i}"),
                    value: "v".into(),
                })
                .collect()
        };
        let mut c = card();
        c.fields = fields(MAX_FIELDS);
        let body = render(&c, false);
        assert_eq!(embed(&body)["fields"].as_array().unwrap().len(), 25);
        assert!(!is_cut(&body));

        c.fields = fields(MAX_FIELDS + 1);
        let body = render(&c, false);
        within_limits(&body);
        assert_eq!(embed(&body)["fields"].as_array().unwrap().len(), 25);
        assert!(is_cut(&body));
    }

    #[test]
    fn field_names_of_256_and_values_of_1024_are_kept_and_longer_ones_cut() {
        let mut c = card();
        c.fields = vec![Field {
            name: a(MAX_FIELD_NAME),
            value: a(MAX_FIELD_VALUE),
        }];
        let body = render(&c, false);
        assert_eq!(embed(&body)["fields"][0]["name"], a(MAX_FIELD_NAME));
        assert_eq!(embed(&body)["fields"][0]["value"], a(MAX_FIELD_VALUE));
        assert!(!is_cut(&body));

        c.fields = vec![Field {
            name: a(MAX_FIELD_NAME + 1),
            value: a(MAX_FIELD_VALUE + 1),
        }];
        let body = render(&c, false);
        within_limits(&body);
        assert_eq!(chars(&embed(&body)["fields"][0]["name"]), MAX_FIELD_NAME);
        assert_eq!(chars(&embed(&body)["fields"][0]["value"]), MAX_FIELD_VALUE);
        assert!(is_cut(&body));
    }

    #[test]
    fn blank_field_names_and_values_become_a_zero_width_space() {
        let mut c = card();
        c.fields = vec![Field {
            name: " ".into(),
            value: String::new(),
        }];
        let body = render(&c, false);
        assert_eq!(
            embed(&body)["fields"][0],
            json!({"name": "\u{200b}", "value": "\u{200b}", "inline": true})
        );
    }

    #[test]
    fn a_footer_of_2048_is_kept_and_longer_cut_and_the_resend_note_always_fits() {
        let mut c = card();
        c.footer = a(MAX_FOOTER);
        let body = render(&c, false);
        assert_eq!(embed(&body)["footer"]["text"], a(MAX_FOOTER));
        assert!(!is_cut(&body));

        let body = render(&c, true);
        within_limits(&body);
        let text = embed(&body)["footer"]["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), MAX_FOOTER);
        assert!(text.ends_with(&format!("… {RESENT_NOTE}")), "{text}");
        assert!(is_cut(&body));

        c.footer = "ingestlayer".into();
        let body = render(&c, true);
        assert_eq!(
            embed(&body)["footer"]["text"],
            format!("ingestlayer {RESENT_NOTE}")
        );
        assert!(!is_cut(&body));
    }

    #[test]
    fn the_6000_total_holds_with_many_large_fields_and_a_long_everything() {
        let mut c = card();
        c.title = a(400);
        c.text = vec![value(&a(5000))];
        c.footer = a(3000);
        c.fields = (0..40)
            .map(|i| Field {
                name: format!("{i}{}", a(300)),
                value: a(2000),
            })
            .collect();
        c.buttons = vec![Link {
            label: "Open".into(),
            url: "https://app.example/i/1".into(),
        }];
        for resent in [false, true] {
            let body = render(&c, resent);
            let total = within_limits(&body);
            assert!(total > 5900, "the budget is used: {total}");
            assert!(is_cut(&body));
            let d = description(&body);
            assert!(
                d.contains("[Open](https://app.example/i/1)"),
                "buttons stay"
            );
            assert!(d.chars().count() >= 1000, "the text keeps a share: {d}");
            assert!(!embed(&body)["fields"].as_array().unwrap().is_empty());
        }
    }

    #[test]
    fn exactly_6000_in_all_is_kept_and_one_more_is_cut() {
        // title 100 + footer 900 + description 1000 + 4 fields of (nnn + 1000) ...
        let mut c = card();
        c.title = a(100);
        c.footer = a(900);
        c.text = vec![value(&a(1000))];
        c.fields = (0..4)
            .map(|i| Field {
                name: format!("f{i}"),
                value: a(1000),
            })
            .collect();
        // 100 + 900 + 1000 + 4 * (2 + 1000) = 6008: trim the last value by 8.
        c.fields[3].value = a(992);
        let body = render(&c, false);
        assert_eq!(within_limits(&body), MAX_EMBED_TOTAL);
        assert!(!is_cut(&body));

        c.fields[3].value = a(993);
        let body = render(&c, false);
        within_limits(&body);
        assert!(is_cut(&body));
    }

    #[test]
    fn a_routing_cut_shows_the_link_and_without_a_link_the_id_note() {
        let mut c = card();
        c.truncated = true;
        assert!(is_cut(&render(&c, false)));
        c.link = None;
        let body = render(&c, false);
        assert!(description(&body).ends_with("stored under its id, in the footer."));
        assert!(embed(&body).get("url").is_none());
    }

    #[test]
    fn values_are_escaped_and_template_text_is_kept() {
        let mut c = card();
        c.text = vec![
            Span::Text {
                text: "**New** from ".into(),
            },
            value(
                "@everyone **bold** [x](http://evil) <@123> # h\n- li 3.5\n12. `c` ||s|| ~~t~~ \\",
            ),
            Span::Text {
                text: " via ".into(),
            },
            Span::Link {
                url: "https://app.example/a_(b)".into(),
                label: "the *app*".into(),
            },
        ];
        let d = description(&render(&c, false)).to_owned();
        assert_eq!(
            d,
            "**New** from @\u{200b}everyone \\*\\*bold\\*\\* \\[x\\]\\(http://evil\\) \\<@123\\> \
             \\# h\n\\- li 3.5\n12\\. \\`c\\` \\|\\|s\\|\\| \\~\\~t\\~\\~ \\\\ via \
             [the \\*app\\*](https://app.example/a_%28b%29)"
        );
        assert!(!d.contains("@everyone"));
        assert!(!d.contains("](http://evil"));
    }

    #[test]
    fn a_bare_url_in_a_value_stays_clickable_and_a_disguised_one_does_not() {
        let mut c = card();
        c.text = vec![value(
            "see https://x.example/a_b?c=1&d=*2* or https://x.example/(y)",
        )];
        assert_eq!(
            description(&render(&c, false)),
            "see https://x.example/a_b?c=1&d=*2* or https://x.example/\\(y\\)"
        );
    }

    #[test]
    fn here_and_everyone_are_defused_whatever_their_case() {
        let mut pieces = Pieces::default();
        escape_word(&mut pieces, "@HERE");
        assert_eq!(pieces.text, "@\u{200b}HERE");
        let mut pieces = Pieces::default();
        escape_word(&mut pieces, "ops@example.com");
        assert_eq!(pieces.text, "ops@example.com");
    }

    #[test]
    fn a_link_is_never_cut_in_half() {
        let mut c = card();
        // The cut text has room for 4031 characters; the link spans 4020 to 4065.
        c.text = vec![
            value(&a(4020)),
            Span::Link {
                url: "https://app.example/long/path".into(),
                label: "a link label".into(),
            },
            value(&a(200)),
        ];
        let body = render(&c, false);
        assert!(is_cut(&body));
        assert!(description(&body).starts_with(&format!("{}…\n\n[View", a(4020))));
    }

    #[test]
    fn webhook_urls_as_discord_gives_them_are_read() {
        for url in [
            format!("https://discord.com/api/webhooks/123456789012345678/{TOKEN}"),
            format!("https://discordapp.com/api/webhooks/123456789012345678/{TOKEN}/"),
            format!("https://canary.discord.com/api/v10/webhooks/123456789012345678/{TOKEN}"),
            format!("  https://ptb.discord.com/api/v9/webhooks/123456789012345678/{TOKEN}\n"),
        ] {
            let hook = WebhookUrl::parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(hook.id(), "123456789012345678");
            assert_eq!(hook.token.expose_secret(), TOKEN);
        }
    }

    #[test]
    fn other_urls_are_refused_saying_why_and_never_repeating_the_token() {
        let cases = [
            (format!("discord.com/api/webhooks/1/{TOKEN}"), "not a URL"),
            (
                format!("http://discord.com/api/webhooks/1/{TOKEN}"),
                "https://",
            ),
            (
                format!("https://evil.example/api/webhooks/1/{TOKEN}"),
                "\"evil.example\"",
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}?thread_id=2"),
                "without `?…`",
            ),
            (
                format!("https://discord.com/api/channels/1/{TOKEN}"),
                "path",
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}/github"),
                "/webhooks/<id>/<token>",
            ),
            (
                format!("https://discord.com/api/webhooks/{TOKEN}/1"),
                "a number",
            ),
            (
                format!("https://discord.com/api/webhooks/1/{TOKEN}%20x"),
                "characters",
            ),
            (
                format!("https://user:{TOKEN}@discord.com/api/webhooks/1/x"),
                "password",
            ),
        ];
        for (url, says) in cases {
            let e = WebhookUrl::parse(&url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains(TOKEN), "{e}");
            assert!(
                e.contains("https://discord.com/api/webhooks/<id>/<token>"),
                "{e}"
            );
        }
    }

    #[test]
    fn debug_output_redacts_the_token() {
        let hook =
            WebhookUrl::parse(&format!("https://discord.com/api/webhooks/1/{TOKEN}")).unwrap();
        let shown = format!("{hook:?}");
        assert!(!shown.contains(TOKEN));
        assert!(shown.contains("[redacted]") && shown.contains("\"1\""));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_posted_message_is_delivered_with_its_id_and_an_empty_bucket_holds() {
        let body = br#"{"id": "1300000000000000000", "type": 0}"#;
        assert_eq!(
            classify(200, &headers(&[("x-ratelimit-remaining", "3")]), body, 0),
            Verdict::Delivered {
                receipt: "1300000000000000000".into(),
                hold: None
            }
        );
        let empty = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "1.2341"),
        ]);
        assert_eq!(
            classify(200, &empty, body, 0),
            Verdict::Delivered {
                receipt: "1300000000000000000".into(),
                hold: Some(Duration::from_millis(1235))
            }
        );
        assert_eq!(
            classify(204, &HeaderMap::new(), b"", 0),
            Verdict::Delivered {
                receipt: "HTTP 204".into(),
                hold: None
            }
        );
    }

    #[test]
    fn a_429_waits_the_bodys_fractional_retry_after_and_names_a_global_limit() {
        let body =
            br#"{"message": "You are being rate limited.", "retry_after": 2.345, "global": false}"#;
        assert_eq!(
            classify(429, &headers(&[("retry-after", "3")]), body, 0),
            Verdict::RetryAfter {
                wait: Duration::from_millis(2345),
                reason: "Discord rate-limited the webhook".into()
            }
        );
        let global =
            br#"{"message": "You are being rate limited.", "retry_after": 64.57, "global": true}"#;
        let Verdict::RetryAfterAll { wait, reason } = classify(429, &HeaderMap::new(), global, 0)
        else {
            panic!("a global 429 holds every webhook of the sender")
        };
        assert_eq!(wait, Duration::from_millis(64_570));
        assert!(reason.contains("global"), "{reason}");
        // A proxy's 429 without Discord's body: the header says.
        assert_eq!(
            classify(429, &headers(&[("retry-after", "7")]), b"<html>", 0),
            Verdict::RetryAfter {
                wait: Duration::from_secs(7),
                reason: "Discord rate-limited the webhook".into()
            }
        );
        assert!(matches!(
            classify(429, &HeaderMap::new(), b"", 0),
            Verdict::Retry {
                maybe_sent: false,
                ..
            }
        ));
        let huge = br#"{"retry_after": 999999.5}"#;
        assert!(matches!(
            classify(429, &HeaderMap::new(), huge, 0),
            Verdict::RetryAfter { wait, .. } if wait == MAX_RETRY_AFTER
        ));
    }

    #[test]
    fn a_deleted_webhook_or_a_wrong_token_pauses_the_target_with_the_hint() {
        for (status, body) in [
            (
                404,
                &br#"{"message": "Unknown Webhook", "code": 10015}"#[..],
            ),
            (
                401,
                &br#"{"message": "Invalid Webhook Token", "code": 50027}"#[..],
            ),
        ] {
            let Verdict::PauseTarget { reason, hint } =
                classify(status, &HeaderMap::new(), body, 0)
            else {
                panic!("{status}")
            };
            assert!(reason.contains(&status.to_string()), "{reason}");
            assert_eq!(hint, HOOK_HINT);
        }
        assert_eq!(
            classify(
                404,
                &HeaderMap::new(),
                br#"{"message": "Unknown Webhook", "code": 10015}"#,
                0
            )
            .summary(),
            "Discord answered 404 Unknown Webhook (10015): the webhook cannot be used"
        );
    }

    #[test]
    fn a_refused_message_is_parked_with_discords_reason() {
        let body = br#"{"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}}"#;
        assert_eq!(
            classify(400, &HeaderMap::new(), body, 0),
            Verdict::Park {
                reason: "Discord refused the message: Invalid Form Body \
                         (embeds.0.description: Must be 4096 or fewer in length.)"
                    .into()
            }
        );
        let empty = br#"{"message": "Cannot send an empty message", "code": 50006}"#;
        assert_eq!(
            classify(400, &HeaderMap::new(), empty, 0),
            Verdict::Park {
                reason: "Discord refused the message: 400 Cannot send an empty message (50006)"
                    .into()
            }
        );
        let path = br#"{"code": 50035, "message": "Invalid Form Body", "errors": {"webhook_id": {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": "Value \"x\" is not snowflake."}]}}}"#;
        assert!(matches!(
            classify(400, &HeaderMap::new(), path, 0),
            Verdict::PauseTarget { .. }
        ));
    }

    #[test]
    fn forbidden_pauses_server_errors_retry_as_maybe_sent_and_others_retry() {
        let forbidden = br#"{"message": "Missing Permissions", "code": 50013}"#;
        assert!(matches!(
            classify(403, &HeaderMap::new(), forbidden, 0),
            Verdict::PauseTarget { .. }
        ));
        for status in [500, 502, 503, 504] {
            assert!(matches!(
                classify(status, &HeaderMap::new(), b"upstream connect error", 0),
                Verdict::Retry {
                    maybe_sent: true,
                    ..
                }
            ));
        }
        assert_eq!(
            classify(
                500,
                &HeaderMap::new(),
                br#"{"message": "500: Internal Server Error", "code": 0}"#,
                0
            ),
            Verdict::Retry {
                reason: "Discord answered 500: Internal Server Error".into(),
                maybe_sent: true
            }
        );
        assert!(matches!(
            classify(301, &HeaderMap::new(), b"", 0),
            Verdict::Retry {
                maybe_sent: false,
                ..
            }
        ));
    }

    #[test]
    fn the_pace_is_five_per_two_seconds() {
        assert_eq!(MIN_INTERVAL * 5, Duration::from_secs(2));
    }

    #[test]
    fn sharing_gives_each_part_what_it_needs_or_half() {
        assert_eq!(crate::outbound::share(100, 30, 40), (30, 40));
        assert_eq!(crate::outbound::share(100, 80, 80), (50, 50));
        assert_eq!(crate::outbound::share(100, 20, 500), (20, 80));
        assert_eq!(crate::outbound::share(100, 500, 20), (80, 20));
    }
}
