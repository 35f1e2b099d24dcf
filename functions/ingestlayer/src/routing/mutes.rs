//! Mutes: "stop posting this pipeline's messages for this key until then", set with the Mute
//! button in Slack (`POST /slack/interactions`) and lifted with `ingestlayer mutes remove`.
//! One item per (pipeline, key) in the state table (`STATE_TABLE`): `pk` `mute#<pipeline>#<key>`,
//! with the table's TTL (`expires_at`) at the mute's end. TTL deletes lazily, so every read
//! checks `until_ms` itself.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde::{Deserialize, Serialize};

use crate::aws::dynamo::{from_item, to_item, Item};
use crate::error::{Error, Result};

/// Prefix of every mute's `pk`.
pub const PK_PREFIX: &str = "mute#";
/// BatchGetItem's limit on keys per request.
const BATCH_GET_MAX: usize = 100;
/// Rounds of BatchGetItem for keys DynamoDB left unprocessed before giving up.
const UNPROCESSED_ROUNDS: usize = 5;

/// A pipeline's messages for one key, held back until `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mute {
    pub pipeline: String,
    pub key: String,
    /// When the mute ends (ms since the epoch).
    pub until_ms: i64,
    /// Who muted it (a Slack user id, `<@U…>` in messages).
    pub by: String,
    /// When it was set (ms since the epoch).
    pub at_ms: i64,
}

/// A mute as the state table holds it.
#[derive(Serialize, Deserialize)]
struct MuteItem {
    pk: String,
    #[serde(flatten)]
    mute: Mute,
    /// The table's TTL attribute (epoch seconds).
    expires_at: i64,
}

/// The state table key of a pipeline's mute for `key`.
pub fn mute_pk(pipeline: &str, key: &str) -> String {
    format!("{PK_PREFIX}{pipeline}#{key}")
}

/// The mutes in the state table.
#[derive(Clone, Debug)]
pub struct MuteStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl MuteStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    /// Sets (or replaces) the mute of `m.pipeline` for `m.key`.
    #[tracing::instrument(skip_all, fields(pipeline = %m.pipeline))]
    pub async fn mute(&self, m: &Mute) -> Result<()> {
        let item = to_item(
            &MuteItem {
                pk: mute_pk(&m.pipeline, &m.key),
                mute: m.clone(),
                expires_at: m.until_ms.div_euclid(1000) + 1,
            },
            "a mute",
        )?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| Error::aws("storing a mute", e))?;
        Ok(())
    }

    /// The mutes in force at `now_ms` among `keys` (pipeline, key): one BatchGetItem per 100
    /// keys, unprocessed keys asked again.
    #[tracing::instrument(skip_all, fields(keys = keys.len()))]
    pub async fn active(
        &self,
        keys: &[(String, String)],
        now_ms: i64,
    ) -> Result<HashMap<(String, String), Mute>> {
        let mut pks: Vec<String> = keys.iter().map(|(p, k)| mute_pk(p, k)).collect();
        pks.sort();
        pks.dedup();
        let mut found = HashMap::new();
        for chunk in pks.chunks(BATCH_GET_MAX) {
            let mut wanted: Vec<Item> = chunk
                .iter()
                .map(|pk| Item::from([("pk".to_owned(), AttributeValue::S(pk.clone()))]))
                .collect();
            for _ in 0..UNPROCESSED_ROUNDS {
                if wanted.is_empty() {
                    break;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut wanted)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| Error::invalid("a mute lookup", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| Error::aws("reading mutes", e))?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let m: MuteItem = from_item(item, "a mute")?;
                    if m.mute.until_ms > now_ms {
                        found.insert((m.mute.pipeline.clone(), m.mute.key.clone()), m.mute);
                    }
                }
                wanted = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !wanted.is_empty() {
                return Err(Error::Upstream {
                    what: "reading mutes".into(),
                    detail: format!("DynamoDB left {} lookups unprocessed", wanted.len()),
                    retryable: true,
                });
            }
        }
        Ok(found)
    }

    /// Every mute in force at `now_ms`, by pipeline then key.
    #[tracing::instrument(skip_all)]
    pub async fn list(&self, now_ms: i64) -> Result<Vec<Mute>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix) AND until_ms > :now")
                .expression_attribute_values(":prefix", AttributeValue::S(PK_PREFIX.to_owned()))
                .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::aws("listing mutes", e))?;
            for item in page.items.unwrap_or_default() {
                let m: MuteItem = from_item(item, "a mute")?;
                out.push(m.mute);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| (&a.pipeline, &a.key).cmp(&(&b.pipeline, &b.key)));
        Ok(out)
    }

    /// Lifts the mute of `pipeline` for `key`: whether there was one.
    #[tracing::instrument(skip_all, fields(pipeline = %pipeline))]
    pub async fn remove(&self, pipeline: &str, key: &str) -> Result<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(mute_pk(pipeline, key)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("removing a mute", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mute_is_one_item_per_pipeline_and_key_expiring_with_it() {
        assert_eq!(mute_pk("p1", "acme"), "mute#p1#acme");
        let m = Mute {
            pipeline: "p1".into(),
            key: "acme#eu".into(),
            until_ms: 1_700_000_000_500,
            by: "U0ADA".into(),
            at_ms: 1_699_000_000_000,
        };
        let item = to_item(
            &MuteItem {
                pk: mute_pk(&m.pipeline, &m.key),
                mute: m.clone(),
                expires_at: 1_700_000_001,
            },
            "a mute",
        )
        .unwrap();
        assert_eq!(item["pk"], AttributeValue::S("mute#p1#acme#eu".into()));
        assert_eq!(item["until_ms"], AttributeValue::N("1700000000500".into()));
        let back: MuteItem = from_item(item, "a mute").unwrap();
        assert_eq!(
            back.mute, m,
            "the key is read from its attribute, not the pk"
        );
    }
}
