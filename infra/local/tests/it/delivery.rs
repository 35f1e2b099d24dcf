//! Slack failures: retried, parked with a reason, or paused, never lost or duplicated.

use std::time::Duration;

use aws_sdk_sqs::types::Message;
use slack_standin::{Fault, FaultKind};

use ingestlayer_local::runner::pump_pipeline;

use crate::harness::{feature_used, Stack};

fn attr(m: &Message, name: &str) -> Option<String> {
    m.message_attributes()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

#[tokio::test]
async fn slack_500_then_ok_posts_exactly_once() {
    let s = Stack::new().await;
    s.standin
        .inject(Fault::once(FaultKind::HttpStatus(500)).on_channel("#alerts"));
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    assert!(
        s.pump_until(Duration::from_secs(15), |s| !s.alerts().is_empty())
            .await,
        "delivered after the retry"
    );
    // No copy can come back: both queues are empty (in flight included) and the ledger has
    // the one delivery as posted.
    assert_eq!(s.delivery_depth().await, 0, "acknowledged");
    assert_eq!(s.depth(&s.res.events_queue_url).await, 0);
    let ledger = s.ledger().await;
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0]["status"], "delivered", "{ledger:?}");
    assert_eq!(ledger[0]["attempts"], 2, "{ledger:?}");
    assert_eq!(s.alerts().len(), 1);
    let statuses: Vec<u16> = s.standin.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200]);
    assert!(
        s.peek(&s.res.slack_dlq_url).await.is_empty(),
        "a retried message is not parked"
    );
}

#[tokio::test]
async fn a_permanent_slack_error_parks_the_message_with_its_reason() {
    let s = Stack::new().await;
    s.standin
        .inject(Fault::once(FaultKind::SlackError("invalid_blocks".into())));
    let (_, first) = s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.pump().await;
    s.post("/v1/events", &feature_used("u_7", "webhook")).await;
    s.pump().await;

    let posted = s.alerts();
    assert_eq!(
        posted.len(),
        1,
        "the next message of the channel still flows"
    );
    assert_eq!(
        s.standin.requests().len(),
        2,
        "the parked message was tried once, not looped"
    );
    let parked = s.peek(&s.res.slack_dlq_url).await;
    assert_eq!(parked.len(), 1);
    let reason = attr(&parked[0], "ingestlayer_park_reason").unwrap();
    assert!(reason.contains("invalid_blocks"), "{reason}");
    assert_eq!(
        attr(&parked[0], "ingestlayer_event_id").as_deref(),
        first["id"].as_str()
    );
    assert_eq!(
        attr(&parked[0], "ingestlayer_channel").as_deref(),
        Some("#alerts")
    );
    assert!(
        s.peek(&s.res.slack_queue_url).await.is_empty(),
        "nothing left waiting"
    );
}

#[tokio::test]
async fn a_channel_the_bot_is_not_in_keeps_its_backlog_and_others_flow() {
    let s = Stack::new().await;
    s.standin.create_channel("secret", true, false);
    let mut p = ingestlayer_local::seed::example_pipeline("#secret");
    p["id"] = serde_json::json!("to-secret");
    s.put_pipeline(&p).await;
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.post("/v1/events", &feature_used("u_7", "csv.export"))
        .await;
    s.pump().await;

    assert_eq!(s.alerts().len(), 2, "#alerts is not held up by #secret");
    assert!(s.standin.messages_in("#secret").is_empty());
    let first_try: Vec<_> = s
        .standin
        .requests()
        .into_iter()
        .filter(|r| r.channel == "secret")
        .collect();
    assert_eq!(
        first_try.len(),
        1,
        "one failure pauses the channel; the rest of its group waits"
    );
    assert_eq!(first_try[0].error.as_deref(), Some("not_in_channel"));
    let kept = s.peek(&s.res.slack_dlq_url).await;
    assert_eq!(
        kept.len(),
        2,
        "the paused channel's backlog waits in the DLQ"
    );
    let reason = attr(&kept[0], "ingestlayer_park_reason").unwrap();
    assert!(reason.contains("invite the app to #secret"), "{reason}");
}

#[tokio::test]
async fn a_revoked_token_pauses_after_one_failure_and_keeps_the_backlog() {
    let s = Stack::new().await;
    s.standin.inject(Fault::times(
        100,
        FaultKind::SlackError("token_revoked".into()),
    ));
    for f in ["api", "webhook", "csv.export"] {
        s.post("/v1/events", &feature_used("u_42", f)).await;
    }
    s.pump().await;
    assert_eq!(
        s.standin.requests().len(),
        1,
        "one failure, then the workspace waits"
    );
    assert!(s.alerts().is_empty());
    let kept = s.peek(&s.res.slack_dlq_url).await;
    assert_eq!(kept.len(), 3, "the backlog is kept, with the reason");
    assert!(attr(&kept[0], "ingestlayer_park_reason")
        .unwrap()
        .contains("token_revoked"));
    // New messages of the paused workspace wait too, without another call to Slack.
    s.post("/v1/events", &feature_used("u_7", "api")).await;
    s.pump().await;
    assert_eq!(s.standin.requests().len(), 1);
    assert_eq!(s.depth(&s.res.slack_dlq_url).await, 4);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_delivers() {
    let s = Stack::new().await;
    s.standin.inject(
        Fault::once(FaultKind::RateLimited {
            retry_after_secs: 2,
        })
        .on_channel("#alerts"),
    );
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.pump().await;
    assert!(s.alerts().is_empty());
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s.alerts().is_empty())
            .await
    );
    let reqs = s.standin.requests();
    assert_eq!(reqs.len(), 2);
    let waited = reqs[1].at.duration_since(reqs[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "retried after {waited:?}, before Retry-After"
    );
    assert_eq!(s.alerts().len(), 1);
}

#[tokio::test]
async fn messages_of_one_channel_arrive_in_order() {
    let s = Stack::new().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = format!("evt-{i:02}");
        let body = serde_json::json!({"name": "feature.used", "id": id,
            "data": {"user_id": "u_42", "feature": "api", "count": i, "plan": "pro"}});
        let (status, _) = s.post("/v1/events", &body.to_string()).await;
        assert_eq!(status, 202);
        // The events queue is standard (no order): route each event before the next one
        // is sent, so the Slack queue holds them in this order. Order is promised from
        // the Slack queue on.
        while pump_pipeline(&s.events, &s.pipeline).await.unwrap() > 0 {}
        ids.push(id);
    }
    s.pump().await;
    let posted = crate::harness::posted_client_ids(&s.alerts());
    assert_eq!(posted, ids, "every event once, in the order queued");
}

#[tokio::test]
async fn a_message_another_invocation_is_posting_waits_for_it_and_is_never_posted_beside_it() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use ingestlayer::delivery::ledger::{Entry, Ledger, LedgerStore, CLAIM_LEASE};
    use ingestlayer::delivery::message::Delivery;

    let s = Stack::new().await;
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    while pump_pipeline(&s.events, &s.pipeline).await.unwrap() > 0 {}
    let received = s.slack.messages.receive().await.unwrap();
    assert_eq!(received.len(), 1);
    let key = serde_json::from_str::<Delivery>(received[0].body().unwrap())
        .unwrap()
        .key();
    let ledger = Ledger {
        client: s.dynamo.clone(),
        table: s.res.deliveries_table.clone(),
    };
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };

    // Another invocation claimed it a moment ago and may be posting it right now (the
    // message reached a second invocation after its visibility ended, say).
    assert_eq!(ledger.begin(&key, now_ms()).await.unwrap(), Entry::Clear);
    let answer =
        ingestlayer::delivery::handle(s.slack.messages.event(&received), &s.delivery).await;
    assert_eq!(answer.batch_item_failures.len(), 1, "it waits: {answer:?}");
    assert!(s.alerts().is_empty(), "not posted beside the live claim");

    // That invocation stopped without a word: once its claim is as old as the lease, the
    // next one takes it over, finds nothing in the channel's history, and posts it once.
    s.dynamo
        .update_item()
        .table_name(&s.res.deliveries_table)
        .key("pk", AttributeValue::S(key.as_str().to_owned()))
        .update_expression("SET claimed_ms = :old, since_ms = :old")
        .expression_attribute_values(
            ":old",
            AttributeValue::N((now_ms() - CLAIM_LEASE.as_millis() as i64).to_string()),
        )
        .send()
        .await
        .unwrap();
    let answer =
        ingestlayer::delivery::handle(s.slack.messages.event(&received), &s.delivery).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(s.alerts().len(), 1);
    let items = s.ledger().await;
    assert_eq!(items[0]["status"], "delivered", "{items:?}");
    assert_eq!(items[0]["attempts"], 2, "{items:?}");
}
