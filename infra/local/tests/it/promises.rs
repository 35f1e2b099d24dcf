//! DESIGN.md's delivery promises (nothing lost, no duplicates, paced, isolated), each
//! driven through the real handlers, the emulator and the Slack stand-in over HTTP.

use std::time::{Duration, Instant};

use ingestlayer_cli::dlq::{self, Filter};
use serde_json::json;
use slack_standin::{Fault, FaultKind, StandinConfig};

use crate::harness::{feature_used, posted_client_ids, Stack, HELD_ANSWER, UNCERTAIN_TIMEOUT};

fn paced() -> StandinConfig {
    StandinConfig {
        rate_per_channel_per_sec: 1.0,
        burst: 1,
        ..StandinConfig::default()
    }
}

/// How many posts fail in the outage test.
const OUTAGE_TRIES: u32 = 3;

fn event_with_id(id: &str, count: usize) -> serde_json::Value {
    json!({"name": "feature.used", "id": id, "data": {"user_id": "u_42", "feature": "api", "count": count, "plan": "pro"}})
}

/// Promise 1 + 2 + 3: a burst of 300 reaches the channel in digests, in order, once each,
/// and Slack never sees more than one post per second there.
#[tokio::test]
async fn a_burst_of_300_arrives_in_order_without_duplicates_at_one_post_per_second() {
    let s = Stack::with_standin(paced()).await;
    let ids: Vec<String> = (0..300).map(|i| format!("burst-{i:03}")).collect();
    let events: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| event_with_id(id, i))
        .collect();
    let (status, body) = s
        .post("/v1/events/batch", &json!({ "events": events }).to_string())
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(300)),
        "{body}"
    );
    let started = Instant::now();
    assert!(
        s.pump_until(Duration::from_secs(150), |s| posted_client_ids(&s.alerts())
            .len()
            >= 300)
            .await,
        "only {} of 300 arrived",
        posted_client_ids(&s.alerts()).len()
    );
    let took = started.elapsed();
    let posted = posted_client_ids(&s.alerts());
    assert_eq!(posted, ids, "every event once, in order");
    let requests = s.standin.requests();
    assert!(
        requests.iter().all(|r| r.status == 200),
        "the stand-in rate-limited a post: more than one per second"
    );
    let posts = s.alerts();
    for pair in posts.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(950),
            "two posts less than a second apart"
        );
    }
    assert!(
        posts.len() <= 40,
        "digests carried the burst: {} posts",
        posts.len()
    );
    eprintln!(
        "300 events: {} posts in {:.1} s",
        posts.len(),
        took.as_secs_f64()
    );
}

// Promise 3 + 4, "a 429 silences exactly that channel for its Retry-After; another channel's
// traffic is unaffected", is decided by the delivery core and tested there on tokio's paused
// clock (ingestlayer's delivery::pacing, delivery::group and delivery::decide tests); the
// smoke test through the emulator is delivery.rs's `a_429_waits_for_retry_after_then_delivers`.

/// Promise 4: a channel the bot is not in pauses with its backlog kept and an operator
/// message; others flow; after the fix and a redrive everything arrives, in order.
#[tokio::test]
async fn not_in_channel_pauses_the_channel_until_fixed_and_redriven_then_all_arrive_in_order() {
    let s = Stack::new().await;
    s.standin.create_channel("secret", true, false);
    let mut p = ingestlayer_local::seed::example_pipeline("#secret");
    p["id"] = json!("to-secret");
    s.put_pipeline(&p).await;
    let ids: Vec<String> = (0..3).map(|i| format!("sec-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        s.post("/v1/events", &event_with_id(id, i).to_string())
            .await;
        s.pump().await;
    }
    assert_eq!(posted_client_ids(&s.alerts()), ids, "#alerts flows");
    let secret_tries = || {
        s.standin
            .requests()
            .into_iter()
            .filter(|r| r.channel == "secret")
            .count()
    };
    assert_eq!(secret_tries(), 1, "one failure pauses the channel");

    let parked = dlq::list(&s.sqs, &s.res.slack_dlq_url).await.unwrap();
    assert_eq!(
        parked
            .iter()
            .map(|p| p.event_id.clone())
            .collect::<Vec<_>>(),
        ids.iter()
            .map(|id| format!("tests:{id}"))
            .collect::<Vec<_>>()
    );
    assert!(
        parked[0].reason.contains("not_in_channel")
            && parked[0].reason.contains("invite the app to #secret"),
        "{}",
        parked[0].reason
    );
    let paused = s.channels().paused().await.unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].pk, "chan#default:#secret");

    // While paused, new messages join the backlog without calling Slack.
    s.post("/v1/events", &event_with_id("sec-3", 3).to_string())
        .await;
    s.pump().await;
    assert_eq!(secret_tries(), 1);

    // The fix, then the redrive.
    s.standin.create_channel("secret", true, true);
    let r = dlq::redrive(
        &s.sqs,
        &s.channels(),
        &s.res.slack_dlq_url,
        &s.res.slack_queue_url,
        &Filter {
            channel: Some("#secret".into()),
            team: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(r.moved, 4);
    assert_eq!(r.resumed, ["chan#default:#secret"]);
    assert!(
        s.pump_until(Duration::from_secs(10), |s| posted_client_ids(
            &s.standin.messages_in("#secret")
        )
        .len()
            >= 4)
            .await
    );
    assert_eq!(
        posted_client_ids(&s.standin.messages_in("#secret")),
        ["sec-0", "sec-1", "sec-2", "sec-3"]
    );
    assert!(dlq::list(&s.sqs, &s.res.slack_dlq_url)
        .await
        .unwrap()
        .is_empty());
}

/// Promise 2: a crash after Slack accepted the post and before the SQS delete never
/// produces a second post, run after run.
#[tokio::test]
async fn a_crash_between_post_and_acknowledge_never_posts_twice() {
    let s = Stack::new().await;
    let runs = 10;
    for i in 0..runs {
        s.post(
            "/v1/events",
            &event_with_id(&format!("crash-{i}"), i).to_string(),
        )
        .await;
        while ingestlayer_local::runner::pump_pipeline(&s.events, &s.pipeline)
            .await
            .unwrap()
            > 0
        {}
        let messages = s.slack.messages.receive().await.unwrap();
        assert_eq!(messages.len(), 1);
        // The handler posts, then the instance dies: the batch response is lost and nothing is deleted.
        let _lost =
            ingestlayer::delivery::handle(s.slack.messages.event(&messages), &s.delivery).await;
        // SQS hands the message out again once its visibility runs out (here: at once).
        for m in &messages {
            s.sqs
                .change_message_visibility()
                .queue_url(&s.res.slack_queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
        s.pump().await;
    }
    let expected: Vec<String> = (0..runs).map(|i| format!("crash-{i}")).collect();
    assert_eq!(
        posted_client_ids(&s.alerts()),
        expected,
        "each event exactly once"
    );
    assert_eq!(s.delivery_depth().await, 0, "and acknowledged");
}

/// Promise 2: Slack accepts the post but the answer never arrives in time (the client
/// times out): the retry finds the message in the channel's history and does not post again.
#[tokio::test]
async fn a_timeout_after_slack_accepted_is_resolved_from_history_without_a_second_post() {
    let mut s = Stack::new().await;
    // The Slack client gives up after UNCERTAIN_TIMEOUT; Slack posts at once, then holds its
    // answer far longer.
    s.delivery.slack =
        ingestlayer::slack::client::SlackClient::new(&s.standin.api_url(), UNCERTAIN_TIMEOUT)
            .unwrap();
    s.standin
        .inject(Fault::once(FaultKind::AcceptThenDelay(HELD_ANSWER)).on_channel("#alerts"));
    s.post("/v1/events", &event_with_id("ambiguous-1", 1).to_string())
        .await;
    s.pump().await;
    assert_eq!(
        posted_client_ids(&s.alerts()),
        ["ambiguous-1"],
        "Slack took it"
    );
    assert_eq!(
        s.delivery_depth().await,
        1,
        "but the outcome was unknown, so it was not acknowledged"
    );
    let start = Instant::now();
    while s.delivery_depth().await > 0 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.pump().await;
    }
    assert_eq!(s.delivery_depth().await, 0, "the retry acknowledged it");
    assert_eq!(posted_client_ids(&s.alerts()), ["ambiguous-1"]);
    assert_eq!(s.standin.requests().len(), 1, "no second chat.postMessage");
}

/// Promise 1: Slack down for a stretch, then up: nothing lost, nothing parked that was
/// merely waiting. (The retry schedule is shortened to 1 s so the stretch is 3 tries; that
/// an outage through the whole schedule, at any receive count, is handed back and never
/// parked is `delivery::group::tests::a_long_outage_is_handed_back_at_every_receive_count_and_never_parked`.)
#[tokio::test]
async fn a_long_slack_outage_loses_nothing_and_parks_nothing() {
    let mut s = Stack::new().await;
    s.delivery.retry_schedule = vec![1];
    s.standin
        .inject(Fault::times(OUTAGE_TRIES, FaultKind::HttpStatus(503)));
    s.post("/v1/events", &event_with_id("outage-1", 1).to_string())
        .await;
    s.post("/v1/events", &event_with_id("outage-2", 2).to_string())
        .await;
    assert!(
        s.pump_until(Duration::from_secs(60), |s| posted_client_ids(&s.alerts())
            .len()
            >= 2)
            .await
    );
    // Two separate requests: the events queue is standard, so their order is not promised.
    let mut posted = posted_client_ids(&s.alerts());
    posted.sort();
    assert_eq!(posted, ["outage-1", "outage-2"], "each once");
    let failures = s
        .standin
        .requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert_eq!(failures, OUTAGE_TRIES as usize);
    assert_eq!(s.depth(&s.res.slack_dlq_url).await, 0, "nothing parked");
}

/// Promise 1: a message that could not be delivered within the age limit is parked with
/// that reason, not retried forever.
#[tokio::test]
async fn a_message_past_the_age_limit_is_parked_with_the_reason() {
    let mut s = Stack::new().await;
    s.delivery.max_age = Duration::ZERO;
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    s.pump().await;
    let parked = dlq::list(&s.sqs, &s.res.slack_dlq_url).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0].reason.starts_with("not delivered within 0 s"),
        "{}",
        parked[0].reason
    );
    assert!(s.alerts().is_empty());
}

/// Promise 5: a truncated message links to the full stored event; a tampered or expired
/// link gets 403.
#[tokio::test]
async fn a_truncated_messages_link_serves_the_full_event_and_refuses_tampered_or_expired_links() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({"id": "files", "events": ["blob.uploaded"], "destinations": [{"type": "slack", "channel": "#files"}]}))
        .await;
    let note = "n".repeat(5000);
    let (status, body) = s
        .post(
            "/v1/events",
            &json!({"name": "blob.uploaded", "data": {"note": note, "size": 5000}}).to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let id = body["id"].as_str().unwrap().to_owned();
    s.pump().await;
    let posted = s.standin.messages_in("#files");
    assert_eq!(posted.len(), 1);
    let blocks = serde_json::to_string(posted[0].blocks.as_ref().unwrap()).unwrap();
    let start = blocks
        .find("<https://api.example")
        .expect("a link in the message")
        + "<https://api.example".len();
    let end = start + blocks[start..].find('|').unwrap();
    let link = blocks[start..end].to_owned();
    assert!(link.starts_with(&format!("/v1/events/{id}?exp=")), "{link}");

    let (status, full) = s.get(&link).await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(
        full["data"]["note"].as_str().unwrap().len(),
        5000,
        "the whole event"
    );
    assert_eq!(full["id"], id.as_str());

    let tampered = format!(
        "{}{}",
        &link[..link.len() - 1],
        if link.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(s.get(&tampered).await.0, 403);
    let other_id = link.replace(&id, "someone-elses-event");
    assert_eq!(s.get(&other_id).await.0, 403);

    let key = ingestlayer::event_links::load_key(
        &aws_sdk_secretsmanager::Client::new(
            &ingestlayer_local::emulator_sdk(&crate::harness::endpoint()).await,
        ),
        &s.res.link_secret_arn,
    )
    .await
    .unwrap();
    let signer = ingestlayer::event_links::LinkSigner::new(key, "", Duration::from_secs(60));
    let expired = signer.link(&id, time::OffsetDateTime::now_utc().unix_timestamp() - 3600);
    let (status, body) = s.get(&expired).await;
    assert_eq!(status, 403);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
}
