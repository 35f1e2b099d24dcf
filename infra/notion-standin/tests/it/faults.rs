//! Injected faults, in process and over HTTP.

use std::time::Duration;

use notion_standin::{Failure, Fault, FaultKind, PropertyType, DEFAULT_TOKEN};
use serde_json::json;

use crate::{create_page, event_page, reply, unpaced, VERSION};

fn client(timeout_ms: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .build()
        .unwrap()
}

fn page_request(
    client: &reqwest::Client,
    api_url: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{api_url}/v1/pages"))
        .bearer_auth(DEFAULT_TOKEN)
        .header("Notion-Version", VERSION)
        .json(body)
}

// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn each_failure_answers_notions_status_and_code_and_creates_nothing() {
    let (standin, ids) = unpaced().await;
    let cases = [
        (Failure::InternalServerError, 500, "internal_server_error"),
        (Failure::BadGateway, 502, "bad_gateway"),
        (Failure::ServiceUnavailable, 503, "service_unavailable"),
        (Failure::GatewayTimeout, 504, "gateway_timeout"),
        (Failure::Conflict, 409, "conflict_error"),
    ];
    for (failure, status, code) in cases {
        standin.inject(Fault::once(FaultKind::Error(failure)));
        let reply = create_page(&standin, &event_page(&ids.data_source_id, "e")).await;
        assert_eq!((reply.status, reply.code()), (status, Some(code)));
        assert_eq!(reply.body["object"], "error");
        assert_eq!(reply.body["status"], status);
        assert!(!reply.message().is_empty());
    }
    assert!(standin.pages(&ids.data_source_id).is_empty());
    assert_eq!(
        create_page(&standin, &event_page(&ids.data_source_id, "e"))
            .await
            .status,
        200
    );
}

// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn accept_then_error_creates_the_page_and_answers_the_failure() {
    let (standin, ids) = unpaced().await;
    for (n, failure) in [
        Failure::InternalServerError,
        Failure::BadGateway,
        Failure::ServiceUnavailable,
        Failure::GatewayTimeout,
    ]
    .into_iter()
    .enumerate()
    {
        standin.inject(Fault::once(FaultKind::AcceptThenError(failure)));
        let reply = create_page(&standin, &event_page(&ids.data_source_id, &format!("e{n}"))).await;
        assert!(reply.status >= 500, "{}", reply.status);
        assert_eq!(standin.pages(&ids.data_source_id).len(), n + 1);
    }
}

// Docs: https://developers.notion.com/reference/request-limits#rate-limits
#[tokio::test]
async fn a_rate_limited_fault_answers_429_with_its_retry_after() {
    let (standin, ids) = unpaced().await;
    standin.inject(Fault::once(FaultKind::RateLimited {
        retry_after_secs: 7,
    }));
    let reply = create_page(&standin, &event_page(&ids.data_source_id, "e")).await;
    assert_eq!((reply.status, reply.code()), (429, Some("rate_limited")));
    assert_eq!(reply.headers["retry-after"], "7");
    assert!(standin.pages(&ids.data_source_id).is_empty());
}

#[tokio::test]
async fn a_fault_applies_to_its_number_of_requests_on_its_data_source_only() {
    let (standin, ids) = unpaced().await;
    let other = standin
        .create_database("other", &[("Name", PropertyType::Title)])
        .unwrap();
    standin.inject(
        Fault::times(2, FaultKind::Error(Failure::BadGateway))
            .on_data_source(&ids.data_source_id.replace('-', "")),
    );
    let elsewhere = create_page(
        &standin,
        &json!({"parent": {"data_source_id": other.data_source_id}, "properties": {"Name": {"title": crate::rich("x")}}}),
    )
    .await;
    assert_eq!(elsewhere.status, 200);
    for _ in 0..2 {
        assert_eq!(
            create_page(&standin, &event_page(&ids.data_source_id, "e"))
                .await
                .status,
            502
        );
    }
    assert_eq!(
        create_page(&standin, &event_page(&ids.data_source_id, "e"))
            .await
            .status,
        200
    );
    let codes: Vec<Option<String>> = standin.requests().into_iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        [
            None,
            Some("bad_gateway".into()),
            Some("bad_gateway".into()),
            None
        ]
    );
}

#[tokio::test]
async fn faults_come_after_authentication() {
    let (standin, ids) = unpaced().await;
    standin.inject(Fault::once(FaultKind::Error(Failure::InternalServerError)));
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/pages", standin.api_url()))
        .header("Notion-Version", VERSION)
        .json(&event_page(&ids.data_source_id, "e"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(refused).await.code(), Some("unauthorized"));
    assert_eq!(
        create_page(&standin, &event_page(&ids.data_source_id, "e"))
            .await
            .status,
        500
    );
}

#[tokio::test(start_paused = true)]
async fn a_delay_holds_the_request_and_then_creates_the_page() {
    let (standin, ids) = unpaced().await;
    standin.inject(Fault::once(FaultKind::Delay(Duration::from_secs(20))));
    let before = tokio::time::Instant::now();
    let reply = create_page(&standin, &event_page(&ids.data_source_id, "slow")).await;
    assert_eq!(reply.status, 200);
    let pages = standin.pages(&ids.data_source_id);
    assert_eq!(pages.len(), 1);
    assert!(pages[0].at.duration_since(before) >= Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_gives_up_during_a_delay_creates_nothing() {
    let (standin, ids) = unpaced().await;
    standin.inject(Fault::once(FaultKind::Delay(Duration::from_secs(20))));
    let sent = page_request(
        &client(1000),
        &standin.api_url(),
        &event_page(&ids.data_source_id, "lost"),
    )
    .send()
    .await;
    assert!(sent.is_err_and(|e| e.is_timeout()));
    // Well past the delay: the request went with its connection.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(standin.pages(&ids.data_source_id).is_empty());
}

#[tokio::test]
async fn accept_then_delay_creates_the_page_though_the_client_times_out() {
    let (standin, ids) = unpaced().await;
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_millis(1500),
    )));
    let sent = page_request(
        &client(300),
        &standin.api_url(),
        &event_page(&ids.data_source_id, "maybe"),
    )
    .send()
    .await;
    assert!(sent.is_err_and(|e| e.is_timeout()));
    let pages = standin.pages(&ids.data_source_id);
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].text("Event ID").as_deref(), Some("maybe"));
}

#[tokio::test]
async fn faults_can_be_queued_and_pages_read_over_http() {
    let (standin, ids) = unpaced().await;
    let base = standin.api_url();
    let http = reqwest::Client::new();
    let queued = http
        .post(format!("{base}/_standin/faults"))
        .json(&json!([
            {"data_source_id": ids.data_source_id, "kind": {"error": "service_unavailable"}},
            {"kind": {"accept_then_error": "gateway_timeout"}},
            {"kind": {"rate_limited": {"retry_after_secs": 2}}}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(queued).await.body["queued"], 3);

    assert_eq!(
        create_page(&standin, &event_page(&ids.data_source_id, "a"))
            .await
            .status,
        503
    );
    assert_eq!(
        create_page(&standin, &event_page(&ids.data_source_id, "b"))
            .await
            .status,
        504
    );
    let limited = create_page(&standin, &event_page(&ids.data_source_id, "c")).await;
    assert_eq!(
        (limited.status, &limited.headers["retry-after"]),
        (429, &"2".parse().unwrap())
    );
    assert_eq!(
        create_page(&standin, &event_page(&ids.data_source_id, "d"))
            .await
            .status,
        200
    );

    let listed = http
        .get(format!(
            "{base}/_standin/data_sources/{}/pages",
            ids.data_source_id
        ))
        .send()
        .await
        .unwrap();
    let listed = reply(listed).await.body;
    let events: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["properties"]["Event ID"]["rich_text"][0]["plain_text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(events, ["b", "d"]);
    assert!(listed[0]["at_ms"].is_u64());
}

#[tokio::test]
async fn a_malformed_fault_is_refused_with_a_reason() {
    let (standin, _) = unpaced().await;
    let response = reqwest::Client::new()
        .post(format!("{}/_standin/faults", standin.api_url()))
        .json(&json!({"kind": {"error": "teapot"}}))
        .send()
        .await
        .unwrap();
    let reply = reply(response).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn reset_forgets_pages_faults_and_requests_but_keeps_the_database() {
    let (standin, ids) = unpaced().await;
    create_page(&standin, &event_page(&ids.data_source_id, "e")).await;
    standin.inject(Fault::once(FaultKind::Error(Failure::InternalServerError)));
    let response = reqwest::Client::new()
        .post(format!("{}/_standin/reset", standin.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(response).await.body["ok"], true);
    assert!(standin.pages(&ids.data_source_id).is_empty());
    assert!(standin.requests().is_empty());
    assert_eq!(
        create_page(&standin, &event_page(&ids.data_source_id, "e"))
            .await
            .status,
        200
    );
}
