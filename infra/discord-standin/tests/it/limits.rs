//! Each documented limit at its boundary: exactly at the limit accepted, one over refused with
//! Discord's Invalid Form Body naming the field.

use serde_json::{json, Value};

use crate::{default_webhook, execute_wait, unpaced, Reply};

fn text(n: usize) -> String {
    "a".repeat(n)
}

/// Posts `body`, expecting acceptance.
async fn accepted(body: Value) {
    let standin = unpaced().await;
    let reply = execute_wait(&default_webhook(&standin), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(standin.all_messages().len(), 1);
}

/// Posts `body`, expecting refusal; nothing is stored.
async fn refused(body: Value) -> Reply {
    let standin = unpaced().await;
    let reply = execute_wait(&default_webhook(&standin), &body).await;
    assert!(standin.all_messages().is_empty());
    reply
}

fn embed_with(key: &str, value: Value) -> Value {
    let mut embed = json!({"title": "t"});
    embed[key] = value;
    json!({"embeds": [embed]})
}

// Docs: https://discord.com/developers/docs/resources/webhook#execute-webhook
// ("you must provide a value for at least one of content, embeds, components, file, or poll")
// Docs: https://discord.com/developers/docs/topics/opcodes-and-status-codes#json (50006)
#[tokio::test]
async fn an_empty_message_answers_cannot_send_an_empty_message() {
    for body in [
        json!({}),
        json!({"content": ""}),
        json!({"content": "   "}),
        json!({"embeds": []}),
        json!({"username": "x"}),
    ] {
        let reply = refused(body.clone()).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.body,
            json!({"message": "Cannot send an empty message", "code": 50006}),
            "{body}"
        );
    }
}

// Docs: https://discord.com/developers/docs/resources/webhook#execute-webhook
// (content: "the message contents (up to 2000 characters)")
#[tokio::test]
async fn content_of_2000_characters_is_accepted_and_2001_refused() {
    accepted(json!({"content": text(2000)})).await;
    let reply = refused(json!({"content": text(2001)})).await;
    assert_eq!(
        reply.form_error(&["content"]).as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
    assert_eq!(
        reply.body["errors"]["content"]["_errors"][0]["message"],
        "Must be 2000 or fewer in length."
    );
}

// Docs: https://discord.com/developers/docs/resources/webhook#execute-webhook
// (embeds: "array of up to 10 embed objects")
#[tokio::test]
async fn ten_embeds_are_accepted_and_eleven_refused() {
    let embeds =
        |n: usize| -> Vec<Value> { (0..n).map(|i| json!({"title": format!("e{i}")})).collect() };
    accepted(json!({"embeds": embeds(10)})).await;
    let reply = refused(json!({"embeds": embeds(11)})).await;
    assert_eq!(
        reply.form_error(&["embeds"]).as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits (title 256)
#[tokio::test]
async fn an_embed_title_of_256_is_accepted_and_257_refused() {
    accepted(json!({"embeds": [{"title": text(256)}]})).await;
    let reply = refused(json!({"embeds": [{"title": text(257)}]})).await;
    assert_eq!(
        reply.form_error(&["embeds", "0", "title"]).as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits (description 4096)
#[tokio::test]
async fn an_embed_description_of_4096_is_accepted_and_4097_refused() {
    accepted(json!({"embeds": [{"description": text(4096)}]})).await;
    let reply = refused(json!({"embeds": [{"title": "ok"}, {"description": text(4097)}]})).await;
    assert_eq!(
        reply.form_error(&["embeds", "1", "description"]).as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits (25 fields)
#[tokio::test]
async fn twenty_five_fields_are_accepted_and_twenty_six_refused() {
    let fields = |n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"name": format!("f{i}"), "value": "v"}))
                .collect(),
        )
    };
    accepted(embed_with("fields", fields(25))).await;
    let reply = refused(embed_with("fields", fields(26))).await;
    assert_eq!(
        reply.form_error(&["embeds", "0", "fields"]).as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits (field.name 256)
#[tokio::test]
async fn a_field_name_of_256_is_accepted_and_257_refused() {
    accepted(embed_with(
        "fields",
        json!([{"name": text(256), "value": "v"}]),
    ))
    .await;
    let reply = refused(embed_with(
        "fields",
        json!([{"name": "ok", "value": "v"}, {"name": text(257), "value": "v"}]),
    ))
    .await;
    assert_eq!(
        reply
            .form_error(&["embeds", "0", "fields", "1", "name"])
            .as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits (field.value 1024)
#[tokio::test]
async fn a_field_value_of_1024_is_accepted_and_1025_refused() {
    accepted(embed_with(
        "fields",
        json!([{"name": "n", "value": text(1024)}]),
    ))
    .await;
    let reply = refused(embed_with(
        "fields",
        json!([{"name": "n", "value": text(1025)}]),
    ))
    .await;
    assert_eq!(
        reply
            .form_error(&["embeds", "0", "fields", "0", "value"])
            .as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits (footer.text 2048)
#[tokio::test]
async fn a_footer_text_of_2048_is_accepted_and_2049_refused() {
    accepted(embed_with("footer", json!({"text": text(2048)}))).await;
    let reply = refused(embed_with("footer", json!({"text": text(2049)}))).await;
    assert_eq!(
        reply
            .form_error(&["embeds", "0", "footer", "text"])
            .as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits (author.name 256)
#[tokio::test]
async fn an_author_name_of_256_is_accepted_and_257_refused() {
    accepted(embed_with("author", json!({"name": text(256)}))).await;
    let reply = refused(embed_with("author", json!({"name": text(257)}))).await;
    assert_eq!(
        reply
            .form_error(&["embeds", "0", "author", "name"])
            .as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
}

/// Embeds whose counted characters add up to `total` (at least 1200), every part within its
/// own limit: per embed, title 100, description 700, a field's name and value 100 each, footer
/// text 100, author name 100; the remainder goes to the first description.
fn embeds_totalling(total: usize) -> Value {
    let per_embed = 1200;
    let remainder = total % per_embed;
    let embeds: Vec<Value> = (0..total / per_embed)
        .map(|i| {
            let description = 700 + if i == 0 { remainder } else { 0 };
            json!({
                "title": text(100),
                "description": text(description),
                "fields": [{"name": text(100), "value": text(100)}],
                "footer": {"text": text(100)},
                "author": {"name": text(100)},
            })
        })
        .collect();
    Value::Array(embeds)
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
// ("the combined sum of characters in all title, description, field.name, field.value,
// footer.text, and author.name fields across all embeds ... must not exceed 6000")
#[tokio::test]
async fn embeds_totalling_6000_characters_are_accepted_and_6001_refused() {
    accepted(json!({"embeds": embeds_totalling(6000)})).await;
    let reply = refused(json!({"embeds": embeds_totalling(6001)})).await;
    assert_eq!(
        reply.form_error(&["embeds"]).as_deref(),
        Some("MAX_EMBED_SIZE_EXCEEDED")
    );
    assert_eq!(
        reply.body["errors"]["embeds"]["_errors"][0]["message"],
        "Embed size exceeds maximum size of 6000"
    );
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
// ("Leading and trailing whitespace characters are not included")
#[tokio::test]
async fn whitespace_around_a_title_does_not_count_towards_its_limit() {
    accepted(json!({"embeds": [{"title": format!("   {}\n", text(256))}]})).await;
}

// Docs: https://discord.com/developers/docs/reference#error-messages
#[tokio::test]
async fn all_failing_fields_are_reported_at_once() {
    let reply = refused(json!({
        "content": text(2001),
        "embeds": [{"title": text(257), "fields": [{"name": "n"}]}],
    }))
    .await;
    assert_eq!(
        reply.form_error(&["content"]).as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
    assert_eq!(
        reply.form_error(&["embeds", "0", "title"]).as_deref(),
        Some("BASE_TYPE_MAX_LENGTH")
    );
    assert_eq!(
        reply
            .form_error(&["embeds", "0", "fields", "0", "value"])
            .as_deref(),
        Some("BASE_TYPE_REQUIRED")
    );
}

// Docs: https://discord.com/developers/docs/resources/webhook#create-webhook (name rules)
#[tokio::test]
async fn a_username_containing_discord_is_refused() {
    let reply = refused(json!({"content": "x", "username": "Discord Alerts"})).await;
    assert_eq!(
        reply.form_error(&["username"]).as_deref(),
        Some("USERNAME_INVALID_CONTAINS")
    );
}
