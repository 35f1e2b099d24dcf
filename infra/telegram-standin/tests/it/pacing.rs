//! Flood limits on tokio's paused clock: the stand-in paces on `tokio::time::Instant`, so
//! `tokio::time::advance` moves it and machine load cannot.
//!
//! Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this ("avoid
//! sending more than one message per second. We may allow short bursts that go over this limit,
//! but eventually you'll begin receiving 429 errors"; "not more than 30 messages per second or
//! so"; "not be able to send more than 20 messages per minute to the same group") and
//! https://core.telegram.org/bots/api#responseparameters (`retry_after`: "In case of exceeding
//! flood control, the number of seconds left to wait before the request can be repeated").

use std::time::Duration;

use serde_json::json;
use telegram_standin::{ChatKind, StandinConfig};

use crate::{call, send_text, standin, GROUP, PRIVATE, SUPERGROUP};

fn per_chat(rate: f64, burst: u32) -> StandinConfig {
    StandinConfig {
        per_chat_per_sec: rate,
        per_chat_burst: burst,
        ..StandinConfig::unlimited()
    }
}

fn per_group() -> StandinConfig {
    StandinConfig {
        per_group_per_minute: 20,
        ..StandinConfig::unlimited()
    }
}

// Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this and
// https://core.telegram.org/bots/api#responseparameters
#[tokio::test(start_paused = true)]
async fn a_second_message_within_a_second_gets_429_with_retry_after() {
    let standin = standin(per_chat(1.0, 1)).await;
    assert!(send_text(&standin, PRIVATE, "1").await.is_ok());
    let limited = send_text(&standin, PRIVATE, "2").await;

    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.body,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
               "parameters": {"retry_after": 1}})
    );
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(standin.messages(PRIVATE).len(), 1);

    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(send_text(&standin, PRIVATE, "3").await.is_ok());
    let statuses: Vec<u16> = standin.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 429, 200]);
}

// Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this ("We may
// allow short bursts")
#[tokio::test(start_paused = true)]
async fn a_chat_may_burst_then_is_held_to_one_a_second() {
    let standin = standin(per_chat(1.0, 3)).await;
    for i in 0..3 {
        assert!(send_text(&standin, PRIVATE, &i.to_string()).await.is_ok());
    }
    assert_eq!(send_text(&standin, PRIVATE, "4").await.status, 429);
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(send_text(&standin, PRIVATE, "5").await.status, 429);
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(send_text(&standin, PRIVATE, "6").await.is_ok());
    assert_eq!(send_text(&standin, PRIVATE, "7").await.status, 429);
}

// Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
#[tokio::test(start_paused = true)]
async fn one_chat_is_limited_while_another_keeps_being_accepted() {
    let standin = standin(per_chat(1.0, 1)).await;
    assert!(send_text(&standin, PRIVATE, "first").await.is_ok());
    for second in 0..5 {
        assert_eq!(send_text(&standin, PRIVATE, "again").await.status, 429);
        assert!(
            send_text(&standin, GROUP, &second.to_string())
                .await
                .is_ok(),
            "second {second}"
        );
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(send_text(&standin, PRIVATE, "still").await.status, 429);
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(send_text(&standin, PRIVATE, "refilled").await.is_ok());
    }
    assert_eq!(standin.messages(GROUP).len(), 5);
    assert_eq!(standin.messages(PRIVATE).len(), 6);
}

// Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this ("not be
// able to send more than 20 messages per minute to the same group")
#[tokio::test(start_paused = true)]
async fn a_group_takes_twenty_messages_a_minute_and_names_the_wait() {
    let standin = standin(per_group()).await;
    for i in 0..20 {
        assert!(
            send_text(&standin, GROUP, &i.to_string()).await.is_ok(),
            "message {i}"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    // The first message leaves the minute at t = 60 s; it is t = 20 s.
    let limited = send_text(&standin, GROUP, "21").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["parameters"]["retry_after"], 40);
    assert_eq!(
        limited.description(),
        Some("Too Many Requests: retry after 40")
    );

    tokio::time::advance(Duration::from_secs(39)).await;
    assert_eq!(
        send_text(&standin, GROUP, "still").await.body["parameters"]["retry_after"],
        1
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(send_text(&standin, GROUP, "room").await.is_ok());
    assert_eq!(standin.messages(GROUP).len(), 21);
}

// Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
#[tokio::test(start_paused = true)]
async fn a_full_group_does_not_hold_up_a_private_chat_or_another_group() {
    let standin = standin(per_group()).await;
    for i in 0..20 {
        assert!(send_text(&standin, SUPERGROUP, &i.to_string())
            .await
            .is_ok());
    }
    assert_eq!(send_text(&standin, SUPERGROUP, "over").await.status, 429);
    for i in 0..25 {
        assert!(send_text(&standin, PRIVATE, &i.to_string()).await.is_ok());
    }
    assert!(send_text(&standin, GROUP, "other group").await.is_ok());
    assert_eq!(standin.messages(SUPERGROUP).len(), 20);
}

// Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this ("the API
// will not allow more than 30 messages per second or so")
#[tokio::test(start_paused = true)]
async fn a_bot_sends_thirty_messages_a_second_across_chats_and_another_bot_is_not_held_up() {
    let standin = standin(StandinConfig {
        per_bot_per_sec: 30.0,
        per_bot_burst: 30,
        ..StandinConfig::unlimited()
    })
    .await;
    for chat in 1..=31 {
        standin.add_chat(1000 + chat, ChatKind::Private).unwrap();
    }
    for chat in 1..=30 {
        assert!(
            send_text(&standin, 1000 + chat, "bulk").await.is_ok(),
            "chat {chat}"
        );
    }
    let limited = send_text(&standin, 1031, "one too many").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["parameters"]["retry_after"], 1);

    standin.add_bot("654321:second-bot").unwrap();
    let other_bot = call(
        &standin,
        "654321:second-bot",
        "sendMessage",
        &json!({"chat_id": 1031, "text": "mine"}),
    )
    .await;
    assert!(other_bot.is_ok());

    tokio::time::advance(Duration::from_millis(34)).await;
    assert!(send_text(&standin, 1031, "refilled").await.is_ok());
}

// Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
#[tokio::test(start_paused = true)]
async fn refused_messages_do_not_use_up_the_limit() {
    let standin = standin(per_chat(1.0, 1)).await;
    for _ in 0..3 {
        assert_eq!(send_text(&standin, PRIVATE, "").await.status, 400);
    }
    assert!(send_text(&standin, PRIVATE, "first real one").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_defaults_follow_the_faq() {
    let standin = standin(StandinConfig::default()).await;
    // Default burst 3 per chat, then one a second.
    for i in 0..3 {
        assert!(send_text(&standin, PRIVATE, &i.to_string()).await.is_ok());
    }
    assert_eq!(send_text(&standin, PRIVATE, "x").await.status, 429);
    // A group: 20 in a minute even at one a second.
    for i in 0..20 {
        assert!(
            send_text(&standin, GROUP, &i.to_string()).await.is_ok(),
            "message {i}"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(send_text(&standin, GROUP, "21st").await.status, 429);
}
