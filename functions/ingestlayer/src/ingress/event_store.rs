//! The events table: every accepted event stored whole, with a TTL.
//!
//! Item: `id` (S), `name` (S), `source` (S), `received_at` (S, RFC 3339), `envelope`
//! (S, the whole envelope as JSON, so the payload is kept byte for byte) and `expires_at`
//! (N, epoch seconds; DynamoDB TTL deletes lazily, so readers check it themselves),
//! `received_ms` (N), `queued` (BOOL, true once the event is on the events queue) and
//! `key_id` (S, the public id of the API key that sent it; absent for webhooks). The item is
//! also the first line of the event's journey (`ingestlayer explain`): received, from
//! which source and key, when.
//!
//! `id` is the event's id: a client-given id scoped by its source (`<source>:<client id>`,
//! `webhook:<source>:<delivery id>`) or a server ULID, so one source's ids never reach
//! another's items. An event with a client-given id is stored with a conditional write: the
//! same id (from the same source) within [`IDEMPOTENCY_WINDOW`] is a duplicate, answered with the original and not processed again
//! (unless the original never reached the queue, in which case it is queued now).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::aws::dynamo::{self, Item};
use crate::aws::retry::UNPROCESSED;
use crate::error::{Error, Result};
use crate::event::Envelope;

const BATCH_WRITE_MAX: usize = 25;

/// How long a client-given id (or Idempotency-Key) deduplicates.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What a conditional store found.
#[derive(Debug, Clone)]
pub enum Stored {
    /// Stored now.
    New,
    /// The id was seen within the window: the original, and whether it reached the queue.
    Duplicate { original_json: String, queued: bool },
}
/// Single-item writes (conditional puts, queued marks) in flight at once for one request.
pub const CONCURRENT_WRITES: usize = 16;

/// An events table item (see the module's opening comment). Items written before
/// `received_ms` and `queued` existed read as 0 and `false`; one without `expires_at` never
/// expires; one without `envelope` reads as an empty one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EventItem {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    received_at: String,
    #[serde(default)]
    envelope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default)]
    received_ms: i64,
    #[serde(default)]
    queued: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
}

/// What ingest recorded of an event's arrival: the first line of its journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    pub id: String,
    pub name: String,
    pub source: String,
    /// The API key's public id (`il_…`); none for a signed webhook.
    pub key_id: Option<String>,
    pub received_at: String,
    pub received_ms: i64,
    /// Whether it reached the events queue (known for client-given ids).
    pub queued: bool,
}

impl EventItem {
    /// A newly accepted event, not yet queued, kept `ttl_days`.
    fn new(env: &Envelope, json: &str, ttl_days: u32, key_id: Option<&str>) -> Self {
        Self {
            id: env.id.as_str().to_owned(),
            name: env.name.as_str().to_owned(),
            source: env.source.clone(),
            received_at: env
                .received_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            envelope: json.to_owned(),
            expires_at: Some(env.received_at.unix_timestamp() + i64::from(ttl_days) * 86_400),
            received_ms: received_ms(env),
            queued: false,
            key_id: key_id.map(str::to_owned),
        }
    }

    /// Past its TTL at `now_unix` (DynamoDB deletes expired items lazily).
    fn expired(&self, now_unix: i64) -> bool {
        self.expires_at.is_some_and(|t| t < now_unix)
    }
}

#[derive(Debug, Clone)]
pub struct EventStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub ttl_days: u32,
}

impl EventStore {
    /// Stores each (envelope, its JSON); one result per event, in order.
    #[tracing::instrument(skip_all, fields(events = events.len(), table = %self.table))]
    pub async fn put_all(
        &self,
        events: &[(&Envelope, &str)],
        key_id: Option<&str>,
    ) -> Vec<Result<()>> {
        let mut results: Vec<Result<()>> = events.iter().map(|_| Ok(())).collect();
        let indices: Vec<usize> = (0..events.len()).collect();
        for chunk in indices.chunks(BATCH_WRITE_MAX) {
            let mut pending: HashMap<String, usize> = HashMap::new();
            let mut requests = Vec::new();
            for &i in chunk {
                let (env, json) = events[i];
                let put = self.item(env, json, key_id).and_then(|item| {
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| Error::invalid("an event item", e))
                });
                match put {
                    Ok(p) => {
                        pending.insert(env.id.as_str().to_owned(), i);
                        requests.push(WriteRequest::builder().put_request(p).build());
                    }
                    Err(e) => results[i] = Err(e),
                }
            }
            let mut attempt = 0;
            while !requests.is_empty() {
                attempt += 1;
                let Some(wait) = UNPROCESSED.before(attempt) else {
                    for w in &requests {
                        if let Some(i) = request_index(w, &pending) {
                            results[i] = Err(Error::Upstream {
                                what: "storing the event".into(),
                                detail: "DynamoDB left the write unprocessed".into(),
                                retryable: true,
                            });
                        }
                    }
                    break;
                };
                tokio::time::sleep(wait).await;
                let sent = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut requests))
                    .send()
                    .await;
                match sent {
                    Ok(out) => {
                        requests = out
                            .unprocessed_items
                            .and_then(|mut u| u.remove(&self.table))
                            .unwrap_or_default();
                    }
                    Err(e) => {
                        let e = Error::aws("storing events", e);
                        for &i in chunk {
                            if results[i].is_ok() {
                                results[i] = Err(e.for_another());
                            }
                        }
                        break;
                    }
                }
            }
        }
        results
    }

    /// Stores an event with a client-given id unless that id was seen within
    /// [`IDEMPOTENCY_WINDOW`].
    pub async fn put_new(
        &self,
        env: &Envelope,
        json: &str,
        key_id: Option<&str>,
    ) -> Result<Stored> {
        let cutoff = received_ms(env) - IDEMPOTENCY_WINDOW.as_millis() as i64;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(env, json, key_id)?))
            .condition_expression("attribute_not_exists(id) OR received_ms < :cutoff")
            .expression_attribute_values(":cutoff", AttributeValue::N(cutoff.to_string()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Stored::New),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let item = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("id", AttributeValue::S(env.id.as_str().to_owned()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| Error::aws("reading the stored event", e))?
                    .item;
                let (original_json, queued) = match item {
                    Some(item) => {
                        let stored: EventItem = dynamo::from_item(item, "the stored event")?;
                        (Some(stored.envelope), stored.queued)
                    }
                    None => (None, false),
                };
                Ok(Stored::Duplicate {
                    original_json: original_json
                        .filter(|j| !j.is_empty())
                        .unwrap_or_else(|| json.to_owned()),
                    queued,
                })
            }
            Err(e) => Err(Error::aws("storing the event", e)),
        }
    }

    /// Records that these events reached the events queue.
    pub async fn mark_queued(&self, ids: Vec<String>) {
        futures_util::stream::iter(ids.into_iter().map(|id| self.mark_one_queued(id)))
            .buffer_unordered(CONCURRENT_WRITES)
            .collect::<Vec<()>>()
            .await;
    }

    async fn mark_one_queued(&self, id: String) {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.clone()))
            .update_expression("SET queued = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        if let Err(e) = r {
            // Harmless: a retry of this id would queue it once more, and the delivery
            // ledger still prevents a second post.
            tracing::warn!(event_id = %id, error = %aws_sdk_dynamodb::error::DisplayErrorContext(e), "could not mark the event queued");
        }
    }

    /// Reads one stored event; `None` when absent or past its TTL.
    pub async fn get(&self, id: &str) -> Result<Option<Envelope>> {
        let Some(item) = self.read(id).await? else {
            return Ok(None);
        };
        if item.envelope.is_empty() {
            return Err(Error::invalid("the stored event", "it has no envelope"));
        }
        serde_json::from_str(&item.envelope)
            .map(Some)
            .map_err(|e| Error::invalid("the stored event", e))
    }

    /// The stored item of `id`; `None` when absent or past its TTL (DynamoDB deletes
    /// expired items lazily).
    async fn read(&self, id: &str) -> Result<Option<EventItem>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(|e| Error::aws("reading the stored event", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let item: EventItem = dynamo::from_item(item, "the stored event")?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok(Some(item).filter(|i| !i.expired(now)))
    }

    /// The item an accepted event is stored as, by BatchWriteItem and by the conditional
    /// PutItem alike.
    fn item(&self, env: &Envelope, json: &str, key_id: Option<&str>) -> Result<Item> {
        dynamo::to_item(
            &EventItem::new(env, json, self.ttl_days, key_id),
            "an event item",
        )
    }

    /// How an event arrived (the first line of its journey); `None` when absent or past
    /// its TTL.
    pub async fn received(&self, id: &str) -> Result<Option<Received>> {
        let Some(item) = self.read(id).await? else {
            return Ok(None);
        };
        Ok(Some(Received {
            id: item.id,
            name: item.name,
            source: item.source,
            key_id: item.key_id,
            received_at: item.received_at,
            received_ms: item.received_ms,
            queued: item.queued,
        }))
    }
}

fn received_ms(env: &Envelope) -> i64 {
    (env.received_at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn request_index(w: &WriteRequest, pending: &HashMap<String, usize>) -> Option<usize> {
    let id = w.put_request.as_ref()?.item.get("id")?.as_s().ok()?;
    pending.get(id).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"id":"tests:o-1","name":"order.paid","received_at":"2024-05-01T12:00:00.25Z","source":"tests","data":{"total":5}}"#;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    fn stored() -> Item {
        Item::from([
            ("id".to_owned(), s("tests:o-1")),
            ("name".to_owned(), s("order.paid")),
            ("source".to_owned(), s("tests")),
            ("received_at".to_owned(), s("2024-05-01T12:00:00.25Z")),
            ("envelope".to_owned(), s(JSON)),
            ("expires_at".to_owned(), n("1717156800")),
            ("received_ms".to_owned(), n("1714564800250")),
            ("queued".to_owned(), AttributeValue::Bool(false)),
        ])
    }

    #[test]
    fn an_accepted_event_is_stored_in_the_documented_shape_and_reads_back() {
        let env: Envelope = serde_json::from_str(JSON).unwrap();
        let item = EventItem::new(&env, JSON, 30, None);
        assert_eq!(dynamo::to_item(&item, "an event item").unwrap(), stored());

        let mut queued = stored();
        queued.insert("queued".to_owned(), AttributeValue::Bool(true));
        let read: EventItem = dynamo::from_item(queued.clone(), "the stored event").unwrap();
        assert!(read.queued);
        assert_eq!(read.envelope, JSON);
        assert_eq!(dynamo::to_item(&read, "an event item").unwrap(), queued);
        assert!(!read.expired(1_717_156_800));
        assert!(read.expired(1_717_156_801));
    }

    #[test]
    fn an_item_stored_before_received_ms_and_queued_existed_still_reads() {
        let mut old = stored();
        old.remove("received_ms");
        old.remove("queued");
        old.remove("expires_at");
        let read: EventItem = dynamo::from_item(old, "the stored event").unwrap();
        assert_eq!((read.received_ms, read.queued), (0, false));
        assert!(!read.expired(i64::MAX), "no TTL: never expired");
        assert_eq!(read.envelope, JSON);
    }
}
