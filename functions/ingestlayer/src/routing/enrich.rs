//! `enrich.entity`: entities (user → account, plan, owner) looked up in DynamoDB.
//!
//! Entities live in the entities table under `pk = "<entity>#<id>"`, e.g. `user#u_42`,
//! with any other attributes. Lookups are batched per invocation with BatchGetItem (at most
//! 100 keys a call), retrying UnprocessedKeys with backoff.
//!
//! What a step attaches comes only from the table: on a miss the step's name holds an empty
//! object, never what the sender put there, so `user.plan == 'pro'` cannot be satisfied by
//! an event that says so itself. A key the table cannot hold (above DynamoDB's 2048-byte
//! partition key limit) is a miss without a call, and a batch DynamoDB refuses as invalid is
//! read again key by key, so one odd key never fails the other events of an invocation.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde_json::{Map, Value};

use crate::aws::retry::UNPROCESSED;
use crate::error::Error;
use crate::routing::pipelines::EnrichSpec;

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// DynamoDB's limit on a partition key value, in bytes (UTF-8).
pub const MAX_KEY_BYTES: usize = 2048;

/// Where entities come from. A fake earns its place in the routing unit tests.
pub trait EntityStore: Sync {
    /// Looks up every key (`user#u_42`); keys with no item are absent from the answer.
    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Map<String, Value>>, Error>> + Send;
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
    ) -> Result<HashMap<String, Map<String, Value>>, Error> {
        let unique: Vec<&String> = keys
            .iter()
            .filter(|k| storable(k))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut found = HashMap::new();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            match self.batch_get(chunk, &mut found).await {
                Err(BatchError::Invalid(reason)) => {
                    tracing::warn!(keys = chunk.len(), reason = %reason, "DynamoDB refused the batch as invalid; reading its keys one by one");
                    for key in chunk {
                        self.get_one(key, &mut found).await?;
                    }
                }
                Err(BatchError::Other(e)) => return Err(e),
                Ok(()) => {}
            }
        }
        Ok(found)
    }
}

/// Whether DynamoDB can hold `key` as a partition key value: 1 to 2048 bytes.
fn storable(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_BYTES
}

enum BatchError {
    /// DynamoDB refused the request itself (ValidationException): no key of it was read.
    Invalid(String),
    Other(Error),
}

impl DynamoEntities {
    /// One BatchGetItem of at most 100 keys, with its unprocessed keys retried.
    async fn batch_get(
        &self,
        chunk: &[&String],
        found: &mut HashMap<String, Map<String, Value>>,
    ) -> Result<(), BatchError> {
        {
            let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|k| HashMap::from([("pk".to_owned(), AttributeValue::S((*k).clone()))]))
                .collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                match UNPROCESSED.before(attempt) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => {
                        return Err(BatchError::Other(Error::Upstream {
                            what: "entity lookup".into(),
                            detail: format!(
                                "DynamoDB left {} keys unprocessed after {} attempts",
                                pending.len(),
                                UNPROCESSED.attempts()
                            ),
                            retryable: true,
                        }))
                    }
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .build()
                    .map_err(|e| {
                        BatchError::Other(Error::invalid("the entity lookup request", e))
                    })?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| {
                        if is_validation(&e) {
                            BatchError::Invalid(
                                aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
                            )
                        } else {
                            BatchError::Other(Error::aws("entity lookup", e))
                        }
                    })?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    insert_item(item, found);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// One GetItem. A key DynamoDB refuses as invalid is a miss; other failures fail the
    /// lookup (the events that needed it are retried by SQS).
    async fn get_one(
        &self,
        key: &str,
        found: &mut HashMap<String, Map<String, Value>>,
    ) -> Result<(), Error> {
        match self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .send()
            .await
        {
            Ok(out) => {
                if let Some(item) = out.item {
                    insert_item(item, found);
                }
                Ok(())
            }
            Err(e) if is_validation(&e) => {
                tracing::warn!(key_bytes = key.len(), reason = %aws_sdk_dynamodb::error::DisplayErrorContext(e), "DynamoDB refused an entity key; treated as not found");
                Ok(())
            }
            Err(e) => Err(Error::aws("entity lookup", e)),
        }
    }
}

/// Whether DynamoDB answered ValidationException: the request is invalid, not the service
/// unavailable, so sending it again can never succeed.
fn is_validation<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ValidationException")
}

fn insert_item(
    item: HashMap<String, AttributeValue>,
    found: &mut HashMap<String, Map<String, Value>>,
) {
    let Some(AttributeValue::S(pk)) = item.get("pk").cloned() else {
        return;
    };
    let mut attrs: Map<String, Value> = match serde_dynamo::from_item(item) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(entity = %pk, error = %e, "entity item is not readable; going on without it");
            return;
        }
    };
    attrs.remove("pk");
    found.insert(pk, attrs);
}

/// Attaches what an `enrich.entity` step found under its name, replacing whatever the
/// event carried there: the entity's attributes (those listed, or all), or an empty object
/// when there is none, so nothing under that name ever comes from the sender.
pub fn attach(context: &mut Value, spec: &EnrichSpec, entity: Option<&Map<String, Value>>) {
    let attached: Map<String, Value> = match (entity, &spec.attributes) {
        (None, _) => Map::new(),
        (Some(attrs), Some(names)) => names
            .iter()
            .filter_map(|n| attrs.get(n).map(|v| (n.clone(), v.clone())))
            .collect(),
        (Some(attrs), None) => attrs.clone(),
    };
    if let Value::Object(ctx) = context {
        ctx.insert(spec.attach_as.clone(), Value::Object(attached));
    }
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

        #[tokio::test]
        async fn keys_above_the_partition_key_limit_are_a_miss_without_a_call() {
            let any = mock!(aws_sdk_dynamodb::Client::batch_get_item)
                .then_output(|| BatchGetItemOutput::builder().build());
            let client = mock_client!(aws_sdk_dynamodb, [&any]);
            let store = DynamoEntities {
                client,
                table: "entities".into(),
            };
            let huge = format!("user#{}", "x".repeat(250_000));
            let found = store.get_many(&[huge]).await.unwrap();
            assert!(found.is_empty());
            assert_eq!(any.num_calls(), 0);
            assert!(storable(&format!("user#{}", "x".repeat(MAX_KEY_BYTES - 5))));
            assert!(!storable(&format!(
                "user#{}",
                "x".repeat(MAX_KEY_BYTES - 4)
            )));
            assert!(
                !storable(&format!("user#{}", "é".repeat(1022))),
                "the limit is in bytes, not characters"
            );
        }

        #[tokio::test]
        async fn a_batch_refused_as_invalid_is_read_key_by_key() {
            use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
            use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
            let refused = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_error(|| {
                BatchGetItemError::generic(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("ValidationException")
                        .message("One or more parameter values were invalid")
                        .build(),
                )
            });
            let good = mock!(aws_sdk_dynamodb::Client::get_item)
                .match_requests(|r| {
                    r.key()
                        .is_some_and(|k| k["pk"].as_s().is_ok_and(|s| s == "user#a"))
                })
                .then_output(|| {
                    let mut item = key("user#a");
                    item.insert("plan".into(), AttributeValue::S("pro".into()));
                    GetItemOutput::builder().set_item(Some(item)).build()
                });
            let bad = mock!(aws_sdk_dynamodb::Client::get_item)
                .match_requests(|r| {
                    r.key()
                        .is_some_and(|k| k["pk"].as_s().is_ok_and(|s| s == "user#b"))
                })
                .then_error(|| {
                    GetItemError::generic(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("ValidationException")
                            .message("key too large")
                            .build(),
                    )
                });
            let client = mock_client!(
                aws_sdk_dynamodb,
                RuleMode::MatchAny,
                [&refused, &good, &bad]
            );
            let store = DynamoEntities {
                client,
                table: "entities".into(),
            };
            let found = store
                .get_many(&["user#a".into(), "user#b".into()])
                .await
                .unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found["user#a"]["plan"], "pro");
            assert_eq!(refused.num_calls(), 1);
            assert_eq!(good.num_calls(), 1);
            assert_eq!(bad.num_calls(), 1);
        }

        #[tokio::test]
        async fn other_batch_failures_still_fail_the_lookup() {
            use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
            let denied = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_error(|| {
                BatchGetItemError::generic(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("AccessDeniedException")
                        .build(),
                )
            });
            let one = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
                aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build()
            });
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&denied, &one]);
            let store = DynamoEntities {
                client,
                table: "entities".into(),
            };
            assert!(store.get_many(&["user#a".into()]).await.is_err());
            assert_eq!(one.num_calls(), 0);
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
            assert!(err.is_retryable(), "{err}");
            assert!(err.to_string().contains("left 1 keys unprocessed"), "{err}");
            assert_eq!(always.num_calls(), UNPROCESSED.attempts());
        }
    }
}
