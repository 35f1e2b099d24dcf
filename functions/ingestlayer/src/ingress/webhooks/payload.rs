//! How a verified delivery's payload becomes an event, per provider: its name, the delivery
//! id that makes redeliveries one event, its time, its data, and the provider's envelope
//! kept as context.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::ingress::webhooks::verify::{header, Provider, Source, Verified};

/// A verified payload as an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub name: String,
    /// What identifies the delivery across retries: the signed delivery id (Standard
    /// Webhooks, Stripe) or `sha256-<hex>` of the signed body (GitHub).
    pub delivery_id: String,
    pub time: Option<OffsetDateTime>,
    pub data: Value,
    /// The provider's envelope around `data`, kept with the event.
    pub context: Map<String, Value>,
}

/// Maps a verified payload to an event; `Ok(None)` for deliveries that are not events
/// (GitHub's `ping` when a webhook is created). The error ([`Error::Invalid`]) says what
/// the payload lacks, in words the sender can read.
pub fn map(
    source: &Source,
    headers: &http::HeaderMap,
    verified: &Verified,
    payload: Value,
) -> Result<Option<Mapped>> {
    let Value::Object(mut obj) = payload else {
        return Err(Error::reason("the payload must be a JSON object"));
    };
    let mut context = Map::new();
    context.insert("provider".into(), json!(source.provider.as_str()));
    context.insert("source".into(), json!(source.name));
    let (name, delivery_id, time, data) = match source.provider {
        Provider::StandardWebhooks => {
            let name = take_string(&mut obj, "type").ok_or_else(|| {
                Error::reason("a Standard Webhooks payload names its event in a string `type`")
            })?;
            let time = obj.get("timestamp").and_then(Value::as_str).and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            });
            let data = match obj.remove("data") {
                Some(d @ Value::Object(_)) => d,
                Some(other) => json!({ "data": other }),
                None => Value::Object(std::mem::take(&mut obj)),
            };
            context.insert("type".into(), json!(name));
            let id = verified.delivery_id.clone().unwrap_or_default();
            (name, id, time, data)
        }
        Provider::Stripe => {
            let id = take_string(&mut obj, "id")
                .ok_or_else(|| Error::reason("a Stripe event has a string `id`"))?;
            let name = take_string(&mut obj, "type")
                .ok_or_else(|| Error::reason("a Stripe event has a string `type`"))?;
            let time = obj
                .get("created")
                .and_then(Value::as_i64)
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            let mut data_wrapper = match obj.remove("data") {
                Some(Value::Object(d)) => d,
                _ => return Err(Error::reason("a Stripe event has a `data` object")),
            };
            let data = match data_wrapper.remove("object") {
                Some(o @ Value::Object(_)) => o,
                _ => return Err(Error::reason("a Stripe event has a `data.object` object")),
            };
            if let Some(prev) = data_wrapper.remove("previous_attributes") {
                context.insert("previous_attributes".into(), prev);
            }
            context.insert("type".into(), json!(name));
            context.insert("event_id".into(), json!(id));
            (name, id, time, data)
        }
        Provider::Github => {
            let event = header(headers, "x-github-event")
                .map_err(|_| Error::reason("the X-GitHub-Event header is missing"))?;
            if event == "ping" {
                return Ok(None);
            }
            context.insert("event".into(), json!(event));
            if let Ok(hook) = header(headers, "x-github-hook-id") {
                context.insert("hook_id".into(), json!(hook));
            }
            if let Some(delivery) = &verified.delivery_id {
                context.insert("github_delivery".into(), json!(delivery));
            }
            let id = format!(
                "sha256-{}",
                verified.body_digest.as_deref().unwrap_or_default()
            );
            (
                format!("github.{event}"),
                id,
                None,
                Value::Object(std::mem::take(&mut obj)),
            )
        }
    };
    for (key, value) in obj {
        if key != "data" {
            context.entry(key).or_insert(value);
        }
    }
    context.insert("delivery_id".into(), json!(delivery_id));
    Ok(Some(Mapped {
        name,
        delivery_id,
        time,
        data,
        context,
    }))
}

fn take_string(obj: &mut Map<String, Value>, key: &str) -> Option<String> {
    match obj.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(other) => {
            obj.insert(key.to_owned(), other);
            None
        }
        None => None,
    }
}

/// The sender's id of a delivery: the delivery id, or `sha256:<hex>` of it when it is longer
/// than a client id may be. Scoped by the source, the event id is
/// `webhook:<source>:<delivery id>`.
pub fn delivery_client_id(delivery_id: &str) -> String {
    if delivery_id.len() <= crate::event::MAX_NAME_LEN
        && !delivery_id.is_empty()
        && delivery_id.chars().all(|c| c.is_ascii_graphic())
    {
        delivery_id.to_owned()
    } else {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(delivery_id.as_bytes()))
        )
    }
}

/// The source an event from webhook source `name` records: `webhook:<name>`.
pub fn origin(name: &str) -> String {
    format!("webhook:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::webhooks::verify::tests::{headers, source, STANDARD_SECRET};
    use crate::ingress::webhooks::verify::{
        generate_secret, valid_source_name, SourceConfig, MAX_SOURCE_NAME,
    };

    #[test]
    fn payloads_map_to_events() {
        let std_src = source(Provider::StandardWebhooks, &[STANDARD_SECRET]);
        let m = map(
            &std_src,
            &http::HeaderMap::new(),
            &Verified {
                delivery_id: Some("msg_1".into()),
                body_digest: None,
            },
            json!({"type": "user.signed_up", "timestamp": "2026-11-27T10:00:00Z", "data": {"user_id": "u_42"}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.name, "user.signed_up");
        assert_eq!(m.data, json!({"user_id": "u_42"}));
        assert!(m.time.is_some());

        let stripe = source(Provider::Stripe, &["whsec_x"]);
        let m = map(
            &stripe,
            &http::HeaderMap::new(),
            &Verified {
                delivery_id: None,
                body_digest: None,
            },
            json!({"id": "evt_9", "object": "event", "type": "invoice.payment_failed", "created": 1_700_000_000,
                   "livemode": false, "data": {"object": {"id": "in_1", "amount_due": 4900, "customer_email": "a@b.co"}}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (m.name.as_str(), m.delivery_id.as_str()),
            ("invoice.payment_failed", "evt_9")
        );
        assert_eq!(m.data["amount_due"], 4900);
        assert_eq!(m.context["livemode"], false);

        let gh = source(Provider::Github, &["s"]);
        let h = headers(&[("x-github-event", "workflow_run")]);
        let m = map(
            &gh,
            &h,
            &Verified {
                delivery_id: Some("d-1".into()),
                body_digest: Some("ab12".into()),
            },
            json!({"action": "completed", "workflow_run": {"conclusion": "failure"}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.name, "github.workflow_run");
        assert_eq!(m.delivery_id, "sha256-ab12");
        assert_eq!(m.context["github_delivery"], "d-1");
        assert_eq!(m.data["workflow_run"]["conclusion"], "failure");
        let ping = headers(&[("x-github-event", "ping")]);
        assert_eq!(
            map(
                &gh,
                &ping,
                &Verified {
                    delivery_id: None,
                    body_digest: None,
                },
                json!({"zen": "x"})
            )
            .unwrap(),
            None
        );

        let err = map(
            &stripe,
            &h,
            &Verified {
                delivery_id: None,
                body_digest: None,
            },
            json!({"type": "x"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`id`"), "{err}");
        assert!(!err.is_retryable());
    }

    #[test]
    fn secrets_and_names_are_checked() {
        let bad = Source::new(
            "s",
            &SourceConfig {
                provider: Provider::StandardWebhooks,
                secrets: vec!["whsec_not base64!".into()],
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("secrets[0]") && !bad.contains("not base64!"),
            "{bad}"
        );
        assert!(valid_source_name("stripe-prod_2"));
        assert!(
            !valid_source_name("Stripe") && !valid_source_name("") && !valid_source_name("a/b")
        );
        assert_eq!(delivery_client_id("evt_1"), "evt_1");
        assert!(delivery_client_id(&"x".repeat(200)).starts_with("sha256:"));
        // The longest source name still makes valid event ids from any delivery.
        let longest = "a".repeat(MAX_SOURCE_NAME);
        assert!(valid_source_name(&longest) && !valid_source_name(&format!("{longest}a")));
        for delivery in [
            "x".repeat(200),
            format!("sha256-{}", "f".repeat(64)),
            "a b".into(),
        ] {
            let client = crate::event::ClientId::parse(&delivery_client_id(&delivery)).unwrap();
            let id = crate::event::EventId::scoped(&origin(&longest), &client);
            assert!(crate::event::EventId::parse(id.as_str()).is_ok(), "{id}");
        }
        for provider in [
            Provider::StandardWebhooks,
            Provider::Stripe,
            Provider::Github,
        ] {
            let config = SourceConfig {
                provider,
                secrets: vec![generate_secret(provider)],
            };
            assert!(Source::new("s", &config).is_ok(), "{provider:?}");
        }
    }
}
