//! What routing hands to delivery: one message for the Slack FIFO queue, as the body of an
//! SQS message, with the keys delivery decides by.

use aws_lambda_events::event::sqs::SqsMessage;
use serde::{Deserialize, Serialize};

use crate::ids::{ChannelRef, DeliveryKey, GroupId, TeamId};
use crate::slack::block_kit::RenderedMessage;

/// Slack's pace: about one message per second per channel.
pub const DEFAULT_MIN_INTERVAL_MS: u64 = 1000;
/// Waiting messages of one channel at or above which they go out as one digest.
pub const DEFAULT_DIGEST_THRESHOLD: usize = 3;

/// One message for the Slack FIFO queue: the body of an SQS message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Format version of this body.
    pub v: u8,
    pub event_id: String,
    pub event_name: String,
    pub pipeline_id: String,
    /// Index of the destination in the pipeline.
    pub destination: usize,
    /// Serialized as the bare team id, as before it was typed.
    pub team: TeamId,
    /// Serialized as `#name` or the channel id.
    pub channel: ChannelRef,
    pub message: RenderedMessage,
    /// Pacing: the least time between two posts to this channel.
    #[serde(default = "default_interval_ms")]
    pub min_interval_ms: u64,
    /// Coalesce this many or more waiting messages of the channel into one digest; 0 never.
    #[serde(default = "default_digest_threshold")]
    pub digest_threshold: usize,
    /// When ingest received the event (ms since the epoch; 0 in bodies from before it was
    /// carried), for the end-to-end latency.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub received_ms: i64,
    /// A signed link to the full stored event, when the pipeline can sign one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The destination's `thread_by` value for this event: the message goes in that key's
    /// thread of the day (the first one of the day starts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_key: Option<String>,
    /// The destination's `mention` value for this event (an email): delivery looks it up
    /// with `users.lookupByEmail` and mentions the user, or shows it as plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mention: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn default_interval_ms() -> u64 {
    DEFAULT_MIN_INTERVAL_MS
}

fn default_digest_threshold() -> usize {
    DEFAULT_DIGEST_THRESHOLD
}

impl Delivery {
    /// (event, pipeline, destination): at most one Slack post each. Also the FIFO
    /// deduplication id. The event id is scoped by its source, so two sources' events never
    /// share a key.
    pub fn key(&self) -> DeliveryKey {
        DeliveryKey::of(&self.event_id, &self.pipeline_id, self.destination)
    }

    /// FIFO message group: one per workspace and channel, as the queue's `MessageGroupId`.
    pub fn group_id(&self) -> String {
        self.group().to_string()
    }

    /// The FIFO message group, typed.
    pub fn group(&self) -> GroupId {
        GroupId::new(&self.team, &self.channel)
    }
}

/// A parsed message of the batch, claimed in the ledger.
pub struct Item<'r> {
    pub record: &'r SqsMessage,
    pub delivery: Delivery,
    pub key: DeliveryKey,
    /// The owner line's markup (the `mention` resolved), set right before the post.
    pub owner: Option<String>,
}

/// SHA-256 hex of event id, pipeline id and destination index (see [`DeliveryKey`]).
pub fn delivery_key(event_id: &str, pipeline_id: &str, destination: usize) -> String {
    DeliveryKey::of(event_id, pipeline_id, destination).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIRE: &str = r##"{"v":1,"event_id":"local:e1","event_name":"signup","pipeline_id":"p","destination":2,"team":"T0123","channel":"#alerts","message":{"text":"hi","blocks":[],"truncated":false},"min_interval_ms":1000,"digest_threshold":3}"##;

    #[test]
    fn the_queue_message_is_byte_identical_with_typed_ids() {
        let d: Delivery = serde_json::from_str(WIRE).unwrap();
        assert_eq!(d.team.as_str(), "T0123");
        assert_eq!(d.channel, "#alerts");
        assert_eq!(d.group_id(), "T0123:#alerts");
        assert_eq!(d.group().team(), d.team);
        assert_eq!(serde_json::to_string(&d).unwrap(), WIRE);
        assert_eq!(d.key().as_str(), delivery_key("local:e1", "p", 2));
    }

    #[test]
    fn the_example_event_file_reads_as_a_delivery() {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../../../../events/slack-delivery-fifo.json"))
                .unwrap();
        let body = file["Records"][0]["body"].as_str().unwrap();
        let d: Delivery = serde_json::from_str(body).unwrap();
        assert_eq!(d.group_id(), "default:#alerts");
    }

    #[test]
    fn a_message_naming_no_valid_team_or_channel_is_unreadable() {
        let bad_team = WIRE.replace("\"T0123\"", "\"bad team\"");
        assert!(serde_json::from_str::<Delivery>(&bad_team).is_err());
        let bad_channel = WIRE.replace("\"#alerts\"", "\"#Has Spaces\"");
        assert!(serde_json::from_str::<Delivery>(&bad_channel).is_err());
    }
}
