//! The delivery ledger: at most one Slack post per (event, pipeline, destination).
//!
//! One item per delivery key in the deliveries table (`pk`): `status` is `posting` while a
//! post may be in flight or its outcome is unknown (a timeout, a 5xx, `fatal_error`, a crash
//! between post and acknowledge), `not_posted` when the last attempt certainly did not post,
//! `delivered` (with the message `ts`) once Slack took it. Writes are conditional, so two
//! instances can never both start a post for the same key. Items expire (TTL) after 30 days.

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use crate::aws::dynamo::{self, is_condition_failed};
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
/// use an in-memory fake.
pub trait LedgerStore: Send + Sync {
    /// Claims `key` for an attempt at `now_ms` and says what the previous attempts left.
    /// On [`Entry::Clear`] and [`Entry::Uncertain`] the key is now `posting`.
    fn begin<'a>(&'a self, key: &'a DeliveryKey, now_ms: i64) -> BoxFuture<'a, Result<Entry>>;
    /// Slack took the message (`ts`), in the channel Slack reported.
    fn delivered<'a>(
        &'a self,
        key: &'a DeliveryKey,
        ts: &'a str,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>>;
    /// The attempt certainly did not post (refused, rate-limited, never reached Slack, or
    /// claimed and never tried).
    fn not_posted<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<()>>;
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
    async fn claim(&self, key: &DeliveryKey, now_ms: i64) -> Result<Entry> {
        let pk = || AttributeValue::S(key.as_str().to_owned());
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk())
            .update_expression(
                "SET #s = :posting, since_ms = :now, expires_at = :exp ADD attempts :one",
            )
            .condition_expression("attribute_not_exists(pk) OR #s = :not_posted")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":posting", AttributeValue::S("posting".into()))
            .expression_attribute_values(":not_posted", AttributeValue::S("not_posted".into()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(
                ":exp",
                AttributeValue::N((now_ms / 1000 + TTL_SECONDS).to_string()),
            )
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        match claimed {
            Ok(_) => return Ok(Entry::Clear),
            Err(e) if is_condition_failed(&e) => {}
            Err(e) => return Err(Error::aws("claiming the delivery in the ledger", e)),
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk())
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("reading the delivery ledger", e))?
            .item;
        let item: LedgerItem = dynamo::from_item_or_default(item, "a delivery ledger item")?;
        match item.status.as_deref() {
            Some("delivered") => Ok(Entry::Delivered {
                ts: item.ts.unwrap_or_default(),
            }),
            _ => {
                // Record this attempt too; the key stays `posting`.
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", pk())
                    .update_expression("ADD attempts :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .send()
                    .await
                    .map_err(|e| Error::aws("counting the attempt in the ledger", e))?;
                Ok(Entry::Uncertain {
                    since_ms: item.since_ms.unwrap_or(0),
                })
            }
        }
    }

    async fn record_delivered(
        &self,
        key: &DeliveryKey,
        ts: &str,
        channel_id: Option<&str>,
    ) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.as_str().to_owned()))
            .update_expression("SET #s = :d, ts = :ts, channel_id = :c")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":d", AttributeValue::S("delivered".into()))
            .expression_attribute_values(":ts", AttributeValue::S(ts.to_owned()))
            .expression_attribute_values(
                ":c",
                AttributeValue::S(channel_id.unwrap_or_default().to_owned()),
            )
            .send()
            .await
            .map_err(|e| Error::aws("recording the delivery in the ledger", e))?;
        Ok(())
    }

    async fn release(&self, key: &DeliveryKey) -> Result<()> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.as_str().to_owned()))
            .update_expression("SET #s = :n")
            .condition_expression("#s = :posting")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":n", AttributeValue::S("not_posted".into()))
            .expression_attribute_values(":posting", AttributeValue::S("posting".into()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(Error::aws("releasing the delivery in the ledger", e)),
        }
    }
}

impl LedgerStore for Ledger {
    fn begin<'a>(&'a self, key: &'a DeliveryKey, now_ms: i64) -> BoxFuture<'a, Result<Entry>> {
        self.claim(key, now_ms).boxed()
    }

    fn delivered<'a>(
        &'a self,
        key: &'a DeliveryKey,
        ts: &'a str,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        self.record_delivered(key, ts, channel_id).boxed()
    }

    fn not_posted<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<()>> {
        self.release(key).boxed()
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
