//! The pipeline function: events from the events queue through their pipelines to the
//! Slack FIFO queue. One bad record fails only itself (ReportBatchItemFailures).

pub mod enrich;
pub mod filter;
pub mod format;
pub mod handoff;
pub mod mutes;
pub mod pipelines;
pub mod render;
pub mod route;
pub mod state;
pub mod test_message;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::aws::sqs::{batch_response, send_all, Outgoing};
use crate::config::PipelineConfig;
use crate::delivery::message::Delivery;
use crate::event::Envelope;
use crate::journey::{JourneyStore, Outcome, Record, Stage};
use crate::outbound::message::Outbound;
use crate::routing::enrich::{DynamoEntities, EntityStore};
use crate::routing::handoff::{Handoff, PipelineOutcome};
use crate::routing::pipelines::MuteSpec;
use crate::routing::pipelines::PipelineSet;
use crate::routing::route::{route_traced, PairOutcome, Routed, Steps, Traced};
use crate::routing::state::{DynamoState, NoState, StateStore};
use crate::slack::block_kit::RenderedMessage;

/// Pipelines loaded from the table, reused for `ttl`.
pub struct PipelineCache {
    client: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
    loaded: Mutex<Option<(Instant, Arc<PipelineSet>)>>,
}

impl PipelineCache {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, ttl: Duration) -> Self {
        Self {
            client,
            table,
            ttl,
            loaded: Mutex::new(None),
        }
    }

    /// Forgets the loaded pipelines, so the next call reads the table.
    pub async fn invalidate(&self) {
        *self.loaded.lock().await = None;
    }

    /// The current pipelines. A failed reload keeps serving the last good set.
    pub async fn get(&self) -> crate::error::Result<Arc<PipelineSet>> {
        let mut loaded = self.loaded.lock().await;
        if let Some((at, set)) = loaded.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(set.clone());
            }
        }
        match self.load().await {
            Ok(set) => {
                let set = Arc::new(set);
                *loaded = Some((Instant::now(), set.clone()));
                Ok(set)
            }
            Err(e) => match loaded.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(error = %e, "could not reload pipelines; using the last loaded ones");
                    Ok(stale.clone())
                }
                None => Err(e),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(table = %self.table))]
    async fn load(&self) -> crate::error::Result<PipelineSet> {
        let items: Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| crate::error::Error::aws("reading pipelines", e))?;
        let (set, errors) = PipelineSet::from_items(&items);
        for e in &errors {
            tracing::error!(pipeline = %e.pipeline, field = %e.field, reason = %e.message, "pipeline item rejected; the other pipelines run");
        }
        tracing::info!(
            loaded = set.len(),
            rejected = errors.len(),
            "pipelines loaded"
        );
        Ok(set)
    }
}

/// What the pipeline handler holds across invocations.
pub struct PipelineDeps {
    pub pipelines: PipelineCache,
    pub entities: DynamoEntities,
    pub sqs: aws_sdk_sqs::Client,
    pub slack_queue_url: String,
    /// Messages for destinations beyond Slack (`DESTINATIONS_QUEUE_URL`).
    pub destinations_queue_url: Option<String>,
    /// Signs links to stored events for truncated messages and digests.
    pub links: Option<crate::event_links::LinkSigner>,
    /// Where each pipeline's decision about each event is recorded.
    pub journey: Option<JourneyStore>,
    /// What stateful steps remember (`STATE_TABLE`).
    pub state: Option<DynamoState>,
    /// Where every event goes on to the warehouse (`WAREHOUSE_QUEUE_URL`, when the stack's
    /// `Warehouse` parameter is on).
    pub warehouse_queue_url: Option<String>,
}

impl PipelineDeps {
    /// The one constructor, used by the Lambda's main.rs, `make dev` and the tests: builds
    /// the clients; reads the link signing key when configured.
    pub async fn load(
        sdk: &aws_config::SdkConfig,
        cfg: &PipelineConfig,
    ) -> crate::error::Result<Self> {
        let mut deps = Self::new(sdk, cfg);
        if let (Some(url), Some(arn)) = (&cfg.public_api_url, &cfg.link_secret_arn) {
            let key = crate::event_links::load_key(&aws_sdk_secretsmanager::Client::new(sdk), arn)
                .await?;
            deps.links = Some(crate::event_links::LinkSigner::new(key, url, cfg.link_ttl));
        }
        Ok(deps)
    }

    /// Builds the clients, without signed links.
    fn new(sdk: &aws_config::SdkConfig, cfg: &PipelineConfig) -> Self {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        Self {
            pipelines: PipelineCache::new(
                dynamo.clone(),
                cfg.pipelines_table.clone(),
                cfg.cache_ttl,
            ),
            entities: DynamoEntities {
                client: dynamo.clone(),
                table: cfg.entities_table.clone(),
            },
            sqs: aws_sdk_sqs::Client::new(sdk),
            slack_queue_url: cfg.slack_queue_url.clone(),
            destinations_queue_url: cfg.destinations_queue_url.clone(),
            links: None,
            journey: cfg.journey.as_ref().map(|j| JourneyStore::new(sdk, j)),
            state: cfg.state_table.as_ref().map(|table| DynamoState {
                client: dynamo.clone(),
                table: table.clone(),
            }),
            warehouse_queue_url: cfg.warehouse_queue_url.clone(),
        }
    }
}

/// What the pipeline function is invoked with: a batch of the events queue, or the
/// schedule's tick (an EventBridge "Scheduled Event") that runs the heartbeat check.
pub async fn handle_input(
    input: serde_json::Value,
    deps: &PipelineDeps,
) -> crate::error::Result<serde_json::Value> {
    let is_tick = input.get("detail-type").and_then(|d| d.as_str()) == Some(SCHEDULED_EVENT);
    if is_tick {
        let missing = check_heartbeats(deps, time::OffsetDateTime::now_utc()).await?;
        return Ok(serde_json::json!({ "missing": missing }));
    }
    let batch: SqsEvent = serde_json::from_value(input).map_err(|e| {
        crate::error::Error::reason(format!(
            "the pipeline function takes an SQS batch or a scheduled event; this is neither: {e}"
        ))
    })?;
    let response = handle(batch, deps).await;
    serde_json::to_value(response)
        .map_err(|e| crate::error::Error::reason(format!("encoding the batch response: {e}")))
}

/// The `detail-type` of EventBridge's scheduled events (template.yaml's heartbeat schedule).
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// A scheduled event as EventBridge sends it, for `make dev`'s timer and the tests.
pub fn scheduled_event(now: time::OffsetDateTime) -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": ulid::Ulid::new().to_string(),
        "detail-type": SCHEDULED_EVENT,
        "source": "aws.events",
        "time": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "resources": [],
        "detail": {}
    })
}

/// Handles one SQS batch from the events queue.
pub async fn handle(event: SqsEvent, deps: &PipelineDeps) -> SqsBatchResponse {
    handle_with(event, deps, &deps.entities).await
}

/// [`handle`] with another entity store.
pub async fn handle_with<S: EntityStore>(
    event: SqsEvent,
    deps: &PipelineDeps,
    store: &S,
) -> SqsBatchResponse {
    let mut failures: Vec<String> = Vec::new();
    let mut envelopes = Vec::new();
    let mut ids = Vec::new();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("record", message_id = %message_id);
        let _enter = span.enter();
        match record.body.as_deref().map(serde_json::from_str::<Envelope>) {
            Some(Ok(envelope)) => {
                envelopes.push(envelope);
                ids.push(message_id);
            }
            Some(Err(e)) => {
                // Never parseable: it fails until the queue's redrive parks it in the DLQ.
                tracing::error!(error = %e, "record is not an event envelope; leaving it for the DLQ");
                failures.push(message_id);
            }
            None => {
                tracing::error!("record has no body; leaving it for the DLQ");
                failures.push(message_id);
            }
        }
    }
    if envelopes.is_empty() {
        return batch_response(failures);
    }
    // Every line logged about these events carries their ids (the span's `event_ids`).
    let event_ids: Vec<&str> = envelopes.iter().map(|e| e.id.as_str()).collect();
    let span = tracing::info_span!("events", event_ids = ?event_ids);
    route_batch(&envelopes, ids, failures, deps, store)
        .instrument(span)
        .await
}

/// Routes the parsed envelopes (`ids`: their SQS message ids) and queues their messages;
/// `failures` already holds the records that could not be parsed.
async fn route_batch<S: EntityStore>(
    envelopes: &[Envelope],
    ids: Vec<String>,
    mut failures: Vec<String>,
    deps: &PipelineDeps,
    store: &S,
) -> SqsBatchResponse {
    let pipelines = match deps.pipelines.get().await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "no pipelines available; the batch will be retried");
            failures.extend(ids);
            return batch_response(failures);
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let make_link = |e: &Envelope| {
        deps.links
            .as_ref()
            .map(|l| l.link(e.id.as_str(), now))
            .unwrap_or_default()
    };
    let link_maker: Option<crate::routing::route::LinkMaker<'_>> = deps
        .links
        .as_ref()
        .map(|_| &make_link as crate::routing::route::LinkMaker<'_>);
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let results = match &deps.state {
        Some(state) => {
            let steps = Steps { state, now_ms };
            route_traced(envelopes, &pipelines, store, &steps, link_maker, false)
                .instrument(tracing::info_span!("route"))
                .await
        }
        None => {
            let steps = Steps {
                state: &NoState,
                now_ms,
            };
            route_traced(envelopes, &pipelines, store, &steps, link_maker, false)
                .instrument(tracing::info_span!("route"))
                .await
        }
    };
    let at_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut journey: Vec<Record> = Vec::new();

    let mut outgoing: Vec<Outgoing> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    // For the destinations queue: messages beyond Slack.
    let mut outgoing_other: Vec<Outgoing> = Vec::new();
    let mut owner_other: Vec<usize> = Vec::new();
    let mut failed_event = vec![false; envelopes.len()];
    // What each pipeline made of each event, for the warehouse.
    let mut outcomes_of: Vec<Vec<PipelineOutcome>> = vec![Vec::new(); envelopes.len()];
    for (i, result) in results.into_iter().enumerate() {
        let envelope = &envelopes[i];
        match result {
            Err(e) => {
                tracing::warn!(event_id = %envelope.id, error = %e, "enrichment or a step's state failed; the event will be retried");
                journey.push(
                    Record::new(
                        envelope.id.as_str(),
                        Stage::Pipeline,
                        Outcome::Failed,
                        at_ms,
                        "",
                    )
                    .reason(format!(
                        "enrichment or a step's state failed; the event is retried: {e}"
                    )),
                );
                failed_event[i] = true;
            }
            Ok(outcomes) if outcomes.is_empty() => {
                tracing::info!(event_id = %envelope.id, event = %envelope.name, "no pipeline listens to this event");
                journey.push(
                    Record::new(
                        envelope.id.as_str(),
                        Stage::Pipeline,
                        Outcome::Unrouted,
                        at_ms,
                        "",
                    )
                    .reason(format!("no pipeline listens to {}", envelope.name)),
                );
            }
            Ok(outcomes) => {
                for traced in outcomes {
                    journey.push(pipeline_record(envelope, &traced, at_ms));
                    outcomes_of[i].push(PipelineOutcome::of(&traced));
                    match traced.outcome {
                        PairOutcome::Filtered {
                            pipeline_id,
                            reason,
                        } => {
                            tracing::info!(event_id = %envelope.id, pipeline = %pipeline_id, reason = %reason, "filtered out");
                        }
                        PairOutcome::Routed { slack, outbound } => {
                            for d in slack {
                                match queue_message(&d) {
                                    Ok(message) => {
                                        outgoing.push(message);
                                        owner.push(i);
                                    }
                                    Err(e) => {
                                        tracing::error!(event_id = %envelope.id, error = %e, "could not encode delivery");
                                        failed_event[i] = true;
                                    }
                                }
                            }
                            for o in outbound {
                                match outbound_message(&o) {
                                    Ok(message) => {
                                        outgoing_other.push(message);
                                        owner_other.push(i);
                                    }
                                    Err(e) => {
                                        tracing::error!(event_id = %envelope.id, error = %e, "could not encode delivery");
                                        failed_event[i] = true;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let mut sent = send_all(&deps.sqs, &deps.slack_queue_url, &outgoing).await;
    owner.extend(owner_other);
    sent.extend(send_outbound(deps, &outgoing_other).await);
    for (r, &i) in sent.iter().zip(&owner) {
        if let Err(e) = r {
            tracing::error!(event_id = %envelopes[i].id, error = %e, "could not queue the Slack message; the event will be retried");
            failed_event[i] = true;
        }
    }
    for (r, &i) in sent.iter().zip(&owner) {
        if let Err(e) = r {
            let id = envelopes[i].id.as_str();
            for record in journey.iter_mut().filter(|j| j.event_id == id) {
                if record.outcome == Outcome::Matched {
                    record.outcome = Outcome::Failed;
                    record.reason = Some(format!(
                        "could not queue the Slack message; the event is retried: {e}"
                    ));
                }
            }
        }
    }
    if let Some(url) = &deps.warehouse_queue_url {
        hand_to_warehouse(
            envelopes,
            outcomes_of,
            &mut failed_event,
            &mut journey,
            deps,
            url,
        )
        .await;
    }
    crate::journey::metrics::observe(&journey);
    if let Some(store) = &deps.journey {
        store.write(journey).await;
    }
    let routed = sent.iter().filter(|r| r.is_ok()).count();
    tracing::info!(events = envelopes.len(), messages = routed, "batch routed");
    for (i, failed) in failed_event.into_iter().enumerate() {
        if failed {
            failures.push(ids[i].clone());
        }
    }
    batch_response(failures)
}

/// Queues every event that is not being retried for the warehouse, with its pipelines'
/// outcomes (events no pipeline listens to included). An event that could not be queued
/// fails, so it is routed again (its Slack messages are deduplicated) and handed on then.
async fn hand_to_warehouse(
    envelopes: &[Envelope],
    outcomes_of: Vec<Vec<PipelineOutcome>>,
    failed_event: &mut [bool],
    journey: &mut [Record],
    deps: &PipelineDeps,
    queue_url: &str,
) {
    let mut handoffs = Vec::new();
    let mut owner = Vec::new();
    for (i, pipelines) in outcomes_of.into_iter().enumerate() {
        if !failed_event[i] {
            handoffs.push(Handoff {
                event: envelopes[i].clone(),
                pipelines,
            });
            owner.push(i);
        }
    }
    let packed = match crate::routing::handoff::messages(&handoffs) {
        Ok(packed) => packed,
        Err(e) => {
            tracing::error!(error = %e, "could not encode events for the warehouse; they will be retried");
            for &i in &owner {
                failed_event[i] = true;
            }
            return;
        }
    };
    let (messages, carried): (Vec<Outgoing>, Vec<Vec<usize>>) = packed.into_iter().unzip();
    let sent = send_all(&deps.sqs, queue_url, &messages).await;
    for (r, carried) in sent.iter().zip(&carried) {
        let Err(e) = r else { continue };
        for &i in carried.iter().map(|&k| &owner[k]) {
            tracing::error!(event_id = %envelopes[i].id, error = %e, "could not queue the event for the warehouse; it will be retried");
            failed_event[i] = true;
            let id = envelopes[i].id.as_str();
            for record in journey.iter_mut().filter(|j| j.event_id == id) {
                if record.outcome != Outcome::Failed {
                    record.outcome = Outcome::Failed;
                    record.reason = Some(format!(
                        "could not queue the event for the warehouse; it is retried: {e}"
                    ));
                }
            }
        }
    }
}

/// The journey record of one (event, pipeline) pair: matched (and for which channels) or
/// filtered (and why), with its filter and enrichment steps.
fn pipeline_record(envelope: &Envelope, traced: &Traced, at_ms: i64) -> Record {
    let (outcome, reason, channels) = match &traced.outcome {
        PairOutcome::Filtered { reason, .. } => (Outcome::Filtered, Some(reason.clone()), vec![]),
        PairOutcome::Routed { slack, outbound } => {
            (Outcome::Matched, None, route::targets(slack, outbound))
        }
    };
    let mut record = Record::new(
        envelope.id.as_str(),
        Stage::Pipeline,
        outcome,
        at_ms,
        &traced.pipeline_id,
    )
    .pipeline(&traced.pipeline_id);
    record.reason = reason;
    record.channels = channels;
    record.steps = traced.steps.clone();
    record.event_name = Some(envelope.name.as_str().to_owned());
    record
}

/// A delivery as a message of the Slack FIFO queue: grouped by channel, deduplicated by
/// its delivery key.
/// The destinations queue's message for `o`: grouped by target, deduplicated by its key.
fn outbound_message(o: &Outbound) -> serde_json::Result<Outgoing> {
    Ok(Outgoing {
        body: serde_json::to_string(o)?,
        group_id: Some(o.target.group_id()),
        dedup_id: Some(o.key().to_string()),
        attributes: HashMap::new(),
    })
}

/// Sends messages for destinations beyond Slack; without a destinations queue each fails
/// with that reason (so its event is retried, and said why).
async fn send_outbound(
    deps: &PipelineDeps,
    outgoing: &[Outgoing],
) -> Vec<crate::error::Result<()>> {
    match &deps.destinations_queue_url {
        Some(url) => send_all(&deps.sqs, url, outgoing).await,
        None => outgoing
            .iter()
            .map(|_| {
                Err(crate::error::Error::reason(
                    "no destinations queue is configured (DESTINATIONS_QUEUE_URL) for a destination beyond Slack",
                ))
            })
            .collect(),
    }
}

fn queue_message(d: &Delivery) -> serde_json::Result<Outgoing> {
    Ok(Outgoing {
        body: serde_json::to_string(d)?,
        group_id: Some(d.group_id()),
        dedup_id: Some(d.key().to_string()),
        attributes: HashMap::new(),
    })
}

/// The `action_id` of the "Mute" button; slack-connect's interactions route acts on it.
pub const MUTE_ACTION: &str = "ingestlayer_mute";

/// Adds the pipeline's "Mute" button for `key` to a rendered message. Its value names the
/// pipeline, the key and the duration (`{"p", "k", "d"}`); a key too long for a button's
/// value (Slack's 2,000 characters) gets no button.
pub fn mute_button(message: &mut RenderedMessage, pipeline: &str, key: &str, mute: &MuteSpec) {
    let value = serde_json::json!({"p": pipeline, "k": key, "d": mute.duration.ms}).to_string();
    // A button Slack would refuse (a key too long for its value) is left out, never sent.
    let _added = crate::slack::block_kit::add_button(
        message,
        serde_json::json!({
            "type": "button",
            "action_id": MUTE_ACTION,
            "text": {"type": "plain_text", "text": mute.label, "emoji": true},
            "value": value,
        }),
    );
}

/// The heartbeat check the schedule runs (and `make dev` on a timer): every heartbeat key
/// overdue at `now` is marked missing, once, and its pipeline's message queued. Returns how
/// many keys went missing.
pub async fn check_heartbeats(
    deps: &PipelineDeps,
    now: time::OffsetDateTime,
) -> crate::error::Result<usize> {
    let Some(state) = &deps.state else {
        return Ok(0);
    };
    let pipelines = deps.pipelines.get().await?;
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let missing = missing_heartbeats(state, &pipelines, now_ms).await?;
    let encoding = |e: serde_json::Error| {
        crate::error::Error::reason(format!("encoding a heartbeat message: {e}"))
    };
    let outgoing = missing
        .slack
        .iter()
        .map(queue_message)
        .collect::<serde_json::Result<Vec<_>>>()
        .map_err(encoding)?;
    let outgoing_other = missing
        .outbound
        .iter()
        .map(outbound_message)
        .collect::<serde_json::Result<Vec<_>>>()
        .map_err(encoding)?;
    let mut sent = send_all(&deps.sqs, &deps.slack_queue_url, &outgoing).await;
    sent.extend(send_outbound(deps, &outgoing_other).await);
    let ids = missing
        .slack
        .iter()
        .map(|d| (&d.event_id, &d.pipeline_id))
        .chain(
            missing
                .outbound
                .iter()
                .map(|o| (&o.event_id, &o.pipeline_id)),
        );
    let mut journey = Vec::new();
    for ((event_id, pipeline_id), r) in ids.zip(&sent) {
        if let Err(e) = r {
            // Marked missing but not queued: said loudly, as nothing will retry it.
            tracing::error!(pipeline = %pipeline_id, error = %e, "could not queue a heartbeat's missing message");
        }
        journey.push(
            Record::new(
                event_id,
                Stage::Pipeline,
                Outcome::Matched,
                now_ms,
                pipeline_id,
            )
            .pipeline(pipeline_id)
            .reason("heartbeat missing"),
        );
    }
    if let Some(store) = &deps.journey {
        store.write(journey).await;
    }
    tracing::info!(missing = missing.len(), "heartbeats checked");
    Ok(sent.iter().filter(|r| r.is_ok()).count())
}

/// The messages for the heartbeat keys that went missing at `now_ms` (each marked, once).
pub async fn missing_heartbeats<T: StateStore>(
    state: &T,
    pipelines: &PipelineSet,
    now_ms: i64,
) -> crate::error::Result<Routed> {
    let mut out = Routed::default();
    for due in state.due(now_ms).await? {
        if !state.mark_missing(&due, now_ms).await? {
            continue;
        }
        let Some(pipeline) = pipelines.get(&due.pipeline) else {
            tracing::info!(pipeline = %due.pipeline, "a heartbeat's pipeline is gone; nothing to post");
            continue;
        };
        let Some(beat) = &pipeline.heartbeat else {
            continue;
        };
        let Some(name) = pipeline.events.first().map(|e| e.example()) else {
            continue;
        };
        // The key stands at its field, so the pipeline's template reads it as for a ping.
        let mut context = serde_json::Value::Object(serde_json::Map::new());
        let mut at = &mut context;
        for seg in &beat.key {
            at = &mut at[seg.as_str()];
        }
        *at = serde_json::Value::String(due.key.clone());
        let digest = hex::encode(
            &sha2::Digest::finalize(sha2::Digest::chain_update(
                <sha2::Sha256 as sha2::Digest>::new(),
                due.key.as_bytes(),
            ))[..8],
        );
        let Ok(id) = crate::event::EventId::parse(&format!(
            "heartbeat:{}:{}:{digest}",
            pipeline.id.as_str(),
            due.due_ms
        )) else {
            continue;
        };
        let event = Envelope {
            id,
            name,
            time: None,
            received_at: time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(now_ms) * 1_000_000,
            )
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            source: "ingestlayer:heartbeat".into(),
            data: context.clone(),
            cloudevent: None,
            webhook: None,
        };
        let mut vars = serde_json::Map::new();
        vars.insert(
            "heartbeat".into(),
            route::heartbeat_vars(
                beat,
                &due.key,
                "missing",
                Some(due.last_seen_ms),
                Some(now_ms),
            ),
        );
        out.extend(route::deliveries(
            pipeline, &event, &context, &vars, None, None,
        ));
    }
    Ok(out)
}
