//! `ingestlayer pipelines test FILE --event EVENT.json [--send] | --replay 24h`: a pipeline
//! file run against the stack's entities without posting, through the pipeline function's
//! own routing ([`ingestlayer::routing::route::route_traced`]).
//!
//! One event: whether the filter passed and which part of the expression decided it, what
//! enrichment found or missed, and the rendered message as the Slack stand-in draws it and as
//! Block Kit JSON. `--send` posts it once to its channel through the Slack queue (paced and
//! ledgered like any delivery), marked as a test. `--replay` runs the pipeline over the stored
//! events of a window and counts what would have posted, per channel and hour.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use ingestlayer::delivery::message::Delivery;
use ingestlayer::event::incoming::parse_incoming;
use ingestlayer::event::Envelope;
use ingestlayer::routing::enrich::DynamoEntities;
use ingestlayer::routing::pipelines::{Pipeline, PipelineSet};
use ingestlayer::routing::route::{route_traced, PairOutcome, StepTrace, Steps, Traced};
use ingestlayer::routing::state::MemoryState;

use crate::error::CliError;
use crate::pipeline_files::PipelineFile;
use crate::progress::Progress;
use crate::stack::{reach, Stack};

/// The pipeline of a validated file.
fn pipeline_of(file: &PipelineFile) -> Result<PipelineSet, CliError> {
    let pipeline = Pipeline::from_json(&file.doc)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{}: the pipeline is disabled (enabled: false); enable it to test it",
                file.path.display()
            ))
        })?;
    let mut set = PipelineSet::default();
    set.insert(pipeline);
    Ok(set)
}

/// The event to test with: a request body as `POST /v1/events` takes it (`{"name", "data"}`
/// or a CloudEvent), or a stored event as `ingestlayer events get --json` prints it.
pub fn read_event(path: &Path, source: &str) -> Result<Envelope, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what: "reading the event",
        path: path.to_owned(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{}: not JSON: {e}", path.display())))?;
    if value.get("received_at").is_some() && value.get("source").is_some() {
        return serde_json::from_value(value)
            .map_err(|e| CliError::Usage(format!("{}: not a stored event: {e}", path.display())));
    }
    let incoming = parse_incoming(&value, "").map_err(|errors| {
        CliError::Usage(format!(
            "{}: not an event: {}",
            path.display(),
            errors
                .iter()
                .map(|e| format!("{}: {}", e.pointer, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    Ok(Envelope::accept(
        incoming,
        source,
        OffsetDateTime::now_utc(),
    ))
}

/// What `pipelines test` found for one event.
#[derive(Debug, Serialize)]
pub struct TestReport {
    pub pipeline_id: String,
    pub event_name: String,
    /// Whether the pipeline listens to the event's name at all.
    pub listens: bool,
    pub steps: Vec<StepTrace>,
    /// `posted` when it would post, `filtered` otherwise.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub messages: Vec<Delivery>,
}

/// Runs `file`'s pipeline on `event` against the stack's entities.
pub async fn test_event(
    stack: &Stack,
    file: &PipelineFile,
    event: &Envelope,
) -> Result<TestReport, CliError> {
    let set = pipeline_of(file)?;
    let store = entities(stack)?;
    // Stateful steps start from nothing, in memory: a test changes no stored state.
    let state = MemoryState::default();
    let steps = Steps {
        state: &state,
        now_ms: millis(event),
    };
    let result = route_traced(
        std::slice::from_ref(event),
        &set,
        &store,
        &steps,
        None,
        true,
    )
    .await
    .into_iter()
    .next()
    .unwrap_or_else(|| Ok(Vec::new()))?;
    let mut report = TestReport {
        pipeline_id: file.id.clone(),
        event_name: event.name.as_str().to_owned(),
        listens: !result.is_empty(),
        steps: Vec::new(),
        outcome: "filtered",
        reason: None,
        messages: Vec::new(),
    };
    let Some(Traced { outcome, steps, .. }) = result.into_iter().next() else {
        report.reason = Some(format!(
            "the pipeline listens to {}, not {}",
            file.doc["events"],
            event.name.as_str()
        ));
        return Ok(report);
    };
    report.steps = steps;
    match outcome {
        PairOutcome::Filtered { reason, .. } => report.reason = Some(reason),
        PairOutcome::Routed { slack, .. } => {
            report.outcome = "posted";
            report.messages = slack;
        }
    }
    Ok(report)
}

fn entities(stack: &Stack) -> Result<DynamoEntities, CliError> {
    Ok(DynamoEntities {
        client: stack.dynamo(),
        table: stack.output("EntitiesTableName")?.to_owned(),
    })
}

/// When `event` was received, in ms since the epoch: the time its stateful steps decide by.
fn millis(event: &Envelope) -> i64 {
    (event.received_at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Prints a report: the steps, then each message as a box and as Block Kit JSON.
pub fn print_report(report: &TestReport, out: &mut dyn Write) {
    writeln!(
        out,
        "pipeline {}  event {}",
        report.pipeline_id, report.event_name
    )
    .ok();
    for step in &report.steps {
        match step {
            StepTrace::Filter {
                expr,
                passed,
                decided_by,
                error,
                seen,
            } => {
                let verdict = if *passed { "passed" } else { "failed" };
                writeln!(out, "  filter.match  {expr}\n    {verdict}").ok();
                if let Some(e) = error {
                    writeln!(out, "    could not judge the event: {e}").ok();
                } else if let Some(part) = decided_by.as_ref().filter(|p| *p != expr) {
                    writeln!(out, "    decided by: {part}").ok();
                }
                if !seen.is_empty() {
                    writeln!(out, "    read: {}", seen.join(", ")).ok();
                }
            }
            StepTrace::Enrich {
                entity,
                key,
                found,
                attached_as,
                attributes,
            } => {
                let what = match (key, found) {
                    (None, _) => "missed: the event has no usable id for it".to_owned(),
                    (Some(k), true) => format!("found {k}: {}", attributes.join(", ")),
                    (Some(k), false) => format!("missed: no {k} in the entities table"),
                };
                writeln!(out, "  enrich.entity {entity} as {attached_as}\n    {what}").ok();
            }
            StepTrace::Stateful {
                kind, key, detail, ..
            } => {
                let key = key.as_deref().map(|k| format!(" {k}")).unwrap_or_default();
                writeln!(out, "  {kind}{key}\n    {detail}").ok();
            }
        }
    }
    match report.outcome {
        "posted" => {
            for d in &report.messages {
                let name = d.channel.to_string();
                writeln!(out, "\nwould post to {name}:").ok();
                let blocks = Value::Array(d.message.blocks.clone());
                write!(
                    out,
                    "{}",
                    message_box::message_box(
                        name.trim_start_matches('#'),
                        Some(&d.message.text),
                        Some(&blocks)
                    )
                )
                .ok();
                writeln!(
                    out,
                    "Block Kit:\n{}",
                    serde_json::to_string_pretty(
                        &json!({"text": d.message.text, "blocks": blocks})
                    )
                    .unwrap_or_default()
                )
                .ok();
            }
        }
        _ => {
            writeln!(
                out,
                "\nwould not post: {}",
                report.reason.as_deref().unwrap_or("filtered")
            )
            .ok();
        }
    }
}

/// The line every test post carries, so nobody mistakes it for a real event.
pub const TEST_MARK: &str = "test: sent by `ingestlayer pipelines test --send`, not a real event";

/// Posts the report's messages once, through the Slack queue, marked as tests. Each gets a
/// fresh event id, so it is never taken for (or deduplicated against) a real delivery.
pub async fn send(stack: &Stack, report: &TestReport) -> Result<Vec<String>, CliError> {
    let queue = stack.output("SlackQueueUrl")?;
    Ok(
        ingestlayer::routing::test_message::send(&stack.sqs(), queue, &report.messages, TEST_MARK)
            .await?,
    )
}

/// What a replay counted.
#[derive(Debug, Default, Serialize)]
pub struct Replay {
    pub pipeline_id: String,
    pub since: String,
    /// Stored events read in the window.
    pub events: usize,
    /// Of those, the ones the pipeline listens to (by name and source).
    pub listened: usize,
    pub filtered: usize,
    pub posted: usize,
    /// Channel → hour (`2026-11-30T09:00Z`) → messages.
    pub per_channel_hour: BTreeMap<String, BTreeMap<String, usize>>,
    /// Filter reasons → count.
    pub filtered_by: BTreeMap<String, usize>,
    /// A few messages that would have posted: event id and text.
    pub samples: Vec<(String, String)>,
}

const SAMPLES: usize = 5;
const ROUTE_CHUNK: usize = 100;

/// Runs the pipeline over the stored events received in the last `window`.
pub async fn replay(
    stack: &Stack,
    file: &PipelineFile,
    window: std::time::Duration,
    progress: &Progress,
) -> Result<Replay, CliError> {
    let set = pipeline_of(file)?;
    let store = entities(stack)?;
    let table = stack.output("EventsTableName")?;
    let since = OffsetDateTime::now_utc() - window;
    let since_text = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut report = Replay {
        pipeline_id: file.id.clone(),
        since: since_text.clone(),
        ..Replay::default()
    };
    let mut pages = stack
        .dynamo()
        .scan()
        .table_name(table)
        .filter_expression("received_at >= :since")
        .expression_attribute_values(
            ":since",
            aws_sdk_dynamodb::types::AttributeValue::S(since_text),
        )
        .projection_expression("envelope")
        .into_paginator()
        .send();
    let mut batch = Vec::new();
    let state = MemoryState::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| reach(&stack.target, "reading the events table", e))?;
        for item in page.items.unwrap_or_default() {
            let Some(aws_sdk_dynamodb::types::AttributeValue::S(json)) = item.get("envelope")
            else {
                continue;
            };
            let Ok(envelope) = serde_json::from_str::<Envelope>(json) else {
                continue;
            };
            if envelope.received_at < since {
                continue;
            }
            report.events += 1;
            batch.push(envelope);
            if batch.len() == ROUTE_CHUNK {
                count(&set, &store, &state, &mut batch, &mut report).await?;
                progress.inc(ROUTE_CHUNK as u64);
            }
        }
    }
    let rest = batch.len() as u64;
    count(&set, &store, &state, &mut batch, &mut report).await?;
    progress.inc(rest);
    progress.finish();
    Ok(report)
}

async fn count(
    set: &PipelineSet,
    store: &DynamoEntities,
    state: &MemoryState,
    batch: &mut Vec<Envelope>,
    report: &mut Replay,
) -> Result<(), CliError> {
    if batch.is_empty() {
        return Ok(());
    }
    // One state for the whole replay, each event routed at the time it was received, so
    // throttles and thresholds hold back what they would have held.
    let mut results = Vec::with_capacity(batch.len());
    for event in batch.iter() {
        let steps = Steps {
            state,
            now_ms: millis(event),
        };
        results.extend(
            route_traced(std::slice::from_ref(event), set, store, &steps, None, false).await,
        );
    }
    for (event, result) in batch.iter().zip(results) {
        for traced in result? {
            report.listened += 1;
            match traced.outcome {
                PairOutcome::Filtered { reason, .. } => {
                    report.filtered += 1;
                    *report.filtered_by.entry(reason).or_default() += 1;
                }
                PairOutcome::Routed { slack, outbound } => {
                    let hour = hour_of(event.received_at);
                    let messages = slack
                        .iter()
                        .map(|d| (d.channel.to_string(), d.message.text.clone()))
                        .chain(
                            outbound
                                .iter()
                                .map(|o| (o.target.describe(), o.card.title.clone())),
                        );
                    for (target, text) in messages {
                        report.posted += 1;
                        *report
                            .per_channel_hour
                            .entry(target)
                            .or_default()
                            .entry(hour.clone())
                            .or_default() += 1;
                        if report.samples.len() < SAMPLES {
                            report.samples.push((event.id.as_str().to_owned(), text));
                        }
                    }
                }
            }
        }
    }
    batch.clear();
    Ok(())
}

/// `2026-11-30T09:00Z`: the hour an event was received in.
fn hour_of(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:00Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

/// Prints a replay as a table per channel and hour.
pub fn print_replay(r: &Replay, out: &mut dyn Write) {
    writeln!(
        out,
        "pipeline {} over the events received since {}:\n  {} events read, {} the pipeline listens to, {} filtered out, {} messages would have posted",
        r.pipeline_id, r.since, r.events, r.listened, r.filtered, r.posted
    )
    .ok();
    for (channel, hours) in &r.per_channel_hour {
        let total: usize = hours.values().sum();
        let peak = hours.values().max().copied().unwrap_or_default();
        writeln!(
            out,
            "\n  {channel}: {total} messages, at most {peak} in one hour"
        )
        .ok();
        for (hour, n) in hours {
            writeln!(out, "    {hour}  {n:>5}  {}", "#".repeat((*n).min(60))).ok();
        }
    }
    if !r.filtered_by.is_empty() {
        writeln!(out, "\n  filtered out:").ok();
        for (reason, n) in &r.filtered_by {
            writeln!(out, "    {n:>6}  {reason}").ok();
        }
    }
    if !r.samples.is_empty() {
        writeln!(out, "\n  samples:").ok();
        for (id, text) in &r.samples {
            writeln!(out, "    {id}  {text}").ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_utc_and_zero_padded() {
        let t = time::macros::datetime!(2026-03-04 05:59:59 UTC);
        assert_eq!(hour_of(t), "2026-03-04T05:00Z");
    }

    #[test]
    fn an_event_file_is_a_request_body_or_a_stored_event() {
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("body.json");
        std::fs::write(&body, r#"{"name":"feature.used","data":{"feature":"api"}}"#).unwrap();
        let e = read_event(&body, "cli-test").unwrap();
        assert_eq!(e.name.as_str(), "feature.used");
        assert_eq!(e.source, "cli-test");

        let stored = dir.path().join("stored.json");
        let mut v = serde_json::to_value(&e).unwrap();
        v["source"] = json!("webhook:stripe");
        std::fs::write(&stored, v.to_string()).unwrap();
        let again = read_event(&stored, "cli-test").unwrap();
        assert_eq!(
            again.source, "webhook:stripe",
            "a stored event keeps its source"
        );
        assert_eq!(again.id, e.id);

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"data":{}}"#).unwrap();
        let err = read_event(&bad, "cli-test").unwrap_err().to_string();
        assert!(err.contains("bad.json: not an event"), "{err}");
    }
}
