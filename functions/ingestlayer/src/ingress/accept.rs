//! Checking and accepting events, the core both `POST /v1/events` and signed webhooks share:
//! an event is checked against the limits and its schema and becomes an envelope
//! ([`check_incoming`]), then is stored and enqueued ([`accept`]); it counts as accepted only
//! when both succeeded.

use futures_util::StreamExt;
use serde_json::Value;
use time::OffsetDateTime;

use crate::aws::sqs::{send_all, Outgoing};
use crate::event::incoming::parse_incoming;
use crate::event::{Envelope, FieldError, IncomingEvent};
use crate::ingress::event_store::Stored;
use crate::ingress::{IngestDeps, MAX_EVENT_BYTES, MAX_EVENT_FIELDS};

/// A checked event: the envelope, its JSON, and whether the client gave its id; or the
/// status, code and every problem found.
pub(crate) type Checked = Result<(Envelope, String, bool), (u16, &'static str, Vec<FieldError>)>;

pub(crate) fn check(
    value: &Value,
    at: &str,
    source: &str,
    deps: &IngestDeps,
    now: OffsetDateTime,
    idempotency_key: Option<&str>,
) -> Checked {
    let mut incoming = parse_incoming(value, at).map_err(|e| (400, "invalid_event", e))?;
    if let (None, Some(key)) = (&incoming.id, idempotency_key) {
        let id = crate::event::ClientId::parse(key).map_err(|e| {
            (
                400,
                "invalid_event",
                vec![FieldError::new(at, format!("Idempotency-Key header: {e}"))],
            )
        })?;
        incoming.id = Some(id);
    }
    check_incoming(incoming, at, source, deps, now)
}

/// Checks a parsed event against the limits and its schema and makes its envelope.
pub(crate) fn check_incoming(
    incoming: IncomingEvent,
    at: &str,
    source: &str,
    deps: &IngestDeps,
    now: OffsetDateTime,
) -> Checked {
    let client_id = incoming.id.is_some();
    let fields = crate::event::incoming::field_count(&incoming.data);
    if fields > MAX_EVENT_FIELDS {
        return Err((
            400,
            "too_many_fields",
            vec![FieldError::new(
                format!("{at}/data"),
                format!("the event has {fields} fields; the limit is {MAX_EVENT_FIELDS}"),
            )],
        ));
    }
    deps.schemas
        .validate(&incoming.name, &incoming.data, &format!("{at}/data"))
        .map_err(|e| (400, "schema_violation", e))?;
    let envelope = Envelope::accept(incoming, source, now);
    let json = serde_json::to_string(&envelope).map_err(|e| {
        (
            400,
            "invalid_event",
            vec![FieldError::new(at, e.to_string())],
        )
    })?;
    let depth = crate::event::incoming::nesting_depth(&json);
    if depth > crate::event::incoming::MAX_STORED_DEPTH {
        return Err((
            400,
            "too_deeply_nested",
            vec![FieldError::new(
                at,
                format!(
                    "the event nests {depth} levels deep as stored (its data sits inside the stored event); the limit is {}",
                    crate::event::incoming::MAX_STORED_DEPTH
                ),
            )],
        ));
    }
    if json.len() > MAX_EVENT_BYTES {
        return Err((
            413,
            "event_too_large",
            vec![FieldError::new(
                at,
                format!(
                    "the event is {} bytes stored; the limit is {MAX_EVENT_BYTES}",
                    json.len()
                ),
            )],
        ));
    }
    Ok((envelope, json, client_id))
}

/// Stores then enqueues; an event counts as accepted only when both succeeded. An event
/// with a client-given id seen within the idempotency window is a duplicate (`Ok(true)`): not
/// queued again, unless its first attempt never reached the queue. `key_id` is the public id
/// of the API key that sent them (none for a signed webhook).
pub(crate) async fn accept(
    events: &[(Envelope, String, bool)],
    key_id: Option<&str>,
    deps: &IngestDeps,
) -> Vec<crate::error::Result<bool>> {
    let mut results: Vec<crate::error::Result<bool>> = events.iter().map(|_| Ok(false)).collect();
    // What to queue, per event: its own JSON, or a duplicate's original that never got there.
    let mut bodies: Vec<Option<String>> = vec![None; events.len()];
    let server_ids: Vec<usize> = (0..events.len()).filter(|&i| !events[i].2).collect();
    let refs: Vec<(&Envelope, &str)> = server_ids
        .iter()
        .map(|&i| (&events[i].0, events[i].1.as_str()))
        .collect();
    for (&i, r) in server_ids
        .iter()
        .zip(deps.store.put_all(&refs, key_id).await)
    {
        match r {
            Ok(()) => bodies[i] = Some(events[i].1.clone()),
            Err(e) => results[i] = Err(e),
        }
    }
    // Client-given ids need one conditional write each; they run side by side.
    let client_ids: Vec<usize> = (0..events.len()).filter(|&i| events[i].2).collect();
    let stored: Vec<_> = futures_util::stream::iter(
        client_ids
            .clone()
            .into_iter()
            .map(|i| deps.store.put_new(&events[i].0, &events[i].1, key_id)),
    )
    .buffered(crate::ingress::event_store::CONCURRENT_WRITES)
    .collect()
    .await;
    for (&i, outcome) in client_ids.iter().zip(stored) {
        match outcome {
            Ok(Stored::New) => bodies[i] = Some(events[i].1.clone()),
            Ok(Stored::Duplicate {
                original_json,
                queued,
            }) => {
                results[i] = Ok(true);
                tracing::info!(event_id = %events[i].0.id, queued, "duplicate event id within the idempotency window");
                if !queued {
                    bodies[i] = Some(original_json);
                }
            }
            Err(e) => results[i] = Err(e),
        }
    }
    let to_send: Vec<usize> = (0..events.len()).filter(|&i| bodies[i].is_some()).collect();
    let messages: Vec<Outgoing> = to_send
        .iter()
        .map(|&i| Outgoing {
            body: bodies[i].clone().unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    let sent = send_all(&deps.sqs, &deps.queue_url, &messages).await;
    let mut queued_ids = Vec::new();
    for (&i, r) in to_send.iter().zip(sent) {
        match r {
            // Only client-given ids can come back as duplicates; only they need the mark.
            Ok(()) if events[i].2 => queued_ids.push(events[i].0.id.as_str().to_owned()),
            Ok(()) => {}
            Err(e) => results[i] = Err(e),
        }
    }
    deps.store.mark_queued(queued_ids).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let event_ids: Vec<&str> = events.iter().map(|(e, _, _)| e.id.as_str()).collect();
    tracing::info!(
        accepted,
        failed = events.len() - accepted,
        event_ids = ?event_ids,
        "events accepted"
    );
    crate::journey::metrics::accepted(accepted);
    results
}
