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
use crate::routing::filter::Filter;
use crate::routing::render::{RawTemplate, Template};

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

#[derive(Debug)]
pub enum Step {
    Filter(Filter),
    Enrich(EnrichSpec),
}

#[derive(Debug)]
pub struct Pipeline {
    pub id: PipelineId,
    pub events: Vec<EventName>,
    /// The sources whose events this pipeline takes (`webhook:stripe`, or an API key's
    /// source name such as `web-app`); `None` takes every source's.
    pub sources: Option<Vec<String>>,
    pub steps: Vec<Step>,
    pub destinations: Vec<SlackDestination>,
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
#[serde(tag = "type", deny_unknown_fields)]
enum RawStep {
    #[serde(rename = "filter.match")]
    FilterMatch { expr: String },
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
            .map(|(i, n)| {
                EventName::parse(n).map_err(|m| err(format!("events[{i}]"), m.to_string()))
            })
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
        for (i, step) in raw.steps.into_iter().enumerate() {
            steps.push(match step {
                RawStep::FilterMatch { expr } => Step::Filter(
                    Filter::compile(&expr)
                        .map_err(|m| err(format!("steps[{i}].expr"), m.to_string()))?,
                ),
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
            let RawDestination::Slack {
                channel,
                team,
                template,
                rate_per_second,
                digest_threshold,
                thread_by,
                mention,
            } = d;
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
            let template = Template::from_raw(template.unwrap_or_default())
                .map_err(|(field, m)| err(format!("destinations[{i}].template.{field}"), m))?;
            let path_of = |field: &str, value: Option<String>| {
                value
                    .map(|v| {
                        field_path(&v).map_err(|m| err(format!("destinations[{i}].{field}"), m))
                    })
                    .transpose()
            };
            destinations.push(SlackDestination {
                team,
                channel,
                template,
                min_interval_ms,
                digest_threshold,
                thread_by: path_of("thread_by", thread_by)?,
                mention: path_of("mention", mention)?,
            });
        }
        Ok(Some(Pipeline {
            id,
            events,
            sources,
            steps,
            destinations,
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
        channels: strings(&doc["destinations"], |d| d["channel"].as_str()),
    }
}

/// The loaded pipelines, indexed by the event names they listen to.
#[derive(Debug, Default)]
pub struct PipelineSet {
    pipelines: Vec<Pipeline>,
    by_event: HashMap<EventName, Vec<usize>>,
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
        for name in &p.events {
            self.by_event.entry(name.clone()).or_default().push(index);
        }
        self.pipelines.push(p);
    }

    /// The enabled pipelines listening to `name`, in load order.
    pub fn for_event(&self, name: &EventName) -> impl Iterator<Item = &Pipeline> {
        self.by_event
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.pipelines.get(i))
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
        assert_eq!(p.destinations[0].group_id(), "default:#alerts");
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
