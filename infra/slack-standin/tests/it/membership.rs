//! Channels that exist without the bot in them, `conversations.join`, invites, and paging
//! through history with a cursor.

use serde_json::{json, Value};

use crate::{call, post, unpaced};

#[tokio::test]
async fn a_public_channel_without_the_bot_takes_posts_but_hides_its_history_until_joined() {
    let standin = unpaced().await;
    standin.create_channel("#growth", false, false);
    let posted = post(&standin, &json!({"channel": "#growth", "text": "hi"})).await;
    assert!(posted.is_ok(), "chat:write.public: {}", posted.body);
    let id = standin.channel_id("#growth").unwrap();
    let hidden = call(&standin, "conversations.history", &json!({"channel": id})).await;
    assert_eq!(hidden.error(), Some("not_in_channel"));

    let joined = call(&standin, "conversations.join", &json!({"channel": id})).await;
    assert!(joined.is_ok(), "{}", joined.body);
    assert_eq!(joined.body["channel"]["id"], json!(id));
    assert_eq!(joined.body["channel"]["is_member"], true);
    assert!(joined.body.get("warning").is_none());
    assert_eq!(standin.joins(), ["growth"]);

    let history = call(&standin, "conversations.history", &json!({"channel": id})).await;
    assert!(history.is_ok(), "{}", history.body);
    assert_eq!(history.body["messages"][0]["text"], "hi");

    let again = call(&standin, "conversations.join", &json!({"channel": id})).await;
    assert!(again.is_ok());
    assert_eq!(again.body["warning"], "already_in_channel");
}

#[tokio::test]
async fn a_private_channel_without_the_bot_refuses_posts_history_and_joining() {
    let standin = unpaced().await;
    standin.create_channel("#secret", true, false);
    let id = standin.channel_id("#secret").unwrap();
    let posted = post(&standin, &json!({"channel": id, "text": "hi"})).await;
    assert_eq!(posted.error(), Some("not_in_channel"));
    let history = call(&standin, "conversations.history", &json!({"channel": id})).await;
    assert_eq!(history.error(), Some("not_in_channel"));
    let join = call(&standin, "conversations.join", &json!({"channel": id})).await;
    assert_eq!(join.error(), Some("method_not_supported_for_channel_type"));
    assert!(standin.joins().is_empty());
}

#[tokio::test]
async fn joining_an_unknown_or_archived_channel_fails_as_slack_does() {
    let standin = unpaced().await;
    let unknown = call(
        &standin,
        "conversations.join",
        &json!({"channel": "C0NOPE"}),
    )
    .await;
    assert_eq!(unknown.error(), Some("channel_not_found"));
    standin.archive_channel("#old");
    let id = standin.channel_id("#old").unwrap();
    let archived = call(&standin, "conversations.join", &json!({"channel": id})).await;
    assert_eq!(archived.error(), Some("is_archived"));
}

#[tokio::test]
async fn an_invite_adds_the_bot_and_yields_the_member_joined_channel_callback() {
    let standin = unpaced().await;
    standin.create_channel("#secret", true, false);
    let id = standin.channel_id("#secret").unwrap();
    let event = standin.invite_bot("#secret").unwrap();
    assert_eq!(event["type"], "event_callback");
    assert_eq!(event["team_id"], "T0STANDIN");
    assert_eq!(event["event"]["type"], "member_joined_channel");
    assert_eq!(event["event"]["channel"], json!(id));
    assert_eq!(event["event"]["channel_type"], "G");
    // The bot user, as auth.test reports it.
    let me = call(&standin, "auth.test", &json!({})).await;
    assert_eq!(event["event"]["user"], me.body["user_id"]);
    assert_eq!(event["event"]["user"], standin.bot_user_id());

    let posted = post(&standin, &json!({"channel": id, "text": "in"})).await;
    assert!(posted.is_ok(), "{}", posted.body);
    assert!(standin.invite_bot("#nope").is_none());

    // The same over the control endpoint, for a local stack.
    standin.create_channel("#other", true, false);
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/_standin/channels/invite",
            standin.addr()
        ))
        .json(&json!({"name": "#other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["event"]["type"], "member_joined_channel");
}

#[tokio::test]
async fn history_pages_through_a_cursor_newest_first() {
    let standin = unpaced().await;
    for n in 0..5 {
        post(
            &standin,
            &json!({"channel": "#alerts", "text": format!("m{n}")}),
        )
        .await;
    }
    let mut texts = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"channel": "#alerts", "limit": 2});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = call(&standin, "conversations.history", &args).await;
        assert!(page.is_ok(), "{}", page.body);
        pages += 1;
        texts.extend(
            page.body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["text"].as_str().unwrap().to_owned()),
        );
        let next = page.body["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(page.body["has_more"] == true, !next.is_empty());
        if next.is_empty() {
            break;
        }
        cursor = Some(next);
    }
    assert_eq!(pages, 3);
    assert_eq!(texts, ["m4", "m3", "m2", "m1", "m0"]);
    let bad = call(
        &standin,
        "conversations.history",
        &json!({"channel": "#alerts", "cursor": "garbage"}),
    )
    .await;
    assert_eq!(bad.error(), Some("invalid_cursor"));
}
