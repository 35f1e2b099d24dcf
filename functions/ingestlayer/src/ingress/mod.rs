//! The ingest function: `POST /v1/events`, `POST /v1/events/batch` and signed webhooks
//! (`POST /v1/webhooks/{source}`, see [`webhooks`]) behind API Gateway.
//!
//! Authenticate (`Authorization: Bearer <api key>`), parse, validate against the event's
//! schema, store whole, enqueue. Answers: 202 with ids; 400 naming what is wrong; 401;
//! 404/405; 413 above the size limits; 503 when storage or the
//! queue fail (retry). A batch answers per item and accepts its valid events even when
//! others fail.

pub mod api_keys;
pub mod event_store;
pub mod schema;
pub mod webhooks;

use std::collections::HashMap;

use futures_util::StreamExt;

use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::aws::sqs::{send_all, Outgoing};
use crate::config::IngestConfig;
use crate::event::{parse_incoming, Envelope, FieldError, IncomingEvent};
use crate::ingress::api_keys::ApiKeys;
use crate::ingress::event_store::{EventStore, Stored};
use crate::ingress::schema::SchemaRegistry;

/// Largest request body for `POST /v1/events`.
pub const MAX_EVENT_BODY_BYTES: usize = 256 * 1024;
/// Largest request body for `POST /v1/events/batch`.
pub const MAX_BATCH_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Largest accepted event, as stored (its envelope as JSON).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 500;
/// Most fields in one event's data, counting the members of nested objects.
pub const MAX_EVENT_FIELDS: usize = 1000;

/// What the ingest handler holds across invocations.
pub struct IngestDeps {
    pub keys: ApiKeys,
    pub store: EventStore,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub schemas: SchemaRegistry,
    /// Checks signed links to stored events.
    pub links: Option<crate::event_links::LinkSigner>,
    /// Signed webhook sources; without them `/v1/webhooks/{source}` answers 404.
    pub webhooks: Option<crate::ingress::webhooks::sources::WebhookSources>,
}

impl IngestDeps {
    fn new(
        sdk: &aws_config::SdkConfig,
        cfg: &IngestConfig,
    ) -> Result<Self, crate::ingress::schema::SchemaError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        Ok(Self {
            keys: ApiKeys::new(dynamo.clone(), cfg.api_keys_table.clone()),
            store: EventStore {
                client: dynamo,
                table: cfg.events_table.clone(),
                ttl_days: cfg.event_ttl_days,
            },
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: cfg.events_queue_url.clone(),
            schemas: SchemaRegistry::builtin(cfg.schemas_required)?,
            links: None,
            webhooks: cfg.webhook_secret_prefix.as_ref().map(|prefix| {
                crate::ingress::webhooks::sources::WebhookSources::new(
                    aws_sdk_secretsmanager::Client::new(sdk),
                    prefix.clone(),
                )
            }),
        })
    }

    /// The one constructor, used by the Lambda's main.rs, `make dev` and the tests: the
    /// clients, plus the link signing key when configured.
    pub async fn load(sdk: &aws_config::SdkConfig, cfg: &IngestConfig) -> Result<Self, String> {
        let mut deps = Self::new(sdk, cfg).map_err(|e| e.to_string())?;
        if let Some(arn) = &cfg.link_secret_arn {
            let key = crate::event_links::load_key(&aws_sdk_secretsmanager::Client::new(sdk), arn)
                .await?;
            // Only verification happens here; the base URL is not used.
            deps.links = Some(crate::event_links::LinkSigner::new(
                key,
                "",
                crate::event_links::DEFAULT_TTL,
            ));
        }
        Ok(deps)
    }
}

/// Handles one HTTP request. Never fails: every problem is an HTTP answer.
///
/// The body must be JSON whatever its Content-Type says (curl's `-d` default included).
pub async fn handle(
    req: Request,
    deps: &IngestDeps,
) -> Result<Response<Body>, std::convert::Infallible> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    // The route and the body's size only: never headers (credentials) or the body.
    tracing::debug!(method = %req.method(), path = %path, body_bytes = req.body().len(), "request");
    if let Some(source) = path.strip_prefix("/v1/webhooks/") {
        return Ok(webhooks::handle(source, &req, deps).await);
    }
    if let Some(id) = path.strip_prefix("/v1/events/").filter(|id| *id != "batch") {
        if req.method() != http::Method::GET {
            return Ok(method_not_allowed(
                "GET",
                "/v1/events/{id} takes GET with a signed link",
            ));
        }
        return Ok(stored_event(id, req.uri().query().unwrap_or_default(), deps).await);
    }
    let batch = match path.as_str() {
        "/v1/events" => false,
        "/v1/events/batch" => true,
        _ => {
            return Ok(error(
                404,
                "not_found",
                &format!("no route {path}; use POST /v1/events, POST /v1/events/batch or POST /v1/webhooks/{{source}}"),
                None,
            ))
        }
    };
    if req.method() != http::Method::POST {
        return Ok(method_not_allowed("POST", &format!("{path} takes POST")));
    }
    let source = match authenticate(&req, deps).await {
        Ok(s) => s,
        Err(resp) => return Ok(resp),
    };
    let body: &[u8] = req.body().as_ref();
    let limit = if batch {
        MAX_BATCH_BODY_BYTES
    } else {
        MAX_EVENT_BODY_BYTES
    };
    if body.len() > limit {
        return Ok(error(
            413,
            "payload_too_large",
            &format!(
                "the body is {} bytes; {path} takes at most {limit}",
                body.len()
            ),
            None,
        ));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) if body.is_empty() => {
            let _ = e;
            return Ok(error(
                400,
                "malformed_json",
                "the body is empty; send a JSON event",
                None,
            ));
        }
        Err(e) => {
            return Ok(error(
                400,
                "malformed_json",
                &format!("the body is not valid JSON: {e}"),
                None,
            ))
        }
    };
    let idempotency_key = match req.headers().get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.trim().to_owned()).filter(|v| !v.is_empty()),
        Some(Err(_)) => {
            return Ok(refused(
                400,
                "invalid_event",
                vec![FieldError::new(
                    "",
                    "Idempotency-Key header: may hold only visible ASCII characters",
                )],
            ));
        }
    };
    Ok(if batch {
        ingest_batch(&value, &source, deps).await
    } else {
        ingest_one(&value, &source, idempotency_key.as_deref(), deps).await
    })
}

/// `GET /v1/events/{id}?exp=…&sig=…`: the full stored event behind a signed link.
async fn stored_event(raw_id: &str, query: &str, deps: &IngestDeps) -> Response<Body> {
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
    let mut exp = None;
    let mut sig = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("exp", v)) => exp = Some(v),
            Some(("sig", v)) => sig = Some(v),
            _ => {}
        }
    }
    if let Err(e) = signer.verify(&id, exp, sig, OffsetDateTime::now_utc().unix_timestamp()) {
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

/// 401 for the API key, with the challenge RFC 6750 asks for.
fn unauthorized(message: &str) -> Response<Body> {
    let mut response = error(401, "unauthorized", message, None);
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"ingestlayer\""),
    );
    response
}

async fn authenticate(req: &Request, deps: &IngestDeps) -> Result<String, Response<Body>> {
    let header = req
        .headers()
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
        Ok(Some(source)) if crate::ingress::api_keys::valid_source_name(&source) => Ok(source),
        Ok(Some(source)) => {
            tracing::error!(source = %source, "an API key's source name is not a valid source name");
            Err(error(
                403,
                "key_source_invalid",
                &format!("this API key's source name {source:?} cannot send events (`webhook` is reserved; use letters, digits, - _ .): create a new key with `ingestlayer-keys create`"),
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

/// A checked event: the envelope, its JSON, and whether the client gave its id; or the
/// status, code and every problem found.
pub(crate) type Checked = Result<(Envelope, String, bool), (u16, &'static str, Vec<FieldError>)>;

fn check(
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
    let fields = crate::event::field_count(&incoming.data);
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
    let depth = crate::event::nesting_depth(&json);
    if depth > crate::event::MAX_STORED_DEPTH {
        return Err((
            400,
            "too_deeply_nested",
            vec![FieldError::new(
                at,
                format!(
                    "the event nests {depth} levels deep as stored (its data sits inside the stored event); the limit is {}",
                    crate::event::MAX_STORED_DEPTH
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

async fn ingest_one(
    value: &Value,
    source: &str,
    idempotency_key: Option<&str>,
    deps: &IngestDeps,
) -> Response<Body> {
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
            match accept(&[(envelope.clone(), json, client_id)], deps)
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

async fn ingest_batch(value: &Value, source: &str, deps: &IngestDeps) -> Response<Body> {
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
            Err((_, code, details)) => results
                .push(json!({"index": i, "status": "rejected", "code": code,
                "message": summary(code, &details), "errors": details})),
        }
    }
    let outcomes = accept(&ready, deps).await;
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

/// Stores then enqueues; an event counts as accepted only when both succeeded. An event
/// with a client-given id seen within the idempotency window is a duplicate (`Ok(true)`): not
/// queued again, unless its first attempt never reached the queue.
pub(crate) async fn accept(
    events: &[(Envelope, String, bool)],
    deps: &IngestDeps,
) -> Vec<Result<bool, String>> {
    let mut results: Vec<Result<bool, String>> = vec![Ok(false); events.len()];
    // What to queue, per event: its own JSON, or a duplicate's original that never got there.
    let mut bodies: Vec<Option<String>> = vec![None; events.len()];
    let server_ids: Vec<usize> = (0..events.len()).filter(|&i| !events[i].2).collect();
    let refs: Vec<(&Envelope, &str)> = server_ids
        .iter()
        .map(|&i| (&events[i].0, events[i].1.as_str()))
        .collect();
    for (&i, r) in server_ids.iter().zip(deps.store.put_all(&refs).await) {
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
            .map(|i| deps.store.put_new(&events[i].0, &events[i].1)),
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
    tracing::info!(
        accepted,
        failed = events.len() - accepted,
        "events accepted"
    );
    results
}

/// An event refused: `code`, a message summing up `details`, and the details themselves.
pub(crate) fn refused(status: u16, code: &str, details: Vec<FieldError>) -> Response<Body> {
    error(status, code, &summary(code, &details), Some(details))
}

fn summary(code: &str, details: &[FieldError]) -> String {
    let what = match code {
        "schema_violation" => "the event does not match its schema",
        "event_too_large" => "the event is too large",
        "too_many_fields" => "the event has too many fields",
        "too_deeply_nested" => "the event is nested too deeply",
        _ => "the event is invalid",
    };
    let list: Vec<String> = details
        .iter()
        .map(|d| {
            if d.pointer.is_empty() {
                d.message.clone()
            } else {
                format!("{}: {}", d.pointer, d.message)
            }
        })
        .collect();
    format!("{what}: {}", list.join("; "))
}

pub(crate) fn error(
    status: u16,
    code: &str,
    message: &str,
    details: Option<Vec<FieldError>>,
) -> Response<Body> {
    let mut body = json!({"error": {"code": code, "message": message}});
    if let Some(d) = details {
        body["error"]["details"] = json!(d);
    }
    respond(status, &body)
}

/// 405 with the `Allow` header naming the method the route takes.
pub(crate) fn method_not_allowed(allow: &'static str, message: &str) -> Response<Body> {
    let mut response = error(405, "method_not_allowed", message, None);
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    response
}

pub(crate) fn respond(status: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
