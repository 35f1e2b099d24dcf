//! Injected faults, in process and over `POST /_standin/faults`.
//!
//! Delays run on the real clock with short waits (the client's timeout, the server's hold);
//! nothing asserts how long anything took beyond "at least the delay".

use std::time::Duration;

use serde_json::json;
use telegram_standin::{Fault, FaultKind};

use crate::{method_url, reply, send_text, unlimited, GROUP, PRIVATE, SUPERGROUP, TOKEN};

fn impatient() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// Waits (up to 10 s) until `chat` has `count` messages.
async fn wait_for_messages(standin: &telegram_standin::Standin, chat: i64, count: usize) -> bool {
    for _ in 0..200 {
        if standin.messages(chat).len() >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

// Docs: https://core.telegram.org/bots/api#making-requests (error_code and description; a 5xx
// is Telegram's side failing)
#[tokio::test]
async fn a_server_error_applies_to_exactly_its_number_of_requests_in_its_chat() {
    let standin = unlimited().await;
    standin.inject(Fault::times(2, FaultKind::HttpStatus(502)).in_chat(GROUP));

    let elsewhere = send_text(&standin, PRIVATE, "x").await;
    let first = send_text(&standin, GROUP, "x").await;
    let second = send_text(&standin, GROUP, "x").await;
    let third = send_text(&standin, GROUP, "x").await;

    assert!(elsewhere.is_ok());
    assert_eq!(
        first.body,
        json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})
    );
    assert_eq!(first.status, 502);
    assert_eq!(second.refusal(), (502, Some(502), Some("Bad Gateway")));
    assert!(third.is_ok());
    assert_eq!(standin.messages(GROUP).len(), 1);
}

// Docs: https://core.telegram.org/bots/api#making-requests
#[tokio::test]
async fn faults_are_used_in_the_order_they_were_queued() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::HttpStatus(500)));
    standin.inject(Fault::once(FaultKind::RateLimited { retry_after: 7 }));

    let internal = send_text(&standin, PRIVATE, "x").await;
    let limited = send_text(&standin, PRIVATE, "x").await;
    let fine = send_text(&standin, PRIVATE, "x").await;

    assert_eq!(
        internal.refusal(),
        (500, Some(500), Some("Internal Server Error"))
    );
    assert_eq!(
        limited.body,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7",
               "parameters": {"retry_after": 7}})
    );
    assert_eq!(limited.headers["retry-after"], "7");
    assert!(fine.is_ok());
    assert_eq!(standin.messages(PRIVATE).len(), 1);
}

// Docs: https://core.telegram.org/bots/api#making-requests (the token is checked first)
#[tokio::test]
async fn faults_come_after_the_token_check() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::HttpStatus(502)));
    let unauthorized = crate::call(
        &standin,
        "1:unknown",
        "sendMessage",
        &json!({"chat_id": PRIVATE, "text": "x"}),
    )
    .await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(send_text(&standin, PRIVATE, "x").await.status, 502);
}

// The ambiguous case: Telegram stored the message, the client saw a 5xx and will retry.
#[tokio::test]
async fn accept_then_fail_stores_the_message_and_answers_a_server_error() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::AcceptThenFail(502)).in_chat(PRIVATE));

    let reply = send_text(&standin, PRIVATE, "maybe sent").await;

    assert_eq!(reply.refusal(), (502, Some(502), Some("Bad Gateway")));
    let sent = standin.messages(PRIVATE);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "maybe sent");
}

#[tokio::test]
async fn accept_then_fail_still_answers_a_refusal_for_a_refused_message() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::AcceptThenFail(502)));
    let reply = send_text(&standin, PRIVATE, "").await;
    assert_eq!(
        reply.description(),
        Some("Bad Request: message text is empty")
    );
    assert!(standin.all_messages().is_empty());
}

// The ambiguous case: Telegram stored the message, the answer never arrived in time.
#[tokio::test]
async fn accept_then_delay_stores_the_message_though_the_client_times_out() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_secs(3),
    )));

    let sent = impatient()
        .post(method_url(&standin, TOKEN, "sendMessage"))
        .json(&json!({"chat_id": PRIVATE, "text": "maybe sent"}))
        .send()
        .await;

    assert!(sent.is_err_and(|e| e.is_timeout()));
    assert_eq!(standin.messages(PRIVATE).len(), 1);
}

#[tokio::test]
async fn accept_then_delay_answers_success_to_a_patient_client() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_millis(200),
    )));
    let started = std::time::Instant::now();
    let reply = send_text(&standin, PRIVATE, "slow").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(reply.is_ok());
}

#[tokio::test]
async fn a_delay_holds_the_request_then_sends_it() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::Delay(Duration::from_millis(200))));
    let started = std::time::Instant::now();
    let reply = send_text(&standin, PRIVATE, "late").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(reply.is_ok());
    assert_eq!(reply.body["result"]["text"], "late");
}

#[tokio::test]
async fn a_delayed_request_is_sent_even_when_the_client_gave_up() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::Delay(Duration::from_millis(600))).in_chat(PRIVATE));

    let sent = impatient()
        .post(method_url(&standin, TOKEN, "sendMessage"))
        .json(&json!({"chat_id": PRIVATE, "text": "eventually"}))
        .send()
        .await;

    assert!(sent.is_err_and(|e| e.is_timeout()));
    assert!(wait_for_messages(&standin, PRIVATE, 1).await);
    assert_eq!(standin.messages(PRIVATE)[0].text, "eventually");
}

#[tokio::test]
async fn faults_can_be_queued_over_http_for_a_chat_by_id_or_username() {
    let standin = unlimited().await;
    let client = reqwest::Client::new();
    let queued = client
        .post(format!("{}/_standin/faults", standin.api_url()))
        .json(&json!([
            {"chat_id": "@standin_alerts", "kind": {"http_status": 502}},
            {"chat_id": GROUP, "times": 2, "kind": {"rate_limited": {"retry_after": 30}}},
            {"chat_id": PRIVATE, "kind": {"accept_then_fail": 500}},
            {"chat_id": PRIVATE, "kind": {"accept_then_delay_ms": 10}},
            {"chat_id": PRIVATE, "kind": {"delay_ms": 10}}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(queued).await.body["queued"], 5);

    assert_eq!(send_text(&standin, SUPERGROUP, "x").await.status, 502);
    for _ in 0..2 {
        let limited = send_text(&standin, GROUP, "x").await;
        assert_eq!(limited.body["parameters"]["retry_after"], 30);
    }
    assert_eq!(send_text(&standin, PRIVATE, "a").await.status, 500);
    assert!(send_text(&standin, PRIVATE, "b").await.is_ok());
    assert!(send_text(&standin, PRIVATE, "c").await.is_ok());
    assert!(send_text(&standin, GROUP, "through").await.is_ok());
    let texts: Vec<String> = standin
        .messages(PRIVATE)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, vec!["a", "b", "c"]);
}

#[tokio::test]
async fn a_malformed_fault_is_refused_with_a_reason() {
    let standin = unlimited().await;
    for body in [
        json!({"kind": {"explode": true}}),
        json!({"kind": {"http_status": 502}, "chat": -5}),
        json!({"chat_id": "", "kind": {"http_status": 502}}),
    ] {
        let response = reqwest::Client::new()
            .post(format!("{}/_standin/faults", standin.api_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let reply = reply(response).await;
        assert_eq!(reply.status, 400, "{body}");
        assert!(reply.description().is_some_and(|d| !d.is_empty()), "{body}");
    }
}
