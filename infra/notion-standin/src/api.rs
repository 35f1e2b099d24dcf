//! HTTP: Notion's API under `/v1` and the control endpoints under `/_standin`. Handlers
//! translate requests into [`Route`]s and Notion's answers into responses; the order of checks
//! is authentication, `Notion-Version`, the rate limit, the URL, the JSON body, faults, then
//! the operation itself.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::fault::FaultKind;
use crate::page::PAYLOAD_MAX_BYTES;
use crate::reply::NotionError;
use crate::schema::PropertyType;
use crate::state::{Route, Shared};
use crate::{version, Fault};

/// Bodies up to this size are read, so that one over Notion's 500KB gets Notion's
/// `validation_error` rather than the framework's 413.
const BODY_READ_MAX: usize = 8 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/{*rest}", any(v1))
        .route("/_standin/data_sources/{id}/pages", get(list_pages))
        .route("/_standin/requests", get(list_requests))
        .route("/_standin/faults", post(add_faults))
        .route("/_standin/databases", post(add_database))
        .route(
            "/_standin/databases/{id}/data_sources",
            post(add_data_source),
        )
        .route("/_standin/databases/{id}/unshare", post(unshare))
        .route("/_standin/databases/{id}/share", post(share))
        .route("/_standin/reset", post(reset))
        .fallback(|| async { NotionError::invalid_request_url().into_response() })
        .layer(DefaultBodyLimit::max(BODY_READ_MAX))
        .with_state(shared)
}

async fn v1(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut hold = None;
    let outcome = serve(&shared, &method, uri.path(), &headers, &body, &mut hold).await;
    shared.record(method.as_str(), uri.path(), &outcome);
    if let Some(delay) = hold {
        tokio::time::sleep(delay).await;
    }
    match outcome {
        Ok(value) => Json(value).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn serve(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    hold: &mut Option<std::time::Duration>,
) -> Result<Value, NotionError> {
    let token = shared.authorize(headers)?;
    let version = version::parse(headers)?;
    shared.pace(&token)?;
    let route = route(method, path)?;
    let body = if *method == Method::POST {
        json_body(body)?
    } else {
        json!({})
    };
    let target = shared.target(&route, &body);
    match shared.take_fault(target.as_deref()) {
        None => shared.run(version, &route, &body),
        Some(FaultKind::Error(failure)) => Err(NotionError::failure(failure)),
        Some(FaultKind::RateLimited { retry_after_secs }) => {
            Err(NotionError::rate_limited(retry_after_secs))
        }
        Some(FaultKind::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            shared.run(version, &route, &body)
        }
        Some(FaultKind::AcceptThenError(failure)) => {
            // The outcome is what Notion did; the client only ever sees the failure.
            let _done = shared.run(version, &route, &body);
            Err(NotionError::failure(failure))
        }
        Some(FaultKind::AcceptThenDelay(delay)) => {
            *hold = Some(delay);
            shared.run(version, &route, &body)
        }
    }
}

fn route(method: &Method, path: &str) -> Result<Route, NotionError> {
    let segments: Vec<&str> = path
        .trim_start_matches("/v1/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    let route = match (method.as_str(), segments.as_slice()) {
        ("GET", ["databases", id]) => Route::RetrieveDatabase((*id).to_owned()),
        ("POST", ["databases", id, "query"]) => Route::QueryDatabase((*id).to_owned()),
        ("GET", ["data_sources", id]) => Route::RetrieveDataSource((*id).to_owned()),
        ("POST", ["data_sources", id, "query"]) => Route::QueryDataSource((*id).to_owned()),
        ("POST", ["pages"]) => Route::CreatePage,
        _ => return Err(NotionError::invalid_request_url()),
    };
    Ok(route)
}

/// A POST body: empty is `{}`; over 500KB is Notion's size-limit `validation_error`
/// (<https://developers.notion.com/reference/request-limits>: "payloads have a maximum size of
/// 1000 block elements and 500KB overall"); anything else must be JSON.
fn json_body(body: &[u8]) -> Result<Value, NotionError> {
    if body.len() > PAYLOAD_MAX_BYTES {
        return Err(NotionError::validation(format!(
            "body failed validation: the request body is {} bytes, more than the 500KB allowed.",
            body.len()
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| NotionError::invalid_json())
}

fn detail(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({"detail": text.into()}))).into_response()
}

async fn list_pages(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Some(pages) = shared.pages(&id) else {
        return detail(StatusCode::NOT_FOUND, format!("no data source {id}"));
    };
    let listed: Vec<Value> = pages
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "data_source_id": p.data_source_id,
                "database_id": p.database_id,
                "properties": p.properties,
                "children": p.children,
                "created_time": p.created_time,
                "at_ms": shared.since_start_ms(p.at),
            })
        })
        .collect();
    Json(listed).into_response()
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> Response {
    let listed: Vec<Value> = shared
        .requests()
        .iter()
        .map(|r| {
            json!({
                "method": r.method, "path": r.path, "status": r.status, "code": r.code,
                "at_ms": shared.since_start_ms(r.at),
            })
        })
        .collect();
    Json(listed).into_response()
}

async fn add_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(serde_json::from_value::<Fault>)
            .collect::<Result<Vec<_>, _>>(),
        Ok(one) => serde_json::from_value::<Fault>(one).map(|f| vec![f]),
        Err(e) => Err(e),
    };
    match parsed {
        Ok(faults) => {
            let queued = faults.len();
            for fault in faults {
                shared.inject(fault);
            }
            Json(json!({"ok": true, "queued": queued})).into_response()
        }
        Err(e) => detail(StatusCode::BAD_REQUEST, format!("not a fault: {e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDatabase {
    title: String,
    properties: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDataSource {
    name: String,
    properties: Map<String, Value>,
}

/// `{"Name": "title", "Event": "rich_text", …}`, in the order given.
fn schema_of(properties: Map<String, Value>) -> Result<Vec<(String, PropertyType)>, String> {
    properties
        .into_iter()
        .map(|(name, kind)| {
            serde_json::from_value::<PropertyType>(kind.clone())
                .map(|kind| (name.clone(), kind))
                .map_err(|_| format!("property {name:?}: {kind} is not a property type"))
        })
        .collect()
}

async fn add_database(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let created = serde_json::from_slice::<NewDatabase>(&body)
        .map_err(|e| e.to_string())
        .and_then(|new| Ok((new.title, schema_of(new.properties)?)))
        .and_then(|(title, schema)| {
            shared
                .create_database(&title, &schema)
                .map_err(|e| e.to_string())
        });
    match created {
        Ok(ids) => Json(json!({
            "database_id": ids.database_id,
            "data_source_id": ids.data_source_id,
        }))
        .into_response(),
        Err(e) => detail(StatusCode::BAD_REQUEST, e),
    }
}

async fn add_data_source(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let created = serde_json::from_slice::<NewDataSource>(&body)
        .map_err(|e| e.to_string())
        .and_then(|new| Ok((new.name, schema_of(new.properties)?)))
        .and_then(|(name, schema)| {
            shared
                .add_data_source(&id, &name, &schema)
                .map_err(|e| e.to_string())
        });
    match created {
        Ok(data_source_id) => Json(json!({"data_source_id": data_source_id})).into_response(),
        Err(e) => detail(StatusCode::BAD_REQUEST, e),
    }
}

async fn unshare(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    sharing(&shared, &id, false)
}

async fn share(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    sharing(&shared, &id, true)
}

fn sharing(shared: &Shared, id: &str, shared_now: bool) -> Response {
    if shared.set_shared(id, shared_now) {
        Json(json!({"ok": true})).into_response()
    } else {
        detail(StatusCode::NOT_FOUND, format!("no database {id}"))
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    Json(json!({"ok": true})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_notions_and_nothing_else() {
        assert_eq!(
            route(&Method::GET, "/v1/databases/abc"),
            Ok(Route::RetrieveDatabase("abc".into()))
        );
        assert_eq!(
            route(&Method::POST, "/v1/data_sources/abc/query"),
            Ok(Route::QueryDataSource("abc".into()))
        );
        assert_eq!(route(&Method::POST, "/v1/pages"), Ok(Route::CreatePage));
        assert_eq!(
            route(&Method::GET, "/v1/pages").map_err(|e| e.code),
            Err("invalid_request_url")
        );
        assert_eq!(
            route(&Method::POST, "/v1/users").map_err(|e| e.code),
            Err("invalid_request_url")
        );
    }

    #[test]
    fn bodies_are_json_or_empty() {
        assert_eq!(json_body(b""), Ok(json!({})));
        assert_eq!(json_body(b"{\"a\":1}"), Ok(json!({"a": 1})));
        assert_eq!(json_body(b"{nope").map_err(|e| e.code), Err("invalid_json"));
        let big = vec![b' '; PAYLOAD_MAX_BYTES + 1];
        assert_eq!(json_body(&big).map_err(|e| e.code), Err("validation_error"));
    }
}
