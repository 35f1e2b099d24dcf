//! What stateful pipeline steps remember, in the state table (`STATE_TABLE`), shared by
//! every instance of the pipeline function.
//!
//! Every decision is one conditional write that DynamoDB applies atomically, so two
//! instances routing events of the same key at once never both pass a throttle, and a
//! threshold passes exactly once per window:
//! - **throttle** (`throttle#<pipeline>#<step>#<key>`): "hold unless the window has ended"
//!   (an update that counts the held event); when it has ended, "open a new window unless
//!   someone else just did" (a put returning the old item, whose held count and time ride
//!   along on the message that passes).
//! - **threshold** (`threshold#…`): "count one more within the window" (the one that makes
//!   the count equal to `count` passes); when the window has ended, "open a new one with 1".
//! - **rollup** (`rollup#<pipeline>#<step>#<key>#<window start>`): one unconditional update
//!   that adds one and the distinct value, and answers the totals.
//! - **heartbeat** (`heartbeat#<pipeline>#<key>`): a ping sets when the key is next due and
//!   answers whether it was missing; the schedule's check reads the `by_due` index and marks
//!   each overdue key missing with a write conditional on it still being overdue, so it
//!   alerts once.
//! - **mute** (`mute#<pipeline>#<key>`): written by Slack's "Mute" button, read in one batch.
//!
//! Items expire by TTL (`expires_at`) after their window. A redelivered event (its pipeline
//! invocation failed after the write) counts twice: the steps are at-least-once counters.
//!
//! [`MemoryState`] keeps the same rules in memory, for unit tests with an injected clock and
//! for `ingestlayer pipelines test`, which needs no stack.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::error::{Error, Result};

/// The state table's index of heartbeats by when they are next due.
pub const BY_DUE: &str = "by_due";
/// The `by_due` index's one partition: only heartbeats that can still go missing carry it.
const DUE_SHARD: &str = "heartbeat";
/// How long an item outlives its window, so a late reader still finds it.
const LINGER_MS: i64 = 86_400_000;

/// One stateful step's write for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOp {
    Throttle {
        pk: String,
        window_ms: i64,
    },
    Threshold {
        pk: String,
        window_ms: i64,
        count: u64,
    },
    Rollup {
        pk: String,
        /// When the rollup's window ends (ms).
        ends_ms: i64,
        distinct: Option<String>,
    },
}

/// What the state table answered to a [`StateOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateAnswer {
    /// A throttle's first event of a window passes, with what the last window held back.
    ThrottlePass {
        held: u64,
        since_ms: Option<i64>,
    },
    ThrottleHold,
    /// The event that made the count: first and last times of the window's events.
    ThresholdPass {
        count: u64,
        first_ms: i64,
        last_ms: i64,
    },
    /// Below the count, or past it (the threshold already passed in this window).
    ThresholdHold {
        count: u64,
    },
    Rollup {
        count: u64,
        distinct: u64,
    },
}

/// A heartbeat key that is overdue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub pipeline: String,
    pub key: String,
    pub last_seen_ms: i64,
    pub due_ms: i64,
}

/// What a heartbeat ping found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ping {
    /// The key was not missing (or is new).
    Fine,
    /// The key had been reported missing; this ping brings it back.
    Back {
        missing_since_ms: i64,
        last_seen_ms: i64,
    },
}

/// An active mute of one pipeline's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Muted {
    pub until_ms: i64,
    pub by: String,
}

/// Where stateful steps keep their state.
pub trait StateStore: Sync {
    fn apply(&self, op: &StateOp, now_ms: i64) -> impl Future<Output = Result<StateAnswer>> + Send;
    /// Records a ping: the key is next due at `due_ms`.
    fn ping(
        &self,
        pipeline: &str,
        key: &str,
        now_ms: i64,
        due_ms: i64,
    ) -> impl Future<Output = Result<Ping>> + Send;
    /// The heartbeats overdue at `now_ms` that are not yet reported missing.
    fn due(&self, now_ms: i64) -> impl Future<Output = Result<Vec<Due>>> + Send;
    /// Marks `due` missing unless it pinged meanwhile (or another check marked it): true
    /// when this call marked it, so exactly one check alerts.
    fn mark_missing(&self, due: &Due, now_ms: i64) -> impl Future<Output = Result<bool>> + Send;
    /// The active mutes among (pipeline, key) pairs.
    fn muted(
        &self,
        keys: &[(String, String)],
        now_ms: i64,
    ) -> impl Future<Output = Result<HashMap<(String, String), Muted>>> + Send;
}

/// The state item key of a step's key value.
pub fn step_pk(kind: &str, pipeline: &str, step: usize, key: &str) -> String {
    format!("{kind}#{pipeline}#{step}#{key}")
}

fn heartbeat_pk(pipeline: &str, key: &str) -> String {
    format!("heartbeat#{pipeline}#{key}")
}

/// The calendar window holding `now_ms`: windows of whole weeks start on Monday 00:00 UTC,
/// others at multiples of their length since the epoch (UTC midnight for days).
pub fn calendar_window(now_ms: i64, window_ms: i64) -> (i64, i64) {
    const WEEK: i64 = 7 * 86_400_000;
    // 1970-01-01 was a Thursday: Mondays are 4 days after a multiple of a week.
    let offset = if window_ms % WEEK == 0 {
        4 * 86_400_000
    } else {
        0
    };
    let start = (now_ms - offset).div_euclid(window_ms) * window_ms + offset;
    (start, start + window_ms)
}

/// The state table in DynamoDB.
#[derive(Clone)]
pub struct DynamoState {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn num(item: Option<&HashMap<String, AttributeValue>>, name: &str) -> Option<i64> {
    match item?.get(name)? {
        AttributeValue::N(v) => v.parse().ok(),
        _ => None,
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name)? {
        AttributeValue::S(v) => Some(v.clone()),
        _ => None,
    }
}

fn expires(ms: i64) -> AttributeValue {
    n((ms + LINGER_MS) / 1000)
}

/// Whether a write failed only because its condition did not hold.
fn condition_failed<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// Tries of the two-write steps before giving up (each failed try means another instance
/// changed the item in between).
const TRIES: usize = 5;

impl StateStore for DynamoState {
    async fn apply(&self, op: &StateOp, now_ms: i64) -> Result<StateAnswer> {
        match op {
            StateOp::Throttle { pk, window_ms } => {
                for _ in 0..TRIES {
                    let held = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", s(pk))
                        .condition_expression("window_end_ms > :now")
                        .update_expression(
                            "ADD held_n :one SET since_ms = if_not_exists(since_ms, :now)",
                        )
                        .expression_attribute_values(":now", n(now_ms))
                        .expression_attribute_values(":one", n(1))
                        .send()
                        .await;
                    match held {
                        Ok(_) => return Ok(StateAnswer::ThrottleHold),
                        Err(e) if condition_failed(&e) => {}
                        Err(e) => return Err(Error::aws("throttle state", e)),
                    }
                    let opened = self
                        .client
                        .put_item()
                        .table_name(&self.table)
                        .item("pk", s(pk))
                        .item("window_end_ms", n(now_ms + window_ms))
                        .item("expires_at", expires(now_ms + window_ms))
                        .condition_expression("attribute_not_exists(pk) OR window_end_ms <= :now")
                        .expression_attribute_values(":now", n(now_ms))
                        .return_values(ReturnValue::AllOld)
                        .send()
                        .await;
                    match opened {
                        Ok(out) => {
                            let old = out.attributes();
                            return Ok(StateAnswer::ThrottlePass {
                                held: num(old, "held_n").unwrap_or(0).max(0) as u64,
                                since_ms: num(old, "since_ms"),
                            });
                        }
                        Err(e) if condition_failed(&e) => {}
                        Err(e) => return Err(Error::aws("throttle state", e)),
                    }
                }
                Err(Error::Upstream {
                    what: "throttle state".into(),
                    detail: format!("{pk} kept changing under {TRIES} tries"),
                    retryable: true,
                })
            }
            StateOp::Threshold {
                pk,
                window_ms,
                count,
            } => {
                for _ in 0..TRIES {
                    let counted = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", s(pk))
                        .condition_expression("window_end_ms > :now")
                        .update_expression("ADD seen_n :one SET last_ms = :now")
                        .expression_attribute_values(":now", n(now_ms))
                        .expression_attribute_values(":one", n(1))
                        .return_values(ReturnValue::AllNew)
                        .send()
                        .await;
                    match counted {
                        Ok(out) => {
                            let new = out.attributes();
                            let seen = num(new, "seen_n").unwrap_or(0).max(0) as u64;
                            return Ok(if seen == *count {
                                StateAnswer::ThresholdPass {
                                    count: seen,
                                    first_ms: num(new, "first_ms").unwrap_or(now_ms),
                                    last_ms: now_ms,
                                }
                            } else {
                                StateAnswer::ThresholdHold { count: seen }
                            });
                        }
                        Err(e) if condition_failed(&e) => {}
                        Err(e) => return Err(Error::aws("threshold state", e)),
                    }
                    let opened = self
                        .client
                        .put_item()
                        .table_name(&self.table)
                        .item("pk", s(pk))
                        .item("seen_n", n(1))
                        .item("first_ms", n(now_ms))
                        .item("last_ms", n(now_ms))
                        .item("window_end_ms", n(now_ms + window_ms))
                        .item("expires_at", expires(now_ms + window_ms))
                        .condition_expression("attribute_not_exists(pk) OR window_end_ms <= :now")
                        .expression_attribute_values(":now", n(now_ms))
                        .send()
                        .await;
                    match opened {
                        Ok(_) => {
                            return Ok(if *count == 1 {
                                StateAnswer::ThresholdPass {
                                    count: 1,
                                    first_ms: now_ms,
                                    last_ms: now_ms,
                                }
                            } else {
                                StateAnswer::ThresholdHold { count: 1 }
                            })
                        }
                        Err(e) if condition_failed(&e) => {}
                        Err(e) => return Err(Error::aws("threshold state", e)),
                    }
                }
                Err(Error::Upstream {
                    what: "threshold state".into(),
                    detail: format!("{pk} kept changing under {TRIES} tries"),
                    retryable: true,
                })
            }
            StateOp::Rollup {
                pk,
                ends_ms,
                distinct,
            } => {
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":exp", expires(*ends_ms))
                    .return_values(ReturnValue::AllNew);
                update = match distinct {
                    Some(v) => update
                        .update_expression(
                            "ADD seen_n :one, distinct_values :v SET expires_at = :exp",
                        )
                        .expression_attribute_values(":v", AttributeValue::Ss(vec![v.clone()])),
                    None => update.update_expression("ADD seen_n :one SET expires_at = :exp"),
                };
                let out = update
                    .send()
                    .await
                    .map_err(|e| Error::aws("rollup state", e))?;
                let new = out.attributes();
                let distinct = match new.and_then(|a| a.get("distinct_values")) {
                    Some(AttributeValue::Ss(values)) => values.len() as u64,
                    _ => 0,
                };
                Ok(StateAnswer::Rollup {
                    count: num(new, "seen_n").unwrap_or(0).max(0) as u64,
                    distinct,
                })
            }
        }
    }

    async fn ping(&self, pipeline: &str, key: &str, now_ms: i64, due_ms: i64) -> Result<Ping> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&heartbeat_pk(pipeline, key)))
            .update_expression(
                "SET last_seen_ms = :now, due_ms = :due, due_shard = :shard, hb_status = :fine, \
                 pipeline_id = :p, hb_key = :k, expires_at = :exp REMOVE missing_since_ms",
            )
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":due", n(due_ms))
            .expression_attribute_values(":shard", s(DUE_SHARD))
            .expression_attribute_values(":fine", s("fine"))
            .expression_attribute_values(":p", s(pipeline))
            .expression_attribute_values(":k", s(key))
            .expression_attribute_values(":exp", expires(due_ms + 30 * LINGER_MS))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("heartbeat state", e))?;
        let old = out.attributes();
        let was_missing = old
            .and_then(|o| text(o, "hb_status"))
            .is_some_and(|st| st == "missing");
        Ok(if was_missing {
            Ping::Back {
                missing_since_ms: num(old, "missing_since_ms").unwrap_or(now_ms),
                last_seen_ms: num(old, "last_seen_ms").unwrap_or(now_ms),
            }
        } else {
            Ping::Fine
        })
    }

    async fn due(&self, now_ms: i64) -> Result<Vec<Due>> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_DUE)
            .key_condition_expression("due_shard = :shard AND due_ms <= :now")
            .expression_attribute_values(":shard", s(DUE_SHARD))
            .expression_attribute_values(":now", n(now_ms))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::aws("reading due heartbeats", e))?;
        Ok(items
            .iter()
            .filter(|i| text(i, "hb_status").is_some_and(|st| st == "fine"))
            .filter_map(|i| {
                Some(Due {
                    pipeline: text(i, "pipeline_id")?,
                    key: text(i, "hb_key")?,
                    last_seen_ms: num(Some(i), "last_seen_ms")?,
                    due_ms: num(Some(i), "due_ms")?,
                })
            })
            .collect())
    }

    async fn mark_missing(&self, due: &Due, now_ms: i64) -> Result<bool> {
        let marked = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&heartbeat_pk(&due.pipeline, &due.key)))
            .condition_expression("hb_status = :fine AND due_ms <= :now")
            .update_expression("SET hb_status = :missing, missing_since_ms = :now REMOVE due_shard")
            .expression_attribute_values(":fine", s("fine"))
            .expression_attribute_values(":missing", s("missing"))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match marked {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(Error::aws("heartbeat state", e)),
        }
    }

    async fn muted(
        &self,
        keys: &[(String, String)],
        now_ms: i64,
    ) -> Result<HashMap<(String, String), Muted>> {
        let store = crate::routing::mutes::MuteStore::new(self.client.clone(), self.table.clone());
        Ok(store
            .active(keys, now_ms)
            .await?
            .into_iter()
            .map(|(k, m)| {
                (
                    k,
                    Muted {
                        until_ms: m.until_ms,
                        by: m.by,
                    },
                )
            })
            .collect())
    }
}

/// No state table configured (`STATE_TABLE` unset): a pipeline with a stateful step fails
/// its events with an error that says so, and the others run.
pub struct NoState;

fn unconfigured() -> Error {
    Error::Upstream {
        what: "stateful step".into(),
        detail: "STATE_TABLE is not set: throttle, threshold, rollup, heartbeat and mute need the stack's state table".into(),
        retryable: true,
    }
}

impl StateStore for NoState {
    async fn apply(&self, _: &StateOp, _: i64) -> Result<StateAnswer> {
        Err(unconfigured())
    }
    async fn ping(&self, _: &str, _: &str, _: i64, _: i64) -> Result<Ping> {
        Err(unconfigured())
    }
    async fn due(&self, _: i64) -> Result<Vec<Due>> {
        Ok(Vec::new())
    }
    async fn mark_missing(&self, _: &Due, _: i64) -> Result<bool> {
        Err(unconfigured())
    }
    async fn muted(
        &self,
        _: &[(String, String)],
        _: i64,
    ) -> Result<HashMap<(String, String), Muted>> {
        Err(unconfigured())
    }
}

#[derive(Debug, Clone, Default)]
struct MemoryItem {
    window_end_ms: i64,
    n: u64,
    since_ms: Option<i64>,
    first_ms: i64,
    last_ms: i64,
    distinct: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct MemoryBeat {
    due_ms: i64,
    last_seen_ms: i64,
    missing_since_ms: Option<i64>,
}

/// The state rules in memory: for unit tests (with an injected clock) and for
/// `ingestlayer pipelines test`, which runs without a stack.
#[derive(Debug, Default)]
pub struct MemoryState {
    items: Mutex<HashMap<String, MemoryItem>>,
    beats: Mutex<HashMap<(String, String), MemoryBeat>>,
    mutes: Mutex<HashMap<(String, String), Muted>>,
}

impl MemoryState {
    /// Mutes `key` of `pipeline` until `until_ms`.
    pub fn mute(&self, pipeline: &str, key: &str, until_ms: i64, by: &str) {
        if let Ok(mut m) = self.mutes.lock() {
            m.insert(
                (pipeline.to_owned(), key.to_owned()),
                Muted {
                    until_ms,
                    by: by.to_owned(),
                },
            );
        }
    }
}

fn poisoned() -> Error {
    Error::reason("the in-memory state was poisoned by a panic")
}

impl StateStore for MemoryState {
    async fn apply(&self, op: &StateOp, now_ms: i64) -> Result<StateAnswer> {
        let mut items = self.items.lock().map_err(|_| poisoned())?;
        Ok(match op {
            StateOp::Throttle { pk, window_ms } => match items.get_mut(pk) {
                Some(item) if item.window_end_ms > now_ms => {
                    item.n += 1;
                    item.since_ms.get_or_insert(now_ms);
                    StateAnswer::ThrottleHold
                }
                old => {
                    let (held, since_ms) = old.map(|o| (o.n, o.since_ms)).unwrap_or_default();
                    items.insert(
                        pk.clone(),
                        MemoryItem {
                            window_end_ms: now_ms + window_ms,
                            ..Default::default()
                        },
                    );
                    StateAnswer::ThrottlePass { held, since_ms }
                }
            },
            StateOp::Threshold {
                pk,
                window_ms,
                count,
            } => {
                let item = match items.get_mut(pk) {
                    Some(item) if item.window_end_ms > now_ms => {
                        item.n += 1;
                        item.last_ms = now_ms;
                        item
                    }
                    _ => {
                        items.insert(
                            pk.clone(),
                            MemoryItem {
                                window_end_ms: now_ms + window_ms,
                                n: 1,
                                first_ms: now_ms,
                                last_ms: now_ms,
                                ..Default::default()
                            },
                        );
                        items.get_mut(pk).ok_or_else(poisoned)?
                    }
                };
                if item.n == *count {
                    StateAnswer::ThresholdPass {
                        count: item.n,
                        first_ms: item.first_ms,
                        last_ms: item.last_ms,
                    }
                } else {
                    StateAnswer::ThresholdHold { count: item.n }
                }
            }
            StateOp::Rollup { pk, distinct, .. } => {
                let item = items.entry(pk.clone()).or_default();
                item.n += 1;
                if let Some(v) = distinct {
                    item.distinct.insert(v.clone());
                }
                StateAnswer::Rollup {
                    count: item.n,
                    distinct: item.distinct.len() as u64,
                }
            }
        })
    }

    async fn ping(&self, pipeline: &str, key: &str, now_ms: i64, due_ms: i64) -> Result<Ping> {
        let mut beats = self.beats.lock().map_err(|_| poisoned())?;
        let old = beats.insert(
            (pipeline.to_owned(), key.to_owned()),
            MemoryBeat {
                due_ms,
                last_seen_ms: now_ms,
                missing_since_ms: None,
            },
        );
        Ok(match old {
            Some(MemoryBeat {
                missing_since_ms: Some(since),
                last_seen_ms,
                ..
            }) => Ping::Back {
                missing_since_ms: since,
                last_seen_ms,
            },
            _ => Ping::Fine,
        })
    }

    async fn due(&self, now_ms: i64) -> Result<Vec<Due>> {
        let beats = self.beats.lock().map_err(|_| poisoned())?;
        let mut due: Vec<Due> = beats
            .iter()
            .filter(|(_, b)| b.missing_since_ms.is_none() && b.due_ms <= now_ms)
            .map(|((p, k), b)| Due {
                pipeline: p.clone(),
                key: k.clone(),
                last_seen_ms: b.last_seen_ms,
                due_ms: b.due_ms,
            })
            .collect();
        due.sort_by(|a, b| (a.due_ms, &a.key).cmp(&(b.due_ms, &b.key)));
        Ok(due)
    }

    async fn mark_missing(&self, due: &Due, now_ms: i64) -> Result<bool> {
        let mut beats = self.beats.lock().map_err(|_| poisoned())?;
        match beats.get_mut(&(due.pipeline.clone(), due.key.clone())) {
            Some(b) if b.missing_since_ms.is_none() && b.due_ms <= now_ms => {
                b.missing_since_ms = Some(now_ms);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn muted(
        &self,
        keys: &[(String, String)],
        now_ms: i64,
    ) -> Result<HashMap<(String, String), Muted>> {
        let mutes = self.mutes.lock().map_err(|_| poisoned())?;
        Ok(keys
            .iter()
            .filter_map(|k| {
                mutes
                    .get(k)
                    .filter(|m| m.until_ms > now_ms)
                    .map(|m| (k.clone(), m.clone()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn throttle(pk: &str) -> StateOp {
        StateOp::Throttle {
            pk: pk.into(),
            window_ms: 60 * MIN,
        }
    }

    #[tokio::test]
    async fn a_throttle_passes_once_per_window_and_counts_what_it_held() {
        let s = MemoryState::default();
        let t0 = 1_700_000_000_000;
        assert_eq!(
            s.apply(&throttle("a"), t0).await.unwrap(),
            StateAnswer::ThrottlePass {
                held: 0,
                since_ms: None
            }
        );
        for i in 1..=14 {
            assert_eq!(
                s.apply(&throttle("a"), t0 + i * MIN).await.unwrap(),
                StateAnswer::ThrottleHold
            );
        }
        // Another key has its own window.
        assert!(matches!(
            s.apply(&throttle("b"), t0 + MIN).await.unwrap(),
            StateAnswer::ThrottlePass { held: 0, .. }
        ));
        // The window has passed: the next one passes, with what was held and since when.
        assert_eq!(
            s.apply(&throttle("a"), t0 + 60 * MIN).await.unwrap(),
            StateAnswer::ThrottlePass {
                held: 14,
                since_ms: Some(t0 + MIN)
            }
        );
        assert_eq!(
            s.apply(&throttle("a"), t0 + 61 * MIN).await.unwrap(),
            StateAnswer::ThrottleHold
        );
    }

    #[tokio::test]
    async fn a_threshold_passes_exactly_once_per_window_and_resets_after_it() {
        let s = MemoryState::default();
        let op = StateOp::Threshold {
            pk: "k".into(),
            window_ms: 10 * MIN,
            count: 5,
        };
        let t0 = 1_700_000_000_000;
        let mut passes = Vec::new();
        for i in 0..8 {
            if let StateAnswer::ThresholdPass {
                count,
                first_ms,
                last_ms,
            } = s.apply(&op, t0 + i * MIN).await.unwrap()
            {
                passes.push((i, count, first_ms, last_ms));
            }
        }
        assert_eq!(passes, vec![(4, 5, t0, t0 + 4 * MIN)]);
        // Four in the next window: below the count.
        for i in 10..14 {
            assert!(matches!(
                s.apply(&op, t0 + i * MIN).await.unwrap(),
                StateAnswer::ThresholdHold { .. }
            ));
        }
        // Five spread wider than the window never pass.
        let spread = StateOp::Threshold {
            pk: "spread".into(),
            window_ms: 10 * MIN,
            count: 5,
        };
        for i in 0..5 {
            assert!(matches!(
                s.apply(&spread, t0 + i * 3 * MIN).await.unwrap(),
                StateAnswer::ThresholdHold { .. }
            ));
        }
    }

    #[tokio::test]
    async fn a_rollup_counts_events_and_distinct_values() {
        let s = MemoryState::default();
        let op = |user: &str| StateOp::Rollup {
            pk: "acme".into(),
            ends_ms: 0,
            distinct: Some(user.into()),
        };
        s.apply(&op("u1"), 0).await.unwrap();
        s.apply(&op("u2"), 0).await.unwrap();
        assert_eq!(
            s.apply(&op("u1"), 0).await.unwrap(),
            StateAnswer::Rollup {
                count: 3,
                distinct: 2
            }
        );
    }

    #[tokio::test]
    async fn a_heartbeat_goes_missing_once_and_comes_back_once() {
        let s = MemoryState::default();
        let t0 = 1_700_000_000_000;
        assert_eq!(
            s.ping("cron", "job", t0, t0 + 70 * MIN).await.unwrap(),
            Ping::Fine
        );
        assert!(s.due(t0 + 69 * MIN).await.unwrap().is_empty());
        let due = s.due(t0 + 70 * MIN).await.unwrap();
        assert_eq!(due.len(), 1);
        assert!(s.mark_missing(&due[0], t0 + 70 * MIN).await.unwrap());
        assert!(!s.mark_missing(&due[0], t0 + 71 * MIN).await.unwrap());
        assert!(s.due(t0 + 200 * MIN).await.unwrap().is_empty());
        assert_eq!(
            s.ping("cron", "job", t0 + 300 * MIN, t0 + 370 * MIN)
                .await
                .unwrap(),
            Ping::Back {
                missing_since_ms: t0 + 70 * MIN,
                last_seen_ms: t0
            }
        );
        assert_eq!(
            s.ping("cron", "job", t0 + 301 * MIN, t0 + 371 * MIN)
                .await
                .unwrap(),
            Ping::Fine
        );
    }

    #[test]
    fn calendar_windows_of_weeks_start_on_monday() {
        // 2026-11-30 is a Monday; 2026-12-02 12:00 UTC is in its week.
        let monday = 1_795_996_800_000; // 2026-11-30T00:00:00Z
        let wednesday_noon = monday + 2 * 86_400_000 + 12 * 3_600_000;
        assert_eq!(
            calendar_window(wednesday_noon, 7 * 86_400_000),
            (monday, monday + 7 * 86_400_000)
        );
        assert_eq!(
            calendar_window(wednesday_noon, 86_400_000).0,
            monday + 2 * 86_400_000
        );
    }
}
