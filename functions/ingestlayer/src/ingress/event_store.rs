//! The events table: every accepted event stored whole, with a TTL.
//!
//! Item: `id` (S), `name` (S), `source` (S), `received_at` (S, RFC 3339), `envelope`
//! (S, the whole envelope as JSON, so the payload is kept byte for byte) and `expires_at`
//! (N, epoch seconds; DynamoDB TTL deletes lazily, so readers check it themselves),
//! `received_ms` (N) and `queued` (BOOL, true once the event is on the events queue).
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

#[derive(Debug, Clone)]
pub struct EventStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub ttl_days: u32,
}

impl EventStore {
    /// Stores each (envelope, its JSON); one result per event, in order.
    #[tracing::instrument(skip_all, fields(events = events.len(), table = %self.table))]
    pub async fn put_all(&self, events: &[(&Envelope, &str)]) -> Vec<Result<()>> {
        let mut results: Vec<Result<()>> = events.iter().map(|_| Ok(())).collect();
        let indices: Vec<usize> = (0..events.len()).collect();
        for chunk in indices.chunks(BATCH_WRITE_MAX) {
            let mut pending: HashMap<String, usize> = HashMap::new();
            let mut requests = Vec::new();
            for &i in chunk {
                let (env, json) = events[i];
                let expires = env.received_at.unix_timestamp() + i64::from(self.ttl_days) * 86_400;
                let put = PutRequest::builder()
                    .item("id", AttributeValue::S(env.id.as_str().to_owned()))
                    .item("name", AttributeValue::S(env.name.as_str().to_owned()))
                    .item("source", AttributeValue::S(env.source.clone()))
                    .item(
                        "received_at",
                        AttributeValue::S(
                            env.received_at
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default(),
                        ),
                    )
                    .item("envelope", AttributeValue::S(json.to_owned()))
                    .item(
                        "received_ms",
                        AttributeValue::N(received_ms(env).to_string()),
                    )
                    .item("queued", AttributeValue::Bool(false))
                    .item("expires_at", AttributeValue::N(expires.to_string()))
                    .build();
                match put {
                    Ok(p) => {
                        pending.insert(env.id.as_str().to_owned(), i);
                        requests.push(WriteRequest::builder().put_request(p).build());
                    }
                    Err(e) => results[i] = Err(Error::invalid("an event item", e)),
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
    pub async fn put_new(&self, env: &Envelope, json: &str) -> Result<Stored> {
        let received = received_ms(env);
        let cutoff = received - IDEMPOTENCY_WINDOW.as_millis() as i64;
        let expires = env.received_at.unix_timestamp() + i64::from(self.ttl_days) * 86_400;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(env.id.as_str().to_owned()))
            .item("name", AttributeValue::S(env.name.as_str().to_owned()))
            .item("source", AttributeValue::S(env.source.clone()))
            .item(
                "received_at",
                AttributeValue::S(
                    env.received_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                ),
            )
            .item("envelope", AttributeValue::S(json.to_owned()))
            .item("expires_at", AttributeValue::N(expires.to_string()))
            .item("received_ms", AttributeValue::N(received.to_string()))
            .item("queued", AttributeValue::Bool(false))
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
                    .item
                    .unwrap_or_default();
                let original_json = match item.get("envelope") {
                    Some(AttributeValue::S(s)) => s.clone(),
                    _ => json.to_owned(),
                };
                let queued = matches!(item.get("queued"), Some(AttributeValue::Bool(true)));
                Ok(Stored::Duplicate {
                    original_json,
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
        if let Some(AttributeValue::N(n)) = item.get("expires_at") {
            if n.parse::<i64>()
                .is_ok_and(|t| t < time::OffsetDateTime::now_utc().unix_timestamp())
            {
                return Ok(None);
            }
        }
        match item.get("envelope") {
            Some(AttributeValue::S(s)) => serde_json::from_str(s)
                .map(Some)
                .map_err(|e| Error::invalid("the stored event", e)),
            _ => Err(Error::invalid("the stored event", "it has no envelope")),
        }
    }
}

fn received_ms(env: &Envelope) -> i64 {
    (env.received_at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn request_index(w: &WriteRequest, pending: &HashMap<String, usize>) -> Option<usize> {
    match w.put_request.as_ref()?.item.get("id")? {
        AttributeValue::S(id) => pending.get(id).copied(),
        _ => None,
    }
}
