//! Parking: a message moved to the Slack DLQ with its reason (and the event, pipeline and
//! channel it was for) as message attributes, where it waits for a fix and a redrive. A
//! message is deleted from the queue only once it is parked.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessage;

use crate::aws::sqs::{send_all, Outgoing};
use crate::delivery::decide::Fate;
use crate::delivery::message::Delivery;
use crate::delivery::ops_notice;
use crate::delivery::retry::PARK_FAILED_RETRY;
use crate::delivery::DeliveryDeps;

/// Message attributes a parked message carries in the DLQ.
pub mod park_attr {
    pub const REASON: &str = "ingestlayer_park_reason";
    pub const EVENT_ID: &str = "ingestlayer_event_id";
    pub const PIPELINE_ID: &str = "ingestlayer_pipeline_id";
    pub const CHANNEL: &str = "ingestlayer_channel";
}

/// The longest prefix of the delivery key kept in a parked message's deduplication id.
const DEDUP_KEY_CHARS: usize = 64;

/// What a parked message says about itself: its event, pipeline and where it was going.
pub struct Parking<'a> {
    pub event_id: &'a str,
    pub pipeline_id: &'a str,
    /// The channel (`#alerts`) or the target (`telegram chat 1001`).
    pub channel: String,
    /// The delivery key, for the parked message's deduplication id.
    pub key: String,
    /// The group to park under when the record carries none.
    pub group: String,
}

/// Sends `record` to `dlq_url` with `reason` (and what `parking` says) as message
/// attributes, under its own group and a fresh deduplication id (so the same message parked
/// again after a redrive lands again). Slack delivery and destination delivery park alike.
pub async fn send_to_dlq(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    record: &SqsMessage,
    parking: Option<&Parking<'_>>,
    reason: &str,
) -> crate::error::Result<String> {
    let group = record
        .attributes
        .get("MessageGroupId")
        .cloned()
        .or_else(|| parking.map(|p| p.group.clone()))
        .unwrap_or_else(|| "unknown".into());
    let dedup = format!(
        "{}-{}",
        parking
            .map(|p| p.key.clone())
            .unwrap_or_else(|| record.message_id.clone().unwrap_or_default())
            .chars()
            .take(DEDUP_KEY_CHARS)
            .collect::<String>(),
        ulid::Ulid::new()
    );
    let mut attributes = HashMap::from([(park_attr::REASON.to_owned(), reason.to_owned())]);
    if let Some(p) = parking {
        attributes.insert(park_attr::EVENT_ID.into(), p.event_id.to_owned());
        attributes.insert(park_attr::PIPELINE_ID.into(), p.pipeline_id.to_owned());
        attributes.insert(park_attr::CHANNEL.into(), p.channel.clone());
    }
    let message = Outgoing {
        body: record.body.clone().unwrap_or_else(|| "{}".into()),
        group_id: Some(group.clone()),
        dedup_id: Some(dedup),
        attributes,
    };
    send_all(sqs, dlq_url, std::slice::from_ref(&message))
        .await
        .remove(0)
        .map(|()| group)
}

/// Moves the message to the DLQ with its reason; [`Fate::Done`] only when that worked.
pub(super) async fn park(
    record: &SqsMessage,
    delivery: Option<&Delivery>,
    reason: &str,
    deps: &DeliveryDeps,
) -> Fate {
    let parking = delivery.map(|d| Parking {
        event_id: &d.event_id,
        pipeline_id: &d.pipeline_id,
        channel: d.channel.to_string(),
        key: d.key().to_string(),
        group: d.group_id(),
    });
    match send_to_dlq(&deps.sqs, &deps.dlq_url, record, parking.as_ref(), reason).await {
        Ok(group) => {
            tracing::error!(event_id = %delivery.map(|d| d.event_id.as_str()).unwrap_or("?"), reason = %reason, outcome = "parked", "message parked in the DLQ with its reason");
            ops_notice::send(
                deps,
                ops_notice::parked(&group, delivery.map(|d| d.event_id.as_str()), reason),
            )
            .await;
            Fate::Done
        }
        Err(e) => {
            tracing::error!(reason = %reason, error = %e, outcome = "retry", "could not park the message; it stays queued");
            Fate::Later(PARK_FAILED_RETRY)
        }
    }
}
