//! Routing: an event through every pipeline listening to it, to one message per Slack
//! destination. Plain logic over an [`EntityStore`]; the pipeline Lambda handler wraps it.
//!
//! Entity lookups are batched across all the events of an invocation: every (event,
//! pipeline) pair runs its steps until it needs an entity, then all needed entities are
//! fetched in one batched lookup, and the pairs go on.

use serde_json::{Map, Value};

use crate::delivery::message::Delivery;
use crate::error::Error;
use crate::event::Envelope;
use crate::routing::enrich::{entity_key, EntityStore};
use crate::routing::pipelines::{Pipeline, PipelineSet, Step};
use crate::routing::render::{render, RenderInput};

/// What became of one (event, pipeline) pair.
#[derive(Debug, Clone, PartialEq)]
pub enum PairOutcome {
    /// Rendered, one delivery per destination.
    Routed(Vec<Delivery>),
    /// A filter step dropped it; `reason` says which and why.
    Filtered { pipeline_id: String, reason: String },
}

/// The result for one event: its pairs' outcomes, or an error that makes the whole
/// event retry (nothing of it is sent).
pub type EventResult = Result<Vec<PairOutcome>, Error>;

pub use crate::journey::StepTrace;

/// A pair's outcome with the steps it went through.
#[derive(Debug, Clone, PartialEq)]
pub struct Traced {
    pub pipeline_id: String,
    pub outcome: PairOutcome,
    pub steps: Vec<StepTrace>,
}

struct Pair<'p> {
    event: usize,
    pipeline: &'p Pipeline,
    cursor: usize,
    context: Value,
    filtered: Option<String>,
    steps: Vec<StepTrace>,
}

/// Makes a signed link to a stored event.
pub type LinkMaker<'a> = &'a (dyn Fn(&Envelope) -> String + Sync);

/// Routes each event through its pipelines. One result per event, in order. `links`
/// signs a link to each stored event for truncated messages and digests.
pub async fn route<S: EntityStore>(
    events: &[Envelope],
    pipelines: &PipelineSet,
    store: &S,
    links: Option<LinkMaker<'_>>,
) -> Vec<EventResult> {
    route_traced(events, pipelines, store, links, false)
        .await
        .into_iter()
        .map(|r| r.map(|pairs| pairs.into_iter().map(|t| t.outcome).collect()))
        .collect()
}

/// [`route`], keeping each pair's steps; with `explain`, each filter step also names the
/// part of its expression that decided (it evaluates the parts again: for tools, not for
/// the pipeline function).
pub async fn route_traced<S: EntityStore>(
    events: &[Envelope],
    pipelines: &PipelineSet,
    store: &S,
    links: Option<LinkMaker<'_>>,
    explain: bool,
) -> Vec<Result<Vec<Traced>, Error>> {
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        for p in pipelines.for_event(&e.name) {
            let context = match &e.data {
                Value::Object(_) => e.data.clone(),
                _ => Value::Object(Map::new()),
            };
            // A pipeline bound to its sources never runs for another's event of the same name.
            let filtered = (!p.takes_source(&e.source)).then(|| {
                format!(
                    "sources {:?} does not list the event's source {:?}",
                    p.sources.as_deref().unwrap_or_default(),
                    e.source
                )
            });
            pairs.push(Pair {
                event: i,
                pipeline: p,
                cursor: 0,
                context,
                filtered,
                steps: Vec::new(),
            });
        }
    }
    let mut failed: Vec<Option<Error>> = (0..events.len()).map(|_| None).collect();

    loop {
        // Run every live pair up to its next enrich step.
        let mut wanted: Vec<(usize, Option<String>)> = Vec::new();
        for (pi, pair) in pairs.iter_mut().enumerate() {
            if pair.filtered.is_some() || failed[pair.event].is_some() {
                continue;
            }
            while let Some(step) = pair.pipeline.steps.get(pair.cursor) {
                match step {
                    Step::Filter(f) => {
                        let origin = events[pair.event].origin();
                        let judged = f.matches(&pair.context, &origin);
                        // The deciding part is worked out when asked, and whenever the
                        // filter drops the event (the journey keeps it).
                        let why = (explain || !matches!(judged, Ok(true)))
                            .then(|| f.explain(&pair.context, &origin));
                        pair.steps.push(StepTrace::Filter {
                            expr: f.source().to_owned(),
                            passed: matches!(judged, Ok(true)),
                            decided_by: why.as_ref().map(|j| j.decided_by.clone()),
                            error: judged.as_ref().err().map(ToString::to_string),
                            seen: why.map(|j| j.seen).unwrap_or_default(),
                        });
                        match judged {
                            Ok(true) => pair.cursor += 1,
                            Ok(false) => {
                                pair.filtered =
                                    Some(format!("filter.match {:?} is false", f.source()));
                                break;
                            }
                            Err(e) => {
                                pair.filtered = Some(format!(
                                    "filter.match {:?} could not judge the event: {e}",
                                    f.source()
                                ));
                                break;
                            }
                        }
                    }
                    Step::Enrich(spec) => {
                        let value = spec
                            .key
                            .iter()
                            .try_fold(&pair.context, |v, seg| v.get(seg.as_str()));
                        wanted.push((pi, entity_key(&spec.entity, value)));
                        break;
                    }
                }
            }
        }
        if wanted.is_empty() {
            break;
        }
        let keys: Vec<String> = wanted.iter().filter_map(|(_, k)| k.clone()).collect();
        let found = if keys.is_empty() {
            Ok(Default::default())
        } else {
            store.get_many(&keys).await
        };
        match found {
            Ok(found) => {
                for (pi, key) in wanted {
                    let pair = &mut pairs[pi];
                    if let Some(Step::Enrich(spec)) = pair.pipeline.steps.get(pair.cursor) {
                        let entity = key.as_ref().and_then(|k| found.get(k));
                        pair.steps.push(StepTrace::Enrich {
                            entity: spec.entity.clone(),
                            found: entity.is_some(),
                            key,
                            attached_as: spec.attach_as.clone(),
                            // In the step's order, or by name: never the store's order.
                            attributes: entity
                                .map(|e| match &spec.attributes {
                                    Some(listed) => listed
                                        .iter()
                                        .filter(|a| e.contains_key(a.as_str()))
                                        .cloned()
                                        .collect(),
                                    None => {
                                        let mut all: Vec<String> = e.keys().cloned().collect();
                                        all.sort();
                                        all
                                    }
                                })
                                .unwrap_or_default(),
                        });
                        crate::routing::enrich::attach(&mut pair.context, spec, entity);
                    }
                    pair.cursor += 1;
                }
            }
            Err(e) => {
                for (pi, _) in wanted {
                    failed[pairs[pi].event] = Some(e.for_another());
                }
            }
        }
    }

    let mut results: Vec<Result<Vec<Traced>, Error>> = failed
        .into_iter()
        .map(|f| match f {
            Some(e) => Err(e),
            None => Ok(Vec::new()),
        })
        .collect();
    for pair in pairs {
        let Ok(outcomes) = &mut results[pair.event] else {
            continue;
        };
        let event = &events[pair.event];
        let pipeline_id = pair.pipeline.id.as_str().to_owned();
        if let Some(reason) = pair.filtered {
            outcomes.push(Traced {
                pipeline_id: pipeline_id.clone(),
                outcome: PairOutcome::Filtered {
                    pipeline_id,
                    reason,
                },
                steps: pair.steps,
            });
            continue;
        }
        let link = links.map(|l| l(event));
        let deliveries = pair
            .pipeline
            .destinations
            .iter()
            .enumerate()
            .map(|(di, d)| Delivery {
                v: 1,
                event_id: event.id.as_str().to_owned(),
                event_name: event.name.as_str().to_owned(),
                received_ms: (event.received_at.unix_timestamp_nanos() / 1_000_000) as i64,
                pipeline_id: pipeline_id.clone(),
                destination: di,
                team: d.team.clone(),
                channel: d.channel.clone(),
                message: render(
                    &d.template,
                    &RenderInput {
                        event_name: event.name.as_str(),
                        event_id: event.id.as_str(),
                        origin: event.origin(),
                        context: &pair.context,
                        full_event_url: link.as_deref(),
                        vars: None,
                    },
                ),
                min_interval_ms: d.min_interval_ms,
                digest_threshold: d.digest_threshold,
                link: link.clone(),
                thread_key: d
                    .thread_by
                    .as_deref()
                    .and_then(|p| scalar_at(&pair.context, p)),
                mention: d
                    .mention
                    .as_deref()
                    .and_then(|p| scalar_at(&pair.context, p)),
            })
            .collect();
        outcomes.push(Traced {
            pipeline_id,
            outcome: PairOutcome::Routed(deliveries),
            steps: pair.steps,
        });
    }
    results
}

/// The non-empty scalar at `path` in `context`, as text.
pub fn scalar_at(context: &Value, path: &[String]) -> Option<String> {
    match path
        .iter()
        .try_fold(context, |v, seg| v.get(seg.as_str()))?
    {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::message::delivery_key;
    use crate::event::incoming::parse_incoming;
    use crate::event::Envelope;
    use crate::routing::pipelines::Pipeline;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct FakeStore {
        entities: HashMap<String, Map<String, Value>>,
        calls: AtomicUsize,
        fail: bool,
    }

    impl EntityStore for FakeStore {
        async fn get_many(
            &self,
            keys: &[String],
        ) -> Result<HashMap<String, Map<String, Value>>, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(Error::Upstream {
                    what: "entity lookup".into(),
                    detail: "throttled".into(),
                    retryable: true,
                });
            }
            Ok(keys
                .iter()
                .filter_map(|k| self.entities.get(k).map(|v| (k.clone(), v.clone())))
                .collect())
        }
    }

    fn store(fail: bool) -> FakeStore {
        let mut entities = HashMap::new();
        entities.insert(
            "user#u1".to_owned(),
            json!({"account": "acme", "plan": "pro", "owner": "maria", "secret_note": "x"})
                .as_object()
                .unwrap()
                .clone(),
        );
        FakeStore {
            entities,
            calls: AtomicUsize::new(0),
            fail,
        }
    }

    fn pipelines() -> PipelineSet {
        let mut set = PipelineSet::default();
        set.insert(
            Pipeline::from_json(&json!({
                "id": "feature-usage",
                "events": ["feature.used"],
                "steps": [
                    {"type": "filter.match", "expr": "feature in {export, api, webhook}"},
                    {"type": "enrich.entity", "entity": "user", "key": "user_id", "attributes": ["account", "plan", "owner"]}
                ],
                "destinations": [{"type": "slack", "channel": "#alerts"}]
            }))
            .unwrap()
            .unwrap(),
        );
        set
    }

    fn event(data: Value) -> Envelope {
        let e = parse_incoming(&json!({"name": "feature.used", "data": data}), "").unwrap();
        Envelope::accept(e, "test", time::OffsetDateTime::now_utc())
    }

    #[tokio::test]
    async fn a_matching_event_is_enriched_and_rendered() {
        let s = store(false);
        let events = vec![event(
            json!({"user_id": "u1", "feature": "csv.export", "count": 1, "plan": "free"}),
        )];
        let out = route(&events, &pipelines(), &s, None).await;
        let PairOutcome::Routed(d) = &out[0].as_ref().unwrap()[0] else {
            panic!("{out:?}")
        };
        assert_eq!(d[0].channel, "#alerts");
        assert_eq!(d[0].group_id(), "default:#alerts");
        let text = serde_json::to_string(&d[0].message.blocks).unwrap();
        assert!(text.contains("user.account*\\nacme"), "{text}");
        assert!(
            !text.contains("secret_note"),
            "only the listed attributes are attached"
        );
    }

    #[tokio::test]
    async fn lookups_are_batched_across_the_invocation() {
        let s = store(false);
        let events: Vec<_> = (0..10)
            .map(|i| event(json!({"user_id": format!("u{i}"), "feature": "api"})))
            .collect();
        let out = route(&events, &pipelines(), &s, None).await;
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        assert!(out
            .iter()
            .all(|r| matches!(&r.as_ref().unwrap()[0], PairOutcome::Routed(_))));
    }

    #[tokio::test]
    async fn filtered_events_need_no_lookup() {
        let s = store(false);
        let out = route(
            &[event(json!({"user_id": "u1", "feature": "profile.view"}))],
            &pipelines(),
            &s,
            None,
        )
        .await;
        assert!(matches!(
            &out[0].as_ref().unwrap()[0],
            PairOutcome::Filtered { .. }
        ));
        assert_eq!(s.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_unknown_user_still_routes() {
        let s = store(false);
        let out = route(
            &[event(json!({"user_id": "nobody", "feature": "api"}))],
            &pipelines(),
            &s,
            None,
        )
        .await;
        let PairOutcome::Routed(d) = &out[0].as_ref().unwrap()[0] else {
            panic!()
        };
        assert!(!serde_json::to_string(&d[0].message.blocks)
            .unwrap()
            .contains("user.account"));
    }

    fn plan_filtered_pipelines() -> PipelineSet {
        let mut set = PipelineSet::default();
        set.insert(
            Pipeline::from_json(&json!({
                "id": "pro-only",
                "events": ["feature.used"],
                "steps": [
                    {"type": "enrich.entity", "entity": "user", "key": "user_id"},
                    {"type": "filter.match", "expr": "user.plan == 'pro'"}
                ],
                "destinations": [{"type": "slack", "channel": "#alerts", "template": {"text": "plan $user.plan"}}]
            }))
            .unwrap()
            .unwrap(),
        );
        set
    }

    #[tokio::test]
    async fn a_sender_cannot_supply_the_attributes_an_enrich_step_attaches() {
        let s = store(false);
        let spoofed = [
            // A user the table does not know.
            json!({"user_id": "nobody", "feature": "api", "user": {"plan": "pro"}}),
            // No user id at all.
            json!({"feature": "api", "user": {"plan": "pro"}}),
            // A user id that is no id.
            json!({"user_id": {"x": 1}, "feature": "api", "user": {"plan": "pro"}}),
        ];
        for data in spoofed {
            let out = route(&[event(data.clone())], &plan_filtered_pipelines(), &s, None).await;
            assert!(
                matches!(&out[0].as_ref().unwrap()[0], PairOutcome::Filtered { .. }),
                "{data} passed a filter on an attribute it supplied itself: {out:?}"
            );
        }
        // The table's own answer still decides: u1 is pro there, whatever the event says.
        let out = route(
            &[event(
                json!({"user_id": "u1", "feature": "api", "user": {"plan": "free"}}),
            )],
            &plan_filtered_pipelines(),
            &s,
            None,
        )
        .await;
        let PairOutcome::Routed(d) = &out[0].as_ref().unwrap()[0] else {
            panic!("{out:?}")
        };
        assert!(
            d[0].message.text.contains("user.plan pro"),
            "{}",
            d[0].message.text
        );
    }

    #[tokio::test]
    async fn a_miss_replaces_what_the_sender_put_under_the_entity_name() {
        let s = store(false);
        let out = route(
            &[event(
                json!({"user_id": "nobody", "feature": "api", "user": {"account": "Spoofed Inc"}}),
            )],
            &pipelines(),
            &s,
            None,
        )
        .await;
        let PairOutcome::Routed(d) = &out[0].as_ref().unwrap()[0] else {
            panic!("{out:?}")
        };
        let text = serde_json::to_string(&d[0].message).unwrap();
        assert!(!text.contains("Spoofed Inc"), "{text}");
    }

    #[tokio::test]
    async fn a_failed_lookup_fails_only_the_events_that_needed_it() {
        let s = store(true);
        let events = vec![
            event(json!({"user_id": "u1", "feature": "api"})),
            event(json!({"user_id": "u1", "feature": "profile.view"})),
        ];
        let out = route(&events, &pipelines(), &s, None).await;
        assert!(out[0].is_err());
        assert!(out[1].is_ok());
    }

    #[tokio::test]
    async fn a_pipeline_bound_to_a_source_filters_every_other_sources_event() {
        let mut set = PipelineSet::default();
        set.insert(
            Pipeline::from_json(&json!({
                "id": "billing",
                "events": ["feature.used"],
                "sources": ["webhook:stripe"],
                "destinations": [{"type": "slack", "channel": "#billing"}]
            }))
            .unwrap()
            .unwrap(),
        );
        let from = |source: &str| {
            let e = parse_incoming(&json!({"name": "feature.used", "id": "x"}), "").unwrap();
            Envelope::accept(e, source, time::OffsetDateTime::now_utc())
        };
        let out = route(
            &[from("webhook:stripe"), from("tests"), from("stripe")],
            &set,
            &store(false),
            None,
        )
        .await;
        let PairOutcome::Routed(d) = &out[0].as_ref().unwrap()[0] else {
            panic!("{out:?}")
        };
        assert_eq!(d[0].event_id, "webhook:stripe:x");
        for (i, source) in [(1, "tests"), (2, "stripe")] {
            let PairOutcome::Filtered { reason, .. } = &out[i].as_ref().unwrap()[0] else {
                panic!("{out:?}")
            };
            assert!(reason.contains(&format!("{source:?}")), "{reason}");
        }
        // The same client id from two sources: two events, two delivery keys.
        assert_ne!(
            delivery_key(&from("tests").id.to_string(), "billing", 0),
            delivery_key(&from("webhook:stripe").id.to_string(), "billing", 0)
        );
    }

    #[test]
    fn delivery_keys_differ_per_destination() {
        assert_ne!(delivery_key("e", "p", 0), delivery_key("e", "p", 1));
        assert_ne!(delivery_key("e1", "p", 0), delivery_key("e", "1p", 0));
        assert_eq!(delivery_key("e", "p", 0).len(), 64);
    }
}
