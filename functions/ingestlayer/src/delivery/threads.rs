//! Threads per key: a delivery with a `thread_key` goes in that key's thread of the day, per
//! (workspace, channel, key, UTC day). The day's first message is posted as usual and its
//! `ts` stored in the state table (`STATE_TABLE`) with a conditional write, so of two writers
//! only one wins; later messages of the day reply in its thread. The state is in DynamoDB, so
//! replies find their thread after a restart and from any instance.
//!
//! Digests and threads: a digest only gathers a run of consecutive waiting messages with the
//! same thread key (unthreaded messages being a key of their own), so it never reorders the
//! channel and never mixes two keys' threads; a digest of a key's messages goes in that key's
//! thread like a single one ([`units`]).
//!
//! When Slack no longer has the thread (its parent was deleted: `thread_not_found`,
//! `invalid_thread_ts`), the message is posted as a new top-level message and becomes the
//! day's thread.

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use crate::aws::dynamo::is_condition_failed;
use crate::delivery::decide;
use crate::error::{Error, Result};
use crate::ids::{ChannelRef, TeamId};

/// How long a thread's state is kept (the table's TTL removes it some time after).
pub const THREAD_TTL_SECS: i64 = 3 * 24 * 3600;
/// Keys longer than this (or holding `#`) are hashed in the item's key.
const MAX_KEY_IN_PK: usize = 100;

/// The UTC day of `now_ms`, `YYYY-MM-DD`.
pub fn utc_day(now_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// The state table key of `key`'s thread in `channel` on `day`:
/// `thread#<team>#<channel>#<key>#<day>`, the key hashed (`h:<sha256 hex>`) when it is long
/// or holds `#`, so two keys never share an item.
pub fn thread_pk(team: &TeamId, channel: &ChannelRef, key: &str, day: &str) -> String {
    let key_part = if key.len() <= MAX_KEY_IN_PK && !key.contains('#') && !key.starts_with("h:") {
        key.to_owned()
    } else {
        format!("h:{}", hex::encode(Sha256::digest(key.as_bytes())))
    };
    format!("thread#{team}#{channel}#{key_part}#{day}")
}

/// How a group's waiting messages go out, in order: each run of consecutive messages with
/// the same thread key is cut into units as [`decide::units`] cuts a channel's messages (a
/// digest when the run is long enough, else one post each).
pub fn units(keys: &[Option<&str>], threshold: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut start = 0;
    while start < keys.len() {
        let run = keys[start..]
            .iter()
            .take_while(|k| **k == keys[start])
            .count();
        sizes.extend(decide::units(run, threshold));
        start += run;
    }
    sizes
}

/// The day threads, in the state table.
#[derive(Clone, Debug)]
pub struct ThreadStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl ThreadStore {
    /// The `ts` of the thread stored under `pk`, if any.
    #[tracing::instrument(skip_all)]
    pub async fn get(&self, pk: &str) -> Result<Option<String>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("reading a thread", e))?;
        Ok(out
            .item
            .and_then(|i| i.get("ts").and_then(|v| v.as_s().ok()).cloned()))
    }

    /// Stores `ts` as the thread under `pk` unless one is stored already: `false` when
    /// another writer won.
    #[tracing::instrument(skip_all)]
    pub async fn start(&self, pk: &str, ts: &str, now_ms: i64) -> Result<bool> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk.to_owned()))
            .item("ts", AttributeValue::S(ts.to_owned()))
            .item("at_ms", AttributeValue::N(now_ms.to_string()))
            .item(
                "expires_at",
                AttributeValue::N((now_ms / 1000 + THREAD_TTL_SECS).to_string()),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(Error::aws("storing a thread", e)),
        }
    }

    /// Replaces the thread under `pk` whose parent Slack no longer has (`old_ts`) with
    /// `new_ts`: `false` when it was replaced already.
    #[tracing::instrument(skip_all)]
    pub async fn restart(&self, pk: &str, old_ts: &str, new_ts: &str, now_ms: i64) -> Result<bool> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk.to_owned()))
            .item("ts", AttributeValue::S(new_ts.to_owned()))
            .item("at_ms", AttributeValue::N(now_ms.to_string()))
            .item(
                "expires_at",
                AttributeValue::N((now_ms / 1000 + THREAD_TTL_SECS).to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR ts = :old")
            .expression_attribute_values(":old", AttributeValue::S(old_ts.to_owned()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(Error::aws("replacing a thread", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_the_utc_day() {
        // 2023-11-14T22:13:20Z and a millisecond before and after midnight UTC.
        assert_eq!(utc_day(1_700_000_000_000), "2023-11-14");
        assert_eq!(utc_day(1_700_006_399_999), "2023-11-14");
        assert_eq!(utc_day(1_700_006_400_000), "2023-11-15");
    }

    #[test]
    fn each_team_channel_key_and_day_has_its_own_thread() {
        let team = TeamId::default_team();
        let alerts = ChannelRef::parse("#alerts").unwrap();
        let pk = thread_pk(&team, &alerts, "acme", "2023-11-14");
        assert_eq!(pk, "thread#default##alerts#acme#2023-11-14");
        assert_ne!(pk, thread_pk(&team, &alerts, "acme", "2023-11-15"));
        assert_ne!(pk, thread_pk(&team, &alerts, "acme2", "2023-11-14"));
        let other = ChannelRef::parse("#sales").unwrap();
        assert_ne!(pk, thread_pk(&team, &other, "acme", "2023-11-14"));
        // A key that could pass for another's pk part is hashed.
        let tricky = thread_pk(&team, &alerts, "a#2023-11-14", "2023-11-14");
        assert!(tricky.contains("#h:"), "{tricky}");
        let long = thread_pk(&team, &alerts, &"k".repeat(500), "2023-11-14");
        assert!(long.len() < 200);
        assert_ne!(
            thread_pk(&team, &alerts, "h:x", "d"),
            "thread#default##alerts#h:x#d"
        );
    }

    #[test]
    fn a_digest_gathers_only_a_run_of_one_thread_key() {
        // Unthreaded messages are a key of their own; order is never changed.
        let keys = [
            Some("a"),
            Some("a"),
            Some("a"),
            Some("b"),
            None,
            None,
            None,
            None,
            Some("a"),
        ];
        assert_eq!(units(&keys, 3), vec![3, 1, 4, 1]);
        assert_eq!(units(&keys, 0), vec![1; 9]);
        assert_eq!(units(&[Some("a"), Some("b"), Some("a")], 2), vec![1, 1, 1]);
        assert_eq!(units(&[None; 5], 3), decide::units(5, 3));
        assert!(units(&[], 3).is_empty());
    }
}
