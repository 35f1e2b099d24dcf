//! `GET /v1/events/{id}?exp=…&sig=…`: the whole stored event behind a signed link (the
//! link a truncated Slack message carries). A missing, tampered or expired link is 403; an
//! event past its retention is 404; storage failing is 503.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::ingress::answer::{error, respond};
use crate::ingress::IngestDeps;

/// The signed link's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LinkQuery {
    exp: Option<String>,
    sig: Option<String>,
}

/// Handles `GET /v1/events/{id}`; `uri` gives the id as sent (percent-encoded).
pub(crate) async fn get(
    State(deps): State<std::sync::Arc<IngestDeps>>,
    uri: http::Uri,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let raw_id = uri.path().strip_prefix("/v1/events/").unwrap_or_default();
    let query = query.map(|Query(q)| q).unwrap_or_default();
    stored_event(raw_id, &query, &deps).await
}

async fn stored_event(raw_id: &str, query: &LinkQuery, deps: &IngestDeps) -> Response {
    let Some(signer) = &deps.links else {
        return error(
            404,
            "not_found",
            "event links are not enabled in this deployment",
            None,
        );
    };
    let Some(id) = crate::event_links::percent_decode_segment(raw_id) else {
        return error(403, "forbidden", "the link is not valid", None);
    };
    if let Err(e) = signer.verify(
        &id,
        query.exp.as_deref(),
        query.sig.as_deref(),
        OffsetDateTime::now_utc().unix_timestamp(),
    ) {
        return error(403, "forbidden", &e.to_string(), None);
    }
    match deps.store.get(&id).await {
        Ok(Some(envelope)) => match serde_json::to_value(&envelope) {
            Ok(v) => respond(200, &v),
            Err(_) => error(500, "internal", "the stored event could not be read", None),
        },
        Ok(None) => error(
            404,
            "not_found",
            "the event is no longer stored (past its retention)",
            None,
        ),
        Err(e) => {
            tracing::error!(event_id = %id, error = %e, "reading a stored event failed");
            error(503, "unavailable", "could not read the event; retry", None)
        }
    }
}
