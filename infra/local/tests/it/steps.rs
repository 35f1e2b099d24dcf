//! Stateful steps against the emulator's DynamoDB: throttle and threshold decide exactly
//! under concurrent pipeline invocations, a heartbeat goes missing once and comes back once
//! (through the injected clock of the check, and once through the pipeline binary's
//! schedule tick), and a muted key posts nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use ingestlayer::event::incoming::parse_incoming;
use ingestlayer::event::Envelope;
use ingestlayer::routing::state::{DynamoState, StateStore};
use serde_json::json;
use time::OffsetDateTime;

use crate::harness::{posted_event_ids, Stack};

fn envelope(name: &str, id: &str, data: serde_json::Value) -> Envelope {
    let e = parse_incoming(&json!({"name": name, "id": id, "data": data}), "").unwrap();
    Envelope::accept(e, "tests", OffsetDateTime::now_utc())
}

fn batch(envelopes: &[Envelope]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = envelopes
        .iter()
        .map(|e| {
            let mut m = SqsMessage::default();
            m.message_id = Some(e.id.to_string());
            m.body = Some(serde_json::to_string(e).unwrap());
            m
        })
        .collect();
    event
}

fn state(s: &Stack) -> DynamoState {
    DynamoState {
        client: s.dynamo.clone(),
        table: s.res.state_table.clone(),
    }
}

#[tokio::test]
async fn throttle_and_threshold_decide_exactly_across_concurrent_invocations() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": "logins-threshold", "events": ["user.login_failed"],
        "steps": [{"type": "threshold", "key": "$event.user_id", "count": 5, "window": "10m"}],
        "destinations": [{"type": "slack", "channel": "#security", "digest_threshold": 0}]
    }))
    .await;
    s.put_pipeline(&json!({
        "id": "logins-throttle", "events": ["user.*"],
        "steps": [{"type": "throttle", "key": "$event.user_id", "window": "1h"}],
        "destinations": [{"type": "slack", "channel": "#security-once", "digest_threshold": 0}]
    }))
    .await;
    // 200 events from 20 users, interleaved, in 20 batches routed concurrently.
    let events: Vec<Envelope> = (0..200)
        .map(|i| {
            envelope(
                "user.login_failed",
                &format!("login-{i}"),
                json!({"user_id": format!("u{}", i % 20), "attempt": i / 20}),
            )
        })
        .collect();
    let batches: Vec<SqsEvent> = events.chunks(10).map(batch).collect();
    // Five invocations at a time, as a queue's event source scales out (all 20 at once would
    // only measure how many connections the emulator accepts).
    let answers: Vec<_> =
        futures_util::StreamExt::collect(futures_util::StreamExt::buffer_unordered(
            futures_util::stream::iter(
                batches
                    .into_iter()
                    .map(|b| ingestlayer::routing::handle(b, &s.pipeline)),
            ),
            5,
        ))
        .await;
    for a in &answers {
        assert!(a.batch_item_failures.is_empty(), "{a:?}");
    }
    // Each channel paces its 20 posts at Slack's rate (a backlog drain hands its ticket back
    // between rounds), so pump until both have had their 20, then once more for anything
    // that should not be there.
    let both = |s: &Stack| {
        ["#security", "#security-once"]
            .iter()
            .all(|c| s.standin.messages_in(c).len() >= 20)
    };
    assert!(
        s.pump_until(Duration::from_secs(90), both).await,
        "both channels got their posts"
    );
    s.pump().await;
    let user_of = |id: &str| {
        let i: usize = id.rsplit('-').next().unwrap().parse().unwrap();
        format!("u{}", i % 20)
    };
    for channel in ["#security", "#security-once"] {
        let posted = posted_event_ids(&s.standin.messages_in(channel));
        let users: BTreeSet<String> = posted.iter().map(|id| user_of(id)).collect();
        assert_eq!(
            posted.len(),
            20,
            "{channel}: one message per user: {posted:?}"
        );
        assert_eq!(users.len(), 20, "{channel}: every user once: {posted:?}");
    }
    // The threshold passed on each user's fifth event, the throttle on the first.
    let fifth: BTreeMap<String, usize> = posted_event_ids(&s.standin.messages_in("#security"))
        .iter()
        .map(|id| {
            let i: usize = id.rsplit('-').next().unwrap().parse().unwrap();
            (user_of(id), i)
        })
        .collect();
    assert_eq!(fifth.len(), 20);
    // Events of one user arrived in any order across the 20 invocations, so "fifth" is
    // the fifth to reach the table, not the fifth sent: each user passed exactly once.
    assert!(fifth.values().all(|&i| i < 200));
}

#[tokio::test]
async fn a_heartbeat_alerts_once_when_missing_and_once_when_back() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": "cron-health", "events": ["cron.finished"],
        "heartbeat": {"key": "$event.job", "interval": "1h", "grace": "10m"},
        "destinations": [{"type": "slack", "channel": "#ops", "digest_threshold": 0}]
    }))
    .await;
    let answer = ingestlayer::routing::handle(
        batch(&[envelope(
            "cron.finished",
            "run-1",
            json!({"job": "nightly-export"}),
        )]),
        &s.pipeline,
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    s.pump().await;
    assert!(
        s.standin.messages_in("#ops").is_empty(),
        "a ping posts nothing"
    );

    let now = OffsetDateTime::now_utc();
    let early =
        ingestlayer::routing::check_heartbeats(&s.pipeline, now + Duration::from_secs(3600))
            .await
            .unwrap();
    assert_eq!(early, 0, "within interval + grace");
    let late = now + Duration::from_secs(3600 + 601);
    assert_eq!(
        ingestlayer::routing::check_heartbeats(&s.pipeline, late)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ingestlayer::routing::check_heartbeats(&s.pipeline, late + Duration::from_secs(600))
            .await
            .unwrap(),
        0,
        "missing is said once"
    );
    s.pump().await;
    let missing = s.standin.messages_in("#ops");
    assert_eq!(missing.len(), 1);
    let text = serde_json::to_string(&missing[0].blocks).unwrap();
    assert!(text.contains("nightly-export"), "{text}");

    // It comes back: one notice, then pings are quiet again.
    for run in ["run-2", "run-3"] {
        let answer = ingestlayer::routing::handle(
            batch(&[envelope(
                "cron.finished",
                run,
                json!({"job": "nightly-export"}),
            )]),
            &s.pipeline,
        )
        .await;
        assert!(answer.batch_item_failures.is_empty());
    }
    s.pump().await;
    let all = s.standin.messages_in("#ops");
    assert_eq!(all.len(), 2, "one missing, one back");
    assert_eq!(posted_event_ids(&all[1..]), vec!["tests:run-2".to_owned()]);
}

#[tokio::test]
async fn the_pipeline_binary_runs_the_heartbeat_check_on_the_schedules_tick() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": "cron-health", "events": ["cron.finished"],
        "heartbeat": {"key": "job", "interval": "1s", "grace": "1s"},
        "destinations": [{"type": "slack", "channel": "#ops", "digest_threshold": 0}]
    }))
    .await;
    let f = s.binaries();
    f.start().await.unwrap();
    let answer = f
        .pipeline
        .invoke(
            &serde_json::to_value(batch(&[envelope(
                "cron.finished",
                "run-1",
                json!({"job": "backup"}),
            )]))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    // A real wait: the binary decides by its own clock.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let tick = ingestlayer::routing::scheduled_event(OffsetDateTime::now_utc());
    let answer = f.pipeline.invoke(&tick).await.unwrap();
    assert_eq!(answer, json!({"missing": 1}));
    let answer = f.pipeline.invoke(&tick).await.unwrap();
    assert_eq!(answer, json!({"missing": 0}));
    s.pump_binaries(&f).await;
    assert_eq!(s.standin.messages_in("#ops").len(), 1);
}

#[tokio::test]
async fn a_muted_key_posts_nothing_until_the_mute_ends() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": "usage-limits", "events": ["usage.limit_reached"],
        "mute": {"key": "$event.account", "for": "7d"},
        "destinations": [{"type": "slack", "channel": "#limits", "digest_threshold": 0}]
    }))
    .await;
    let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    // As the Mute button's click stores it (slack-connect's interactions route).
    ingestlayer::routing::mutes::MuteStore::new(s.dynamo.clone(), s.res.state_table.clone())
        .mute(&ingestlayer::routing::mutes::Mute {
            pipeline: "usage-limits".into(),
            key: "acme".into(),
            until_ms: now_ms + 3_600_000,
            by: "U123".into(),
            at_ms: now_ms,
        })
        .await
        .unwrap();
    let muted = state(&s)
        .muted(&[("usage-limits".into(), "acme".into())], now_ms)
        .await
        .unwrap();
    assert_eq!(muted.len(), 1);
    let answer = ingestlayer::routing::handle(
        batch(&[
            envelope("usage.limit_reached", "l-1", json!({"account": "acme"})),
            envelope("usage.limit_reached", "l-2", json!({"account": "globex"})),
        ]),
        &s.pipeline,
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    s.pump().await;
    let posted = s.standin.messages_in("#limits");
    assert_eq!(posted_event_ids(&posted), vec!["tests:l-2".to_owned()]);
    // Each message carries the pipeline's mute button for its own key.
    let blocks = posted[0].blocks.clone().unwrap();
    let button = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .map(|b| b["elements"][0].clone())
        .expect("an actions block");
    assert_eq!(button["action_id"], "ingestlayer_mute");
    let value: serde_json::Value = serde_json::from_str(button["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        value,
        json!({"p": "usage-limits", "k": "globex", "d": 7 * 86_400_000})
    );
}
