//! The email adapter against SES v2 on the local emulator (moto server at `AWS_ENDPOINT_URL`;
//! `make test` starts one): a verified sender's email arrives as rendered, an unverified
//! sender pauses the target with what to verify, and a burst of 30 cards goes as one digest.
//!
//! What moto keeps of a sent email (the emulator's `GET /_ingestlayer/ses-sent`) is its sender,
//! destinations, subject and ONE body part: the HTML when there is one. That the plain-text
//! part is sent too, in UTF-8, is checked against the request itself in the module's unit
//! tests (aws-smithy-mocks). moto does not serve GetAccount, so the rate is unknown here.

#![allow(clippy::unwrap_used)] // a failing test may panic

use std::time::Duration;

use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use ingestlayer::outbound::card::{Card, Field, Span};
use ingestlayer::outbound::email::{min_interval, render, render_digest, Email};
use ingestlayer::outbound::Verdict;
use serde_json::Value;

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at a running moto server; `make test` starts one")
}

async fn ses() -> aws_sdk_sesv2::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await;
    aws_sdk_sesv2::Client::new(&sdk)
}

/// An address no other test (or run) uses, at `domain`.
fn unique(name: &str, domain: &str) -> String {
    format!(
        "{name}-{}@{domain}",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// A sender SES has verified (moto counts an identity as verified once created).
async fn verified_sender(ses: &aws_sdk_sesv2::Client) -> String {
    let from = unique("alerts", "acme.example");
    ses.create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    from
}

/// The emails moto has sent to `to`, as it keeps them, from the emulator's
/// `GET /_ingestlayer/ses-sent?to=` (`infra/emulator/moto_server.py`).
async fn sent_to(to: &str) -> Vec<Value> {
    let url = format!("{}/_ingestlayer/ses-sent", endpoint());
    let url = reqwest::Url::parse_with_params(&url, [("to", to)]).unwrap();
    let answer = reqwest::get(url.clone()).await.unwrap();
    assert_eq!(answer.status(), 200, "GET {url}");
    answer.json().await.unwrap()
}

fn card(i: usize) -> Card {
    Card {
        title: "feature.used".into(),
        text: vec![
            Span::Text {
                text: "Used by ".into(),
            },
            Span::Value {
                text: format!("<script>alert({i})</script> acct-{i}"),
            },
        ],
        fields: vec![Field {
            name: "Plan".into(),
            value: "pro & more".into(),
        }],
        footer: format!("ingestlayer · from web-app · api:e{i}"),
        ..Card::default()
    }
}

#[tokio::test]
async fn a_verified_senders_email_arrives_as_rendered() {
    let ses = ses().await;
    let from = verified_sender(&ses).await;
    let to = unique("ops", "acme.example");
    let mut c = card(1);
    c.title = "Payment failed:\n a@b.example".into();
    let m = render(&c);

    let verdict = Email::new(ses)
        .send(&format!("Alerts <{from}>"), std::slice::from_ref(&to), &m)
        .await;

    let Verdict::Delivered { receipt, hold } = verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(hold, None);
    let sent = sent_to(&to).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["id"], receipt.as_str());
    assert_eq!(sent[0]["source"], format!("Alerts <{from}>"));
    assert_eq!(sent[0]["subject"], "Payment failed: a@b.example");
    assert_eq!(sent[0]["body"], m.html.as_str());
    let html = sent[0]["body"].as_str().unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; acct-1"));
    assert!(!html.contains("<script>"));
    assert!(html.contains("pro &amp; more"));
}

#[tokio::test]
async fn an_unverified_sender_pauses_the_target_with_what_to_verify() {
    let from = unique("nobody", "unverified.example");
    let to = unique("ops", "acme.example");
    let verdict = Email::new(ses().await)
        .send(&from, std::slice::from_ref(&to), &render(&card(2)))
        .await;
    let Verdict::PauseTarget { reason, hint } = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(reason.contains("MessageRejected"), "{reason}");
    assert!(hint.starts_with(&format!("verify {from} in SES")), "{hint}");
    assert!(sent_to(&to).await.is_empty());
}

#[tokio::test]
async fn a_burst_of_30_cards_goes_as_one_digest() {
    let ses = ses().await;
    let from = verified_sender(&ses).await;
    let to = unique("ops", "acme.example");
    let cards: Vec<Card> = (0..30).map(card).collect();
    let m = render_digest(&cards);
    assert_eq!(m.subject, "30 events: feature.used");

    let verdict = Email::new(ses)
        .send(&from, std::slice::from_ref(&to), &m)
        .await;
    assert!(matches!(verdict, Verdict::Delivered { .. }), "{verdict:?}");

    let sent = sent_to(&to).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["subject"], "30 events: feature.used");
    let html = sent[0]["body"].as_str().unwrap();
    let mut at = 0;
    for i in 0..30 {
        let shown = format!("&lt;script&gt;alert({i})&lt;/script&gt; acct-{i}<");
        let found = html[at..]
            .find(&shown)
            .unwrap_or_else(|| panic!("event {i} is in the digest, after {}", i.max(1) - 1));
        at += found;
    }
}

#[tokio::test]
async fn without_getaccount_the_sandbox_rate_applies() {
    let email = Email::new(ses().await);
    let rate = email.max_send_rate().await;
    assert_eq!(
        rate, None,
        "moto now serves GetAccount: test the rate it gives"
    );
    assert_eq!(min_interval(rate), Duration::from_secs(1));
}
