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
use serde::Deserialize;

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

/// The ledger as a deliveries table item per key.
#[derive(Debug, Default, Deserialize)]
struct Item {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    since_ms: Option<i64>,
}

fn is_condition_failed<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
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
        let item: Item = match self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk())
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("reading the delivery ledger", e))?
            .item
        {
            Some(item) => serde_dynamo::from_item(item)
                .map_err(|e| Error::invalid("a delivery ledger item", e))?,
            None => Item::default(),
        };
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
