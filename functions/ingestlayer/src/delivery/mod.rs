//! The slack-delivery function: messages from the Slack FIFO queue to chat.postMessage,
//! with every promise of DESIGN.md.
//!
//! - **Order.** A group (one workspace + channel) is processed in order; at its first
//!   failure that message and every later one of the group go back to SQS together, with a
//!   visibility timeout saying when to try again.
//! - **Nothing lost.** A message is deleted only when Slack took it or when it was parked in
//!   the DLQ with its reason (refused by Slack, its channel or workspace paused, or older
//!   than the age limit).
//! - **No duplicates.** The delivery ledger claims each (event, pipeline, destination) key
//!   before posting; after an uncertain outcome the channel's history is searched for the
//!   key (carried in message metadata) before posting again. So that history can be read,
//!   the bot joins a public channel before its first post there (it may post without
//!   joining, with `chat:write.public`, but not read). A channel whose history Slack will
//!   not show is paused at once with what to do; a check that cannot tell yet (Slack
//!   unreachable, more messages since the attempt than the look-back reads) waits and
//!   tries again, never posting on a guess.
//! - **Paced.** Each channel's next posting slot lives in DynamoDB, taken with a conditional
//!   write, so all instances together post at most once per interval; a 429 moves the slot
//!   to exactly Retry-After. Short waits are slept here, long ones go back to SQS.
//! - **Digests.** When enough of a channel's messages wait in one batch, they go out as one
//!   digest; a digest Slack refuses is split back into single posts. A digest gathers only
//!   consecutive messages of one thread key ([`threads`]).
//! - **Threads and owners.** A message with a thread key replies in that key's thread of the
//!   day ([`threads`], stored in the state table); a destination's owner email is mentioned
//!   ([`mention`]), never failing the message.
//!
//! The decisions are plain functions in [`decide`], over the ledger and channel state
//! ([`ledger::LedgerStore`], [`channel_store::ChannelStore`]), Slack's classified answer and
//! the injected [`clock::Clock`]; [`group`] carries them out. This module holds the
//! function's [`DeliveryDeps`] and its [`handle`].

pub mod channel_state;
pub mod channel_store;
pub mod clock;
pub mod decide;
pub mod digest;
pub mod group;
mod history;
pub mod ledger;
mod membership;
pub mod mention;
pub mod message;
pub mod ops_notice;
pub mod pacing;
pub mod park;
mod post;
pub mod retry;
pub mod threads;

#[cfg(test)]
mod fake;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::Instrument;

use crate::config::DeliveryConfig;
use crate::delivery::channel_state::Channels;
use crate::delivery::channel_store::ChannelStore;
use crate::delivery::clock::{Clock, SystemClock};
use crate::delivery::decide::Fate;
use crate::delivery::group::TeamPauses;
use crate::delivery::ledger::{Ledger, LedgerStore};
use crate::error::{Error, Result};
use crate::ids::{ChannelRef, GroupId};
use crate::slack::client::SlackClient;
use crate::slack::oauth::{OAuthClient, SlackAppSource};
use crate::slack::tokens::{TokenSource, WorkspaceTokens};
use crate::slack::workspaces::Connections;

pub use park::park_attr;
pub use retry::{retry_delay, MAX_INLINE_WAIT, RETRY_SCHEDULE};

/// What the delivery handler holds across invocations.
pub struct DeliveryDeps {
    pub slack: SlackClient,
    pub tokens: WorkspaceTokens,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub ledger: Arc<dyn LedgerStore>,
    pub channels: Arc<dyn ChannelStore>,
    /// Where delivery reads the time: the system clock, or a test's.
    pub clock: Arc<dyn Clock>,
    /// A message still undelivered this long after it was queued is parked.
    pub max_age: Duration,
    /// Pacing waits up to this long happen in process; longer ones go back to SQS.
    pub max_inline_wait: Duration,
    /// Seconds before retry n of a transient failure (by receive count; the last repeats).
    pub retry_schedule: Vec<u64>,
    /// Where pauses and parked messages are noticed (once per channel per hour); `None`
    /// turns notices off.
    pub ops_channel: Option<ChannelRef>,
    /// Where each delivery attempt is recorded (one batched write per invocation).
    pub journey: Option<crate::journey::JourneyStore>,
    /// Each thread key's thread of the day (`STATE_TABLE`); `None` posts unthreaded.
    pub threads: Option<threads::ThreadStore>,
    /// Owner lookups this instance made, with their TTLs.
    pub mentions: mention::Mentions,
    /// Groups whose membership this instance already settled (joined, invite-only, or
    /// not joinable), so the channels table is read once per instance and channel.
    settled: Mutex<HashSet<GroupId>>,
}

impl DeliveryDeps {
    /// The one constructor, used by the Lambda's main.rs, `make dev` and the tests: the
    /// clients, and token rotation when the Slack app's secret is configured. The app secret
    /// is read when a refresh is due, so a placeholder secret is a clear state then (the
    /// workspace pauses with the fix), never a cold-start failure.
    pub async fn load(sdk: &aws_config::SdkConfig, cfg: &DeliveryConfig) -> Result<Self> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let dynamo_for_threads = dynamo.clone();
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let connections = cfg.connections_table.as_ref().map(|table| Connections {
            dynamo: dynamo.clone(),
            table: table.clone(),
            secrets: secrets.clone(),
            secret_prefix: cfg.token_secret_prefix.clone(),
            kms_key_id: cfg.kms_key_id.clone().unwrap_or_default(),
        });
        let slack = SlackClient::new(&cfg.slack_api_url, cfg.slack_timeout)
            .map_err(|e| Error::slack("building the Slack client", e))?;
        let mut tokens = WorkspaceTokens::new(
            TokenSource::new(cfg.token.clone(), secrets),
            connections,
            None,
        );
        if let Some(arn) = &cfg.slack_app_secret_arn {
            let client = OAuthClient::new(&cfg.slack_api_url)
                .map_err(|e| Error::slack("building the Slack OAuth client", e))?;
            tokens.set_app_source(
                client,
                Arc::new(SlackAppSource::secret(
                    aws_sdk_secretsmanager::Client::new(sdk),
                    arn.clone(),
                )),
            );
        }
        Ok(Self {
            slack,
            tokens,
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: cfg.slack_queue_url.clone(),
            dlq_url: cfg.slack_dlq_url.clone(),
            ledger: Arc::new(Ledger {
                client: dynamo.clone(),
                table: cfg.deliveries_table.clone(),
            }),
            channels: Arc::new(Channels {
                client: dynamo,
                table: cfg.channels_table.clone(),
            }),
            clock: Arc::new(SystemClock),
            max_age: cfg.max_age,
            max_inline_wait: MAX_INLINE_WAIT,
            retry_schedule: RETRY_SCHEDULE.to_vec(),
            ops_channel: cfg
                .ops_channel
                .as_deref()
                .map(ChannelRef::parse)
                .transpose()
                .map_err(|e| Error::invalid("OPS_CHANNEL", e))?,
            journey: cfg
                .journey
                .as_ref()
                .map(|j| crate::journey::JourneyStore::new(sdk, j)),
            threads: cfg.state_table.as_ref().map(|table| threads::ThreadStore {
                client: dynamo_for_threads.clone(),
                table: table.clone(),
            }),
            mentions: mention::Mentions::default(),
            settled: Mutex::new(HashSet::new()),
        })
    }
}

/// Handles one batch from the Slack FIFO queue: each group (workspace + channel) in
/// order, groups one after another.
pub async fn handle(event: SqsEvent, deps: &DeliveryDeps) -> SqsBatchResponse {
    let mut groups: Vec<(GroupId, Vec<&SqsMessage>)> = Vec::new();
    for record in &event.records {
        let group = GroupId::from_queue(
            record
                .attributes
                .get("MessageGroupId")
                .map(String::as_str)
                .unwrap_or_default(),
        );
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, list)) => list.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    let mut team_pauses = TeamPauses::new();
    let mut fates: Vec<(&SqsMessage, Fate)> = Vec::new();
    let mut journey = Vec::new();
    for (group, records) in &groups {
        // Every line logged while the group is processed carries its events' ids.
        let event_ids: Vec<String> = records.iter().filter_map(|r| peek_event_id(r)).collect();
        let span = tracing::info_span!("group", group = %group, messages = records.len(), event_ids = ?event_ids);
        let out = group::process(group, records, deps, &mut team_pauses)
            .instrument(span)
            .await;
        fates.extend(out.fates);
        journey.extend(out.journey);
    }
    crate::journey::metrics::observe(&journey);
    if let Some(store) = &deps.journey {
        store.write(journey).await;
    }
    let mut failures = Vec::new();
    let mut later = Vec::new();
    for (record, fate) in fates {
        if let Fate::Later(d) = fate {
            failures.push(record.message_id.clone().unwrap_or_default());
            if let Some(h) = &record.receipt_handle {
                later.push((h.clone(), d));
            }
        }
    }
    hand_back(deps, &later).await;
    crate::aws::sqs::batch_response(failures)
}

/// The event id of a queued delivery, without reading the rest of it.
fn peek_event_id(r: &SqsMessage) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        event_id: String,
    }
    serde_json::from_str::<Peek>(r.body.as_deref()?)
        .ok()
        .map(|p| p.event_id)
}

/// Sets each failed message's visibility so it comes back when it should.
async fn hand_back(deps: &DeliveryDeps, later: &[(String, Duration)]) {
    let later: Vec<(String, i32)> = later
        .iter()
        .map(|(handle, d)| (handle.clone(), retry::visibility_secs(*d)))
        .collect();
    crate::aws::sqs::hand_back(&deps.sqs, &deps.queue_url, &later).await;
}

#[cfg(test)]
impl DeliveryDeps {
    /// Deps for unit tests: the ledger and channel state in `state`, Slack at `slack_api_url`
    /// with the static token `xoxb-test`, the system clock, and AWS clients that point
    /// nowhere (the paths under test never park).
    pub(crate) fn with_fake(slack_api_url: &str, state: Arc<fake::FakeState>) -> Self {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let token = crate::config::TokenConfig::Env(secrecy::SecretString::from("xoxb-test"));
        Self {
            slack: SlackClient::new(slack_api_url, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("Slack client: {e}")),
            tokens: WorkspaceTokens::new(
                TokenSource::new(token, aws_sdk_secretsmanager::Client::new(&sdk)),
                None,
                None,
            ),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queue_url: "http://127.0.0.1:9/queue".into(),
            dlq_url: "http://127.0.0.1:9/dlq".into(),
            ledger: state.clone(),
            channels: state,
            clock: Arc::new(SystemClock),
            max_age: Duration::from_secs(3600),
            max_inline_wait: MAX_INLINE_WAIT,
            retry_schedule: RETRY_SCHEDULE.to_vec(),
            ops_channel: None,
            journey: None,
            threads: None,
            mentions: mention::Mentions::default(),
            settled: Mutex::new(HashSet::new()),
        }
    }
}
