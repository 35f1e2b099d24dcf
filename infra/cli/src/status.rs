//! `ingestlayer status`: the queues (depth and the age of the oldest message; one the stack
//! lacks, deployed from an older template, named with what to do), the
//! paused channels and workspaces with their hints and the command that fixes them, and
//! each channel's last failed post.
//!
//! The oldest message's age comes from CloudWatch's `ApproximateAgeOfOldestMessage` (SQS
//! publishes it every minute); nothing here receives from a queue, which would count as a
//! delivery attempt and could push an events-queue message to its DLQ. The local emulator
//! publishes no SQS metrics, so there the age is reported as not available and the rest of
//! the status is unaffected.

use std::collections::HashMap;
use std::io::Write;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_sqs::types::QueueAttributeName;
use ingestlayer::delivery::channel_state::{Channels, LastError, PausedEntry};
use serde::Serialize;
use serde_json::json;

use crate::error::CliError;
use crate::stack::{reach, Stack, Target};

/// The queues: how operators name them and their stack outputs ("slack drains": busy
/// channels' drain tickets, one group per channel with a backlog).
pub const QUEUES: [(&str, &str); 7] = [
    ("events", "EventsQueueUrl"),
    ("events DLQ", "EventsDLQUrl"),
    ("slack", "SlackQueueUrl"),
    ("slack drains", "SlackDrainQueueUrl"),
    ("slack DLQ", "SlackDLQUrl"),
    ("warehouse", "WarehouseQueueUrl"),
    ("warehouse DLQ", "WarehouseDLQUrl"),
];

/// How far back CloudWatch is asked for the age.
const AGE_WINDOW_SECS: i64 = 15 * 60;

/// The age of a queue's oldest message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Age {
    /// CloudWatch's latest datapoint: `seconds` old as of `as_of` (RFC 3339).
    Known { seconds: u64, as_of: String },
    /// The queue is empty: nothing is waiting.
    Empty,
    /// No answer; `why` says so in words.
    Unavailable { why: String },
}

impl Age {
    /// From CloudWatch's datapoint (if any), the queue's depth and the target.
    pub fn decide(datapoint: Option<(f64, String)>, depth: u64, target: &Target) -> Self {
        match datapoint {
            _ if depth == 0 => Age::Empty,
            Some((v, as_of)) => Age::Known {
                seconds: v.max(0.0).round() as u64,
                as_of,
            },
            None if target.is_local() => Age::Unavailable {
                why:
                    "not available from this emulator (it publishes no CloudWatch metrics for SQS)"
                        .into(),
            },
            None => Age::Unavailable {
                why: "no CloudWatch datapoint in the last 15 minutes".into(),
            },
        }
    }

    fn text(&self) -> String {
        match self {
            Age::Known { seconds, as_of } => format!("{} (as of {as_of})", human(*seconds)),
            Age::Empty => "-".into(),
            Age::Unavailable { why } => format!("age: {why}"),
        }
    }
}

/// A duration in seconds as operators read it: `45 s`, `12 min`, `3 h 5 min`.
pub fn human(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    pub queue: &'static str,
    pub url: String,
    pub visible: u64,
    pub in_flight: u64,
    /// Visible and in flight.
    pub depth: u64,
    pub oldest: Age,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PausedStatus {
    /// `#growth`, `workspace T0123`, …
    pub name: String,
    /// `chan#…` or `team#…`.
    pub key: String,
    pub error: String,
    pub hint: String,
    pub since: String,
    /// The command that resumes it once the hint is followed.
    pub fix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorStatus {
    pub channel: String,
    pub key: String,
    pub error: String,
    pub at: String,
}

/// `ingestlayer dlq redrive …` for a paused item, with the target's flags.
pub fn fix_command(pk: &str, target: &Target) -> String {
    let base = format!("ingestlayer {} dlq redrive", target.flags());
    if let Some(group) = pk.strip_prefix("chan#") {
        let (team, channel) = group.split_once(':').unwrap_or(("", group));
        let mut cmd = format!("{base} --channel '{channel}'");
        if !team.is_empty() && team != ingestlayer::ids::DEFAULT_TEAM {
            cmd.push_str(&format!(" --team {team}"));
        }
        cmd
    } else if let Some(team) = pk.strip_prefix("team#") {
        format!("{base} --team {team}")
    } else {
        base
    }
}

fn paused_status(p: &PausedEntry, target: &Target) -> PausedStatus {
    PausedStatus {
        name: p.name(),
        key: p.pk.clone(),
        error: p.pause.error.clone(),
        hint: p.pause.hint.clone(),
        since: p.since.clone(),
        fix: fix_command(&p.pk, target),
    }
}

fn error_status(e: &LastError) -> ErrorStatus {
    ErrorStatus {
        channel: e.name(),
        key: e.pk.clone(),
        error: e.error.clone(),
        at: e.at.clone(),
    }
}

/// A queue of [`QUEUES`] the stack has no output for: it was deployed from a template
/// older than this command line (the drain queue came later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingQueue {
    pub queue: &'static str,
    pub output: &'static str,
}

/// The whole status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub queues: Vec<QueueStatus>,
    /// Queues this version knows and the stack lacks; the others are still reported.
    pub missing: Vec<MissingQueue>,
    pub paused: Vec<PausedStatus>,
    pub last_errors: Vec<ErrorStatus>,
}

/// Reads the status of the stack.
pub async fn read(stack: &Stack) -> Result<Status, CliError> {
    let sqs = stack.sqs();
    let mut queues = Vec::new();
    let mut missing = Vec::new();
    for (name, output) in QUEUES {
        let Some(url) = stack.outputs().get(output).cloned() else {
            missing.push(MissingQueue {
                queue: name,
                output,
            });
            continue;
        };
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| reach(&stack.target, &format!("reading the {name} queue"), e))?
            .attributes
            .unwrap_or_default();
        let count = |a: QueueAttributeName| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let visible = count(QueueAttributeName::ApproximateNumberOfMessages);
        let in_flight = count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        queues.push(QueueStatus {
            queue: name,
            url,
            visible,
            in_flight,
            depth: visible + in_flight,
            oldest: Age::Empty,
        });
    }
    let ages = oldest_ages(stack, &queues).await;
    for (q, datapoint) in queues.iter_mut().zip(ages) {
        q.oldest = match datapoint {
            Ok(d) => Age::decide(d, q.depth, &stack.target),
            Err(why) if q.depth > 0 => Age::Unavailable { why },
            Err(_) => Age::Empty,
        };
    }
    let channels = Channels {
        client: stack.dynamo(),
        table: stack.output("ChannelsTableName")?.to_owned(),
    };
    let paused = channels
        .paused()
        .await
        .map_err(|e| stack.explain(e))?
        .iter()
        .map(|p| paused_status(p, &stack.target))
        .collect();
    let last_errors = channels
        .last_errors()
        .await
        .map_err(|e| stack.explain(e))?
        .iter()
        .map(error_status)
        .collect();
    Ok(Status {
        queues,
        missing,
        paused,
        last_errors,
    })
}

/// The queue's name in CloudWatch's `QueueName` dimension: the URL's last segment.
pub fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// CloudWatch's latest `ApproximateAgeOfOldestMessage` per queue (value, as of), one
/// GetMetricData call for all four; for each, when the call fails, why the age is not
/// available (no CloudWatch, no permission): a line of the status report, not a failure of
/// the command.
async fn oldest_ages(
    stack: &Stack,
    queues: &[QueueStatus],
) -> Vec<Result<Option<(f64, String)>, String>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut request = stack
        .cloudwatch()
        .get_metric_data()
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            now - AGE_WINDOW_SECS,
        ))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now))
        .scan_by(ScanBy::TimestampDescending);
    for (i, q) in queues.iter().enumerate() {
        let query = Dimension::builder()
            .name("QueueName")
            .value(queue_name(&q.url))
            .build();
        let stat = MetricStat::builder()
            .metric(
                Metric::builder()
                    .namespace("AWS/SQS")
                    .metric_name("ApproximateAgeOfOldestMessage")
                    .dimensions(query)
                    .build(),
            )
            .period(60)
            .stat("Maximum")
            .build();
        request = request.metric_data_queries(
            MetricDataQuery::builder()
                .id(format!("q{i}"))
                .metric_stat(stat)
                .return_data(true)
                .build(),
        );
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => {
            // moto's CloudWatch does not answer the SDK's GetMetricData (nor has it SQS's
            // metrics to give): under the emulator any failure means "not available here".
            let why = match e.as_service_error() {
                _ if stack.target.is_local() => {
                    "not available from this emulator (its CloudWatch does not answer GetMetricData)"
                        .to_owned()
                }
                Some(s) => format!(
                    "CloudWatch refused the query ({})",
                    aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(s).unwrap_or("error")
                ),
                None => "CloudWatch could not be reached".to_owned(),
            };
            return queues.iter().map(|_| Err(why.clone())).collect();
        }
    };
    let mut by_id: HashMap<String, (f64, String)> = HashMap::new();
    for r in answer.metric_data_results() {
        let (Some(id), Some(v), Some(t)) = (r.id(), r.values().first(), r.timestamps().first())
        else {
            continue;
        };
        let as_of = time::OffsetDateTime::from_unix_timestamp(t.secs())
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        by_id.insert(id.to_owned(), (*v, as_of));
    }
    (0..queues.len())
        .map(|i| Ok(by_id.remove(&format!("q{i}"))))
        .collect()
}

/// `ingestlayer status`.
pub async fn cmd_status(stack: &Stack, out: &mut dyn Write, as_json: bool) -> Result<(), CliError> {
    let status = read(stack).await?;
    if as_json {
        writeln!(out, "{}", json!(status)).ok();
    } else {
        write!(out, "{}", text(&status)).ok();
    }
    Ok(())
}

/// The status as text.
pub fn text(s: &Status) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "{:<12}  {:>6}  {:>7}  {:>9}  oldest\n",
        "queue", "depth", "visible", "in flight"
    ));
    for q in &s.queues {
        t.push_str(&format!(
            "{:<12}  {:>6}  {:>7}  {:>9}  {}\n",
            q.queue,
            q.depth,
            q.visible,
            q.in_flight,
            q.oldest.text()
        ));
    }
    for m in &s.missing {
        t.push_str(&format!(
            "{:<12}  not in this stack (no output {}): deploy this version's template.yaml\n",
            m.queue, m.output
        ));
    }
    t.push('\n');
    if s.paused.is_empty() {
        t.push_str("paused: nothing\n");
    } else {
        t.push_str("paused:\n");
        for p in &s.paused {
            t.push_str(&format!(
                "  {}  since {}  {}: {}\n    then: {}\n",
                p.name, p.since, p.error, p.hint, p.fix
            ));
        }
    }
    if s.last_errors.is_empty() {
        t.push_str("last error per channel: none recorded\n");
    } else {
        t.push_str("last error per channel:\n");
        for e in &s.last_errors {
            t.push_str(&format!("  {}  {}  {}\n", e.channel, e.at, e.error));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Target {
        Target::Local {
            name: "ingestlayer-dev".into(),
            endpoint: "http://127.0.0.1:4566".into(),
        }
    }

    fn deployed() -> Target {
        Target::Deployed {
            name: "prod".into(),
            region: None,
        }
    }

    #[test]
    fn the_age_is_cloudwatchs_datapoint_nothing_for_an_empty_queue_and_said_plainly_when_missing() {
        assert_eq!(
            Age::decide(Some((61.4, "t".into())), 3, &deployed()),
            Age::Known {
                seconds: 61,
                as_of: "t".into()
            }
        );
        assert_eq!(
            Age::decide(Some((5.0, "t".into())), 0, &deployed()),
            Age::Empty
        );
        assert_eq!(Age::decide(None, 0, &local()), Age::Empty);
        assert_eq!(
            Age::decide(None, 2, &local()).text(),
            "age: not available from this emulator (it publishes no CloudWatch metrics for SQS)"
        );
        assert!(Age::decide(None, 2, &deployed())
            .text()
            .contains("no CloudWatch datapoint"));
    }

    #[test]
    fn a_pause_is_fixed_by_a_redrive_of_its_channel_or_workspace_on_the_same_stack() {
        assert_eq!(
            fix_command("chan#default:#secret", &local()),
            "ingestlayer --local dlq redrive --channel '#secret'"
        );
        assert_eq!(
            fix_command("chan#T0123:C0456", &deployed()),
            "ingestlayer --stack prod dlq redrive --channel 'C0456' --team T0123"
        );
        assert_eq!(
            fix_command("team#T0123", &deployed()),
            "ingestlayer --stack prod dlq redrive --team T0123"
        );
    }

    #[test]
    fn durations_and_queue_names_read_as_operators_expect() {
        assert_eq!(human(45), "45 s");
        assert_eq!(human(600), "10 min");
        assert_eq!(human(3 * 3600 + 300), "3 h 5 min");
        assert_eq!(
            queue_name("http://127.0.0.1:4566/123456789012/dev-slack.fifo"),
            "dev-slack.fifo"
        );
    }

    #[test]
    fn the_text_shows_queues_pauses_with_their_fix_and_last_errors() {
        let s = Status {
            queues: vec![QueueStatus {
                queue: "slack DLQ",
                url: "u".into(),
                visible: 2,
                in_flight: 0,
                depth: 2,
                oldest: Age::decide(None, 2, &local()),
            }],
            missing: vec![MissingQueue {
                queue: "slack drains",
                output: "SlackDrainQueueUrl",
            }],
            paused: vec![PausedStatus {
                name: "#secret".into(),
                key: "chan#default:#secret".into(),
                error: "not_in_channel".into(),
                hint: "invite the app to #secret".into(),
                since: "2025-01-01T00:00:00Z".into(),
                fix: fix_command("chan#default:#secret", &local()),
            }],
            last_errors: vec![],
        };
        let t = text(&s);
        assert!(
            t.contains(
                "slack DLQ          2        2          0  age: not available from this emulator"
            ),
            "{t}"
        );
        assert!(t.contains("#secret  since 2025-01-01T00:00:00Z  not_in_channel: invite the app to #secret\n    then: ingestlayer --local dlq redrive --channel '#secret'"), "{t}");
        assert!(t.contains("last error per channel: none recorded"), "{t}");
        assert!(
            t.contains("slack drains  not in this stack (no output SlackDrainQueueUrl): deploy this version's template.yaml\n"),
            "{t}"
        );
    }
}
