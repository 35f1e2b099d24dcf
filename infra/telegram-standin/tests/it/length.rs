//! The 4096 limit: "Text of the message to be sent, 1-4096 characters after entities parsing"
//! (https://core.telegram.org/bots/api#sendmessage). Telegram's offsets and lengths are in
//! UTF-16 code units ("Offset in UTF-16 code units", https://core.telegram.org/bots/api#messageentity),
//! and the stand-in counts the limit in the same unit by default: an emoji outside the BMP
//! counts 2. TDLib itself counts code points for this check (`utf8_length`,
//! td/telegram/MessageContent.cpp), which `LengthUnit::CodePoints` reproduces; UTF-16 is the
//! stricter of the two, so text the stand-in accepts Telegram accepts.

use serde_json::json;
use telegram_standin::{LengthUnit, StandinConfig};

use crate::{send, send_text, standin, unlimited, PRIVATE};

const TOO_LONG: (u16, Option<i64>, Option<&str>) =
    (400, Some(400), Some("Bad Request: message is too long"));

fn html(text: &str) -> serde_json::Value {
    json!({"chat_id": PRIVATE, "text": text, "parse_mode": "HTML"})
}

// Docs: https://core.telegram.org/bots/api#sendmessage
#[tokio::test]
async fn exactly_4096_characters_pass_and_4097_do_not() {
    let standin = unlimited().await;
    assert!(send_text(&standin, PRIVATE, &"a".repeat(4096))
        .await
        .is_ok());
    assert_eq!(
        send_text(&standin, PRIVATE, &"a".repeat(4097))
            .await
            .refusal(),
        TOO_LONG
    );
    assert_eq!(standin.messages(PRIVATE).len(), 1);
}

// Docs: https://core.telegram.org/bots/api#messageentity (lengths in UTF-16 code units)
#[tokio::test]
async fn an_emoji_counts_two_utf16_code_units() {
    let standin = unlimited().await;
    let emoji = "😀".repeat(2048); // 2048 characters, 4096 UTF-16 code units
    assert!(send_text(&standin, PRIVATE, &emoji).await.is_ok());
    assert_eq!(
        send_text(&standin, PRIVATE, &format!("{emoji}a"))
            .await
            .refusal(),
        TOO_LONG
    );
    // A BMP character (é, €) counts one.
    assert!(send_text(&standin, PRIVATE, &"€".repeat(4096))
        .await
        .is_ok());
}

// Docs: https://core.telegram.org/bots/api#sendmessage (TDLib's own check counts code points:
// td/telegram/MessageContent.cpp, `utf8_length(text) > message_text_length_max`)
#[tokio::test]
async fn counting_code_points_lets_4096_emoji_through() {
    let standin = standin(StandinConfig {
        length_unit: LengthUnit::CodePoints,
        ..StandinConfig::unlimited()
    })
    .await;
    assert!(send_text(&standin, PRIVATE, &"😀".repeat(4096))
        .await
        .is_ok());
    assert_eq!(
        send_text(&standin, PRIVATE, &"😀".repeat(4097))
            .await
            .refusal(),
        TOO_LONG
    );
}

// Docs: https://core.telegram.org/bots/api#sendmessage ("after entities parsing") and
// https://core.telegram.org/bots/api#html-style
#[tokio::test]
async fn tags_do_not_count_and_an_entity_counts_as_the_character_it_stands_for() {
    let standin = unlimited().await;
    let bold = format!("<b>{}</b>", "a".repeat(4096));
    assert!(send(&standin, &html(&bold)).await.is_ok());
    let amps = "&amp;".repeat(4096); // 20480 bytes of HTML, 4096 characters of text
    assert!(send(&standin, &html(&amps)).await.is_ok());
    let numeric = format!("{}&#x1F600;", "a".repeat(4094)); // the emoji counts 2
    assert!(send(&standin, &html(&numeric)).await.is_ok());

    assert_eq!(
        send(&standin, &html(&format!("{amps}&amp;")))
            .await
            .refusal(),
        TOO_LONG
    );
    assert_eq!(
        send(
            &standin,
            &html(&format!("<i>{}</i>&#x1F600;", "a".repeat(4095)))
        )
        .await
        .refusal(),
        TOO_LONG
    );
    let sent = standin.messages(PRIVATE);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1].text, "&".repeat(4096));
}

// Docs: https://core.telegram.org/bots/api#sendmessage (the same text is too long without
// parse_mode: the tags are then text)
#[tokio::test]
async fn without_parse_mode_tags_are_text_and_count() {
    let standin = unlimited().await;
    let bold = format!("<b>{}</b>", "a".repeat(4090));
    assert!(send(&standin, &html(&bold)).await.is_ok());
    assert_eq!(
        send_text(&standin, PRIVATE, &bold).await.refusal(),
        TOO_LONG
    );
}

// Docs: https://core.telegram.org/bots/api#sendmessage (surrounding whitespace is trimmed
// before the count, as Telegram trims messages)
#[tokio::test]
async fn surrounding_whitespace_does_not_count() {
    let standin = unlimited().await;
    let padded = format!("\n\n{}  \n", "a".repeat(4096));
    assert!(send_text(&standin, PRIVATE, &padded).await.is_ok());
    assert_eq!(standin.messages(PRIVATE)[0].text.len(), 4096);
}

#[tokio::test]
async fn the_limit_is_configurable() {
    let standin = standin(StandinConfig {
        max_text_length: 10,
        ..StandinConfig::unlimited()
    })
    .await;
    assert!(send_text(&standin, PRIVATE, "0123456789").await.is_ok());
    assert_eq!(
        send_text(&standin, PRIVATE, "0123456789x").await.refusal(),
        TOO_LONG
    );
}
