//! Threads (`thread_ts`, `conversations.replies`), `chat.update` and button clicks, as Slack
//! answers them.

use serde_json::json;

use crate::{call, post, unpaced};

#[tokio::test]
async fn a_reply_lands_in_its_thread_and_stays_out_of_the_history() {
    let standin = unpaced().await;
    let parent = post(&standin, &json!({"channel": "#alerts", "text": "parent"})).await;
    let parent_ts = parent.body["ts"].as_str().unwrap().to_owned();
    let reply = post(
        &standin,
        &json!({"channel": "#alerts", "text": "reply", "thread_ts": parent_ts, "metadata": {"event_type": "x", "event_payload": {"key": "k1"}}}),
    )
    .await;
    assert!(reply.is_ok(), "{}", reply.body);
    assert_eq!(reply.body["message"]["thread_ts"], parent_ts.as_str());

    let history = call(
        &standin,
        "conversations.history",
        &json!({"channel": "#alerts"}),
    )
    .await;
    let messages = history.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{}", history.body);
    assert_eq!(messages[0]["reply_count"], 1);
    assert_eq!(messages[0]["latest_reply"], reply.body["ts"]);

    let thread = call(
        &standin,
        "conversations.replies",
        &json!({"channel": "#alerts", "ts": parent_ts, "include_all_metadata": true}),
    )
    .await;
    assert!(thread.is_ok(), "{}", thread.body);
    let texts: Vec<&str> = thread.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["parent", "reply"]);
    assert_eq!(
        thread.body["messages"][1]["metadata"]["event_payload"]["key"],
        "k1"
    );
    assert_eq!(standin.replies("#alerts", &parent_ts).len(), 1);
}

#[tokio::test]
async fn a_reply_to_an_unknown_or_a_reply_ts_is_refused_as_slack_does() {
    let standin = unpaced().await;
    let unknown = post(
        &standin,
        &json!({"channel": "#alerts", "text": "r", "thread_ts": "1700000000.000001"}),
    )
    .await;
    assert_eq!(unknown.body["error"], "thread_not_found");
    let parent = post(&standin, &json!({"channel": "#alerts", "text": "p"})).await;
    let ts = parent.body["ts"].as_str().unwrap();
    // The parent's ts in another channel is no thread there.
    let elsewhere = post(
        &standin,
        &json!({"channel": "#other", "text": "r", "thread_ts": ts}),
    )
    .await;
    assert_eq!(elsewhere.body["error"], "thread_not_found");
    let reply = post(
        &standin,
        &json!({"channel": "#alerts", "text": "r", "thread_ts": ts}),
    )
    .await;
    let reply_ts = reply.body["ts"].as_str().unwrap();
    let nested = post(
        &standin,
        &json!({"channel": "#alerts", "text": "r2", "thread_ts": reply_ts}),
    )
    .await;
    assert_eq!(nested.body["error"], "invalid_thread_ts");
    let garbage = post(
        &standin,
        &json!({"channel": "#alerts", "text": "r", "thread_ts": "abc"}),
    )
    .await;
    assert_eq!(garbage.body["error"], "invalid_thread_ts");
    let replies = call(
        &standin,
        "conversations.replies",
        &json!({"channel": "#alerts", "ts": "1.000001"}),
    )
    .await;
    assert_eq!(replies.body["error"], "thread_not_found");
    assert_eq!(standin.messages().len(), 2, "refused replies post nothing");
}

#[tokio::test]
async fn chat_update_replaces_the_bots_message_and_refuses_what_slack_refuses() {
    let standin = unpaced().await;
    let posted = post(&standin, &json!({"channel": "#alerts", "text": "before"})).await;
    let ts = posted.body["ts"].as_str().unwrap().to_owned();
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "after"}}]);
    let updated = call(
        &standin,
        "chat.update",
        &json!({"channel": "#alerts", "ts": ts, "text": "after", "blocks": blocks}),
    )
    .await;
    assert!(updated.is_ok(), "{}", updated.body);
    let now = standin.messages_in("#alerts");
    assert_eq!(now[0].text.as_deref(), Some("after"));
    assert_eq!(now[0].blocks, Some(blocks));
    assert_eq!(now[0].edits, 1);

    let missing = call(
        &standin,
        "chat.update",
        &json!({"channel": "#alerts", "ts": "1.000002", "text": "x"}),
    )
    .await;
    assert_eq!(missing.body["error"], "message_not_found");
    let bad = call(
        &standin,
        "chat.update",
        &json!({"channel": "#alerts", "ts": ts, "blocks": [{"type": "nope"}]}),
    )
    .await;
    assert_eq!(bad.body["error"], "invalid_blocks");
    let person = standin
        .post_as_user("#alerts", "U0ADA", "mine", None)
        .unwrap();
    let theirs = call(
        &standin,
        "chat.update",
        &json!({"channel": "#alerts", "ts": person, "text": "x"}),
    )
    .await;
    assert_eq!(theirs.body["error"], "cant_update_message");
}

#[tokio::test]
async fn a_click_is_the_signed_block_actions_request_slack_sends() {
    let standin = unpaced().await;
    let blocks = json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}},
        {"type": "actions", "block_id": "acts", "elements": [
            {"type": "button", "action_id": "mute", "text": {"type": "plain_text", "text": "Mute"}, "value": "{\"p\":\"x\"}"}
        ]}
    ]);
    let posted = post(
        &standin,
        &json!({"channel": "#alerts", "text": "hi", "blocks": blocks}),
    )
    .await;
    let ts = posted.body["ts"].as_str().unwrap();
    assert!(standin
        .click("#alerts", ts, "other", "U0ADA", "s", 1_700_000_000)
        .is_none());
    assert!(standin
        .click("#alerts", "1.000003", "mute", "U0ADA", "s", 1_700_000_000)
        .is_none());
    let click = standin
        .click("#alerts", ts, "mute", "U0ADA", "s", 1_700_000_000)
        .unwrap();
    assert_eq!(
        click.signature,
        slack_standin::sign_event_request("s", 1_700_000_000, &click.body)
    );
    let payload: String = form_urlencoded_payload(&click.body);
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(v, click.payload);
    assert_eq!(v["type"], "block_actions");
    assert_eq!(v["user"]["id"], "U0ADA");
    assert_eq!(v["team"]["id"], "T0STANDIN");
    assert_eq!(v["container"]["message_ts"], ts);
    assert_eq!(v["actions"][0]["value"], "{\"p\":\"x\"}");
    assert_eq!(v["actions"][0]["block_id"], "acts");
    assert_eq!(v["message"]["blocks"], blocks);
}

fn form_urlencoded_payload(body: &str) -> String {
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}
