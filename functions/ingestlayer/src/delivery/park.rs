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

/// Moves the message to the DLQ with its reason; [`Fate::Done`] only when that worked.
pub(super) async fn park(
    record: &SqsMessage,
    delivery: Option<&Delivery>,
    reason: &str,
    deps: &DeliveryDeps,
) -> Fate {
    let group = record
        .attributes
        .get("MessageGroupId")
        .cloned()
        .or_else(|| delivery.map(Delivery::group_id))
        .unwrap_or_else(|| "unknown".into());
    // A fresh dedup id: the same message parked again after a redrive must land again.
    let dedup = format!(
        "{}-{}",
        delivery
            .map(|d| d.key().to_string())
            .unwrap_or_else(|| record.message_id.clone().unwrap_or_default())
            .chars()
            .take(DEDUP_KEY_CHARS)
            .collect::<String>(),
        ulid::Ulid::new()
    );
    let mut attributes = HashMap::from([(park_attr::REASON.to_owned(), reason.to_owned())]);
    if let Some(d) = delivery {
        attributes.insert(park_attr::EVENT_ID.into(), d.event_id.clone());
        attributes.insert(park_attr::PIPELINE_ID.into(), d.pipeline_id.clone());
        attributes.insert(park_attr::CHANNEL.into(), d.channel.to_string());
    }
    let message = Outgoing {
        body: record.body.clone().unwrap_or_else(|| "{}".into()),
        group_id: Some(group),
        dedup_id: Some(dedup),
        attributes,
    };
    match send_all(&deps.sqs, &deps.dlq_url, std::slice::from_ref(&message))
        .await
        .remove(0)
    {
        Ok(()) => {
            tracing::error!(event_id = %delivery.map(|d| d.event_id.as_str()).unwrap_or("?"), reason = %reason, outcome = "parked", "message parked in the DLQ with its reason");
            let group = message.group_id.as_deref().unwrap_or("unknown");
            ops_notice::send(
                deps,
                ops_notice::parked(group, delivery.map(|d| d.event_id.as_str()), reason),
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
