//! Operator tooling for the Slack FIFO DLQ: list parked messages with their reasons, list
//! paused channels and workspaces, and redrive after a fix.
//!
//! Redrive lifts the pauses it concerns first, then moves the messages back to the Slack
//! queue in each channel's order. On AWS a whole-queue redrive uses StartMessageMoveTask;
//! where that is missing (the local emulator) or a channel filter is given, the library's
//! [`ingestlayer::aws::redrive::move_back`] receives, sends and deletes them one by one (the
//! same code that redrives a channel when the bot joins it). Redriven messages keep their
//! delivery key, so the ledger still prevents a second post of anything already delivered.

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use ingestlayer::aws::redrive::{group_of, release};
use ingestlayer::delivery::channel_state::Channels;
use ingestlayer::delivery::park_attr;

/// A parked message as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub message_id: String,
    pub group: String,
    pub reason: String,
    pub event_id: String,
    pub pipeline_id: String,
    pub channel: String,
}

/// Which parked messages a redrive moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this channel (`#alerts` or an id).
    pub channel: Option<String>,
    /// Only this workspace (team id, or `default`).
    pub team: Option<String>,
}

impl Filter {
    fn matches(&self, group: &str) -> bool {
        let (team, channel) = group.split_once(':').unwrap_or((group, ""));
        self.team.as_deref().is_none_or(|t| t == team)
            && self.channel.as_deref().is_none_or(|c| c == channel)
    }

    fn is_all(&self) -> bool {
        self.channel.is_none() && self.team.is_none()
    }
}

fn sqs_err<E>(e: aws_sdk_sqs::error::SdkError<E>) -> String
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
{
    aws_sdk_sqs::error::DisplayErrorContext(e).to_string()
}

/// Every parked message, in each channel's order. Messages are held for a moment while
/// read and released again.
pub async fn list(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> Result<Vec<Parked>, String> {
    let mut out = Vec::new();
    let mut held = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(sqs_err)?
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            break;
        }
        for m in got {
            let attr = |name: &str| {
                m.message_attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default()
                    .to_owned()
            };
            out.push(Parked {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                group: group_of(&m),
                reason: attr(park_attr::REASON),
                event_id: attr(park_attr::EVENT_ID),
                pipeline_id: attr(park_attr::PIPELINE_ID),
                channel: attr(park_attr::CHANNEL),
            });
            if let Some(h) = m.receipt_handle() {
                held.push(h.to_owned());
            }
        }
    }
    release(sqs, dlq_url, &held).await;
    Ok(out)
}

/// What a redrive did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Redriven {
    pub moved: usize,
    pub resumed: Vec<String>,
    /// True when AWS's StartMessageMoveTask moved the messages (it reports no count).
    pub move_task: bool,
}

/// Lifts the matching pauses, then moves the matching parked messages back to the queue.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    channels: &Channels,
    dlq_url: &str,
    queue_url: &str,
    filter: &Filter,
) -> Result<Redriven, String> {
    let mut result = Redriven::default();
    for paused in channels.paused().await.map_err(|e| e.to_string())? {
        let group = paused.pk.strip_prefix("chan#").map(str::to_owned);
        let team = paused.pk.strip_prefix("team#").map(str::to_owned);
        let wanted = match (&group, &team) {
            (Some(g), _) => filter.matches(g),
            (_, Some(t)) => {
                filter.team.as_deref().is_none_or(|f| f == t) && filter.channel.is_none()
            }
            _ => false,
        };
        if wanted
            && channels
                .resume(&paused.pk)
                .await
                .map_err(|e| e.to_string())?
        {
            result.resumed.push(paused.pk);
        }
    }
    if filter.is_all() {
        if let Some(()) = start_move_task(sqs, dlq_url, queue_url).await {
            result.move_task = true;
            return Ok(result);
        }
    }
    result.moved =
        ingestlayer::aws::redrive::move_back(sqs, dlq_url, queue_url, |g| filter.matches(g))
            .await
            .map_err(|e| e.to_string())?;
    Ok(result)
}

/// StartMessageMoveTask from the DLQ back to its source; `None` where it is unavailable.
async fn start_move_task(sqs: &aws_sdk_sqs::Client, dlq_url: &str, queue_url: &str) -> Option<()> {
    let arn = |url: &str| {
        let sqs = sqs.clone();
        let url = url.to_owned();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .ok()?
                .attributes?
                .remove(&QueueAttributeName::QueueArn)
        }
    };
    let (source, destination) = (arn(dlq_url).await?, arn(queue_url).await?);
    match sqs
        .start_message_move_task()
        .source_arn(source)
        .destination_arn(destination)
        .send()
        .await
    {
        Ok(_) => Some(()),
        Err(e) => {
            tracing::info!(error = %sqs_err(e), "StartMessageMoveTask unavailable; moving messages one by one");
            None
        }
    }
}
