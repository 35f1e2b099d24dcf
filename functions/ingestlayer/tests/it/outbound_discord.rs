//! The Discord adapter against the Discord stand-in (in process, over HTTP): what `render`
//! makes is accepted at every embed limit, an oversized card is cut with the link to the
//! full event and accepted; values ping nobody; a 429 waits the body's fractional
//! `retry_after`, and an emptied bucket holds the webhook; a deleted webhook or a wrong
//! token pauses the target while another webhook keeps working; 5xx answers and timeouts
//! are maybe-sent retries, a refused connection a certain one; the token never shows.

#![allow(clippy::unwrap_used)] // a failing test may panic

use std::time::Duration;

use discord_standin::{Fault, FaultKind, MentionType, RateLimit, Standin, StandinConfig, Webhook};
use ingestlayer::outbound::card::{Card, Field, Link, Span};
use ingestlayer::outbound::discord::{
    render, Discord, WebhookUrl, MAX_DESCRIPTION, MAX_EMBED_TOTAL, MAX_FIELDS, MAX_FIELD_NAME,
    MAX_FIELD_VALUE, MAX_FOOTER, MAX_TITLE,
};
use ingestlayer::outbound::Verdict;
use serde_json::{json, Value};

const LINK: &str = "https://in.example/v1/events/api:e1?sig=abc";

/// A stand-in without rate limits that would ping every mention written (stricter than
/// Discord's webhook default), so only `allowed_mentions` keeps a message quiet.
async fn unpaced() -> Standin {
    Standin::start(StandinConfig {
        webhook_rate_limit: None,
        global_rate_limit: None,
        default_parse: vec![
            MentionType::Users,
            MentionType::Roles,
            MentionType::Everyone,
        ],
        ..StandinConfig::default()
    })
    .await
    .unwrap()
}

fn discord(standin: &Standin) -> Discord {
    Discord::new(&standin.api_url(), Duration::from_secs(5)).unwrap()
}

/// The URL a user would copy from Discord for a stand-in webhook: the adapter takes the id
/// and token from it and posts to the configured base.
fn hook(webhook: &Webhook) -> WebhookUrl {
    WebhookUrl::parse(&format!(
        "https://discord.com/api/webhooks/{}/{}",
        webhook.id, webhook.token
    ))
    .unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn a(n: usize) -> String {
    "a".repeat(n)
}

fn card() -> Card {
    Card {
        title: "invoice.payment_failed".into(),
        text: vec![
            Span::Text {
                text: "Payment failed for ".into(),
            },
            Span::Value {
                text: "acme_corp".into(),
            },
        ],
        fields: vec![Field {
            name: "amount".into(),
            value: "49.00 USD".into(),
        }],
        buttons: vec![Link {
            label: "Open invoice".into(),
            url: "https://invoice.example/i/1".into(),
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

/// Sends `card` to the default webhook and returns the embed Discord stored.
async fn accepted(standin: &Standin, card: &Card) -> Value {
    let webhook = standin.default_webhook().unwrap();
    let body = render(card, false);
    let verdict = discord(standin).send(&hook(&webhook), &body, now()).await;
    let id = delivered(&verdict).to_owned();
    let message = standin.messages(&webhook.id).pop().unwrap();
    assert_eq!(message.id, id, "the receipt is the message id");
    assert_eq!(message.embeds, body["embeds"].as_array().unwrap().clone());
    message.embeds[0].clone()
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

#[tokio::test]
async fn a_card_is_posted_as_one_embed_and_delivered_with_the_message_id() {
    let standin = unpaced().await;
    let embed = accepted(&standin, &card()).await;
    assert_eq!(embed["title"], "invoice.payment\\_failed");
    assert_eq!(
        embed["description"],
        "Payment failed for acme\\_corp\n\n[Open invoice](https://invoice.example/i/1)"
    );
    assert_eq!(embed["fields"][0]["value"], "49.00 USD");
    assert!(embed.get("url").is_none(), "nothing was cut");
    let message = standin.all_messages().pop().unwrap();
    assert!(
        message.waited,
        "?wait=true, so Discord answers with the message"
    );
    assert_eq!(message.allowed_mentions, Some(json!({"parse": []})));
}

// Docs: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
#[tokio::test]
async fn a_card_at_every_embed_limit_is_accepted_as_rendered() {
    let standin = unpaced().await;
    // Title 256, footer 2048, 25 fields (one with a 256 name and a 1024 value): 6000 in all.
    let mut c = card();
    c.title = a(MAX_TITLE);
    c.footer = a(MAX_FOOTER);
    c.text = vec![Span::Value { text: a(1000) }];
    c.buttons.clear();
    c.fields = vec![Field {
        name: a(MAX_FIELD_NAME),
        value: a(MAX_FIELD_VALUE),
    }];
    c.fields.extend((1..MAX_FIELDS).map(|i| Field {
        name: format!("f{i:02}"),
        value: a(56),
    }));
    let embed = accepted(&standin, &c).await;
    assert!(embed.get("url").is_none(), "nothing was cut");
    let fields = embed["fields"].as_array().unwrap();
    assert_eq!(fields.len(), MAX_FIELDS);
    let total = chars(&embed["title"])
        + chars(&embed["description"])
        + chars(&embed["footer"]["text"])
        + fields
            .iter()
            .map(|f| chars(&f["name"]) + chars(&f["value"]))
            .sum::<usize>();
    assert_eq!(total, MAX_EMBED_TOTAL);

    // A description of 4096 with a 256 title and the rest of the 6000 in the footer.
    let mut c = card();
    c.title = a(MAX_TITLE);
    c.text = vec![Span::Value {
        text: a(MAX_DESCRIPTION),
    }];
    c.buttons.clear();
    c.fields.clear();
    c.footer = a(MAX_EMBED_TOTAL - MAX_TITLE - MAX_DESCRIPTION);
    let embed = accepted(&standin, &c).await;
    assert_eq!(chars(&embed["description"]), MAX_DESCRIPTION);
    assert!(embed.get("url").is_none());
}

#[tokio::test]
async fn an_oversized_card_is_cut_with_the_link_and_accepted() {
    let standin = unpaced().await;
    let mut c = card();
    c.title = "_".repeat(400);
    c.text = vec![Span::Value {
        text: "*[x]".repeat(3000),
    }];
    c.notes = vec![a(500)];
    c.fields = (0..40)
        .map(|i| Field {
            name: format!("{i}{}", "#".repeat(300)),
            value: "|".repeat(2000),
        })
        .collect();
    c.footer = a(3000);
    for resent in [false, true] {
        let webhook = standin.create_webhook(&format!("resent-{resent}"));
        let body = render(&c, resent);
        let verdict = discord(&standin).send(&hook(&webhook), &body, now()).await;
        delivered(&verdict);
        let embed = &standin.messages(&webhook.id)[0].embeds[0];
        assert_eq!(embed["url"], LINK);
        assert!(embed["description"]
            .as_str()
            .unwrap()
            .ends_with(&format!("[View the full event]({LINK})")));
        assert!(embed["description"]
            .as_str()
            .unwrap()
            .contains("[Open invoice](https://invoice.example/i/1)"));
        assert_eq!(
            resent,
            embed["footer"]["text"]
                .as_str()
                .unwrap()
                .ends_with("(sent again after an unconfirmed attempt)")
        );
    }

    // Routing cut something and there is no link: the embed says where the event is.
    let mut c = card();
    c.truncated = true;
    c.link = None;
    let embed = accepted(&standin, &c).await;
    assert!(embed.get("url").is_none());
    assert!(embed["description"]
        .as_str()
        .unwrap()
        .ends_with("the full event is stored under its id, in the footer."));
}

// Docs: https://discord.com/developers/docs/resources/message#allowed-mentions-object
#[tokio::test]
async fn mentions_in_values_ping_nobody_even_as_content() {
    let standin = unpaced().await;
    let webhook = standin.default_webhook().unwrap();
    let pings = "@everyone @here <@123456789012345678> <@&223456789012345678>";
    let mut c = card();
    c.title = pings.into();
    c.text.push(Span::Value { text: pings.into() });
    c.fields.push(Field {
        name: pings.into(),
        value: pings.into(),
    });
    let mut body = render(&c, false);
    let description = body["embeds"][0]["description"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!description.contains("@everyone"));
    assert!(
        description.contains("\\<@123456789012345678\\>"),
        "{description}"
    );
    // The stand-in parses mentions in `content` only; put the rendered text there too, so
    // the check is not vacuous: `allowed_mentions` alone keeps it quiet.
    body["content"] = json!(format!("{pings} {description}"));

    let verdict = discord(&standin).send(&hook(&webhook), &body, now()).await;
    delivered(&verdict);
    let message = standin.messages(&webhook.id).pop().unwrap();
    assert!(message.pings.is_empty(), "{:?}", message.pings);
}

// Docs: https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit
#[tokio::test]
async fn a_429_waits_the_bodys_retry_after_to_the_millisecond() {
    let standin = unpaced().await;
    let webhook = standin.default_webhook().unwrap();
    standin.inject(Fault::once(FaultKind::RateLimited {
        retry_after: Duration::from_millis(2345),
        global: false,
    }));
    standin.inject(Fault::once(FaultKind::RateLimited {
        retry_after: Duration::from_millis(1500),
        global: true,
    }));
    let d = discord(&standin);
    let body = render(&card(), false);

    // The header says 3 (whole seconds, rounded up); the body's 2.345 wins.
    assert_eq!(
        d.send(&hook(&webhook), &body, now()).await,
        Verdict::RetryAfter {
            wait: Duration::from_millis(2345),
            reason: "Discord rate-limited the webhook".into()
        }
    );
    let Verdict::RetryAfterAll { wait, reason } = d.send(&hook(&webhook), &body, now()).await
    else {
        panic!()
    };
    assert_eq!(wait, Duration::from_millis(1500));
    assert!(reason.contains("global"), "{reason}");
    assert!(standin.all_messages().is_empty());
}

// Docs: https://discord.com/developers/docs/topics/rate-limits#header-format
#[tokio::test]
async fn an_emptied_bucket_holds_the_webhook_and_the_next_request_gets_429() {
    // A long window, so machine load cannot refill the bucket mid-test.
    let standin = Standin::start(StandinConfig {
        webhook_rate_limit: Some(RateLimit::new(2, Duration::from_secs(60))),
        global_rate_limit: None,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let webhook = standin.default_webhook().unwrap();
    let d = discord(&standin);
    let body = render(&card(), false);
    let window = Duration::from_secs(55)..=Duration::from_secs(60);

    let first = d.send(&hook(&webhook), &body, now()).await;
    assert!(
        matches!(first, Verdict::Delivered { hold: None, .. }),
        "{first:?}"
    );
    let second = d.send(&hook(&webhook), &body, now()).await;
    let Verdict::Delivered {
        hold: Some(hold), ..
    } = second
    else {
        panic!("{second:?}")
    };
    assert!(window.contains(&hold), "{hold:?}");
    let third = d.send(&hook(&webhook), &body, now()).await;
    let Verdict::RetryAfter { wait, .. } = third else {
        panic!("{third:?}")
    };
    assert!(window.contains(&wait), "{wait:?}");
    assert_eq!(standin.messages(&webhook.id).len(), 2);

    // Another webhook has its own bucket.
    let other = standin.create_webhook("other");
    delivered(&d.send(&hook(&other), &body, now()).await);
}

// Docs: https://discord.com/developers/docs/topics/opcodes-and-status-codes#json (10015, 50027)
#[tokio::test]
async fn a_deleted_webhook_or_a_wrong_token_pauses_while_another_keeps_working() {
    let standin = unpaced().await;
    let gone = standin.create_webhook("gone");
    let kept = standin.create_webhook("kept");
    assert!(standin.delete_webhook(&gone.id));
    let d = discord(&standin);
    let body = render(&card(), false);

    let Verdict::PauseTarget { reason, hint } = d.send(&hook(&gone), &body, now()).await else {
        panic!()
    };
    assert!(reason.contains("404 Unknown Webhook (10015)"), "{reason}");
    assert!(hint.contains("Integrations settings"), "{hint}");
    assert!(!reason.contains(&gone.token) && !hint.contains(&gone.token));

    let wrong = WebhookUrl::parse(&format!(
        "https://discord.com/api/webhooks/{}/{}x",
        kept.id, kept.token
    ))
    .unwrap();
    let Verdict::PauseTarget { reason, .. } = d.send(&wrong, &body, now()).await else {
        panic!()
    };
    assert!(
        reason.contains("401 Invalid Webhook Token (50027)"),
        "{reason}"
    );

    delivered(&d.send(&hook(&kept), &body, now()).await);
    assert_eq!(standin.messages(&kept.id).len(), 1);
}

#[tokio::test]
async fn a_message_discord_refuses_is_parked_naming_the_field() {
    let standin = unpaced().await;
    let webhook = standin.default_webhook().unwrap();
    let too_long = json!({"embeds": [{"description": a(MAX_DESCRIPTION + 1)}],
                          "allowed_mentions": {"parse": []}});
    let verdict = discord(&standin)
        .send(&hook(&webhook), &too_long, now())
        .await;
    assert_eq!(
        verdict,
        Verdict::Park {
            reason: "Discord refused the message: Invalid Form Body \
                     (embeds.0.description: Must be 4096 or fewer in length.)"
                .into()
        }
    );
}

#[tokio::test]
async fn server_errors_are_retried_as_maybe_sent() {
    let standin = unpaced().await;
    let webhook = standin.default_webhook().unwrap();
    let d = discord(&standin);
    let body = render(&card(), false);
    for status in [500, 502, 503] {
        standin.inject(Fault::once(FaultKind::HttpStatus(status)));
        let verdict = d.send(&hook(&webhook), &body, now()).await;
        assert!(
            matches!(verdict, Verdict::Retry { maybe_sent: true, ref reason } if reason.contains(&status.to_string())),
            "{verdict:?}"
        );
    }
    assert!(standin.all_messages().is_empty());

    // The ambiguous case: Discord stored the message, then answered 500.
    standin.inject(Fault::once(FaultKind::AcceptThenStatus(500)));
    let verdict = d.send(&hook(&webhook), &body, now()).await;
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
    assert_eq!(standin.messages(&webhook.id).len(), 1);
}

#[tokio::test]
async fn a_timeout_may_have_posted_and_its_reason_names_no_token() {
    let standin = unpaced().await;
    let webhook = standin.default_webhook().unwrap();
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_secs(2),
    )));
    let d = Discord::new(&standin.api_url(), Duration::from_millis(200)).unwrap();

    let verdict = d
        .send(&hook(&webhook), &render(&card(), false), now())
        .await;
    let Verdict::Retry { reason, maybe_sent } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(maybe_sent);
    assert!(
        reason.starts_with("Discord did not answer in time"),
        "{reason}"
    );
    assert!(!reason.contains(&webhook.token), "{reason}");
    assert!(!reason.contains("/webhooks/"), "{reason}");
    assert_eq!(standin.messages(&webhook.id).len(), 1, "it was posted");
}

#[tokio::test]
async fn a_refused_connection_certainly_did_not_post() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let d = Discord::new(&format!("http://{closed}/api/v10"), Duration::from_secs(5)).unwrap();
    let token = "s3cret-token_0123456789";
    let url = format!("https://discord.com/api/webhooks/1000000000000000001/{token}");
    let verdict = d
        .send(
            &WebhookUrl::parse(&url).unwrap(),
            &render(&card(), false),
            now(),
        )
        .await;
    let Verdict::Retry { reason, maybe_sent } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(!maybe_sent);
    assert!(
        reason.starts_with("could not connect to Discord"),
        "{reason}"
    );
    assert!(
        !reason.contains(token) && !reason.contains("/webhooks/"),
        "{reason}"
    );
}
