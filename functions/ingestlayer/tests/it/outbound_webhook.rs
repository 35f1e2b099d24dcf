//! The outbound webhook sender against a real HTTP receiver on loopback: what arrives is
//! signed so that the Standard Webhooks reference library (`standardwebhooks`) and the
//! ingest function's own verifier accept it, every attempt carries the
//! same `webhook-id`, answers are classified, and without the local-development switch
//! nothing reaches loopback at all.

#![allow(clippy::unwrap_used)] // a failing test may panic

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use ingestlayer::ids::DeliveryKey;
use ingestlayer::ingress::webhooks::verify::{Provider, Source, SourceConfig};
use ingestlayer::outbound::ssrf::Guard;
use ingestlayer::outbound::webhook::{body, webhook_id, Endpoint, Sender};
use ingestlayer::outbound::Verdict;
use secrecy::SecretString;
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver answers next (status, Retry-After), and what it received.
#[derive(Default)]
struct Receiver {
    answers: VecDeque<(u16, Option<&'static str>)>,
    received: Vec<(HeaderMap, Vec<u8>)>,
}

async fn receiver(answers: &[(u16, Option<&'static str>)]) -> (url::Url, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver {
        answers: answers.iter().copied().collect(),
        received: Vec::new(),
    }));
    let s = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, bytes: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let mut r = s.lock().unwrap();
                r.received.push((headers, bytes.to_vec()));
                let (status, retry_after) = r.answers.pop_front().unwrap_or((200, None));
                let mut out = HeaderMap::new();
                if let Some(v) = retry_after {
                    out.insert("retry-after", v.parse().unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), out, "").into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        url::Url::parse(&format!("http://{addr}/hook")).unwrap(),
        state,
    )
}

fn endpoint(url: &url::Url) -> Endpoint {
    Endpoint {
        url: url.clone(),
        secret: SecretString::from(SECRET),
    }
}

fn local() -> Sender {
    Sender::new(Guard { allow_local: true }, Duration::from_secs(5)).unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn a_delivery_verifies_with_the_ingest_verifier_and_keeps_its_id_across_retries() {
    let (url, state) = receiver(&[(500, None), (200, None)]).await;
    let key = DeliveryKey::of("api:e1", "billing", 0);
    let id = webhook_id(&key);
    let payload = body(
        "invoice.paid",
        "api:e1",
        "2026-11-30T10:00:00Z",
        "api",
        &json!({"amount": 5, "note": "<b>&</b>"}),
        "billing",
        None,
    );
    let bytes = serde_json::to_vec(&payload).unwrap();
    let sender = local();
    let first = sender.send(&endpoint(&url), &id, &bytes, now()).await;
    assert_eq!(
        first,
        Verdict::Retry {
            reason: "the endpoint answered HTTP 500".into(),
            maybe_sent: true
        }
    );
    let second = sender.send(&endpoint(&url), &id, &bytes, now() + 5).await;
    assert_eq!(
        second,
        Verdict::Delivered {
            receipt: "HTTP 200".into(),
            hold: None,
        }
    );

    let verifier = Source::new(
        "receiver",
        &SourceConfig {
            provider: Provider::StandardWebhooks,
            secrets: vec![SECRET.into()],
        },
    )
    .unwrap();
    let r = state.lock().unwrap();
    assert_eq!(r.received.len(), 2);
    let mut timestamps = Vec::new();
    for (headers, got) in &r.received {
        assert_eq!(got, &bytes, "the body is sent as signed");
        assert_eq!(headers["webhook-id"], id.as_str());
        assert_eq!(headers["content-type"], "application/json");
        let ts: i64 = headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        timestamps.push(ts);
        standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .verify(got, headers)
            .unwrap();
        let verified = verifier.verify(headers, got, ts).unwrap();
        assert_eq!(verified.delivery_id.as_deref(), Some(id.as_str()));
        // A tampered body does not verify.
        let mut tampered = got.clone();
        tampered[5] ^= 1;
        assert!(verifier.verify(headers, &tampered, ts).is_err());
        assert!(standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .verify(&tampered, headers)
            .is_err());
    }
    assert_eq!(
        timestamps[1] - timestamps[0],
        5,
        "each attempt signs its own time"
    );
}

#[tokio::test]
async fn gone_disables_retry_after_is_honoured_and_too_large_is_parked() {
    let (url, _state) = receiver(&[(410, None), (429, Some("17")), (413, None)]).await;
    let sender = local();
    let e = endpoint(&url);
    match sender.send(&e, "msg_1", b"{}", now()).await {
        Verdict::PauseTarget { reason, hint } => {
            assert!(reason.contains("410"), "{reason}");
            assert!(hint.contains("dlq redrive"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sender.send(&e, "msg_1", b"{}", now()).await,
        Verdict::RetryAfter {
            wait: Duration::from_secs(17),
            reason: "the endpoint answered 429 with Retry-After".into()
        }
    );
    assert!(matches!(
        sender.send(&e, "msg_1", b"{}", now()).await,
        Verdict::Park { .. }
    ));
}

#[tokio::test]
async fn without_the_local_switch_nothing_reaches_loopback_by_address_or_by_name() {
    let (url, state) = receiver(&[]).await;
    let strict = Sender::new(Guard::default(), Duration::from_secs(5)).unwrap();
    // The literal address (over https, so the scheme is not what refuses it).
    let mut literal = url.clone();
    literal.set_scheme("https").unwrap();
    match strict
        .send(&endpoint(&literal), "msg_1", b"{}", now())
        .await
    {
        Verdict::PauseTarget { reason, .. } => {
            assert!(reason.contains("loopback"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A name that resolves to loopback: refused after resolution, before connecting.
    let by_name =
        url::Url::parse(&format!("https://localhost:{}/hook", url.port().unwrap())).unwrap();
    match strict
        .send(&endpoint(&by_name), "msg_1", b"{}", now())
        .await
    {
        Verdict::PauseTarget { reason, .. } => {
            assert!(
                reason.contains("localhost resolves to") && reason.contains("loopback"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Plain http is refused without the switch.
    match strict.send(&endpoint(&url), "msg_1", b"{}", now()).await {
        Verdict::PauseTarget { reason, .. } => assert!(reason.contains("https"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(state.lock().unwrap().received.is_empty());
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (target, state) = receiver(&[]).await;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let to = target.to_string();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = url::Url::parse(&format!("http://{addr}/hook")).unwrap();
    assert!(matches!(
        local().send(&endpoint(&url), "msg_1", b"{}", now()).await,
        Verdict::Retry { .. }
    ));
    assert!(state.lock().unwrap().received.is_empty());
}
