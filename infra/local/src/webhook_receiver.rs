//! A webhook receiver for the `webhook` destination, as a user's service would be: it
//! checks each delivery's Standard Webhooks signature with the reference library
//! (`standardwebhooks`), remembers what arrived (and whether it verified), and answers 204
//! (401 when the signature is wrong). `make dev` runs one on 127.0.0.1 and its example
//! webhook pipeline posts to it; the end-to-end tests run the same one, and script its next
//! answers ([`Receiver::answer_next`]: a 429 with Retry-After, a 5xx storm, 410 Gone, an
//! answer held back past the sender's timeout) as a user's service might give them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;

/// One delivery as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`: the same on every attempt of one delivery.
    pub id: String,
    /// Whether the reference library accepted the signature.
    pub verified: bool,
    pub body: Value,
    /// The status the receiver answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

/// A scripted answer: a status, with a `Retry-After` header when set, given after `delay`
/// when set.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The delivery is taken (recorded) at once and the answer held back this long: the
    /// ambiguous case, a service that processed the delivery but answered too late.
    pub delay: Option<Duration>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            delay: None,
        }
    }

    pub fn retry_after(status: u16, value: &str) -> Self {
        Self {
            retry_after: Some(value.to_owned()),
            ..Self::status(status)
        }
    }

    /// `status`, answered only after `delay` (the delivery is recorded when it arrives).
    pub fn delayed(status: u16, delay: Duration) -> Self {
        Self {
            delay: Some(delay),
            ..Self::status(status)
        }
    }
}

/// A running receiver; dropping it stops it.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    server: standin_server::Server,
}

impl Receiver {
    /// Serves on `addr` (port 0 for any), verifying with `secret` (`whsec_…`); `print`
    /// echoes each delivery in a line (make dev).
    pub async fn start(addr: SocketAddr, secret: &str, print: bool) -> std::io::Result<Self> {
        let verifier = Arc::new(
            standardwebhooks::Webhook::new(secret)
                .map_err(|e| std::io::Error::other(format!("the signing secret: {e:?}")))?,
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let next = script.clone();
        let app = axum::Router::new().route(
            "/hooks/ingestlayer",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let verifier = verifier.clone();
                let store = store.clone();
                let next = next.clone();
                async move {
                    let verified = verifier.verify(&body, &headers).is_ok();
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if print {
                        println!(
                            "[webhook receiver] {} {} ({})",
                            if verified {
                                "verified"
                            } else {
                                "REFUSED (bad signature)"
                            },
                            body["type"].as_str().unwrap_or("?"),
                            id
                        );
                    }
                    let answer = if verified {
                        next.lock()
                            .ok()
                            .and_then(|mut n| n.pop_front())
                            .unwrap_or(Answer::status(204))
                    } else {
                        Answer::status(401)
                    };
                    if let Ok(mut all) = store.lock() {
                        all.push(Received {
                            id,
                            verified,
                            body,
                            status: answer.status,
                            at: Instant::now(),
                        });
                    }
                    if let Some(delay) = answer.delay {
                        tokio::time::sleep(delay).await;
                    }
                    let status = StatusCode::from_u16(answer.status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    match answer.retry_after {
                        Some(after) => (status, [("retry-after", after)]).into_response(),
                        None => status.into_response(),
                    }
                }
            }),
        );
        let bound = standin_server::Bound::bind(addr).await?;
        let url = format!("http://{}/hooks/ingestlayer", bound.addr());
        let server = bound.serve(app, "webhook receiver");
        Ok(Self {
            url,
            received,
            script,
            server,
        })
    }

    /// The answers to give the next verified deliveries, in order (then 204 again).
    pub fn answer_next(&self, answers: impl IntoIterator<Item = Answer>) {
        if let Ok(mut n) = self.script.lock() {
            n.extend(answers);
        }
    }

    /// Everything that arrived, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// A delivery signed as Standard Webhooks asks (https://www.standardwebhooks.com,
    /// "Verifying webhooks"), with the reference library.
    async fn deliver(url: &str, id: &str, timeout: Duration) -> Result<u16, reqwest::Error> {
        let body = br#"{"type":"feature.used","timestamp":"2026-01-01T00:00:00Z","data":{}}"#;
        let now = time::OffsetDateTime::now_utc();
        let signature = standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .sign(id, now.unix_timestamp(), body)
            .unwrap();
        let answer = reqwest::Client::new()
            .post(url)
            .timeout(timeout)
            .header("webhook-id", id)
            .header("webhook-timestamp", now.unix_timestamp().to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await?;
        Ok(answer.status().as_u16())
    }

    #[tokio::test]
    async fn a_delayed_answer_is_recorded_on_arrival_and_answered_late() {
        let receiver = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), SECRET, false)
            .await
            .unwrap();
        receiver.answer_next([Answer::delayed(204, Duration::from_millis(800))]);
        let started = Instant::now();
        let timed_out = deliver(&receiver.url, "msg_1", Duration::from_millis(200)).await;
        assert!(
            timed_out.as_ref().is_err_and(reqwest::Error::is_timeout),
            "{timed_out:?}"
        );
        let got = receiver.received();
        assert_eq!(got.len(), 1, "taken before the answer: {got:?}");
        assert!(got[0].verified);
        assert_eq!(got[0].id, "msg_1");
        // The script moves on: the next delivery is answered at once.
        assert_eq!(
            deliver(&receiver.url, "msg_1", Duration::from_secs(5))
                .await
                .unwrap(),
            204
        );
        assert!(started.elapsed() < Duration::from_millis(800));
        assert_eq!(receiver.received().len(), 2);
    }
}
