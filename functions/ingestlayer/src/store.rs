//! The events table: every accepted event stored whole, with a TTL.
//!
//! Item: `id` (S), `name` (S), `source` (S), `received_at` (S, RFC 3339), `envelope`
//! (S, the whole envelope as JSON, so the payload is kept byte for byte) and `expires_at`
//! (N, epoch seconds; DynamoDB TTL deletes lazily, so readers check it themselves).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use crate::event::Envelope;

const BATCH_WRITE_MAX: usize = 25;
const ATTEMPTS: u32 = 6;

#[derive(Debug, Clone)]
pub struct EventStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub ttl_days: u32,
}

impl EventStore {
    /// Stores each (envelope, its JSON); one result per event, in order.
    #[tracing::instrument(skip_all, fields(events = events.len(), table = %self.table))]
    pub async fn put_all(&self, events: &[(&Envelope, &str)]) -> Vec<Result<(), String>> {
        let mut results: Vec<Result<(), String>> = vec![Ok(()); events.len()];
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
                    .item("expires_at", AttributeValue::N(expires.to_string()))
                    .build();
                match put {
                    Ok(p) => {
                        pending.insert(env.id.as_str().to_owned(), i);
                        requests.push(WriteRequest::builder().put_request(p).build());
                    }
                    Err(e) => results[i] = Err(e.to_string()),
                }
            }
            let mut attempt = 0;
            while !requests.is_empty() {
                if attempt >= ATTEMPTS {
                    for w in &requests {
                        if let Some(i) = request_index(w, &pending) {
                            results[i] = Err("DynamoDB left the write unprocessed".into());
                        }
                    }
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                attempt += 1;
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
                        let message = aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string();
                        for &i in chunk {
                            if results[i].is_ok() {
                                results[i] = Err(message.clone());
                            }
                        }
                        break;
                    }
                }
            }
        }
        results
    }

    /// Reads one stored event; `None` when absent or past its TTL.
    pub async fn get(&self, id: &str) -> Result<Option<Envelope>, String> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
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
            Some(AttributeValue::S(s)) => {
                serde_json::from_str(s).map(Some).map_err(|e| e.to_string())
            }
            _ => Err("stored event has no envelope".into()),
        }
    }
}

fn request_index(w: &WriteRequest, pending: &HashMap<String, usize>) -> Option<usize> {
    match w.put_request.as_ref()?.item.get("id")? {
        AttributeValue::S(id) => pending.get(id).copied(),
        _ => None,
    }
}
