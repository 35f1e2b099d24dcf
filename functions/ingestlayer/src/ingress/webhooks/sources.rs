//! Signed webhook ingress: who may post to `POST /v1/webhooks/{source}`, how their signature
//! is checked, and how each provider's payload becomes an event.
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
//! Every comparison is HMAC-SHA256 checked in constant time (`Mac::verify_slice`), and a
//! signature of the wrong length never matches (an empty `v1,` included). The delivery id,
//! scoped by the source, is the event id (`webhook:<source>:<delivery id>`), so the
//! idempotency window (24 h) makes a redelivered webhook one event, and no API key can name
//! it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How far a signed timestamp may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;
/// How long a source's secrets are reused before Secrets Manager is read again: a rotated
/// or removed secret takes effect within this.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// A signature that matches no cached secret re-reads the source when the cached copy is at
/// least this old: one Secrets Manager read per source per second at most, however many bad
/// deliveries arrive.
pub const RELOAD_AFTER: Duration = Duration::from_secs(1);
/// How long "no such source" is remembered.
const MISSING_TTL: Duration = Duration::from_secs(10);
/// HMAC-SHA256 output.
const SIGNATURE_LEN: usize = 32;
pub use crate::ids::{
    valid_webhook_source as valid_source_name, MAX_WEBHOOK_SOURCE_LEN as MAX_SOURCE_NAME,
};

/// The signing scheme a source's sender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// <https://www.standardwebhooks.com> (Svix and the senders built on it).
    StandardWebhooks,
    Stripe,
    Github,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Stripe => "stripe",
            Self::Github => "github",
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "standard-webhooks" | "standard" => Ok(Self::StandardWebhooks),
            "stripe" => Ok(Self::Stripe),
            "github" => Ok(Self::Github),
            other => Err(format!(
                "unknown provider {other:?}: use standard-webhooks, stripe or github"
            )),
        }
    }
}

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
    pub fn new(name: &str, config: &SourceConfig) -> Result<Self, String> {
        if config.secrets.is_empty() {
            return Err(format!("webhook source {name}: `secrets` is empty"));
        }
        let keys = config
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                signing_key(config.provider, s)
                    .map(|k| SecretBox::new(Box::new(k)))
                    .map_err(|e| format!("webhook source {name}: secrets[{i}] {e}"))
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
        let mut matched = false;
        for key in &self.keys {
            let mac = mac(key.expose_secret(), parts);
            for sig in candidates {
                // Every pair is checked, so the time taken does not tell which one matched.
                matched |= mac.clone().verify_slice(sig).is_ok();
            }
        }
        if matched {
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

/// Why a delivery is refused (401). The text is safe to return to the sender.
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

fn header<'a>(headers: &'a http::HeaderMap, name: &'static str) -> Result<&'a str, Rejection> {
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

fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m
}

/// The HMAC key behind a configured secret: Standard Webhooks secrets are `whsec_<base64>`
/// of the key; Stripe's (`whsec_…`) and GitHub's are used as they are.
fn signing_key(provider: Provider, secret: &str) -> Result<Vec<u8>, &'static str> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Err("is empty");
    }
    match provider {
        Provider::StandardWebhooks => {
            let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "is not whsec_<base64>")?;
            if key.len() < 24 {
                return Err("is shorter than 24 bytes (Standard Webhooks asks for 24 to 64)");
            }
            Ok(key)
        }
        Provider::Stripe | Provider::Github => Ok(secret.as_bytes().to_vec()),
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

/// Signatures as each provider's sender makes them: for tools (`ingestlayer-webhooks send`)
/// and tests. Interoperability with the providers' own code is tested in `infra/webhooks`.
pub mod sign {
    use base64::Engine;
    use hmac::Mac;

    use super::{mac, signing_key, Provider};

    /// `webhook-signature` for a Standard Webhooks delivery.
    pub fn standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
        let key = signing_key(Provider::StandardWebhooks, secret).map_err(str::to_owned)?;
        let ts = timestamp.to_string();
        let sig = mac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]).finalize();
        Ok(format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(sig.into_bytes())
        ))
    }

    /// `Stripe-Signature` for a Stripe delivery.
    pub fn stripe(secret: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let sig = mac(secret.as_bytes(), &[ts.as_bytes(), b".", body]).finalize();
        format!("t={ts},v1={}", hex::encode(sig.into_bytes()))
    }

    /// `X-Hub-Signature-256` for a GitHub delivery.
    pub fn github(secret: &str, body: &[u8]) -> String {
        let sig = mac(secret.as_bytes(), &[body]).finalize();
        format!("sha256={}", hex::encode(sig.into_bytes()))
    }
}

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
/// (GitHub's `ping` when a webhook is created). The error says what the payload lacks.
pub fn map(
    source: &Source,
    headers: &http::HeaderMap,
    verified: &Verified,
    payload: Value,
) -> Result<Option<Mapped>, String> {
    let Value::Object(mut obj) = payload else {
        return Err("the payload must be a JSON object".into());
    };
    let mut context = Map::new();
    context.insert("provider".into(), json!(source.provider.as_str()));
    context.insert("source".into(), json!(source.name));
    let (name, delivery_id, time, data) = match source.provider {
        Provider::StandardWebhooks => {
            let name = take_string(&mut obj, "type")
                .ok_or("a Standard Webhooks payload names its event in a string `type`")?;
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
            let id = take_string(&mut obj, "id").ok_or("a Stripe event has a string `id`")?;
            let name = take_string(&mut obj, "type").ok_or("a Stripe event has a string `type`")?;
            let time = obj
                .get("created")
                .and_then(Value::as_i64)
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            let mut data_wrapper = match obj.remove("data") {
                Some(Value::Object(d)) => d,
                _ => return Err("a Stripe event has a `data` object".into()),
            };
            let data = match data_wrapper.remove("object") {
                Some(o @ Value::Object(_)) => o,
                _ => return Err("a Stripe event has a `data.object` object".into()),
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
                .map_err(|_| "the X-GitHub-Event header is missing")?;
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

/// What a lookup found, and when.
type Cached = (Instant, Option<Arc<Source>>);

/// At most this many source names (found or not) are remembered per instance, so random
/// names sent by anyone cannot grow the cache without bound.
pub const CACHE_CAPACITY: u64 = 1_024;

/// The per-instance cache of looked-up sources, bounded in size and age.
fn source_cache() -> moka::sync::Cache<String, Cached> {
    moka::sync::Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .time_to_live(CACHE_TTL.max(MISSING_TTL))
        .build()
}

/// The configured sources, read from Secrets Manager and cached for [`CACHE_TTL`].
pub struct WebhookSources {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    cache: moka::sync::Cache<String, Cached>,
}

/// A source that exists but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("webhook source is misconfigured: {0}")]
    Misconfigured(String),
    #[error("{0}")]
    Unavailable(String),
}

impl WebhookSources {
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            cache: source_cache(),
        }
    }

    /// The source named `name`, `None` when there is none.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Source>>, SourceError> {
        if !valid_source_name(name) {
            return Ok(None);
        }
        if let Some((at, found)) = self.cached(name) {
            let ttl = if found.is_some() {
                CACHE_TTL
            } else {
                MISSING_TTL
            };
            if at.elapsed() < ttl {
                return Ok(found);
            }
        }
        let secret_id = format!("{}{name}", self.prefix);
        let raw = crate::aws::secrets::read_secret_if_exists(
            &self.client,
            &secret_id,
            "a webhook source",
        )
        .await
        .map_err(SourceError::Unavailable)?;
        let found = match raw {
            None => Ok(None),
            Some(raw) => parse_source_config(&raw)
                .map_err(|e| format!("webhook source {name}: {e}"))
                .and_then(|c| Source::new(name, &c))
                .map(|s| Some(Arc::new(s))),
        };
        // A misconfigured source is not cached: it is read again until it is fixed.
        if let Ok(found) = &found {
            self.cache
                .insert(name.to_owned(), (Instant::now(), found.clone()));
        }
        found.map_err(SourceError::Misconfigured)
    }

    /// Reads `name` again when its cached copy is older than [`RELOAD_AFTER`], so a secret
    /// added by a rotation verifies at once instead of after [`CACHE_TTL`]. `None` when the
    /// cached copy is that fresh (nothing new to try) or the source is gone.
    pub async fn reload(&self, name: &str) -> Result<Option<Arc<Source>>, SourceError> {
        if self
            .cached(name)
            .is_some_and(|(at, _)| at.elapsed() < RELOAD_AFTER)
        {
            return Ok(None);
        }
        self.cache.invalidate(name);
        self.get(name).await
    }

    fn cached(&self, name: &str) -> Option<Cached> {
        self.cache.get(name)
    }
}

/// A source secret's JSON as a [`SourceConfig`]. The error names where the JSON is wrong
/// and what was expected, never a value from it (the values are signing secrets).
pub fn parse_source_config(raw: &str) -> Result<SourceConfig, String> {
    const SHAPE: &str =
        r#"{"provider": "standard-webhooks" | "stripe" | "github", "secrets": ["…", …]}"#;
    let de = &mut serde_json::Deserializer::from_str(raw);
    serde_path_to_error::deserialize::<_, SourceConfig>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let what = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "the secret is not valid JSON".to_owned()
            }
            _ if path == "." => "the secret's JSON has the wrong shape".to_owned(),
            _ => format!("the secret's JSON has a wrong or missing value at `{path}`"),
        };
        format!(
            "{what} (line {}, column {}); expected {SHAPE}",
            inner.line(),
            inner.column()
        )
    })
}

#[cfg(test)]
mod source_config_tests {
    use super::*;

    #[test]
    fn a_malformed_source_secret_is_described_without_its_values() {
        for (raw, names) in [
            (
                r#"{"provider":"stripe","secrets":"whsec_TOPSECRET"}"#,
                "`secrets`",
            ),
            (
                r#"{"provider":"stripe","secrets":[7, "whsec_TOPSECRET"]}"#,
                "`secrets[0]`",
            ),
            (r#"whsec_TOPSECRET"#, "not valid JSON"),
            (r#"{"secrets":["whsec_TOPSECRET"]}"#, "wrong shape"),
        ] {
            let e = parse_source_config(raw).unwrap_err();
            assert!(!e.contains("TOPSECRET"), "{e}");
            assert!(e.contains(names), "{e}");
            assert!(e.contains("expected {\"provider\""), "{e}");
        }
        assert!(parse_source_config(r#"{"provider":"stripe","secrets":["whsec_x"]}"#).is_ok());
    }

    #[test]
    fn the_source_cache_stays_bounded_under_random_names() {
        let cache = source_cache();
        for i in 0..(3 * CACHE_CAPACITY) {
            cache.insert(format!("random-{i}"), (Instant::now(), None));
        }
        cache.run_pending_tasks();
        assert!(cache.entry_count() <= CACHE_CAPACITY);
        assert!(cache.entry_count() > 0);
    }
}

/// Creates or replaces the source `name` (its secret `<prefix><name>`, under `kms_key_id`).
pub async fn put_source(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    name: &str,
    config: &SourceConfig,
    kms_key_id: Option<&str>,
) -> Result<(), String> {
    if !valid_source_name(name) {
        return Err(format!(
            "source name {name:?}: use 1–{MAX_SOURCE_NAME} of a-z, 0-9, _ and -"
        ));
    }
    Source::new(name, config)?;
    let secret_id = format!("{prefix}{name}");
    let value = serde_json::to_string(config).map_err(|e| e.to_string())?;
    let created = client
        .create_secret()
        .name(&secret_id)
        .description(format!(
            "ingestlayer webhook source {name} ({})",
            config.provider.as_str()
        ))
        .set_kms_key_id(kms_key_id.map(str::to_owned))
        .secret_string(&value)
        .send()
        .await;
    let result = match created {
        Ok(_) => Ok(()),
        // The source exists: its secret gets a new version.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            client
                .put_secret_value()
                .secret_id(&secret_id)
                .secret_string(value)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
        }
        Err(e) => Err(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()),
    };
    result.map_err(|e| format!("storing webhook source {name}: {e}"))
}

/// Every source under `prefix`: its name and provider.
pub async fn list_sources(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
) -> Result<Vec<(String, Result<Provider, String>)>, String> {
    let mut names = Vec::new();
    let mut pages = client
        .list_secrets()
        .filters(
            aws_sdk_secretsmanager::types::Filter::builder()
                .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                .values(prefix)
                .build(),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())?;
        for s in page.secret_list() {
            if let Some(name) = s.name().and_then(|n| n.strip_prefix(prefix)) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let raw = crate::aws::secrets::read_secret(
            client,
            &format!("{prefix}{name}"),
            "a webhook source",
        )
        .await?;
        let provider = parse_source_config(&raw).map(|c| c.provider);
        out.push((name, provider));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn source(provider: Provider, secrets: &[&str]) -> Source {
        Source::new(
            "s",
            &SourceConfig {
                provider,
                secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            },
        )
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
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
        assert!(err.contains("`id`"), "{err}");
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
        .unwrap_err();
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
