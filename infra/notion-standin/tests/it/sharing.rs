//! Databases the integration cannot see.

use serde_json::json;

use crate::{create_page, event_page, get, post, unpaced};

// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn an_unshared_database_and_its_data_source_are_not_found() {
    let (standin, ids) = unpaced().await;
    assert!(standin.unshare(&ids.database_id));

    let database = get(&standin, &format!("/v1/databases/{}", ids.database_id)).await;
    assert_eq!(
        (database.status, database.code()),
        (404, Some("object_not_found"))
    );
    assert_eq!(
        database.message(),
        format!(
            "Could not find database with ID: {}. Make sure the relevant pages and databases are shared with your integration.",
            ids.database_id
        )
    );
    let page = create_page(&standin, &event_page(&ids.data_source_id, "e")).await;
    assert_eq!((page.status, page.code()), (404, Some("object_not_found")));
    assert!(page.message().starts_with(&format!(
        "Could not find data_source with ID: {}.",
        ids.data_source_id
    )));
    let query = post(
        &standin,
        &format!("/v1/data_sources/{}/query", ids.data_source_id),
        &json!({}),
    )
    .await;
    assert_eq!(query.status, 404);
    assert!(standin.pages(&ids.data_source_id).is_empty());

    assert!(standin.share(&ids.database_id));
    assert_eq!(
        create_page(&standin, &event_page(&ids.data_source_id, "e"))
            .await
            .status,
        200
    );
}

// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn a_database_that_does_not_exist_is_not_found_either() {
    let (standin, _) = unpaced().await;
    let missing = "27a5d30a17284a1ea78871341f22fb97";
    let reply = get(&standin, &format!("/v1/databases/{missing}")).await;
    assert_eq!(
        (reply.status, reply.code()),
        (404, Some("object_not_found"))
    );
    assert!(reply
        .message()
        .contains("27a5d30a-1728-4a1e-a788-71341f22fb97"));
    assert!(!standin.unshare(missing));
}

#[tokio::test]
async fn databases_are_created_and_unshared_over_http() {
    let (standin, _) = unpaced().await;
    let http = reqwest::Client::new();
    let base = standin.api_url();
    let created = http
        .post(format!("{base}/_standin/databases"))
        .json(&json!({"title": "signups", "properties": {"Name": "title", "Email": "email"}}))
        .send()
        .await
        .unwrap();
    let created = crate::reply(created).await.body;
    let database_id = created["database_id"].as_str().unwrap().to_owned();
    let source = get(
        &standin,
        &format!(
            "/v1/data_sources/{}",
            created["data_source_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(source.body["properties"]["Email"]["type"], "email");

    let untitled = http
        .post(format!("{base}/_standin/databases"))
        .json(&json!({"title": "x", "properties": {"Email": "email"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(untitled.status(), 400);

    let unshared = http
        .post(format!("{base}/_standin/databases/{database_id}/unshare"))
        .send()
        .await
        .unwrap();
    assert_eq!(unshared.status(), 200);
    assert_eq!(
        get(&standin, &format!("/v1/databases/{database_id}"))
            .await
            .status,
        404
    );
}
