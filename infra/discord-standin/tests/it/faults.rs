//! Injected faults, in process and over HTTP.

use std::time::Duration;

use discord_standin::{Fault, FaultKind};
use serde_json::json;

use crate::{default_webhook, execute, execute_wait, reply, unpaced};

#[tokio::test]
async fn an_http_status_fault_answers_discords_body_and_stores_nothing() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    standin.inject(Fault::once(FaultKind::HttpStatus(500)));
    standin.inject(Fault::once(FaultKind::HttpStatus(502)));
    standin.inject(Fault::once(FaultKind::HttpStatus(503)));

    let internal = execute(&webhook.url, &json!({"content": "a"})).await;
    let bad_gateway = execute(&webhook.url, &json!({"content": "b"})).await;
    let unavailable = execute(&webhook.url, &json!({"content": "c"})).await;
    let fine = execute(&webhook.url, &json!({"content": "d"})).await;

    assert_eq!(internal.status, 500);
    assert_eq!(
        internal.body,
        json!({"message": "500: Internal Server Error", "code": 0})
    );
    assert_eq!(bad_gateway.status, 502);
    assert!(bad_gateway
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert_eq!(unavailable.status, 503);
    assert!(unavailable
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(fine.status, 204);
    let contents: Vec<_> = standin
        .all_messages()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(contents, vec![Some("d".to_owned())]);
}

#[tokio::test]
async fn a_fault_applies_to_exactly_its_number_of_requests_on_its_webhook() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    let other = standin.create_webhook("other");
    standin.inject(Fault::times(2, FaultKind::HttpStatus(503)).on_webhook(&webhook.id));

    let elsewhere = execute(&other.url, &json!({"content": "x"})).await;
    let first = execute(&webhook.url, &json!({"content": "x"})).await;
    let second = execute(&webhook.url, &json!({"content": "x"})).await;
    let third = execute(&webhook.url, &json!({"content": "x"})).await;

    assert_eq!(
        [elsewhere.status, first.status, second.status, third.status],
        [204, 503, 503, 204]
    );
    assert_eq!(standin.messages(&webhook.id).len(), 1);
}

// Docs: https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit
#[tokio::test]
async fn a_rate_limited_fault_answers_429_with_its_retry_after_and_scope() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    standin.inject(Fault::once(FaultKind::RateLimited {
        retry_after: Duration::from_millis(2500),
        global: false,
    }));
    standin.inject(Fault::once(FaultKind::RateLimited {
        retry_after: Duration::from_millis(64_570),
        global: true,
    }));

    let user = execute(&webhook.url, &json!({"content": "x"})).await;
    let global = execute(&webhook.url, &json!({"content": "x"})).await;

    assert_eq!(user.status, 429);
    assert_eq!(
        user.body,
        json!({"message": "You are being rate limited.", "retry_after": 2.5, "global": false})
    );
    assert_eq!(user.header("retry-after"), Some("3"));
    assert_eq!(user.header("x-ratelimit-scope"), Some("user"));
    assert!(user.header("x-ratelimit-global").is_none());
    assert_eq!(global.status, 429);
    assert_eq!(
        global.body,
        json!({"message": "You are being rate limited.", "retry_after": 64.57, "global": true})
    );
    assert_eq!(global.header("retry-after"), Some("65"));
    assert_eq!(global.header("x-ratelimit-global"), Some("true"));
    assert_eq!(global.header("x-ratelimit-scope"), Some("global"));
    assert!(standin.all_messages().is_empty());
}

#[tokio::test]
async fn faults_come_after_the_webhook_lookup() {
    let standin = unpaced().await;
    standin.inject(Fault::once(FaultKind::HttpStatus(500)));
    let unknown = format!("{}/webhooks/42/nope", standin.api_url());
    assert_eq!(
        execute(&unknown, &json!({"content": "x"})).await.status,
        404
    );
    // The fault is still queued for the next request to a real webhook.
    let webhook = default_webhook(&standin);
    assert_eq!(
        execute(&webhook.url, &json!({"content": "x"})).await.status,
        500
    );
}

#[tokio::test]
async fn accept_then_status_stores_the_message_and_answers_500() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    standin.inject(Fault::once(FaultKind::AcceptThenStatus(500)));

    // A refused request does not use up the fault: it waits for a message that is stored.
    let empty = execute_wait(&webhook, &json!({"content": ""})).await;
    let failed = execute_wait(&webhook, &json!({"content": "stored anyway"})).await;
    let retried = execute_wait(&webhook, &json!({"content": "stored anyway"})).await;

    assert_eq!(empty.status, 400);
    assert_eq!(failed.status, 500);
    assert_eq!(failed.body["code"], 0);
    assert_eq!(retried.status, 200);
    let messages = standin.messages(&webhook.id);
    assert_eq!(messages.len(), 2, "the retry duplicated the message");
    assert_eq!(messages[0].content, messages[1].content);
    let requests = standin.requests();
    assert_eq!(requests[1].status, 500);
    assert_eq!(
        requests[1].message_id.as_deref(),
        Some(messages[0].id.as_str())
    );
}

// The client times out on the paused clock: no wall-clock waiting.
#[tokio::test(start_paused = true)]
async fn accept_then_delay_stores_the_message_though_the_client_times_out() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_secs(30),
    )));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let sent = client
        .post(format!("{}?wait=true", webhook.url))
        .json(&json!({"content": "maybe posted"}))
        .send()
        .await;

    assert!(sent.is_err_and(|e| e.is_timeout()));
    let messages = standin.messages(&webhook.id);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].content.as_deref(), Some("maybe posted"));
}

#[tokio::test(start_paused = true)]
async fn accept_then_delay_answers_normally_to_a_patient_client() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_secs(3),
    )));
    let started = tokio::time::Instant::now();
    let reply = execute_wait(&webhook, &json!({"content": "slow"})).await;
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["content"], "slow");
}

#[tokio::test(start_paused = true)]
async fn delay_lets_the_client_time_out_and_stores_nothing() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    standin.inject(Fault::once(FaultKind::Delay(Duration::from_secs(30))).on_webhook(&webhook.id));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let sent = client
        .post(&webhook.url)
        .json(&json!({"content": "lost"}))
        .send()
        .await;
    assert!(sent.is_err_and(|e| e.is_timeout()));
    // Past the delay: the abandoned request was dropped with its connection.
    tokio::time::sleep(Duration::from_secs(60)).await;

    assert!(standin.all_messages().is_empty());
    assert_eq!(
        execute(&webhook.url, &json!({"content": "again"}))
            .await
            .status,
        204
    );
    assert_eq!(standin.messages(&webhook.id).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn delay_answers_a_patient_client_after_the_delay() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    standin.inject(Fault::once(FaultKind::Delay(Duration::from_secs(4))));
    let started = tokio::time::Instant::now();
    let reply = execute_wait(&webhook, &json!({"content": "late"})).await;
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_eq!(reply.status, 200);
    assert_eq!(standin.messages(&webhook.id).len(), 1);
}

#[tokio::test]
async fn faults_can_be_queued_over_http() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    let queued = reqwest::Client::new()
        .post(format!("http://{}/_standin/faults", standin.addr()))
        .json(&json!([
            {"webhook_id": webhook.id, "times": 1, "kind": {"http_status": 502}},
            {"kind": {"rate_limited": {"retry_after": 0.25, "global": true}}},
            {"kind": {"accept_then_status": 500}},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(queued).await.body["queued"], 3);

    let bad_gateway = execute(&webhook.url, &json!({"content": "a"})).await;
    let limited = execute(&webhook.url, &json!({"content": "b"})).await;
    let accepted_then_failed = execute(&webhook.url, &json!({"content": "c"})).await;
    let fine = execute(&webhook.url, &json!({"content": "d"})).await;

    assert_eq!(bad_gateway.status, 502);
    assert_eq!(
        (limited.status, limited.body["global"].clone()),
        (429, json!(true))
    );
    assert_eq!(limited.body["retry_after"], 0.25);
    assert_eq!(accepted_then_failed.status, 500);
    assert_eq!(fine.status, 204);
    let contents: Vec<_> = standin
        .all_messages()
        .into_iter()
        .map(|m| m.content.unwrap())
        .collect();
    assert_eq!(contents, ["c", "d"]);
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
