//! Each refusal with Telegram's exact `error_code` and `description`.
//!
//! The shape `{"ok": false, "error_code": N, "description": "…"}` with HTTP status N is
//! documented (https://core.telegram.org/bots/api#making-requests); the description texts are
//! not listed in the docs. They are Telegram's own wording as the Bot API server answers it
//! (`Bad Request: chat not found`, `Forbidden: bot was blocked by the user`, …), which clients
//! match on.

use serde_json::json;

use crate::{call, send, send_text, unlimited, CHANNEL, GROUP, PRIVATE, SUPERGROUP, TOKEN};

// Docs: https://core.telegram.org/bots/api#making-requests ("Each bot is given a unique
// authentication token"; an invalid one is answered 401 Unauthorized).
#[tokio::test]
async fn an_unknown_token_is_unauthorized() {
    let standin = unlimited().await;
    for method in ["sendMessage", "getMe", "noSuchMethod"] {
        let reply = call(
            &standin,
            "999:not-registered",
            method,
            &json!({"chat_id": PRIVATE, "text": "x"}),
        )
        .await;
        assert_eq!(
            reply.body,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            "{method}"
        );
        assert_eq!(reply.status, 401);
    }
    assert!(standin.all_messages().is_empty());
}

// Docs: https://core.telegram.org/bots/api#making-requests
#[tokio::test]
async fn an_unknown_method_is_not_found() {
    let standin = unlimited().await;
    let reply = call(&standin, TOKEN, "sendTelepathy", &json!({})).await;
    assert_eq!(reply.refusal(), (404, Some(404), Some("Not Found")));
}

// Docs: https://core.telegram.org/bots/api#sendmessage (chat_id: "Unique identifier for the
// target chat or username …")
#[tokio::test]
async fn an_unknown_chat_is_not_found() {
    let standin = unlimited().await;
    standin.set_chat_username(PRIVATE, "ada_lovelace").unwrap();
    for chat_id in [
        json!(777),
        json!("-555"),
        json!("@nobody_here"),
        json!("alerts"),
        json!("@ada_lovelace"),
    ] {
        let reply = send(&standin, &json!({"chat_id": chat_id, "text": "x"})).await;
        assert_eq!(
            reply.refusal(),
            (400, Some(400), Some("Bad Request: chat not found")),
            "{chat_id}"
        );
    }
    for body in [json!({"text": "x"}), json!({"chat_id": "", "text": "x"})] {
        let reply = send(&standin, &body).await;
        assert_eq!(
            reply.refusal(),
            (400, Some(400), Some("Bad Request: chat_id is empty")),
            "{body}"
        );
    }
}

// Docs: https://core.telegram.org/bots/api#sendmessage (text: "1-4096 characters after
// entities parsing"; Telegram trims surrounding whitespace, so whitespace alone is empty).
#[tokio::test]
async fn an_empty_text_is_refused() {
    let standin = unlimited().await;
    for body in [
        json!({"chat_id": PRIVATE}),
        json!({"chat_id": PRIVATE, "text": ""}),
        json!({"chat_id": PRIVATE, "text": " \n\t "}),
        json!({"chat_id": PRIVATE, "text": "<b></b> <i>\n</i>", "parse_mode": "HTML"}),
    ] {
        let reply = send(&standin, &body).await;
        assert_eq!(
            reply.refusal(),
            (400, Some(400), Some("Bad Request: message text is empty")),
            "{body}"
        );
    }
    assert!(standin.all_messages().is_empty());
}

// Docs: https://core.telegram.org/bots/api#making-requests (403 descriptions are Telegram's
// wording; not listed in the docs).
#[tokio::test]
async fn a_private_chat_that_blocked_the_bot_is_forbidden_until_unblocked() {
    let standin = unlimited().await;
    standin.block_bot(PRIVATE).unwrap();
    let blocked = send_text(&standin, PRIVATE, "hello?").await;
    assert_eq!(
        blocked.body,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    );
    assert_eq!(blocked.status, 403);
    assert!(send_text(&standin, GROUP, "others still work")
        .await
        .is_ok());

    standin.unblock_bot(PRIVATE).unwrap();
    assert!(send_text(&standin, PRIVATE, "back").await.is_ok());
    assert_eq!(standin.messages(PRIVATE).len(), 1);
}

// Docs: https://core.telegram.org/bots/api#making-requests (403 descriptions are Telegram's
// wording; not listed in the docs).
#[tokio::test]
async fn a_group_supergroup_or_channel_that_removed_the_bot_is_forbidden() {
    let standin = unlimited().await;
    for chat in [GROUP, SUPERGROUP, CHANNEL] {
        standin.kick_bot(chat).unwrap();
    }
    let cases = [
        (GROUP, "Forbidden: bot was kicked from the group chat"),
        (
            SUPERGROUP,
            "Forbidden: bot was kicked from the supergroup chat",
        ),
        (
            CHANNEL,
            "Forbidden: bot is not a member of the channel chat",
        ),
    ];
    for (chat, description) in cases {
        let reply = send_text(&standin, chat, "x").await;
        assert_eq!(
            reply.refusal(),
            (403, Some(403), Some(description)),
            "{chat}"
        );
    }
    standin.unkick_bot(GROUP).unwrap();
    assert!(send_text(&standin, GROUP, "x").await.is_ok());
}

// Docs: https://core.telegram.org/bots/api#formatting-options (parse_mode MarkdownV2, HTML,
// Markdown). The stand-in parses HTML only and says so; an unknown mode is refused as on
// Telegram.
#[tokio::test]
async fn only_html_is_parsed_and_an_unknown_parse_mode_is_refused() {
    let standin = unlimited().await;
    let unknown = send(
        &standin,
        &json!({"chat_id": PRIVATE, "text": "x", "parse_mode": "BBCode"}),
    )
    .await;
    assert_eq!(
        unknown.refusal(),
        (400, Some(400), Some("Bad Request: unsupported parse_mode"))
    );
    for mode in ["MarkdownV2", "Markdown"] {
        let reply = send(
            &standin,
            &json!({"chat_id": PRIVATE, "text": "*x*", "parse_mode": mode}),
        )
        .await;
        assert_eq!(reply.status, 400);
        let description = reply.description().unwrap();
        assert!(
            description.starts_with("Bad Request: unsupported parse_mode"),
            "{description}"
        );
        assert!(
            description.contains("only HTML") && description.contains(mode),
            "{description}"
        );
    }
    assert!(standin.all_messages().is_empty());
}

#[tokio::test]
async fn a_body_declared_json_that_is_not_an_object_is_refused() {
    let standin = unlimited().await;
    let response = reqwest::Client::new()
        .post(crate::method_url(&standin, TOKEN, "sendMessage"))
        .header("content-type", "application/json")
        .body("{\"chat_id\": ")
        .send()
        .await
        .unwrap();
    let reply = crate::reply(response).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["ok"], false);
}

#[tokio::test]
async fn every_request_is_recorded_with_its_outcome() {
    let standin = unlimited().await;
    send_text(&standin, PRIVATE, "fine").await;
    send_text(&standin, 777, "nowhere").await;
    let requests = standin.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[0].chat_id, requests[0].status),
        (Some(PRIVATE), 200)
    );
    assert_eq!(
        (
            requests[1].chat_id,
            requests[1].status,
            requests[1].description.as_deref()
        ),
        (None, 400, Some("Bad Request: chat not found"))
    );
}
