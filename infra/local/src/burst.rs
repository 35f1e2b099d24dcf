//! Bursts into Slack channels, as the functions carry them (`ingestlayer-bench --burst`):
//! the ingest, pipeline and slack-delivery handlers against the emulator and a Slack
//! stand-in that enforces Slack's 1 post per second per channel. Delivery runs as Lambda runs
//! it for the FIFO queue: several invocations at once (template.yaml's
//! `SlackDeliveryConcurrency`, the Slack event source's `MaximumConcurrency`),
//! each with one batch, never two batches of one group at a time.
//!
//! - [`one_channel`]: N `feature.used` events in a few batches, all to `#alerts`: when the
//!   last one became readable after the last was accepted, in how many posts, the rate
//!   while a backlog existed, the most posts in any second, and the AWS requests per event.
//! - [`many_channels`]: C channels each given a burst of M messages at once, straight into
//!   the Slack queue: how long until every channel has all of its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::PoisonError;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use ingestlayer::aws::sqs::{send_all, Outgoing};
use ingestlayer::delivery::message::Delivery;
use ingestlayer::ids::{ChannelRef, TeamId, DEFAULT_TEAM};
use ingestlayer::slack::block_kit::RenderedMessage;
use serde_json::{json, Value};
use slack_standin::{PostedMessage, Standin, StandinConfig};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::requests::{operation, BenchStack, Recorder};
use crate::runner::{pump_delivery_from, pump_pipeline, QueueFeed};

/// Concurrent pipeline invocations.
const PIPELINE_CONCURRENCY: usize = 2;
/// How long a consumer that found nothing waits before asking again. Lambda's pollers
/// long-poll; here every empty receive is a request to the one emulator that also serves
/// the functions' own requests, so idle consumers must not flood it.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long the drain consumers long-poll an empty drain queue, as Lambda's pollers do
/// (they wait 20 s; shorter here, so a run ends sooner after its last post).
const DRAIN_POLL_SECONDS: i32 = 5;

/// What one burst measured.
#[derive(Debug, Default)]
pub struct Report {
    pub events: usize,
    /// Distinct events found in the posts (every one of them, when the run ended).
    pub readable: usize,
    /// Events found in more than one post.
    pub duplicates: usize,
    /// The first few of them, to look up with `ingestlayer explain` or in the logs.
    pub duplicated: Vec<String>,
    pub posts: usize,
    /// From the last event accepted to the post that made the last one readable.
    pub readable_after: Duration,
    /// From the first post of the burst to its last.
    pub posting: Duration,
    /// Most posts to one channel within any 1-second window.
    pub most_in_a_second: usize,
    /// The time between consecutive posts to one channel, shortest first.
    pub gaps: Vec<Duration>,
    /// 429s the stand-in answered.
    pub rate_limited: usize,
    /// AWS requests from the first event sent until the last was readable, by operation.
    pub requests: Vec<(String, usize)>,
    /// slack-delivery invocations at once (template.yaml's `SlackDeliveryConcurrency`).
    pub concurrency: usize,
    /// slack-delivery invocations at once from the drain queue (`SlackDrainConcurrency`).
    pub drain_concurrency: usize,
    /// Per channel ([`many_channels`]), shortest first: from the bursts queued until a
    /// delivery invocation took up the channel's first message (waiting for one is sharing
    /// the function's concurrency and, here, the one emulator).
    pub waited: Vec<Duration>,
    /// Per channel, shortest first: from its first message taken up until all of its own
    /// were posted (what the channel's own pace, backlog and drain took).
    pub served: Vec<Duration>,
    /// One channel's burst ([`one_channel`]): each post in order, as seconds from the last
    /// event accepted (negative: before it) and how many events it carried.
    pub timeline: Vec<(f64, usize)>,
}

impl Report {
    /// The gap between consecutive posts to a channel at quantile `q` (0.5: the median).
    pub fn gap_at(&self, q: f64) -> Duration {
        quantile(&self.gaps, q)
    }

    /// [`Report::waited`] at quantile `q`.
    pub fn waited_at(&self, q: f64) -> Duration {
        quantile(&self.waited, q)
    }

    /// [`Report::served`] at quantile `q`.
    pub fn served_at(&self, q: f64) -> Duration {
        quantile(&self.served, q)
    }

    pub fn total_requests(&self) -> usize {
        self.requests.iter().map(|(_, n)| n).sum()
    }

    /// Posts per second while the backlog lasted (between the first and the last post).
    pub fn posts_per_second(&self) -> f64 {
        if self.posts < 2 {
            return 0.0;
        }
        (self.posts - 1) as f64 / self.posting.as_secs_f64()
    }
}

/// The value at quantile `q` (0.5: the median, 1.0: the largest) of `sorted`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    sorted
        .get(((last as f64) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// `events` events (all taken by the example pipeline) in `batches` equal batches to one
/// channel; `backlog`: with busy channels' backlogs, as deployed (without: each post carries
/// at most one queue batch, as before them).
pub async fn one_channel(
    endpoint: &str,
    events: usize,
    batches: usize,
    backlog: bool,
) -> Result<Report> {
    let stack = BenchStack::new(
        endpoint,
        false,
        StandinConfig::default(),
        "#alerts",
        backlog,
    )
    .await?;
    // Warm caches (API key, pipelines, secrets, the bot's channel membership) as a running
    // stack has them, then let the channel's slot pass.
    stack.post(&[event(0)]).await?;
    let warm = run_until(&stack, |posted| !posted.is_empty(), Duration::from_secs(60)).await;
    warm?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = stack.standin.messages().len();
    let requests_before = stack.standin.requests().len();

    let recorder = Recorder::new(endpoint);
    recorder.start().await?;
    let per_batch = events.div_ceil(batches.max(1));
    let all: Vec<Value> = (1..=events).map(event).collect();
    let done = AtomicBool::new(false);
    let sender = async {
        for chunk in all.chunks(per_batch) {
            stack.post(chunk).await?;
        }
        Ok::<Instant, Error>(Instant::now())
    };
    let workers = workers(&stack, &done, None);
    let watcher = async {
        let start = Instant::now();
        let mut seen = Seen::after(before);
        loop {
            if seen.poll(&stack.standin) >= events {
                done.store(true, Ordering::SeqCst);
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(900) {
                done.store(true, Ordering::SeqCst);
                return Err(Error::invalid(
                    "the burst was not readable within 15 minutes",
                    None,
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (accepted, (), watched) = tokio::join!(sender, workers, watcher);
    let last_accepted = accepted?;
    watched?;
    let recording = recorder.stop().await?;
    let posts: Vec<PostedMessage> = stack.standin.messages()[before..].to_vec();
    let mut report = measure(&posts, events);
    report.readable_after = last_readable(&posts).saturating_duration_since(last_accepted);
    report.timeline = posts
        .iter()
        .map(|p| {
            let secs = p.at.saturating_duration_since(last_accepted).as_secs_f64()
                - last_accepted.saturating_duration_since(p.at).as_secs_f64();
            (secs, ids_of(p).len())
        })
        .collect();
    report.rate_limited = stack.standin.requests()[requests_before..]
        .iter()
        .filter(|r| r.status == 429)
        .count();
    report.requests = by_operation(&recording);
    Ok(report)
}

/// `channels` channels, each given `each` messages at once in the Slack queue: how long
/// until every message is posted, and the posts.
pub async fn many_channels(
    endpoint: &str,
    channels: usize,
    each: usize,
    backlog: bool,
) -> Result<Report> {
    let stack = BenchStack::new(
        endpoint,
        false,
        StandinConfig::default(),
        "#alerts",
        backlog,
    )
    .await?;
    let mut messages = Vec::new();
    for c in 0..channels {
        let channel = format!("#burst-{c:03}");
        for i in 0..each {
            messages.push(queued_delivery(
                &channel,
                &format!("c{c:03}-e{i:03}-{}", ulid::Ulid::new()),
                &format!("feature.used: export by u_{i} in {channel}"),
            )?);
        }
    }
    let requests_before = stack.standin.requests().len();
    let start = Instant::now();
    for (i, sent) in send_all(&stack.delivery.sqs, &stack.res.slack_queue_url, &messages)
        .await
        .into_iter()
        .enumerate()
    {
        sent.map_err(|e| Error::invalid(format!("queueing message {i}"), Some(e.into())))?;
    }
    let queued = Instant::now();
    let total = channels * each;
    let done = AtomicBool::new(false);
    let watcher = async {
        let mut seen = Seen::after(0);
        loop {
            if seen.poll(&stack.standin) >= total {
                done.store(true, Ordering::SeqCst);
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(900) {
                done.store(true, Ordering::SeqCst);
                return Err(Error::invalid(
                    "the bursts were not all posted within 15 minutes",
                    None,
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let taken_up = TakenUp::default();
    let ((), watched) = tokio::join!(workers(&stack, &done, Some(&taken_up)), watcher);
    watched?;
    let posts = stack.standin.messages();
    let mut report = measure(&posts, total);
    report.readable_after = last_readable(&posts).saturating_duration_since(queued);
    (report.waited, report.served) = taken_up.per_channel(queued, &posts);
    report.rate_limited = stack.standin.requests()[requests_before..]
        .iter()
        .filter(|r| r.status == 429)
        .count();
    report.concurrency = stack.delivery_concurrency;
    report.drain_concurrency = stack.drain_concurrency;
    Ok(report)
}

/// The pipeline and delivery consumers, as Lambda runs them, until `done`; each delivery
/// batch shown to `taken_up` when there is one.
async fn workers(stack: &BenchStack, done: &AtomicBool, taken_up: Option<&TakenUp>) {
    let (events, slack) = &stack.feeds;
    let pipeline = (0..PIPELINE_CONCURRENCY).map(|_| async {
        while !done.load(Ordering::SeqCst) {
            match pump_pipeline(events, &stack.pipeline).await {
                Ok(0) | Err(_) => tokio::time::sleep(IDLE_POLL).await,
                Ok(_) => {}
            }
        }
    });
    let delivery = (0..stack.delivery_concurrency).map(|_| async {
        while !done.load(Ordering::SeqCst) {
            let seen = |event: &SqsEvent| {
                if let Some(t) = taken_up {
                    t.note(event);
                }
            };
            match pump_delivery_from(&slack.messages, &stack.delivery, seen).await {
                Ok(0) | Err(_) => tokio::time::sleep(IDLE_POLL).await,
                Ok(_) => {}
            }
        }
    });
    // The drain queue's consumers: few, and long-polling as Lambda's pollers do, so an idle
    // one costs almost no requests.
    let drains = QueueFeed {
        wait_seconds: DRAIN_POLL_SECONDS,
        ..slack.drains.clone()
    };
    let drains = &drains;
    let drain = (0..stack.drain_concurrency).map(|_| async {
        while !done.load(Ordering::SeqCst) {
            if pump_delivery_from(drains, &stack.delivery, |_| ())
                .await
                .is_err()
            {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    });
    futures_util::future::join3(
        futures_util::future::join_all(pipeline),
        futures_util::future::join_all(delivery),
        futures_util::future::join_all(drain),
    )
    .await;
}

/// Runs the consumers until `posted` says so (for warming up).
async fn run_until(
    stack: &BenchStack,
    posted: impl Fn(&[PostedMessage]) -> bool,
    limit: Duration,
) -> Result<()> {
    let done = AtomicBool::new(false);
    let watcher = async {
        let start = Instant::now();
        while !posted(&stack.standin.messages()) {
            if start.elapsed() > limit {
                done.store(true, Ordering::SeqCst);
                return Err(Error::invalid("the warm-up event was never posted", None));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        done.store(true, Ordering::SeqCst);
        Ok(())
    };
    let ((), watched) = tokio::join!(workers(stack, &done, None), watcher);
    watched
}

fn event(i: usize) -> Value {
    json!({"name": "feature.used", "data": {"user_id": "u_42", "feature": "export", "count": i, "plan": "pro"}})
}

/// When a delivery invocation took up each channel's first message, by the channel's part of
/// the event ids (`c007` of `c007-e003-…`; drain tickets carry no event).
#[derive(Default)]
struct TakenUp(std::sync::Mutex<HashMap<String, Instant>>);

impl TakenUp {
    fn note(&self, event: &SqsEvent) {
        let now = Instant::now();
        let mut first = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for r in &event.records {
            let body = r.body.as_deref().unwrap_or_default();
            if let Ok(Value::Object(d)) = serde_json::from_str::<Value>(body) {
                if let Some(id) = d.get("event_id").and_then(Value::as_str) {
                    first.entry(channel_part(id).to_owned()).or_insert(now);
                }
            }
        }
    }

    /// Per channel, shortest first: how long after `queued` its first message was taken
    /// up, and how long after that its last event was posted in `posts`.
    fn per_channel(
        self,
        queued: Instant,
        posts: &[PostedMessage],
    ) -> (Vec<Duration>, Vec<Duration>) {
        let first = self.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut last: HashMap<String, Instant> = HashMap::new();
        for p in posts {
            for id in ids_of(p) {
                let at = last.entry(channel_part(&id).to_owned()).or_insert(p.at);
                *at = (*at).max(p.at);
            }
        }
        let (mut waited, mut served): (Vec<Duration>, Vec<Duration>) = first
            .iter()
            .filter_map(|(channel, taken)| {
                let done = last.get(channel)?;
                Some((
                    taken.saturating_duration_since(queued),
                    done.saturating_duration_since(*taken),
                ))
            })
            .unzip();
        waited.sort();
        served.sort();
        (waited, served)
    }
}

/// The channel part of a [`many_channels`] event id.
fn channel_part(event_id: &str) -> &str {
    event_id.split('-').next().unwrap_or(event_id)
}

/// The events found in the stand-in's posts so far, read as they come: each poll reads only
/// the posts accepted since the one before. (Reading every post ten times a second cloned
/// hundreds of digests under the stand-in's lock: the bench took most of a core from the
/// emulator with 300 channels, and the stand-in's answers waited.)
struct Seen {
    read: usize,
    ids: HashSet<String>,
}

impl Seen {
    /// Counting from the post after the first `posts`.
    fn after(posts: usize) -> Self {
        Self {
            read: posts,
            ids: HashSet::new(),
        }
    }

    /// Reads the posts accepted since the last poll; how many distinct events were seen.
    fn poll(&mut self, standin: &Standin) -> usize {
        let new = standin.messages_from(self.read);
        self.read += new.len();
        self.ids.extend(new.iter().flat_map(ids_of));
        self.ids.len()
    }
}

/// The event ids one post carries, a digest's included (its metadata lists them).
fn ids_of(m: &PostedMessage) -> Vec<String> {
    let payload = m
        .metadata
        .as_ref()
        .map(|m| m["event_payload"].clone())
        .unwrap_or(Value::Null);
    match payload["event_ids"].as_array() {
        Some(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        None => payload["event_id"]
            .as_str()
            .map(|s| vec![s.to_owned()])
            .unwrap_or_default(),
    }
}

fn last_readable(posts: &[PostedMessage]) -> Instant {
    posts
        .iter()
        .map(|p| p.at)
        .max()
        .unwrap_or_else(Instant::now)
}

/// A delivery as the pipeline queues it for Slack: `text` to `channel` of the default
/// workspace, paced at 1 post/s and digested from 3 on, its group the channel's.
pub fn queued_delivery(channel: &str, event_id: &str, text: &str) -> Result<Outgoing> {
    let team = TeamId::parse(DEFAULT_TEAM)
        .map_err(|e| Error::invalid("the default team", Some(e.into())))?;
    let channel =
        ChannelRef::parse(channel).map_err(|e| Error::invalid("a channel name", Some(e.into())))?;
    let d = Delivery {
        v: 1,
        event_id: event_id.to_owned(),
        event_name: "feature.used".into(),
        pipeline_id: "burst".into(),
        destination: 0,
        team,
        channel,
        message: RenderedMessage {
            text: text.to_owned(),
            blocks: Vec::new(),
            truncated: false,
        },
        min_interval_ms: 1000,
        digest_threshold: 3,
        received_ms: 0,
        link: None,
        thread_key: None,
        mention: None,
    };
    Ok(Outgoing {
        body: serde_json::to_string(&d)
            .map_err(|e| Error::invalid("a delivery", Some(e.into())))?,
        group_id: Some(d.group().as_str().to_owned()),
        dedup_id: Some(d.event_id.clone()),
        attributes: Default::default(),
    })
}

/// Posts, duplicates and pacing of a burst's posts.
fn measure(posts: &[PostedMessage], events: usize) -> Report {
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut duplicated = Vec::new();
    for id in posts.iter().flat_map(ids_of) {
        if !seen.contains(&id) {
            seen.insert(id);
        } else {
            duplicates += 1;
            if duplicated.len() < 5 {
                duplicated.push(id);
            }
        }
    }
    let mut most = 0;
    let mut gaps = Vec::new();
    let mut by_channel: std::collections::HashMap<&str, Vec<Instant>> = Default::default();
    for p in posts {
        by_channel.entry(p.channel.as_str()).or_default().push(p.at);
    }
    for times in by_channel.values_mut() {
        times.sort();
        gaps.extend(times.windows(2).map(|w| w[1].duration_since(w[0])));
        for (i, t) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            most = most.max(within);
        }
    }
    let first = posts.iter().map(|p| p.at).min();
    let last = posts.iter().map(|p| p.at).max();
    Report {
        events,
        readable: seen.len(),
        duplicates,
        duplicated,
        posts: posts.len(),
        posting: match (first, last) {
            (Some(a), Some(b)) => b.duration_since(a),
            _ => Duration::ZERO,
        },
        most_in_a_second: most,
        gaps: {
            gaps.sort();
            gaps
        },
        ..Report::default()
    }
}

fn by_operation(recording: &[Value]) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for entry in recording {
        *counts.entry(operation(entry)).or_default() += 1;
    }
    counts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    fn post(at: Instant, ids: &[&str]) -> PostedMessage {
        PostedMessage {
            channel: "burst".into(),
            channel_id: "C1".into(),
            ts: "1.0".into(),
            text: None,
            blocks: None,
            metadata: Some(json!({"event_type": "digest", "event_payload": {"event_ids": ids}})),
            token: "xoxb".into(),
            at,
            thread_ts: None,
            user: "U1".into(),
            edits: 0,
        }
    }

    fn batch(bodies: &[Value]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = bodies
            .iter()
            .map(|b| {
                let mut r = SqsMessage::default();
                r.body = Some(b.to_string());
                r
            })
            .collect();
        event
    }

    #[test]
    fn a_channel_waits_until_its_first_message_is_taken_up_and_is_served_until_its_last_is_posted()
    {
        let queued = Instant::now();
        let s = |ms: u64| queued + Duration::from_millis(ms);
        let taken_up = TakenUp::default();
        // Channel 0 is taken up at once; a drain ticket names no event and counts for none.
        *taken_up.0.lock().unwrap() = HashMap::from([("c000".to_owned(), s(0))]);
        taken_up.note(&batch(&[json!({"drain": "default:#burst-001"})]));
        taken_up.note(&batch(&[
            json!({"event_id": "c001-e000-x"}),
            json!({"event_id": "c001-e001-x"}),
        ]));
        let first_c001 = taken_up.0.lock().unwrap()["c001"];
        // Taken up again later: the first time stands.
        taken_up.note(&batch(&[json!({"event_id": "c001-e002-x"})]));
        assert_eq!(taken_up.0.lock().unwrap()["c001"], first_c001);
        assert_eq!(
            taken_up.0.lock().unwrap().len(),
            2,
            "the ticket counted for nothing"
        );
        let posts = [
            post(s(400), &["c000-e000-x", "c000-e001-x"]),
            post(first_c001 + Duration::from_millis(300), &["c001-e000-x"]),
            post(s(1440), &["c000-e002-x"]),
            post(
                first_c001 + Duration::from_millis(1340),
                &["c001-e001-x", "c001-e002-x"],
            ),
        ];
        let (waited, served) = taken_up.per_channel(queued, &posts);
        assert_eq!(waited, [Duration::ZERO, first_c001.duration_since(queued)]);
        assert_eq!(
            served,
            [Duration::from_millis(1340), Duration::from_millis(1440)]
        );
        assert_eq!(quantile(&served, 0.5), Duration::from_millis(1440));
        assert_eq!(quantile(&served, 0.0), Duration::from_millis(1340));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
