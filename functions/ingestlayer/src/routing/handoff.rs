//! What the pipeline function hands the warehouse about every event it routed, posted or
//! filtered out: the event whole, and what each pipeline made of it. The events of one
//! invocation travel together in as few warehouse-queue messages as SQS's 1 MiB allows (one
//! SendMessage for up to 10 events, and the warehouse function receives up to 100 messages
//! a batch), so the warehouse path costs about 0.1 AWS requests per event; the warehouse
//! function (`crate::warehouse`) enriches and writes them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::aws::sqs::Outgoing;
use crate::event::Envelope;
use crate::routing::route::{PairOutcome, Traced};

/// One event for the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub event: Envelope,
    /// Every pipeline that listens to the event, and its outcome; empty when none does.
    #[serde(default)]
    pub pipelines: Vec<PipelineOutcome>,
}

/// What one pipeline made of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineOutcome {
    pub pipeline: String,
    pub outcome: Outcome,
    /// Where it was routed (for `routed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Which step held it back, and why (for `filtered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Rendered and queued for its destinations.
    Routed,
    /// A filter, route, throttle, threshold, heartbeat or mute held it back.
    Filtered,
}

impl PipelineOutcome {
    pub fn of(traced: &Traced) -> Self {
        match &traced.outcome {
            PairOutcome::Routed { slack, outbound } => Self {
                pipeline: traced.pipeline_id.clone(),
                outcome: Outcome::Routed,
                channels: crate::routing::route::targets(slack, outbound),
                reason: None,
            },
            PairOutcome::Filtered { reason, .. } => Self {
                pipeline: traced.pipeline_id.clone(),
                outcome: Outcome::Filtered,
                channels: Vec::new(),
                reason: Some(reason.clone()),
            },
        }
    }
}

/// A warehouse-queue message: some events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffBatch {
    pub events: Vec<Handoff>,
}

/// How much of SQS's 1 MiB a message body may fill (the rest is attributes and margin).
pub const MAX_MESSAGE_BYTES: usize = 1000 * 1024;

/// Packs the events into messages of the warehouse queue, in order, each under
/// [`MAX_MESSAGE_BYTES`] (a standard queue: no group, no dedup id; the warehouse skips an
/// event it already holds). Each message comes with the indexes of the events it carries.
pub fn messages(handoffs: &[Handoff]) -> serde_json::Result<Vec<(Outgoing, Vec<usize>)>> {
    let mut out = Vec::new();
    let mut body = String::from("{\"events\":[");
    let mut carried = Vec::new();
    let close = |body: &mut String, carried: &mut Vec<usize>| {
        let mut done = std::mem::replace(body, String::from("{\"events\":["));
        done.push_str("]}");
        (
            Outgoing {
                body: done,
                group_id: None,
                dedup_id: None,
                attributes: HashMap::new(),
            },
            std::mem::take(carried),
        )
    };
    for (i, h) in handoffs.iter().enumerate() {
        let json = serde_json::to_string(h)?;
        if !carried.is_empty() && body.len() + json.len() + 3 > MAX_MESSAGE_BYTES {
            out.push(close(&mut body, &mut carried));
        }
        if !carried.is_empty() {
            body.push(',');
        }
        body.push_str(&json);
        carried.push(i);
    }
    if !carried.is_empty() {
        out.push(close(&mut body, &mut carried));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff(id: &str, bytes: usize) -> Handoff {
        Handoff {
            event: serde_json::from_value(serde_json::json!({
                "id": id, "name": "feature.used", "received_at": "2026-11-30T10:00:00Z",
                "source": "web", "data": {"pad": "x".repeat(bytes)}
            }))
            .unwrap(),
            pipelines: vec![],
        }
    }

    #[test]
    fn events_are_packed_in_order_under_the_limit() {
        let small: Vec<Handoff> = (0..10).map(|i| handoff(&format!("e{i}"), 10)).collect();
        let packed = messages(&small).unwrap();
        assert_eq!(packed.len(), 1);
        let batch: HandoffBatch = serde_json::from_str(&packed[0].0.body).unwrap();
        assert_eq!(batch.events, small);
        assert_eq!(packed[0].1, (0..10).collect::<Vec<_>>());

        let big: Vec<Handoff> = (0..10)
            .map(|i| handoff(&format!("b{i}"), 250 * 1024))
            .collect();
        let packed = messages(&big).unwrap();
        assert_eq!(packed.len(), 4, "three 250 KiB events fit a message");
        let mut seen = Vec::new();
        for (m, carried) in &packed {
            assert!(m.body.len() <= MAX_MESSAGE_BYTES);
            let batch: HandoffBatch = serde_json::from_str(&m.body).unwrap();
            assert_eq!(batch.events.len(), carried.len());
            seen.extend(carried.iter().copied());
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert!(messages(&[]).unwrap().is_empty());
    }
}
