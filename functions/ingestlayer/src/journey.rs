//! The journey: what each stage decided about an event, keyed by the event's id and kept
//! as long as the event, so `ingestlayer explain ID` and the destinations page answer "why
//! did this post (or not)?" without logs.
//!
//! Table (template.yaml's `JourneyTable`): `event_id` (S, hash) and `step` (S, range:
//! `<at_ms, 13 digits>#<stage>#<pipeline>#<destination>`, so a Query reads a journey in time
//! order), `at_ms` (N), `expires_at` (N, TTL); the sparse index [`BY_PIPELINE`] (`pipeline`,
//! `at_ms`) holds every record that names a pipeline, newest last.
//!
//! The cost stays bounded: ingest's "received" is the events table's own item (source, key
//! id, time), so ingest writes nothing more; the pipeline and delivery stages each write all
//! of an invocation's records at the end, in one BatchWriteItem per 25 records (a batch of
//! ten events is one request). A journey write that fails is logged and never fails the
//! stage: the journey explains decisions, it never makes one.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use crate::aws::dynamo;
use crate::aws::retry::UNPROCESSED;
use crate::error::{Error, Result};

/// The index of records by pipeline, newest last.
pub const BY_PIPELINE: &str = "by_pipeline";

const BATCH_WRITE_MAX: usize = 25;

/// Which stage wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Pipeline,
    Delivery,
}

/// What a stage decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No pipeline listens to the event's name.
    Unrouted,
    /// The pipeline's steps passed: its messages were queued for `channels`.
    Matched,
    /// A filter (or the pipeline's sources) dropped the event; `reason` says which.
    Filtered,
    /// Enrichment or queueing failed; the event is retried (`reason`).
    Failed,
    /// Posted to Slack on its own (`ts`, `permalink`).
    Posted,
    /// Posted as part of a digest of `digest_of` messages (`ts`, `permalink` of the digest).
    Digested,
    /// Found already posted (ledger or channel history); not posted again (`ts`).
    AlreadyPosted,
    /// The channel's next slot is later: back to the queue for `wait_ms`.
    Paced,
    /// Slack answered 429: the channel waits `wait_ms` (Retry-After).
    RateLimited,
    /// A transient failure (`slack`, `reason`): back to the queue for `wait_ms`.
    Retry,
    /// Moved to the Slack DLQ (`reason`, `hint`), where it waits for a fix and a redrive.
    Parked,
}

impl Outcome {
    /// Whether the event's journey ends here for this delivery (nothing more will happen
    /// without an operator).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Outcome::Unrouted
                | Outcome::Filtered
                | Outcome::Posted
                | Outcome::Digested
                | Outcome::AlreadyPosted
                | Outcome::Parked
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unrouted => "unrouted",
            Outcome::Matched => "matched",
            Outcome::Filtered => "filtered",
            Outcome::Failed => "failed",
            Outcome::Posted => "posted",
            Outcome::Digested => "digested",
            Outcome::AlreadyPosted => "already_posted",
            Outcome::Paced => "paced",
            Outcome::RateLimited => "rate_limited",
            Outcome::Retry => "retry",
            Outcome::Parked => "parked",
        }
    }
}

/// What one pipeline step did to an (event, pipeline) pair, for `ingestlayer pipelines
/// test` and the event's journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepTrace {
    /// A `filter.match` step and whether the event passed it; the part of the expression
    /// that decided (see [`crate::routing::filter::Filter::explain`]) when it was asked for
    /// or the filter dropped the event.
    Filter {
        expr: String,
        passed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decided_by: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// What the deciding part read from the event (`feature = "search"`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seen: Vec<String>,
    },
    /// An `enrich.entity` lookup: the entity key looked up (none when the event lacks the
    /// key field) and whether it was found.
    Enrich {
        entity: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        found: bool,
        attached_as: String,
        /// The attributes attached (none when not found).
        #[serde(default)]
        attributes: Vec<String>,
    },
    /// A `throttle`, `threshold`, `rollup`, `route`, `heartbeat` or mute decision: the key
    /// it was about, whether the event went on, and what the state said.
    Stateful {
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        passed: bool,
        detail: String,
    },
}

/// One stage's record about one event (for the pipeline stage: one pipeline; for delivery:
/// one destination).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub event_id: String,
    /// The sort key ([`Record::new`] makes it).
    pub step: String,
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    pub stage: Stage,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// The channel (delivery), or the channels the matched pipeline queued for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The pipeline's filter and enrichment steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepTrace>,
    /// Slack's answer to the attempt: `ok`, an error code, `429`, `timeout`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permalink: Option<String>,
    /// How long the message waited for its channel's slot in process (paced in place), or
    /// how long until it comes back (paced, rate-limited, retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// For a digest: how many messages it posted together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_of: Option<usize>,
    /// Which receive of the queue message this was (1 the first time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<usize>,
    /// How long Slack took to answer the post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_ms: Option<u64>,
    /// When ingest received the event (ms since the epoch), on a post: the end-to-end
    /// latency is `at_ms - received_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_ms: Option<i64>,
}

impl Record {
    /// A record of `stage` about `event_id` at `at_ms`; `part` tells apart the records one
    /// stage writes about one event at one time (the pipeline and destination).
    pub fn new(event_id: &str, stage: Stage, outcome: Outcome, at_ms: i64, part: &str) -> Self {
        let stage_name = match stage {
            Stage::Pipeline => "pipeline",
            Stage::Delivery => "delivery",
        };
        Self {
            event_id: event_id.to_owned(),
            step: format!("{at_ms:013}#{stage_name}#{part}"),
            at_ms,
            expires_at: None,
            stage,
            outcome,
            pipeline: None,
            event_name: None,
            channels: Vec::new(),
            reason: None,
            hint: None,
            steps: Vec::new(),
            slack: None,
            ts: None,
            permalink: None,
            wait_ms: None,
            digest_of: None,
            attempt: None,
            slack_ms: None,
            received_ms: None,
        }
    }

    pub fn pipeline(mut self, id: &str) -> Self {
        self.pipeline = Some(id.to_owned());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// The journey table, for the stages that write it and the tools that read it.
#[derive(Debug, Clone)]
pub struct JourneyStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    /// Records expire this many days after they are written (the events' TTL).
    pub ttl_days: u32,
}

impl JourneyStore {
    pub fn new(sdk: &aws_config::SdkConfig, cfg: &crate::config::JourneyConfig) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(sdk),
            table: cfg.table.clone(),
            ttl_days: cfg.ttl_days,
        }
    }

    /// Writes one invocation's records: one BatchWriteItem per 25, unprocessed items sent
    /// again with backoff. Never fails the caller: what could not be written is logged.
    pub async fn write(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let count = records.len();
        if let Err(e) = self.try_write(records).await {
            tracing::warn!(records = count, table = %self.table, error = %e, "could not record the journey; delivery is not affected");
        }
    }

    async fn try_write(&self, records: Vec<Record>) -> Result<()> {
        let mut requests = Vec::with_capacity(records.len());
        for mut r in records {
            r.expires_at = Some(r.at_ms / 1000 + i64::from(self.ttl_days) * 86_400);
            let put = PutRequest::builder()
                .set_item(Some(dynamo::to_item(&r, "a journey record")?))
                .build()
                .map_err(|e| Error::invalid("a journey record", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        // Two records of one batch with one key (the same step twice in a millisecond)
        // would fail the whole request: the last one stands.
        let mut unique: BTreeMap<(String, String), WriteRequest> = BTreeMap::new();
        for w in requests {
            let key = w
                .put_request()
                .map(|p| (attr_s(p.item(), "event_id"), attr_s(p.item(), "step")))
                .unwrap_or_default();
            unique.insert(key, w);
        }
        let requests: Vec<WriteRequest> = unique.into_values().collect();
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                let Some(wait) = UNPROCESSED.before(attempt) else {
                    return Err(Error::Upstream {
                        what: "recording the journey".into(),
                        detail: format!("DynamoDB left {} records unprocessed", pending.len()),
                        retryable: true,
                    });
                };
                tokio::time::sleep(wait).await;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| Error::aws("recording the journey", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Every record about `event_id`, in time order.
    pub async fn of_event(&self, event_id: &str) -> Result<Vec<Record>> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("event_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(event_id.to_owned()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::aws("reading the journey", e))?;
        items
            .into_iter()
            .map(|i| dynamo::from_item(i, "a journey record"))
            .collect()
    }

    /// The latest `limit` events `pipeline` saw, newest first, each with its records about
    /// that pipeline (oldest first). Reads at most `limit * 4` records from the index.
    pub async fn recent(&self, pipeline: &str, limit: usize) -> Result<Vec<Vec<Record>>> {
        let mut order: Vec<String> = Vec::new();
        let mut by_event: HashMap<String, Vec<Record>> = HashMap::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let mut read = 0;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_PIPELINE)
                .key_condition_expression("pipeline = :p")
                .expression_attribute_values(":p", AttributeValue::S(pipeline.to_owned()))
                .scan_index_forward(false)
                .limit(100)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::aws("reading a pipeline's latest events", e))?;
            for item in out.items.unwrap_or_default() {
                read += 1;
                let r: Record = dynamo::from_item(item, "a journey record")?;
                if !by_event.contains_key(&r.event_id) {
                    if order.len() == limit {
                        continue;
                    }
                    order.push(r.event_id.clone());
                }
                by_event.entry(r.event_id.clone()).or_default().push(r);
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() || (order.len() == limit && read >= limit * 4) {
                break;
            }
        }
        Ok(order
            .into_iter()
            .map(|id| {
                let mut records = by_event.remove(&id).unwrap_or_default();
                records.sort_by(|a, b| a.step.cmp(&b.step));
                records
            })
            .collect())
    }
}

/// CloudWatch metrics (embedded metric format, through the `metrics` facade and
/// `metrics_cloudwatch_embedded`, flushed to stdout after each invocation by the functions'
/// `main.rs`): counted from the same records the journey keeps, so the dashboard and
/// `explain` never disagree.
pub mod metrics {
    use super::{Outcome, Record, Stage};

    /// Events ingest accepted (stored and queued).
    pub fn accepted(n: usize) {
        ::metrics::counter!("events_accepted").increment(n as u64);
    }

    /// An event or request ingest refused, by its error code (`invalid_event`,
    /// `schema_violation`, `unauthorized`…).
    pub fn refused(code: &str) {
        ::metrics::counter!("events_refused", "code" => code.to_owned()).increment(1);
    }

    /// One invocation's records: filtered and matched per pipeline; posted, digested and
    /// parked per channel; Slack's latency, the pacing wait and the end-to-end latency
    /// (received to posted) of each post, in milliseconds.
    pub fn observe(records: &[Record]) {
        for r in records {
            let pipeline = r.pipeline.clone().unwrap_or_default();
            let channel = r.channels.first().cloned().unwrap_or_default();
            match (r.stage, r.outcome) {
                (Stage::Pipeline, Outcome::Matched) => {
                    ::metrics::counter!("events_matched", "pipeline" => pipeline).increment(1)
                }
                (Stage::Pipeline, Outcome::Filtered) => {
                    ::metrics::counter!("events_filtered", "pipeline" => pipeline).increment(1)
                }
                (Stage::Pipeline, Outcome::Unrouted) => {
                    ::metrics::counter!("events_unrouted").increment(1)
                }
                (Stage::Delivery, Outcome::Posted | Outcome::Digested) => {
                    let name = if r.outcome == Outcome::Posted {
                        "messages_posted"
                    } else {
                        "messages_digested"
                    };
                    ::metrics::counter!(name, "channel" => channel).increment(1);
                    if let Some(ms) = r.slack_ms {
                        ::metrics::histogram!("slack_latency_ms").record(ms as f64);
                    }
                    if let Some(ms) = r.wait_ms {
                        ::metrics::histogram!("pacing_wait_ms").record(ms as f64);
                    }
                    if let Some(received) = r.received_ms {
                        ::metrics::histogram!("end_to_end_ms")
                            .record((r.at_ms - received).max(0) as f64);
                    }
                }
                (Stage::Delivery, Outcome::Parked) => {
                    ::metrics::counter!("messages_parked", "channel" => channel).increment(1)
                }
                _ => {}
            }
        }
    }

    /// The collector each function's `main.rs` installs: namespace `ingestlayer`, every
    /// metric also under the function's name (`AWS_LAMBDA_FUNCTION_NAME`, as template.yaml's
    /// dashboard reads them).
    pub fn install() -> crate::error::Result<&'static metrics_cloudwatch_embedded::Collector> {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
        metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace("ingestlayer")
            .with_dimension("function", function)
            .init()
            .map_err(|e| crate::error::Error::invalid("the metrics collector", e))
    }
}

/// The outcome that sums up a list of records about one event and pipeline: the last final
/// one, else the last one.
pub fn summary(records: &[Record]) -> Option<&Record> {
    records
        .iter()
        .rev()
        .find(|r| r.outcome.is_final() && r.stage == Stage::Delivery)
        .or_else(|| records.iter().rev().find(|r| r.outcome.is_final()))
        .or_else(|| records.last())
}

/// Milliseconds since the epoch as `2026-11-30T12:00:00.250Z`, as the journey is shown.
pub fn clock(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

fn attr_s(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_its_stored_shape_and_sorts_by_time() {
        let mut r = Record::new("src:e1", Stage::Pipeline, Outcome::Filtered, 42, "p1")
            .pipeline("p1")
            .reason("filter.match \"plan == 'free'\" is false");
        r.steps.push(StepTrace::Filter {
            expr: "plan == 'free'".into(),
            passed: false,
            decided_by: Some("plan == 'free'".into()),
            error: None,
            seen: vec!["plan = \"pro\"".into()],
        });
        r.expires_at = Some(7);
        let item = dynamo::to_item(&r, "a record").unwrap();
        assert_eq!(
            item.get("step").and_then(|v| v.as_s().ok()).unwrap(),
            "0000000000042#pipeline#p1"
        );
        assert_eq!(item.get("at_ms").and_then(|v| v.as_n().ok()).unwrap(), "42");
        assert_eq!(
            item.get("outcome").and_then(|v| v.as_s().ok()).unwrap(),
            "filtered"
        );
        assert!(!item.contains_key("ts"), "absent fields are not stored");
        let back: Record = dynamo::from_item(item, "a record").unwrap();
        assert_eq!(back, r);
        let later = Record::new("src:e1", Stage::Delivery, Outcome::Posted, 1000, "p1#0");
        assert!(later.step > r.step, "a later record sorts after");
    }

    #[test]
    fn metrics_count_each_outcome_under_its_pipeline_or_channel_with_the_latencies() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let matched = Record::new("e1", Stage::Pipeline, Outcome::Matched, 1, "p").pipeline("p");
        let filtered = Record::new("e2", Stage::Pipeline, Outcome::Filtered, 1, "p").pipeline("p");
        let mut posted = Record::new("e1", Stage::Delivery, Outcome::Posted, 900, "p#0");
        posted.channels = vec!["#alerts".into()];
        posted.slack_ms = Some(120);
        posted.wait_ms = Some(400);
        posted.received_ms = Some(100);
        let mut parked = Record::new("e3", Stage::Delivery, Outcome::Parked, 900, "p#0");
        parked.channels = vec!["#gone".into()];
        ::metrics::with_local_recorder(&recorder, || {
            super::metrics::observe(&[matched, filtered, posted, parked]);
            super::metrics::refused("schema_violation");
        });
        let seen: Vec<(String, Vec<String>, DebugValue)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (key.name().to_owned(), labels, value)
            })
            .collect();
        let find = |name: &str| {
            seen.iter()
                .find(|(n, _, _)| n == name)
                .unwrap_or_else(|| panic!("no {name} in {seen:?}"))
        };
        assert_eq!(find("events_matched").1, vec!["pipeline=p"]);
        assert_eq!(find("events_matched").2, DebugValue::Counter(1));
        assert_eq!(find("events_filtered").1, vec!["pipeline=p"]);
        assert_eq!(find("messages_posted").1, vec!["channel=#alerts"]);
        assert_eq!(find("messages_parked").1, vec!["channel=#gone"]);
        assert_eq!(find("events_refused").1, vec!["code=schema_violation"]);
        let hist = |name: &str| match &find(name).2 {
            DebugValue::Histogram(v) => v.iter().map(|f| f.into_inner()).collect::<Vec<f64>>(),
            other => panic!("{name} is {other:?}"),
        };
        assert_eq!(hist("slack_latency_ms"), vec![120.0]);
        assert_eq!(hist("pacing_wait_ms"), vec![400.0]);
        assert_eq!(hist("end_to_end_ms"), vec![800.0]);
    }

    #[test]
    fn the_summary_is_the_last_final_delivery_outcome() {
        let matched = Record::new("e", Stage::Pipeline, Outcome::Matched, 1, "p");
        let paced = Record::new("e", Stage::Delivery, Outcome::Paced, 2, "p#0");
        let posted = Record::new("e", Stage::Delivery, Outcome::Posted, 3, "p#0");
        assert_eq!(
            summary(&[matched.clone(), paced.clone()]).unwrap().outcome,
            Outcome::Paced
        );
        assert_eq!(
            summary(&[matched.clone(), paced, posted]).unwrap().outcome,
            Outcome::Posted
        );
        let filtered = Record::new("e", Stage::Pipeline, Outcome::Filtered, 1, "p");
        assert_eq!(summary(&[filtered]).unwrap().outcome, Outcome::Filtered);
        assert!(summary(&[]).is_none());
    }
}
