//! A busy channel's backlog (`BUFFER_TABLE`) through the whole local path: the Slack
//! stand-in enforces Slack's 1 post per second per channel; a burst goes out a Block Kit
//! digest at a time, every event exactly once, each round claimed while the one before it
//! posts; a delivery process that stops between a digest's post and its bookkeeping leaves
//! nothing posted twice and nothing lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use ingestlayer::delivery::ledger::{Entry, LedgerStore};
use ingestlayer::delivery::DeliveryDeps;
use ingestlayer::ids::DeliveryKey;
use ingestlayer_local::runner::{pump_delivery, pump_pipeline};
use slack_standin::{Fault, FaultKind, StandinConfig};

use crate::harness::{posted_client_ids, posted_event_ids, Stack};

/// Sends `n` feature.used events (client ids `evt-000`…) in batches of up to 100 and routes
/// them all to the Slack queue, so its backlog is there at once, as in a burst.
async fn burst(s: &Stack, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("evt-{i:03}")).collect();
    for chunk in ids.chunks(100) {
        let events: Vec<serde_json::Value> = chunk
            .iter()
            .map(|id| {
                serde_json::json!({"name": "feature.used", "id": id,
                "data": {"user_id": "u_42", "feature": "export", "count": 1, "plan": "pro"}})
            })
            .collect();
        let (status, body) = s
            .post(
                "/v1/events/batch",
                &serde_json::json!({ "events": events }).to_string(),
            )
            .await;
        assert!(status == 202 || status == 207, "{status} {body}");
    }
    while pump_pipeline(&s.events, &s.pipeline).await.unwrap() > 0 {}
    ids
}

/// Delivers with `deps` until every one of `ids` was posted, or fails after `limit`.
async fn deliver_all(s: &Stack, deps: &DeliveryDeps, ids: &[String], limit: Duration) {
    let start = std::time::Instant::now();
    loop {
        while pump_delivery(&s.slack, deps).await.unwrap() > 0 {}
        let posted = posted_client_ids(&s.alerts());
        if ids.iter().all(|id| posted.contains(id)) {
            return;
        }
        if start.elapsed() > limit {
            let buffer = ingestlayer::delivery::buffer::Buffer {
                client: s.dynamo.clone(),
                table: s.res.buffer_table.clone(),
            };
            let left = buffer
                .load(
                    &ingestlayer::ids::GroupId::from_queue("default:#alerts"),
                    1000,
                )
                .await
                .unwrap();
            let queued = s.depth(&s.res.slack_queue_url).await;
            let missing: Vec<&String> = ids.iter().filter(|id| !posted.contains(id)).collect();
            panic!(
                "after {limit:?} {} of {} posted; missing {missing:?}; {} in the backlog; about {queued} in the queue",
                posted.len(),
                ids.len(),
                left.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each id exactly once across the posts.
fn once_each(s: &Stack, ids: &[String]) {
    let posted = posted_client_ids(&s.alerts());
    for id in ids {
        let n = posted.iter().filter(|p| *p == id).count();
        assert_eq!(n, 1, "{id} posted {n} times");
    }
    assert_eq!(posted.len(), ids.len(), "nothing else was posted");
}

#[tokio::test]
async fn a_burst_of_300_goes_out_a_digest_at_a_time_each_event_once_within_slacks_rate() {
    let s = Stack::with_standin(StandinConfig::default()).await;
    let ids = burst(&s, 300).await;
    deliver_all(&s, &s.delivery, &ids, Duration::from_secs(90)).await;
    // Settle what is left (tickets that find the backlog empty).
    while pump_delivery(&s.slack, &s.delivery).await.unwrap() > 0 {}

    once_each(&s, &ids);
    let posts = s.alerts();
    // Full batches wait in the backlog, which goes out in digests of up to 48: 300 events
    // in about 7 posts, where a batch per post took 30.
    assert!(posts.len() <= 9, "{} posts", posts.len());
    for pair in posts.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_secs(1), "two posts {gap:?} apart");
    }
    let limited: Vec<_> = s
        .standin
        .requests()
        .into_iter()
        .filter(|r| r.status == 429)
        .collect();
    assert!(limited.is_empty(), "the stand-in answered 429: {limited:?}");
    // The backlog is empty, the DLQ too.
    assert_eq!(s.depth(&s.res.slack_dlq_url).await, 0);
    let left = ingestlayer::delivery::buffer::Buffer {
        client: s.dynamo.clone(),
        table: s.res.buffer_table.clone(),
    }
    .is_empty(&ingestlayer::ids::GroupId::from_queue("default:#alerts"))
    .await
    .unwrap();
    assert!(left, "the backlog was drained");
}

/// The ledger, noting when each claim (one per drain round) was asked for and how many
/// events it claimed; with `stop_after`, recording a delivery never returns once that many
/// deliveries were recorded: the process "stops" there, between a post and its bookkeeping.
struct Watched {
    inner: Arc<dyn LedgerStore>,
    claims: Mutex<Vec<(Instant, usize)>>,
    recorded: AtomicUsize,
    stop_after: Option<usize>,
}

impl Watched {
    fn new(s: &Stack, stop_after: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            inner: s.delivery.ledger.clone(),
            claims: Mutex::new(Vec::new()),
            recorded: AtomicUsize::new(0),
            stop_after,
        })
    }
}

impl LedgerStore for Watched {
    fn begin_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
        now_ms: i64,
    ) -> BoxFuture<'a, Vec<ingestlayer::error::Result<Entry>>> {
        self.claims
            .lock()
            .unwrap()
            .push((Instant::now(), keys.len()));
        self.inner.begin_all(keys, now_ms)
    }

    fn delivered_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
        ts: &'a str,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Vec<ingestlayer::error::Result<()>>> {
        let before = self.recorded.fetch_add(keys.len(), Ordering::SeqCst);
        if self.stop_after.is_some_and(|after| before >= after) {
            return futures_util::future::pending().boxed();
        }
        self.inner.delivered_all(keys, ts, channel_id)
    }

    fn not_posted_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
    ) -> BoxFuture<'a, Vec<ingestlayer::error::Result<()>>> {
        self.inner.not_posted_all(keys)
    }

    fn unsure_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
    ) -> BoxFuture<'a, Vec<ingestlayer::error::Result<()>>> {
        self.inner.unsure_all(keys)
    }
}

#[tokio::test]
async fn a_drain_stopped_between_its_post_and_its_bookkeeping_posts_nothing_twice_and_loses_nothing(
) {
    let s = Stack::with_standin(StandinConfig::default()).await;
    let ids = burst(&s, 30).await;
    let mut crashing = DeliveryDeps::load(&s.sdk, &crate::messages::delivery_config(&s))
        .await
        .unwrap();
    // Every batch is full, so all 30 wait in the backlog; its first digest is posted and
    // the process stops before recording it.
    crashing.ledger = Watched::new(&s, Some(0));
    let stopped = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            pump_delivery(&s.slack, &crashing).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(stopped.is_err(), "the process stopped in the middle");
    // The digest went out and was never recorded (the ledger has it as posting, the
    // backlog still holds it).
    let before = s.alerts();
    assert_eq!(before.len(), 1, "{:?}", posted_client_ids(&before));
    let stopped_digest = posted_client_ids(&before);
    assert!(stopped_digest.len() >= 10, "{stopped_digest:?}");

    // Restarted: the ticket comes back after the queue's visibility timeout; the backlog
    // still holds the 20, the ledger has them as uncertain, and the channel's history shows
    // the digest, so nothing is posted again and the backlog empties.
    let start = std::time::Instant::now();
    let buffer = ingestlayer::delivery::buffer::Buffer {
        client: s.dynamo.clone(),
        table: s.res.buffer_table.clone(),
    };
    let group = ingestlayer::ids::GroupId::from_queue("default:#alerts");
    while !buffer.is_empty(&group).await.unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the backlog never emptied"
        );
        while pump_delivery(&s.slack, &s.delivery).await.unwrap() > 0 {}
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    deliver_all(&s, &s.delivery, &ids, Duration::from_secs(30)).await;
    while pump_delivery(&s.slack, &s.delivery).await.unwrap() > 0 {}
    once_each(&s, &ids);
    let after = posted_client_ids(&s.alerts()[1..]);
    assert!(
        stopped_digest.iter().all(|id| !after.contains(id)),
        "the stopped digest's events were posted again: {after:?}"
    );
    assert_eq!(s.depth(&s.res.slack_dlq_url).await, 0);
}

#[tokio::test]
async fn a_drain_claims_each_round_while_the_round_before_it_posts() {
    let s = Stack::with_standin(StandinConfig::default()).await;
    let ids = burst(&s, 300).await;
    let mut deps = DeliveryDeps::load(&s.sdk, &crate::messages::delivery_config(&s))
        .await
        .unwrap();
    let seen = Watched::new(&s, None);
    deps.ledger = seen.clone();
    deliver_all(&s, &deps, &ids, Duration::from_secs(90)).await;
    while pump_delivery(&s.slack, &deps).await.unwrap() > 0 {}
    once_each(&s, &ids);

    // Each claim is one round: its posts are the next ones, as many events as it claimed.
    let posts = s.alerts();
    let claims = seen.claims.lock().unwrap().clone();
    let mut rounds: Vec<Vec<Instant>> = Vec::new();
    let mut next = posts.iter();
    for (_, claimed) in &claims {
        let mut round = Vec::new();
        let mut events = 0;
        while events < *claimed {
            let post = next.next().expect("a claim whose events were never posted");
            events += posted_client_ids(std::slice::from_ref(post)).len();
            round.push(post.at);
        }
        assert_eq!(events, *claimed, "a post across two rounds");
        rounds.push(round);
    }
    assert!(next.next().is_none(), "posts no claim covers");
    // The first round is read in line and makes one post; the later ones, read ahead, two.
    assert_eq!(rounds[0].len(), 1, "{rounds:?}");
    let mut checked = 0;
    for (k, (claimed_at, _)) in claims.iter().enumerate().skip(1) {
        let before = &rounds[k - 1];
        if before.len() < 2 {
            continue;
        }
        let last_post = before[before.len() - 1];
        assert!(
            *claimed_at < last_post,
            "round {} was claimed {:?} after the round before it last posted",
            k + 1,
            claimed_at.duration_since(last_post)
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "{} claims for {} posts",
        claims.len(),
        posts.len()
    );
}

/// Out of its budget with messages left, a drain hands its ticket straight back, to the
/// drain queue it came from: the next invocation can take it up while the channel's slot
/// comes round. (Rounded up to SQS's whole seconds, the ticket came back a second later,
/// after the slot; handed back to the wrong queue, only after its visibility timeout.) With
/// no budget at all, each invocation posts one round, and the burst still goes out whole,
/// each event once.
#[tokio::test]
async fn a_drain_out_of_budget_hands_its_ticket_straight_back() {
    let s = Stack::with_standin(StandinConfig::default()).await;
    let ids = burst(&s, 100).await;
    let mut deps = DeliveryDeps::load(&s.sdk, &crate::messages::delivery_config(&s))
        .await
        .unwrap();
    deps.drain_budget = Duration::ZERO;
    let tickets = spill_until_a_ticket(&s, &deps).await;
    let before = s.alerts().len();
    let ticket = tickets[0].message_id().unwrap_or_default().to_owned();
    let response = ingestlayer::delivery::handle(s.slack.drains.event(&tickets), &deps).await;
    s.slack.drains.settle(&tickets, &response).await.unwrap();
    assert_eq!(s.alerts().len(), before + 1, "the drain posted one round");
    assert!(
        response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == ticket),
        "the ticket goes back: {response:?}"
    );
    let again = s.slack.drains.receive().await.unwrap();
    assert!(
        again
            .iter()
            .any(|m| m.message_id() == Some(ticket.as_str())),
        "the ticket is back at once: {:?}",
        again.iter().map(|m| m.message_id()).collect::<Vec<_>>()
    );
    let response = ingestlayer::delivery::handle(s.slack.drains.event(&again), &deps).await;
    s.slack.drains.settle(&again, &response).await.unwrap();
    deliver_all(&s, &deps, &ids, Duration::from_secs(60)).await;
    while pump_delivery(&s.slack, &deps).await.unwrap() > 0 {}
    once_each(&s, &ids);
}

/// One invocation at a time from the Slack queue (its batches posted or moved into their
/// channels' backlogs) until the drain queue holds a ticket; returns the drain queue's first
/// batch.
async fn spill_until_a_ticket(s: &Stack, deps: &DeliveryDeps) -> Vec<aws_sdk_sqs::types::Message> {
    loop {
        let tickets = s.slack.drains.receive().await.unwrap();
        if !tickets.is_empty() {
            return tickets;
        }
        let batch = s.slack.messages.receive().await.unwrap();
        assert!(!batch.is_empty(), "the messages queued no drain ticket");
        let response = ingestlayer::delivery::handle(s.slack.messages.event(&batch), deps).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "every batch posted or moved into its backlog: {response:?}"
        );
        s.slack.messages.settle(&batch, &response).await.unwrap();
    }
}

/// Two channels' drain tickets in one batch drain side by side: each channel is paced by
/// its own slot, so neither waits out the other's drain. (One group after another, the
/// second channel's first post came after the first channel's last.)
#[tokio::test]
async fn two_channels_drained_in_one_batch_post_side_by_side() {
    use ingestlayer::aws::sqs::send_all;
    use ingestlayer_local::burst::queued_delivery;

    let s = Stack::with_standin(StandinConfig::default()).await;
    let channels = ["#side-a", "#side-b"];
    let mut messages = Vec::new();
    let mut ids = Vec::new();
    for name in channels {
        for i in 0..60 {
            let id = format!("{}-{i:03}", &name[1..]);
            messages.push(
                queued_delivery(name, &id, &format!("feature.used: export by u_{i}")).unwrap(),
            );
            ids.push(id);
        }
    }
    for sent in send_all(&s.sqs, &s.res.slack_queue_url, &messages).await {
        sent.unwrap();
    }
    // One invocation at a time: the channels' batches go into their backlogs first, each
    // queueing a ticket, then one batch of the drain queue carries both channels' tickets.
    loop {
        let batch = s.slack.messages.receive().await.unwrap();
        if batch.is_empty() {
            break;
        }
        let response =
            ingestlayer::delivery::handle(s.slack.messages.event(&batch), &s.delivery).await;
        s.slack.messages.settle(&batch, &response).await.unwrap();
    }
    let posted = || {
        posted_event_ids(
            &[
                s.standin.messages_in("#side-a"),
                s.standin.messages_in("#side-b"),
            ]
            .concat(),
        )
    };
    let start = Instant::now();
    let mut both = false;
    while posted().len() < ids.len() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {} posted",
            posted().len(),
            ids.len()
        );
        let batch = s.slack.drains.receive().await.unwrap();
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let event = s.slack.drains.event(&batch);
        let drained: std::collections::HashSet<String> = event
            .records
            .iter()
            .filter_map(ingestlayer::delivery::buffer::drained_by)
            .map(|g| g.as_str().to_owned())
            .collect();
        both |= drained.len() == 2;
        let response = ingestlayer::delivery::handle(event, &s.delivery).await;
        s.slack.drains.settle(&batch, &response).await.unwrap();
    }
    assert!(both, "one batch carried both channels' tickets");
    let mut all = posted();
    all.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(all, want, "each event once");
    let (a, b) = (
        s.standin.messages_in("#side-a"),
        s.standin.messages_in("#side-b"),
    );
    assert!(
        a.len() >= 2 && b.len() >= 2,
        "{} and {} posts",
        a.len(),
        b.len()
    );
    let (a_first, a_last) = (a[0].at, a[a.len() - 1].at);
    let (b_first, b_last) = (b[0].at, b[b.len() - 1].at);
    assert!(
        b_first < a_last && a_first < b_last,
        "the two drains ran one after the other: from a's first post, a posted until {:?}, b from {:?} to {:?}",
        a_last - a_first,
        b_first.saturating_duration_since(a_first),
        b_last.saturating_duration_since(a_first)
    );
}

/// A busy channel's drain ticket does not queue behind other channels' messages: with a
/// hundred of them waiting in the Slack queue, the drain queue hands out the ticket at once,
/// and its invocation posts the channel's backlog while none of the others was taken up.
/// (Tickets used to share the Slack queue and came out after everything queued before them.)
#[tokio::test]
async fn a_channels_drain_does_not_wait_behind_other_channels_messages() {
    use ingestlayer::aws::sqs::send_all;
    use ingestlayer_local::burst::queued_delivery;

    let s = Stack::with_standin(StandinConfig::default()).await;
    let queue = |channel: &str, n: usize| -> Vec<_> {
        (0..n)
            .map(|i| {
                let id = format!("{}-{i:03}", &channel[1..]);
                queued_delivery(channel, &id, &format!("feature.used: export by u_{i}")).unwrap()
            })
            .collect()
    };
    for sent in send_all(&s.sqs, &s.res.slack_queue_url, &queue("#drained", 100)).await {
        sent.unwrap();
    }
    let tickets = spill_until_a_ticket(&s, &s.delivery).await;
    // #drained's other batches and five other channels' bursts wait in the Slack queue.
    let waiting = s.depth(&s.res.slack_queue_url).await;
    let mut others = Vec::new();
    for c in 0..5 {
        others.extend(queue(&format!("#other-{c}"), 20));
    }
    for sent in send_all(&s.sqs, &s.res.slack_queue_url, &others).await {
        sent.unwrap();
    }
    let response = ingestlayer::delivery::handle(s.slack.drains.event(&tickets), &s.delivery).await;
    s.slack.drains.settle(&tickets, &response).await.unwrap();
    let drained = posted_event_ids(&s.standin.messages_in("#drained"));
    assert!(
        drained.len() >= 10,
        "the drain posted #drained's backlog: {} events",
        drained.len()
    );
    assert_eq!(
        s.depth(&s.res.slack_queue_url).await,
        waiting + 100,
        "nothing else was taken up meanwhile"
    );

    // Everything still goes out, each event once.
    let posted = || {
        let mut ids = posted_event_ids(&s.standin.messages_in("#drained"));
        for c in 0..5 {
            ids.extend(posted_event_ids(
                &s.standin.messages_in(&format!("#other-{c}")),
            ));
        }
        ids.sort();
        ids
    };
    let start = Instant::now();
    while posted().len() < 200 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{} of 200 posted",
            posted().len()
        );
        while pump_delivery(&s.slack, &s.delivery).await.unwrap() > 0 {}
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut want: Vec<String> = (0..100).map(|i| format!("drained-{i:03}")).collect();
    for c in 0..5 {
        want.extend((0..20).map(|i| format!("other-{c}-{i:03}")));
    }
    want.sort();
    assert_eq!(posted(), want, "each event once");
}

#[tokio::test]
async fn a_429_on_a_digest_holds_the_drain_for_retry_after_and_the_burst_still_arrives_once_in_order(
) {
    let s = Stack::with_standin(StandinConfig::default()).await;
    let ids = burst(&s, 100).await;
    // Every batch is full, so all of them go to the backlog: Slack's first answer, to the
    // drain's first digest, is a 429 with Retry-After: 2.
    s.standin.inject(
        Fault::once(FaultKind::RateLimited {
            retry_after_secs: 2,
        })
        .on_channel("#alerts"),
    );
    deliver_all(&s, &s.delivery, &ids, Duration::from_secs(60)).await;
    while pump_delivery(&s.slack, &s.delivery).await.unwrap() > 0 {}

    once_each(&s, &ids);
    assert_eq!(
        posted_client_ids(&s.alerts()),
        ids,
        "the backlog went out in the order it was queued"
    );
    let requests = s.standin.requests();
    assert_eq!(requests[0].status, 429, "{requests:?}");
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.status == 200 && r.error.is_none()),
        "one 429, then every post accepted: {requests:?}"
    );
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "the digest was sent again after {waited:?}, before Retry-After"
    );
    let posts = s.alerts();
    assert!(
        posts.len() <= 4,
        "digests carried the burst: {} posts",
        posts.len()
    );
    for pair in posts.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_secs(1), "two posts {gap:?} apart");
    }
    assert_eq!(s.depth(&s.res.slack_dlq_url).await, 0, "nothing parked");
}
