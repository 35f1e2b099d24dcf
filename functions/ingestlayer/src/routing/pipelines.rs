//! Pipelines: what users configure, one DynamoDB item each.
//!
//! An item is parsed into a typed [`Pipeline`] once, when the pipelines are loaded; a
//! malformed item is reported with its pipeline id and the failing field and is skipped,
//! never stopping the others. The item format is documented in the README.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use serde_json::Value;

use crate::event::EventName;
#[cfg(test)]
use crate::ids::parse_team;
use crate::ids::{ChannelRef, PipelineId, TeamId, DEFAULT_TEAM};
use crate::outbound::message::Target;
use crate::routing::filter::Filter;
use crate::routing::render::{RawTemplate, Template, TemplateText};

pub use crate::delivery::message::{DEFAULT_DIGEST_THRESHOLD, DEFAULT_MIN_INTERVAL_MS};

#[derive(Debug)]
pub struct SlackDestination {
    pub team: TeamId,
    pub channel: ChannelRef,
    pub template: Template,
    /// Least time between two posts to the channel (`rate_per_second`, default 1).
    pub min_interval_ms: u64,
    /// Digest at or above this many waiting messages (`digest_threshold`; 0 turns digests off).
    pub digest_threshold: usize,
    /// `thread_by`: the field whose value keys the day's thread the messages go in.
    pub thread_by: Option<Vec<String>>,
    /// `mention`: the field holding an email to mention (looked up at delivery).
    pub mention: Option<Vec<String>>,
}

impl SlackDestination {
    /// The FIFO message group: one per workspace and channel, so each channel's messages
    /// are delivered in order and channels never wait for each other.
    pub fn group_id(&self) -> String {
        format!("{}:{}", self.team, self.channel)
    }
}

/// Where a pipeline's messages go: a Slack channel, or one of the destinations beyond Slack
/// (`webhook`, `discord`, `telegram`, `email`, `notion`), delivered by the
/// destination-delivery function.
#[derive(Debug)]
pub enum Destination {
    Slack(SlackDestination),
    Outbound(OutboundDestination),
}

impl Destination {
    /// How a route step's `to` names it: a Slack destination by its channel (or `name`),
    /// another by its `name` (or its type, when that is unique in the pipeline).
    pub fn label(&self) -> String {
        match self {
            Destination::Slack(d) => d.channel.to_string(),
            Destination::Outbound(d) => d.label(),
        }
    }

    pub fn template(&self) -> &Template {
        match self {
            Destination::Slack(d) => &d.template,
            Destination::Outbound(d) => &d.template,
        }
    }

    pub fn as_slack(&self) -> Option<&SlackDestination> {
        match self {
            Destination::Slack(d) => Some(d),
            Destination::Outbound(_) => None,
        }
    }
}

/// A destination beyond Slack. Its secrets are named (`secret: stripe-hook`), kept in
/// Secrets Manager under the stack's prefix and key, never in the pipeline item.
#[derive(Debug)]
pub struct OutboundDestination {
    /// `name`: how route steps and `explain` name it.
    pub name: Option<String>,
    pub target: Target,
    pub template: Template,
    /// Notion: each property's value, rendered from the event (`Plan: $event.plan`).
    pub properties: Vec<(String, TemplateText)>,
    /// Email: this many or more waiting messages for the same recipients go as one digest
    /// (0 never).
    pub digest_threshold: usize,
}

impl OutboundDestination {
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.target.kind().to_owned())
    }
}

pub use crate::outbound::message::valid_secret_name;

/// An `enrich.entity` step: look up `<entity>#<value of key>` in the entities table and
/// attach the listed attributes (all when none are listed) under `as`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichSpec {
    pub entity: String,
    /// Path of the event field holding the entity id, e.g. `user_id`.
    pub key: Vec<String>,
    pub attributes: Option<Vec<String>>,
    pub attach_as: String,
}

/// A route step's channels as written, resolved to destinations once those are read: the
/// step's index, each route's `to`, and `default`.
type RouteChannels = (usize, Vec<Vec<String>>, Option<Vec<String>>);

/// A duration as written in a pipeline (`10m`, `1h`, `7d`), kept with its text for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub ms: i64,
    pub text: String,
}

impl Window {
    /// The longest window a step may hold state for.
    pub const MAX_MS: i64 = 90 * 86_400_000;

    pub fn parse(s: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?} is not a duration such as 30s, 10m, 1h or 7d: {e}"))?;
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if !(1000..=Self::MAX_MS).contains(&ms) {
            return Err(format!("{s:?} must be between 1s and 90d"));
        }
        Ok(Self {
            ms,
            text: s.trim().to_owned(),
        })
    }
}

/// A `throttle` step: the first event of each key passes, the others are held until the
/// window has passed; held events are counted for the next message that passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSpec {
    pub key: Vec<String>,
    pub window: Window,
}

/// A `threshold` step: passes once when `count` events of one key arrive within `window`
/// (a window opened by the first of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdSpec {
    pub key: Vec<String>,
    pub count: u64,
    pub window: Window,
}

/// A `rollup` step: counts each key's events (and distinct values of `distinct`) over a
/// calendar window, for templates (`$rollup.count`, `$rollup.distinct`). Never holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupSpec {
    pub key: Vec<String>,
    pub window: Window,
    pub distinct: Option<Vec<String>>,
}

/// A `route` step: the destinations (by index) of the first route whose `when` holds, else
/// the default ones; with no default and no route holding, the event is filtered.
#[derive(Debug)]
pub struct RouteSpec {
    pub routes: Vec<(Filter, Vec<usize>)>,
    pub default: Option<Vec<usize>>,
}

/// A pipeline's `heartbeat`: each event (that passes the steps) is a ping for its key; a key
/// not pinged for `interval` + `grace` gets one "missing" message, and one "back" message
/// when it pings again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSpec {
    pub key: Vec<String>,
    pub interval: Window,
    pub grace: Window,
}

/// A pipeline's `mute`: each message carries a button that mutes its key for `duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteSpec {
    pub key: Vec<String>,
    pub duration: Window,
    pub label: String,
}

#[derive(Debug)]
pub enum Step {
    Filter(Filter),
    Enrich(EnrichSpec),
    Throttle(ThrottleSpec),
    Threshold(ThresholdSpec),
    Rollup(RollupSpec),
    Route(RouteSpec),
}

impl Step {
    /// The step's `type` as written in a pipeline.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Filter(_) => "filter.match",
            Step::Enrich(_) => "enrich.entity",
            Step::Throttle(_) => "throttle",
            Step::Threshold(_) => "threshold",
            Step::Rollup(_) => "rollup",
            Step::Route(_) => "route",
        }
    }
}

/// An event name a pipeline listens to: exact (`feature.used`) or with `*` wildcards
/// (`customer.subscription.*`, `*.failed`, `*`), where `*` stands for any run of characters,
/// dots included.
#[derive(Debug, Clone)]
pub enum EventPattern {
    Exact(EventName),
    Wildcard {
        pattern: String,
        regex: regex::Regex,
    },
}

impl EventPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.contains('*') {
            return EventName::parse(s)
                .map(Self::Exact)
                .map_err(|e| e.to_string());
        }
        // Checked as a name with each `*` standing for a letter.
        EventName::parse(&s.replace('*', "x")).map_err(|e| {
            format!("{s:?}: {e} (besides `*`, which stands for any run of characters)")
        })?;
        let body: Vec<String> = s.split('*').map(regex::escape).collect();
        let regex = regex::Regex::new(&format!("^{}$", body.join(".*")))
            .map_err(|e| format!("{s:?} is not a usable pattern: {e}"))?;
        Ok(Self::Wildcard {
            pattern: s.to_owned(),
            regex,
        })
    }

    pub fn matches(&self, name: &EventName) -> bool {
        match self {
            Self::Exact(n) => n == name,
            Self::Wildcard { regex, .. } => regex.is_match(name.as_str()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Exact(n) => n.as_str(),
            Self::Wildcard { pattern, .. } => pattern,
        }
    }

    /// A name this pattern takes, for sample events: each `*` becomes `example`.
    pub fn example(&self) -> EventName {
        match self {
            Self::Exact(n) => n.clone(),
            Self::Wildcard { pattern, .. } => EventName::parse(&pattern.replace('*', "example"))
                .unwrap_or_else(|_| EventName::parse("example").unwrap_or_else(|_| unreachable!())),
        }
    }
}

impl PartialEq for EventPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

#[derive(Debug)]
pub struct Pipeline {
    pub id: PipelineId,
    pub events: Vec<EventPattern>,
    /// The sources whose events this pipeline takes (`webhook:stripe`, or an API key's
    /// source name such as `web-app`); `None` takes every source's.
    pub sources: Option<Vec<String>>,
    pub steps: Vec<Step>,
    pub destinations: Vec<Destination>,
    /// Makes this a heartbeat pipeline: it posts only when a key goes missing or comes back.
    pub heartbeat: Option<HeartbeatSpec>,
    pub mute: Option<MuteSpec>,
}

/// A pipeline item that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline {pipeline}: {field}: {message}")]
pub struct PipelineError {
    /// The item's id, or `<no id>`.
    pub pipeline: String,
    /// The failing field, e.g. `steps[1].expr`.
    pub field: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    id: String,
    events: Vec<String>,
    #[serde(default)]
    sources: Option<Vec<String>>,
    #[serde(default)]
    steps: Vec<RawStep>,
    destinations: Vec<RawDestination>,
    #[serde(default)]
    heartbeat: Option<RawHeartbeat>,
    #[serde(default)]
    mute: Option<RawMute>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    #[allow(dead_code)] // free text for humans
    description: Option<String>,
    /// Written by `ingestlayer pipelines apply`: one more on every write, so a write can be
    /// conditional on the version that was read.
    #[serde(default)]
    #[allow(dead_code)] // read by the command line, not by routing
    version: Option<u64>,
    /// Written by `ingestlayer pipelines apply`: when (RFC 3339).
    #[serde(default)]
    #[allow(dead_code)]
    applied_at: Option<String>,
}

/// The item's fields that `ingestlayer pipelines apply` writes, never a pipeline file.
pub const MANAGED_FIELDS: &[&str] = &["version", "applied_at"];

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    key: String,
    interval: String,
    grace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMute {
    key: String,
    #[serde(rename = "for")]
    duration: String,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    when: String,
    to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum RawStep {
    #[serde(rename = "filter.match")]
    FilterMatch { expr: String },
    #[serde(rename = "throttle")]
    Throttle { key: String, window: String },
    #[serde(rename = "threshold")]
    Threshold {
        key: String,
        count: u64,
        window: String,
    },
    #[serde(rename = "rollup")]
    Rollup {
        key: String,
        window: String,
        #[serde(default)]
        distinct: Option<String>,
    },
    #[serde(rename = "route")]
    Route {
        routes: Vec<RawRoute>,
        #[serde(default)]
        default: Option<Vec<String>>,
    },
    #[serde(rename = "enrich.entity")]
    EnrichEntity {
        entity: String,
        key: String,
        #[serde(default)]
        attributes: Option<Vec<String>>,
        #[serde(default, rename = "as")]
        attach_as: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum RawDestination {
    #[serde(rename = "slack")]
    Slack {
        channel: String,
        #[serde(default)]
        team: Option<String>,
        #[serde(default)]
        template: Option<RawTemplate>,
        #[serde(default)]
        rate_per_second: Option<f64>,
        #[serde(default)]
        digest_threshold: Option<usize>,
        #[serde(default)]
        thread_by: Option<String>,
        #[serde(default)]
        mention: Option<String>,
    },
    #[serde(rename = "webhook")]
    Webhook {
        #[serde(default)]
        name: Option<String>,
        url: String,
        secret: String,
        #[serde(default)]
        template: Option<RawTemplate>,
    },
    #[serde(rename = "discord")]
    Discord {
        #[serde(default)]
        name: Option<String>,
        secret: String,
        #[serde(default)]
        template: Option<RawTemplate>,
    },
    #[serde(rename = "telegram")]
    Telegram {
        #[serde(default)]
        name: Option<String>,
        secret: String,
        chat_id: ChatIdText,
        #[serde(default)]
        template: Option<RawTemplate>,
    },
    #[serde(rename = "email")]
    Email {
        #[serde(default)]
        name: Option<String>,
        from: String,
        to: Vec<String>,
        #[serde(default)]
        template: Option<RawTemplate>,
        #[serde(default)]
        digest_threshold: Option<usize>,
    },
    #[serde(rename = "notion")]
    Notion {
        #[serde(default)]
        name: Option<String>,
        secret: String,
        database: String,
        #[serde(default)]
        properties: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        id_property: Option<String>,
        #[serde(default)]
        template: Option<RawTemplate>,
    },
}

/// A Telegram `chat_id` as written: a number (`-1001234567890`) or `@channelname`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatIdText {
    Number(i64),
    Text(String),
}

impl Pipeline {
    /// Parses a DynamoDB item. `Ok(None)` for a well-formed but disabled pipeline.
    pub fn from_item(
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Option<Self>, PipelineError> {
        let id_hint = match item.get("id") {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => "<no id>".to_owned(),
        };
        let err = |field: &str, message: String| PipelineError {
            pipeline: id_hint.clone(),
            field: field.to_owned(),
            message,
        };
        let json: Value = serde_dynamo::from_item(item.clone())
            .map_err(|e| err("<item>", format!("not a readable item: {e}")))?;
        Self::from_json(&json).map_err(|mut e| {
            e.pipeline = id_hint.clone();
            e
        })
    }

    /// Parses the JSON form of an item (what `from_item` sees after DynamoDB decoding).
    pub fn from_json(json: &Value) -> Result<Option<Self>, PipelineError> {
        let id_hint = json
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("<no id>")
            .to_owned();
        let err = |field: String, message: String| PipelineError {
            pipeline: id_hint.clone(),
            field,
            message,
        };
        let raw: RawPipeline = serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "<item>".to_owned()
            } else {
                path
            };
            err(field, e.inner().to_string())
        })?;
        if !raw.enabled {
            return Ok(None);
        }
        let id = PipelineId::parse(&raw.id).map_err(|m| err("id".into(), m.to_string()))?;
        if raw.events.is_empty() {
            return Err(err("events".into(), "lists no event name".into()));
        }
        let events = raw
            .events
            .iter()
            .enumerate()
            .map(|(i, n)| EventPattern::parse(n).map_err(|m| err(format!("events[{i}]"), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = match raw.sources {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(err(
                    "sources".into(),
                    "lists no source: leave it out to take events from every source".into(),
                ))
            }
            Some(list) => {
                for (i, source) in list.iter().enumerate() {
                    let valid = match source.strip_prefix("webhook:") {
                        Some(name) => crate::ids::valid_webhook_source(name),
                        None => crate::ids::valid_key_source(source),
                    };
                    if !valid {
                        return Err(err(
                            format!("sources[{i}]"),
                            format!("{source:?} must be webhook:<webhook source> (e.g. webhook:stripe) or an API key's source name (e.g. web-app)"),
                        ));
                    }
                }
                Some(list)
            }
        };
        let mut steps = Vec::with_capacity(raw.steps.len());
        // Route steps name channels; they are resolved to destinations once those are read.
        let mut routes_to_resolve: Vec<RouteChannels> = Vec::new();
        let window = |field: String, text: &str| Window::parse(text).map_err(|m| err(field, m));
        let path = |field: String, text: &str| field_path(text).map_err(|m| err(field, m));
        for (i, step) in raw.steps.into_iter().enumerate() {
            steps.push(match step {
                RawStep::FilterMatch { expr } => Step::Filter(
                    Filter::compile(&expr)
                        .map_err(|m| err(format!("steps[{i}].expr"), m.to_string()))?,
                ),
                RawStep::Throttle { key, window: w } => Step::Throttle(ThrottleSpec {
                    key: path(format!("steps[{i}].key"), &key)?,
                    window: window(format!("steps[{i}].window"), &w)?,
                }),
                RawStep::Threshold {
                    key,
                    count,
                    window: w,
                } => {
                    if !(1..=10_000).contains(&count) {
                        return Err(err(
                            format!("steps[{i}].count"),
                            format!("{count} must be between 1 and 10000"),
                        ));
                    }
                    Step::Threshold(ThresholdSpec {
                        key: path(format!("steps[{i}].key"), &key)?,
                        count,
                        window: window(format!("steps[{i}].window"), &w)?,
                    })
                }
                RawStep::Rollup {
                    key,
                    window: w,
                    distinct,
                } => Step::Rollup(RollupSpec {
                    key: path(format!("steps[{i}].key"), &key)?,
                    window: window(format!("steps[{i}].window"), &w)?,
                    distinct: distinct
                        .map(|d| path(format!("steps[{i}].distinct"), &d))
                        .transpose()?,
                }),
                RawStep::Route { routes, default } => {
                    if routes.is_empty() {
                        return Err(err(
                            format!("steps[{i}].routes"),
                            "lists no route: each has `when` (an expression) and `to` (channels)"
                                .into(),
                        ));
                    }
                    let mut compiled = Vec::with_capacity(routes.len());
                    let mut channels = Vec::with_capacity(routes.len());
                    for (r, route) in routes.into_iter().enumerate() {
                        compiled.push((
                            Filter::compile(&route.when).map_err(|m| {
                                err(format!("steps[{i}].routes[{r}].when"), m.to_string())
                            })?,
                            Vec::new(),
                        ));
                        channels.push(route.to);
                    }
                    routes_to_resolve.push((i, channels, default));
                    Step::Route(RouteSpec {
                        routes: compiled,
                        default: None,
                    })
                }
                RawStep::EnrichEntity {
                    entity,
                    key,
                    attributes,
                    attach_as,
                } => {
                    let word = |s: &str| {
                        !s.is_empty()
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    };
                    if !word(&entity) {
                        return Err(err(
                            format!("steps[{i}].entity"),
                            format!("{entity:?} must be a word such as user or account"),
                        ));
                    }
                    let key_path: Vec<String> = key.split('.').map(str::to_owned).collect();
                    if key_path.iter().any(|s| s.is_empty()) {
                        return Err(err(
                            format!("steps[{i}].key"),
                            format!("{key:?} must name an event field such as user_id"),
                        ));
                    }
                    let attach_as = attach_as.unwrap_or_else(|| entity.clone());
                    if !word(&attach_as) {
                        return Err(err(
                            format!("steps[{i}].as"),
                            format!("{attach_as:?} must be a word"),
                        ));
                    }
                    Step::Enrich(EnrichSpec {
                        entity,
                        key: key_path,
                        attributes,
                        attach_as,
                    })
                }
            });
        }
        if raw.destinations.is_empty() {
            return Err(err("destinations".into(), "lists no destination".into()));
        }
        let mut destinations = Vec::with_capacity(raw.destinations.len());
        for (i, d) in raw.destinations.into_iter().enumerate() {
            let template_of = |template: Option<RawTemplate>| {
                Template::from_raw(template.unwrap_or_default())
                    .map_err(|(field, m)| err(format!("destinations[{i}].template.{field}"), m))
            };
            let secret_of = |secret: String| {
                if valid_secret_name(&secret) {
                    Ok(secret)
                } else {
                    Err(err(
                        format!("destinations[{i}].secret"),
                        format!("{secret:?} must name a secret: 1 to 64 letters, digits or /_+=.@- (the secret itself is stored with `ingestlayer secrets set`, never in the pipeline)"),
                    ))
                }
            };
            let name_of = |name: Option<String>| match name {
                Some(n) if n.trim().is_empty() || n.len() > 64 => Err(err(
                    format!("destinations[{i}].name"),
                    "must be 1 to 64 characters".into(),
                )),
                other => Ok(other),
            };
            let outbound = |name, target, template, properties, digest_threshold| {
                Destination::Outbound(OutboundDestination {
                    name,
                    target,
                    template,
                    properties,
                    digest_threshold,
                })
            };
            let slack = match d {
                RawDestination::Slack {
                    channel,
                    team,
                    template,
                    rate_per_second,
                    digest_threshold,
                    thread_by,
                    mention,
                } => (
                    channel,
                    team,
                    template,
                    rate_per_second,
                    digest_threshold,
                    thread_by,
                    mention,
                ),
                RawDestination::Webhook {
                    name,
                    url,
                    secret,
                    template,
                } => {
                    let parsed = url::Url::parse(url.trim()).map_err(|e| {
                        err(
                            format!("destinations[{i}].url"),
                            format!("{url:?} is not a URL: {e}"),
                        )
                    })?;
                    if !matches!(parsed.scheme(), "https" | "http")
                        || !parsed.username().is_empty()
                        || parsed.password().is_some()
                    {
                        return Err(err(
                            format!("destinations[{i}].url"),
                            format!("{url:?} must be an https:// URL without credentials in it"),
                        ));
                    }
                    destinations.push(outbound(
                        name_of(name)?,
                        Target::Webhook {
                            url: parsed.to_string(),
                            secret: secret_of(secret)?,
                        },
                        template_of(template)?,
                        Vec::new(),
                        0,
                    ));
                    continue;
                }
                RawDestination::Discord {
                    name,
                    secret,
                    template,
                } => {
                    destinations.push(outbound(
                        name_of(name)?,
                        Target::Discord {
                            secret: secret_of(secret)?,
                        },
                        template_of(template)?,
                        Vec::new(),
                        0,
                    ));
                    continue;
                }
                RawDestination::Telegram {
                    name,
                    secret,
                    chat_id,
                    template,
                } => {
                    let chat_id = match chat_id {
                        ChatIdText::Number(n) => n.to_string(),
                        ChatIdText::Text(t) => {
                            let t = t.trim().to_owned();
                            let username = t.strip_prefix('@').is_some_and(|u| {
                                (5..=32).contains(&u.len())
                                    && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            });
                            if !username && t.parse::<i64>().is_err() {
                                return Err(err(
                                    format!("destinations[{i}].chat_id"),
                                    format!("{t:?} must be a chat id (a number such as -1001234567890) or a channel's @username"),
                                ));
                            }
                            t
                        }
                    };
                    destinations.push(outbound(
                        name_of(name)?,
                        Target::Telegram {
                            secret: secret_of(secret)?,
                            chat_id,
                        },
                        template_of(template)?,
                        Vec::new(),
                        0,
                    ));
                    continue;
                }
                RawDestination::Email {
                    name,
                    from,
                    to,
                    template,
                    digest_threshold,
                } => {
                    let address = |field: String, a: &str| {
                        let a = a.trim();
                        let ok = a.split_once('@').is_some_and(|(l, d)| {
                            !l.is_empty() && d.contains('.') && !a.contains(char::is_whitespace)
                        });
                        if ok {
                            Ok(a.to_owned())
                        } else {
                            Err(err(field, format!("{a:?} is not an email address")))
                        }
                    };
                    let from = address(format!("destinations[{i}].from"), &from)?;
                    if to.is_empty() || to.len() > 50 {
                        return Err(err(
                            format!("destinations[{i}].to"),
                            "must list 1 to 50 recipients (SES's limit per message)".into(),
                        ));
                    }
                    let to = to
                        .iter()
                        .enumerate()
                        .map(|(r, a)| address(format!("destinations[{i}].to[{r}]"), a))
                        .collect::<Result<Vec<_>, _>>()?;
                    let digest_threshold = match digest_threshold {
                        None => DEFAULT_DIGEST_THRESHOLD,
                        Some(1) => {
                            return Err(err(
                                format!("destinations[{i}].digest_threshold"),
                                "1 would digest every message: use 2 or more, or 0 for never"
                                    .into(),
                            ))
                        }
                        Some(n) => n,
                    };
                    destinations.push(outbound(
                        name_of(name)?,
                        Target::Email { from, to },
                        template_of(template)?,
                        Vec::new(),
                        digest_threshold,
                    ));
                    continue;
                }
                RawDestination::Notion {
                    name,
                    secret,
                    database,
                    properties,
                    id_property,
                    template,
                } => {
                    let Some(database) = crate::outbound::notion::notion_id(&database) else {
                        return Err(err(
                            format!("destinations[{i}].database"),
                            "must be a Notion database id (32 hexadecimal digits) or its link (in Notion: ··· → Copy link)".into(),
                        ));
                    };
                    let properties = properties
                        .into_iter()
                        .map(|(name, text)| {
                            TemplateText::parse(&text)
                                .map(|t| (name.clone(), t))
                                .map_err(|m| err(format!("destinations[{i}].properties.{name}"), m))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    destinations.push(outbound(
                        name_of(name)?,
                        Target::Notion {
                            secret: secret_of(secret)?,
                            database,
                            id_property: id_property
                                .filter(|p| !p.trim().is_empty())
                                .unwrap_or_else(|| "Event ID".to_owned()),
                        },
                        template_of(template)?,
                        properties,
                        0,
                    ));
                    continue;
                }
            };
            let (channel, team, template, rate_per_second, digest_threshold, thread_by, mention) =
                slack;
            let min_interval_ms = match rate_per_second {
                None => DEFAULT_MIN_INTERVAL_MS,
                Some(r) if r.is_finite() && r > 0.0 && r <= 100.0 => (1000.0 / r).ceil() as u64,
                Some(r) => {
                    return Err(err(
                        format!("destinations[{i}].rate_per_second"),
                        format!("{r} must be above 0 and at most 100"),
                    ))
                }
            };
            let digest_threshold = match digest_threshold {
                None => DEFAULT_DIGEST_THRESHOLD,
                Some(1) => {
                    return Err(err(
                        format!("destinations[{i}].digest_threshold"),
                        "1 would digest every message: use 2 or more, or 0 for never".into(),
                    ))
                }
                Some(n) => n,
            };
            let channel = ChannelRef::parse(&channel)
                .map_err(|m| err(format!("destinations[{i}].channel"), m.to_string()))?;
            let team = TeamId::parse(team.as_deref().unwrap_or(DEFAULT_TEAM))
                .map_err(|m| err(format!("destinations[{i}].team"), m.to_string()))?;
            let template = template_of(template)?;
            let path_of = |field: &str, value: Option<String>| {
                value
                    .map(|v| {
                        field_path(&v).map_err(|m| err(format!("destinations[{i}].{field}"), m))
                    })
                    .transpose()
            };
            destinations.push(Destination::Slack(SlackDestination {
                team,
                channel,
                template,
                min_interval_ms,
                digest_threshold,
                thread_by: path_of("thread_by", thread_by)?,
                mention: path_of("mention", mention)?,
            }));
        }
        let resolve = |field: String, channels: &[String]| -> Result<Vec<usize>, PipelineError> {
            if channels.is_empty() {
                return Err(err(field, "lists no channel".into()));
            }
            channels
                .iter()
                .map(|c| {
                    // A channel as Slack destinations name it (`alerts` is `#alerts`), or
                    // another destination's name or type.
                    let wanted = ChannelRef::parse(c).ok().map(|w| w.to_string());
                    let by_label = |d: &Destination| {
                        let label = d.label();
                        label == *c || wanted.as_deref() == Some(label.as_str())
                    };
                    let found: Vec<usize> = destinations
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| by_label(d))
                        .map(|(di, _)| di)
                        .collect();
                    if found.len() > 1 {
                        return Err(err(
                            field.clone(),
                            format!(
                                "{c:?} names {} destinations: give each a `name`",
                                found.len()
                            ),
                        ));
                    }
                    found.first().copied().ok_or_else(|| {
                        err(
                            field.clone(),
                            format!("{c:?} is not one of the pipeline's destinations"),
                        )
                    })
                })
                .collect()
        };
        for (i, channels, default) in routes_to_resolve {
            let Some(Step::Route(spec)) = steps.get_mut(i) else {
                continue;
            };
            for (r, to) in channels.iter().enumerate() {
                spec.routes[r].1 = resolve(format!("steps[{i}].routes[{r}].to"), to)?;
            }
            spec.default = default
                .map(|d| resolve(format!("steps[{i}].default"), &d))
                .transpose()?;
        }
        let heartbeat = match raw.heartbeat {
            None => None,
            Some(h) => Some(HeartbeatSpec {
                key: path("heartbeat.key".into(), &h.key)?,
                interval: window("heartbeat.interval".into(), &h.interval)?,
                grace: window("heartbeat.grace".into(), &h.grace)?,
            }),
        };
        let mute = match raw.mute {
            None => None,
            Some(m) => {
                let key = path("mute.key".into(), &m.key)?;
                let duration = window("mute.for".into(), &m.duration)?;
                let label = m.label.unwrap_or_else(|| {
                    let what = key.last().map_or("key", String::as_str);
                    format!("Mute this {what} for {}", duration.text)
                });
                if label.trim().is_empty() || label.chars().count() > 75 {
                    return Err(err(
                        "mute.label".into(),
                        "must be 1 to 75 characters (a Slack button's text)".into(),
                    ));
                }
                Some(MuteSpec {
                    key,
                    duration,
                    label,
                })
            }
        };
        Ok(Some(Pipeline {
            id,
            events,
            sources,
            steps,
            destinations,
            heartbeat,
            mute,
        }))
    }
}

/// An event field path as written in a pipeline: `$event.user.account` or `user.account`.
pub fn field_path(s: &str) -> Result<Vec<String>, String> {
    let bare = s.trim();
    let bare = bare
        .strip_prefix("${event.")
        .and_then(|r| r.strip_suffix('}'))
        .or_else(|| bare.strip_prefix("$event."))
        .unwrap_or(bare);
    let path: Vec<String> = bare.split('.').map(str::to_owned).collect();
    if bare.starts_with('$') || path.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "{s:?} must name an event field, such as $event.user.account or user_id"
        ));
    }
    Ok(path)
}

impl Pipeline {
    /// Whether this pipeline takes events recorded with `source`.
    pub fn takes_source(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == source))
    }
}

/// What a pipeline document routes, for a summary line: its event names and its
/// destinations' channels, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary<'a> {
    pub events: Vec<&'a str>,
    pub channels: Vec<&'a str>,
}

/// The [`Summary`] of a pipeline document in its stored JSON form, valid or not (a list
/// or an entry of the wrong type is left out), so an invalid pipeline is still named by
/// what it was meant to route.
pub fn summary(doc: &Value) -> Summary<'_> {
    fn strings<'a>(list: &'a Value, pick: fn(&'a Value) -> Option<&'a str>) -> Vec<&'a str> {
        list.as_array()
            .map(|a| a.iter().filter_map(pick).collect())
            .unwrap_or_default()
    }
    Summary {
        events: strings(&doc["events"], Value::as_str),
        channels: strings(&doc["destinations"], |d| {
            d["channel"]
                .as_str()
                .or_else(|| d["name"].as_str())
                .or_else(|| d["type"].as_str())
        }),
    }
}

/// The loaded pipelines, indexed by the event names they listen to.
#[derive(Debug, Default)]
pub struct PipelineSet {
    pipelines: Vec<Pipeline>,
    by_event: HashMap<EventName, Vec<usize>>,
    /// Pipelines with a wildcard pattern, matched against every name.
    wildcards: Vec<usize>,
}

impl PipelineSet {
    /// Loads every item; returns the set of the good ones and an error per bad one.
    pub fn from_items(items: &[HashMap<String, AttributeValue>]) -> (Self, Vec<PipelineError>) {
        let mut set = Self::default();
        let mut errors = Vec::new();
        for item in items {
            match Pipeline::from_item(item) {
                Ok(Some(p)) => set.insert(p),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        (set, errors)
    }

    pub fn insert(&mut self, p: Pipeline) {
        let index = self.pipelines.len();
        for pattern in &p.events {
            match pattern {
                EventPattern::Exact(name) => {
                    let list = self.by_event.entry(name.clone()).or_default();
                    if !list.contains(&index) {
                        list.push(index);
                    }
                }
                EventPattern::Wildcard { .. } => {
                    if !self.wildcards.contains(&index) {
                        self.wildcards.push(index);
                    }
                }
            }
        }
        self.pipelines.push(p);
    }

    /// The enabled pipelines listening to `name` (by name or by pattern), each once, in load
    /// order.
    pub fn for_event(&self, name: &EventName) -> impl Iterator<Item = &Pipeline> {
        let mut indices: Vec<usize> = self.by_event.get(name).cloned().unwrap_or_default();
        for &i in &self.wildcards {
            let takes = self.pipelines[i].events.iter().any(|p| p.matches(name));
            if takes && !indices.contains(&i) {
                indices.push(i);
            }
        }
        indices.sort_unstable();
        indices.into_iter().filter_map(|i| self.pipelines.get(i))
    }

    /// Every loaded pipeline, in load order.
    pub fn iter(&self) -> impl Iterator<Item = &Pipeline> {
        self.pipelines.iter()
    }

    /// The pipeline with this id.
    pub fn get(&self, id: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id.as_str() == id)
    }

    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_destinations(destinations: Value) -> Result<Option<Pipeline>, PipelineError> {
        Pipeline::from_json(&json!({
            "id": "p", "events": ["feature.used"], "destinations": destinations
        }))
    }

    #[test]
    fn every_destination_type_loads_with_its_secret_named_never_held() {
        let p = with_destinations(json!([
            {"type": "slack", "channel": "#alerts"},
            {"type": "discord", "secret": "ops-discord"},
            {"type": "telegram", "secret": "ops-bot", "chat_id": -1001234567890i64},
            {"type": "telegram", "name": "channel", "secret": "ops-bot", "chat_id": "@product_news"},
            {"type": "email", "from": "alerts@example.com", "to": ["a@example.com", "b@example.com"]},
            {"type": "notion", "secret": "ops-notion", "database": "https://www.notion.so/Events-27a5d30a17284a1ea78871341f22fb97?v=1",
             "properties": {"Plan": "$event.plan"}},
            {"type": "webhook", "url": "https://hooks.example.com/x", "secret": "hook"}
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p.destinations.len(), 7);
        let targets: Vec<Target> = p
            .destinations
            .iter()
            .filter_map(|d| match d {
                Destination::Outbound(o) => Some(o.target.clone()),
                Destination::Slack(_) => None,
            })
            .collect();
        assert_eq!(
            targets[1],
            Target::Telegram {
                secret: "ops-bot".into(),
                chat_id: "-1001234567890".into()
            }
        );
        assert_eq!(
            targets[4],
            Target::Notion {
                secret: "ops-notion".into(),
                database: "27a5d30a-1728-4a1e-a788-71341f22fb97".into(),
                id_property: "Event ID".into()
            }
        );
        let Destination::Outbound(email) = &p.destinations[4] else {
            panic!("email")
        };
        assert_eq!(email.digest_threshold, DEFAULT_DIGEST_THRESHOLD);
    }

    #[test]
    fn a_bad_destination_is_named_with_its_field() {
        let cases = [
            (
                json!({"type": "discord", "secret": "has spaces"}),
                "destinations[0].secret",
            ),
            (json!({"type": "discord"}), "destinations[0]"),
            (
                json!({"type": "telegram", "secret": "b", "chat_id": "general"}),
                "destinations[0].chat_id",
            ),
            (
                json!({"type": "email", "from": "nobody", "to": ["a@example.com"]}),
                "destinations[0].from",
            ),
            (
                json!({"type": "email", "from": "a@example.com", "to": []}),
                "destinations[0].to",
            ),
            (
                json!({"type": "notion", "secret": "n", "database": "not-an-id"}),
                "destinations[0].database",
            ),
            (
                json!({"type": "notion", "secret": "n", "database": "27a5d30a17284a1ea78871341f22fb97",
                    "properties": {"Plan": "${event.plan | nosuch}"}}),
                "destinations[0].properties.Plan",
            ),
            (
                json!({"type": "webhook", "url": "ftp://x", "secret": "s"}),
                "destinations[0].url",
            ),
            (
                json!({"type": "webhook", "url": "https://u:p@x.example", "secret": "s"}),
                "destinations[0].url",
            ),
            (json!({"type": "pager", "secret": "s"}), "destinations[0]"),
        ];
        for (d, field) in cases {
            let e = with_destinations(json!([d])).unwrap_err();
            assert!(e.field.starts_with(field), "{d}: {e}");
        }
    }

    #[test]
    fn a_route_names_destinations_beyond_slack_by_name_or_type() {
        let p = Pipeline::from_json(&json!({
            "id": "p", "events": ["x"],
            "steps": [{"type": "route", "routes": [{"when": "plan == 'free'", "to": ["discord", "billing"]}],
                       "default": ["#alerts"]}],
            "destinations": [
                {"type": "slack", "channel": "#alerts"},
                {"type": "discord", "secret": "d"},
                {"type": "webhook", "name": "billing", "url": "https://x.example", "secret": "s"}
            ]
        }))
        .unwrap()
        .unwrap();
        let Step::Route(r) = &p.steps[0] else {
            panic!()
        };
        assert_eq!(r.routes[0].1, vec![1, 2]);
        assert_eq!(r.default, Some(vec![0]));
        let two = Pipeline::from_json(&json!({
            "id": "p", "events": ["x"],
            "steps": [{"type": "route", "routes": [{"when": "true", "to": ["discord"]}]}],
            "destinations": [{"type": "discord", "secret": "a"}, {"type": "discord", "secret": "b"}]
        }))
        .unwrap_err();
        assert!(two.message.contains("give each a `name`"), "{two}");
    }

    pub(crate) fn example() -> Value {
        json!({
            "id": "feature-usage",
            "events": ["feature.used"],
            "steps": [
                {"type": "filter.match", "expr": "feature in {export, api, webhook}"},
                {"type": "enrich.entity", "entity": "user", "key": "user_id", "attributes": ["account", "plan", "owner"]}
            ],
            "destinations": [{"type": "slack", "channel": "#alerts"}]
        })
    }

    #[test]
    fn teams_are_ids_or_default_and_fit_a_message_group() {
        assert_eq!(parse_team("default").unwrap(), "default");
        assert_eq!(parse_team("T0123ABCD").unwrap(), "T0123ABCD");
        for bad in [
            "",
            "bad team",
            "T1:x",
            "T1|#x",
            &"T".repeat(crate::ids::MAX_TEAM_LEN + 1),
        ] {
            let e = parse_team(bad).unwrap_err();
            assert!(e.to_string().contains("Slack team id"), "{e}");
        }
        let mut doc = example();
        doc["destinations"][0]["team"] = json!("bad team");
        let e = Pipeline::from_json(&doc).unwrap_err();
        assert_eq!(e.field, "destinations[0].team");
    }

    #[test]
    fn the_example_pipeline_loads() {
        let p = Pipeline::from_json(&example()).unwrap().unwrap();
        assert_eq!(p.id.as_str(), "feature-usage");
        assert_eq!(p.steps.len(), 2);
        assert!(
            matches!(&p.steps[1], Step::Enrich(e) if e.attach_as == "user" && e.key == ["user_id"])
        );
        assert_eq!(
            p.destinations[0].as_slack().unwrap().group_id(),
            "default:#alerts"
        );
    }

    #[test]
    fn a_bad_expression_names_the_pipeline_and_step() {
        let mut j = example();
        j["steps"][0]["expr"] = json!("feature in {");
        let e = Pipeline::from_json(&j).unwrap_err();
        assert_eq!(e.pipeline, "feature-usage");
        assert_eq!(e.field, "steps[0].expr");
    }

    #[test]
    fn a_missing_field_is_named() {
        let mut j = example();
        j["steps"][1].as_object_mut().unwrap().remove("key");
        let e = Pipeline::from_json(&j).unwrap_err();
        assert_eq!(e.field, "steps[1]");
        assert!(e.message.contains("key"), "{e}");
    }

    #[test]
    fn unknown_step_types_and_fields_are_rejected() {
        let mut j = example();
        j["steps"][0]["type"] = json!("filter.regex");
        assert!(Pipeline::from_json(&j)
            .unwrap_err()
            .field
            .starts_with("steps[0]"));
        let mut j = example();
        j["destinations"][0]["chanel"] = json!("#x");
        assert!(Pipeline::from_json(&j)
            .unwrap_err()
            .field
            .starts_with("destinations[0]"));
    }

    #[test]
    fn bad_channels_are_rejected() {
        let mut j = example();
        j["destinations"][0]["channel"] = json!("#Has Spaces");
        assert_eq!(
            Pipeline::from_json(&j).unwrap_err().field,
            "destinations[0].channel"
        );
        assert!(ChannelRef::parse("C0123ABCDE").is_ok());
        assert_eq!(ChannelRef::parse("alerts").unwrap().as_str(), "#alerts");
    }

    #[test]
    fn sources_bind_a_pipeline_to_its_senders() {
        let p = Pipeline::from_json(&example()).unwrap().unwrap();
        assert!(p.takes_source("web-app") && p.takes_source("webhook:stripe"));
        let mut j = example();
        j["sources"] = json!(["webhook:stripe", "billing-service"]);
        let p = Pipeline::from_json(&j).unwrap().unwrap();
        assert!(p.takes_source("webhook:stripe") && p.takes_source("billing-service"));
        assert!(!p.takes_source("web-app") && !p.takes_source("webhook:github"));
        assert!(
            !p.takes_source("stripe"),
            "an API key named stripe is not the webhook"
        );
        for (bad, field) in [
            (json!([]), "sources"),
            (json!(["webhook:Stripe"]), "sources[0]"),
            (json!(["webhook"]), "sources[0]"),
            (json!(["a:b"]), "sources[0]"),
            (json!("webhook:stripe"), "sources"),
        ] {
            let mut j = example();
            j["sources"] = bad.clone();
            assert_eq!(Pipeline::from_json(&j).unwrap_err().field, field, "{bad}");
        }
    }

    #[test]
    fn disabled_pipelines_are_skipped() {
        let mut j = example();
        j["enabled"] = json!(false);
        assert!(Pipeline::from_json(&j).unwrap().is_none());
    }

    #[test]
    fn one_bad_item_does_not_stop_the_others() {
        let good: HashMap<String, AttributeValue> = serde_dynamo::to_item(example()).unwrap();
        let mut bad_json = example();
        bad_json["id"] = json!("broken");
        bad_json["events"] = json!("feature.used");
        let bad: HashMap<String, AttributeValue> = serde_dynamo::to_item(bad_json).unwrap();
        let (set, errors) = PipelineSet::from_items(&[bad, good]);
        assert_eq!(set.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pipeline, "broken");
        assert_eq!(errors[0].field, "events");
        let name = EventName::parse("feature.used").unwrap();
        assert_eq!(set.for_event(&name).count(), 1);
    }
}
