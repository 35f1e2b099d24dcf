//! The Telegram adapter against the Telegram stand-in (in process, over HTTP, counting the
//! 4,096 limit in code points as Telegram's server does): what `render` makes parses as
//! Telegram parses it, a message at the limit is accepted and an oversized card is cut with
//! the link to the full event and accepted; values show literally; a 429 waits
//! `retry_after`; an unknown chat, a blocked or removed bot and a revoked token pause the
//! target while other chats keep working; 5xx answers and timeouts are maybe-sent retries, a
//! refused connection a certain one; the token never shows.

#![allow(clippy::unwrap_used)] // a failing test may panic

use std::time::Duration;

use ingestlayer::outbound::card::{Card, Field, Link, Span};
use ingestlayer::outbound::telegram::{render, ChatId, Telegram, MAX_TEXT};
use ingestlayer::outbound::Verdict;
use secrecy::SecretString;
use telegram_standin::{
    ChatKind, EntityKind, Fault, FaultKind, LengthUnit, ParseMode, Standin, StandinConfig,
    DEFAULT_TOKEN,
};

const PRIVATE: i64 = 1001;
const GROUP: i64 = -1002;
const SUPERGROUP: i64 = -1_001_234;
const LINK: &str = "https://in.example/v1/events/api:e1?sig=abc&x=1";

/// A stand-in with the bot, a person's chat, a group and a public supergroup
/// (`@standin_alerts`), counting length as Telegram does.
async fn standin(config: StandinConfig) -> Standin {
    let standin = Standin::start(StandinConfig {
        length_unit: LengthUnit::CodePoints,
        ..config
    })
    .await
    .unwrap();
    standin.add_bot(DEFAULT_TOKEN).unwrap();
    standin.add_chat(PRIVATE, ChatKind::Private).unwrap();
    standin.add_chat(GROUP, ChatKind::Group).unwrap();
    standin.add_chat(SUPERGROUP, ChatKind::Supergroup).unwrap();
    standin
        .set_chat_username(SUPERGROUP, "standin_alerts")
        .unwrap();
    standin
}

async fn unlimited() -> Standin {
    standin(StandinConfig::unlimited()).await
}

fn telegram(standin: &Standin) -> Telegram {
    Telegram::new(&standin.api_url(), Duration::from_secs(5)).unwrap()
}

fn token() -> SecretString {
    SecretString::from(DEFAULT_TOKEN)
}

fn chat(id: i64) -> ChatId {
    ChatId::parse(&id.to_string()).unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn card() -> Card {
    Card {
        title: "invoice.payment_failed".into(),
        text: vec![
            Span::Text {
                text: "Payment failed for ".into(),
            },
            Span::Value {
                text: "Acme & Co".into(),
            },
        ],
        fields: vec![Field {
            name: "amount".into(),
            value: "49.00 USD".into(),
        }],
        buttons: vec![Link {
            label: "Open invoice".into(),
            url: "https://invoice.example/i/1?a=1&b=2".into(),
        }],
        footer: "ingestlayer · from webhook:stripe · api:e1".into(),
        link: Some(LINK.into()),
        ..Card::default()
    }
}

fn delivered(verdict: &Verdict) -> &str {
    match verdict {
        Verdict::Delivered { receipt, .. } => receipt,
        other => panic!("not delivered: {other:?}"),
    }
}

fn pause(verdict: Verdict) -> (String, String) {
    match verdict {
        Verdict::PauseTarget { reason, hint } => (reason, hint),
        other => panic!("not paused: {other:?}"),
    }
}

// Docs: https://core.telegram.org/bots/api#sendmessage
#[tokio::test]
async fn a_card_is_sent_as_html_without_preview_and_delivered_with_the_message_id() {
    let standin = unlimited().await;
    let t = telegram(&standin);
    let html = render(&card(), false);
    assert_eq!(
        delivered(&t.send(&token(), &chat(PRIVATE), &html, now()).await),
        "1"
    );
    assert_eq!(
        delivered(&t.send(&token(), &chat(PRIVATE), &html, now()).await),
        "2"
    );
    let sent = &standin.messages(PRIVATE)[0];
    assert_eq!(sent.raw_text, html);
    assert_eq!(sent.parse_mode, Some(ParseMode::Html));
    assert!(sent.link_preview_disabled);
    assert_eq!(
        sent.text,
        "invoice.payment_failed\nPayment failed for Acme & Co\n\namount: 49.00 USD\n\n\
         Open invoice\n\ningestlayer · from webhook:stripe · api:e1"
    );
    let link = sent.entities.iter().find_map(|e| match &e.kind {
        EntityKind::TextLink { url } => Some(url.as_str()),
        _ => None,
    });
    assert_eq!(link, Some("https://invoice.example/i/1?a=1&b=2"));
}

#[tokio::test]
async fn a_channel_username_reaches_its_chat() {
    let standin = unlimited().await;
    let verdict = telegram(&standin)
        .send(
            &token(),
            &ChatId::parse("@standin_alerts").unwrap(),
            &render(&card(), false),
            now(),
        )
        .await;
    delivered(&verdict);
    assert_eq!(standin.messages(SUPERGROUP).len(), 1);
}

// Docs: https://core.telegram.org/bots/api#sendmessage ("1-4096 characters after entities
// parsing")
#[tokio::test]
async fn a_message_showing_4096_characters_is_accepted_and_one_more_is_refused() {
    let standin = unlimited().await;
    let t = telegram(&standin);
    // Title (10), `\n`, the text, a blank line, the footer (1): the text shows 4082, in
    // entities, emoji and links.
    let mut c = card();
    c.title = "t".repeat(10);
    c.footer = "f".into();
    c.fields.clear();
    c.buttons.clear();
    c.text = vec![
        Span::Value {
            text: "&<>".repeat(1000),
        },
        Span::Link {
            url: "https://app.example/?a=1&b=2".into(),
            label: "a link".into(),
        },
        Span::Value {
            text: "😀".repeat(4082 - 3000 - 6),
        },
    ];
    let html = render(&c, false);
    delivered(&t.send(&token(), &chat(PRIVATE), &html, now()).await);
    let sent = standin.messages(PRIVATE).pop().unwrap();
    assert_eq!(sent.text.chars().count(), MAX_TEXT);
    assert!(
        !sent.text.contains("View the full event"),
        "nothing was cut"
    );

    // The limit is real: one more shown character and Telegram refuses the message.
    let over = format!("{html}x");
    assert_eq!(
        t.send(&token(), &chat(PRIVATE), &over, now()).await,
        Verdict::Park {
            reason: "Telegram refused the message: 400 Bad Request: message is too long".into()
        }
    );
}

#[tokio::test]
async fn an_oversized_card_is_cut_with_the_link_and_accepted() {
    let standin = unlimited().await;
    let t = telegram(&standin);
    let mut c = card();
    c.title = "&".repeat(400);
    c.text = vec![Span::Value {
        text: "<b>&amp;</b>".repeat(1000),
    }];
    c.notes = vec!["n".repeat(600)];
    c.fields = (0..40)
        .map(|i| Field {
            name: format!("{i}<{}", "a".repeat(300)),
            value: "&".repeat(2000),
        })
        .collect();
    c.footer = "f".repeat(1000);
    for (resent, chat_id) in [(false, PRIVATE), (true, GROUP)] {
        let html = render(&c, resent);
        delivered(&t.send(&token(), &chat(chat_id), &html, now()).await);
        let sent = standin.messages(chat_id).pop().unwrap();
        assert!(sent.text.chars().count() <= MAX_TEXT);
        assert!(
            sent.text.chars().count() > MAX_TEXT - 50,
            "the budget is used"
        );
        assert!(sent.text.contains("View the full event"));
        assert!(sent.text.contains("Open invoice"), "buttons stay");
        assert!(sent.text.contains("<b>&amp;</b>"), "values show literally");
        assert_eq!(
            resent,
            sent.text
                .ends_with("(sent again after an unconfirmed attempt)")
        );
        let links: Vec<&str> = sent
            .entities
            .iter()
            .filter_map(|e| match &e.kind {
                EntityKind::TextLink { url } => Some(url.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(links, ["https://invoice.example/i/1?a=1&b=2", LINK]);
    }

    // Routing cut something and there is no link: the message says where the event is.
    let mut c = card();
    c.truncated = true;
    c.link = None;
    delivered(
        &t.send(&token(), &chat(PRIVATE), &render(&c, false), now())
            .await,
    );
    let sent = standin.messages(PRIVATE).pop().unwrap();
    assert!(sent
        .text
        .contains("the full event is stored under its id, in the last line."));
}

#[tokio::test]
async fn markup_in_values_and_template_text_shows_literally() {
    let standin = unlimited().await;
    let mut c = card();
    c.text = vec![
        Span::Text {
            text: "*New* <i>signup</i>: ".into(),
        },
        Span::Value {
            text: "<a href=\"http://evil\">x</a> & <b>bold</b> &lt;".into(),
        },
    ];
    c.fields.clear();
    c.buttons.clear();
    delivered(
        &telegram(&standin)
            .send(&token(), &chat(PRIVATE), &render(&c, false), now())
            .await,
    );
    let sent = standin.messages(PRIVATE).pop().unwrap();
    assert!(sent
        .text
        .contains("*New* <i>signup</i>: <a href=\"http://evil\">x</a> & <b>bold</b> &lt;"));
    let kinds: Vec<&str> = sent.entities.iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(kinds, ["bold", "italic"], "only the title and the footer");
}

// Docs: https://core.telegram.org/bots/api#responseparameters (retry_after)
#[tokio::test]
async fn a_429_waits_retry_after() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::RateLimited { retry_after: 7 }));
    let verdict = telegram(&standin)
        .send(&token(), &chat(PRIVATE), &render(&card(), false), now())
        .await;
    assert_eq!(
        verdict,
        Verdict::RetryAfter {
            wait: Duration::from_secs(7),
            reason: "Telegram's flood control: too many messages".into()
        }
    );
    assert!(standin.all_messages().is_empty());
}

// Docs: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this (20
// messages per minute in a group)
#[tokio::test]
async fn a_groups_flood_limit_answers_429_while_another_chat_keeps_working() {
    // One a minute, so machine load cannot free the window mid-test.
    let standin = standin(StandinConfig {
        per_group_per_minute: 1,
        ..StandinConfig::unlimited()
    })
    .await;
    let t = telegram(&standin);
    let html = render(&card(), false);
    delivered(&t.send(&token(), &chat(GROUP), &html, now()).await);
    let verdict = t.send(&token(), &chat(GROUP), &html, now()).await;
    let Verdict::RetryAfter { wait, .. } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        (Duration::from_secs(55)..=Duration::from_secs(60)).contains(&wait),
        "{wait:?}"
    );
    delivered(&t.send(&token(), &chat(PRIVATE), &html, now()).await);
}

#[tokio::test]
async fn an_unknown_chat_pauses_with_the_chat_id_hint() {
    let standin = unlimited().await;
    let t = telegram(&standin);
    for unknown in ["-999", "@nobody_here"] {
        let (reason, hint) = pause(
            t.send(
                &token(),
                &ChatId::parse(unknown).unwrap(),
                &render(&card(), false),
                now(),
            )
            .await,
        );
        assert!(reason.contains("chat not found"), "{reason}");
        assert!(hint.contains("check chat_id"), "{hint}");
        assert!(hint.contains("bot was added"), "{hint}");
    }
}

#[tokio::test]
async fn a_blocked_or_removed_bot_pauses_while_other_chats_keep_working() {
    let standin = unlimited().await;
    let t = telegram(&standin);
    let html = render(&card(), false);
    standin.block_bot(PRIVATE).unwrap();
    let (reason, hint) = pause(t.send(&token(), &chat(PRIVATE), &html, now()).await);
    assert!(reason.contains("bot was blocked by the user"), "{reason}");
    assert!(hint.contains("unblock"), "{hint}");
    delivered(&t.send(&token(), &chat(GROUP), &html, now()).await);

    standin.kick_bot(GROUP).unwrap();
    let (reason, hint) = pause(t.send(&token(), &chat(GROUP), &html, now()).await);
    assert!(reason.contains("kicked from the group chat"), "{reason}");
    assert!(hint.contains("add it to the group again"), "{hint}");
    delivered(&t.send(&token(), &chat(SUPERGROUP), &html, now()).await);

    standin.unblock_bot(PRIVATE).unwrap();
    delivered(&t.send(&token(), &chat(PRIVATE), &html, now()).await);
}

#[tokio::test]
async fn a_revoked_or_malformed_token_pauses_and_never_shows() {
    let standin = unlimited().await;
    let t = telegram(&standin);
    let html = render(&card(), false);
    let revoked = "123456:revoked-token";
    let (reason, hint) = pause(
        t.send(&SecretString::from(revoked), &chat(PRIVATE), &html, now())
            .await,
    );
    assert!(reason.contains("401"), "{reason}");
    assert!(hint.contains("@BotFather"), "{hint}");
    assert!(!reason.contains(revoked) && !hint.contains(revoked));

    // Not a bot token at all: refused before anything is sent, since it would change the URL.
    let requests = standin.requests().len();
    let malformed = "123456:abc/../getMe";
    let (reason, hint) = pause(
        t.send(&SecretString::from(malformed), &chat(PRIVATE), &html, now())
            .await,
    );
    assert!(!reason.contains(malformed) && !hint.contains(malformed));
    assert_eq!(standin.requests().len(), requests);
}

#[tokio::test]
async fn server_errors_are_retried_as_maybe_sent() {
    let standin = unlimited().await;
    let t = telegram(&standin);
    let html = render(&card(), false);
    standin.inject(Fault::once(FaultKind::HttpStatus(502)));
    assert_eq!(
        t.send(&token(), &chat(PRIVATE), &html, now()).await,
        Verdict::Retry {
            reason: "Telegram answered 502 Bad Gateway".into(),
            maybe_sent: true
        }
    );
    assert!(standin.all_messages().is_empty());

    // The ambiguous case: Telegram sent the message, then answered 500.
    standin.inject(Fault::once(FaultKind::AcceptThenFail(500)));
    let verdict = t.send(&token(), &chat(PRIVATE), &html, now()).await;
    assert!(
        matches!(
            verdict,
            Verdict::Retry {
                maybe_sent: true,
                ..
            }
        ),
        "{verdict:?}"
    );
    assert_eq!(standin.messages(PRIVATE).len(), 1);
}

#[tokio::test]
async fn a_timeout_may_have_sent_and_its_reason_names_no_token() {
    let standin = unlimited().await;
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_secs(2),
    )));
    let t = Telegram::new(&standin.api_url(), Duration::from_millis(200)).unwrap();
    let verdict = t
        .send(&token(), &chat(PRIVATE), &render(&card(), false), now())
        .await;
    let Verdict::Retry { reason, maybe_sent } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(maybe_sent);
    assert!(
        reason.starts_with("Telegram did not answer in time"),
        "{reason}"
    );
    assert!(
        !reason.contains(DEFAULT_TOKEN) && !reason.contains("/bot"),
        "{reason}"
    );
    assert_eq!(standin.messages(PRIVATE).len(), 1, "it was sent");
}

#[tokio::test]
async fn a_refused_connection_certainly_did_not_send() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let t = Telegram::new(&format!("http://{closed}"), Duration::from_secs(5)).unwrap();
    let verdict = t
        .send(&token(), &chat(PRIVATE), &render(&card(), false), now())
        .await;
    let Verdict::Retry { reason, maybe_sent } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(!maybe_sent);
    assert!(
        reason.starts_with("could not connect to Telegram"),
        "{reason}"
    );
    assert!(
        !reason.contains(DEFAULT_TOKEN) && !reason.contains("/bot"),
        "{reason}"
    );
}
