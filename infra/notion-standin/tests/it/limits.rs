//! Notion's size limits, each at its boundary.
//! Docs: https://developers.notion.com/reference/request-limits#size-limits

use notion_standin::PropertyType;
use serde_json::{json, Value};

use crate::{create_page, post, rich, unpaced, with_property};

fn paragraphs(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|_| json!({"object": "block", "type": "paragraph", "paragraph": {"rich_text": rich("x")}}))
            .collect(),
    )
}

// Docs: https://developers.notion.com/reference/request-limits#size-limits
#[tokio::test]
async fn text_content_may_have_2000_characters_and_not_2001() {
    let (standin, ids) = unpaced().await;
    let ok = with_property(
        &ids.data_source_id,
        "Event",
        json!({"rich_text": rich(&"a".repeat(2000))}),
    );
    assert_eq!(create_page(&standin, &ok).await.status, 200);

    let over = with_property(
        &ids.data_source_id,
        "Event",
        json!({"rich_text": rich(&"a".repeat(2001))}),
    );
    let reply = create_page(&standin, &over).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, Some("validation_error"))
    );
    assert_eq!(
        reply.message(),
        "body failed validation: body.properties.Event.rich_text[0].text.content.length should be ≤ `2000`, instead was `2001`."
    );
    let title = with_property(
        &ids.data_source_id,
        "Name",
        json!({"title": rich(&"t".repeat(2001))}),
    );
    assert!(create_page(&standin, &title)
        .await
        .message()
        .contains("body.properties.Name.title[0].text.content"));
    assert_eq!(standin.pages(&ids.data_source_id).len(), 1);
}

// Docs: https://developers.notion.com/reference/request-limits#size-limits
#[tokio::test]
async fn a_rich_text_array_may_have_100_elements_and_not_101() {
    let (standin, ids) = unpaced().await;
    let items =
        |n: usize| Value::Array((0..n).map(|_| json!({"text": {"content": "x"}})).collect());
    let ok = with_property(
        &ids.data_source_id,
        "Account",
        json!({"rich_text": items(100)}),
    );
    assert_eq!(create_page(&standin, &ok).await.status, 200);
    let over = with_property(
        &ids.data_source_id,
        "Account",
        json!({"rich_text": items(101)}),
    );
    let reply = create_page(&standin, &over).await;
    assert_eq!(reply.code(), Some("validation_error"));
    assert_eq!(
        reply.message(),
        "body failed validation: body.properties.Account.rich_text.length should be ≤ `100`, instead was `101`."
    );
}

// Docs: https://developers.notion.com/reference/request-limits#size-limits
#[tokio::test]
async fn a_link_url_may_have_2000_characters_and_not_2001() {
    let (standin, ids) = unpaced().await;
    let link = |n: usize| json!({"rich_text": [{"text": {"content": "x", "link": {"url": format!("https://e.x/{}", "a".repeat(n - 12))}}}]});
    assert_eq!(
        create_page(
            &standin,
            &with_property(&ids.data_source_id, "Event", link(2000))
        )
        .await
        .status,
        200
    );
    let reply = create_page(
        &standin,
        &with_property(&ids.data_source_id, "Event", link(2001)),
    )
    .await;
    assert!(reply.message().contains("body.properties.Event.rich_text[0].text.link.url.length should be ≤ `2000`, instead was `2001`"), "{}", reply.message());
}

// Docs: https://developers.notion.com/reference/request-limits#size-limits
#[tokio::test]
async fn a_multi_select_may_have_100_options_and_not_101() {
    let (standin, _) = unpaced().await;
    let ids = standin
        .create_database(
            "tags",
            &[
                ("Name", PropertyType::Title),
                ("Tags", PropertyType::MultiSelect),
            ],
        )
        .unwrap();
    let page = |n: usize| {
        json!({
            "parent": {"data_source_id": ids.data_source_id},
            "properties": {
                "Name": {"title": rich("t")},
                "Tags": {"multi_select": (0..n).map(|i| json!({"name": format!("t{i}")})).collect::<Vec<_>>()},
            }
        })
    };
    assert_eq!(create_page(&standin, &page(100)).await.status, 200);
    let reply = create_page(&standin, &page(101)).await;
    assert_eq!(
        reply.message(),
        "body failed validation: body.properties.Tags.multi_select.length should be ≤ `100`, instead was `101`."
    );
}

// Docs: https://developers.notion.com/reference/request-limits#size-limits
#[tokio::test]
async fn a_page_may_bring_100_children_blocks_and_not_101() {
    let (standin, ids) = unpaced().await;
    let mut ok = with_property(
        &ids.data_source_id,
        "Event",
        json!({"rich_text": rich("x")}),
    );
    ok["children"] = paragraphs(100);
    assert_eq!(create_page(&standin, &ok).await.status, 200);
    assert_eq!(standin.pages(&ids.data_source_id)[0].children.len(), 100);

    let mut over = ok.clone();
    over["children"] = paragraphs(101);
    let reply = create_page(&standin, &over).await;
    assert_eq!(
        reply.message(),
        "body failed validation: body.children.length should be ≤ `100`, instead was `101`."
    );
    let mut long = ok.clone();
    long["children"] = json!([{"paragraph": {"rich_text": rich(&"a".repeat(2001))}}]);
    assert!(create_page(&standin, &long)
        .await
        .message()
        .contains("body.children[0].paragraph.rich_text[0].text.content.length"));
}

// Docs: https://developers.notion.com/reference/request-limits#size-limits
#[tokio::test]
async fn a_payload_may_hold_1000_blocks_and_500kb_and_no_more() {
    let (standin, ids) = unpaced().await;
    let toggles = |per: usize| {
        Value::Array(
            (0..100)
                .map(|_| json!({"toggle": {"rich_text": rich("t"), "children": paragraphs(per)}}))
                .collect(),
        )
    };
    let mut ok = with_property(
        &ids.data_source_id,
        "Event",
        json!({"rich_text": rich("x")}),
    );
    ok["children"] = toggles(9); // 100 + 900 blocks
    assert_eq!(create_page(&standin, &ok).await.status, 200);
    let mut over = ok.clone();
    over["children"] = toggles(10); // 1100 blocks
    let reply = create_page(&standin, &over).await;
    assert_eq!(reply.code(), Some("validation_error"));
    assert!(
        reply.message().contains("1100 block elements"),
        "{}",
        reply.message()
    );

    let mut heavy = ok.clone();
    let big = json!([{"text": {"content": "a".repeat(2000)}}, {"text": {"content": "a".repeat(2000)}}, {"text": {"content": "a".repeat(2000)}}]);
    heavy["children"] = Value::Array(
        (0..100)
            .map(|_| json!({"paragraph": {"rich_text": big}}))
            .collect(),
    );
    let reply = create_page(&standin, &heavy).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, Some("validation_error"))
    );
    assert!(reply.message().contains("500KB"), "{}", reply.message());
    assert_eq!(standin.pages(&ids.data_source_id).len(), 1);
}

// Docs: https://developers.notion.com/reference/intro#pagination
#[tokio::test]
async fn a_query_may_ask_for_100_results_a_page_and_not_101() {
    let (standin, ids) = unpaced().await;
    let path = format!("/v1/data_sources/{}/query", ids.data_source_id);
    assert_eq!(
        post(&standin, &path, &json!({"page_size": 100}))
            .await
            .status,
        200
    );
    let reply = post(&standin, &path, &json!({"page_size": 101})).await;
    assert_eq!(
        reply.message(),
        "body failed validation: body.page_size should be ≤ `100`, instead was `101`."
    );
}
