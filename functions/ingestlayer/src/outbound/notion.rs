//! The Notion destination: each event a pipeline routes to it becomes one page in a Notion
//! database, on the current API version ([`API_VERSION`], 2025-09-03), where a database is a
//! container of data sources and the schema, the queries and the pages belong to a data
//! source (<https://developers.notion.com/docs/upgrade-guide-2025-09-03>).
//!
//! - **Which data source** ([`Notion::data_source`]): the destination names a database or one
//!   of its data sources (an ID, dashed or not, or the URL Notion's "Copy link" gives). A
//!   database with one data source is used as is; one with several is not guessed at: the
//!   target pauses and the hint lists the data sources' IDs to choose from.
//! - **The page** ([`page_body`]): the pipeline maps Notion properties to rendered values
//!   (`Plan` ← `$event.plan`); each value is converted by the property's type, and anything
//!   Notion would refuse (an unknown property, a number that is not one) is refused here,
//!   before sending, naming the property. The event id always goes into the id property
//!   ([`DEFAULT_ID_PROPERTY`]), the card's title into the title property unless mapped, and
//!   the card's text, notes and fields into paragraphs, cut to Notion's size limits
//!   (<https://developers.notion.com/reference/request-limits#size-limits>) with a link to the
//!   full event when something was left out.
//! - **No duplicates** ([`Notion::find`]): after an answer that leaves it open whether the
//!   page was created (a timeout, a 5xx: `Retry { maybe_sent: true }`), the caller asks the
//!   data source for a page with the event's id before creating it again.
//! - **Pacing**: Notion allows an average of three requests per second per integration; a
//!   caller spaces requests by [`MIN_INTERVAL`], and a 429 answers the `Retry-After` Notion
//!   gave.
//!
//! The integration token is only ever put in the `Authorization` header: no error, reason,
//! log line or `Debug` output carries it.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use super::card::{cut_to, Card, Span, Unit};
use super::{retry_after, transport, Verdict};

/// The `Notion-Version` every request sends: databases hold data sources.
pub const API_VERSION: &str = "2025-09-03";

/// Notion's API, unless configuration (`NOTION_API_URL`) names a stand-in.
pub const DEFAULT_API_URL: &str = "https://api.notion.com";

/// The least time between two requests of one integration: Notion's limit is "an average of
/// three requests per second", so a third of a second, rounded up.
pub const MIN_INTERVAL: Duration = Duration::from_millis(334);

/// How long one request may take. Notion itself gives up after 60 s (its 503 says so); an
/// answer later than this counts as a timeout, which may have created the page.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The property that holds the event id unless the destination names another.
pub const DEFAULT_ID_PROPERTY: &str = "Event ID";

/// The most a rich text object's `text.content` holds. Counted in UTF-16 units, as Notion's
/// validator (a JavaScript one) counts `length`; that is never more than the characters.
pub const TEXT_MAX: usize = 2000;

/// The most elements of any array Notion takes: rich text objects, blocks, options.
pub const ARRAY_MAX: usize = 100;

const URL_MAX: usize = 2000;
const EMAIL_MAX: usize = 200;
const PHONE_MAX: usize = 200;
const OPTION_NAME_MAX: usize = 100;
/// The text of all paragraphs together: well inside Notion's 500KB a request, with room for
/// the properties.
const CHILDREN_TEXT_MAX: usize = 50_000;
/// How much of a refused value a reason quotes.
const QUOTE_MAX: usize = 40;

const UNIT: Unit = Unit::Utf16;

/// A Notion property type, as a data source's schema names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyType {
    Title,
    RichText,
    Number,
    Select,
    MultiSelect,
    Status,
    Date,
    Checkbox,
    Url,
    Email,
    PhoneNumber,
    /// A type ingestlayer does not set (people, files, relation, formula, …), by its name.
    Other(String),
}

impl PropertyType {
    pub fn parse(name: &str) -> PropertyType {
        match name {
            "title" => PropertyType::Title,
            "rich_text" => PropertyType::RichText,
            "number" => PropertyType::Number,
            "select" => PropertyType::Select,
            "multi_select" => PropertyType::MultiSelect,
            "status" => PropertyType::Status,
            "date" => PropertyType::Date,
            "checkbox" => PropertyType::Checkbox,
            "url" => PropertyType::Url,
            "email" => PropertyType::Email,
            "phone_number" => PropertyType::PhoneNumber,
            other => PropertyType::Other(other.to_owned()),
        }
    }

    /// The type's name in JSON, also the key a page property's value goes under.
    pub fn key(&self) -> &str {
        match self {
            PropertyType::Title => "title",
            PropertyType::RichText => "rich_text",
            PropertyType::Number => "number",
            PropertyType::Select => "select",
            PropertyType::MultiSelect => "multi_select",
            PropertyType::Status => "status",
            PropertyType::Date => "date",
            PropertyType::Checkbox => "checkbox",
            PropertyType::Url => "url",
            PropertyType::Email => "email",
            PropertyType::PhoneNumber => "phone_number",
            PropertyType::Other(name) => name,
        }
    }
}

/// Where pages go: a data source and its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    /// The data source's ID, dashed.
    pub id: String,
    /// Property names and types, in the order Notion listed them.
    pub properties: Vec<(String, PropertyType)>,
    /// The name of the one title property.
    pub title_property: String,
}

impl DataSource {
    pub fn kind_of(&self, property: &str) -> Option<&PropertyType> {
        self.properties
            .iter()
            .find(|(name, _)| name == property)
            .map(|(_, kind)| kind)
    }

    fn names(&self) -> String {
        self.properties
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A data source object (`GET /v1/data_sources/{id}`); `None` when it is not one.
    fn from_json(value: &Value) -> Option<DataSource> {
        let id = value.get("id")?.as_str()?.to_owned();
        let mut properties = Vec::new();
        for (name, property) in value.get("properties")?.as_object()? {
            let kind = property.get("type").and_then(Value::as_str).unwrap_or("");
            properties.push((name.clone(), PropertyType::parse(kind)));
        }
        let title_property = properties
            .iter()
            .find(|(_, kind)| *kind == PropertyType::Title)?
            .0
            .clone();
        Some(DataSource {
            id,
            properties,
            title_property,
        })
    }
}

/// Why a page cannot be made from an event: the mapping or the database must change, so the
/// message is parked with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("`{name}` is not a property of the Notion data source; it has: {known}")]
    Unknown { name: String, known: String },
    #[error("`{name}` is a {kind} property, and {why}")]
    Invalid {
        name: String,
        kind: &'static str,
        why: String,
    },
    #[error(
        "`{name}` is a {kind} property, which ingestlayer cannot set; map title, rich_text, \
         number, select, multi_select, status, date, checkbox, url, email or phone_number \
         properties"
    )]
    Unsupported { name: String, kind: String },
    #[error(
        "the Notion data source has no `{name}` property for the event id (add a rich_text \
         property of that name, or name another); it has: {known}"
    )]
    NoIdProperty { name: String, known: String },
    #[error("`{name}` is a {kind} property; the event id needs a rich_text or title property")]
    IdPropertyType { name: String, kind: String },
}

/// The `POST /v1/pages` body for one event: `properties` are (Notion property name, rendered
/// value) pairs from the pipeline's mapping, converted by each property's type:
///
/// | type | the value | refused |
/// | --- | --- | --- |
/// | title, rich_text | text, in objects of ≤ [`TEXT_MAX`], ≤ [`ARRAY_MAX`] of them (cut with `…` beyond) | never |
/// | number | a decimal number (`3`, `-1.5`, `1e3`) | anything else |
/// | select, status | the option's name (created if new, as Notion does) | a comma (Notion refuses it) |
/// | multi_select | comma-separated names, trimmed, repeats dropped, at most 100 | never |
/// | date | `2026-11-30` or RFC 3339 (`2026-11-30T10:00:00Z`) | anything else |
/// | checkbox | `true`/`false`, `yes`/`no`, `1`/`0`, `on`/`off` | anything else |
/// | url, email, phone_number | as given | over 2,000 / 200 / 200 characters |
///
/// An empty (or blank) value leaves a property unset, whatever its type. The `id_property`
/// always holds `event_id` (a mapping of it is ignored); the title property holds the card's
/// title unless mapped. Names are Notion's, exact (case included).
pub fn page_body(
    source: &DataSource,
    properties: &[(String, String)],
    card: &Card,
    event_id: &str,
    id_property: &str,
) -> Result<Value, PropertyError> {
    let mut cut = card.truncated;
    let mut props = Map::new();
    for (name, raw) in properties {
        let kind = source.kind_of(name).ok_or_else(|| PropertyError::Unknown {
            name: name.clone(),
            known: source.names(),
        })?;
        if name == id_property {
            continue;
        }
        if let Some(value) = property_value(name, kind, raw, &mut cut)? {
            props.insert(name.clone(), json!({ kind.key(): value }));
        }
    }
    match source.kind_of(id_property) {
        Some(kind @ (PropertyType::RichText | PropertyType::Title)) => {
            let (text, _) = property_text(event_id);
            props.insert(id_property.to_owned(), json!({ kind.key(): text }));
        }
        Some(other) => {
            return Err(PropertyError::IdPropertyType {
                name: id_property.to_owned(),
                kind: other.key().to_owned(),
            })
        }
        None => {
            return Err(PropertyError::NoIdProperty {
                name: id_property.to_owned(),
                known: source.names(),
            })
        }
    }
    if !props.contains_key(&source.title_property) {
        let (title, title_cut) = property_text(&card.title);
        cut |= title_cut;
        props.insert(source.title_property.clone(), json!({ "title": title }));
    }
    Ok(json!({
        "parent": {"type": "data_source_id", "data_source_id": source.id},
        "properties": props,
        "children": children(card, cut),
    }))
}

fn invalid(name: &str, kind: &PropertyType, why: String) -> PropertyError {
    let kind = match kind {
        PropertyType::Number => "number",
        PropertyType::Select => "select",
        PropertyType::Status => "status",
        PropertyType::Date => "date",
        PropertyType::Checkbox => "checkbox",
        PropertyType::Url => "url",
        PropertyType::Email => "email",
        PropertyType::PhoneNumber => "phone_number",
        _ => "text",
    };
    PropertyError::Invalid {
        name: name.to_owned(),
        kind,
        why,
    }
}

/// A value as a reason quotes it: short, on one line.
fn quoted(raw: &str) -> String {
    let one_line: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("`{}`", cut_to(&one_line, QUOTE_MAX, Unit::Chars).0)
}

/// The value under a property's type key, `None` to leave it unset.
fn property_value(
    name: &str,
    kind: &PropertyType,
    raw: &str,
    cut: &mut bool,
) -> Result<Option<Value>, PropertyError> {
    let trimmed = raw.trim();
    if let PropertyType::Title | PropertyType::RichText = kind {
        if trimmed.is_empty() {
            return Ok(None);
        }
        let (text, was_cut) = property_text(raw);
        *cut |= was_cut;
        return Ok(Some(Value::Array(text)));
    }
    if let PropertyType::Other(other) = kind {
        return Err(PropertyError::Unsupported {
            name: name.to_owned(),
            kind: other.clone(),
        });
    }
    if trimmed.is_empty() {
        return Ok(None);
    }
    let limited = |max: usize, what: &str| {
        if UNIT.len(trimmed) > max {
            Err(invalid(
                name,
                kind,
                format!(
                    "{what} has {} characters, more than the {max} Notion takes",
                    UNIT.len(trimmed)
                ),
            ))
        } else {
            Ok(Some(json!(trimmed)))
        }
    };
    match kind {
        PropertyType::Number => number(trimmed)
            .map(Some)
            .ok_or_else(|| invalid(name, kind, format!("{} is not a number", quoted(raw)))),
        PropertyType::Select | PropertyType::Status => {
            if trimmed.contains(',') {
                return Err(invalid(
                    name,
                    kind,
                    format!(
                        "{} holds a comma, which Notion refuses in an option",
                        quoted(raw)
                    ),
                ));
            }
            Ok(Some(json!({"name": option_name(trimmed, cut)})))
        }
        PropertyType::MultiSelect => {
            let mut names: Vec<String> = Vec::new();
            for part in trimmed.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let part = option_name(part, cut);
                if !names.contains(&part) {
                    names.push(part);
                }
            }
            if names.len() > ARRAY_MAX {
                names.truncate(ARRAY_MAX);
                *cut = true;
            }
            Ok(Some(Value::Array(
                names.into_iter().map(|n| json!({"name": n})).collect(),
            )))
        }
        PropertyType::Date => {
            if is_date(trimmed) {
                Ok(Some(json!({"start": trimmed})))
            } else {
                Err(invalid(
                    name,
                    kind,
                    format!(
                        "{} is not a date (2026-11-30) or an RFC 3339 time (2026-11-30T10:00:00Z)",
                        quoted(raw)
                    ),
                ))
            }
        }
        PropertyType::Checkbox => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Ok(Some(json!(true))),
            "false" | "no" | "0" | "off" => Ok(Some(json!(false))),
            _ => Err(invalid(
                name,
                kind,
                format!("{} is not true or false", quoted(raw)),
            )),
        },
        PropertyType::Url => limited(URL_MAX, "the URL"),
        PropertyType::Email => limited(EMAIL_MAX, "the address"),
        PropertyType::PhoneNumber => limited(PHONE_MAX, "the number"),
        PropertyType::Title | PropertyType::RichText | PropertyType::Other(_) => Ok(None),
    }
}

/// A JSON number: integers exactly, others as finite floats.
fn number(text: &str) -> Option<Value> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(json!(n));
    }
    let n = text.parse::<f64>().ok().filter(|n| n.is_finite())?;
    serde_json::Number::from_f64(n).map(Value::Number)
}

fn option_name(name: &str, cut: &mut bool) -> String {
    let (name, was_cut) = cut_to(name, OPTION_NAME_MAX, UNIT);
    *cut |= was_cut;
    name
}

fn is_date(text: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    let day = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, day).is_ok() || time::OffsetDateTime::parse(text, &Rfc3339).is_ok()
}

/// Pieces of `s` of at most `max` UTF-16 units each, split between characters.
fn pieces(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (at, c) in s.char_indices() {
        let len = c.len_utf16();
        if used + len > max {
            out.push(&s[start..at]);
            start = at;
            used = 0;
        }
        used += len;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// A property's rich text: objects of ≤ [`TEXT_MAX`], at most [`ARRAY_MAX`] of them; the flag
/// says whether the text was cut to fit.
fn property_text(text: &str) -> (Vec<Value>, bool) {
    // A piece ends early when a surrogate pair would straddle the limit, so leave a unit of
    // room per piece.
    let (text, cut) = cut_to(text, ARRAY_MAX * (TEXT_MAX - 1), UNIT);
    let objects = pieces(&text, TEXT_MAX)
        .into_iter()
        .map(|p| text_object(p, None, Style::Plain))
        .collect();
    (objects, cut)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Bold,
    Italic,
    Gray,
}

fn text_object(content: &str, link: Option<&str>, style: Style) -> Value {
    let mut object = json!({
        "type": "text",
        "text": {"content": content, "link": link.map(|url| json!({"url": url}))},
    });
    let annotations = match style {
        Style::Plain => None,
        Style::Bold => Some(json!({"bold": true})),
        Style::Italic => Some(json!({"italic": true})),
        Style::Gray => Some(json!({"color": "gray"})),
    };
    if let (Some(annotations), Some(map)) = (annotations, object.as_object_mut()) {
        map.insert("annotations".to_owned(), annotations);
    }
    object
}

/// A run of text in a paragraph: its style and, for a link, where it points.
struct Run {
    text: String,
    link: Option<String>,
    style: Style,
}

impl Run {
    fn plain(text: impl Into<String>, style: Style) -> Run {
        Run {
            text: text.into(),
            link: None,
            style,
        }
    }

    fn link(text: impl Into<String>, url: &str) -> Run {
        // A link Notion would refuse (over its URL limit) is shown as text instead.
        let link = (UNIT.len(url) <= URL_MAX).then(|| url.to_owned());
        Run {
            text: text.into(),
            link,
            style: Style::Plain,
        }
    }
}

/// Paragraph blocks of runs: rich text objects of ≤ [`TEXT_MAX`], ≤ [`ARRAY_MAX`] of them a
/// block (a longer paragraph continues in the next block), within what is left of `budget`.
fn paragraphs(runs: &[Run], budget: &mut usize, cut: &mut bool) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut objects = Vec::new();
    for run in runs {
        if *budget == 0 {
            *cut = true;
            break;
        }
        let (text, was_cut) = cut_to(&run.text, *budget, UNIT);
        *cut |= was_cut;
        *budget = budget.saturating_sub(UNIT.len(&text));
        for piece in pieces(&text, TEXT_MAX) {
            if objects.len() == ARRAY_MAX {
                blocks.push(paragraph(std::mem::take(&mut objects)));
            }
            objects.push(text_object(piece, run.link.as_deref(), run.style));
        }
    }
    if !objects.is_empty() {
        blocks.push(paragraph(objects));
    }
    blocks
}

fn paragraph(rich_text: Vec<Value>) -> Value {
    json!({"object": "block", "type": "paragraph", "paragraph": {"rich_text": rich_text}})
}

/// The page's content: the card's text, notes, fields, buttons and footer as paragraphs, at
/// most [`ARRAY_MAX`] blocks; when anything was cut (here or by routing), a last paragraph
/// links to the full event.
fn children(card: &Card, mut cut: bool) -> Vec<Value> {
    let mut budget = CHILDREN_TEXT_MAX;
    let mut blocks = Vec::new();
    let text: Vec<Run> = card
        .text
        .iter()
        .map(|span| match span {
            Span::Text { text } | Span::Value { text } => Run::plain(text.clone(), Style::Plain),
            Span::Link { url, label } if label.trim().is_empty() => Run::link(url.clone(), url),
            Span::Link { url, label } => Run::link(label.clone(), url),
        })
        .collect();
    blocks.extend(paragraphs(&text, &mut budget, &mut cut));
    for note in &card.notes {
        blocks.extend(paragraphs(
            &[Run::plain(note.clone(), Style::Italic)],
            &mut budget,
            &mut cut,
        ));
    }
    for field in &card.fields {
        let runs = [
            Run::plain(format!("{}: ", field.name), Style::Bold),
            Run::plain(field.value.clone(), Style::Plain),
        ];
        blocks.extend(paragraphs(&runs, &mut budget, &mut cut));
    }
    if !card.buttons.is_empty() {
        let mut runs = Vec::new();
        for (i, button) in card.buttons.iter().enumerate() {
            if i > 0 {
                runs.push(Run::plain(" · ", Style::Plain));
            }
            runs.push(Run::link(button.label.clone(), &button.url));
        }
        blocks.extend(paragraphs(&runs, &mut budget, &mut cut));
    }
    if !card.footer.trim().is_empty() {
        blocks.extend(paragraphs(
            &[Run::plain(card.footer.clone(), Style::Gray)],
            &mut budget,
            &mut cut,
        ));
    }
    if blocks.len() > ARRAY_MAX {
        cut = true;
    }
    if cut {
        blocks.truncate(ARRAY_MAX - 1);
        let last = match &card.link {
            Some(link) => Run::link("View the full event", link),
            None => Run::plain("Part of this event was left out.", Style::Italic),
        };
        let mut room = TEXT_MAX;
        blocks.extend(paragraphs(&[last], &mut room, &mut false));
    }
    blocks
}

/// The dashed form of a Notion ID written with or without dashes, or taken from a Notion URL
/// (`https://www.notion.so/Events-27a5d30a17284a1ea78871341f22fb97?v=…`: the last 32 hex
/// digits of the path); `None` when there is none.
pub fn notion_id(text: &str) -> Option<String> {
    let text = text.trim();
    let path = text
        .split(['?', '#'])
        .next()
        .unwrap_or(text)
        .trim_end_matches('/');
    let hex: Vec<char> = path
        .chars()
        .rev()
        .filter(|c| *c != '-')
        .take_while(char::is_ascii_hexdigit)
        .collect();
    if hex.len() < 32 {
        return None;
    }
    let id: String = hex.iter().take(32).rev().collect::<String>().to_lowercase();
    // An ID written alone must be exactly one; in a URL the slug before it may end in hex.
    let alone = !path.contains('/');
    if alone && hex.len() != 32 {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..]
    ))
}

/// Talks to Notion's API (or a stand-in at another base URL).
#[derive(Debug)]
pub struct Notion {
    client: reqwest::Client,
    base: String,
}

impl Notion {
    /// `base` is [`DEFAULT_API_URL`] unless configuration names another (`NOTION_API_URL`);
    /// requests go to `{base}/v1/…`. Redirects are not followed.
    pub fn new(base: &str, timeout: Duration) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    fn request(&self, method: Method, path: &str, token: &SecretString) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/v1/{path}", self.base))
            .bearer_auth(token.expose_secret())
            .header("Notion-Version", API_VERSION)
    }

    /// Sends a request and reads its whole answer.
    async fn answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, HeaderMap, bytes::Bytes), reqwest::Error> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        Ok((status, headers, response.bytes().await?))
    }

    /// Sends a request that writes nothing: its JSON answer, or what the failure means.
    async fn read(&self, request: reqwest::RequestBuilder) -> Result<Value, Verdict> {
        read_outcome(self.answer(request).await)
    }

    /// The data source pages go to, with its schema. `id` names a database with one data
    /// source, or a data source (an ID or a Notion URL, see [`notion_id`]). A database with
    /// several data sources is not guessed at: the target pauses, and the hint lists them.
    #[tracing::instrument(skip_all)]
    pub async fn data_source(&self, token: &SecretString, id: &str) -> Result<DataSource, Verdict> {
        let Some(id) = notion_id(id) else {
            return Err(Verdict::PauseTarget {
                reason: "the Notion destination's database is not a Notion ID".into(),
                hint: "set it to the database's ID (32 hex digits) or its link (in Notion: \
                       ··· → Copy link)"
                    .into(),
            });
        };
        let database = self
            .answer(self.request(Method::GET, &format!("databases/{id}"), token))
            .await;
        let source_id = match database {
            // Not a database this integration can see: perhaps a data source.
            Ok((404, ..)) => id.clone(),
            other => only_data_source(&id, &read_outcome(other)?)?,
        };
        let source = self
            .read(self.request(Method::GET, &format!("data_sources/{source_id}"), token))
            .await
            .map_err(|verdict| match verdict {
                Verdict::PauseTarget { reason, hint } if source_id == id => Verdict::PauseTarget {
                    reason: format!("Notion has no database or data source {id} shared with the integration ({reason})"),
                    hint,
                },
                other => other,
            })?;
        DataSource::from_json(&source).ok_or_else(|| Verdict::Retry {
            reason: format!("Notion's answer for data source {source_id} is not a data source"),
            maybe_sent: false,
        })
    }

    /// The page whose `id_property` equals `event_id`, if the data source has one: the check
    /// after an answer that left it open whether a page was created. (Notion's search may
    /// take a moment to see a new page; ask again a little later before creating it anew.)
    #[tracing::instrument(skip_all, fields(data_source = %source.id))]
    pub async fn find(
        &self,
        token: &SecretString,
        source: &DataSource,
        id_property: &str,
        event_id: &str,
    ) -> Result<Option<String>, Verdict> {
        let key = match source.kind_of(id_property) {
            Some(PropertyType::Title) => "title",
            _ => "rich_text",
        };
        let query = json!({
            "filter": {"property": id_property, key: {"equals": event_id}},
            "page_size": 1,
        });
        let path = format!("data_sources/{}/query", source.id);
        let answer = self
            .read(self.request(Method::POST, &path, token).json(&query))
            .await?;
        Ok(answer
            .get("results")
            .and_then(Value::as_array)
            .and_then(|results| results.first())
            .and_then(|page| page.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// Creates a page ([`page_body`]) as attempt `now` (seconds since the epoch) and says what
    /// the answer means; `Delivered`'s receipt is the page's ID.
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, token: &SecretString, body: &Value, now: i64) -> Verdict {
        let sent = self
            .request(Method::POST, "pages", token)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => classify(status, &headers, &body, now),
                    Err(_) if (200..300).contains(&status) => Verdict::Delivered {
                        receipt: format!("HTTP {status}"),
                        hold: None,
                    },
                    Err(e) => transport("Notion", e, None),
                }
            }
            Err(e) => transport("Notion", e, None),
        }
    }
}

/// What the answer to a request that writes nothing means: its JSON, or a verdict (never
/// `maybe_sent`, since nothing can have been created).
fn read_outcome(
    answer: Result<(u16, HeaderMap, bytes::Bytes), reqwest::Error>,
) -> Result<Value, Verdict> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verdict = match answer {
        Ok((status, _, body)) if (200..300).contains(&status) => {
            return serde_json::from_slice(&body).map_err(|_| Verdict::Retry {
                reason: format!("Notion answered {status} with a body that is not JSON"),
                maybe_sent: false,
            })
        }
        Ok((status, headers, body)) => classify(status, &headers, &body, now),
        Err(e) => transport("Notion", e, None),
    };
    Err(match verdict {
        Verdict::Retry { reason, .. } => Verdict::Retry {
            reason,
            maybe_sent: false,
        },
        other => other,
    })
}

/// The one data source of a database (`GET /v1/databases/{id}`).
fn only_data_source(database_id: &str, database: &Value) -> Result<String, Verdict> {
    let sources: Vec<(&str, &str)> = database
        .get("data_sources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|s| {
                    let id = s.get("id")?.as_str()?;
                    Some((id, s.get("name").and_then(Value::as_str).unwrap_or("")))
                })
                .collect()
        })
        .unwrap_or_default();
    match sources.as_slice() {
        [(only, _)] => Ok((*only).to_owned()),
        [] => Err(Verdict::Retry {
            reason: format!("Notion's answer for database {database_id} lists no data source"),
            maybe_sent: false,
        }),
        several => Err(Verdict::PauseTarget {
            reason: format!(
                "the Notion database {database_id} has {} data sources, and the destination \
                 does not say which one pages go to",
                several.len()
            ),
            hint: format!(
                "set the destination's database to one data source's ID: {}",
                several
                    .iter()
                    .map(|(id, name)| format!("{id} ({name})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// What a Notion answer means (`now` in seconds since the epoch, for a dated Retry-After).
/// Status codes and error codes are those of
/// <https://developers.notion.com/reference/status-codes>.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8], now: i64) -> Verdict {
    let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        let receipt = answer
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {status}"), str::to_owned);
        return Verdict::Delivered {
            receipt,
            hold: None,
        };
    }
    let code = answer.get("code").and_then(Value::as_str).unwrap_or("");
    let message = answer
        .get("message")
        .and_then(Value::as_str)
        .map(|m| cut_to(m, 300, Unit::Chars).0)
        .unwrap_or_default();
    let said = if code.is_empty() {
        format!("Notion answered HTTP {status}")
    } else if message.is_empty() {
        format!("Notion answered {status} {code}")
    } else {
        format!("Notion answered {status} {code}: {message}")
    };
    match status {
        429 => Verdict::RetryAfter {
            wait: retry_after(headers, now).unwrap_or(Duration::from_secs(1)),
            reason: said,
        },
        401 => Verdict::PauseTarget {
            reason: format!("{said} (the integration token is not valid)"),
            hint: "store a new integration token (ntn_…) in the destination's secret: Notion → \
                   Settings → Connections → Develop or manage integrations → the integration → \
                   Internal Integration Secret"
                .into(),
        },
        403 | 404 => Verdict::PauseTarget {
            reason: said,
            hint: "share the database with the integration: open the database in Notion, ··· \
                   (top right) → Connections → add the integration (it needs the Read, Insert \
                   and Update content capabilities)"
                .into(),
        },
        409 => Verdict::Retry {
            reason: said,
            maybe_sent: false,
        },
        408 | 500..=599 => Verdict::Retry {
            reason: said,
            // Notion may have created the page before failing: look before creating again.
            maybe_sent: true,
        },
        _ => Verdict::Park { reason: said },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::card::{Field, Link};
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    const DS: &str = "164b19c5-58e5-4a47-a3a9-c905d9519c65";

    fn source() -> DataSource {
        let p = |n: &str, k: &str| (n.to_owned(), PropertyType::parse(k));
        DataSource {
            id: DS.into(),
            properties: vec![
                p("Name", "title"),
                p("Event ID", "rich_text"),
                p("Account", "rich_text"),
                p("Plan", "select"),
                p("Tags", "multi_select"),
                p("Count", "number"),
                p("Received", "date"),
                p("Paid", "checkbox"),
                p("Site", "url"),
                p("Owner", "people"),
            ],
            title_property: "Name".into(),
        }
    }

    fn card() -> Card {
        Card {
            title: "feature.used".into(),
            text: vec![
                Span::Text {
                    text: "Used by ".into(),
                },
                Span::Value {
                    text: "acme".into(),
                },
                Span::Link {
                    url: "https://app.example/a".into(),
                    label: "open".into(),
                },
            ],
            fields: vec![Field {
                name: "Plan".into(),
                value: "pro".into(),
            }],
            footer: "ingestlayer · from web-app".into(),
            link: Some("https://x.example/v1/events/e1?sig=s".into()),
            ..Card::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn body(pairs: &[(&str, &str)]) -> Result<Value, PropertyError> {
        page_body(
            &source(),
            &map(pairs),
            &card(),
            "api:e1",
            DEFAULT_ID_PROPERTY,
        )
    }

    fn all_objects(v: &Value) -> Vec<&Value> {
        let mut out = Vec::new();
        if let Some(children) = v["children"].as_array() {
            for block in children {
                out.extend(
                    block["paragraph"]["rich_text"]
                        .as_array()
                        .into_iter()
                        .flatten(),
                );
            }
        }
        out
    }

    #[test]
    fn values_are_converted_by_their_property_type() {
        let b = body(&[
            ("Plan", "pro"),
            ("Tags", "a, b,,a"),
            ("Count", " 3 "),
            ("Received", "2026-11-30T10:00:00Z"),
            ("Paid", "Yes"),
            ("Site", "https://acme.example"),
            ("Account", "acme"),
        ])
        .unwrap();
        let p = &b["properties"];
        assert_eq!(
            b["parent"],
            json!({"type": "data_source_id", "data_source_id": DS})
        );
        assert_eq!(p["Plan"], json!({"select": {"name": "pro"}}));
        assert_eq!(
            p["Tags"],
            json!({"multi_select": [{"name": "a"}, {"name": "b"}]})
        );
        assert_eq!(p["Count"], json!({"number": 3}));
        assert_eq!(
            p["Received"],
            json!({"date": {"start": "2026-11-30T10:00:00Z"}})
        );
        assert_eq!(p["Paid"], json!({"checkbox": true}));
        assert_eq!(p["Site"], json!({"url": "https://acme.example"}));
        assert_eq!(p["Account"]["rich_text"][0]["text"]["content"], "acme");
        assert_eq!(p["Event ID"]["rich_text"][0]["text"]["content"], "api:e1");
        assert_eq!(p["Name"]["title"][0]["text"]["content"], "feature.used");
        assert_eq!(
            body(&[("Count", "-1.5e2")]).unwrap()["properties"]["Count"]["number"],
            -150.0
        );
        assert_eq!(
            body(&[("Received", "2026-11-30")]).unwrap()["properties"]["Received"]["date"]["start"],
            "2026-11-30"
        );
    }

    #[test]
    fn empty_values_leave_properties_unset_and_a_mapped_title_wins() {
        let b = body(&[
            ("Count", ""),
            ("Plan", "  "),
            ("Account", ""),
            ("Name", "Custom"),
        ])
        .unwrap();
        assert!(b["properties"].get("Count").is_none());
        assert!(b["properties"].get("Plan").is_none());
        assert!(b["properties"].get("Account").is_none());
        assert_eq!(
            b["properties"]["Name"]["title"][0]["text"]["content"],
            "Custom"
        );
        // A mapped title that renders empty falls back to the card's title.
        let b = body(&[("Name", " ")]).unwrap();
        assert_eq!(
            b["properties"]["Name"]["title"][0]["text"]["content"],
            "feature.used"
        );
    }

    #[test]
    fn the_event_id_always_goes_into_the_id_property() {
        let b = body(&[("Event ID", "forged")]).unwrap();
        assert_eq!(
            b["properties"]["Event ID"]["rich_text"][0]["text"]["content"],
            "api:e1"
        );
        let s = source();
        let as_title = page_body(&s, &[], &card(), "api:e1", "Name").unwrap();
        assert_eq!(
            as_title["properties"]["Name"]["title"][0]["text"]["content"],
            "api:e1"
        );
        assert_eq!(
            page_body(&s, &[], &card(), "e", "Nope").unwrap_err(),
            PropertyError::NoIdProperty {
                name: "Nope".into(),
                known: s.names()
            }
        );
        assert!(matches!(
            page_body(&s, &[], &card(), "e", "Count"),
            Err(PropertyError::IdPropertyType { .. })
        ));
    }

    #[test]
    fn refusals_name_the_property_and_what_the_database_has() {
        let unknown = body(&[("Plann", "pro")]).unwrap_err().to_string();
        assert!(unknown.contains("`Plann`"), "{unknown}");
        assert!(
            unknown.contains("Name, Event ID, Account, Plan"),
            "{unknown}"
        );
        let nan = body(&[("Count", "three")]).unwrap_err().to_string();
        assert_eq!(
            nan,
            "`Count` is a number property, and `three` is not a number"
        );
        assert!(body(&[("Count", "NaN")]).is_err());
        assert!(body(&[("Count", "inf")]).is_err());
        let comma = body(&[("Plan", "pro, annual")]).unwrap_err().to_string();
        assert!(comma.contains("comma"), "{comma}");
        assert!(body(&[("Received", "yesterday")])
            .unwrap_err()
            .to_string()
            .contains("`Received`"));
        assert!(body(&[("Paid", "maybe")]).is_err());
        assert!(body(&[("Site", &"x".repeat(2001))]).is_err());
        let people = body(&[("Owner", "u1")]).unwrap_err().to_string();
        assert!(people.contains("people"), "{people}");
        // A long value is quoted short, on one line.
        let long = body(&[("Count", &format!("a\nb{}", "c".repeat(500)))])
            .unwrap_err()
            .to_string();
        assert!(long.len() < 120 && !long.contains('\n'), "{long}");
    }

    #[test]
    fn long_text_is_split_into_objects_within_notions_limits() {
        // Emoji are two UTF-16 units: Notion counts those.
        let long = "😀".repeat(1500) + &"a".repeat(3000);
        let b = body(&[("Account", &long)]).unwrap();
        let objects = b["properties"]["Account"]["rich_text"].as_array().unwrap();
        assert!(objects.len() >= 3);
        let mut joined = String::new();
        for o in objects {
            let content = o["text"]["content"].as_str().unwrap();
            assert!(UNIT.len(content) <= TEXT_MAX);
            joined.push_str(content);
        }
        assert_eq!(joined, long);

        let huge = "b".repeat(ARRAY_MAX * TEXT_MAX + 10);
        let mut c = card();
        c.text = vec![Span::Value { text: huge.clone() }];
        let b = page_body(&source(), &map(&[("Account", &huge)]), &c, "e", "Event ID").unwrap();
        let objects = b["properties"]["Account"]["rich_text"].as_array().unwrap();
        assert!(objects.len() <= ARRAY_MAX);
        assert!(objects.last().unwrap()["text"]["content"]
            .as_str()
            .unwrap()
            .ends_with('…'));
        let children = b["children"].as_array().unwrap();
        assert!(children.len() <= ARRAY_MAX);
        let mut total = 0;
        for block in children {
            let rich = block["paragraph"]["rich_text"].as_array().unwrap();
            assert!(rich.len() <= ARRAY_MAX);
            for o in rich {
                let n = UNIT.len(o["text"]["content"].as_str().unwrap());
                assert!(n <= TEXT_MAX);
                total += n;
            }
        }
        assert!(total <= CHILDREN_TEXT_MAX + TEXT_MAX);
        let last = children.last().unwrap();
        assert_eq!(
            last["paragraph"]["rich_text"][0]["text"],
            json!({"content": "View the full event", "link": {"url": "https://x.example/v1/events/e1?sig=s"}})
        );
    }

    #[test]
    fn the_content_has_the_text_with_links_fields_and_footer_and_no_link_when_whole() {
        let mut c = card();
        c.buttons = vec![Link {
            label: "Stripe".into(),
            url: "https://dashboard.stripe.example/x".into(),
        }];
        c.notes = vec!["5 events within 10m".into()];
        let b = page_body(&source(), &[], &c, "e", "Event ID").unwrap();
        let objects = all_objects(&b);
        let texts: Vec<&str> = objects
            .iter()
            .map(|o| o["text"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "Used by ",
                "acme",
                "open",
                "5 events within 10m",
                "Plan: ",
                "pro",
                "Stripe",
                "ingestlayer · from web-app"
            ]
        );
        assert_eq!(objects[2]["text"]["link"]["url"], "https://app.example/a");
        assert_eq!(objects[4]["annotations"]["bold"], true);
        assert_eq!(
            objects[6]["text"]["link"]["url"],
            "https://dashboard.stripe.example/x"
        );
        assert!(!texts.contains(&"View the full event"));

        c.truncated = true;
        c.link = None;
        let b = page_body(&source(), &[], &c, "e", "Event ID").unwrap();
        let last = b["children"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last["paragraph"]["rich_text"][0]["text"]["content"],
            "Part of this event was left out."
        );
    }

    #[test]
    fn many_fields_stay_within_a_hundred_blocks() {
        let mut c = card();
        c.fields = (0..150)
            .map(|i| Field {
                name: format!("f{i}"),
                value: "v".into(),
            })
            .collect();
        let b = page_body(&source(), &[], &c, "e", "Event ID").unwrap();
        let children = b["children"].as_array().unwrap();
        assert_eq!(children.len(), ARRAY_MAX);
        assert_eq!(
            children[ARRAY_MAX - 1]["paragraph"]["rich_text"][0]["text"]["content"],
            "View the full event"
        );
    }

    #[test]
    fn ids_are_read_dashed_undashed_or_from_a_link() {
        let dashed = "27a5d30a-1728-4a1e-a788-71341f22fb97";
        assert_eq!(notion_id(dashed).as_deref(), Some(dashed));
        assert_eq!(
            notion_id("27A5D30A17284A1EA78871341F22FB97").as_deref(),
            Some(dashed)
        );
        assert_eq!(
            notion_id("https://www.notion.so/acme/Events-27a5d30a17284a1ea78871341f22fb97?v=abc")
                .as_deref(),
            Some(dashed)
        );
        assert_eq!(
            notion_id("https://www.notion.so/27a5d30a17284a1ea78871341f22fb97").as_deref(),
            Some(dashed)
        );
        assert_eq!(notion_id("not-an-id"), None);
        assert_eq!(notion_id("../pages"), None);
        assert_eq!(notion_id("a27a5d30a17284a1ea78871341f22fb97"), None);
    }

    fn error(code: &str, message: &str) -> Vec<u8> {
        json!({"object": "error", "code": code, "message": message})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn answers_are_classified_as_the_module_says() {
        let none = HeaderMap::new();
        assert_eq!(
            classify(200, &none, br#"{"object":"page","id":"p1"}"#, 0),
            Verdict::Delivered {
                receipt: "p1".into(),
                hold: None
            }
        );
        let mut later = HeaderMap::new();
        later.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert!(matches!(
            classify(429, &later, &error("rate_limited", "Slow down"), 0),
            Verdict::RetryAfter { wait, .. } if wait == Duration::from_secs(7)
        ));
        assert!(matches!(
            classify(429, &none, b"", 0),
            Verdict::RetryAfter { wait, .. } if wait == Duration::from_secs(1)
        ));
        assert_eq!(
            classify(
                400,
                &none,
                &error("validation_error", "Plan is expected to be select."),
                0
            ),
            Verdict::Park {
                reason: "Notion answered 400 validation_error: Plan is expected to be select."
                    .into()
            }
        );
        let Verdict::PauseTarget { hint, .. } = classify(
            401,
            &none,
            &error("unauthorized", "API token is invalid."),
            0,
        ) else {
            panic!("401 pauses")
        };
        assert!(hint.contains("integration token"), "{hint}");
        for status in [403, 404] {
            let Verdict::PauseTarget { hint, .. } = classify(
                status,
                &none,
                &error("object_not_found", "Could not find"),
                0,
            ) else {
                panic!("{status} pauses")
            };
            assert!(hint.contains("Connections"), "{hint}");
        }
        assert!(matches!(
            classify(409, &none, &error("conflict_error", "c"), 0),
            Verdict::Retry {
                maybe_sent: false,
                ..
            }
        ));
        for status in [500, 502, 503, 504] {
            assert!(matches!(
                classify(status, &none, b"<html>", 0),
                Verdict::Retry {
                    maybe_sent: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn several_data_sources_are_listed_not_guessed() {
        let one = json!({"data_sources": [{"id": "a", "name": "Events"}]});
        assert_eq!(only_data_source("db", &one), Ok("a".into()));
        let two =
            json!({"data_sources": [{"id": "a", "name": "Events"}, {"id": "b", "name": "Old"}]});
        let Err(Verdict::PauseTarget { hint, .. }) = only_data_source("db", &two) else {
            panic!("several pause")
        };
        assert!(hint.contains("a (Events), b (Old)"), "{hint}");
    }

    #[test]
    fn a_data_source_is_read_from_notions_answer() {
        let answer = json!({
            "object": "data_source", "id": DS,
            "properties": {
                "Name": {"id": "title", "type": "title", "title": {}},
                "Plan": {"id": "x", "type": "select", "select": {"options": []}},
                "Owner": {"id": "y", "type": "people", "people": {}},
            }
        });
        let s = DataSource::from_json(&answer).unwrap();
        assert_eq!(s.title_property, "Name");
        assert_eq!(s.kind_of("Plan"), Some(&PropertyType::Select));
        assert_eq!(
            s.kind_of("Owner"),
            Some(&PropertyType::Other("people".into()))
        );
        assert_eq!(
            DataSource::from_json(&json!({"id": DS, "properties": {}})),
            None
        );
    }
}
