//! Page properties checked against the data source's schema, errors naming the property.
//! Docs: https://developers.notion.com/reference/post-page

use serde_json::json;

use crate::{create_page, event_page, rich, unpaced, with_property};

// Docs: https://developers.notion.com/reference/post-page
// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn an_unknown_property_is_refused_by_name() {
    let (standin, ids) = unpaced().await;
    let body = with_property(
        &ids.data_source_id,
        "Tenant",
        json!({"rich_text": rich("acme")}),
    );
    let reply = create_page(&standin, &body).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, Some("validation_error"))
    );
    assert_eq!(reply.message(), "Tenant is not a property that exists.");
    assert!(standin.pages(&ids.data_source_id).is_empty());
}

// Docs: https://developers.notion.com/reference/page-property-values
#[tokio::test]
async fn a_value_of_the_wrong_type_is_refused_naming_the_property_and_its_type() {
    let (standin, ids) = unpaced().await;
    let cases = [
        (
            "Event",
            json!({"number": 3}),
            "Event is expected to be rich_text.",
        ),
        (
            "Plan",
            json!({"rich_text": rich("pro")}),
            "Plan is expected to be select.",
        ),
        (
            "Event",
            json!({"type": "title", "rich_text": rich("x")}),
            "Event is expected to be rich_text.",
        ),
    ];
    for (name, value, message) in cases {
        let reply = create_page(&standin, &with_property(&ids.data_source_id, name, value)).await;
        assert_eq!(
            (reply.code(), reply.message()),
            (Some("validation_error"), message)
        );
    }
    let count = create_page(
        &standin,
        &with_property(&ids.data_source_id, "Count", json!({"number": "3"})),
    )
    .await;
    assert_eq!(
        count.message(),
        "body failed validation: body.properties.Count.number should be a number or `null`, instead was `\"3\"`."
    );
    let date = create_page(
        &standin,
        &with_property(
            &ids.data_source_id,
            "Received",
            json!({"date": {"start": "yesterday"}}),
        ),
    )
    .await;
    assert!(
        date.message()
            .contains("body.properties.Received.date.start"),
        "{}",
        date.message()
    );
    assert!(standin.pages(&ids.data_source_id).is_empty());
}

// Docs: https://developers.notion.com/reference/post-page
#[tokio::test]
async fn the_title_property_is_required_and_properties_may_be_named_by_id() {
    let (standin, ids) = unpaced().await;
    let mut body = event_page(&ids.data_source_id, "evt_1");
    body["properties"].as_object_mut().unwrap().remove("Name");
    let reply = create_page(&standin, &body).await;
    assert_eq!(
        reply.message(),
        "body failed validation: body.properties.Name should be defined, instead was `undefined`."
    );
    // The title property's ID is `title`.
    body["properties"]["title"] = json!({"title": rich("by id")});
    let reply = create_page(&standin, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        standin.pages(&ids.data_source_id)[0]
            .text("Name")
            .as_deref(),
        Some("by id")
    );
}

// Docs: https://developers.notion.com/reference/status-codes
#[tokio::test]
async fn a_body_without_properties_or_parent_or_json_is_refused_as_notion_does() {
    let (standin, ids) = unpaced().await;
    let no_properties = create_page(
        &standin,
        &json!({"parent": {"data_source_id": ids.data_source_id}}),
    )
    .await;
    assert_eq!(
        no_properties.message(),
        "body failed validation: body.properties should be defined, instead was `undefined`."
    );
    let no_parent = create_page(&standin, &json!({"properties": {}})).await;
    assert!(no_parent
        .message()
        .contains("body.parent should be defined"));
    let bad_parent = create_page(
        &standin,
        &json!({"parent": {"data_source_id": "nope"}, "properties": {}}),
    )
    .await;
    assert!(bad_parent
        .message()
        .contains("body.parent.data_source_id should be a valid uuid"));

    let response = reqwest::Client::new()
        .post(format!("{}/v1/pages", standin.api_url()))
        .bearer_auth(notion_standin::DEFAULT_TOKEN)
        .header("Notion-Version", crate::VERSION)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let reply = crate::reply(response).await;
    assert_eq!(
        (reply.status, reply.code(), reply.message()),
        (400, Some("invalid_json"), "Error parsing JSON body.")
    );
}

// Docs: https://developers.notion.com/reference/page-property-values
#[tokio::test]
async fn a_new_select_option_is_added_once_and_reused() {
    let (standin, ids) = unpaced().await;
    let first = create_page(&standin, &event_page(&ids.data_source_id, "evt_1")).await;
    let second = create_page(&standin, &event_page(&ids.data_source_id, "evt_2")).await;
    let option = &first.body["properties"]["Plan"]["select"];
    assert_eq!(option["name"], "pro");
    assert_eq!(
        option["id"],
        second.body["properties"]["Plan"]["select"]["id"]
    );
    let schema = crate::get(
        &standin,
        &format!("/v1/data_sources/{}", ids.data_source_id),
    )
    .await;
    assert_eq!(
        schema.body["properties"]["Plan"]["select"]["options"][0]["name"],
        "pro"
    );
    // Properties nobody set come back empty.
    let mut body = event_page(&ids.data_source_id, "evt_3");
    body["properties"].as_object_mut().unwrap().remove("Count");
    let third = create_page(&standin, &body).await;
    assert_eq!(
        third.body["properties"]["Count"],
        json!({"id": third.body["properties"]["Count"]["id"], "type": "number", "number": null})
    );
}
