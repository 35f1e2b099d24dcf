//! `POST /v1/webhooks/{source}`: a provider's signed delivery, verified and stored as an
//! event (part of the ingest function).
//!
//! Answers: 202 with the event id (`webhook:<source>:<delivery id>`, so a redelivery within
//! 24 h is `"duplicate": true` and not processed again); 200 for deliveries that are not events
//! (GitHub's `ping`); 401 with the reason for any missing header, stale timestamp or
//! signature mismatch, with nothing stored; 400 when a verified payload cannot be an event;
//! 404 for an unknown source; 405; 413 above [`MAX_EVENT_BODY_BYTES`]; 503 (the sender
//! retries) when the source's secret or storage cannot be read.

pub mod payload;
pub mod sources;
pub mod verify;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::event::{ClientId, EventName, FieldError, IncomingEvent};
use crate::ingress::accept::{accept, check_incoming};
use crate::ingress::answer::{error, refused, respond};
use crate::ingress::webhooks::payload::{delivery_client_id, map, origin};
use crate::ingress::webhooks::verify::Rejection;
use crate::ingress::{IngestDeps, MAX_EVENT_BODY_BYTES};

/// `POST /v1/webhooks/{source}`; `uri` gives the source as sent.
pub(crate) async fn post(
    State(deps): State<std::sync::Arc<IngestDeps>>,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source = uri.path().strip_prefix("/v1/webhooks/").unwrap_or_default();
    handle(source, &headers, &body, &deps).await
}

/// Handles one delivery to `source` (the path segment after `/v1/webhooks/`).
async fn handle(source: &str, headers: &HeaderMap, body: &[u8], deps: &IngestDeps) -> Response {
    let not_found = || {
        error(
            404,
            "not_found",
            "no webhook source by that name; create it with `ingestlayer webhooks add`",
            None,
        )
    };
    let Some(sources) = &deps.webhooks else {
        return not_found();
    };
    if body.len() > MAX_EVENT_BODY_BYTES {
        return error(
            413,
            "payload_too_large",
            &format!(
                "the body is {} bytes; a webhook takes at most {MAX_EVENT_BODY_BYTES}",
                body.len()
            ),
            None,
        );
    }
    let mut src = match sources.get(source).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(),
        // The source's secret holds no usable configuration: retrying cannot help.
        Err(e @ crate::error::Error::Invalid { .. }) => {
            tracing::error!(source, error = %e, "webhook source is misconfigured");
            return error(
                503,
                "source_misconfigured",
                "this webhook source is misconfigured; its owner has been told in the logs",
                None,
            );
        }
        Err(e) => {
            tracing::error!(source, error = %e, "reading the webhook source failed");
            return error(
                503,
                "unavailable",
                "could not check the signature; retry",
                None,
            );
        }
    };
    let now = OffsetDateTime::now_utc();
    let mut verdict = src.verify(headers, body, now.unix_timestamp());
    if verdict == Err(Rejection::Mismatch) {
        // Perhaps the sender already signs with a secret added since the cache was filled.
        if let Ok(Some(fresh)) = sources.reload(source).await {
            verdict = fresh.verify(headers, body, now.unix_timestamp());
            src = fresh;
        }
    }
    let verified = match verdict {
        Ok(v) => v,
        Err(reason) => {
            tracing::warn!(source, provider = src.provider.as_str(), %reason, "webhook refused");
            return error(401, "invalid_signature", &reason.to_string(), None);
        }
    };
    let payload: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                400,
                "malformed_json",
                &format!("the body is not valid JSON: {e}"),
                None,
            )
        }
    };
    let mapped = match map(&src, headers, &verified, payload) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return respond(
                200,
                &json!({"status": "ignored", "reason": "not an event (GitHub ping)"}),
            )
        }
        Err(e) => return error(400, "invalid_event", &e.to_string(), None),
    };
    let incoming = match (
        EventName::parse(&mapped.name),
        ClientId::parse(&delivery_client_id(&mapped.delivery_id)),
    ) {
        (Ok(name), Ok(id)) => IncomingEvent {
            name,
            id: Some(id),
            time: mapped.time,
            data: mapped.data,
            cloudevent: None,
            webhook: Some(mapped.context),
        },
        (Err(e), _) => {
            let why = format!("the payload's event type: {e}");
            return refused(400, "invalid_event", vec![FieldError::new("", why)]);
        }
        (_, Err(e)) => {
            let why = format!("the delivery id: {e}");
            return refused(400, "invalid_event", vec![FieldError::new("", why)]);
        }
    };
    let (envelope, json, client_id) = match check_incoming(incoming, "", &origin(source), deps, now)
    {
        Ok(c) => c,
        Err((status, code, details)) => return refused(status, code, details),
    };
    let name = envelope.name.as_str().to_owned();
    match accept(&[(envelope.clone(), json, client_id)], None, deps)
        .await
        .remove(0)
    {
        Ok(duplicate) => {
            tracing::info!(source, event_id = %envelope.id, event = %name, duplicate, "webhook accepted");
            respond(
                202,
                &json!({"id": envelope.id.as_str(), "status": "accepted", "duplicate": duplicate, "name": name}),
            )
        }
        Err(e) => {
            tracing::error!(source, event_id = %envelope.id, error = %e, "could not accept webhook");
            error(
                503,
                "unavailable",
                "the event could not be stored or queued; redeliver",
                None,
            )
        }
    }
}
