use serde_json::{json, Value};
use telegram_standin::{ChatKind, EntityKind, ParseMode, Standin, StandinConfig};

use crate::{
    call, method_url, reply, send, send_text, unlimited, BOT_ID, CHANNEL, GROUP, PRIVATE,
    SUPERGROUP, TOKEN,
};

// Docs: https://core.telegram.org/bots/api#sendmessage (answers the sent Message) and
// https://core.telegram.org/bots/api#message (message_id, from, chat, date, text, entities).
#[tokio::test]
async fn answers_the_sent_message_and_records_it() {
    let standin = unlimited().await;
    let reply = send(
        &standin,
        &json!({"chat_id": PRIVATE, "text": "<b>deploy</b> done &amp; dusted", "parse_mode": "HTML"}),
    )
    .await;

    assert!(reply.is_ok(), "{}", reply.body);
    let result = &reply.body["result"];
    assert_eq!(result["message_id"], 1);
    assert_eq!(result["from"]["id"], BOT_ID);
    assert_eq!(result["from"]["is_bot"], true);
    assert_eq!(result["chat"]["id"], PRIVATE);
    assert_eq!(result["chat"]["type"], "private");
    assert!(result["date"].as_i64().is_some_and(|d| d > 1_600_000_000));
    assert_eq!(result["text"], "deploy done & dusted");
    assert_eq!(
        result["entities"],
        json!([{"type": "bold", "offset": 0, "length": 6}])
    );
    assert!(result.get("link_preview_options").is_none());

    let sent = standin.messages(PRIVATE);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].raw_text, "<b>deploy</b> done &amp; dusted");
    assert_eq!(sent[0].text, "deploy done & dusted");
    assert_eq!(sent[0].parse_mode, Some(ParseMode::Html));
    assert_eq!(sent[0].entities[0].kind, EntityKind::Bold);
    assert!(!sent[0].link_preview_disabled);
    assert_eq!(sent[0].bot_id, BOT_ID);
    standin.shutdown().await;
}

// Docs: https://core.telegram.org/bots/api#message ("message_id: Unique message identifier
// inside this chat").
#[tokio::test]
async fn message_ids_count_up_within_each_chat() {
    let standin = unlimited().await;
    let mut ids = Vec::new();
    for chat in [PRIVATE, GROUP, PRIVATE, PRIVATE, GROUP] {
        ids.push(send_text(&standin, chat, "x").await.body["result"]["message_id"].clone());
    }
    assert_eq!(ids, vec![json!(1), json!(1), json!(2), json!(3), json!(2)]);
    let private: Vec<i64> = standin
        .messages(PRIVATE)
        .iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(private, vec![1, 2, 3]);
    assert_eq!(standin.all_messages().len(), 5);
}

// Docs: https://core.telegram.org/bots/api#making-requests (query string,
// application/x-www-form-urlencoded, application/json; GET and POST; method names are
// case-insensitive).
#[tokio::test]
async fn takes_form_encoded_query_string_and_json_arguments_alike() {
    let standin = unlimited().await;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("chat_id", &GROUP.to_string())
        .append_pair("text", "<i>form</i>")
        .append_pair("parse_mode", "HTML")
        .append_pair("link_preview_options", r#"{"is_disabled": true}"#)
        .finish();
    let response = reqwest::Client::new()
        .post(method_url(&standin, TOKEN, "sendMessage"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let form_reply = reply(response).await;
    assert!(form_reply.is_ok(), "{}", form_reply.body);
    assert_eq!(
        form_reply.body["result"]["link_preview_options"],
        json!({"is_disabled": true})
    );

    let response = reqwest::Client::new()
        .get(format!(
            "{}?chat_id={PRIVATE}&text=query",
            method_url(&standin, TOKEN, "SENDMESSAGE")
        ))
        .send()
        .await
        .unwrap();
    assert!(reply(response).await.is_ok());

    let group = standin.messages(GROUP);
    assert_eq!(group[0].text, "form");
    assert!(group[0].link_preview_disabled);
    assert_eq!(standin.messages(PRIVATE)[0].text, "query");
}

// Docs: https://core.telegram.org/bots/api#sendmessage (link_preview_options,
// disable_web_page_preview) and https://core.telegram.org/bots/api#linkpreviewoptions.
#[tokio::test]
async fn link_previews_are_disabled_by_the_options_or_the_legacy_flag() {
    let standin = unlimited().await;
    for body in [
        json!({"chat_id": PRIVATE, "text": "https://example.com", "link_preview_options": {"is_disabled": true}}),
        json!({"chat_id": PRIVATE, "text": "https://example.com", "disable_web_page_preview": true}),
        json!({"chat_id": PRIVATE, "text": "https://example.com", "link_preview_options": {"is_disabled": false}}),
    ] {
        assert!(send(&standin, &body).await.is_ok(), "{body}");
    }
    let disabled: Vec<bool> = standin
        .messages(PRIVATE)
        .iter()
        .map(|m| m.link_preview_disabled)
        .collect();
    assert_eq!(disabled, vec![true, true, false]);
}

// Docs: https://core.telegram.org/bots/api#sendmessage (chat_id: "Integer or String …
// username of the target … supergroup or channel (in the format @channelusername)").
#[tokio::test]
async fn a_supergroup_or_channel_is_reached_by_its_username() {
    let standin = unlimited().await;
    let to_group = send(
        &standin,
        &json!({"chat_id": "@Standin_Alerts", "text": "a"}),
    )
    .await;
    let to_channel = send(&standin, &json!({"chat_id": "@standin_news", "text": "n"})).await;
    let by_string_id = send(
        &standin,
        &json!({"chat_id": SUPERGROUP.to_string(), "text": "b"}),
    )
    .await;

    assert_eq!(to_group.body["result"]["chat"]["id"], SUPERGROUP);
    assert_eq!(
        to_group.body["result"]["chat"]["username"],
        "standin_alerts"
    );
    assert!(by_string_id.is_ok());
    // A channel post is sent on behalf of the channel.
    assert_eq!(to_channel.body["result"]["sender_chat"]["id"], CHANNEL);
    assert_eq!(to_channel.body["result"]["chat"]["type"], "channel");
    assert!(to_channel.body["result"].get("from").is_none());
    assert_eq!(standin.messages(SUPERGROUP).len(), 2);
    assert_eq!(standin.messages(CHANNEL).len(), 1);
}

// Docs: https://core.telegram.org/bots/api#getme
#[tokio::test]
async fn get_me_describes_the_bot_of_the_token() {
    let standin = unlimited().await;
    let other = standin.add_bot("777:other-secret").unwrap();
    let me = call(&standin, TOKEN, "getMe", &json!({})).await;
    let them = call(&standin, "777:other-secret", "getme", &json!({})).await;
    assert!(me.is_ok());
    assert_eq!(me.body["result"]["id"], BOT_ID);
    assert_eq!(me.body["result"]["is_bot"], true);
    assert_eq!(them.body["result"]["id"], other);
}

#[tokio::test]
async fn sent_messages_can_be_read_over_http_by_id_or_username() {
    let standin = unlimited().await;
    send(
        &standin,
        &json!({"chat_id": SUPERGROUP, "text": "<b>hi</b>", "parse_mode": "html", "disable_web_page_preview": true}),
    )
    .await;
    send_text(&standin, PRIVATE, "elsewhere").await;
    let client = reqwest::Client::new();
    let base = standin.api_url();

    let by_id = reply(
        client
            .get(format!("{base}/_standin/chats/{SUPERGROUP}/messages"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .body;
    let by_name = reply(
        client
            .get(format!("{base}/_standin/chats/%40standin_alerts/messages"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .body;
    let all = reply(
        client
            .get(format!("{base}/_standin/messages"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let unknown = reply(
        client
            .get(format!("{base}/_standin/chats/-999/messages"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(by_id, by_name);
    assert_eq!(by_id.as_array().map(Vec::len), Some(1));
    assert_eq!(by_id[0]["text"], "hi");
    assert_eq!(by_id[0]["raw_text"], "<b>hi</b>");
    assert_eq!(by_id[0]["parse_mode"], "HTML");
    assert_eq!(by_id[0]["link_preview_disabled"], true);
    assert_eq!(by_id[0]["message_id"], 1);
    assert_eq!(all.body.as_array().map(Vec::len), Some(2));
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn chats_bots_and_blocks_can_be_set_up_over_http() {
    let standin = Standin::start(StandinConfig::unlimited()).await.unwrap();
    let client = reqwest::Client::new();
    let base = standin.api_url();
    let post = |path: &str, body: Value| {
        let request = client.post(format!("{base}{path}")).json(&body).send();
        async move { reply(request.await.unwrap()).await }
    };

    assert!(post("/_standin/bots", json!({"token": "555:abc"}))
        .await
        .is_ok());
    assert!(post(
        "/_standin/chats",
        json!({"id": 9, "type": "private", "title": "Ada"})
    )
    .await
    .is_ok());
    let wrong_sign = post("/_standin/chats", json!({"id": 9, "type": "group"})).await;
    assert_eq!(wrong_sign.status, 400);
    assert!(wrong_sign
        .description()
        .is_some_and(|d| d.contains("positive")));

    let sent = call(
        &standin,
        "555:abc",
        "sendMessage",
        &json!({"chat_id": 9, "text": "hi"}),
    )
    .await;
    assert_eq!(sent.body["result"]["chat"]["first_name"], "Ada");

    assert!(post("/_standin/chats/9/block", json!({})).await.is_ok());
    let blocked = call(
        &standin,
        "555:abc",
        "sendMessage",
        &json!({"chat_id": 9, "text": "hi"}),
    )
    .await;
    assert_eq!(blocked.status, 403);
    assert_eq!(post("/_standin/chats/9/kick", json!({})).await.status, 400);
}

#[tokio::test]
async fn reset_forgets_messages_and_restarts_message_ids_but_keeps_chats() {
    let standin = unlimited().await;
    send_text(&standin, PRIVATE, "one").await;
    let response = reqwest::Client::new()
        .post(format!("{}/_standin/reset", standin.api_url()))
        .send()
        .await
        .unwrap();
    assert!(reply(response).await.is_ok());
    assert!(standin.all_messages().is_empty());
    assert!(standin.requests().is_empty());
    let again = send_text(&standin, PRIVATE, "two").await;
    assert_eq!(again.body["result"]["message_id"], 1);
}

#[tokio::test]
async fn registering_refuses_malformed_tokens_and_chat_ids_of_the_wrong_sign() {
    let standin = unlimited().await;
    assert!(standin.add_bot("no-colon").is_err());
    assert!(standin.add_bot("abc:def").is_err());
    assert!(standin.add_chat(-5, ChatKind::Private).is_err());
    assert!(standin.add_chat(5, ChatKind::Supergroup).is_err());
    assert!(standin.set_chat_username(PRIVATE, "x").is_err());
    assert!(standin.set_chat_username(-4242, "valid_name").is_err());
    // Blocking is a person's act in a private chat; kicking is for groups and channels.
    assert!(standin.block_bot(GROUP).is_err());
    assert!(standin.kick_bot(PRIVATE).is_err());
}
