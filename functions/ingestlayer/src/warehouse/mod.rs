//! The warehouse function: every event the pipeline function routed (posted or filtered
//! out) into the user's Postgres, once, enriched so that usage adds up per account.
//!
//! A batch of the warehouse queue (up to 100 messages, each carrying the events of one
//! pipeline invocation, [`crate::routing::handoff`]) becomes one `INSERT` of all its events
//! ([`postgres`]), after one entity lookup for all of them: `user#<user_id>` and then
//! `account#<account>` from the entities table, the same items `enrich.entity` reads.
//!
//! What can go wrong, and what happens:
//! - **The database is down or unreachable**: every message of the batch fails and is
//!   handed back to the queue later each time ([`RETRY_SCHEDULE`], by receive count), so an
//!   outage of hours is ridden out and the DLQ sees nothing before the retries are spent.
//! - **Postgres refuses one event's data** (a value it cannot hold, an id too long for an
//!   index): that event alone is parked in the warehouse DLQ with the reason; the others
//!   are written.
//! - **A message is not a warehouse message**: it is parked with the reason.
//! - **A message comes twice** (SQS delivers at least once, a redrive, a backfill): its
//!   events are already there and are skipped.

pub mod postgres;

use std::collections::{HashMap, HashSet};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::{Map, Value};

use crate::aws::sqs::{batch_response, send_all, Outgoing};
use crate::config::WarehouseConfig;
use crate::error::Result;
use crate::routing::enrich::{entity_key, DynamoEntities, EntityStore};
use crate::routing::handoff::{Handoff, HandoffBatch};
use crate::warehouse::postgres::{without_nul, Row, Target, Warehouse};

/// Seconds before a batch the database could not take comes back, by receive count: about
/// 9 hours of retries over the queue's 40 receives before the DLQ.
pub const RETRY_SCHEDULE: &[u64] = &[2, 5, 10, 30, 60, 120, 300, 600, 900];

/// Message attributes of a parked message.
pub mod park_attr {
    pub const REASON: &str = "ingestlayer_park_reason";
    pub const EVENT_ID: &str = "ingestlayer_event_id";
}

/// What the warehouse handler holds across invocations.
pub struct WarehouseDeps {
    pub db: Warehouse,
    pub entities: DynamoEntities,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
}

impl WarehouseDeps {
    /// The one constructor, used by the function's main.rs, `make dev` and the tests: reads
    /// the connection string from its secret, then connects and migrates. A database that
    /// cannot be reached does not fail the cold start: the batches wait for it.
    pub async fn load(sdk: &aws_config::SdkConfig, cfg: &WarehouseConfig) -> Result<Self> {
        let secret = crate::aws::secrets::read_secret(
            &aws_sdk_secretsmanager::Client::new(sdk),
            &cfg.secret_arn,
            "the warehouse connection secret",
        )
        .await?;
        let deps = Self::with_target(sdk, cfg, Target::from_secret(&secret)?);
        match deps.db.ready().await {
            Ok(version) => {
                tracing::info!(database = %deps.db.target.describe, version, "warehouse ready")
            }
            Err(e) => {
                tracing::warn!(error = %e, "the warehouse database is not reachable yet; batches are retried until it is")
            }
        }
        Ok(deps)
    }

    /// The clients, for a database given directly.
    pub fn with_target(sdk: &aws_config::SdkConfig, cfg: &WarehouseConfig, target: Target) -> Self {
        Self {
            db: Warehouse::new(target),
            entities: DynamoEntities {
                client: aws_sdk_dynamodb::Client::new(sdk),
                table: cfg.entities_table.clone(),
            },
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: cfg.queue_url.clone(),
            dlq_url: cfg.dlq_url.clone(),
        }
    }
}

/// Handles one batch of the warehouse queue.
pub async fn handle(event: SqsEvent, deps: &WarehouseDeps) -> SqsBatchResponse {
    handle_with(event, deps, &deps.entities).await
}

/// An event of the batch and the message it came in.
struct Carried {
    message: usize,
    handoff: Handoff,
}

/// [`handle`] with another entity store.
pub async fn handle_with<S: EntityStore>(
    event: SqsEvent,
    deps: &WarehouseDeps,
    store: &S,
) -> SqsBatchResponse {
    let records = event.records;
    let mut failed = vec![false; records.len()];
    let mut carried: Vec<Carried> = Vec::new();
    for (m, record) in records.iter().enumerate() {
        match record
            .body
            .as_deref()
            .map(serde_json::from_str::<HandoffBatch>)
        {
            Some(Ok(batch)) => carried.extend(batch.events.into_iter().map(|handoff| Carried {
                message: m,
                handoff,
            })),
            Some(Err(e)) => {
                let reason = format!("not a warehouse message: {e}");
                failed[m] =
                    !park(deps, record.body.clone().unwrap_or_default(), None, &reason).await;
            }
            None => {
                failed[m] = !park(deps, String::new(), None, "a message without a body").await;
            }
        }
    }
    if !carried.is_empty() {
        let handoffs: Vec<&Handoff> = carried.iter().map(|c| &c.handoff).collect();
        let written = match rows(&handoffs, store).await {
            Ok(rows) => deps.db.write(&rows).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(w) => {
                tracing::info!(
                    events = carried.len(),
                    inserted = w.inserted,
                    already_there = carried.len() as u64 - w.inserted - w.refused.len() as u64,
                    refused = w.refused.len(),
                    "batch written"
                );
                for (i, reason) in &w.refused {
                    let c = &carried[*i];
                    let body = serde_json::to_string(&HandoffBatch {
                        events: vec![c.handoff.clone()],
                    })
                    .unwrap_or_default();
                    let reason = format!("Postgres refused the event: {reason}");
                    if !park(deps, body, Some(c.handoff.event.id.as_str()), &reason).await {
                        failed[c.message] = true;
                    }
                }
            }
            Err(e) => {
                tracing::error!(events = carried.len(), error = %e, "the warehouse could not take the batch; it comes back later");
                let mut later = Vec::new();
                for m in carried.iter().map(|c| c.message).collect::<HashSet<_>>() {
                    failed[m] = true;
                    later.push(hand_back_after(&records[m]));
                }
                crate::aws::sqs::hand_back(&deps.sqs, &deps.queue_url, &later).await;
            }
        }
    }
    batch_response(
        records
            .iter()
            .zip(failed)
            .filter(|(_, f)| *f)
            .map(|(r, _)| r.message_id.clone().unwrap_or_default())
            .collect(),
    )
}

/// A failed message's receipt handle and when it should come back.
fn hand_back_after(record: &SqsMessage) -> (String, i32) {
    let count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(1);
    let delay = crate::delivery::retry::retry_delay(count, RETRY_SCHEDULE);
    (
        record.receipt_handle.clone().unwrap_or_default(),
        crate::delivery::retry::visibility_secs(delay),
    )
}

/// Sends `body` to the warehouse DLQ with its reason; whether that worked.
async fn park(deps: &WarehouseDeps, body: String, event_id: Option<&str>, reason: &str) -> bool {
    let mut attributes = HashMap::from([(park_attr::REASON.to_owned(), truncate(reason, 1000))]);
    if let Some(id) = event_id {
        attributes.insert(park_attr::EVENT_ID.to_owned(), id.to_owned());
    }
    let message = Outgoing {
        body: if body.is_empty() { "{}".into() } else { body },
        group_id: None,
        dedup_id: None,
        attributes,
    };
    match send_all(&deps.sqs, &deps.dlq_url, std::slice::from_ref(&message))
        .await
        .remove(0)
    {
        Ok(()) => {
            tracing::error!(event_id = event_id.unwrap_or("?"), reason = %reason, outcome = "parked", "parked in the warehouse DLQ");
            true
        }
        Err(e) => {
            tracing::error!(reason = %reason, error = %e, "could not park; the message stays queued");
            false
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// The rows of the events, enriched with one lookup of their users and one of their
/// accounts.
pub async fn rows<S: EntityStore>(handoffs: &[&Handoff], store: &S) -> Result<Vec<Row>> {
    let user_keys: Vec<String> = handoffs
        .iter()
        .filter_map(|h| entity_key("user", h.event.data.get("user_id")))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let users = if user_keys.is_empty() {
        HashMap::new()
    } else {
        store.get_many(&user_keys).await?
    };
    let account_of = |h: &Handoff| -> Option<String> {
        scalar(h.event.data.get("account_id"))
            .or_else(|| scalar(h.event.data.get("account")))
            .or_else(|| {
                let user = users.get(&entity_key("user", h.event.data.get("user_id"))?)?;
                scalar(user.get("account")).or_else(|| scalar(user.get("account_id")))
            })
    };
    let account_keys: Vec<String> = handoffs
        .iter()
        .filter_map(|h| account_of(h).map(|a| format!("account#{a}")))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let accounts = if account_keys.is_empty() {
        HashMap::new()
    } else {
        store.get_many(&account_keys).await?
    };
    Ok(handoffs
        .iter()
        .map(|h| {
            let user = entity_key("user", h.event.data.get("user_id")).and_then(|k| users.get(&k));
            let account_id = account_of(h);
            let account = account_id
                .as_ref()
                .and_then(|a| accounts.get(&format!("account#{a}")));
            row(h, user, account_id, account)
        })
        .collect())
}

/// One event's row: the plan the event carries, else its account's, else its user's.
fn row(
    h: &Handoff,
    user: Option<&Map<String, Value>>,
    account_id: Option<String>,
    account: Option<&Map<String, Value>>,
) -> Row {
    let e = &h.event;
    let plan = scalar(e.data.get("plan"))
        .or_else(|| account.and_then(|a| scalar(a.get("plan"))))
        .or_else(|| user.and_then(|u| scalar(u.get("plan"))));
    let mut entities = Map::new();
    if let Some(u) = user {
        entities.insert("user".into(), Value::Object(u.clone()));
    }
    if let Some(a) = account {
        entities.insert("account".into(), Value::Object(a.clone()));
    }
    let mut data = e.data.clone();
    without_nul(&mut data);
    let mut entities = Value::Object(entities);
    without_nul(&mut entities);
    let mut pipelines = serde_json::to_value(&h.pipelines).unwrap_or(Value::Array(Vec::new()));
    without_nul(&mut pipelines);
    let text = |s: &str| s.replace('\0', "\u{FFFD}");
    Row {
        id: text(e.id.as_str()),
        name: text(e.name.as_str()),
        source: text(&e.source),
        received_at: e.received_at,
        occurred_at: e.time,
        user_id: scalar(e.data.get("user_id")).map(|s| text(&s)),
        account_id: account_id.map(|s| text(&s)),
        plan: plan.map(|s| text(&s)),
        data,
        entities,
        pipelines,
    }
}

/// A string or a number as text; anything else is absent.
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Entities(HashMap<String, Map<String, Value>>);

    impl EntityStore for Entities {
        async fn get_many(&self, keys: &[String]) -> Result<HashMap<String, Map<String, Value>>> {
            Ok(keys
                .iter()
                .filter_map(|k| self.0.get(k).map(|v| (k.clone(), v.clone())))
                .collect())
        }
    }

    fn handoff(data: Value) -> Handoff {
        Handoff {
            event: serde_json::from_value(json!({
                "id": ulid::Ulid::new().to_string(), "name": "feature.used",
                "received_at": "2026-11-30T10:00:00Z", "source": "web", "data": data
            }))
            .unwrap(),
            pipelines: vec![],
        }
    }

    fn store() -> Entities {
        let obj = |v: Value| v.as_object().unwrap().clone();
        Entities(HashMap::from([
            (
                "user#u_42".into(),
                obj(json!({"pk": "user#u_42", "account": "acme", "plan": "pro"})),
            ),
            (
                "user#u_7".into(),
                obj(json!({"pk": "user#u_7", "account": "globex"})),
            ),
            (
                "account#globex".into(),
                obj(json!({"pk": "account#globex", "plan": "free"})),
            ),
        ]))
    }

    #[tokio::test]
    async fn accounts_and_plans_come_from_the_event_then_the_entities() {
        let hs = [
            handoff(json!({"user_id": "u_42", "feature": "api"})),
            handoff(json!({"user_id": "u_7", "feature": "export"})),
            handoff(json!({"user_id": "u_7", "account_id": "initech", "plan": "team"})),
            handoff(json!({"user_id": 99, "feature": "api"})),
            handoff(json!({"feature": "api", "note": "bad\u{0}byte"})),
        ];
        let refs: Vec<&Handoff> = hs.iter().collect();
        let rows = rows(&refs, &store()).await.unwrap();
        let got: Vec<(Option<&str>, Option<&str>, Option<&str>)> = rows
            .iter()
            .map(|r| {
                (
                    r.user_id.as_deref(),
                    r.account_id.as_deref(),
                    r.plan.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("u_42"), Some("acme"), Some("pro")),
                (Some("u_7"), Some("globex"), Some("free")),
                (Some("u_7"), Some("initech"), Some("team")),
                (Some("99"), None, None),
                (None, None, None),
            ]
        );
        assert_eq!(rows[1].entities["account"]["plan"], "free");
        assert_eq!(rows[1].entities["user"]["account"], "globex");
        assert_eq!(rows[4].data["note"], "bad\u{FFFD}byte");
    }

    #[test]
    fn retries_back_off_to_a_quarter_hour() {
        let at = |n: usize| {
            let mut r = SqsMessage::default();
            r.attributes
                .insert("ApproximateReceiveCount".into(), n.to_string());
            hand_back_after(&r).1
        };
        assert!((1..=3).contains(&at(1)));
        assert!(at(5) >= 48 && at(5) <= 72);
        assert!(at(40) >= 720 && at(40) <= 1080);
    }
}
