//! API keys: stored only as SHA-256 hashes in the API keys table
//! (`key_hash` → `source`, optional `revoked_at`), cached briefly per instance.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// How long a looked-up key is trusted before the table is asked again; a revoked key
/// stops working within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// The hash under which a key is stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh API key: `il_` + 40 random alphanumerics.
pub fn generate_key() -> SecretString {
    SecretString::from(format!(
        "il_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 40)
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("API key lookup failed: {0}")]
    Store(String),
}

/// Looks up API keys by hash, with a per-instance cache.
#[derive(Debug)]
pub struct ApiKeys {
    client: aws_sdk_dynamodb::Client,
    table: String,
    cache: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl ApiKeys {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self {
            client,
            table,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The source name of a valid, unrevoked key; `None` for an unknown or revoked key.
    pub async fn source_of(&self, key: &SecretString) -> Result<Option<String>, KeyError> {
        let hash = hash_key(key.expose_secret());
        if let Some((source, at)) = self.cache.lock().await.get(&hash) {
            if at.elapsed() < CACHE_TTL {
                return Ok(source.clone());
            }
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key_hash", AttributeValue::S(hash.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                KeyError::Store(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
        let source = out.item.and_then(|item| {
            if item.contains_key("revoked_at") {
                return None;
            }
            match item.get("source") {
                Some(AttributeValue::S(s)) => Some(s.clone()),
                _ => None,
            }
        });
        self.cache
            .lock()
            .await
            .insert(hash, (source.clone(), Instant::now()));
        Ok(source)
    }

    /// Stores a new key for `source`; only its hash is kept.
    pub async fn create(&self, key: &SecretString, source: &str) -> Result<(), KeyError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key_hash", AttributeValue::S(hash_key(key.expose_secret())))
            .item("source", AttributeValue::S(source.to_owned()))
            .item(
                "created_at",
                AttributeValue::S(
                    time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                ),
            )
            .send()
            .await
            .map_err(|e| {
                KeyError::Store(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(())
    }
}
