//! How a webhook delivery's signature is checked: each provider's scheme, the secrets a
//! source holds, and why a delivery is refused.
//!
//! A source is one Secrets Manager secret named `<prefix><source>` (under the stack's KMS
//! key) holding `{"provider": "standard-webhooks" | "stripe" | "github", "secrets": [...]}`.
//! Several secrets let a sender rotate: a delivery signed with any of them verifies.
//!
//! | provider            | signature                                   | replay window | delivery id           |
//! |---------------------|---------------------------------------------|---------------|-----------------------|
//! | `standard-webhooks` | `webhook-signature: v1,<base64>` (several)   | ±300 s        | `webhook-id`          |
//! | `stripe`            | `Stripe-Signature: t=…,v1=<hex>` (several)   | ±300 s        | the event's `id`      |
//! | `github`            | `X-Hub-Signature-256: sha256=<hex>`          | none (GitHub sends no timestamp) | `X-GitHub-Delivery` |
//!
//! Every comparison is HMAC-SHA256 checked in constant time (`subtle`), and a
//! signature of the wrong length never matches (an empty `v1,` included). The delivery id,
//! scoped by the source, is the event id (`webhook:<source>:<delivery id>`), so the
//! idempotency window (24 h) makes a redelivered webhook one event, and no API key can name
//! it.

use base64::Engine;
use hmac::Mac;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::webhook_signature::{mac, signing_key};
pub use crate::webhook_signature::{sign, Provider};

/// How far a signed timestamp may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;
/// HMAC-SHA256 output.
const SIGNATURE_LEN: usize = 32;
pub use crate::ids::{
    valid_webhook_source as valid_source_name, MAX_WEBHOOK_SOURCE_LEN as MAX_SOURCE_NAME,
};

/// A source's secret value, as stored in Secrets Manager.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub provider: Provider,
    /// Newest first; every one of them verifies.
    pub secrets: Vec<String>,
}

/// A source ready to verify deliveries.
pub struct Source {
    pub name: String,
    pub provider: Provider,
    keys: Vec<SecretBox<Vec<u8>>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Source {
    /// Checks the secrets' form (never echoing them).
    pub fn new(name: &str, config: &SourceConfig) -> crate::error::Result<Self> {
        if config.secrets.is_empty() {
            return Err(crate::error::Error::reason(format!(
                "webhook source {name}: `secrets` is empty"
            )));
        }
        let keys = config
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                signing_key(config.provider, s)
                    .map(|k| SecretBox::new(Box::new(k)))
                    .map_err(|e| {
                        crate::error::Error::reason(format!(
                            "webhook source {name}: secrets[{i}] {e}"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            provider: config.provider,
            keys,
        })
    }

    /// Verifies one delivery at `now` (Unix seconds). The delivery id is known from the
    /// headers for Standard Webhooks and GitHub; Stripe's is in the payload.
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, Rejection> {
        match self.provider {
            Provider::StandardWebhooks => self.verify_standard(headers, body, now),
            Provider::Stripe => self.verify_stripe(headers, body, now),
            Provider::Github => self.verify_github(headers, body),
        }
    }

    fn verify_standard(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, Rejection> {
        // Svix, the reference sender, names the same headers svix-*.
        let id = header_either(headers, "webhook-id", "svix-id")?;
        let ts_text = header_either(headers, "webhook-timestamp", "svix-timestamp")?;
        let ts = parse_timestamp("webhook-timestamp", ts_text)?;
        fresh(ts, now)?;
        let list = header_either(headers, "webhook-signature", "svix-signature")?;
        let candidates: Vec<Vec<u8>> = list
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|sig| sig.len() == SIGNATURE_LEN)
            .collect();
        if candidates.is_empty() {
            return Err(Rejection::Malformed {
                header: "webhook-signature",
                reason: "has no v1 signature of 32 bytes (v1,<base64>)",
            });
        }
        self.check(
            &[id.as_bytes(), b".", ts_text.as_bytes(), b".", body],
            &candidates,
        )?;
        Ok(Verified {
            delivery_id: Some(id.to_owned()),
            body_digest: None,
        })
    }

    fn verify_stripe(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, Rejection> {
        let value = header(headers, "stripe-signature")?;
        let mut t = None;
        let mut candidates = Vec::new();
        for part in value.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = Some(v),
                Some(("v1", v)) => {
                    if let Ok(sig) = hex::decode(v) {
                        if sig.len() == SIGNATURE_LEN {
                            candidates.push(sig);
                        }
                    }
                }
                _ => {}
            }
        }
        let ts_text = t.ok_or(Rejection::Malformed {
            header: "Stripe-Signature",
            reason: "has no t=<timestamp>",
        })?;
        let ts = parse_timestamp("Stripe-Signature", ts_text)?;
        fresh(ts, now)?;
        if candidates.is_empty() {
            return Err(Rejection::Malformed {
                header: "Stripe-Signature",
                reason: "has no v1 signature of 64 hex digits",
            });
        }
        self.check(&[ts_text.as_bytes(), b".", body], &candidates)?;
        Ok(Verified {
            delivery_id: None,
            body_digest: None,
        })
    }

    fn verify_github(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let value = header(headers, "x-hub-signature-256")?;
        let sig = value
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
            .filter(|s| s.len() == SIGNATURE_LEN)
            .ok_or(Rejection::Malformed {
                header: "X-Hub-Signature-256",
                reason: "is not sha256=<64 hex digits>",
            })?;
        self.check(&[body], &[sig])?;
        let delivery = header(headers, "x-github-delivery")?;
        // GitHub signs neither the delivery id nor the event type, so a captured delivery
        // could come back under a new X-GitHub-Delivery. What is signed, the body,
        // identifies it instead: a replay within the idempotency window is a duplicate.
        Ok(Verified {
            delivery_id: Some(delivery.to_owned()),
            body_digest: Some(hex::encode(Sha256::digest(body))),
        })
    }

    /// Whether any key signed `parts` (concatenated) as any of `candidates`.
    fn check(&self, parts: &[&[u8]], candidates: &[Vec<u8>]) -> Result<(), Rejection> {
        let mut matched = subtle::Choice::from(0);
        for key in &self.keys {
            let expected = mac(key.expose_secret(), parts).finalize().into_bytes();
            for sig in candidates {
                // Every pair is checked, so the time taken does not tell which one matched.
                matched |= expected.as_slice().ct_eq(sig);
            }
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Rejection::Mismatch)
        }
    }
}

/// What a verified delivery told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub delivery_id: Option<String>,
    /// SHA-256 of the body, for senders whose delivery id is not signed (GitHub).
    pub body_digest: Option<String>,
}

/// Why a delivery is refused (401). The text is safe to return to the sender. A refusal
/// returned by the pure [`Source::verify`], not one of the library's failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {header} header {reason}")]
    Malformed {
        header: &'static str,
        reason: &'static str,
    },
    /// How many seconds old the signed timestamp is (negative: in the future).
    #[error("{}", stale_reason(*.0))]
    Stale(i64),
    #[error("no signature matches this body and the source's secret")]
    Mismatch,
}

fn stale_reason(age: i64) -> String {
    let when = if age >= 0 {
        format!("{age} s old")
    } else {
        format!("{} s in the future", age.unsigned_abs())
    };
    format!("the signed timestamp is {when}; deliveries are accepted within ±{TOLERANCE_SECONDS} s of now")
}

pub(crate) fn header<'a>(
    headers: &'a http::HeaderMap,
    name: &'static str,
) -> Result<&'a str, Rejection> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(Rejection::MissingHeader(name))
}

fn header_either<'a>(
    headers: &'a http::HeaderMap,
    name: &'static str,
    alias: &'static str,
) -> Result<&'a str, Rejection> {
    header(headers, name)
        .or_else(|_| header(headers, alias).map_err(|_| Rejection::MissingHeader(name)))
}

fn parse_timestamp(header: &'static str, text: &str) -> Result<i64, Rejection> {
    text.parse().map_err(|_| Rejection::Malformed {
        header,
        reason: "has a timestamp that is not Unix seconds",
    })
}

fn fresh(ts: i64, now: i64) -> Result<(), Rejection> {
    let skew = now.saturating_sub(ts);
    if skew.abs() > TOLERANCE_SECONDS {
        Err(Rejection::Stale(skew))
    } else {
        Ok(())
    }
}

/// A fresh secret in the provider's own form: Standard Webhooks `whsec_` and 32 random
/// bytes in base64; Stripe-like `whsec_` and 32 letters and digits; for GitHub 40 of them.
/// (Stripe and GitHub issue their secrets themselves; these are for local senders.)
pub fn generate_secret(provider: Provider) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    match provider {
        Provider::StandardWebhooks => {
            let key: [u8; 32] = rand::random();
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            )
        }
        Provider::Stripe => format!("whsec_{}", Alphanumeric.sample_string(&mut rand::rng(), 32)),
        Provider::Github => Alphanumeric.sample_string(&mut rand::rng(), 40),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    pub(crate) fn source(provider: Provider, secrets: &[&str]) -> Source {
        Source::new(
            "s",
            &SourceConfig {
                provider,
                secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            },
        )
        .unwrap()
    }

    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    /// The example in the Standard Webhooks specification's reference libraries' tests.
    #[test]
    fn standard_webhooks_reference_vector_verifies() {
        let body = br#"{"test": 2432232314}"#;
        let s = source(Provider::StandardWebhooks, &[STANDARD_SECRET]);
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        assert_eq!(
            s.verify(&h, body, 1_614_265_330)
                .unwrap()
                .delivery_id
                .as_deref(),
            Some("msg_p5jXN8AQM9LWM0D4loKWxJek")
        );
        assert_eq!(
            sign::standard(
                STANDARD_SECRET,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                body
            )
            .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn standard_webhooks_refusals_name_the_reason() {
        let body = br#"{"type":"user.signed_up","data":{}}"#;
        let s = source(Provider::StandardWebhooks, &[STANDARD_SECRET]);
        let now = 1_700_000_000;
        let good = sign::standard(STANDARD_SECRET, "msg_1", now, body).unwrap();
        let with = |sig: &str, ts: i64| {
            headers(&[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &ts.to_string()),
                ("webhook-signature", sig),
            ])
        };
        assert!(s.verify(&with(&good, now), body, now).is_ok());
        // An empty v1 and a truncated one never match.
        for bad in ["v1,", "v1, ", "v1,AAAA", "v2,abc", ""] {
            let r = s.verify(&with(bad, now), body, now).unwrap_err();
            assert!(
                matches!(r, Rejection::Malformed { .. } | Rejection::MissingHeader(_)),
                "{bad}: {r}"
            );
        }
        assert_eq!(
            s.verify(&with(&good, now), b"{\"type\":\"tampered\"}", now),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            s.verify(&with(&good, now), body, now + 301),
            Err(Rejection::Stale(301))
        );
        assert_eq!(
            s.verify(&with(&good, now), body, now - 301),
            Err(Rejection::Stale(-301))
        );
        assert!(s.verify(&with(&good, now), body, now + 300).is_ok());
        let missing = headers(&[("webhook-id", "msg_1"), ("webhook-signature", &good)]);
        assert_eq!(
            s.verify(&missing, body, now),
            Err(Rejection::MissingHeader("webhook-timestamp"))
        );
    }

    #[test]
    fn a_stale_timestamp_says_which_way_it_is_off() {
        assert_eq!(
            Rejection::Stale(301).to_string(),
            "the signed timestamp is 301 s old; deliveries are accepted within ±300 s of now"
        );
        assert!(Rejection::Stale(-301)
            .to_string()
            .starts_with("the signed timestamp is 301 s in the future;"));
    }

    #[test]
    fn any_of_several_signatures_and_secrets_verifies() {
        let body = b"{}";
        let old = "whsec_b2xkLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
        let now = 1_700_000_000;
        let signed_old = sign::standard(old, "m", now, body).unwrap();
        let signed_new = sign::standard(STANDARD_SECRET, "m", now, body).unwrap();
        let s = source(Provider::StandardWebhooks, &[STANDARD_SECRET, old]);
        for list in [
            format!("v1,AAAA {signed_old}"),
            format!("{signed_new} v1,"),
            signed_old.clone(),
        ] {
            let h = headers(&[
                ("webhook-id", "m"),
                ("webhook-timestamp", &now.to_string()),
                ("webhook-signature", &list),
            ]);
            assert!(s.verify(&h, body, now).is_ok(), "{list}");
        }
        let only_new = source(Provider::StandardWebhooks, &[STANDARD_SECRET]);
        let h = headers(&[
            ("webhook-id", "m"),
            ("webhook-timestamp", &now.to_string()),
            ("webhook-signature", &signed_old),
        ]);
        assert_eq!(only_new.verify(&h, body, now), Err(Rejection::Mismatch));
    }

    /// GitHub's documented example: secret "It's a Secret to Everybody", payload
    /// "Hello, World!" (docs.github.com, "Validating webhook deliveries").
    #[test]
    fn github_documented_vector_verifies() {
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            sign::github("It's a Secret to Everybody", b"Hello, World!"),
            expected
        );
        let s = source(Provider::Github, &["It's a Secret to Everybody"]);
        let h = headers(&[
            ("x-hub-signature-256", expected),
            ("x-github-delivery", "d-1"),
        ]);
        assert!(s.verify(&h, b"Hello, World!", 0).is_ok());
        assert_eq!(s.verify(&h, b"Hello, World?", 0), Err(Rejection::Mismatch));
        let empty = headers(&[
            ("x-hub-signature-256", "sha256="),
            ("x-github-delivery", "d-1"),
        ]);
        assert!(matches!(
            s.verify(&empty, b"Hello, World!", 0),
            Err(Rejection::Malformed { .. })
        ));
    }

    #[test]
    fn stripe_signatures_verify_within_the_window() {
        let secret = "whsec_test_secret";
        let body = br#"{"id":"evt_1","type":"invoice.payment_failed"}"#;
        let now = 1_700_000_000;
        let s = source(Provider::Stripe, &[secret]);
        let sig = sign::stripe(secret, now, body);
        // Stripe may add a v0 (test-mode) signature and several v1s.
        let h = headers(&[("stripe-signature", &format!("{sig},v0=deadbeef"))]);
        assert!(s.verify(&h, body, now).is_ok());
        assert_eq!(s.verify(&h, body, now + 301), Err(Rejection::Stale(301)));
        let wrong = source(Provider::Stripe, &["whsec_other"]);
        assert_eq!(wrong.verify(&h, body, now), Err(Rejection::Mismatch));
        let empty = headers(&[("stripe-signature", &format!("t={now},v1="))]);
        assert!(matches!(
            s.verify(&empty, body, now),
            Err(Rejection::Malformed { .. })
        ));
    }
}
