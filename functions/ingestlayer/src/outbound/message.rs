//! What routing hands the destination-delivery function: one message for the destinations
//! FIFO queue per (event, pipeline, destination) beyond Slack, as the body of an SQS message.
//! Its group is the target (`discord:<secret>`, `telegram:<secret>:<chat>`), so each target's
//! messages go in order and no target waits on another.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ids::DeliveryKey;
use crate::outbound::card::Card;

/// A secret's name as a pipeline writes it: Secrets Manager's characters, at most 64.
pub fn valid_secret_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
}

/// Where a message goes, as the pipeline names it; secrets by name only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// A signed POST to `url`, with the signing secret in `secret`.
    Webhook { url: String, secret: String },
    /// Execute Webhook; the webhook's URL (with its token) is the secret.
    Discord { secret: String },
    /// `sendMessage` to `chat_id` with the bot token in `secret`.
    Telegram { secret: String, chat_id: String },
    /// SES `SendEmail` from `from` to `to`.
    Email { from: String, to: Vec<String> },
    /// One page per event in the Notion database `database`, found again by `id_property`.
    Notion {
        secret: String,
        database: String,
        id_property: String,
    },
}

/// The first 24 hex digits of SHA-256: a target named by something too long or too private
/// for a group id (a URL, a recipient list).
fn short_hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
        .chars()
        .take(24)
        .collect()
}

impl Target {
    /// The destination type, as pipelines write it.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Discord { .. } => "discord",
            Target::Telegram { .. } => "telegram",
            Target::Email { .. } => "email",
            Target::Notion { .. } => "notion",
        }
    }

    /// The FIFO message group: one per target, at most 128 characters.
    pub fn group_id(&self) -> String {
        let id = match self {
            Target::Webhook { url, .. } => format!("webhook:{}", short_hash(url)),
            Target::Discord { secret } => format!("discord:{secret}"),
            Target::Telegram { secret, chat_id } => format!("telegram:{secret}:{chat_id}"),
            Target::Email { to, .. } => format!("email:{}", short_hash(&to.join(","))),
            Target::Notion { database, .. } => format!("notion:{database}"),
        };
        id.chars().take(128).collect()
    }

    /// What is paced together: the platform's unit of rate limits (a Discord webhook, a
    /// Telegram chat, the SES account, a Notion integration, a webhook endpoint).
    pub fn pacing_key(&self) -> String {
        match self {
            Target::Notion { secret, .. } => format!("notion:{secret}"),
            Target::Email { .. } => "email:account".to_owned(),
            other => other.group_id(),
        }
    }

    /// The secret this target needs, by name.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Target::Webhook { secret, .. }
            | Target::Discord { secret }
            | Target::Telegram { secret, .. }
            | Target::Notion { secret, .. } => Some(secret),
            Target::Email { .. } => None,
        }
    }

    /// How operators and `explain` name the target (no secret in it).
    pub fn describe(&self) -> String {
        match self {
            Target::Webhook { url, .. } => {
                let u = url::Url::parse(url).ok();
                let host = u.as_ref().and_then(|u| u.host_str()).unwrap_or("?");
                format!("webhook {host}")
            }
            Target::Discord { secret } => format!("discord webhook ({secret})"),
            Target::Telegram { chat_id, .. } => format!("telegram chat {chat_id}"),
            Target::Email { to, .. } => format!("email to {}", to.join(", ")),
            Target::Notion { database, .. } => format!("notion database {database}"),
        }
    }
}

/// Whether `s` is how [`Target::describe`] names a target (as journey records carry it),
/// rather than a Slack channel.
pub fn describes_target(s: &str) -> bool {
    ["webhook ", "discord ", "telegram ", "email ", "notion "]
        .iter()
        .any(|kind| s.starts_with(kind))
}

/// One message for the destinations FIFO queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    /// Format version of this body.
    pub v: u8,
    pub event_id: String,
    pub event_name: String,
    pub pipeline_id: String,
    /// Index of the destination in the pipeline.
    pub destination: usize,
    /// When ingest received the event (ms since the epoch).
    #[serde(default)]
    pub received_ms: i64,
    /// The source that sent the event (`webhook:stripe`, an API key's source name).
    #[serde(default)]
    pub source: String,
    pub target: Target,
    pub card: Card,
    /// The webhook's payload: the event's fields as the pipeline saw them (enrichment
    /// included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Notion: each mapped property's rendered value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<(String, String)>,
    /// Email: digest this many or more waiting messages (0 never).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub digest_threshold: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Outbound {
    /// (event, pipeline, destination): delivered at most once; also the FIFO deduplication
    /// id and, for webhooks, the `webhook-id`.
    pub fn key(&self) -> DeliveryKey {
        DeliveryKey::of(&self.event_id, &self.pipeline_id, self.destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_keep_targets_apart_and_stay_within_fifo_limits() {
        let a = Target::Telegram {
            secret: "bot".into(),
            chat_id: "1001".into(),
        };
        let b = Target::Telegram {
            secret: "bot".into(),
            chat_id: "-1002".into(),
        };
        assert_ne!(a.group_id(), b.group_id());
        assert_eq!(a.pacing_key(), a.group_id());
        let hook = Target::Webhook {
            url: format!("https://example.com/{}", "x".repeat(500)),
            secret: "s".into(),
        };
        assert!(hook.group_id().len() <= 128);
        assert!(!hook.group_id().contains("example"));
        let n1 = Target::Notion {
            secret: "ntn".into(),
            database: "a".repeat(32),
            id_property: "Event ID".into(),
        };
        let n2 = Target::Notion {
            secret: "ntn".into(),
            database: "b".repeat(32),
            id_property: "Event ID".into(),
        };
        assert_ne!(n1.group_id(), n2.group_id());
        for t in [&a, &hook, &n1] {
            assert!(describes_target(&t.describe()), "{}", t.describe());
        }
        assert!(!describes_target("#alerts"));
        assert_eq!(
            n1.pacing_key(),
            n2.pacing_key(),
            "one integration, one pace"
        );
    }

    #[test]
    fn the_example_event_file_reads_as_a_destination_message() {
        let file: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../events/destination-delivery-fifo.json"
        ))
        .unwrap();
        let record = &file["Records"][0];
        let m: Outbound = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            record["attributes"]["MessageGroupId"].as_str(),
            Some(m.target.group_id().as_str())
        );
    }

    #[test]
    fn the_queue_message_round_trips() {
        let m = Outbound {
            v: 1,
            event_id: "local:e1".into(),
            event_name: "feature.used".into(),
            pipeline_id: "p".into(),
            destination: 1,
            received_ms: 5,
            source: "web-app".into(),
            target: Target::Discord {
                secret: "discord-alerts".into(),
            },
            card: Card {
                title: "feature.used".into(),
                footer: "ingestlayer".into(),
                ..Card::default()
            },
            data: None,
            properties: vec![],
            digest_threshold: 0,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(r#""target":{"type":"discord","secret":"discord-alerts"}"#));
        let back: Outbound = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.key(), DeliveryKey::of("local:e1", "p", 1));
    }
}
