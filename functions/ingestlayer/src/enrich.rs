//! `enrich.entity`: entities (user → account, plan, owner) looked up in DynamoDB.
//!
//! Entities live in the entities table under `pk = "<entity>#<id>"`, e.g. `user#u_42`,
//! with any other attributes. Lookups are batched per invocation with BatchGetItem (at most
//! 100 keys a call), retrying UnprocessedKeys with backoff.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde_json::{Map, Value};

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// Attempts for keys DynamoDB leaves unprocessed before the lookup fails (and the records
/// that needed it are retried by SQS).
const UNPROCESSED_ATTEMPTS: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("entity lookup failed: {0}")]
    Store(String),
    #[error("entity lookup left {0} keys unprocessed after {UNPROCESSED_ATTEMPTS} attempts")]
    Unprocessed(usize),
}

/// Where entities come from. A fake earns its place in the routing unit tests.
pub trait EntityStore: Sync {
    /// Looks up every key (`user#u_42`); keys with no item are absent from the answer.
    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Map<String, Value>>, EnrichError>> + Send;
}

/// The entities table in DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoEntities {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl EntityStore for DynamoEntities {
    #[tracing::instrument(skip_all, fields(keys = keys.len(), table = %self.table))]
    async fn get_many(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Map<String, Value>>, EnrichError> {
        let unique: Vec<&String> = keys.iter().collect::<HashSet<_>>().into_iter().collect();
        let mut found = HashMap::new();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|k| HashMap::from([("pk".to_owned(), AttributeValue::S((*k).clone()))]))
                .collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                if attempt >= UNPROCESSED_ATTEMPTS {
                    return Err(EnrichError::Unprocessed(pending.len()));
                }
                attempt += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .build()
                    .map_err(|e| EnrichError::Store(e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| {
                        EnrichError::Store(
                            aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
                        )
                    })?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let Some(AttributeValue::S(pk)) = item.get("pk").cloned() else {
                        continue;
                    };
                    let mut attrs: Map<String, Value> = match serde_dynamo::from_item(item) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(entity = %pk, error = %e, "entity item is not readable; going on without it");
                            continue;
                        }
                    };
                    attrs.remove("pk");
                    found.insert(pk, attrs);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(found)
    }
}

fn backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(6));
    let jitter = rand::random_range(0..=base / 2);
    Duration::from_millis((base + jitter).min(2_000))
}

/// The entities-table key for `entity` with id `value`, or `None` when the value is not
/// a usable id (absent, empty, an object or a list).
pub fn entity_key(entity: &str, value: Option<&Value>) -> Option<String> {
    let id = match value? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(format!("{entity}#{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_built_from_strings_and_numbers() {
        assert_eq!(
            entity_key("user", Some(&json!("u_42"))).as_deref(),
            Some("user#u_42")
        );
        assert_eq!(
            entity_key("user", Some(&json!(42))).as_deref(),
            Some("user#42")
        );
        assert_eq!(entity_key("user", Some(&json!(""))), None);
        assert_eq!(entity_key("user", Some(&json!({"a": 1}))), None);
        assert_eq!(entity_key("user", None), None);
    }

    mod unprocessed {
        use super::super::*;
        use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        fn key(pk: &str) -> HashMap<String, AttributeValue> {
            HashMap::from([("pk".to_owned(), AttributeValue::S(pk.to_owned()))])
        }

        fn unprocessed(pk: &str) -> HashMap<String, KeysAndAttributes> {
            HashMap::from([(
                "entities".to_owned(),
                KeysAndAttributes::builder().keys(key(pk)).build().unwrap(),
            )])
        }

        #[tokio::test(start_paused = true)]
        async fn unprocessed_keys_are_retried_until_found() {
            let first = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(|| {
                let mut item = key("user#a");
                item.insert("plan".into(), AttributeValue::S("pro".into()));
                BatchGetItemOutput::builder()
                    .responses("entities", vec![item])
                    .set_unprocessed_keys(Some(unprocessed("user#b")))
                    .build()
            });
            let second = mock!(aws_sdk_dynamodb::Client::batch_get_item)
                .match_requests(|r| {
                    r.request_items()
                        .is_some_and(|m| m["entities"].keys().len() == 1)
                })
                .then_output(|| {
                    let mut item = key("user#b");
                    item.insert("plan".into(), AttributeValue::S("free".into()));
                    BatchGetItemOutput::builder()
                        .responses("entities", vec![item])
                        .build()
                });
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &second]);
            let store = DynamoEntities {
                client,
                table: "entities".into(),
            };
            let found = store
                .get_many(&["user#a".into(), "user#b".into()])
                .await
                .unwrap();
            assert_eq!(found["user#a"]["plan"], "pro");
            assert_eq!(found["user#b"]["plan"], "free");
            assert!(!found["user#a"].contains_key("pk"));
            assert_eq!(second.num_calls(), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn keys_left_unprocessed_too_long_fail_the_lookup() {
            let always = mock!(aws_sdk_dynamodb::Client::batch_get_item)
                .sequence()
                .output(|| {
                    BatchGetItemOutput::builder()
                        .set_unprocessed_keys(Some(unprocessed("user#a")))
                        .build()
                })
                .repeatedly()
                .build();
            let client = mock_client!(aws_sdk_dynamodb, [&always]);
            let store = DynamoEntities {
                client,
                table: "entities".into(),
            };
            let err = store.get_many(&["user#a".into()]).await.unwrap_err();
            assert!(matches!(err, EnrichError::Unprocessed(1)), "{err}");
            assert_eq!(always.num_calls(), UNPROCESSED_ATTEMPTS as usize);
        }
    }

    #[test]
    fn backoff_is_capped() {
        for a in 0..20 {
            assert!(backoff(a) <= Duration::from_secs(2));
        }
    }
}
