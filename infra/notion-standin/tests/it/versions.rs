//! The 2025-09-03 data model and the versions before it.

use notion_standin::{PropertyType, DEFAULT_TOKEN};
use reqwest::Method;
use serde_json::json;

use crate::{create_page, event_page, get, post, send, unpaced, LEGACY, VERSION};

// Docs: https://developers.notion.com/docs/upgrade-guide-2025-09-03
// Docs: https://developers.notion.com/reference/database
// Docs: https://developers.notion.com/reference/data-source
#[tokio::test]
async fn a_client_discovers_the_data_source_reads_its_schema_and_creates_a_page_in_it() {
    let (standin, ids) = unpaced().await;

    let database = get(&standin, &format!("/v1/databases/{}", ids.database_id)).await;
    assert_eq!(database.status, 200);
    assert_eq!(database.body["object"], "database");
    assert_eq!(
        database.body["data_sources"],
        json!([{"id": ids.data_source_id, "name": "ingestlayer events"}])
    );
    assert!(
        database.body.get("properties").is_none(),
        "the schema moved to the data source"
    );

    let source = get(
        &standin,
        &format!("/v1/data_sources/{}", ids.data_source_id),
    )
    .await;
    assert_eq!(source.status, 200);
    assert_eq!(source.body["object"], "data_source");
    assert_eq!(
        source.body["parent"],
        json!({"type": "database_id", "database_id": ids.database_id})
    );
    assert_eq!(source.body["properties"]["Name"]["type"], "title");
    assert_eq!(source.body["properties"]["Event ID"]["type"], "rich_text");
    assert_eq!(source.body["properties"]["Plan"]["type"], "select");
    assert_eq!(source.body["properties"]["Received"]["type"], "date");

    let page = create_page(&standin, &event_page(&ids.data_source_id, "evt_1")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["object"], "page");
    assert_eq!(page.body["parent"]["type"], "data_source_id");
    assert_eq!(page.body["parent"]["data_source_id"], ids.data_source_id);
    assert_eq!(page.body["parent"]["database_id"], ids.database_id);
    let id = page.body["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert!(page.body["url"]
        .as_str()
        .unwrap()
        .ends_with(&id.replace('-', "")));
    assert!(page.body["created_time"]
        .as_str()
        .unwrap()
        .ends_with(":00.000Z"));
    assert_eq!(
        page.body["properties"]["Event ID"]["rich_text"][0]["plain_text"],
        "evt_1"
    );
    assert_eq!(page.body["properties"]["Plan"]["select"]["name"], "pro");

    let pages = standin.pages(&ids.data_source_id);
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].id, id);
    assert_eq!(pages[0].text("Event ID").as_deref(), Some("evt_1"));
    assert_eq!(pages[0].value("Count"), Some(&json!(3)));
}

// Docs: https://developers.notion.com/reference/status-codes
// Docs: https://developers.notion.com/reference/versioning
#[tokio::test]
async fn a_request_without_notion_version_is_refused_with_missing_version() {
    let (standin, ids) = unpaced().await;
    let path = format!("/v1/databases/{}", ids.database_id);
    let reply = send(
        &standin,
        Method::GET,
        &path,
        None,
        Some(DEFAULT_TOKEN),
        None,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.code(), Some("missing_version"));
    assert_eq!(reply.body["object"], "error");
    assert_eq!(reply.body["status"], 400);
    assert!(reply
        .message()
        .starts_with("Notion-Version header failed validation"));

    let unknown = send(
        &standin,
        Method::GET,
        &path,
        Some("2019-01-01"),
        Some(DEFAULT_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, Some("validation_error"))
    );
    assert!(unknown.message().contains("2019-01-01"));

    let newest = send(
        &standin,
        Method::GET,
        &path,
        Some("2026-03-11"),
        Some(DEFAULT_TOKEN),
        None,
    )
    .await;
    assert_eq!(newest.status, 200);
    assert!(newest.body["data_sources"].is_array());
}

// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn an_unknown_or_missing_token_is_unauthorized() {
    let (standin, ids) = unpaced().await;
    let path = format!("/v1/databases/{}", ids.database_id);
    for token in [Some("ntn_wrong"), None] {
        let reply = send(&standin, Method::GET, &path, Some(VERSION), token, None).await;
        assert_eq!(reply.status, 401);
        assert_eq!(
            (
                reply.body["object"].as_str(),
                reply.body["status"].as_u64(),
                reply.code(),
                reply.message()
            ),
            (
                Some("error"),
                Some(401),
                Some("unauthorized"),
                "API token is invalid."
            )
        );
    }
    standin.add_integration("ntn_second");
    let second = send(
        &standin,
        Method::GET,
        &path,
        Some(VERSION),
        Some("ntn_second"),
        None,
    )
    .await;
    assert_eq!(second.status, 200);
}

// Docs: https://developers.notion.com/docs/upgrade-guide-2025-09-03 ("Behavior for existing integrations")
#[tokio::test]
async fn version_2022_06_28_keeps_working_with_database_id_for_a_single_source_database() {
    let (standin, ids) = unpaced().await;
    let mut body = event_page(&ids.data_source_id, "evt_old");
    body["parent"] = json!({"database_id": ids.database_id});
    let page = send(
        &standin,
        Method::POST,
        "/v1/pages",
        Some(LEGACY),
        Some(DEFAULT_TOKEN),
        Some(&body),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.body["parent"],
        json!({"type": "database_id", "database_id": ids.database_id})
    );

    let database = send(
        &standin,
        Method::GET,
        &format!("/v1/databases/{}", ids.database_id),
        Some(LEGACY),
        Some(DEFAULT_TOKEN),
        None,
    )
    .await;
    assert_eq!(database.body["properties"]["Event ID"]["type"], "rich_text");
    assert!(database.body.get("data_sources").is_none());

    let query = send(
        &standin,
        Method::POST,
        &format!("/v1/databases/{}/query", ids.database_id),
        Some(LEGACY),
        Some(DEFAULT_TOKEN),
        Some(&json!({"filter": {"property": "Event ID", "rich_text": {"equals": "evt_old"}}})),
    )
    .await;
    assert_eq!(query.status, 200, "{}", query.body);
    assert_eq!(query.body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(query.body["type"], "page_or_database");

    // The data source endpoints are 2025-09-03's, and the database query is gone from it.
    let old_on_new = post(
        &standin,
        &format!("/v1/databases/{}/query", ids.database_id),
        &json!({}),
    )
    .await;
    assert_eq!(old_on_new.code(), Some("invalid_request_url"));
    let new_on_old = send(
        &standin,
        Method::GET,
        &format!("/v1/data_sources/{}", ids.data_source_id),
        Some(LEGACY),
        Some(DEFAULT_TOKEN),
        None,
    )
    .await;
    assert_eq!(new_on_old.code(), Some("invalid_request_url"));
}

// Docs: https://developers.notion.com/docs/upgrade-guide-2025-09-03 ("Behavior for existing integrations")
#[tokio::test]
async fn a_second_data_source_breaks_database_id_requests_before_2025_09_03_only() {
    let (standin, ids) = unpaced().await;
    let second = standin
        .add_data_source(
            &ids.database_id,
            "archive",
            &[("Title", PropertyType::Title)],
        )
        .unwrap();

    let mut body = event_page(&ids.data_source_id, "evt_1");
    body["parent"] = json!({"database_id": ids.database_id});
    let refused = send(
        &standin,
        Method::POST,
        "/v1/pages",
        Some(LEGACY),
        Some(DEFAULT_TOKEN),
        Some(&body),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, Some("validation_error"))
    );
    assert_eq!(
        refused.message(),
        "Databases with multiple data sources are not supported in this API version."
    );
    let extra = &refused.body["additional_data"];
    assert_eq!(extra["error_type"], "multiple_data_sources_for_database");
    assert_eq!(
        extra["child_data_source_ids"],
        json!([ids.data_source_id, second])
    );
    assert_eq!(extra["minimum_api_version"], "2025-09-03");
    let read = send(
        &standin,
        Method::GET,
        &format!("/v1/databases/{}", ids.database_id),
        Some(LEGACY),
        Some(DEFAULT_TOKEN),
        None,
    )
    .await;
    assert_eq!(read.code(), Some("validation_error"));

    let current = create_page(&standin, &event_page(&ids.data_source_id, "evt_1")).await;
    assert_eq!(current.status, 200);
    let listed = get(&standin, &format!("/v1/databases/{}", ids.database_id)).await;
    assert_eq!(
        listed.body["data_sources"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(standin.pages(&second).is_empty());
}

// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn unknown_urls_and_malformed_ids_are_refused_in_notions_words() {
    let (standin, _) = unpaced().await;
    let unknown = get(&standin, "/v1/users/me").await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, Some("invalid_request_url"))
    );
    let bad_id = get(&standin, "/v1/data_sources/not-a-uuid").await;
    assert_eq!(
        (bad_id.status, bad_id.code()),
        (400, Some("validation_error"))
    );
    assert!(
        bad_id.message().contains("path.data_source_id"),
        "{}",
        bad_id.message()
    );
}
