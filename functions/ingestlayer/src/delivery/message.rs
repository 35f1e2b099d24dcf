//! What routing hands to delivery: one message for the Slack FIFO queue, as the body of an
//! SQS message, with the keys delivery decides by.

use serde::{Deserialize, Serialize};

use crate::ids::{DeliveryKey, GroupId, TeamId};
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
    pub team: String,
    pub channel: String,
    pub message: RenderedMessage,
    /// Pacing: the least time between two posts to this channel.
    #[serde(default = "default_interval_ms")]
    pub min_interval_ms: u64,
    /// Coalesce this many or more waiting messages of the channel into one digest; 0 never.
    #[serde(default = "default_digest_threshold")]
    pub digest_threshold: usize,
    /// A signed link to the full stored event, when the pipeline can sign one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
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
        format!("{}:{}", self.team, self.channel)
    }

    /// The FIFO message group, typed.
    pub fn group(&self) -> GroupId {
        GroupId::from_queue(&self.group_id())
    }

    /// The workspace posted into.
    pub fn team(&self) -> TeamId {
        self.group().team()
    }
}

/// SHA-256 hex of event id, pipeline id and destination index (see [`DeliveryKey`]).
pub fn delivery_key(event_id: &str, pipeline_id: &str, destination: usize) -> String {
    DeliveryKey::of(event_id, pipeline_id, destination).to_string()
}
