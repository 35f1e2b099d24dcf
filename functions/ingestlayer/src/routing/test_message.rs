//! A pipeline's message sent once to its channels, marked as a test: `ingestlayer pipelines
//! test --send` and the destinations page's "Send test" button. It goes through the Slack
//! queue like any message (paced, retried, never duplicated), under an event id of its own
//! (`test:<ulid>`), so it never claims the real event's delivery.

use serde_json::{json, Value};

use crate::aws::sqs::{send_all, Outgoing};
use crate::delivery::message::Delivery;
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::routing::enrich::EntityStore;
use crate::routing::pipelines::{Pipeline, PipelineSet};
use crate::routing::route::{route_traced, PairOutcome, Steps};
use crate::routing::state::MemoryState;
use crate::slack::block_kit::mrkdwn;

/// Block Kit's limit on blocks in one message.
const MAX_BLOCKS: usize = 50;

/// `d` as a test: its own event id, `[test]` before its text, and a context block saying
/// who sent it (`mark`) first.
pub fn marked(d: &Delivery, mark: &str) -> Delivery {
    let mut d = d.clone();
    d.event_id = format!("test:{}", ulid::Ulid::new());
    d.message.text = format!("[test] {}", d.message.text);
    d.message
        .blocks
        .insert(0, json!({"type": "context", "elements": [mrkdwn(mark)]}));
    d.message.blocks.truncate(MAX_BLOCKS);
    d
}

/// Queues each delivery, marked as a test by `mark`, on the Slack queue; the channels it
/// went to.
pub async fn send(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    deliveries: &[Delivery],
    mark: &str,
) -> Result<Vec<String>> {
    let mut outgoing = Vec::new();
    let mut channels = Vec::new();
    for d in deliveries {
        let d = marked(d, mark);
        outgoing.push(Outgoing {
            body: serde_json::to_string(&d).map_err(|e| Error::invalid("the test message", e))?,
            group_id: Some(d.group_id()),
            dedup_id: Some(d.key().to_string()),
            attributes: Default::default(),
        });
        channels.push(d.channel.to_string());
    }
    for r in send_all(sqs, queue_url, &outgoing).await {
        r?;
    }
    Ok(channels)
}

/// The pipeline item (its JSON form) without its filters and source binding, so any event
/// it listens to renders: a test shows the message, whatever the filter would say.
pub fn unfiltered(pipeline: &Value) -> Result<Pipeline> {
    let mut p = pipeline.clone();
    if let Some(steps) = p.get_mut("steps").and_then(Value::as_array_mut) {
        // What would hold the event back goes: filters, throttles and thresholds.
        steps.retain(|s| {
            !matches!(
                s.get("type").and_then(Value::as_str),
                Some("filter.match" | "throttle" | "threshold")
            )
        });
    }
    if let Some(o) = p.as_object_mut() {
        o.remove("sources");
        // A heartbeat pipeline posts only on a missing key; a test shows its message.
        o.remove("heartbeat");
        o.insert("enabled".into(), Value::Bool(true));
    }
    Pipeline::from_json(&p)
        .map_err(|e| Error::invalid("the pipeline", e))?
        .ok_or_else(|| Error::invalid("the pipeline", "it is disabled"))
}

/// The messages `pipeline` renders for `event`, enriched from `store`, filters skipped.
pub async fn render<S: EntityStore>(
    pipeline: Pipeline,
    event: &Envelope,
    store: &S,
) -> Result<Vec<Delivery>> {
    let mut set = PipelineSet::default();
    set.insert(pipeline);
    // Rollups count from zero in memory: a test changes no stored state.
    let state = MemoryState::default();
    let steps = Steps {
        state: &state,
        now_ms: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
    };
    let mut results = route_traced(
        std::slice::from_ref(event),
        &set,
        store,
        &steps,
        None,
        false,
    )
    .await;
    let pairs = results.pop().unwrap_or_else(|| Ok(Vec::new()))?;
    Ok(pairs
        .into_iter()
        .flat_map(|t| match t.outcome {
            PairOutcome::Routed { slack, .. } => slack,
            PairOutcome::Filtered { .. } => Vec::new(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_message_has_its_own_id_and_says_it_is_a_test() {
        let p = unfiltered(&json!({
            "id": "p", "events": ["feature.used"], "sources": ["web"],
            "steps": [{"type": "filter.match", "expr": "false"}],
            "destinations": [{"type": "slack", "channel": "#alerts"}]
        }))
        .unwrap();
        assert!(p.steps.is_empty(), "filters are skipped");
        assert!(p.sources.is_none(), "any source");
        assert!(unfiltered(&json!({"id": "p", "events": []})).is_err());
    }
}
