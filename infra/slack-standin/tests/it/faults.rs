use std::time::Duration;

use serde_json::json;
use slack_standin::{Fault, FaultKind};

use crate::{post, reply, unpaced, TOKEN};

#[tokio::test]
async fn a_fault_applies_to_exactly_its_number_of_matching_requests() {
    let standin = unpaced().await;
    standin.inject(Fault::times(2, FaultKind::HttpStatus(503)).on_channel("#alerts"));

    let other = post(&standin, &json!({"channel": "#sales", "text": "x"})).await;
    let first = post(&standin, &json!({"channel": "alerts", "text": "x"})).await;
    let second = post(&standin, &json!({"channel": "#alerts", "text": "x"})).await;
    let third = post(&standin, &json!({"channel": "#alerts", "text": "x"})).await;

    assert!(other.is_ok());
    assert_eq!((first.status, first.error()), (503, Some("internal_error")));
    assert_eq!(
        (second.status, second.error()),
        (503, Some("internal_error"))
    );
    assert!(third.is_ok());
    assert_eq!(standin.messages_in("#alerts").len(), 1);
}

#[tokio::test]
async fn faults_are_consumed_in_the_order_they_were_queued() {
    let standin = unpaced().await;
    standin.inject(Fault::once(FaultKind::SlackError("token_revoked".into())));
    standin.inject(Fault::once(FaultKind::HttpStatus(500)));
    standin.inject(Fault::once(FaultKind::RateLimited {
        retry_after_secs: 7,
    }));

    let revoked = post(&standin, &json!({"channel": "#a", "text": "x"})).await;
    let internal = post(&standin, &json!({"channel": "#a", "text": "x"})).await;
    let limited = post(&standin, &json!({"channel": "#a", "text": "x"})).await;
    let fine = post(&standin, &json!({"channel": "#a", "text": "x"})).await;

    assert_eq!(
        (revoked.status, revoked.error()),
        (200, Some("token_revoked"))
    );
    assert_eq!(
        (internal.status, internal.error()),
        (500, Some("internal_error"))
    );
    assert_eq!(
        (limited.status, limited.error()),
        (429, Some("ratelimited"))
    );
    assert_eq!(limited.headers["retry-after"], "7");
    assert!(fine.is_ok());
    let errors: Vec<Option<String>> = standin.requests().into_iter().map(|r| r.error).collect();
    assert_eq!(
        errors,
        vec![
            Some("token_revoked".into()),
            Some("internal_error".into()),
            Some("ratelimited".into()),
            None
        ]
    );
}

#[tokio::test]
async fn faults_come_after_authentication() {
    let standin = unpaced().await;
    standin.inject(Fault::once(FaultKind::HttpStatus(500)));
    let response = reqwest::Client::new()
        .post(format!("{}/chat.postMessage", standin.api_url()))
        .json(&json!({"channel": "#a", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(response).await.error(), Some("not_authed"));
    // The fault is still queued for the next authenticated request.
    assert_eq!(
        post(&standin, &json!({"channel": "#a", "text": "x"}))
            .await
            .status,
        500
    );
}

#[tokio::test]
async fn accept_then_delay_records_the_message_though_the_client_times_out() {
    let standin = unpaced().await;
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_millis(1500),
    )));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let sent = client
        .post(format!("{}/chat.postMessage", standin.api_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": "#alerts", "text": "maybe posted"}))
        .send()
        .await;

    assert!(sent.is_err_and(|e| e.is_timeout()));
    let messages = standin.messages_in("#alerts");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text.as_deref(), Some("maybe posted"));
}

#[tokio::test]
async fn accept_then_delay_answers_success_to_a_patient_client() {
    let standin = unpaced().await;
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_millis(200),
    )));
    let started = std::time::Instant::now();
    let reply = post(&standin, &json!({"channel": "#alerts", "text": "slow"})).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(reply.is_ok());
}

#[tokio::test]
async fn delay_lets_the_client_time_out_and_posts_nothing() {
    let standin = unpaced().await;
    standin
        .inject(Fault::once(FaultKind::Delay(Duration::from_millis(1500))).on_channel("#alerts"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let sent = client
        .post(format!("{}/chat.postMessage", standin.api_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": "#alerts", "text": "lost"}))
        .send()
        .await;

    assert!(sent.is_err_and(|e| e.is_timeout()));
    assert!(standin.messages().is_empty());
    assert!(
        post(&standin, &json!({"channel": "#alerts", "text": "again"}))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn faults_can_be_queued_and_messages_read_over_http() {
    let standin = unpaced().await;
    let base = format!("http://{}", standin.addr());
    let client = reqwest::Client::new();

    let queued = client
        .post(format!("{base}/_standin/faults"))
        .json(&json!([
            {"channel": "#alerts", "times": 1, "kind": {"http_status": 500}},
            {"kind": {"slack_error": "not_in_channel"}}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(queued).await.body["queued"], 2);

    assert_eq!(
        post(&standin, &json!({"channel": "#alerts", "text": "x"}))
            .await
            .status,
        500
    );
    assert_eq!(
        post(&standin, &json!({"channel": "#alerts", "text": "x"}))
            .await
            .error(),
        Some("not_in_channel")
    );
    assert!(
        post(&standin, &json!({"channel": "#alerts", "text": "posted"}))
            .await
            .is_ok()
    );

    let listed = client
        .get(format!("{base}/_standin/messages?channel=%23alerts"))
        .send()
        .await
        .unwrap();
    let listed = reply(listed).await.body;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["text"], "posted");
    assert_eq!(listed[0]["channel"], "alerts");
}

#[tokio::test]
async fn a_malformed_fault_is_refused_with_a_reason() {
    let standin = unpaced().await;
    let response = reqwest::Client::new()
        .post(format!("http://{}/_standin/faults", standin.addr()))
        .json(&json!({"kind": {"explode": true}}))
        .send()
        .await
        .unwrap();
    let reply = reply(response).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn reset_forgets_messages_faults_and_rate_limits() {
    let standin = slack_standin::Standin::start(slack_standin::StandinConfig::default())
        .await
        .unwrap();
    assert!(post(&standin, &json!({"channel": "#alerts", "text": "x"}))
        .await
        .is_ok());
    standin.inject(Fault::once(FaultKind::HttpStatus(500)));

    let response = reqwest::Client::new()
        .post(format!("http://{}/_standin/reset", standin.addr()))
        .send()
        .await
        .unwrap();
    assert!(reply(response).await.is_ok());

    assert!(standin.messages().is_empty());
    assert!(standin.requests().is_empty());
    assert!(post(&standin, &json!({"channel": "#alerts", "text": "x"}))
        .await
        .is_ok());
}
