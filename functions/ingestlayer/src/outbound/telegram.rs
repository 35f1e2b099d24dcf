//! Telegram as a destination: each message is a `sendMessage`
//! (<https://core.telegram.org/bots/api#sendmessage>) from the bot whose token the
//! destination's secret holds, to the pipeline's `chat_id` ([`ChatId`]).
//!
//! - **HTML parse mode** ([`render`], <https://core.telegram.org/bots/api#html-style>): every
//!   string of the card is escaped (`&`, `<`, `>`; `"` too in a link's `href`), the
//!   template's own text as well, since its Slack-style markup means nothing here. Tags are
//!   only ever written whole and closed, so a message always parses.
//! - **4,096 characters after entity parsing**: what counts is the text Telegram shows (a
//!   tag counts nothing, `&amp;` counts one), in Unicode scalar values as Telegram's server
//!   counts (TDLib's `utf8_length`). A cut falls between whole entities and whole links, and
//!   a cut message links the full stored event ("View the full event") or, without a link,
//!   says the event is stored under the id in its last line.
//! - **Paced per chat** ([`min_interval`]): one message a second in a private chat, 20 a
//!   minute in a group or channel (<https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>).
//! - **Answers classified** ([`classify`]): `retry_after` honoured; a chat that is gone, a bot
//!   that was blocked or removed, a group that became a supergroup or a revoked token pause
//!   the target with what to do.
//! - **The token never leaves the request**: it is part of the URL (`/bot<token>/…`), so the
//!   URL is stripped from transport errors and never logged.

use std::time::Duration;

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::card::{Card, Span};
use super::{retry_after, transport, Verdict, MAX_RETRY_AFTER};

/// The Bot API's base; config's `TELEGRAM_API_URL` overrides it (the stand-in, `make dev`).
pub use crate::config::DEFAULT_TELEGRAM_API_URL as DEFAULT_API_URL;

/// The longest message, in characters after entity parsing.
pub const MAX_TEXT: usize = 4096;
/// A card's parts are bounded too, so that one long part cannot crowd out the others.
pub const MAX_TITLE: usize = 256;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 512;

/// Added to the footer when an earlier attempt may already have posted the message.
pub const RESENT_NOTE: &str = "(sent again after an unconfirmed attempt)";

/// A `chat_id`: a chat's number (a person's positive id, a group's or channel's negative
/// one) or a public supergroup's or channel's `@username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatId(Chat);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chat {
    Id(i64),
    /// With its `@`.
    Username(String),
}

impl ChatId {
    /// Reads the pipeline's `chat_id`: `-1001234567890`, `1001` or `@channelname` (5 to 32
    /// letters, digits and underscores).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(name) = s.strip_prefix('@') {
            let ok = (5..=32).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return if ok {
                Ok(Self(Chat::Username(s.to_owned())))
            } else {
                Err(format!(
                    "{s:?} is no channel username: one is @ and 5 to 32 letters, digits and \
                     underscores"
                ))
            };
        }
        match s.parse::<i64>() {
            Ok(id) if id != 0 => Ok(Self(Chat::Id(id))),
            _ => Err(format!(
                "{s:?} is neither a chat id (a number such as -1001234567890) nor a channel's \
                 @username"
            )),
        }
    }

    /// A person's chat with the bot (a positive id).
    pub fn is_private(&self) -> bool {
        matches!(self.0, Chat::Id(id) if id > 0)
    }

    fn to_json(&self) -> Value {
        match &self.0 {
            Chat::Id(id) => json!(id),
            Chat::Username(name) => json!(name),
        }
    }
}

impl std::fmt::Display for ChatId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Chat::Id(id) => write!(f, "{id}"),
            Chat::Username(name) => f.write_str(name),
        }
    }
}

/// The pace in one chat: Telegram asks for no more than one message a second in a chat, and
/// allows 20 a minute in a group (channels are held to the same; a `@username` names a
/// supergroup or a channel).
pub fn min_interval(chat: &ChatId) -> Duration {
    if chat.is_private() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    }
}

// ---------------------------------------------------------------------------------------
// Rendering

/// HTML made of pieces a cut may fall between but never inside: a character or its entity
/// (`&amp;`), a whole link. Lengths are what Telegram counts: characters after parsing.
#[derive(Debug, Clone, Default)]
struct Pieces {
    html: String,
    /// After each piece: its end in bytes and the characters shown up to there.
    ends: Vec<(usize, usize)>,
}

impl Pieces {
    fn len(&self) -> usize {
        self.ends.last().map_or(0, |e| e.1)
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// One piece of HTML that shows `shown` characters, kept whole.
    fn push(&mut self, html: &str, shown: usize) {
        if html.is_empty() {
            return;
        }
        let shown = self.len() + shown;
        self.html.push_str(html);
        self.ends.push((self.html.len(), shown));
    }

    /// Text shown as it is: each character a piece, `&`, `<` and `>` as entities.
    fn push_text(&mut self, s: &str) {
        let mut buf = [0u8; 4];
        for c in s.chars() {
            match c {
                '&' => self.push("&amp;", 1),
                '<' => self.push("&lt;", 1),
                '>' => self.push("&gt;", 1),
                c => self.push(c.encode_utf8(&mut buf), 1),
            }
        }
    }

    /// `<a href="url">label</a>`; a blank label shows the URL itself.
    fn push_link(&mut self, label: &str, url: &str) {
        let label = if label.trim().is_empty() { url } else { label };
        let html = format!("<a href=\"{}\">{}</a>", attribute(url), text(label));
        self.push(&html, label.chars().count());
    }

    fn text(s: &str) -> Pieces {
        let mut p = Pieces::default();
        p.push_text(s);
        p
    }

    /// The whole when it shows at most `max` characters; else the longest run of whole
    /// pieces that leaves room for `…`, and `…`. The flag says whether it was cut.
    fn cut(&self, max: usize) -> (String, bool) {
        if self.len() <= max {
            return (self.html.clone(), false);
        }
        if max == 0 {
            return (String::new(), true);
        }
        let end = self
            .ends
            .iter()
            .take_while(|(_, shown)| *shown < max)
            .last()
            .map_or(0, |(bytes, _)| *bytes);
        let mut out = self.html[..end].to_owned();
        out.push('…');
        (out, true)
    }
}

/// `s` as HTML text.
fn text(s: &str) -> String {
    Pieces::text(s).html
}

/// `s` as a double-quoted attribute value.
fn attribute(s: &str) -> String {
    text(s).replace('"', "&quot;")
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The card's text (all of it escaped, links as `<a>`) and its notes, one a line.
fn body(card: &Card) -> Pieces {
    let mut out = Pieces::default();
    for span in &card.text {
        match span {
            Span::Text { text } | Span::Value { text } => out.push_text(text),
            Span::Link { url, label } => out.push_link(label, url),
        }
    }
    if !card.notes.is_empty() && !out.is_empty() {
        out.push_text("\n\n");
    }
    for (i, note) in card.notes.iter().enumerate() {
        if i > 0 {
            out.push_text("\n");
        }
        out.push_text(note);
    }
    out
}

/// A field's line, `<b>name</b>: value`, and the characters its name shows.
struct FieldLine {
    name: String,
    name_shown: usize,
    value: Pieces,
}

impl FieldLine {
    fn html(&self, value: &str) -> String {
        format!("<b>{}</b>: {value}", self.name)
    }
}

/// The message for a card, in Telegram's HTML, showing at most [`MAX_TEXT`] characters.
/// `resent`: an earlier attempt may have posted it already (a timeout, a 5xx), which the
/// footer then says.
pub fn render(card: &Card, resent: bool) -> String {
    let (html, cut) = layout(card, resent, None);
    if cut || card.truncated {
        let mut notice = Pieces::default();
        match &card.link {
            Some(link) => notice.push_link("View the full event", link),
            None => notice.push_text(
                "Not everything fits here: the full event is stored under its id, in the last \
                 line.",
            ),
        }
        layout(card, resent, Some(notice)).0
    } else {
        html
    }
}

/// The message, with `notice` before the footer when given; whether anything was cut.
fn layout(card: &Card, resent: bool, notice: Option<Pieces>) -> (String, bool) {
    let mut cut = false;

    let (title, title_cut) = Pieces::text(&card.title).cut(MAX_TITLE);
    let footer = {
        let note = if resent { RESENT_NOTE } else { "" };
        let sep = if resent && !card.footer.is_empty() {
            " "
        } else {
            ""
        };
        let (text, footer_cut) =
            Pieces::text(&card.footer).cut(MAX_FOOTER - chars(note) - sep.len());
        cut |= footer_cut;
        format!("{text}{sep}{note}")
    };
    cut |= title_cut;
    let notice = notice.map(|n| n.html).unwrap_or_default();
    let mut buttons: Vec<Pieces> = card
        .buttons
        .iter()
        .map(|b| {
            let mut p = Pieces::default();
            p.push_link(&b.label, &b.url);
            p
        })
        .collect();
    let body = body(card);
    let fields: Vec<FieldLine> = card
        .fields
        .iter()
        .map(|f| {
            let (name, name_cut) = Pieces::text(&f.name).cut(MAX_FIELD_NAME);
            let value = Pieces::text(&f.value);
            cut |= name_cut || value.len() > MAX_FIELD_VALUE;
            FieldLine {
                name_shown: shown(&name),
                name,
                value,
            }
        })
        .collect();
    let parts = Parts {
        title: &title,
        footer: &footer,
        notice: &notice,
    };

    // Everything, when it fits.
    let lines: Vec<String> = fields
        .iter()
        .map(|f| f.html(&f.value.cut(MAX_FIELD_VALUE).0))
        .collect();
    let whole = parts.assemble(&body.html, &lines, &buttons);
    if shown(&whole) <= MAX_TEXT {
        return (whole, cut);
    }

    // What always shows: the title, the footer, the notice and (room allowing) the buttons,
    // with room for every separator: `\n` after the title, blank lines between sections,
    // `\n` after each field, ` · ` after each button.
    let fixed = |buttons: &[Pieces]| {
        let buttons_shown: usize = buttons.iter().map(|b| b.len() + 3).sum();
        shown(&title) + shown(&footer) + shown(&notice) + buttons_shown + 1 + 2 * 4
    };
    while fixed(&buttons) > MAX_TEXT && !buttons.is_empty() {
        buttons.pop();
    }
    let budget = MAX_TEXT.saturating_sub(fixed(&buttons));
    let line = |f: &FieldLine, value: usize| f.name_shown + 2 + value + 1;
    let fields_need: usize = fields
        .iter()
        .map(|f| line(f, f.value.len().min(MAX_FIELD_VALUE)))
        .sum();
    let (_, fields_budget) = crate::outbound::share(budget, body.len(), fields_need);

    let mut lines = Vec::new();
    let mut used = 0;
    for f in &fields {
        let need = line(f, f.value.len().min(MAX_FIELD_VALUE));
        if used + need <= fields_budget {
            used += need;
            lines.push(f.html(&f.value.cut(MAX_FIELD_VALUE).0));
            continue;
        }
        // The last field that fits in part, if a useful part of its value does.
        let room = fields_budget.saturating_sub(used + line(f, 0));
        if room >= 16 {
            let (value, _) = f.value.cut(room.min(MAX_FIELD_VALUE));
            used += line(f, shown(&value));
            lines.push(f.html(&value));
        }
        break;
    }
    let (body, _) = body.cut(budget - used);
    (parts.assemble(&body, &lines, &buttons), true)
}

/// The parts of a message that are settled before the body, fields and buttons are fitted.
struct Parts<'a> {
    title: &'a str,
    footer: &'a str,
    notice: &'a str,
}

impl Parts<'_> {
    /// `<b>title</b>` and the body under it, then the fields, the buttons, the notice and
    /// the footer in `<i>`, blank lines between.
    fn assemble(&self, body: &str, lines: &[String], buttons: &[Pieces]) -> String {
        let mut head = String::new();
        if !self.title.is_empty() {
            head = format!("<b>{}</b>", self.title);
        }
        if !body.is_empty() {
            if !head.is_empty() {
                head.push('\n');
            }
            head.push_str(body);
        }
        let buttons: Vec<&str> = buttons.iter().map(|b| b.html.as_str()).collect();
        let footer = if self.footer.is_empty() {
            String::new()
        } else {
            format!("<i>{}</i>", self.footer)
        };
        [
            head,
            lines.join("\n"),
            buttons.join(" · "),
            self.notice.to_owned(),
            footer,
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
    }
}

/// The characters a piece of our own HTML shows: tags count nothing, an entity one.
fn shown(html: &str) -> usize {
    let mut count = 0;
    let mut in_tag = false;
    let mut in_entity = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            '&' => {
                in_entity = true;
                count += 1;
            }
            ';' if in_entity => in_entity = false,
            _ if in_entity => {}
            _ => count += 1,
        }
    }
    count
}

// ---------------------------------------------------------------------------------------
// Sending

/// Calls the Bot API: one HTTP client that follows no redirects.
pub struct Telegram {
    client: reqwest::Client,
    base: String,
}

impl Telegram {
    /// `base` is [`DEFAULT_API_URL`] or the stand-in's; `timeout` bounds each request.
    pub fn new(base: &str, timeout: Duration) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("ingestlayer/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends `html` ([`render`]'s) to `chat` as the bot of `token`, without a link preview,
    /// and says what the answer means (`now`: seconds since the epoch, for a dated
    /// Retry-After).
    #[tracing::instrument(skip_all, fields(chat = %chat))]
    pub async fn send(&self, token: &SecretString, chat: &ChatId, html: &str, now: i64) -> Verdict {
        let token = token.expose_secret();
        if !is_bot_token(token) {
            return Verdict::PauseTarget {
                reason: "the destination's secret is not a Telegram bot token".into(),
                hint: "store the token @BotFather gave the bot (a number, `:` and letters, \
                       digits, `-` and `_`) in the destination's secret"
                    .into(),
            };
        }
        let body = json!({
            "chat_id": chat.to_json(),
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        let url = format!("{}/bot{token}/sendMessage", self.base);
        let response = match self.client.post(url).json(&body).send().await {
            Ok(response) => response,
            Err(e) => return transport("Telegram", e, Some(token)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        match response.bytes().await {
            Ok(bytes) => classify(status, &headers, &bytes, now),
            // Telegram answered 2xx: the message was sent, only its id was lost.
            Err(_) if (200..300).contains(&status) => Verdict::Delivered {
                receipt: format!("HTTP {status}"),
                hold: None,
            },
            Err(_) => classify(status, &headers, &[], now),
        }
    }
}

/// `<bot id>:<secret>`, as @BotFather issues tokens; anything else would change the URL.
fn is_bot_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// What the Bot API's answer means: `{"ok": true, "result": {...}}`, or `{"ok": false,
/// "error_code": N, "description": "...", "parameters": {...}}` with status N. `now` is
/// seconds since the epoch.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8], now: i64) -> Verdict {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let refused = json["ok"] == Value::Bool(false);
    if json["ok"] == Value::Bool(true) || ((200..300).contains(&status) && !refused) {
        return Verdict::Delivered {
            receipt: json["result"]["message_id"]
                .as_i64()
                .map_or_else(|| format!("HTTP {status}"), |id| id.to_string()),
            hold: None,
        };
    }
    let description = json["description"].as_str().unwrap_or("").trim();
    let said = if description.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("{status} {description}")
    };
    let lower = description.to_ascii_lowercase();
    let pause = |what: &str, hint: &str| Verdict::PauseTarget {
        reason: format!("Telegram answered {said}: {what}"),
        hint: hint.to_owned(),
    };
    if let Some(new_id) = json["parameters"]["migrate_to_chat_id"].as_i64() {
        return pause(
            "the group became a supergroup, which has a new id",
            &format!("the group is now a supergroup: set chat_id to {new_id}"),
        );
    }
    match status {
        429 => {
            let wait = json["parameters"]["retry_after"]
                .as_u64()
                .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
                .or_else(|| retry_after(headers, now));
            let reason = "Telegram's flood control: too many messages".to_owned();
            match wait {
                Some(wait) => Verdict::RetryAfter { wait, reason },
                None => Verdict::Retry {
                    reason: format!("{reason}, without saying for how long"),
                    maybe_sent: false,
                },
            }
        }
        401 => pause(
            "the bot's token is not valid (revoked or replaced)",
            "the token was revoked: get the bot's current token from @BotFather (/token) and \
             store it in the destination's secret",
        ),
        404 => pause(
            "the bot's token is not one Telegram knows",
            "store the token exactly as @BotFather gave it in the destination's secret",
        ),
        400 if lower.contains("chat not found") || lower.contains("chat_id is empty") => pause(
            "the chat does not exist for this bot",
            "check chat_id (a number such as -1001234567890, or a channel's @username), and \
             that the bot was added to the group or channel; a person must first open the chat \
             with the bot and press Start",
        ),
        400 if lower.contains("upgraded to a supergroup") => pause(
            "the group became a supergroup, which has a new id",
            "the group is now a supergroup: set chat_id to its new id (it starts with -100)",
        ),
        400 if lower.contains("rights") || lower.contains("chat_write_forbidden") => pause(
            "the bot may not post in the chat",
            "let the bot send messages in the group (or make it an administrator of the \
             channel who may post)",
        ),
        400 => Verdict::Park {
            reason: format!("Telegram refused the message: {said}"),
        },
        403 => {
            let hint = if lower.contains("blocked by the user") {
                "the person blocked the bot: they can unblock it (open the chat with the bot \
                 and press Restart), or set chat_id to another chat"
            } else if lower.contains("kicked") {
                "the bot was removed from the group: add it to the group again, or set chat_id \
                 to another chat"
            } else if lower.contains("not a member") {
                "add the bot to the group or channel (in a channel, as an administrator who may \
                 post messages)"
            } else if lower.contains("deactivated") {
                "the person deleted their account: set chat_id to another chat"
            } else if lower.contains("initiate conversation") {
                "the person must open the chat with the bot and press Start before it can \
                 write to them"
            } else if lower.contains("bots can't send messages to bots") {
                "chat_id names another bot: set it to a person's, group's or channel's id"
            } else {
                "check that the bot may post in the chat (a member of the group, an \
                 administrator of the channel)"
            };
            pause("the bot may not write to the chat", hint)
        }
        500..=599 => Verdict::Retry {
            reason: format!("Telegram answered {said}"),
            maybe_sent: true,
        },
        _ => Verdict::Retry {
            reason: format!("Telegram answered {said}"),
            maybe_sent: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::card::{Field, Link};
    use reqwest::header::HeaderValue;
    use telegram_standin::html::{parse_html, EntityKind, LengthUnit, Strictness};

    const LINK: &str = "https://in.example/v1/events/e1?sig=abc&x=1";

    /// What Telegram shows, by the stand-in's parser (which refuses what Telegram refuses),
    /// trimmed as Telegram trims.
    fn parsed(html: &str) -> String {
        let formatted =
            parse_html(html, Strictness::Documented).unwrap_or_else(|e| panic!("{e}: {html}"));
        formatted
            .text
            .trim_matches([' ', '\t', '\r', '\n'])
            .to_owned()
    }

    fn length(html: &str) -> usize {
        LengthUnit::CodePoints.measure(&parsed(html))
    }

    fn is_cut(html: &str) -> bool {
        html.contains(
            "<a href=\"https://in.example/v1/events/e1?sig=abc&amp;x=1\">View the full event</a>",
        )
    }

    fn a(n: usize) -> String {
        "a".repeat(n)
    }

    fn card() -> Card {
        Card {
            title: "invoice.paid".into(),
            text: vec![Span::Text {
                text: "Paid.".into(),
            }],
            footer: "ingestlayer · from api · api:e1".into(),
            link: Some(LINK.into()),
            ..Card::default()
        }
    }

    fn value(text: &str) -> Span {
        Span::Value { text: text.into() }
    }

    #[test]
    fn a_small_card_renders_title_text_notes_fields_buttons_and_footer() {
        let mut c = card();
        c.notes = vec!["5 events".into(), "within 10m".into()];
        c.fields = vec![
            Field {
                name: "plan".into(),
                value: "pro".into(),
            },
            Field {
                name: "seats".into(),
                value: "3".into(),
            },
        ];
        c.buttons = vec![
            Link {
                label: "Open".into(),
                url: "https://app.example/i/1".into(),
            },
            Link {
                label: "Pay".into(),
                url: "https://app.example/p".into(),
            },
        ];
        let html = render(&c, false);
        assert_eq!(
            html,
            "<b>invoice.paid</b>\nPaid.\n\n5 events\nwithin 10m\n\n<b>plan</b>: pro\n\
             <b>seats</b>: 3\n\n<a href=\"https://app.example/i/1\">Open</a> · \
             <a href=\"https://app.example/p\">Pay</a>\n\n<i>ingestlayer · from api · api:e1</i>"
        );
        assert!(!is_cut(&html));
        let shown = parsed(&html);
        assert!(shown.starts_with("invoice.paid\nPaid."), "{shown}");
    }

    #[test]
    fn every_string_is_escaped_and_links_keep_their_exact_target() {
        let mut c = card();
        c.title = "<b>a & b</b>".into();
        c.text = vec![
            Span::Text {
                text: "*New* <i>from</i> ".into(),
            },
            value("<script>&amp; \"x\" </b>"),
            Span::Text { text: " ".into() },
            Span::Link {
                url: "https://app.example/?a=1&b=\"2\"<".into(),
                label: "<open> & go".into(),
            },
        ];
        c.fields = vec![Field {
            name: "<n>".into(),
            value: "&lt;".into(),
        }];
        c.footer = "</i>".into();
        let html = render(&c, false);
        let formatted = parse_html(&html, Strictness::Documented).unwrap();
        assert_eq!(
            formatted.text,
            "<b>a & b</b>\n*New* <i>from</i> <script>&amp; \"x\" </b> <open> & go\n\n\
             <n>: &lt;\n\n</i>"
        );
        let link = formatted
            .entities
            .iter()
            .find_map(|e| match &e.kind {
                EntityKind::TextLink { url } => Some(url.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(link, "https://app.example/?a=1&b=\"2\"<");
        // Only the tags render writes make entities: the title's bold, the link, the
        // field name's bold and the footer's italics.
        let kinds: Vec<&str> = formatted
            .entities
            .iter()
            .map(|e| e.kind.type_name())
            .collect();
        assert_eq!(kinds, ["bold", "text_link", "bold", "italic"]);
    }

    /// A card whose message shows exactly `n` characters: the title (10), `\n`, the text
    /// (`&`s, five bytes of HTML each), a blank line and the footer (`f`).
    fn showing(n: usize) -> Card {
        let mut c = card();
        c.title = "t".repeat(10);
        c.footer = "f".into();
        let text = n - 10 - 1 - 2 - 1;
        c.text = vec![value(&"&".repeat(text))];
        c
    }

    #[test]
    fn exactly_4096_shown_characters_are_kept_and_one_more_is_cut_with_the_link() {
        let html = render(&showing(MAX_TEXT), false);
        assert!(!is_cut(&html));
        assert_eq!(length(&html), MAX_TEXT);
        assert!(html.len() > 4 * MAX_TEXT, "entities count one each");

        let html = render(&showing(MAX_TEXT + 1), false);
        assert!(is_cut(&html));
        assert!(length(&html) <= MAX_TEXT, "{}", length(&html));
        assert!(length(&html) >= MAX_TEXT - 16, "the budget is used");
        assert!(parsed(&html).contains("&&&…\n\nView the full event\n\nf"));
    }

    #[test]
    fn emoji_count_one_each_as_telegram_counts() {
        let mut c = showing(MAX_TEXT);
        c.text = vec![value(&"😀".repeat(MAX_TEXT - 14))];
        let html = render(&c, false);
        assert!(!is_cut(&html));
        assert_eq!(length(&html), MAX_TEXT);
    }

    #[test]
    fn a_long_card_is_cut_to_4096_with_every_tag_closed_and_no_entity_split() {
        let mut c = card();
        c.title = "&".repeat(300);
        c.text = vec![value(&"<&>".repeat(3000))];
        c.notes = vec!["n".repeat(500)];
        c.fields = (0..30)
            .map(|i| Field {
                name: format!("{i}&{}", a(300)),
                value: "<".repeat(2000),
            })
            .collect();
        c.buttons = vec![Link {
            label: "Open & pay".into(),
            url: "https://app.example/?a=1&b=2".into(),
        }];
        c.footer = "&".repeat(1000);
        for resent in [false, true] {
            let html = render(&c, resent);
            // The stand-in's parser refuses unclosed tags and split entities.
            let shown = length(&html);
            assert!((MAX_TEXT - 40..=MAX_TEXT).contains(&shown), "{shown}");
            assert!(is_cut(&html));
            assert!(html.contains(">Open &amp; pay</a>"), "buttons stay");
            assert!(html.contains("<b>0&amp;"), "fields keep a share");
            let text = parsed(&html);
            assert!(text.contains("<&><&>"), "the text keeps a share");
            assert_eq!(resent, text.ends_with(RESENT_NOTE));
        }
    }

    #[test]
    fn a_link_is_never_cut_in_half() {
        // Cut, the text has room for 4056 characters and `…`; the link spans 4050 to 4062.
        let mut c = showing(MAX_TEXT);
        c.text = vec![
            value(&a(4050)),
            Span::Link {
                url: "https://app.example/x".into(),
                label: "a long label".into(),
            },
            value(&a(100)),
        ];
        let html = render(&c, false);
        assert!(is_cut(&html));
        assert!(!html.contains("a long"));
        assert!(html.contains(&format!("\n{}…\n\n", a(4050))));
    }

    #[test]
    fn a_routing_cut_shows_the_link_and_without_a_link_the_id_note() {
        let mut c = card();
        c.truncated = true;
        let html = render(&c, false);
        assert!(is_cut(&html));
        assert!(parsed(&html).ends_with("View the full event\n\ningestlayer · from api · api:e1"));
        c.link = None;
        let html = render(&c, true);
        assert!(parsed(&html).ends_with(&format!(
            "stored under its id, in the last line.\n\ningestlayer · from api · api:e1 \
             {RESENT_NOTE}"
        )));
    }

    #[test]
    fn the_footer_is_cut_but_the_resend_note_always_shows() {
        let mut c = card();
        c.footer = a(MAX_FOOTER);
        let html = render(&c, false);
        assert!(!is_cut(&html));
        assert!(html.ends_with(&format!("<i>{}</i>", a(MAX_FOOTER))));
        let html = render(&c, true);
        assert!(is_cut(&html));
        assert!(html.ends_with(&format!("… {RESENT_NOTE}</i>")));
        assert_eq!(
            chars(parsed(&html).rsplit("\n\n").next().unwrap()),
            MAX_FOOTER
        );
    }

    #[test]
    fn shown_counts_what_telegram_shows() {
        for html in [
            "<b>a&amp;b</b> <a href=\"x&amp;y\">l</a>",
            "&lt;&gt;",
            "plain",
        ] {
            assert_eq!(shown(html), length(html), "{html}");
        }
    }

    #[test]
    fn chat_ids_are_numbers_or_usernames() {
        for (s, private) in [
            ("1001", true),
            ("-1002", false),
            (" -1001234567890 ", false),
            ("@standin_alerts", false),
        ] {
            let chat = ChatId::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(chat.is_private(), private, "{s}");
            assert_eq!(chat.to_string(), s.trim());
        }
        assert_eq!(ChatId::parse("-1002").unwrap().to_json(), json!(-1002));
        assert_eq!(
            ChatId::parse("@standin_alerts").unwrap().to_json(),
            json!("@standin_alerts")
        );
        for bad in ["", "0", "alerts", "@abc", "@bad-name", "1.5", "@"] {
            assert!(ChatId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_private_chat_is_paced_at_one_a_second_and_groups_at_twenty_a_minute() {
        assert_eq!(
            min_interval(&ChatId::parse("1001").unwrap()),
            Duration::from_secs(1)
        );
        for group in ["-1002", "@standin_alerts"] {
            let chat = ChatId::parse(group).unwrap();
            assert_eq!(min_interval(&chat) * 20, Duration::from_secs(60));
        }
    }

    #[test]
    fn only_bot_tokens_go_into_the_url() {
        assert!(is_bot_token("123456:standin-token"));
        assert!(is_bot_token("110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));
        for bad in [
            "", "123456", ":abc", "abc:def", "123:a/b", "123:a b", "123:a?b",
        ] {
            assert!(!is_bot_token(bad), "{bad}");
        }
    }

    fn refusal(status: u16, description: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"ok": false, "error_code": status, "description": description}))
            .unwrap()
    }

    fn hint(v: Verdict) -> String {
        match v {
            Verdict::PauseTarget { hint, .. } => hint,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sent_message_is_delivered_with_its_id() {
        let body = br#"{"ok": true, "result": {"message_id": 17, "chat": {"id": 1001}}}"#;
        assert_eq!(
            classify(200, &HeaderMap::new(), body, 0),
            Verdict::Delivered {
                receipt: "17".into(),
                hold: None
            }
        );
    }

    #[test]
    fn a_429_waits_retry_after() {
        let body = br#"{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}}"#;
        assert_eq!(
            classify(429, &HeaderMap::new(), body, 0),
            Verdict::RetryAfter {
                wait: Duration::from_secs(7),
                reason: "Telegram's flood control: too many messages".into()
            }
        );
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("5"));
        assert!(matches!(
            classify(429, &headers, b"", 0),
            Verdict::RetryAfter { wait, .. } if wait == Duration::from_secs(5)
        ));
    }

    #[test]
    fn a_missing_chat_a_blocked_or_removed_bot_and_a_revoked_token_pause_with_a_hint() {
        let h = |status, d| hint(classify(status, &HeaderMap::new(), &refusal(status, d), 0));
        assert!(h(400, "Bad Request: chat not found").contains("check chat_id"));
        assert!(h(400, "Bad Request: chat not found").contains("added to the group"));
        assert!(h(403, "Forbidden: bot was blocked by the user").contains("unblock"));
        assert!(h(403, "Forbidden: bot was kicked from the group chat").contains("add it"));
        assert!(h(403, "Forbidden: bot was kicked from the supergroup chat").contains("add it"));
        assert!(
            h(403, "Forbidden: bot is not a member of the channel chat").contains("administrator")
        );
        assert!(h(403, "Forbidden: user is deactivated").contains("another chat"));
        assert!(h(
            403,
            "Forbidden: bot can't initiate conversation with a user"
        )
        .contains("press Start"));
        assert!(h(
            400,
            "Bad Request: not enough rights to send text messages to the chat"
        )
        .contains("send messages"));
        assert!(h(401, "Unauthorized").contains("revoked"));
        assert!(h(404, "Not Found").contains("@BotFather"));
        let reason = match classify(
            403,
            &HeaderMap::new(),
            &refusal(403, "Forbidden: bot was blocked by the user"),
            0,
        ) {
            Verdict::PauseTarget { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason,
            "Telegram answered 403 Forbidden: bot was blocked by the user: the bot may not \
             write to the chat"
        );
    }

    #[test]
    fn a_group_that_became_a_supergroup_names_its_new_id() {
        let body = br#"{"ok": false, "error_code": 400, "description": "Bad Request: group chat was upgraded to a supergroup chat", "parameters": {"migrate_to_chat_id": -1001234567890}}"#;
        assert_eq!(
            hint(classify(400, &HeaderMap::new(), body, 0)),
            "the group is now a supergroup: set chat_id to -1001234567890"
        );
    }

    #[test]
    fn a_message_telegram_cannot_take_is_parked_with_its_description() {
        for d in [
            "Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0",
            "Bad Request: message is too long",
            "Bad Request: message text is empty",
        ] {
            assert_eq!(
                classify(400, &HeaderMap::new(), &refusal(400, d), 0),
                Verdict::Park {
                    reason: format!("Telegram refused the message: 400 {d}")
                }
            );
        }
    }

    #[test]
    fn server_errors_may_have_sent_and_others_did_not() {
        for status in [500, 502, 504] {
            assert!(matches!(
                classify(
                    status,
                    &HeaderMap::new(),
                    &refusal(status, "Bad Gateway"),
                    0
                ),
                Verdict::Retry {
                    maybe_sent: true,
                    ..
                }
            ));
        }
        assert!(matches!(
            classify(502, &HeaderMap::new(), b"<html>bad gateway</html>", 0),
            Verdict::Retry {
                maybe_sent: true,
                ..
            }
        ));
        assert!(matches!(
            classify(409, &HeaderMap::new(), &refusal(409, "Conflict"), 0),
            Verdict::Retry {
                maybe_sent: false,
                ..
            }
        ));
    }
}
