use serde_json::{json, Value};

use crate::{call, post, unpaced};

fn metadata(n: u32) -> Value {
    json!({"event_type": "feature_used", "event_payload": {"n": n}})
}

#[tokio::test]
async fn history_returns_metadata_only_when_asked() {
    let standin = unpaced().await;
    let posted = post(
        &standin,
        &json!({"channel": "#alerts", "text": "hi", "metadata": metadata(1)}),
    )
    .await;
    assert!(posted.is_ok());
    let id = posted.body["channel"].clone();

    let plain = call(&standin, "conversations.history", &json!({"channel": id})).await;
    let with = call(
        &standin,
        "conversations.history",
        &json!({"channel": id, "include_all_metadata": true}),
    )
    .await;

    assert!(plain.is_ok(), "{}", plain.body);
    assert_eq!(plain.body["messages"][0]["text"], "hi");
    assert!(plain.body["messages"][0].get("metadata").is_none());
    assert_eq!(with.body["messages"][0]["metadata"], metadata(1));
    assert_eq!(with.body["messages"][0]["ts"], posted.body["ts"]);
}

#[tokio::test]
async fn history_is_newest_first_and_honours_limit_and_oldest() {
    let standin = unpaced().await;
    let mut ts = Vec::new();
    for n in 0..4 {
        let reply = post(
            &standin,
            &json!({"channel": "#alerts", "text": format!("m{n}")}),
        )
        .await;
        ts.push(reply.body["ts"].as_str().unwrap().to_owned());
    }
    post(&standin, &json!({"channel": "#other", "text": "elsewhere"})).await;

    let all = call(
        &standin,
        "conversations.history",
        &json!({"channel": "#alerts"}),
    )
    .await;
    let texts: Vec<&str> = all.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["m3", "m2", "m1", "m0"]);
    assert_eq!(all.body["has_more"], false);

    let limited = call(
        &standin,
        "conversations.history",
        &json!({"channel": "#alerts", "limit": 2}),
    )
    .await;
    assert_eq!(limited.body["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(limited.body["has_more"], true);

    let newer = call(
        &standin,
        "conversations.history",
        &json!({"channel": "#alerts", "oldest": ts[1]}),
    )
    .await;
    assert_eq!(newer.body["messages"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn history_can_be_read_with_a_get_and_a_query_string() {
    let standin = unpaced().await;
    post(
        &standin,
        &json!({"channel": "#alerts", "text": "hi", "metadata": metadata(2)}),
    )
    .await;
    let response = reqwest::Client::new()
        .get(format!(
            "{}/conversations.history?channel=%23alerts&limit=1&include_all_metadata=true",
            standin.api_url()
        ))
        .bearer_auth(crate::TOKEN)
        .send()
        .await
        .unwrap();
    let reply = crate::reply(response).await;
    assert!(reply.is_ok(), "{}", reply.body);
    assert_eq!(reply.body["messages"][0]["metadata"], metadata(2));
}

#[tokio::test]
async fn history_needs_the_bot_in_the_channel() {
    let standin = unpaced().await;
    standin.create_channel("#secret", true, false);
    let reply = call(
        &standin,
        "conversations.history",
        &json!({"channel": "#secret"}),
    )
    .await;
    assert_eq!(reply.error(), Some("not_in_channel"));
}

#[tokio::test]
async fn history_of_an_unknown_channel_is_channel_not_found() {
    let standin = unpaced().await;
    let reply = call(
        &standin,
        "conversations.history",
        &json!({"channel": "C0NOPE"}),
    )
    .await;
    assert_eq!(reply.error(), Some("channel_not_found"));
}

#[tokio::test]
async fn history_rejects_a_malformed_oldest() {
    let standin = unpaced().await;
    post(&standin, &json!({"channel": "#alerts", "text": "hi"})).await;
    let reply = call(
        &standin,
        "conversations.history",
        &json!({"channel": "#alerts", "oldest": "yesterday"}),
    )
    .await;
    assert_eq!(reply.error(), Some("invalid_ts_oldest"));
}
