//! Querying a data source, as a client does to find out whether an ambiguous failure created
//! the page after all.

use std::time::Duration;

use notion_standin::{Failure, Fault, FaultKind};
use serde_json::{json, Value};

use crate::{create_page, event_page, post, unpaced};

fn by_event_id(event_id: &str) -> Value {
    json!({"filter": {"property": "Event ID", "rich_text": {"equals": event_id}}})
}

// Docs: https://developers.notion.com/reference/query-a-data-source
// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn after_an_accept_then_fail_the_event_id_query_finds_the_page() {
    let (standin, ids) = unpaced().await;
    create_page(&standin, &event_page(&ids.data_source_id, "evt_other")).await;
    standin.inject(Fault::once(FaultKind::AcceptThenError(
        Failure::GatewayTimeout,
    )));

    let failed = create_page(&standin, &event_page(&ids.data_source_id, "evt_42")).await;
    assert_eq!(
        (failed.status, failed.code()),
        (504, Some("gateway_timeout"))
    );

    let path = format!("/v1/data_sources/{}/query", ids.data_source_id);
    let found = post(&standin, &path, &by_event_id("evt_42")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["object"], "list");
    assert_eq!(found.body["type"], "page_or_data_source");
    assert_eq!(found.body["has_more"], false);
    assert_eq!(found.body["next_cursor"], Value::Null);
    let results = found.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["id"], standin.pages(&ids.data_source_id)[1].id);
    assert_eq!(
        results[0]["properties"]["Event ID"]["rich_text"][0]["plain_text"],
        "evt_42"
    );

    let missing = post(&standin, &path, &by_event_id("evt_43")).await;
    assert_eq!(missing.body["results"], json!([]));
}

// Docs: https://developers.notion.com/reference/query-a-data-source
#[tokio::test]
async fn after_an_answer_that_never_came_the_query_finds_the_page() {
    let (standin, ids) = unpaced().await;
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_secs(30),
    )));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sent = client
        .post(format!("{}/v1/pages", standin.api_url()))
        .bearer_auth(notion_standin::DEFAULT_TOKEN)
        .header("Notion-Version", crate::VERSION)
        .json(&event_page(&ids.data_source_id, "evt_7"))
        .send()
        .await;
    assert!(sent.is_err_and(|e| e.is_timeout()));

    let path = format!("/v1/data_sources/{}/query", ids.data_source_id);
    let found = post(&standin, &path, &by_event_id("evt_7")).await;
    assert_eq!(found.body["results"].as_array().map(Vec::len), Some(1));
}

// Docs: https://developers.notion.com/reference/filter-data-source-entries
#[tokio::test]
async fn filters_combine_with_and_and_or() {
    let (standin, ids) = unpaced().await;
    for (event, account) in [("e1", "acme"), ("e2", "acme"), ("e3", "globex")] {
        let mut body = event_page(&ids.data_source_id, event);
        body["properties"]["Account"] = json!({"rich_text": crate::rich(account)});
        assert_eq!(create_page(&standin, &body).await.status, 200);
    }
    let path = format!("/v1/data_sources/{}/query", ids.data_source_id);
    let events = |reply: &crate::Reply| -> Vec<String> {
        reply.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["properties"]["Event ID"]["rich_text"][0]["plain_text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let and = post(
        &standin,
        &path,
        &json!({"filter": {"and": [
            {"property": "Account", "rich_text": {"equals": "acme"}},
            {"property": "Event ID", "rich_text": {"equals": "e2"}}
        ]}}),
    )
    .await;
    assert_eq!(events(&and), ["e2"]);
    let or = post(
        &standin,
        &path,
        &json!({"filter": {"or": [
            {"property": "Event ID", "rich_text": {"equals": "e1"}},
            {"property": "Account", "rich_text": {"equals": "globex"}}
        ]}}),
    )
    .await;
    assert_eq!(events(&or), ["e1", "e3"]);
    let unknown = post(
        &standin,
        &path,
        &json!({"filter": {"property": "Tenant", "rich_text": {"equals": "x"}}}),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, Some("validation_error"))
    );
    assert!(unknown.message().contains("Tenant"));
}

// Docs: https://developers.notion.com/reference/intro#pagination
#[tokio::test]
async fn results_page_with_start_cursor_until_has_more_is_false() {
    let (standin, ids) = unpaced().await;
    for i in 0..5 {
        create_page(&standin, &event_page(&ids.data_source_id, &format!("e{i}"))).await;
    }
    let path = format!("/v1/data_sources/{}/query", ids.data_source_id);
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let reply = post(
            &standin,
            &path,
            &json!({"page_size": 2, "start_cursor": cursor}),
        )
        .await;
        for page in reply.body["results"].as_array().unwrap() {
            seen.push(page["id"].as_str().unwrap().to_owned());
        }
        if reply.body["has_more"] == false {
            assert_eq!(reply.body["next_cursor"], Value::Null);
            break;
        }
        cursor = reply.body["next_cursor"].clone();
        assert!(cursor.is_string());
        assert!(rounds < 10, "paging did not end");
    }
    assert_eq!(rounds, 3);
    let created: Vec<String> = standin
        .pages(&ids.data_source_id)
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(seen, created);
}
