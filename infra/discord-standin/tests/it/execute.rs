use serde_json::{json, Value};

use discord_standin::{DEFAULT_WEBHOOK_ID, DEFAULT_WEBHOOK_TOKEN};

use crate::{default_webhook, execute, execute_wait, reply, unpaced};

// Docs: https://discord.com/developers/docs/resources/webhook#execute-webhook
#[tokio::test]
async fn wait_true_answers_the_created_message_object() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    let embed = json!({"title": "feature.used", "fields": [{"name": "plan", "value": "free"}]});

    let reply = execute_wait(
        &webhook,
        &json!({"content": "hello", "username": "ingestlayer", "embeds": [embed]}),
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let messages = standin.messages(&webhook.id);
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(reply.body["id"], Value::String(message.id.clone()));
    assert!(
        message.id.parse::<u64>().is_ok(),
        "id is a snowflake string"
    );
    assert_eq!(
        reply.body["channel_id"],
        Value::String(webhook.channel_id.clone())
    );
    assert_eq!(reply.body["webhook_id"], Value::String(webhook.id.clone()));
    assert_eq!(reply.body["content"], "hello");
    assert_eq!(reply.body["author"]["username"], "ingestlayer");
    assert_eq!(reply.body["embeds"][0]["title"], "feature.used");
    assert_eq!(reply.body["embeds"][0]["type"], "rich");
    assert_eq!(
        reply.body["timestamp"],
        Value::String(message.timestamp.clone())
    );
    assert!(message.waited);
    assert_eq!(message.content.as_deref(), Some("hello"));
    assert_eq!(message.embeds, vec![embed]);
}

// Docs: https://discord.com/developers/docs/resources/webhook#execute-webhook
// ("Returns a message or 204 No Content depending on the wait query parameter")
#[tokio::test]
async fn without_wait_the_answer_is_204_and_the_message_is_stored() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);

    let plain = execute(&webhook.url, &json!({"content": "one"})).await;
    let wait_false = execute(
        &format!("{}?wait=false", webhook.url),
        &json!({"content": "two"}),
    )
    .await;

    assert_eq!(plain.status, 204);
    assert_eq!(plain.body, Value::Null);
    assert_eq!(wait_false.status, 204);
    let contents: Vec<_> = standin
        .messages(&webhook.id)
        .into_iter()
        .map(|m| (m.content, m.waited))
        .collect();
    assert_eq!(
        contents,
        vec![(Some("one".into()), false), (Some("two".into()), false)]
    );
}

// Docs: https://discord.com/developers/docs/reference#boolean-query-strings
#[tokio::test]
async fn a_wait_value_that_is_no_boolean_is_a_form_error() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    let reply = execute(
        &format!("{}?wait=yes", webhook.url),
        &json!({"content": "x"}),
    )
    .await;
    assert_eq!(
        reply.form_error(&["wait"]).as_deref(),
        Some("BASE_TYPE_BOOLEAN")
    );
    assert!(standin.all_messages().is_empty());
}

// Docs: https://discord.com/developers/docs/topics/opcodes-and-status-codes#json (10015)
#[tokio::test]
async fn an_unknown_webhook_answers_404_unknown_webhook() {
    let standin = unpaced().await;
    let url = format!(
        "{}/webhooks/1234567890123456789/whatever",
        standin.api_url()
    );

    let reply = execute(&url, &json!({"content": "x"})).await;

    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body,
        json!({"message": "Unknown Webhook", "code": 10015})
    );
    assert!(standin.all_messages().is_empty());
    assert_eq!(standin.requests()[0].code, Some(10015));
}

// Docs: https://discord.com/developers/docs/topics/opcodes-and-status-codes#json (10015)
#[tokio::test]
async fn a_deleted_webhook_answers_404_unknown_webhook() {
    let standin = unpaced().await;
    let webhook = standin.create_webhook("alerts");
    assert_eq!(
        execute(&webhook.url, &json!({"content": "before"}))
            .await
            .status,
        204
    );

    assert!(standin.delete_webhook(&webhook.id));
    let reply = execute(&webhook.url, &json!({"content": "after"})).await;

    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["code"], 10015);
    assert_eq!(standin.messages(&webhook.id).len(), 1);
    assert!(!standin.delete_webhook(&webhook.id));
}

// Docs: https://discord.com/developers/docs/topics/opcodes-and-status-codes#json (50027)
#[tokio::test]
async fn a_known_webhook_with_the_wrong_token_answers_invalid_webhook_token() {
    let standin = unpaced().await;
    let url = format!(
        "{}/webhooks/{DEFAULT_WEBHOOK_ID}/not-the-token",
        standin.api_url()
    );
    let reply = execute(&url, &json!({"content": "x"})).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.body,
        json!({"message": "Invalid Webhook Token", "code": 50027})
    );
}

// Docs: https://discord.com/developers/docs/reference#snowflakes
#[tokio::test]
async fn a_webhook_id_that_is_no_snowflake_is_a_form_error() {
    let standin = unpaced().await;
    let url = format!("{}/webhooks/abc/{DEFAULT_WEBHOOK_TOKEN}", standin.api_url());
    let reply = execute(&url, &json!({"content": "x"})).await;
    assert_eq!(
        reply.form_error(&["webhook_id"]).as_deref(),
        Some("NUMBER_TYPE_COERCE")
    );
}

// Docs: https://discord.com/developers/docs/topics/opcodes-and-status-codes#json (50109)
#[tokio::test]
async fn a_body_that_is_not_a_json_object_answers_50109() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    for body in ["{not json", "[1, 2]", ""] {
        let response = reqwest::Client::new()
            .post(&webhook.url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let reply = reply(response).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.body["code"], 50109, "{body}");
    }
    assert!(standin.all_messages().is_empty());
}

#[tokio::test]
async fn the_default_webhook_exists_from_start_with_a_fixed_url() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    assert_eq!(webhook.id, "1000000000000000001");
    assert_eq!(webhook.token, "standin-token");
    assert_eq!(
        webhook.url,
        format!(
            "http://{}/api/v10/webhooks/1000000000000000001/standin-token",
            standin.addr()
        )
    );
    assert!(standin.api_url().ends_with("/api/v10"));
    assert!(!format!("{webhook:?}").contains("standin-token"));
}

// Docs: https://discord.com/developers/docs/resources/webhook#get-webhook-with-token
#[tokio::test]
async fn get_webhook_with_token_answers_the_webhook_object() {
    let standin = unpaced().await;
    let webhook = standin.create_webhook("alerts");
    let response = reqwest::get(&webhook.url).await.unwrap();
    let reply = reply(response).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["id"], Value::String(webhook.id.clone()));
    assert_eq!(reply.body["name"], "alerts");
    assert_eq!(reply.body["type"], 1);
    assert_eq!(
        reply.body["channel_id"],
        Value::String(webhook.channel_id.clone())
    );
}

#[tokio::test]
async fn webhooks_are_created_and_messages_read_over_http() {
    let standin = unpaced().await;
    let base = format!("http://{}", standin.addr());
    let client = reqwest::Client::new();

    let created = client
        .post(format!("{base}/_standin/webhooks"))
        .json(&json!({"name": "alerts"}))
        .send()
        .await
        .unwrap();
    let created = reply(created).await.body;
    let url = created["url"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(url.ends_with(&format!(
        "/api/v10/webhooks/{id}/{}",
        created["token"].as_str().unwrap()
    )));

    assert_eq!(
        execute(
            &url,
            &json!({"content": "hi <@42>", "allowed_mentions": {"parse": []}})
        )
        .await
        .status,
        204
    );
    let default_hook = default_webhook(&standin);
    assert_eq!(
        execute(&default_hook.url, &json!({"content": "elsewhere"}))
            .await
            .status,
        204
    );

    let listed = client
        .get(format!("{base}/_standin/webhooks/{id}/messages"))
        .send()
        .await
        .unwrap();
    let listed = reply(listed).await.body;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["content"], "hi <@42>");
    assert_eq!(listed[0]["webhook_id"], Value::String(id.clone()));
    assert_eq!(listed[0]["pings"]["users"], json!([]));
    assert_eq!(standin.messages(&id).len(), 1);
}

#[tokio::test]
async fn messages_keep_their_order_and_the_time_of_their_request() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    let before = tokio::time::Instant::now();
    for i in 0..5 {
        assert_eq!(
            execute(&webhook.url, &json!({"content": format!("m{i}")}))
                .await
                .status,
            204
        );
    }
    let messages = standin.messages(&webhook.id);
    let contents: Vec<_> = messages
        .iter()
        .map(|m| m.content.clone().unwrap())
        .collect();
    assert_eq!(contents, ["m0", "m1", "m2", "m3", "m4"]);
    assert!(messages
        .windows(2)
        .all(|w| w[0].at <= w[1].at
            && w[0].id.parse::<u64>().unwrap() < w[1].id.parse::<u64>().unwrap()));
    assert!(messages[0].at >= before);
}

#[tokio::test]
async fn reset_forgets_messages_and_created_webhooks_but_keeps_the_default_one() {
    let standin = unpaced().await;
    let created = standin.create_webhook("alerts");
    let webhook = default_webhook(&standin);
    assert!(standin.delete_webhook(&webhook.id));
    assert_eq!(
        execute(&created.url, &json!({"content": "x"})).await.status,
        204
    );

    let response = reqwest::Client::new()
        .post(format!("http://{}/_standin/reset", standin.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    assert!(standin.all_messages().is_empty());
    assert!(standin.requests().is_empty());
    assert_eq!(
        execute(&created.url, &json!({"content": "x"})).await.status,
        404
    );
    assert_eq!(
        execute(&webhook.url, &json!({"content": "x"})).await.status,
        204
    );
}
