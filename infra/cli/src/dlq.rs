//! `ingestlayer dlq list|redrive`: both dead-letter queues.
//!
//! - The Slack FIFO DLQ holds messages delivery parked, each with its reason (and the
//!   event, pipeline and channel it was for) as message attributes. A redrive lifts the
//!   pauses it concerns first, then moves the messages back to the Slack queue in each
//!   channel's order; they keep their delivery key, so the ledger still prevents a second
//!   post of anything already delivered.
//! - The events DLQ holds events the pipeline function failed on `maxReceiveCount` times
//!   (SQS moved them there). They are listed by event id and name with their receive count;
//!   a redrive moves them back to the events queue.
//!
//! On AWS a whole-queue redrive uses StartMessageMoveTask; where that is missing (the local
//! emulator) or a channel filter is given, [`ingestlayer::aws::redrive`] receives, sends and
//! deletes them one by one (the same code that redrives a channel when the bot joins it).
//! Listing holds each message for a moment and releases it again.

use std::io::Write;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use ingestlayer::aws::redrive::{group_of, move_back_reporting, receive_batch, release};
use ingestlayer::delivery::channel_state::{display_name, Channels};
use ingestlayer::delivery::park_attr;
use ingestlayer::error::Result;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::CliError;
use crate::progress::Progress;
use crate::stack::{reach, Stack};

/// Which DLQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Slack,
    /// Webhooks, Discord, Telegram, email and Notion: parked like Slack's messages, and
    /// their paused targets resumed on a redrive like Slack's channels.
    Destinations,
    Events,
    Warehouse,
}

impl Queue {
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Slack => "slack",
            Queue::Destinations => "destinations",
            Queue::Events => "events",
            Queue::Warehouse => "warehouse",
        }
    }

    /// The stack outputs of the DLQ and the queue it feeds.
    fn outputs(self) -> (&'static str, &'static str) {
        match self {
            Queue::Slack => ("SlackDLQUrl", "SlackQueueUrl"),
            Queue::Destinations => ("DestinationsDLQUrl", "DestinationsQueueUrl"),
            Queue::Events => ("EventsDLQUrl", "EventsQueueUrl"),
            Queue::Warehouse => ("WarehouseDLQUrl", "WarehouseQueueUrl"),
        }
    }
}

impl std::str::FromStr for Queue {
    type Err = CliError;

    fn from_str(s: &str) -> std::result::Result<Self, CliError> {
        match s {
            "slack" => Ok(Queue::Slack),
            "destinations" => Ok(Queue::Destinations),
            "events" => Ok(Queue::Events),
            "warehouse" => Ok(Queue::Warehouse),
            other => Err(CliError::Usage(format!(
                "{other:?}: the DLQs are `slack`, `destinations`, `events` and `warehouse`"
            ))),
        }
    }
}

/// A message parked in the Slack DLQ, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parked {
    pub message_id: String,
    /// The FIFO group, `<team>:<channel>`.
    pub group: String,
    pub reason: String,
    pub event_id: String,
    pub pipeline_id: String,
    pub channel: String,
}

/// An event in the events DLQ, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadEvent {
    pub message_id: String,
    /// The event's id and name, when the body is an event envelope.
    pub event_id: Option<String>,
    pub name: Option<String>,
    /// How often SQS handed the message out, as SQS reports it.
    pub receive_count: Option<u32>,
    /// Why it failed, when the message carries a reason attribute.
    pub failure: Option<String>,
    /// When it was first sent (RFC 3339).
    pub sent_at: Option<String>,
}

/// Which parked Slack messages a redrive moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this channel (`#alerts` or an id).
    pub channel: Option<String>,
    /// Only this workspace (team id, or `default`).
    pub team: Option<String>,
}

impl Filter {
    /// Whether a message of FIFO group `<team>:<channel>` is wanted.
    pub fn matches(&self, group: &str) -> bool {
        let (team, channel) = group.split_once(':').unwrap_or((group, ""));
        self.team.as_deref().is_none_or(|t| t == team)
            && self.channel.as_deref().is_none_or(|c| c == channel)
    }

    /// Whether a paused item (`chan#<group>` or `team#<team>`) is lifted by this redrive: a
    /// channel when its group matches, a workspace only when no channel is named.
    pub fn lifts(&self, pk: &str) -> bool {
        if let Some(group) = pk.strip_prefix("chan#") {
            self.matches(group)
        } else if let Some(team) = pk.strip_prefix("team#") {
            self.channel.is_none() && self.team.as_deref().is_none_or(|f| f == team)
        } else {
            false
        }
    }

    pub fn is_all(&self) -> bool {
        self.channel.is_none() && self.team.is_none()
    }
}

/// Every message in a DLQ, each held for a moment while read and released again.
async fn read_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<Message>> {
    let mut out = Vec::new();
    let mut held = Vec::new();
    let result = async {
        loop {
            let got = receive_batch(sqs, url, 30).await?;
            if got.is_empty() {
                return Ok(());
            }
            for m in got {
                if let Some(h) = m.receipt_handle() {
                    held.push(h.to_owned());
                }
                out.push(m);
            }
        }
    }
    .await;
    release(sqs, url, &held).await;
    result.map(|()| out)
}

fn attr(m: &Message, name: &str) -> Option<String> {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}

fn system_attr(m: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    m.attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

/// Every message parked in the Slack DLQ, in each channel's order.
pub async fn list(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> Result<Vec<Parked>> {
    Ok(read_all(sqs, dlq_url)
        .await?
        .iter()
        .map(|m| Parked {
            message_id: m.message_id().unwrap_or_default().to_owned(),
            group: group_of(m),
            reason: attr(m, park_attr::REASON).unwrap_or_default(),
            event_id: attr(m, park_attr::EVENT_ID).unwrap_or_default(),
            pipeline_id: attr(m, park_attr::PIPELINE_ID).unwrap_or_default(),
            channel: attr(m, park_attr::CHANNEL).unwrap_or_default(),
        })
        .collect())
}

/// Every event in the events DLQ.
pub async fn list_events(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> Result<Vec<DeadEvent>> {
    Ok(read_all(sqs, dlq_url)
        .await?
        .iter()
        .map(dead_event)
        .collect())
}

fn dead_event(m: &Message) -> DeadEvent {
    let body: Option<Value> = m.body().and_then(|b| serde_json::from_str(b).ok());
    // An events-queue message is an envelope; a warehouse message carries events
    // (`{"events": [{"event": {...}}]}`), of which a parked one holds one.
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| {
                b.get(name)
                    .or_else(|| b.pointer(&format!("/events/0/event/{name}")))
            })
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    DeadEvent {
        message_id: m.message_id().unwrap_or_default().to_owned(),
        event_id: field("id"),
        name: field("name"),
        receive_count: system_attr(m, MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok()),
        failure: attr(m, park_attr::REASON),
        sent_at: system_attr(m, MessageSystemAttributeName::SentTimestamp)
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|ms| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            })
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
    }
}

/// What a redrive did.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Redriven {
    pub moved: usize,
    /// The lifted pauses' keys (`chan#…`, `team#…`).
    pub resumed: Vec<String>,
    /// True when AWS's StartMessageMoveTask moved the messages (it reports no count).
    pub move_task: bool,
}

/// How a redrive runs.
pub struct How<'a> {
    /// Whether a whole-queue redrive may use StartMessageMoveTask (not in the emulator).
    pub move_task: bool,
    /// Called once per message moved back.
    pub moved: &'a mut dyn FnMut(&Message),
}

/// Lifts the matching pauses, then moves the matching parked Slack messages back to the
/// Slack queue (trying StartMessageMoveTask for a whole-queue redrive).
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    channels: &Channels,
    dlq_url: &str,
    queue_url: &str,
    filter: &Filter,
) -> Result<Redriven> {
    let mut none = |_: &Message| {};
    redrive_with(
        sqs,
        channels,
        dlq_url,
        queue_url,
        filter,
        How {
            move_task: true,
            moved: &mut none,
        },
    )
    .await
}

/// [`redrive`], as `how` says.
pub async fn redrive_with(
    sqs: &aws_sdk_sqs::Client,
    channels: &Channels,
    dlq_url: &str,
    queue_url: &str,
    filter: &Filter,
    how: How<'_>,
) -> Result<Redriven> {
    let mut result = Redriven::default();
    for paused in channels.paused().await? {
        if filter.lifts(&paused.pk) && channels.resume(&paused.pk).await? {
            result.resumed.push(paused.pk);
        }
    }
    if filter.is_all() && how.move_task && start_move_task(sqs, dlq_url, queue_url).await {
        result.move_task = true;
        return Ok(result);
    }
    result.moved =
        move_back_reporting(sqs, dlq_url, queue_url, |g| filter.matches(g), how.moved).await?;
    Ok(result)
}

/// Moves every event in the events DLQ back to the events queue.
pub async fn redrive_events(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    how: How<'_>,
) -> Result<Redriven> {
    if how.move_task && start_move_task(sqs, dlq_url, queue_url).await {
        return Ok(Redriven {
            move_task: true,
            ..Redriven::default()
        });
    }
    let moved = move_back_reporting(sqs, dlq_url, queue_url, |_| true, how.moved).await?;
    Ok(Redriven {
        moved,
        ..Redriven::default()
    })
}

/// StartMessageMoveTask from the DLQ back to its source; false where it is unavailable.
async fn start_move_task(sqs: &aws_sdk_sqs::Client, dlq_url: &str, queue_url: &str) -> bool {
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
    let (Some(source), Some(destination)) = (arn(dlq_url).await, arn(queue_url).await) else {
        return false;
    };
    match sqs
        .start_message_move_task()
        .source_arn(source)
        .destination_arn(destination)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::info!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "StartMessageMoveTask unavailable; moving messages one by one");
            false
        }
    }
}

/// Messages waiting in a queue (visible, not in flight).
async fn visible(stack: &Stack, url: &str) -> std::result::Result<u64, CliError> {
    let out = stack
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| reach(&stack.target, "reading the DLQ's depth", e))?;
    Ok(out
        .attributes
        .and_then(|a| {
            a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0))
}

/// A parked Slack message as one line.
pub fn parked_line(p: &Parked) -> String {
    format!(
        "{}  event {}  pipeline {}  {}",
        display_name(&format!("chan#{}", p.group)),
        p.event_id,
        p.pipeline_id,
        p.reason
    )
}

/// An event in the events DLQ as one line.
pub fn dead_event_line(e: &DeadEvent) -> String {
    let mut line = format!(
        "event {}  {}",
        e.event_id.as_deref().unwrap_or("(not an event envelope)"),
        e.name.as_deref().unwrap_or("?"),
    );
    if let Some(n) = e.receive_count {
        line.push_str(&format!(
            "  received {n} time{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Some(t) = &e.sent_at {
        line.push_str(&format!("  sent {t}"));
    }
    if let Some(f) = &e.failure {
        line.push_str(&format!("  {f}"));
    }
    line
}

/// `dlq list [--queue Q]`: both DLQs unless one is named.
pub async fn cmd_list(
    stack: &Stack,
    queue: Option<Queue>,
    out: &mut dyn Write,
    as_json: bool,
) -> std::result::Result<(), CliError> {
    let sqs = stack.sqs();
    let mut doc = serde_json::Map::new();
    for q in [
        Queue::Slack,
        Queue::Destinations,
        Queue::Events,
        Queue::Warehouse,
    ] {
        if queue.is_some_and(|only| only != q) {
            continue;
        }
        let url = stack.output(q.outputs().0)?;
        let (items, lines): (Value, Vec<String>) = match q {
            Queue::Slack | Queue::Destinations => {
                let parked = list(&sqs, url).await.map_err(|e| stack.explain(e))?;
                (json!(parked), parked.iter().map(parked_line).collect())
            }
            Queue::Events | Queue::Warehouse => {
                let dead = list_events(&sqs, url).await.map_err(|e| stack.explain(e))?;
                (json!(dead), dead.iter().map(dead_event_line).collect())
            }
        };
        if !as_json {
            if lines.is_empty() {
                writeln!(out, "{} DLQ: nothing parked", q.as_str()).ok();
            } else {
                writeln!(out, "{} DLQ: {} parked", q.as_str(), lines.len()).ok();
                for l in &lines {
                    writeln!(out, "  {l}").ok();
                }
            }
        }
        doc.insert(q.as_str().to_owned(), items);
    }
    if as_json {
        writeln!(out, "{}", Value::Object(doc)).ok();
    }
    Ok(())
}

/// `dlq redrive [--queue Q] [--channel C] [--team T]`, with a progress bar on a terminal
/// and plain lines otherwise (on stderr).
pub async fn cmd_redrive(
    stack: &Stack,
    queue: Queue,
    filter: &Filter,
    out: &mut dyn Write,
    as_json: bool,
) -> std::result::Result<(), CliError> {
    if !matches!(queue, Queue::Slack | Queue::Destinations) && !filter.is_all() {
        return Err(CliError::Usage(
            "--channel and --team pick Slack messages; the events DLQ is redriven whole (drop them, or use --queue slack)".into(),
        ));
    }
    let (dlq_key, queue_key) = queue.outputs();
    let (dlq_url, queue_url) = (stack.output(dlq_key)?, stack.output(queue_key)?);
    let sqs = stack.sqs();
    let total = match queue {
        Queue::Slack | Queue::Destinations if !filter.is_all() => list(&sqs, dlq_url)
            .await
            .map_err(|e| stack.explain(e))?
            .iter()
            .filter(|p| filter.matches(&p.group))
            .count() as u64,
        _ => visible(stack, dlq_url).await?,
    };
    let progress = Progress::new("moved", total, "messages");
    let mut tick = |_: &Message| progress.inc(1);
    let how = How {
        // The emulator lacks it (and answers 500 after the SDK's retries).
        move_task: !stack.target.is_local(),
        moved: &mut tick,
    };
    let result = match queue {
        Queue::Slack | Queue::Destinations => {
            redrive_with(
                &sqs,
                &Channels {
                    client: stack.dynamo(),
                    table: stack.output("ChannelsTableName")?.to_owned(),
                },
                dlq_url,
                queue_url,
                filter,
                how,
            )
            .await
        }
        Queue::Events | Queue::Warehouse => redrive_events(&sqs, dlq_url, queue_url, how).await,
    };
    progress.finish();
    let r = result.map_err(|e| stack.explain(e))?;
    let resumed: Vec<String> = r.resumed.iter().map(|pk| display_name(pk)).collect();
    if as_json {
        writeln!(
            out,
            "{}",
            json!({
                "queue": queue.as_str(),
                "moved": r.moved,
                "move_task": r.move_task,
                "resumed": resumed,
                "resumed_keys": r.resumed,
            })
        )
        .ok();
        return Ok(());
    }
    for name in &resumed {
        writeln!(out, "resumed {name}").ok();
    }
    if r.move_task {
        writeln!(
            out,
            "started a message move task from the {} DLQ to its queue",
            queue.as_str()
        )
        .ok();
    } else {
        writeln!(
            out,
            "moved {} message(s) back to the {} queue",
            r.moved,
            queue.as_str()
        )
        .ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(channel: Option<&str>, team: Option<&str>) -> Filter {
        Filter {
            channel: channel.map(str::to_owned),
            team: team.map(str::to_owned),
        }
    }

    #[test]
    fn a_filter_picks_by_channel_and_workspace() {
        assert!(filter(None, None).matches("default:#a"));
        assert!(filter(Some("#a"), None).matches("default:#a"));
        assert!(!filter(Some("#a"), None).matches("default:#b"));
        assert!(filter(None, Some("T1")).matches("T1:#b"));
        assert!(!filter(Some("#a"), Some("T1")).matches("default:#a"));
    }

    #[test]
    fn a_channel_redrive_lifts_only_its_channel_and_a_workspace_redrive_the_workspace_too() {
        let chan = filter(Some("#a"), None);
        assert!(chan.lifts("chan#default:#a"));
        assert!(!chan.lifts("chan#default:#b"));
        assert!(!chan.lifts("team#default"), "a channel names no workspace");
        let team = filter(None, Some("T1"));
        assert!(team.lifts("team#T1") && team.lifts("chan#T1:#x"));
        assert!(!team.lifts("team#T2"));
        assert!(!filter(None, None).lifts("something-else"));
    }

    #[test]
    fn the_queue_is_named_slack_or_events() {
        assert_eq!("slack".parse::<Queue>().ok(), Some(Queue::Slack));
        assert_eq!("events".parse::<Queue>().ok(), Some(Queue::Events));
        assert!("fifo"
            .parse::<Queue>()
            .unwrap_err()
            .to_string()
            .contains("`slack`"));
    }

    #[test]
    fn an_event_in_the_dlq_shows_its_id_name_and_receive_count() {
        let m = Message::builder()
            .message_id("m1")
            .body(r#"{"id":"tests:e1","name":"feature.used","data":{}}"#)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "6")
            .attributes(MessageSystemAttributeName::SentTimestamp, "0")
            .build();
        let e = dead_event(&m);
        assert_eq!(e.event_id.as_deref(), Some("tests:e1"));
        assert_eq!(e.receive_count, Some(6));
        assert_eq!(
            dead_event_line(&e),
            "event tests:e1  feature.used  received 6 times  sent 1970-01-01T00:00:00Z"
        );
        let junk = dead_event(&Message::builder().message_id("m2").body("not json").build());
        assert_eq!(dead_event_line(&junk), "event (not an event envelope)  ?");
    }

    #[test]
    fn a_parked_message_names_its_channel_as_operators_do() {
        let p = Parked {
            message_id: "m".into(),
            group: "default:#secret".into(),
            reason: "not_in_channel".into(),
            event_id: "tests:e1".into(),
            pipeline_id: "p".into(),
            channel: "#secret".into(),
        };
        assert_eq!(
            parked_line(&p),
            "#secret  event tests:e1  pipeline p  not_in_channel"
        );
    }
}
