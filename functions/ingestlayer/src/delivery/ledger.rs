//! The delivery ledger: at most one Slack post per (event, pipeline, destination).
//!
//! One item per delivery key in the deliveries table (`pk`): `status` is `posting` while an
//! invocation holds the key (claimed at `claimed_ms`; a post may be in flight), `unsure` when
//! an attempt ended without knowing whether it posted (a timeout, a 5xx, `fatal_error`, a
//! history that could not be read), `not_posted` when the last attempt certainly did not post,
//! `delivered` (with the message `ts`) once Slack took it. Writes are conditional, so two
//! instances can never both start a post for the same key. A `posting` claim younger than
//! [`CLAIM_LEASE`] may belong to an invocation still running: another waits for it rather
//! than checking the history and posting beside it; an older one is a crashed invocation's,
//! and is taken over (history first). Items expire (TTL) after 30 days.

use std::time::Duration;

use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use crate::aws::dynamo::{self, Applied};
use crate::error::{Error, Result};
use crate::ids::DeliveryKey;

const TTL_SECONDS: i64 = 30 * 86_400;

/// How long a `posting` claim may belong to an invocation that is still running: longer
/// than the delivery functions' timeout (30 s in template.yaml), so a claim this old was left
/// by one that stopped.
pub const CLAIM_LEASE: Duration = Duration::from_secs(40);

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
    /// Another invocation claimed it `wait` ago or less and may be posting it now: neither
    /// post nor check the history until it is done or its claim is stale.
    Busy { wait: Duration },
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
    /// The attempts ended without knowing whether they posted (or an invocation stops holding
    /// keys it took over without finding out): the next attempt checks the history at once.
    /// A key that is not `posting` is left as it is.
    fn unsure_all<'a>(&'a self, keys: &'a [DeliveryKey]) -> BoxFuture<'a, Vec<Result<()>>>;

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
    /// [`LedgerStore::unsure_all`] for one key.
    fn unsure<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<()>> {
        async move { one(self.unsure_all(std::slice::from_ref(key)).await) }.boxed()
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

/// A deliveries table item: `pk` is the delivery key; `status` is `posting`, `unsure`,
/// `not_posted` or `delivered`; `since_ms` when the attempt that may have posted began (the
/// history is searched from there), `claimed_ms` when the current claim was taken (items
/// written before it have `since_ms` only), `attempts` how many there were,
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
    claimed_ms: Option<i64>,
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
        // Every index was answered above; a missing answer would be a guess, so it is an error.
        out.into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(Error::invalid(
                        what,
                        "DynamoDB's answer did not cover this key",
                    ))
                })
            })
            .collect()
    }

    async fn claim_all(&self, keys: &[DeliveryKey], now_ms: i64) -> Vec<Result<Entry>> {
        let claims = keys
            .iter()
            .map(|key| {
                self.update(key, |u| {
                    u.update_expression(
                        "SET #s = :posting, since_ms = :now, claimed_ms = :now, expires_at = :exp ADD attempts :one",
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
                Ok(Applied::Done) => Ok(Taken::Clear),
                Ok(Applied::ConditionFailed(Some(item))) => previous(Some(item), now_ms),
                // Not returned with the failure: read it.
                Ok(Applied::ConditionFailed(None)) => self.read(key, now_ms).await,
                Err(e) => Err(e),
            });
        }
        // An unsure key, or one a stopped invocation left `posting`, is taken over: this
        // invocation holds it now (one at a time: the update is conditional on what was read),
        // and checks the history from when the uncertain attempt began.
        let mut over = Vec::new();
        let mut updates = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let Ok(Taken::Over { claimed_ms, .. }) = entry else {
                continue;
            };
            over.push(i);
            updates.push(self.update(&keys[i], |u| {
                let u = u
                    .update_expression("SET #s = :posting, claimed_ms = :now ADD attempts :one")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(":posting", AttributeValue::S("posting".into()))
                    .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()));
                match claimed_ms {
                    // Unsure: nobody holds it.
                    None => u
                        .condition_expression("#s = :unsure")
                        .expression_attribute_values(":unsure", AttributeValue::S("unsure".into())),
                    // Stale: still the claim that was read.
                    Some(ms) => u
                        .condition_expression(
                            "#s = :posting AND (claimed_ms = :was OR (attribute_not_exists(claimed_ms) AND since_ms = :was))",
                        )
                        .expression_attribute_values(":was", AttributeValue::N(ms.to_string())),
                }
            }));
        }
        let taken = self
            .transact(updates, "taking over deliveries in the ledger")
            .await;
        for (i, t) in over.into_iter().zip(taken) {
            match t {
                Ok(Applied::Done) => {}
                // Another invocation took it first: it holds it now.
                Ok(Applied::ConditionFailed(_)) => {
                    entries[i] = Ok(Taken::Held { wait: CLAIM_LEASE })
                }
                Err(e) => entries[i] = Err(e),
            }
        }
        entries.into_iter().map(|t| t.map(Taken::entry)).collect()
    }

    /// What the previous attempts left on `key`, read consistently.
    async fn read(&self, key: &DeliveryKey, now_ms: i64) -> Result<Taken> {
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
        previous(item, now_ms)
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

    /// Moves the `posting` ones of `keys` to `to` (`not_posted`: released; `unsure`); a key
    /// that is not `posting` (delivered meanwhile) is left as it is.
    async fn leave_posting(&self, keys: &[DeliveryKey], to: &str, what: &str) -> Vec<Result<()>> {
        let updates = keys
            .iter()
            .map(|key| {
                self.update(key, |u| {
                    u.update_expression("SET #s = :to")
                        .condition_expression("#s = :posting")
                        .expression_attribute_names("#s", "status")
                        .expression_attribute_values(":to", AttributeValue::S(to.to_owned()))
                        .expression_attribute_values(
                            ":posting",
                            AttributeValue::S("posting".into()),
                        )
                })
            })
            .collect();
        self.transact(updates, what)
            .await
            .into_iter()
            .map(|a| a.map(|_| ()))
            .collect()
    }
}

/// What a claim found, before any takeover.
#[derive(Debug, Clone, PartialEq)]
enum Taken {
    Clear,
    Delivered {
        ts: String,
    },
    /// Unsure (`claimed_ms: None`) or left `posting` by a stopped invocation (the claim it
    /// read): to be taken over, then checked against the history from `since_ms`.
    Over {
        since_ms: i64,
        claimed_ms: Option<i64>,
    },
    /// A live claim of another invocation.
    Held {
        wait: Duration,
    },
}

impl Taken {
    fn entry(self) -> Entry {
        match self {
            Taken::Clear => Entry::Clear,
            Taken::Delivered { ts } => Entry::Delivered { ts },
            Taken::Over { since_ms, .. } => Entry::Uncertain { since_ms },
            Taken::Held { wait } => Entry::Busy { wait },
        }
    }
}

/// What an item of the ledger says of the previous attempts at `now_ms`, when a claim found
/// it taken: delivered; unsure; held by a live claim; or left by a stopped invocation.
fn previous(item: Option<dynamo::Item>, now_ms: i64) -> Result<Taken> {
    let item: LedgerItem = dynamo::from_item_or_default(item, "a delivery ledger item")?;
    let since_ms = item.since_ms.unwrap_or(0);
    Ok(match item.status.as_deref() {
        Some("delivered") => Taken::Delivered {
            ts: item.ts.unwrap_or_default(),
        },
        Some("posting") => {
            let claimed_ms = item.claimed_ms.unwrap_or(since_ms);
            let age = Duration::from_millis(u64::try_from(now_ms - claimed_ms).unwrap_or(0));
            match CLAIM_LEASE.checked_sub(age) {
                Some(left) if !left.is_zero() => Taken::Held { wait: left },
                _ => Taken::Over {
                    since_ms,
                    claimed_ms: Some(claimed_ms),
                },
            }
        }
        _ => Taken::Over {
            since_ms,
            claimed_ms: None,
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
        self.leave_posting(keys, "not_posted", "releasing deliveries in the ledger")
            .boxed()
    }

    fn unsure_all<'a>(&'a self, keys: &'a [DeliveryKey]) -> BoxFuture<'a, Vec<Result<()>>> {
        self.leave_posting(keys, "unsure", "marking deliveries unsure in the ledger")
            .boxed()
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
