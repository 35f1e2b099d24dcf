use serde_json::{json, Value};
use slack_standin::Standin;

use crate::{post, unpaced, Reply};

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text})
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

async fn post_blocks(standin: &Standin, blocks: Value) -> Reply {
    post(
        standin,
        &json!({"channel": "#alerts", "text": "fallback", "blocks": blocks}),
    )
    .await
}

/// Posts the blocks and asserts Slack's answer: `invalid_blocks` with an error naming `pointer`.
async fn assert_invalid(blocks: Value, pointer: &str) {
    let standin = unpaced().await;
    let reply = post_blocks(&standin, blocks).await;
    assert_eq!((reply.status, reply.error()), (200, Some("invalid_blocks")));
    let errors: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let wanted = format!("[json-pointer:{pointer}]");
    assert!(
        errors.iter().any(|e| e.ends_with(&wanted)),
        "expected an error at {pointer}, got {errors:?}"
    );
    assert!(standin.messages().is_empty());
}

#[tokio::test]
async fn accepts_every_block_exactly_at_its_limits() {
    let standin = unpaced().await;
    let mut blocks = vec![
        json!({"type": "header", "text": plain(&"h".repeat(150))}),
        json!({"type": "section", "text": mrkdwn(&"s".repeat(3000))}),
        json!({"type": "section", "fields": vec![mrkdwn(&"f".repeat(2000)); 10]}),
        json!({"type": "context", "elements": vec![mrkdwn(&"c".repeat(3000)); 10]}),
        json!({"type": "actions", "elements": [{"type": "button", "text": plain("Open"), "url": "https://example.com"}]}),
        json!({"type": "image", "image_url": "https://example.com/a.png", "alt_text": "a chart"}),
        json!({"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": "hi"}]}]}),
    ];
    blocks.resize(50, json!({"type": "divider"}));
    let reply = post_blocks(&standin, Value::Array(blocks)).await;
    assert!(reply.is_ok(), "{}", reply.body);
}

#[tokio::test]
async fn rejects_more_than_50_blocks() {
    assert_invalid(json!(vec![json!({"type": "divider"}); 51]), "/blocks").await;
}

#[tokio::test]
async fn rejects_blocks_that_are_not_an_array() {
    assert_invalid(json!({"type": "divider"}), "/blocks").await;
    assert_invalid(json!("[not json"), "/blocks").await;
}

#[tokio::test]
async fn rejects_an_unknown_block_type() {
    assert_invalid(json!([{"type": "table"}]), "/blocks/0/type").await;
    assert_invalid(json!([{"text": plain("no type")}]), "/blocks/0/type").await;
}

#[tokio::test]
async fn rejects_header_text_longer_than_150_characters() {
    assert_invalid(
        json!([{"type": "header", "text": plain(&"h".repeat(151))}]),
        "/blocks/0/text/text",
    )
    .await;
}

#[tokio::test]
async fn rejects_a_header_in_mrkdwn() {
    assert_invalid(
        json!([{"type": "header", "text": mrkdwn("*bold*")}]),
        "/blocks/0/text/type",
    )
    .await;
}

#[tokio::test]
async fn rejects_section_text_longer_than_3000_characters() {
    assert_invalid(
        json!([{"type": "divider"}, {"type": "section", "text": mrkdwn(&"s".repeat(3001))}]),
        "/blocks/1/text/text",
    )
    .await;
}

#[tokio::test]
async fn rejects_a_section_with_more_than_10_fields() {
    assert_invalid(
        json!([{"type": "section", "fields": vec![mrkdwn("*a*\nb"); 11]}]),
        "/blocks/0/fields",
    )
    .await;
}

#[tokio::test]
async fn rejects_a_section_field_longer_than_2000_characters() {
    assert_invalid(
        json!([{"type": "section", "fields": [mrkdwn("ok"), mrkdwn(&"f".repeat(2001))]}]),
        "/blocks/0/fields/1/text",
    )
    .await;
}

#[tokio::test]
async fn rejects_a_section_without_text_or_fields() {
    assert_invalid(json!([{"type": "section"}]), "/blocks/0").await;
}

#[tokio::test]
async fn rejects_a_context_with_more_than_10_elements() {
    assert_invalid(
        json!([{"type": "context", "elements": vec![mrkdwn("c"); 11]}]),
        "/blocks/0/elements",
    )
    .await;
}

#[tokio::test]
async fn rejects_a_context_text_longer_than_3000_characters() {
    assert_invalid(
        json!([{"type": "context", "elements": [mrkdwn(&"c".repeat(3001))]}]),
        "/blocks/0/elements/0/text",
    )
    .await;
}

#[tokio::test]
async fn rejects_a_text_object_with_empty_text_or_no_type() {
    assert_invalid(
        json!([{"type": "section", "text": mrkdwn("")}]),
        "/blocks/0/text/text",
    )
    .await;
    assert_invalid(
        json!([{"type": "section", "text": {"text": "typeless"}}]),
        "/blocks/0/text/type",
    )
    .await;
}

#[tokio::test]
async fn reports_every_problem_not_just_the_first() {
    let standin = unpaced().await;
    let reply = post_blocks(
        &standin,
        json!([
            {"type": "header", "text": plain(&"h".repeat(151))},
            {"type": "section"}
        ]),
    )
    .await;
    assert_eq!(reply.body["errors"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn blocks_alone_are_enough_without_text() {
    let standin = unpaced().await;
    let reply = post(
        &standin,
        &json!({"channel": "#alerts", "blocks": [{"type": "section", "text": mrkdwn("hi")}]}),
    )
    .await;
    assert!(reply.is_ok(), "{}", reply.body);
    assert_eq!(standin.messages()[0].text, None);
}
