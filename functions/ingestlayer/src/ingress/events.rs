//! `POST /v1/events` and `POST /v1/events/batch`: authenticate the API key (`Authorization:
//! Bearer <key>`), read the JSON body (whatever its Content-Type says, curl's `-d` default
//! included), then check and accept each event. A batch answers per item and accepts its
//! valid events even when others fail.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use secrecy::SecretString;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::event::{Envelope, FieldError};
use crate::ingress::accept::{accept, check};
use crate::ingress::answer::{error, refused, respond, summary, unauthorized};
use crate::ingress::{IngestDeps, MAX_BATCH_BODY_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BODY_BYTES};

/// `POST /v1/events`.
pub(crate) async fn post_event(
    State(deps): State<std::sync::Arc<IngestDeps>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    post(&deps, &headers, &body, false).await
}

/// `POST /v1/events/batch`.
pub(crate) async fn post_batch(
    State(deps): State<std::sync::Arc<IngestDeps>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    post(&deps, &headers, &body, true).await
}

async fn post(deps: &IngestDeps, headers: &HeaderMap, body: &[u8], batch: bool) -> Response {
    let path = if batch {
        "/v1/events/batch"
    } else {
        "/v1/events"
    };
    let (source, key_id) = match authenticate(headers, deps).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let limit = if batch {
        MAX_BATCH_BODY_BYTES
    } else {
        MAX_EVENT_BODY_BYTES
    };
    if body.len() > limit {
        return error(
            413,
            "payload_too_large",
            &format!(
                "the body is {} bytes; {path} takes at most {limit}",
                body.len()
            ),
            None,
        );
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if body.is_empty() => {
            return error(
                400,
                "malformed_json",
                "the body is empty; send a JSON event",
                None,
            );
        }
        Err(e) => {
            return error(
                400,
                "malformed_json",
                &format!("the body is not valid JSON: {e}"),
                None,
            )
        }
    };
    let idempotency_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.trim().to_owned()).filter(|v| !v.is_empty()),
        Some(Err(_)) => {
            return refused(
                400,
                "invalid_event",
                vec![FieldError::new(
                    "",
                    "Idempotency-Key header: may hold only visible ASCII characters",
                )],
            );
        }
    };
    if batch {
        ingest_batch(&value, &source, &key_id, deps).await
    } else {
        ingest_one(&value, &source, &key_id, idempotency_key.as_deref(), deps).await
    }
}

/// The key's source name and public id (`il_…`), or the answer refusing it.
async fn authenticate(
    headers: &HeaderMap,
    deps: &IngestDeps,
) -> Result<(String, String), Response> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(key) = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty())
    else {
        return Err(unauthorized(
            "send your API key as Authorization: Bearer <key>",
        ));
    };
    match deps
        .keys
        .source_of(&SecretString::from(key.to_owned()))
        .await
    {
        Ok(Some(source)) if crate::ingress::api_keys::valid_source_name(&source) => {
            Ok((source, crate::ingress::api_keys::key_id(key)))
        }
        Ok(Some(source)) => {
            tracing::error!(source = %source, "an API key's source name is not a valid source name");
            Err(error(
                403,
                "key_source_invalid",
                &format!("this API key's source name {source:?} cannot send events (`webhook` is reserved; use letters, digits, - _ .): create a new key with `ingestlayer keys create`"),
                None,
            ))
        }
        Ok(None) => Err(unauthorized("the API key is unknown or revoked")),
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            Err(error(
                503,
                "unavailable",
                "could not check the API key; retry",
                None,
            ))
        }
    }
}

async fn ingest_one(
    value: &Value,
    source: &str,
    key_id: &str,
    idempotency_key: Option<&str>,
    deps: &IngestDeps,
) -> Response {
    match check(
        value,
        "",
        source,
        deps,
        OffsetDateTime::now_utc(),
        idempotency_key,
    ) {
        Err((status, code, details)) => refused(status, code, details),
        Ok((envelope, json, client_id)) => {
            match accept(&[(envelope.clone(), json, client_id)], Some(key_id), deps)
                .await
                .remove(0)
            {
                Ok(duplicate) => respond(
                    202,
                    &json!({"id": envelope.id.as_str(), "status": "accepted", "duplicate": duplicate}),
                ),
                Err(e) => {
                    tracing::error!(event_id = %envelope.id, error = %e, "could not accept event");
                    error(
                        503,
                        "unavailable",
                        "the event could not be stored or queued; retry with the same id",
                        None,
                    )
                }
            }
        }
    }
}

async fn ingest_batch(value: &Value, source: &str, key_id: &str, deps: &IngestDeps) -> Response {
    let (items, at) = match value {
        Value::Array(items) => (items, ""),
        Value::Object(o) => match o.get("events") {
            Some(Value::Array(items)) => (items, "/events"),
            _ => {
                return error(
                    400,
                    "invalid_batch",
                    "a batch is {\"events\": [ ... ]} (or a JSON array of events)",
                    None,
                )
            }
        },
        _ => {
            return error(
                400,
                "invalid_batch",
                "a batch is {\"events\": [ ... ]} (or a JSON array of events)",
                None,
            )
        }
    };
    if items.is_empty() {
        return error(400, "invalid_batch", "the batch has no events", None);
    }
    if items.len() > MAX_BATCH_EVENTS {
        return error(
            413,
            "batch_too_large",
            &format!(
                "the batch has {} events; the limit is {MAX_BATCH_EVENTS}",
                items.len()
            ),
            None,
        );
    }
    let now = OffsetDateTime::now_utc();
    let mut results: Vec<Value> = Vec::with_capacity(items.len());
    let mut ready: Vec<(Envelope, String, bool)> = Vec::new();
    let mut ready_index: Vec<usize> = Vec::new();
    // An id seen earlier in the same batch shares that event's outcome, as a duplicate.
    let mut first_with_id: HashMap<crate::event::EventId, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let pointer = format!("{at}/{i}");
        match check(item, &pointer, source, deps, now, None) {
            Ok((envelope, json, client_id)) => {
                if let Some(&first) = first_with_id.get(&envelope.id) {
                    repeats.push((i, first));
                    results.push(Value::Null);
                    continue;
                }
                first_with_id.insert(envelope.id.clone(), i);
                results.push(Value::Null);
                ready_index.push(i);
                ready.push((envelope, json, client_id));
            }
            Err((_, code, details)) => {
                crate::journey::metrics::refused(code);
                results.push(json!({"index": i, "status": "rejected", "code": code,
                "message": summary(code, &details), "errors": details}));
            }
        }
    }
    let outcomes = accept(&ready, Some(key_id), deps).await;
    let (mut accepted, mut failed) = (0, 0);
    for ((i, (envelope, _, _)), outcome) in ready_index.into_iter().zip(&ready).zip(outcomes) {
        results[i] = match outcome {
            Ok(duplicate) => {
                accepted += 1;
                json!({"index": i, "status": "accepted", "id": envelope.id.as_str(), "duplicate": duplicate})
            }
            Err(e) => {
                failed += 1;
                tracing::error!(event_id = %envelope.id, error = %e, "could not accept event");
                json!({"index": i, "status": "failed", "code": "unavailable", "retryable": true,
                    "message": "could not be stored or queued; retry this event with the same id"})
            }
        };
    }
    for (i, first) in repeats {
        let mut outcome = results[first].clone();
        outcome["index"] = json!(i);
        if outcome["status"] == "accepted" {
            accepted += 1;
            outcome["duplicate"] = json!(true);
        } else {
            failed += 1;
        }
        results[i] = outcome;
    }
    let rejected = items.len() - accepted - failed;
    let status = if accepted > 0 {
        202
    } else if failed > 0 {
        503
    } else {
        400
    };
    respond(
        status,
        &json!({"accepted": accepted, "rejected": rejected, "failed": failed, "results": results}),
    )
}
