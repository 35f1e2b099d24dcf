//! The delivery ledger: at most one Slack post per (event, pipeline, destination).
//!
//! One item per delivery key in the deliveries table (`pk`): `status` is `posting` while a
//! post may be in flight or its outcome is unknown (a timeout, a 5xx, `fatal_error`, a crash
//! between post and acknowledge), `not_posted` when the last attempt certainly did not post,
//! `delivered` (with the message `ts`) once Slack took it. Writes are conditional, so two
//! instances can never both start a post for the same key. Items expire (TTL) after 30 days.

use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use crate::aws::dynamo::{self, Applied};
use crate::error::{Error, Result};
use crate::ids::DeliveryKey;

const TTL_SECONDS: i64 = 30 * 86_400;

/// Where a delivery stands before an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Never attempted, or the last attempt certainly did not post: post now.
    Clear,
    /// A previous attempt may have posted (started at `since_ms`): look in the channel's
    /// history before posting again.
    Uncertain { since_ms: i64 },
    /// Slack already took it.
    Delivered { ts: String },
}

/// The ledger delivery claims and records in. [`Ledger`] keeps it in DynamoDB; unit tests
/// use an in-memory fake. The `_all` methods take a digest's keys at once (one request in
/// DynamoDB for up to 100 keys) and answer for each key, in order; the single-key methods are
/// the same for one key.
pub trait LedgerStore: Send + Sync {
    /// Claims each of `keys` for an attempt at `now_ms` and says what the previous attempts
    /// left. On [`Entry::Clear`] and [`Entry::Uncertain`] the key is now `posting`; on an
    /// error it was not claimed.
    fn begin_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
        now_ms: i64,
    ) -> BoxFuture<'a, Vec<Result<Entry>>>;
    /// Slack took the messages of `keys` (one post, `ts`), in the channel Slack reported.
    fn delivered_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
        ts: &'a str,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Vec<Result<()>>>;
    /// The attempts certainly did not post (refused, rate-limited, never reached Slack, or
    /// claimed and never tried). A key that is not `posting` is left as it is.
    fn not_posted_all<'a>(&'a self, keys: &'a [DeliveryKey]) -> BoxFuture<'a, Vec<Result<()>>>;

    /// [`LedgerStore::begin_all`] for one key.
    fn begin<'a>(&'a self, key: &'a DeliveryKey, now_ms: i64) -> BoxFuture<'a, Result<Entry>> {
        async move { one(self.begin_all(std::slice::from_ref(key), now_ms).await) }.boxed()
    }
    /// [`LedgerStore::delivered_all`] for one key.
    fn delivered<'a>(
        &'a self,
        key: &'a DeliveryKey,
        ts: &'a str,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            one(self
                .delivered_all(std::slice::from_ref(key), ts, channel_id)
                .await)
        }
        .boxed()
    }
    /// [`LedgerStore::not_posted_all`] for one key.
    fn not_posted<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<()>> {
        async move { one(self.not_posted_all(std::slice::from_ref(key)).await) }.boxed()
    }
}

/// The one answer of a one-key call.
fn one<T>(answers: Vec<Result<T>>) -> Result<T> {
    answers.into_iter().next().unwrap_or_else(|| {
        Err(Error::Upstream {
            what: "the delivery ledger".into(),
            detail: "no answer for the key".into(),
            retryable: true,
        })
    })
}

/// A deliveries table item: `pk` is the delivery key; `status` is `posting`, `not_posted`
/// or `delivered`; `since_ms` when the last claim began, `attempts` how many there were,
/// `expires_at` the TTL (epoch seconds); once delivered, the message's `ts` and the
/// `channel_id` Slack reported. Written only by update expressions, attribute by attribute;
/// read whole.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct LedgerItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel_id: Option<String>,
}

/// The deliveries table in DynamoDB.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl Ledger {
    /// An update of `key`'s item; `build` adds the expression and its names and values.
    fn update(
        &self,
        key: &DeliveryKey,
        build: impl FnOnce(UpdateBuilder) -> UpdateBuilder,
    ) -> Result<Update> {
        build(
            Update::builder()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.as_str().to_owned())),
        )
        .build()
        .map_err(|e| Error::invalid("a delivery ledger update", e))
    }

    /// Sends `updates` in transactions, answering for each in order; an update that could not
    /// be built is its error.
    async fn transact(&self, updates: Vec<Result<Update>>, what: &str) -> Vec<Result<Applied>> {
        let mut out: Vec<Option<Result<Applied>>> = Vec::with_capacity(updates.len());
        let mut built = Vec::with_capacity(updates.len());
        let mut at = Vec::with_capacity(updates.len());
        for (i, u) in updates.into_iter().enumerate() {
            match u {
                Ok(u) => {
                    out.push(None);
                    built.push(u);
                    at.push(i);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let applied = dynamo::transact_updates(&self.client, built, what).await;
        for (i, a) in at.into_iter().zip(applied) {
            out[i] = Some(a);
        }
        out.into_iter()
            .map(|a| a.unwrap_or(Ok(Applied::Done)))
            .collect()
    }

    async fn claim_all(&self, keys: &[DeliveryKey], now_ms: i64) -> Vec<Result<Entry>> {
        let claims = keys
            .iter()
            .map(|key| {
                self.update(key, |u| {
                    u.update_expression(
                        "SET #s = :posting, since_ms = :now, expires_at = :exp ADD attempts :one",
                    )
                    .condition_expression("attribute_not_exists(pk) OR #s = :not_posted")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(":posting", AttributeValue::S("posting".into()))
                    .expression_attribute_values(
                        ":not_posted",
                        AttributeValue::S("not_posted".into()),
                    )
                    .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                    .expression_attribute_values(
                        ":exp",
                        AttributeValue::N((now_ms / 1000 + TTL_SECONDS).to_string()),
                    )
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                })
            })
            .collect();
        let applied = self
            .transact(claims, "claiming deliveries in the ledger")
            .await;
        let mut entries = Vec::with_capacity(keys.len());
        for (key, a) in keys.iter().zip(applied) {
            entries.push(match a {
                Ok(Applied::Done) => Ok(Entry::Clear),
                Ok(Applied::ConditionFailed(Some(item))) => previous(Some(item)),
                // Not returned with the failure: read it.
                Ok(Applied::ConditionFailed(None)) => self.read(key).await,
                Err(e) => Err(e),
            });
        }
        // An uncertain key stays `posting`; this attempt is counted on it too.
        let uncertain: Vec<usize> = (0..keys.len())
            .filter(|i| matches!(entries[*i], Ok(Entry::Uncertain { .. })))
            .collect();
        if !uncertain.is_empty() {
            let counts = uncertain
                .iter()
                .map(|i| {
                    self.update(&keys[*i], |u| {
                        u.update_expression("ADD attempts :one")
                            .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    })
                })
                .collect();
            let counted = self
                .transact(counts, "counting the attempt in the ledger")
                .await;
            for (i, c) in uncertain.into_iter().zip(counted) {
                if let Err(e) = c {
                    entries[i] = Err(e);
                }
            }
        }
        entries
    }

    /// What the previous attempts left on `key`, read consistently.
    async fn read(&self, key: &DeliveryKey) -> Result<Entry> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.as_str().to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("reading the delivery ledger", e))?
            .item;
        previous(item)
    }

    async fn record_delivered(
        &self,
        keys: &[DeliveryKey],
        ts: &str,
        channel_id: Option<&str>,
    ) -> Vec<Result<()>> {
        let records = keys
            .iter()
            .map(|key| {
                self.update(key, |u| {
                    u.update_expression("SET #s = :d, ts = :ts, channel_id = :c")
                        .expression_attribute_names("#s", "status")
                        .expression_attribute_values(":d", AttributeValue::S("delivered".into()))
                        .expression_attribute_values(":ts", AttributeValue::S(ts.to_owned()))
                        .expression_attribute_values(
                            ":c",
                            AttributeValue::S(channel_id.unwrap_or_default().to_owned()),
                        )
                })
            })
            .collect();
        self.transact(records, "recording deliveries in the ledger")
            .await
            .into_iter()
            .map(|a| a.map(|_| ()))
            .collect()
    }

    async fn release(&self, keys: &[DeliveryKey]) -> Vec<Result<()>> {
        let releases = keys
            .iter()
            .map(|key| {
                self.update(key, |u| {
                    u.update_expression("SET #s = :n")
                        .condition_expression("#s = :posting")
                        .expression_attribute_names("#s", "status")
                        .expression_attribute_values(":n", AttributeValue::S("not_posted".into()))
                        .expression_attribute_values(
                            ":posting",
                            AttributeValue::S("posting".into()),
                        )
                })
            })
            .collect();
        // A key that is not `posting` (delivered meanwhile) is left as it is.
        self.transact(releases, "releasing deliveries in the ledger")
            .await
            .into_iter()
            .map(|a| a.map(|_| ()))
            .collect()
    }
}

/// What an item of the ledger says of the previous attempts, when a claim found it taken:
/// delivered, or uncertain since its claim began.
fn previous(item: Option<dynamo::Item>) -> Result<Entry> {
    let item: LedgerItem = dynamo::from_item_or_default(item, "a delivery ledger item")?;
    Ok(match item.status.as_deref() {
        Some("delivered") => Entry::Delivered {
            ts: item.ts.unwrap_or_default(),
        },
        _ => Entry::Uncertain {
            since_ms: item.since_ms.unwrap_or(0),
        },
    })
}

impl LedgerStore for Ledger {
    fn begin_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
        now_ms: i64,
    ) -> BoxFuture<'a, Vec<Result<Entry>>> {
        self.claim_all(keys, now_ms).boxed()
    }

    fn delivered_all<'a>(
        &'a self,
        keys: &'a [DeliveryKey],
        ts: &'a str,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Vec<Result<()>>> {
        self.record_delivered(keys, ts, channel_id).boxed()
    }

    fn not_posted_all<'a>(&'a self, keys: &'a [DeliveryKey]) -> BoxFuture<'a, Vec<Result<()>>> {
        self.release(keys).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::dynamo::Item;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn a_delivered_item_as_stored_round_trips() {
        let stored = Item::from([
            (
                "pk".to_owned(),
                s(DeliveryKey::of("tests:e1", "feature-usage-to-alerts", 0).as_str()),
            ),
            ("status".to_owned(), s("delivered")),
            ("since_ms".to_owned(), n("1700000000000")),
            ("attempts".to_owned(), n("2")),
            ("expires_at".to_owned(), n("1702592000")),
            ("ts".to_owned(), s("1700000000.000100")),
            ("channel_id".to_owned(), s("C0123ABCD")),
        ]);
        let item: LedgerItem = dynamo::from_item(stored.clone(), "a ledger item").unwrap();
        assert_eq!(item.status.as_deref(), Some("delivered"));
        assert_eq!(item.since_ms, Some(1_700_000_000_000));
        assert_eq!(item.ts.as_deref(), Some("1700000000.000100"));
        assert_eq!(dynamo::to_item(&item, "a ledger item").unwrap(), stored);
    }

    #[test]
    fn a_posting_item_without_ts_reads_and_a_missing_item_is_empty() {
        let stored = Item::from([
            (
                "pk".to_owned(),
                s(DeliveryKey::of("tests:e1", "p", 0).as_str()),
            ),
            ("status".to_owned(), s("posting")),
            ("since_ms".to_owned(), n("5")),
            ("attempts".to_owned(), n("1")),
            ("expires_at".to_owned(), n("1702592000")),
        ]);
        let item: LedgerItem = dynamo::from_item(stored.clone(), "a ledger item").unwrap();
        assert_eq!(
            (item.status.as_deref(), item.ts.as_deref()),
            (Some("posting"), None)
        );
        assert_eq!(dynamo::to_item(&item, "a ledger item").unwrap(), stored);
        let none: LedgerItem = dynamo::from_item_or_default(None, "a ledger item").unwrap();
        assert_eq!(none, LedgerItem::default());
    }
}
