//! API keys: stored only as SHA-256 hashes in the API keys table
//! (`key_hash` → `source`, optional `revoked_at`), cached briefly per instance.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aws::dynamo;
use crate::error::{Error, Result};

/// How long a looked-up key is trusted before the table is asked again; a revoked key
/// stops working within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// At most this many looked-up keys (found or not) are remembered per instance, so random
/// keys sent by anyone cannot grow the cache without bound.
pub const CACHE_CAPACITY: u64 = 10_000;

fn now_seconds() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// The hash under which a key is stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh API key: `il_` + 40 random alphanumerics. `il_` and the next 8 characters are
/// its public id (shown by `ingestlayer keys list`, used to revoke it).
pub fn generate_key() -> SecretString {
    SecretString::from(format!(
        "il_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 40)
    ))
}

/// The public id of a key: `il_` and the next 8 characters.
pub fn key_id(key: &str) -> String {
    key.chars().take(11).collect()
}

pub use crate::ids::{
    valid_key_source as valid_source_name, MAX_KEY_SOURCE_LEN as MAX_SOURCE_NAME,
};

/// A stored key, as operators see it (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    pub source: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// An API keys table item. Absent attributes read as empty (as an item written by hand may
/// lack them); `revoked_at` is written only by [`ApiKeys::revoke`].
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeyItem {
    key_hash: String,
    /// The public id, [`key_id`].
    #[serde(default)]
    key_id: String,
    #[serde(default)]
    source: String,
    /// RFC 3339, whole seconds.
    #[serde(default)]
    created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

impl KeyItem {
    /// The source a key sends as, when it may still send.
    fn live_source(self) -> Option<String> {
        (self.revoked_at.is_none() && !self.source.is_empty()).then_some(self.source)
    }

    fn info(self) -> KeyInfo {
        KeyInfo {
            key_id: if self.key_id.is_empty() {
                "(unnamed)".into()
            } else {
                self.key_id
            },
            source: self.source,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// The per-instance cache of looked-up keys: key hash → source (`None`: unknown or
/// revoked), bounded in size and age.
fn key_cache() -> moka::sync::Cache<String, Option<String>> {
    moka::sync::Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .time_to_live(CACHE_TTL)
        .build()
}

/// Looks up API keys by hash, with a per-instance cache.
#[derive(Debug)]
pub struct ApiKeys {
    client: aws_sdk_dynamodb::Client,
    table: String,
    cache: moka::sync::Cache<String, Option<String>>,
}

impl ApiKeys {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self {
            client,
            table,
            cache: key_cache(),
        }
    }

    /// The source name of a valid, unrevoked key; `None` for an unknown or revoked key.
    pub async fn source_of(&self, key: &SecretString) -> Result<Option<String>> {
        let hash = hash_key(key.expose_secret());
        if let Some(source) = self.cache.get(&hash) {
            return Ok(source);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key_hash", AttributeValue::S(hash.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("API key lookup failed", e))?;
        // An item that does not read as a key (written by hand) is no key.
        let source = out
            .item
            .and_then(|item| dynamo::from_item::<KeyItem>(item, "an API key item").ok())
            .and_then(KeyItem::live_source);
        self.cache.insert(hash, source.clone());
        Ok(source)
    }

    /// Stores a new key for `source`; only its hash (and public id) is kept.
    pub async fn create(&self, key: &SecretString, source: &str) -> Result<()> {
        if !valid_source_name(source) {
            return Err(Error::invalid(
                format!("source name {source:?}"),
                "use 1-64 letters, digits, - _ . (and not `webhook`, which names webhook sources)",
            ));
        }
        let item = KeyItem {
            key_hash: hash_key(key.expose_secret()),
            key_id: key_id(key.expose_secret()),
            source: source.to_owned(),
            created_at: now_seconds()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            revoked_at: None,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(dynamo::to_item(&item, "an API key item")?))
            .send()
            .await
            .map_err(|e| Error::aws("storing the API key", e))?;
        Ok(())
    }

    /// Every key, newest first: public id, source, when created and revoked.
    pub async fn list(&self) -> Result<Vec<KeyInfo>> {
        let store = |e| Error::aws("listing the API keys", e);
        let mut items = self
            .client
            .scan()
            .table_name(&self.table)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = items.next().await {
            let item: KeyItem = dynamo::from_item(item.map_err(store)?, "an API key item")?;
            out.push(item.info());
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(out)
    }

    /// Revokes the key with public id `key_id`; `false` when there is none. A revoked key
    /// stops working within [`CACHE_TTL`].
    pub async fn revoke(&self, key_id: &str) -> Result<bool> {
        // The filter applies page by page: every page is read.
        let mut items = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("key_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(key_id.to_owned()))
            .into_paginator()
            .items()
            .send();
        let mut revoked = false;
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| Error::aws("finding the API key to revoke", e))?;
            let item: KeyItem = dynamo::from_item(item, "an API key item")?;
            let now = now_seconds()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            self.client
                .update_item()
                .table_name(&self.table)
                .key("key_hash", AttributeValue::S(item.key_hash))
                .update_expression("SET revoked_at = if_not_exists(revoked_at, :t)")
                .expression_attribute_values(":t", AttributeValue::S(now))
                .send()
                .await
                .map_err(|e| Error::aws("revoking the API key", e))?;
            revoked = true;
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn a_key_item_as_stored_round_trips() {
        let stored = dynamo::Item::from([
            ("key_hash".to_owned(), s(&hash_key("il_abcdefgh0123"))),
            ("key_id".to_owned(), s("il_abcdefgh")),
            ("source".to_owned(), s("web-app")),
            ("created_at".to_owned(), s("2024-05-01T12:00:00Z")),
        ]);
        let item: KeyItem = dynamo::from_item(stored.clone(), "an API key item").unwrap();
        assert_eq!(dynamo::to_item(&item, "an API key item").unwrap(), stored);
        assert_eq!(item.clone().live_source().as_deref(), Some("web-app"));
        assert_eq!(
            item.info(),
            KeyInfo {
                key_id: "il_abcdefgh".into(),
                source: "web-app".into(),
                created_at: "2024-05-01T12:00:00Z".into(),
                revoked_at: None
            }
        );

        let mut revoked = stored;
        revoked.insert("revoked_at".to_owned(), s("2024-05-02T08:00:00Z"));
        let item: KeyItem = dynamo::from_item(revoked.clone(), "an API key item").unwrap();
        assert_eq!(dynamo::to_item(&item, "an API key item").unwrap(), revoked);
        assert_eq!(
            item.clone().live_source(),
            None,
            "a revoked key sends nothing"
        );
        assert_eq!(
            item.info().revoked_at.as_deref(),
            Some("2024-05-02T08:00:00Z")
        );
    }

    #[test]
    fn a_key_item_written_by_hand_without_id_or_source_lists_unnamed_and_sends_nothing() {
        let bare = dynamo::Item::from([("key_hash".to_owned(), s(&hash_key("il_x")))]);
        let item: KeyItem = dynamo::from_item(bare, "an API key item").unwrap();
        assert_eq!(item.clone().live_source(), None);
        assert_eq!(item.info().key_id, "(unnamed)");
    }

    #[test]
    fn the_key_cache_stays_bounded_under_random_keys() {
        let cache = key_cache();
        for i in 0..(3 * CACHE_CAPACITY) {
            cache.insert(hash_key(&format!("il_random_{i}")), None);
        }
        cache.run_pending_tasks();
        assert!(
            cache.entry_count() <= CACHE_CAPACITY,
            "{} entries",
            cache.entry_count()
        );
        assert!(cache.entry_count() > 0);
    }

    #[test]
    fn source_names_cannot_reach_into_another_sources_ids() {
        for good in ["web-app", "local", "tests", "billing.v2", "A_1"] {
            assert!(valid_source_name(good), "{good}");
        }
        let long = "a".repeat(MAX_SOURCE_NAME + 1);
        for bad in ["", "webhook", "Webhook", "a:b", "web app", long.as_str()] {
            assert!(!valid_source_name(bad), "{bad}");
        }
    }
}
