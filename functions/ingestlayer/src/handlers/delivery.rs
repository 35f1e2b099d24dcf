//! The slack-delivery function: messages from the Slack FIFO queue to chat.postMessage.
//!
//! A group (one workspace + channel) is processed in order; at its first failure that
//! message and every later one of the group are reported failed and handed back to SQS
//! with a visibility timeout that says when to try again. A message is deleted only when
//! Slack took it or when it was parked in the DLQ with its reason.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use secrecy::SecretString;
use tokio::sync::OnceCell;

use crate::config::{DeliveryConfig, TokenConfig};
use crate::queue::{send_all, Outgoing};
use crate::routing::Delivery;
use crate::slack::{classify, operator_hint, Action, PostMessage, SlackClient};

/// Seconds before retry n (by receive count) of a transient failure; jittered ±20 %.
pub const RETRY_SCHEDULE: &[u64] = &[1, 2, 5, 10, 30, 60, 120, 300, 600, 900];
/// How long a paused channel's messages wait before they are tried again.
pub const CHANNEL_PAUSE: Duration = Duration::from_secs(300);
/// How long a paused workspace's messages wait before they are tried again.
pub const WORKSPACE_PAUSE: Duration = Duration::from_secs(900);
/// SQS's longest visibility timeout.
const MAX_VISIBILITY: u64 = 43_200;

/// Message attributes a parked message carries in the DLQ.
pub mod park_attr {
    pub const REASON: &str = "ingestlayer_park_reason";
    pub const EVENT_ID: &str = "ingestlayer_event_id";
    pub const PIPELINE_ID: &str = "ingestlayer_pipeline_id";
    pub const CHANNEL: &str = "ingestlayer_channel";
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading the Slack token secret failed: {0}")]
    Fetch(String),
    #[error("the Slack token secret holds no bot token: connect Slack or put the token in the secret as {{\"bot_token\": \"xoxb-...\"}}")]
    Empty,
}

/// The bot token: fetched from Secrets Manager once and cached for the instance's life.
pub struct TokenSource {
    config: TokenConfig,
    secrets: aws_sdk_secretsmanager::Client,
    cached: OnceCell<SecretString>,
}

impl TokenSource {
    pub fn new(config: TokenConfig, secrets: aws_sdk_secretsmanager::Client) -> Self {
        Self {
            config,
            secrets,
            cached: OnceCell::new(),
        }
    }

    pub async fn token(&self) -> Result<&SecretString, TokenError> {
        self.cached
            .get_or_try_init(|| async {
                match &self.config {
                    TokenConfig::Env(t) => Ok(t.clone()),
                    TokenConfig::Secret(arn) => {
                        let out = self
                            .secrets
                            .get_secret_value()
                            .secret_id(arn)
                            .send()
                            .await
                            .map_err(|e| {
                                TokenError::Fetch(
                                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                                        .to_string(),
                                )
                            })?;
                        parse_secret(out.secret_string().unwrap_or_default())
                    }
                }
            })
            .await
    }
}

/// A token secret is `{"bot_token": "xoxb-…"}` or the bare token.
fn parse_secret(s: &str) -> Result<SecretString, TokenError> {
    let token = match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => v
            .get("bot_token")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned(),
        Err(_) => s.trim().to_owned(),
    };
    if token.is_empty() {
        Err(TokenError::Empty)
    } else {
        Ok(SecretString::from(token))
    }
}

/// What the delivery handler holds across invocations.
pub struct DeliveryDeps {
    pub slack: SlackClient,
    pub tokens: TokenSource,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
}

impl DeliveryDeps {
    pub fn new(sdk: &aws_config::SdkConfig, cfg: &DeliveryConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            slack: SlackClient::new(&cfg.slack_api_url, cfg.slack_timeout)?,
            tokens: TokenSource::new(cfg.token.clone(), aws_sdk_secretsmanager::Client::new(sdk)),
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: cfg.slack_queue_url.clone(),
            dlq_url: cfg.slack_dlq_url.clone(),
        })
    }
}

/// What happened to one message, for the batch response and the visibility changes.
enum Fate {
    Done,
    /// Try again after this long; the rest of the group waits with it.
    Later(Duration),
}

/// Handles one batch from the Slack FIFO queue.
pub async fn handle(event: SqsEvent, deps: &DeliveryDeps) -> SqsBatchResponse {
    // Group → the delay its blocked messages wait.
    let mut blocked: HashMap<String, Duration> = HashMap::new();
    let mut blocked_teams: HashMap<String, Duration> = HashMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut later: Vec<(String, Duration)> = Vec::new();
    let mut seen_groups = HashSet::new();

    for record in &event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let group = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        seen_groups.insert(group.clone());
        let span = tracing::info_span!("message", message_id = %message_id, group = %group);
        let _enter = span.enter();
        let team = group.split(':').next().unwrap_or_default().to_owned();
        let wait = blocked
            .get(&group)
            .or_else(|| blocked_teams.get(&team))
            .copied();
        let fate = match wait {
            Some(d) => Fate::Later(d),
            None => deliver(record, deps, &mut blocked_teams).await,
        };
        if let Fate::Later(d) = fate {
            blocked.entry(group).or_insert(d);
            failures.push(message_id);
            if let Some(h) = &record.receipt_handle {
                later.push((h.clone(), d));
            }
        }
    }
    hand_back(deps, &later).await;
    crate::handlers::pipeline::batch_response(failures)
}

async fn deliver(
    record: &SqsMessage,
    deps: &DeliveryDeps,
    blocked_teams: &mut HashMap<String, Duration>,
) -> Fate {
    let delivery: Delivery = match record.body.as_deref().map(serde_json::from_str) {
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            return park(
                record,
                None,
                &format!("unreadable delivery message: {e}"),
                deps,
            )
            .await
        }
        None => return park(record, None, "delivery message has no body", deps).await,
    };
    let receive_count: usize = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let token = match deps.tokens.token().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(event_id = %delivery.event_id, channel = %delivery.channel, error = %e, outcome = "pause_workspace", "no Slack token; the workspace's messages wait");
            blocked_teams.insert(delivery.team.clone(), Duration::from_secs(60));
            return Fate::Later(Duration::from_secs(60));
        }
    };
    let metadata = serde_json::json!({
        "event_type": "ingestlayer_delivery",
        "event_payload": {"key": delivery.key(), "event_id": delivery.event_id, "pipeline_id": delivery.pipeline_id}
    });
    let answer = deps
        .slack
        .post_message(
            token,
            &PostMessage {
                channel: &delivery.channel,
                text: &delivery.message.text,
                blocks: &delivery.message.blocks,
                metadata: Some(metadata),
                unfurl_links: false,
                unfurl_media: false,
            },
        )
        .await;
    let ids = (&delivery.event_id, &delivery.pipeline_id, &delivery.channel);
    match classify(&answer) {
        Action::Delivered { ts } => {
            tracing::info!(event_id = %ids.0, pipeline = %ids.1, channel = %ids.2, ts = %ts, outcome = "delivered", "posted to Slack");
            Fate::Done
        }
        Action::WaitRetryAfter(d) => {
            tracing::warn!(event_id = %ids.0, channel = %ids.2, retry_after_s = d.as_secs(), outcome = "rate_limited", "Slack rate-limited the channel; it waits exactly Retry-After");
            Fate::Later(d)
        }
        Action::Retry {
            reason,
            maybe_posted,
        } => {
            let d = retry_delay(receive_count);
            tracing::warn!(event_id = %ids.0, channel = %ids.2, reason = %reason, maybe_posted, attempt = receive_count, retry_in_s = d.as_secs(), outcome = "retry", "transient Slack failure; will retry");
            Fate::Later(d)
        }
        Action::Park { reason } => park(record, Some(&delivery), &reason, deps).await,
        Action::PauseChannel { error } => {
            tracing::error!(event_id = %ids.0, channel = %ids.2, slack_error = %error, outcome = "pause_channel", action = %operator_hint(&error, &delivery.channel), "channel paused; its backlog is kept");
            Fate::Later(CHANNEL_PAUSE)
        }
        Action::PauseWorkspace { error } => {
            tracing::error!(event_id = %ids.0, team = %delivery.team, slack_error = %error, outcome = "pause_workspace", action = %operator_hint(&error, &delivery.channel), "workspace paused; its backlog is kept");
            blocked_teams.insert(delivery.team.clone(), WORKSPACE_PAUSE);
            Fate::Later(WORKSPACE_PAUSE)
        }
    }
}

/// Moves the message to the DLQ with its reason; it is deleted from the queue only when
/// that worked.
async fn park(
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
    let dedup = record
        .attributes
        .get("MessageDeduplicationId")
        .cloned()
        .or_else(|| record.message_id.clone())
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    let mut attributes = HashMap::from([(park_attr::REASON.to_owned(), reason.to_owned())]);
    if let Some(d) = delivery {
        attributes.insert(park_attr::EVENT_ID.into(), d.event_id.clone());
        attributes.insert(park_attr::PIPELINE_ID.into(), d.pipeline_id.clone());
        attributes.insert(park_attr::CHANNEL.into(), d.channel.clone());
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
            Fate::Done
        }
        Err(e) => {
            tracing::error!(reason = %reason, error = %e, outcome = "retry", "could not park the message; it stays queued");
            Fate::Later(Duration::from_secs(30))
        }
    }
}

/// Delay before the next try of a transient failure, by receive count, jittered ±20 %.
pub fn retry_delay(receive_count: usize) -> Duration {
    let i = receive_count
        .saturating_sub(1)
        .min(RETRY_SCHEDULE.len() - 1);
    let base = RETRY_SCHEDULE[i] as f64;
    let jitter = rand::random_range(0.8..=1.2);
    Duration::from_secs_f64((base * jitter).max(1.0))
}

/// Sets each failed message's visibility so it comes back when it should.
async fn hand_back(deps: &DeliveryDeps, later: &[(String, Duration)]) {
    for chunk in later.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (handle, d))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(d.as_secs().clamp(1, MAX_VISIBILITY) as i32)
                    .build()
                    .ok()
            })
            .collect();
        let result = deps
            .sqs
            .change_message_visibility_batch()
            .queue_url(&deps.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) if !out.failed.is_empty() => {
                tracing::warn!(failed = out.failed.len(), "some visibility changes failed; those messages return after the queue's visibility timeout")
            }
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "visibility change failed; messages return after the queue's visibility timeout")
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn token_secrets_are_json_or_bare() {
        assert_eq!(
            parse_secret(r#"{"bot_token":"xoxb-1"}"#)
                .unwrap()
                .expose_secret(),
            "xoxb-1"
        );
        assert_eq!(parse_secret("xoxb-2\n").unwrap().expose_secret(), "xoxb-2");
        assert!(matches!(
            parse_secret(r#"{"bot_token":""}"#),
            Err(TokenError::Empty)
        ));
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        assert!(retry_delay(1) <= Duration::from_secs_f64(1.2));
        assert!(retry_delay(5) >= Duration::from_secs(24));
        assert!(retry_delay(500) <= Duration::from_secs(1080));
    }
}
