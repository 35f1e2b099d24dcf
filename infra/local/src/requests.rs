//! How many AWS requests one event costs, end to end: a fresh stack with the product's
//! example pipeline, events sent through the ingest handler and carried through the pipeline
//! and slack-delivery handlers to the Slack stand-in, with the emulator's request recorder
//! (moto's `/moto-api/recorder/…`) on. Run once without the journey and once with it, so the
//! difference is what the journey costs (`ingestlayer-bench --requests`, numbers in the
//! README).
//!
//! The recorder sees every request to the emulator, so nothing else may use it meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingestlayer::config::{
    DeliveryConfig, IngestConfig, JourneyConfig, PipelineConfig, TokenConfig,
};
use ingestlayer::delivery::DeliveryDeps;
use ingestlayer::ingress::api_keys::ApiKeys;
use ingestlayer::ingress::IngestDeps;
use ingestlayer::routing::PipelineDeps;
use secrecy::SecretString;
use serde_json::{json, Value};
use slack_standin::{Standin, StandinConfig};

use crate::error::{Error, Result};
use crate::resources::Resources;
use crate::runner::{call_ingest, pump_delivery, pump_pipeline, DeliveryFeeds, QueueFeed};
use crate::seed;

const KEY: &str = "il_requests_bench_0123456789";
const BOT_TOKEN: &str = "xoxb-requests-bench";

/// The requests one run made, by operation (`DynamoDB.BatchWriteItem`, `SQS.SendMessageBatch`…).
#[derive(Debug, Default, Clone)]
pub struct Count {
    pub by_operation: BTreeMap<String, usize>,
    /// Of those, the BatchWriteItems to the journey table.
    pub journey_writes: usize,
    pub events: usize,
    pub posts: usize,
}

impl Count {
    pub fn total(&self) -> usize {
        self.by_operation.values().sum()
    }
}

/// A fresh stack in the emulator with the product's example pipeline (to `channel`), its
/// entities and an API key, and the ingest, pipeline and slack-delivery handlers built as
/// the functions build them, delivering to a Slack stand-in.
pub struct BenchStack {
    pub res: Resources,
    pub standin: Standin,
    pub ingest: Arc<IngestDeps>,
    pub pipeline: PipelineDeps,
    pub delivery: DeliveryDeps,
    /// The events queue, and slack-delivery's two queues (messages, drain tickets).
    pub feeds: (QueueFeed, DeliveryFeeds),
    /// Lambda's concurrent invocations of slack-delivery: the Slack queue event source's
    /// `MaximumConcurrency` in template.yaml (the `SlackDeliveryConcurrency` parameter's
    /// default), so the bench runs as a stack deployed with the defaults runs.
    pub delivery_concurrency: usize,
    /// The same for the drain queue's event source (`SlackDrainConcurrency`).
    pub drain_concurrency: usize,
}

impl BenchStack {
    /// `backlog`: slack-delivery keeps busy channels' backlogs (`BUFFER_TABLE`), as deployed.
    pub async fn new(
        endpoint: &str,
        journey: bool,
        standin: StandinConfig,
        channel: &str,
        backlog: bool,
    ) -> Result<Self> {
        let sdk = crate::emulator_sdk(endpoint).await;
        let prefix = format!("req-{}", ulid::Ulid::new().to_string().to_lowercase());
        let res = Resources::create(&sdk, &prefix, BOT_TOKEN, "{}").await?;
        let standin = Standin::start(standin)
            .await
            .map_err(|e| Error::invalid("starting the Slack stand-in", Some(e.into())))?;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        seed::put_json(
            &dynamo,
            &res.pipelines_table,
            &seed::example_pipeline(channel),
        )
        .await?;
        for e in seed::example_entities() {
            seed::put_json(&dynamo, &res.entities_table, &e).await?;
        }
        ApiKeys::new(dynamo.clone(), res.api_keys_table.clone())
            .create(&SecretString::from(KEY.to_owned()), "bench")
            .await?;
        let journey = journey.then(|| JourneyConfig {
            table: res.journey_table.clone(),
            ttl_days: 30,
        });
        let ingest = Arc::new(
            IngestDeps::load(
                &sdk,
                &IngestConfig {
                    events_table: res.events_table.clone(),
                    api_keys_table: res.api_keys_table.clone(),
                    events_queue_url: res.events_queue_url.clone(),
                    schemas_required: false,
                    event_ttl_days: 30,
                    link_secret_arn: Some(res.link_secret_arn.clone()),
                    webhook_secret_prefix: Some(res.webhook_secret_prefix.clone()),
                },
            )
            .await?,
        );
        let pipeline = PipelineDeps::load(
            &sdk,
            &PipelineConfig {
                pipelines_table: res.pipelines_table.clone(),
                entities_table: res.entities_table.clone(),
                slack_queue_url: res.slack_queue_url.clone(),
                destinations_queue_url: Some(res.destinations_queue_url.clone()),
                cache_ttl: Duration::from_secs(300),
                public_api_url: Some("http://127.0.0.1:3000".into()),
                link_secret_arn: Some(res.link_secret_arn.clone()),
                link_ttl: ingestlayer::event_links::DEFAULT_TTL,
                journey: journey.clone(),
                state_table: Some(res.state_table.clone()),
                warehouse_queue_url: None,
            },
        )
        .await?;
        let delivery = DeliveryDeps::load(
            &sdk,
            &DeliveryConfig {
                slack_queue_url: res.slack_queue_url.clone(),
                slack_drain_queue_url: Some(res.slack_drain_queue_url.clone()),
                slack_dlq_url: res.slack_dlq_url.clone(),
                channels_table: res.channels_table.clone(),
                deliveries_table: res.deliveries_table.clone(),
                max_age: Duration::from_secs(24 * 3600),
                connections_table: Some(res.connections_table.clone()),
                slack_app_secret_arn: None,
                token_secret_prefix: res.token_secret_prefix.clone(),
                kms_key_id: Some(res.kms_key_id.clone()),
                slack_api_url: standin.api_url(),
                token: TokenConfig::Secret(res.slack_token_secret_arn.clone()),
                slack_timeout: Duration::from_secs(5),
                ops_channel: None,
                journey,
                state_table: Some(res.state_table.clone()),
                buffer_table: backlog.then(|| res.buffer_table.clone()),
            },
        )
        .await?;
        let feeds = (
            QueueFeed {
                sqs: aws_sdk_sqs::Client::new(&sdk),
                url: res.events_queue_url.clone(),
                wait_seconds: 0,
            },
            DeliveryFeeds::new(&aws_sdk_sqs::Client::new(&sdk), &res, 0),
        );
        let template = crate::template::Template::load()?;
        let concurrency = |event: &str| {
            template
                .event_max_concurrency("SlackDeliveryFunction", event)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    Error::invalid(
                        format!("template.yaml: SlackDeliveryFunction's {event} event has no MaximumConcurrency"),
                        None,
                    )
                })
        };
        let delivery_concurrency = concurrency("Slack")?;
        let drain_concurrency = concurrency("Drains")?;
        Ok(Self {
            res,
            standin,
            ingest,
            pipeline,
            delivery,
            feeds,
            delivery_concurrency,
            drain_concurrency,
        })
    }

    /// Sends one `POST /v1/events/batch` of `events`.
    pub async fn post(&self, events: &[Value]) -> Result<()> {
        post(&self.ingest, &json!({ "events": events })).await
    }
}

/// Sends `events` events (every other one matching the example pipeline's filter) through a
/// fresh stack, with the journey on or off, and counts the AWS requests made from the batch
/// POST until every message is settled.
pub async fn count(endpoint: &str, events: usize, journey: bool) -> Result<Count> {
    let stack = BenchStack::new(
        endpoint,
        journey,
        StandinConfig {
            rate_per_channel_per_sec: f64::INFINITY,
            ..StandinConfig::default()
        },
        "#alerts",
        true,
    )
    .await?;
    let BenchStack {
        res,
        standin,
        ingest,
        pipeline,
        delivery,
        feeds,
        ..
    } = &stack;
    // Warm caches (API key, pipelines, secrets, the bot's channel membership) as a running
    // stack has them, then let the channel's pacing slot pass.
    post(ingest, &json!({"events": [event(0, true)]})).await?;
    settle(feeds, pipeline, delivery).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = standin.messages().len();

    let recorder = Recorder::new(endpoint);
    recorder.start().await?;
    let batch: Vec<Value> = (1..=events).map(|i| event(i, i % 2 == 1)).collect();
    post(ingest, &json!({ "events": batch })).await?;
    settle(feeds, pipeline, delivery).await?;
    let recording = recorder.stop().await?;

    let mut count = Count {
        events,
        posts: standin.messages().len() - before,
        ..Count::default()
    };
    let journey_table = format!("\"{}\"", res.journey_table);
    for entry in &recording {
        let op = operation(entry);
        if op == "DynamoDB.BatchWriteItem" && body(entry).contains(&journey_table) {
            count.journey_writes += 1;
        }
        *count.by_operation.entry(op).or_default() += 1;
    }
    Ok(count)
}

/// The `i`th event: one the example pipeline takes (`feature` export) or filters out.
fn event(i: usize, matching: bool) -> Value {
    let feature = if matching { "export" } else { "search" };
    json!({"name": "feature.used", "data": {"user_id": "u_42", "feature": feature, "count": i, "plan": "pro"}})
}

async fn post(deps: &Arc<IngestDeps>, body: &Value) -> Result<()> {
    let req = http::Request::builder()
        .method("POST")
        .uri("https://bench.local/v1/events/batch")
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .map_err(|e| Error::invalid("the batch request", Some(e.into())))?;
    let status = call_ingest(req, deps).await.status();
    if status.as_u16() == 202 || status.as_u16() == 207 {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("POST /v1/events/batch answered {status}"),
            None,
        ))
    }
}

/// Runs the pipeline and delivery handlers until both queues stayed empty for 3 s (a paced
/// message comes back within that).
async fn settle(
    (events, slack): &(QueueFeed, DeliveryFeeds),
    pipeline: &PipelineDeps,
    delivery: &DeliveryDeps,
) -> Result<()> {
    let mut idle_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while idle_since.elapsed() < Duration::from_secs(3) {
        if Instant::now() > deadline {
            return Err(Error::invalid(
                "the messages did not settle within 2 minutes",
                None,
            ));
        }
        let a = pump_pipeline(events, pipeline).await?;
        let b = pump_delivery(slack, delivery).await?;
        if a + b > 0 {
            idle_since = Instant::now();
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// `DynamoDB.PutItem`, `SQS.SendMessageBatch`, `SecretsManager.GetSecretValue`… from the
/// JSON protocols' `X-Amz-Target`, else the query protocol's `Action`.
pub fn operation(entry: &Value) -> String {
    let headers = entry["headers"].as_object();
    let target = headers.and_then(|h| {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
            .and_then(|(_, v)| v.as_str())
    });
    if let Some(t) = target {
        let (service, op) = t.split_once('.').unwrap_or(("?", t));
        let service = match service {
            s if s.starts_with("DynamoDB") => "DynamoDB",
            "AmazonSQS" => "SQS",
            "secretsmanager" => "SecretsManager",
            s if s.starts_with("TrentService") => "KMS",
            s => s,
        };
        return format!("{service}.{op}");
    }
    let text = format!("{} {}", entry["url"].as_str().unwrap_or(""), body(entry));
    text.split(['?', '&', ' '])
        .find_map(|p| p.strip_prefix("Action="))
        .map_or_else(|| "other".to_owned(), |a| format!("query.{a}"))
}

/// A recorded request's body, as text.
pub fn body(entry: &Value) -> String {
    let raw = entry["body"].as_str().unwrap_or("");
    if entry["body_encoded"].as_bool() == Some(true) {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    } else {
        raw.to_owned()
    }
}

/// moto's request recorder: every request the emulator receives between [`Recorder::start`]
/// and [`Recorder::stop`], whoever sent it.
pub struct Recorder {
    base: String,
    http: reqwest::Client,
}

impl Recorder {
    pub fn new(endpoint: &str) -> Self {
        Self {
            base: format!("{}/moto-api/recorder", endpoint.trim_end_matches('/')),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, what: &str) -> Result<()> {
        let r = self
            .http
            .post(format!("{}/{what}", self.base))
            .send()
            .await
            .map_err(|e| recorder_failed(what, e))?;
        if !r.status().is_success() {
            return Err(Error::invalid(
                format!("the emulator's recorder refused {what}: {}", r.status()),
                None,
            ));
        }
        Ok(())
    }

    /// Clears what was recorded before and records from now on.
    pub async fn start(&self) -> Result<()> {
        self.call("reset-recording").await?;
        self.call("start-recording").await
    }

    /// Stops recording; the requests recorded (`headers`, `method`, `url`, `body`; see
    /// [`body`]).
    pub async fn stop(&self) -> Result<Vec<Value>> {
        self.call("stop-recording").await?;
        let text = self
            .http
            .get(format!("{}/download-recording", self.base))
            .send()
            .await
            .map_err(|e| recorder_failed("download-recording", e))?
            .text()
            .await
            .map_err(|e| recorder_failed("download-recording", e))?;
        // The emulator serves requests on several threads and appends each to the recording
        // as it comes, so two can share a line: read every JSON object in each line.
        let mut requests = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            for value in serde_json::Deserializer::from_str(line).into_iter::<Value>() {
                requests
                    .push(value.map_err(|e| Error::invalid("a recorded request", Some(e.into())))?);
            }
        }
        Ok(requests)
    }
}

fn recorder_failed(what: &str, e: reqwest::Error) -> Error {
    Error::invalid(
        format!("the emulator's recorder ({what}) did not answer"),
        Some(e.into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_from_the_target_header_or_the_query_action() {
        let e = json!({"headers": {"X-Amz-Target": "DynamoDB_20120810.BatchWriteItem"}, "url": "/", "body": ""});
        assert_eq!(operation(&e), "DynamoDB.BatchWriteItem");
        let e = json!({"headers": {"x-amz-target": "AmazonSQS.SendMessageBatch"}, "url": "/", "body": ""});
        assert_eq!(operation(&e), "SQS.SendMessageBatch");
        let e = json!({"headers": {}, "url": "/?Action=GetQueueAttributes&X=1", "body": ""});
        assert_eq!(operation(&e), "query.GetQueueAttributes");
        let e = json!({"headers": {}, "url": "/", "body": "QWN0aW9uPUxpc3RRdWV1ZXM=", "body_encoded": true});
        assert_eq!(operation(&e), "query.ListQueues");
    }
}
