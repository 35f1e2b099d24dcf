//! Signed webhook sources: who may post to `POST /v1/webhooks/{source}`. A source is one
//! Secrets Manager secret named `<prefix><source>` (under the stack's KMS key) holding
//! `{"provider": "standard-webhooks" | "stripe" | "github", "secrets": [...]}`, read and
//! cached per instance, written and listed by the operator's tools. How a delivery is
//! verified is [`super::verify`]; how its payload becomes an event, [`super::payload`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub use crate::ingress::webhooks::payload::{delivery_client_id, map, origin, Mapped};
pub use crate::ingress::webhooks::verify::{
    generate_secret, sign, valid_source_name, Provider, Rejection, Source, SourceConfig, Verified,
    MAX_SOURCE_NAME, TOLERANCE_SECONDS,
};

/// How long a source's secrets are reused before Secrets Manager is read again: a rotated
/// or removed secret takes effect within this.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// A signature that matches no cached secret re-reads the source when the cached copy is at
/// least this old: one Secrets Manager read per source per second at most, however many bad
/// deliveries arrive.
pub const RELOAD_AFTER: Duration = Duration::from_secs(1);
/// How long "no such source" is remembered.
const MISSING_TTL: Duration = Duration::from_secs(10);

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

impl WebhookSources {
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            cache: source_cache(),
        }
    }

    /// The source named `name`, `None` when there is none. A source whose secret holds no
    /// usable configuration is [`Error::Invalid`] (not cached: it is read again until it is
    /// fixed); a secret that could not be read is the read's own (retryable) error.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Source>>> {
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
        .await?;
        let found = match raw {
            None => None,
            Some(raw) => {
                let config = parse_source_config(&raw)
                    .map_err(|e| Error::invalid(format!("webhook source {name}"), e))?;
                // Its error names the source.
                let source = Source::new(name, &config)?;
                Some(Arc::new(source))
            }
        };
        self.cache
            .insert(name.to_owned(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// Reads `name` again when its cached copy is older than [`RELOAD_AFTER`], so a secret
    /// added by a rotation verifies at once instead of after [`CACHE_TTL`]. `None` when the
    /// cached copy is that fresh (nothing new to try) or the source is gone.
    pub async fn reload(&self, name: &str) -> Result<Option<Arc<Source>>> {
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
pub fn parse_source_config(raw: &str) -> crate::error::Result<SourceConfig> {
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
        crate::error::Error::reason(format!(
            "{what} (line {}, column {}); expected {SHAPE}",
            inner.line(),
            inner.column()
        ))
    })
}

/// Creates or replaces the source `name` (its secret `<prefix><name>`, under `kms_key_id`).
pub async fn put_source(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    name: &str,
    config: &SourceConfig,
    kms_key_id: Option<&str>,
) -> crate::error::Result<()> {
    if !valid_source_name(name) {
        return Err(crate::error::Error::reason(format!(
            "source name {name:?}: use 1–{MAX_SOURCE_NAME} of a-z, 0-9, _ and -"
        )));
    }
    Source::new(name, config)?;
    let secret_id = format!("{prefix}{name}");
    let value = serde_json::to_string(config)
        .map_err(|e| crate::error::Error::invalid("the webhook source", e))?;
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
                .map_err(|e| crate::error::Error::aws(format!("storing webhook source {name}"), e))
        }
        Err(e) => Err(crate::error::Error::aws(
            format!("storing webhook source {name}"),
            e,
        )),
    };
    result
}

/// Every source under `prefix`: its name and provider.
pub async fn list_sources(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
) -> crate::error::Result<Vec<(String, crate::error::Result<Provider>)>> {
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
        let page = page.map_err(|e| crate::error::Error::aws("listing webhook sources", e))?;
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
            let e = parse_source_config(raw).unwrap_err().to_string();
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
