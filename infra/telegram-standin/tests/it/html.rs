//! HTML parse mode over HTTP: what Telegram accepts, the entities it answers, and the
//! `can't parse entities` refusals with the parser's messages.

use serde_json::json;
use telegram_standin::{StandinConfig, Strictness};

use crate::{send, standin, unlimited, PRIVATE};

fn html(text: &str) -> serde_json::Value {
    json!({"chat_id": PRIVATE, "text": text, "parse_mode": "HTML"})
}

// Docs: https://core.telegram.org/bots/api#html-style (the supported tags) and
// https://core.telegram.org/bots/api#messageentity (the entity types they produce).
#[tokio::test]
async fn every_documented_tag_is_accepted_and_becomes_its_entity() {
    let standin = unlimited().await;
    let text = "<b>bold</b>, <strong>bold</strong>\n<i>italic</i>, <em>italic</em>\n\
                <u>underline</u>, <ins>underline</ins>\n<s>strike</s>, <strike>strike</strike>, <del>strike</del>\n\
                <span class=\"tg-spoiler\">spoiler</span>, <tg-spoiler>spoiler</tg-spoiler>\n\
                <b>bold <i>italic bold <s>italic bold strikethrough <span class=\"tg-spoiler\">spoiler</span></s> <u>underline italic bold</u></i> bold</b>\n\
                <a href=\"http://www.example.com/\">inline URL</a>\n\
                <a href=\"tg://user?id=123456789\">inline mention of a user</a>\n\
                <tg-emoji emoji-id=\"5368324170671202286\">👍</tg-emoji>\n\
                <code>inline fixed-width code</code>\n\
                <pre>pre-formatted fixed-width code block</pre>\n\
                <pre><code class=\"language-python\">pre-formatted fixed-width code block written in the Python programming language</code></pre>\n\
                <blockquote>Block quotation started\\nBlock quotation continued</blockquote>\n\
                <blockquote expandable>Expandable block quotation started</blockquote>";
    let reply = send(&standin, &html(text)).await;
    assert!(reply.is_ok(), "{}", reply.body);
    let entities = reply.body["result"]["entities"].as_array().unwrap().clone();
    let mut types: Vec<&str> = entities.iter().filter_map(|e| e["type"].as_str()).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(
        types,
        vec![
            "blockquote",
            "bold",
            "code",
            "custom_emoji",
            "expandable_blockquote",
            "italic",
            "pre",
            "spoiler",
            "strikethrough",
            "text_link",
            "underline"
        ]
    );
    let python = entities.iter().find(|e| e["language"] == "python");
    assert!(python.is_some_and(|e| e["type"] == "pre"));
    let link = entities.iter().find(|e| e["type"] == "text_link").unwrap();
    assert_eq!(link["url"], "http://www.example.com/");
    let emoji = entities
        .iter()
        .find(|e| e["type"] == "custom_emoji")
        .unwrap();
    assert_eq!(emoji["custom_emoji_id"], "5368324170671202286");
    assert!(!reply.body["result"]["text"].as_str().unwrap().contains('<'));
}

// Docs: https://core.telegram.org/bots/api#html-style ("All numerical HTML entities are
// supported. The API currently supports only the following named HTML entities: &lt;, &gt;,
// &amp; and &quot;") and https://core.telegram.org/bots/api#messageentity (UTF-16 offsets)
#[tokio::test]
async fn entities_are_decoded_and_offsets_count_utf16_code_units() {
    let standin = unlimited().await;
    let reply = send(
        &standin,
        &html("😀 &lt;b&gt; &amp; &quot;q&quot; &#65;&#x42; <i>it</i>"),
    )
    .await;
    assert!(reply.is_ok(), "{}", reply.body);
    assert_eq!(reply.body["result"]["text"], "😀 <b> & \"q\" AB it");
    assert_eq!(
        reply.body["result"]["entities"],
        json!([{"type": "italic", "offset": 16, "length": 2}])
    );
}

// Docs: https://core.telegram.org/bots/api#html-style ("Tags must not be nested" for some,
// "All <, > and & symbols that are not a part of a tag or an HTML entity must be replaced with
// the corresponding HTML entities"). Messages as Telegram's parser (TDLib parse_html) words them.
#[tokio::test]
async fn html_the_parser_refuses_is_answered_with_its_reason() {
    let standin = unlimited().await;
    let cases = [
        ("<p>paragraph</p>", "Unsupported start tag \"p\" at byte offset 0"),
        ("<br>", "Unsupported start tag \"br\" at byte offset 0"),
        ("1 < 2", "Unsupported start tag \"\" at byte offset 2"),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("<b>bold", "Can't find end tag corresponding to start tag b"),
        ("<b><i>x</b></i>", "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span class=\"bold\">x</span>", "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"),
        ("<a href=\"https://x.test/?a=1&b=2\">x</a>", "Character \"&\" at byte offset 28 must be escaped as \"&amp;\" (Telegram's HTML-style rule; the stand-in enforces it, Telegram itself keeps it as text)"),
        ("fish & chips", "Character \"&\" at byte offset 5 must be escaped as \"&amp;\" (Telegram's HTML-style rule; the stand-in enforces it, Telegram itself keeps it as text)"),
        ("&nbsp;", "Character \"&\" at byte offset 0 must be escaped as \"&amp;\" (Telegram's HTML-style rule; the stand-in enforces it, Telegram itself keeps it as text)"),
    ];
    for (text, reason) in cases {
        let reply = send(&standin, &html(text)).await;
        assert_eq!(
            reply.refusal(),
            (
                400,
                Some(400),
                Some(format!("Bad Request: can't parse entities: {reason}").as_str())
            ),
            "{text}"
        );
    }
    assert!(standin.all_messages().is_empty());
}

// Docs: https://core.telegram.org/bots/api#html-style (the rule); Telegram's parser keeps a
// bare & and an unknown named entity as text, which Strictness::Telegram reproduces.
#[tokio::test]
async fn telegrams_own_leniency_about_ampersands_is_available() {
    let standin = standin(StandinConfig {
        html_strictness: Strictness::Telegram,
        ..StandinConfig::unlimited()
    })
    .await;
    let reply = send(
        &standin,
        &html("fish & chips&nbsp;<a href=\"https://x.test/?a=1&b=2\">x</a>"),
    )
    .await;
    assert!(reply.is_ok(), "{}", reply.body);
    assert_eq!(reply.body["result"]["text"], "fish & chips&nbsp;x");
    assert_eq!(
        reply.body["result"]["entities"][0]["url"],
        "https://x.test/?a=1&b=2"
    );
    // Unsupported tags stay refused either way.
    assert_eq!(send(&standin, &html("<p>x</p>")).await.status, 400);
}

// Docs: https://core.telegram.org/bots/api#sendmessage (without parse_mode the text is sent as
// is)
#[tokio::test]
async fn without_parse_mode_markup_is_plain_text() {
    let standin = unlimited().await;
    let reply = crate::send_text(&standin, PRIVATE, "<p>1 < 2 & 3</p>").await;
    assert!(reply.is_ok());
    assert_eq!(reply.body["result"]["text"], "<p>1 < 2 & 3</p>");
    assert!(reply.body["result"].get("entities").is_none());
    assert_eq!(standin.messages(PRIVATE)[0].parse_mode, None);
}
