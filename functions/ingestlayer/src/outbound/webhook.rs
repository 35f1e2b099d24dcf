//! The outbound webhook destination: each event a pipeline routes to it is POSTed as JSON
//! to the user's URL, signed as <https://www.standardwebhooks.com> asks (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64>`), with the signing code the
//! ingest function verifies incoming webhooks with ([`crate::webhook_signature`]).
//!
//! - **The same `webhook-id` on every attempt**: `msg_` and the delivery key (event,
//!   pipeline, destination), so a receiver that saw a delivery can drop its retries. Each
//!   attempt is signed again with its own timestamp, as the spec's senders do.
//! - **Retries as data** ([`RETRY_SCHEDULE`]), like svix's: 5 s, 5 min, 30 min, 2 h, 5 h,
//!   10 h, 10 h, then the message is parked. A `Retry-After` (429, 503) is honoured instead,
//!   capped at an hour.
//! - **410 Gone disables the endpoint**: the receiver asked for no more; the target pauses
//!   with a notice, and its backlog waits in the DLQ until the pipeline is fixed and the
//!   DLQ redriven.
//! - **No request reaches a private address** ([`super::ssrf`]) unless the local-
//!   development switch is on.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::ssrf::{self, Guard, Refused};
use super::{retry_after, Verdict};
use crate::ids::DeliveryKey;

/// Seconds before retry n (by attempt: after the first failure 5 s, …); after the last,
/// the message is parked. svix's schedule; about 28 hours in all.
pub const RETRY_SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

/// How long one attempt may take before it counts as a timeout (svix allows 15 s).
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The Standard Webhooks message id of a delivery: the same for every attempt.
pub fn webhook_id(key: &DeliveryKey) -> String {
    format!("msg_{key}")
}

/// The JSON body a receiver gets, in the spec's envelope: `type` is the event's name,
/// `timestamp` when ingest accepted it, `data` the event (its id, source and fields), the
/// pipeline that routed it and, when the pipeline can sign one, the link to the stored event.
pub fn body(
    event_name: &str,
    event_id: &str,
    received_at: &str,
    source: &str,
    fields: &Value,
    pipeline: &str,
    link: Option<&str>,
) -> Value {
    let mut data = json!({
        "id": event_id,
        "name": event_name,
        "source": source,
        "pipeline": pipeline,
        "fields": fields,
    });
    if let Some(link) = link {
        data["link"] = json!(link);
    }
    json!({"type": event_name, "timestamp": received_at, "data": data})
}

/// Where a webhook destination posts, and the secret it signs with (`whsec_…`).
pub struct Endpoint {
    pub url: url::Url,
    pub secret: SecretString,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Sends webhook deliveries: one HTTP client behind the address guard.
pub struct Sender {
    client: reqwest::Client,
    guard: Guard,
}

impl Sender {
    pub fn new(guard: Guard, timeout: Duration) -> reqwest::Result<Self> {
        Ok(Self {
            client: ssrf::client(guard, timeout)?,
            guard,
        })
    }

    /// Posts `body` to `endpoint` as attempt `now` (seconds since the epoch) of the
    /// delivery `id`, and says what the answer means.
    pub async fn send(&self, endpoint: &Endpoint, id: &str, body: &[u8], now: i64) -> Verdict {
        if let Err(why) = ssrf::check_url(&endpoint.url, self.guard) {
            return refused_target(&endpoint.url, &why);
        }
        let signature = match crate::webhook_signature::sign::standard(
            endpoint.secret.expose_secret(),
            id,
            now,
            body,
        ) {
            Ok(s) => s,
            Err(e) => {
                return Verdict::PauseTarget {
                    reason: format!("the webhook's secret cannot sign: {e}"),
                    hint: "set the secret to whsec_ and the base64 of 24 to 64 random bytes \
                           (`ingestlayer webhooks secret` makes one)"
                        .into(),
                }
            }
        };
        let sent = self
            .client
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => classify(response.status().as_u16(), response.headers(), now),
            Err(e) => transport(&endpoint.url, &e),
        }
    }
}

/// What an HTTP answer means (`now` in seconds since the epoch, for a dated Retry-After).
pub fn classify(status: u16, headers: &reqwest::header::HeaderMap, now: i64) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered {
            receipt: format!("HTTP {status}"),
            hold: None,
        },
        410 => Verdict::PauseTarget {
            reason: "the endpoint answered 410 Gone: it asks for no more deliveries, so the \
                     webhook is disabled"
                .into(),
            hint: "fix or remove the webhook in the pipeline, then `ingestlayer dlq redrive` \
                   sends what waited"
                .into(),
        },
        413 => Verdict::Park {
            reason: "the endpoint answered 413: the payload is too large for it".into(),
        },
        429 | 503 if retry_after(headers, now).is_some() => Verdict::RetryAfter {
            wait: retry_after(headers, now).unwrap_or_default(),
            reason: format!("the endpoint answered {status} with Retry-After"),
        },
        _ => Verdict::Retry {
            reason: format!("the endpoint answered HTTP {status}"),
            // It answered, so it saw the request; receivers deduplicate by webhook-id.
            maybe_sent: status >= 500,
        },
    }
}

/// What a request that got no answer means.
fn transport(url: &url::Url, e: &reqwest::Error) -> Verdict {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return refused_target(url, &refused.0);
        }
        source = err.source();
    }
    let host = url.host_str().unwrap_or("the endpoint");
    if e.is_timeout() {
        Verdict::Retry {
            reason: format!("{host} did not answer in time"),
            maybe_sent: true,
        }
    } else if e.is_connect() {
        Verdict::Retry {
            reason: format!("could not connect to {host}"),
            maybe_sent: false,
        }
    } else {
        Verdict::Retry {
            reason: format!("no answer from {host}"),
            maybe_sent: true,
        }
    }
}

fn refused_target(url: &url::Url, why: &str) -> Verdict {
    let host = url.host_str().unwrap_or("the endpoint");
    Verdict::PauseTarget {
        reason: format!("the webhook to {host} was not sent: {why}"),
        hint: "webhooks go to public addresses only; point the pipeline's webhook at a \
               public https URL (make dev allows local ones)"
            .into(),
    }
}

/// The wait before retrying after `attempts` failed attempts on `schedule` (seconds, as
/// [`RETRY_SCHEDULE`]), or `None` when the schedule is spent and the message is parked.
pub fn next_retry(schedule: &[u64], attempts: usize) -> Option<Duration> {
    schedule
        .get(attempts.checked_sub(1)?)
        .map(|s| Duration::from_secs(*s))
}

/// A retry schedule as written in `WEBHOOK_RETRY_SCHEDULE`: waits separated by commas, each
/// a duration such as `5s`, `5m`, `2h` or `1h 30m`; at least one, each at least a second.
pub fn parse_schedule(text: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for (n, part) in text.split(',').enumerate() {
        let part = part.trim();
        let wait = humantime::parse_duration(part)
            .map_err(|e| format!("wait {} ({part:?}): {e}; write waits as 5s, 5m, 2h", n + 1))?;
        if wait < Duration::from_secs(1) {
            return Err(format!("wait {} ({part:?}) is under a second", n + 1));
        }
        out.push(wait.as_secs());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn answers_are_classified_as_the_module_says() {
        let none = HeaderMap::new();
        assert!(matches!(classify(204, &none, 0), Verdict::Delivered { .. }));
        assert!(matches!(
            classify(410, &none, 0),
            Verdict::PauseTarget { .. }
        ));
        assert!(matches!(classify(413, &none, 0), Verdict::Park { .. }));
        let mut later = HeaderMap::new();
        later.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(
            classify(429, &later, 0),
            Verdict::RetryAfter {
                wait: Duration::from_secs(120),
                reason: "the endpoint answered 429 with Retry-After".into()
            }
        );
        assert!(matches!(
            classify(503, &later, 0),
            Verdict::RetryAfter { .. }
        ));
        assert_eq!(
            classify(429, &none, 0),
            Verdict::Retry {
                reason: "the endpoint answered HTTP 429".into(),
                maybe_sent: false
            }
        );
        assert!(matches!(
            classify(500, &none, 0),
            Verdict::Retry {
                maybe_sent: true,
                ..
            }
        ));
        assert!(matches!(
            classify(401, &none, 0),
            Verdict::Retry {
                maybe_sent: false,
                ..
            }
        ));
    }

    #[test]
    fn the_schedule_is_svixs_and_ends_in_parking() {
        let s = &RETRY_SCHEDULE;
        assert_eq!(next_retry(s, 0), None);
        assert_eq!(next_retry(s, 1), Some(Duration::from_secs(5)));
        assert_eq!(next_retry(s, 2), Some(Duration::from_secs(300)));
        assert_eq!(next_retry(s, 7), Some(Duration::from_secs(36_000)));
        assert_eq!(next_retry(s, 8), None);
        let total: u64 = RETRY_SCHEDULE.iter().sum();
        assert!((27 * 3600..29 * 3600).contains(&total), "{total}");
    }

    #[test]
    fn a_schedule_is_written_as_durations_and_bad_ones_are_named() {
        assert_eq!(
            parse_schedule("5s, 5m,30m, 2h, 5h, 10h, 10h").unwrap(),
            RETRY_SCHEDULE
        );
        assert_eq!(parse_schedule("1h 30m").unwrap(), [5400]);
        let e = parse_schedule("5s, soon").unwrap_err();
        assert!(e.starts_with("wait 2 (\"soon\")"), "{e}");
        assert!(parse_schedule("5s,").unwrap_err().starts_with("wait 2"));
        let e = parse_schedule("500ms").unwrap_err();
        assert!(e.contains("under a second"), "{e}");
    }

    #[test]
    fn the_body_is_the_specs_envelope() {
        let b = body(
            "invoice.paid",
            "api:e1",
            "2026-11-30T10:00:00Z",
            "api",
            &json!({"amount": 5}),
            "billing",
            Some("https://x/v1/events/e1?sig=…"),
        );
        assert_eq!(b["type"], "invoice.paid");
        assert_eq!(b["timestamp"], "2026-11-30T10:00:00Z");
        assert_eq!(b["data"]["fields"]["amount"], 5);
        assert_eq!(b["data"]["id"], "api:e1");
        assert_eq!(b["data"]["link"], "https://x/v1/events/e1?sig=…");
    }
}
