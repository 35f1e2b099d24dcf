//! A webhook receiver for the `webhook` destination, as a user's service would be: it
//! checks each delivery's Standard Webhooks signature with the reference library
//! (`standardwebhooks`), remembers what arrived (and whether it verified), and answers 204
//! (401 when the signature is wrong). `make dev` runs one on 127.0.0.1 and its example
//! webhook pipeline posts to it; the end-to-end tests run the same one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// One delivery as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`: the same on every attempt of one delivery.
    pub id: String,
    /// Whether the reference library accepted the signature.
    pub verified: bool,
    pub body: Value,
}

/// A running receiver; dropping it stops it.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
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
        let app = axum::Router::new().route(
            "/hooks/ingestlayer",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let verifier = verifier.clone();
                let store = store.clone();
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
                    if let Ok(mut all) = store.lock() {
                        all.push(Received { id, verified, body });
                    }
                    if verified {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::UNAUTHORIZED
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
            server,
        })
    }

    /// Everything that arrived, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
