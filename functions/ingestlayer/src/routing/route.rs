//! Routing: an event through every pipeline listening to it, to one message per Slack
//! destination. Plain logic over an [`EntityStore`]; the pipeline Lambda handler wraps it.
//!
//! Entity lookups are batched across all the events of an invocation: every (event,
//! pipeline) pair runs its steps until it needs an entity, then all needed entities are
//! fetched in one batched lookup, and the pairs go on.

use serde_json::{json, Map, Value};

use crate::delivery::message::Delivery;
use crate::error::Error;
use crate::event::Envelope;
use crate::outbound::message::{Outbound, Target};
use crate::routing::enrich::{entity_key, EntityStore};
use crate::routing::pipelines::Destination;
use crate::routing::pipelines::{HeartbeatSpec, Pipeline, PipelineSet, Step};
use crate::routing::render::{card, render, RenderInput};
use crate::routing::state::{calendar_window, step_pk, Ping, StateAnswer, StateOp, StateStore};

/// What became of one (event, pipeline) pair.
#[derive(Debug, Clone, PartialEq)]
pub enum PairOutcome {
    /// Rendered, one delivery per destination: `slack` for the Slack queue, `outbound` for
    /// the destinations queue.
    Routed {
        slack: Vec<Delivery>,
        outbound: Vec<Outbound>,
    },
    /// A step dropped or held it (a filter, a route, a throttle, a threshold below its
    /// count, a heartbeat ping, a mute); `reason` says which and why.
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
    /// What stateful steps worked out (`$throttle.*`, `$threshold.*`, `$rollup.*`, …).
    vars: Map<String, Value>,
    /// The destinations a `route` step chose (all when none ran).
    chosen: Option<Vec<usize>>,
}

/// Makes a signed link to a stored event.
pub type LinkMaker<'a> = &'a (dyn Fn(&Envelope) -> String + Sync);

/// Where stateful steps keep their state, and the time they decide by.
pub struct Steps<'a, T: StateStore> {
    pub state: &'a T,
    pub now_ms: i64,
}

/// Routes each event through its pipelines. One result per event, in order. `links`
/// signs a link to each stored event for truncated messages and digests.
pub async fn route<S: EntityStore, T: StateStore>(
    events: &[Envelope],
    pipelines: &PipelineSet,
    store: &S,
    steps: &Steps<'_, T>,
    links: Option<LinkMaker<'_>>,
) -> Vec<EventResult> {
    route_traced(events, pipelines, store, steps, links, false)
        .await
        .into_iter()
        .map(|r| r.map(|pairs| pairs.into_iter().map(|t| t.outcome).collect()))
        .collect()
}

/// The key value a stateful step reads, as text; `(none)` when the event lacks it, so
/// such events share one key rather than escaping the step.
fn key_value(context: &Value, path: &[String]) -> String {
    scalar_at(context, path).unwrap_or_else(|| "(none)".to_owned())
}

/// State writes one invocation makes at once: a batch's events side by side, without
/// opening a connection per event of a large batch.
const STATE_WRITES_AT_ONCE: usize = 10;

/// A pair's next wait: an entity lookup or a state write.
enum Wait {
    Entity(Option<String>),
    State(StateOp),
}

/// [`route`], keeping each pair's steps; with `explain`, each filter step also names the
/// part of its expression that decided (it evaluates the parts again: for tools, not for
/// the pipeline function).
pub async fn route_traced<S: EntityStore, T: StateStore>(
    events: &[Envelope],
    pipelines: &PipelineSet,
    store: &S,
    state: &Steps<'_, T>,
    links: Option<LinkMaker<'_>>,
    explain: bool,
) -> Vec<Result<Vec<Traced>, Error>> {
    let now_ms = state.now_ms;
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
            let mut vars = Map::new();
            if let Some(ce) = &e.cloudevent {
                vars.insert("cloudevent".into(), Value::Object(ce.clone()));
            }
            pairs.push(Pair {
                event: i,
                pipeline: p,
                cursor: 0,
                context,
                filtered,
                steps: Vec::new(),
                vars,
                chosen: None,
            });
        }
    }
    let mut failed: Vec<Option<Error>> = (0..events.len()).map(|_| None).collect();

    loop {
        // Run every live pair up to its next wait (an entity lookup or a state write).
        let mut waits: Vec<(usize, Wait)> = Vec::new();
        for (pi, pair) in pairs.iter_mut().enumerate() {
            if pair.filtered.is_some() || failed[pair.event].is_some() {
                continue;
            }
            let origin = events[pair.event].origin();
            let pipeline_id = pair.pipeline.id.as_str();
            while let Some(step) = pair.pipeline.steps.get(pair.cursor) {
                match step {
                    Step::Filter(f) => {
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
                    Step::Route(spec) => {
                        let mut chosen = None;
                        let mut decided = String::new();
                        for (filter, to) in &spec.routes {
                            if matches!(filter.matches(&pair.context, &origin), Ok(true)) {
                                chosen = Some(to.clone());
                                decided = format!("when {:?}", filter.source());
                                break;
                            }
                        }
                        if chosen.is_none() {
                            chosen = spec.default.clone();
                            decided = "default".into();
                        }
                        let channels: Vec<String> = chosen
                            .iter()
                            .flatten()
                            .filter_map(|&d| pair.pipeline.destinations.get(d))
                            .map(Destination::label)
                            .collect();
                        pair.steps.push(StepTrace::Stateful {
                            kind: "route".into(),
                            key: None,
                            passed: chosen.is_some(),
                            detail: match &chosen {
                                Some(_) => format!("{decided}: to {}", channels.join(", ")),
                                None => "no route holds and there is no default".into(),
                            },
                        });
                        match chosen {
                            Some(to) => {
                                pair.chosen = Some(to);
                                pair.cursor += 1;
                            }
                            None => {
                                pair.filtered =
                                    Some("route: no route holds and there is no default".into());
                                break;
                            }
                        }
                    }
                    Step::Enrich(spec) => {
                        let value = spec
                            .key
                            .iter()
                            .try_fold(&pair.context, |v, seg| v.get(seg.as_str()));
                        waits.push((pi, Wait::Entity(entity_key(&spec.entity, value))));
                        break;
                    }
                    Step::Throttle(_) | Step::Threshold(_) | Step::Rollup(_) => {
                        if let Some(op) =
                            state_op(step, pipeline_id, pair.cursor, &pair.context, now_ms)
                        {
                            waits.push((pi, Wait::State(op)));
                        }
                        break;
                    }
                }
            }
        }
        if waits.is_empty() {
            break;
        }
        // All of the round's entity lookups in one batch, its state writes side by side.
        let keys: Vec<String> = waits
            .iter()
            .filter_map(|(_, w)| match w {
                Wait::Entity(k) => k.clone(),
                Wait::State(_) => None,
            })
            .collect();
        let entity_lookup = async {
            if keys.is_empty() {
                Ok(Default::default())
            } else {
                store.get_many(&keys).await
            }
        };
        // At most STATE_WRITES_AT_ONCE at a time, answers in the waits' order.
        let mut each = Vec::with_capacity(waits.len());
        for (_, w) in &waits {
            each.push(async move {
                match w {
                    Wait::State(op) => Some(state.state.apply(op, now_ms).await),
                    Wait::Entity(_) => None,
                }
            });
        }
        let writes = futures_util::StreamExt::collect::<Vec<_>>(futures_util::StreamExt::buffered(
            futures_util::stream::iter(each),
            STATE_WRITES_AT_ONCE,
        ));
        let (found, answers) = futures_util::future::join(entity_lookup, writes).await;
        for ((pi, wait), answer) in waits.into_iter().zip(answers) {
            let pair = &mut pairs[pi];
            if failed[pair.event].is_some() {
                continue;
            }
            match (wait, pair.pipeline.steps.get(pair.cursor)) {
                (Wait::Entity(key), Some(Step::Enrich(spec))) => match &found {
                    Ok(found) => {
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
                        pair.cursor += 1;
                    }
                    Err(e) => failed[pair.event] = Some(e.for_another()),
                },
                (Wait::State(_), Some(step)) => match answer {
                    Some(Ok(answer)) => apply_answer(pair, step, answer),
                    Some(Err(e)) => failed[pair.event] = Some(e),
                    None => {}
                },
                _ => pair.cursor += 1,
            }
        }
    }

    // Heartbeat pipelines record a ping for each event that passed their steps; they post
    // only when the ping brings back a key that was reported missing.
    let pings =
        futures_util::future::join_all(pairs.iter().enumerate().filter_map(|(pi, pair)| {
            let beat = pair.pipeline.heartbeat.as_ref()?;
            if pair.filtered.is_some() || failed[pair.event].is_some() {
                return None;
            }
            let key = key_value(&pair.context, &beat.key);
            let due_ms = now_ms + beat.interval.ms + beat.grace.ms;
            let pipeline = pair.pipeline.id.as_str();
            Some(async move {
                (
                    pi,
                    key.clone(),
                    state.state.ping(pipeline, &key, now_ms, due_ms).await,
                )
            })
        }))
        .await;
    for (pi, key, ping) in pings {
        let pair = &mut pairs[pi];
        let Some(beat) = pair.pipeline.heartbeat.as_ref() else {
            continue;
        };
        match ping {
            Err(e) => failed[pair.event] = Some(e),
            Ok(Ping::Fine) => {
                pair.steps.push(StepTrace::Stateful {
                    kind: "heartbeat".into(),
                    key: Some(key.clone()),
                    passed: false,
                    detail: format!(
                        "ping recorded; next due within {} + {} grace",
                        beat.interval.text, beat.grace.text
                    ),
                });
                pair.filtered = Some(format!(
                    "heartbeat: ping for {key:?} recorded; the pipeline posts only when a key goes missing or comes back"
                ));
            }
            Ok(Ping::Back {
                missing_since_ms,
                last_seen_ms,
            }) => {
                pair.steps.push(StepTrace::Stateful {
                    kind: "heartbeat".into(),
                    key: Some(key.clone()),
                    passed: true,
                    detail: "back after being reported missing".into(),
                });
                pair.vars.insert(
                    "heartbeat".into(),
                    heartbeat_vars(
                        beat,
                        &key,
                        "recovered",
                        Some(last_seen_ms),
                        Some(missing_since_ms),
                    ),
                );
            }
        }
    }

    // Muted keys: one batched read for the whole invocation.
    let mute_keys: Vec<(usize, (String, String))> = pairs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.filtered.is_none() && failed[p.event].is_none())
        .filter_map(|(pi, p)| {
            let m = p.pipeline.mute.as_ref()?;
            Some((
                pi,
                (
                    p.pipeline.id.as_str().to_owned(),
                    key_value(&p.context, &m.key),
                ),
            ))
        })
        .collect();
    if !mute_keys.is_empty() {
        let keys: Vec<(String, String)> = mute_keys.iter().map(|(_, k)| k.clone()).collect();
        match state.state.muted(&keys, now_ms).await {
            Ok(muted) => {
                for (pi, k) in mute_keys {
                    if let Some(m) = muted.get(&k) {
                        let pair = &mut pairs[pi];
                        let until = time::OffsetDateTime::from_unix_timestamp(m.until_ms / 1000)
                            .ok()
                            .and_then(|t| {
                                t.format(&time::format_description::well_known::Rfc3339)
                                    .ok()
                            })
                            .unwrap_or_default();
                        pair.steps.push(StepTrace::Stateful {
                            kind: "mute".into(),
                            key: Some(k.1.clone()),
                            passed: false,
                            detail: format!("muted by {} until {until}", m.by),
                        });
                        pair.filtered = Some(format!("muted: {:?} by {} until {until}", k.1, m.by));
                    }
                }
            }
            Err(e) => {
                for (pi, _) in mute_keys {
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
        let routed = deliveries(
            pair.pipeline,
            event,
            &pair.context,
            &pair.vars,
            pair.chosen.as_deref(),
            link,
        );
        outcomes.push(Traced {
            pipeline_id,
            outcome: PairOutcome::Routed {
                slack: routed.slack,
                outbound: routed.outbound,
            },
            steps: pair.steps,
        });
    }
    results
}

/// The state write a stateful step makes for an event: its item is per pipeline, step and
/// key value (and, for a rollup, calendar window).
fn state_op(
    step: &Step,
    pipeline_id: &str,
    cursor: usize,
    context: &Value,
    now_ms: i64,
) -> Option<StateOp> {
    Some(match step {
        Step::Throttle(spec) => StateOp::Throttle {
            pk: step_pk(
                "throttle",
                pipeline_id,
                cursor,
                &key_value(context, &spec.key),
            ),
            window_ms: spec.window.ms,
        },
        Step::Threshold(spec) => StateOp::Threshold {
            pk: step_pk(
                "threshold",
                pipeline_id,
                cursor,
                &key_value(context, &spec.key),
            ),
            window_ms: spec.window.ms,
            count: spec.count,
        },
        Step::Rollup(spec) => {
            let (start, ends_ms) = calendar_window(now_ms, spec.window.ms);
            let key = key_value(context, &spec.key);
            StateOp::Rollup {
                pk: format!("{}#{start}", step_pk("rollup", pipeline_id, cursor, &key)),
                ends_ms,
                distinct: spec.distinct.as_deref().and_then(|p| scalar_at(context, p)),
            }
        }
        _ => return None,
    })
}

/// Takes a stateful step's answer: the pair goes on with the step's variables, or is held.
fn apply_answer(pair: &mut Pair<'_>, step: &Step, answer: StateAnswer) {
    let (kind, key, window) = match step {
        Step::Throttle(s) => ("throttle", key_value(&pair.context, &s.key), &s.window),
        Step::Threshold(s) => ("threshold", key_value(&pair.context, &s.key), &s.window),
        Step::Rollup(s) => ("rollup", key_value(&pair.context, &s.key), &s.window),
        _ => {
            pair.cursor += 1;
            return;
        }
    };
    let (passed, detail, vars) = match answer {
        StateAnswer::ThrottlePass { held, since_ms } => (
            true,
            match held {
                0 => format!("first in its {} window", window.text),
                n => format!(
                    "first in its {} window; {n} held in the last one",
                    window.text
                ),
            },
            json!({"held": held, "since": since_ms, "window": window.text}),
        ),
        StateAnswer::ThrottleHold => (
            false,
            format!("held: {key:?} already passed within {}", window.text),
            Value::Null,
        ),
        StateAnswer::ThresholdPass {
            count,
            first_ms,
            last_ms,
        } => (
            true,
            format!("{count} events within {}: passes", window.text),
            json!({"count": count, "first": first_ms, "last": last_ms, "window": window.text}),
        ),
        StateAnswer::ThresholdHold { count } => (
            false,
            format!(
                "held: {count} in the window of {} (passes once, at the count)",
                window.text
            ),
            Value::Null,
        ),
        StateAnswer::Rollup { count, distinct } => (
            true,
            format!("{count} this {} window, {distinct} distinct", window.text),
            json!({"count": count, "distinct": distinct, "window": window.text}),
        ),
    };
    pair.steps.push(StepTrace::Stateful {
        kind: kind.into(),
        key: Some(key.clone()),
        passed,
        detail: detail.clone(),
    });
    if passed {
        pair.vars.insert(kind.into(), vars);
        pair.cursor += 1;
    } else {
        pair.filtered = Some(format!("{kind} on {key:?}: {detail}"));
    }
}

/// The `$heartbeat.*` variables.
pub fn heartbeat_vars(
    beat: &HeartbeatSpec,
    key: &str,
    status: &str,
    last_seen_ms: Option<i64>,
    missing_since_ms: Option<i64>,
) -> Value {
    json!({
        "key": key,
        "status": status,
        "last_seen": last_seen_ms,
        "missing_since": missing_since_ms,
        "interval": beat.interval.text,
        "grace": beat.grace.text,
    })
}

/// What a pair was routed to: the Slack queue's messages and the destinations queue's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routed {
    pub slack: Vec<Delivery>,
    pub outbound: Vec<Outbound>,
}

impl Routed {
    pub fn extend(&mut self, other: Routed) {
        self.slack.extend(other.slack);
        self.outbound.extend(other.outbound);
    }

    pub fn len(&self) -> usize {
        self.slack.len() + self.outbound.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where each of a pair's messages goes, as the journey and the warehouse name it: a Slack
/// channel (`#alerts`) or a destination beyond Slack (`discord webhook (alerts-hook)`).
pub fn targets(slack: &[Delivery], outbound: &[Outbound]) -> Vec<String> {
    slack
        .iter()
        .map(|d| d.channel.to_string())
        .chain(outbound.iter().map(|o| o.target.describe()))
        .collect()
}

/// One delivery per destination of `pipeline` (those in `chosen`, when a route chose),
/// rendered from `context` and the steps' `vars`: Block Kit for Slack, a card for the
/// others.
pub fn deliveries(
    pipeline: &Pipeline,
    event: &Envelope,
    context: &Value,
    vars: &Map<String, Value>,
    chosen: Option<&[usize]>,
    link: Option<String>,
) -> Routed {
    let pipeline_id = pipeline.id.as_str();
    let input = RenderInput {
        event_name: event.name.as_str(),
        event_id: event.id.as_str(),
        origin: event.origin(),
        context,
        full_event_url: link.as_deref(),
        vars: Some(vars),
    };
    let received_ms = (event.received_at.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut routed = Routed::default();
    for (di, dest) in pipeline
        .destinations
        .iter()
        .enumerate()
        .filter(|(di, _)| chosen.is_none_or(|c| c.contains(di)))
    {
        let d = match dest {
            Destination::Slack(d) => d,
            Destination::Outbound(o) => {
                routed.outbound.push(Outbound {
                    v: 1,
                    event_id: event.id.as_str().to_owned(),
                    event_name: event.name.as_str().to_owned(),
                    pipeline_id: pipeline_id.to_owned(),
                    destination: di,
                    received_ms,
                    source: event.origin().source.to_owned(),
                    target: o.target.clone(),
                    card: card(&o.template, &input),
                    data: matches!(o.target, Target::Webhook { .. }).then(|| context.clone()),
                    properties: o
                        .properties
                        .iter()
                        .map(|(name, t)| (name.clone(), t.render_raw(&input)))
                        .collect(),
                    digest_threshold: o.digest_threshold,
                });
                continue;
            }
        };
        let mut message = render(&d.template, &input);
        if let Some(m) = &pipeline.mute {
            crate::routing::mute_button(&mut message, pipeline_id, &key_value(context, &m.key), m);
        }
        routed.slack.push(Delivery {
            v: 1,
            event_id: event.id.as_str().to_owned(),
            event_name: event.name.as_str().to_owned(),
            received_ms,
            pipeline_id: pipeline_id.to_owned(),
            destination: di,
            team: d.team.clone(),
            channel: d.channel.clone(),
            message,
            min_interval_ms: d.min_interval_ms,
            digest_threshold: d.digest_threshold,
            link: link.clone(),
            thread_key: d.thread_by.as_deref().and_then(|p| scalar_at(context, p)),
            mention: d.mention.as_deref().and_then(|p| scalar_at(context, p)),
        });
    }
    routed
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
    use crate::routing::state::MemoryState;

    pub(crate) fn steps(state: &MemoryState) -> Steps<'_, MemoryState> {
        Steps {
            state,
            now_ms: 1_700_000_000_000,
        }
    }
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
        let out = route(
            &events,
            &pipelines(),
            &s,
            &steps(&MemoryState::default()),
            None,
        )
        .await;
        let PairOutcome::Routed { slack: d, .. } = &out[0].as_ref().unwrap()[0] else {
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
        let out = route(
            &events,
            &pipelines(),
            &s,
            &steps(&MemoryState::default()),
            None,
        )
        .await;
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        assert!(out.iter().all(|r| matches!(
            &r.as_ref().unwrap()[0],
            PairOutcome::Routed { slack: _, .. }
        )));
    }

    #[tokio::test]
    async fn filtered_events_need_no_lookup() {
        let s = store(false);
        let out = route(
            &[event(json!({"user_id": "u1", "feature": "profile.view"}))],
            &pipelines(),
            &s,
            &steps(&MemoryState::default()),
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
            &steps(&MemoryState::default()),
            None,
        )
        .await;
        let PairOutcome::Routed { slack: d, .. } = &out[0].as_ref().unwrap()[0] else {
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
            let out = route(
                &[event(data.clone())],
                &plan_filtered_pipelines(),
                &s,
                &steps(&MemoryState::default()),
                None,
            )
            .await;
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
            &steps(&MemoryState::default()),
            None,
        )
        .await;
        let PairOutcome::Routed { slack: d, .. } = &out[0].as_ref().unwrap()[0] else {
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
            &steps(&MemoryState::default()),
            None,
        )
        .await;
        let PairOutcome::Routed { slack: d, .. } = &out[0].as_ref().unwrap()[0] else {
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
        let out = route(
            &events,
            &pipelines(),
            &s,
            &steps(&MemoryState::default()),
            None,
        )
        .await;
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
            &steps(&MemoryState::default()),
            None,
        )
        .await;
        let PairOutcome::Routed { slack: d, .. } = &out[0].as_ref().unwrap()[0] else {
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

    fn one(doc: Value) -> PipelineSet {
        let mut set = PipelineSet::default();
        set.insert(Pipeline::from_json(&doc).unwrap().unwrap());
        set
    }

    fn named(name: &str, data: Value) -> Envelope {
        let e = parse_incoming(&json!({"name": name, "data": data}), "").unwrap();
        Envelope::accept(e, "test", time::OffsetDateTime::now_utc())
    }

    fn routed_channels(out: &[EventResult]) -> Vec<Vec<String>> {
        out.iter()
            .map(|r| {
                r.as_ref()
                    .unwrap()
                    .iter()
                    .flat_map(|o| match o {
                        PairOutcome::Routed { slack: d, .. } => {
                            d.iter().map(|d| d.channel.to_string()).collect()
                        }
                        PairOutcome::Filtered { .. } => Vec::new(),
                    })
                    .collect()
            })
            .collect()
    }

    #[tokio::test]
    async fn wildcards_take_every_name_they_match_and_a_pipeline_runs_once() {
        let set = one(json!({
            "id": "subs", "events": ["customer.subscription.*", "customer.subscription.updated"],
            "destinations": [{"type": "slack", "channel": "#billing"}]
        }));
        let events = [
            named("customer.subscription.updated", json!({})),
            named("customer.subscription.trial_will_end", json!({})),
            named("customer.created", json!({})),
        ];
        let mem = MemoryState::default();
        let out = route(&events, &set, &store(false), &steps(&mem), None).await;
        assert_eq!(
            routed_channels(&out),
            vec![
                vec!["#billing".to_owned()],
                vec!["#billing".to_owned()],
                vec![]
            ]
        );
        assert!(
            Pipeline::from_json(&json!({"id": "x", "events": ["bad name*"],
            "destinations": [{"type": "slack", "channel": "#a"}]}))
            .unwrap_err()
            .field
            .starts_with("events[0]")
        );
    }

    #[tokio::test]
    async fn a_route_step_sends_free_users_on_paid_features_to_upsell_and_others_to_alerts() {
        let set = one(json!({
            "id": "usage", "events": ["feature.used"],
            "steps": [{"type": "route",
                "routes": [{"when": "plan == 'free' && feature in {api, export}", "to": ["#upsell"]}],
                "default": ["#alerts"]}],
            "destinations": [{"type": "slack", "channel": "#alerts"}, {"type": "slack", "channel": "#upsell"}]
        }));
        let events = [
            named("feature.used", json!({"plan": "free", "feature": "api"})),
            named("feature.used", json!({"plan": "pro", "feature": "api"})),
        ];
        let mem = MemoryState::default();
        let out = route(&events, &set, &store(false), &steps(&mem), None).await;
        assert_eq!(
            routed_channels(&out),
            vec![vec!["#upsell".to_owned()], vec!["#alerts".to_owned()]]
        );
        let PairOutcome::Routed { slack: d, .. } = &out[0].as_ref().unwrap()[0] else {
            panic!()
        };
        assert_eq!(
            d[0].destination, 1,
            "the delivery keeps its destination's index"
        );
        // A route to a channel the pipeline does not post to is refused at load.
        let e = Pipeline::from_json(&json!({
            "id": "usage", "events": ["feature.used"],
            "steps": [{"type": "route", "routes": [{"when": "true", "to": ["#nowhere"]}]}],
            "destinations": [{"type": "slack", "channel": "#alerts"}]
        }))
        .unwrap_err();
        assert_eq!(e.field, "steps[0].routes[0].to");
    }

    #[tokio::test]
    async fn throttle_threshold_and_rollup_decide_by_the_injected_clock() {
        let set = one(json!({
            "id": "logins", "events": ["user.login_failed"],
            "steps": [
                {"type": "threshold", "key": "$event.user_id", "count": 3, "window": "10m"},
                {"type": "throttle", "key": "user_id", "window": "1h"},
                {"type": "rollup", "key": "user_id", "window": "7d", "distinct": "ip"}
            ],
            "destinations": [{"type": "slack", "channel": "#security",
                "template": {"text": "${threshold.count} tries; ${rollup.count} this week"}}]
        }));
        let mem = MemoryState::default();
        let t0 = 1_796_000_000_000;
        let mut posted = Vec::new();
        for minute in 0..9 {
            let e = named(
                "user.login_failed",
                json!({"user_id": "u1", "ip": format!("10.0.0.{minute}")}),
            );
            let at = Steps {
                state: &mem,
                now_ms: t0 + minute * 60_000,
            };
            let out = route(std::slice::from_ref(&e), &set, &store(false), &at, None).await;
            if let PairOutcome::Routed { slack: d, .. } = &out[0].as_ref().unwrap()[0] {
                posted.push((minute, serde_json::to_string(&d[0].message.blocks).unwrap()));
            }
        }
        // The threshold passes on the third try in its window (minute 2), and again at the
        // third of the next window (minute 12 would be next): the throttle holds nothing
        // else within the hour.
        assert_eq!(posted.len(), 1, "{posted:?}");
        assert_eq!(posted[0].0, 2);
        assert!(
            posted[0].1.contains("3 tries; 1 this week"),
            "{}",
            posted[0].1
        );
        // An hour later the threshold's next pass gets through the throttle, which says
        // what it held.
        let mut later = Vec::new();
        for minute in 70..73 {
            let e = named(
                "user.login_failed",
                json!({"user_id": "u1", "ip": "10.0.0.1"}),
            );
            let at = Steps {
                state: &mem,
                now_ms: t0 + minute * 60_000,
            };
            let out = route(std::slice::from_ref(&e), &set, &store(false), &at, None).await;
            let traced = &out[0].as_ref().unwrap()[0];
            if let PairOutcome::Routed { slack: d, .. } = traced {
                later.push(serde_json::to_string(&d[0].message.blocks).unwrap());
            }
        }
        assert_eq!(later.len(), 1);
        assert!(later[0].contains("3 tries"), "{}", later[0]);
    }

    #[tokio::test]
    async fn a_heartbeat_ping_posts_nothing_and_a_missing_key_is_said_once() {
        let set = one(json!({
            "id": "cron", "events": ["cron.finished"],
            "heartbeat": {"key": "$event.job", "interval": "1h", "grace": "10m"},
            "destinations": [{"type": "slack", "channel": "#ops"}]
        }));
        let mem = MemoryState::default();
        let t0 = 1_796_000_000_000;
        let ping = named("cron.finished", json!({"job": "backup"}));
        let out = route(
            std::slice::from_ref(&ping),
            &set,
            &store(false),
            &Steps {
                state: &mem,
                now_ms: t0,
            },
            None,
        )
        .await;
        assert!(
            matches!(&out[0].as_ref().unwrap()[0], PairOutcome::Filtered { reason, .. } if reason.contains("heartbeat"))
        );
        let late = t0 + 71 * 60_000;
        let missing = crate::routing::missing_heartbeats(&mem, &set, late)
            .await
            .unwrap();
        assert_eq!(missing.len(), 1);
        let text = serde_json::to_string(&missing.slack[0].message.blocks).unwrap();
        assert!(text.contains("Missing: backup"), "{text}");
        assert!(
            crate::routing::missing_heartbeats(&mem, &set, late + 60_000)
                .await
                .unwrap()
                .is_empty()
        );
        let out = route(
            std::slice::from_ref(&ping),
            &set,
            &store(false),
            &Steps {
                state: &mem,
                now_ms: late + 120_000,
            },
            None,
        )
        .await;
        let PairOutcome::Routed { slack: d, .. } = &out[0].as_ref().unwrap()[0] else {
            panic!("{out:?}")
        };
        assert!(serde_json::to_string(&d[0].message.blocks)
            .unwrap()
            .contains("Back: backup"));
    }

    #[tokio::test]
    async fn a_muted_key_is_held_and_others_carry_the_mute_button() {
        let set = one(json!({
            "id": "limits", "events": ["usage.limit_reached"],
            "mute": {"key": "account", "for": "7d"},
            "destinations": [{"type": "slack", "channel": "#limits"}]
        }));
        let mem = MemoryState::default();
        mem.mute("limits", "acme", 1_700_000_000_000 + 1000, "U1");
        let events = [
            named("usage.limit_reached", json!({"account": "acme"})),
            named("usage.limit_reached", json!({"account": "globex"})),
        ];
        let out = route(&events, &set, &store(false), &steps(&mem), None).await;
        assert!(
            matches!(&out[0].as_ref().unwrap()[0], PairOutcome::Filtered { reason, .. } if reason.contains("muted"))
        );
        let PairOutcome::Routed { slack: d, .. } = &out[1].as_ref().unwrap()[0] else {
            panic!()
        };
        let text = serde_json::to_string(&d[0].message.blocks).unwrap();
        assert!(
            text.contains("ingestlayer_mute") && text.contains("Mute this account for 7d"),
            "{text}"
        );
    }
}
