//! The ingest function: `POST /v1/events`, `POST /v1/events/batch`, signed webhooks
//! (`POST /v1/webhooks/{source}`, see [`webhooks`]) and signed links to stored events
//! (`GET /v1/events/{id}`) behind API Gateway, as one axum [`router`] that the Lambda serves
//! through `lambda_http` and the local stack serves in process.
//!
//! Authenticate (`Authorization: Bearer <api key>`), parse, validate against the event's
//! schema, store whole, enqueue. Answers: 202 with ids; 400 naming what is wrong; 401;
//! 404/405 (with `Allow`); 413 above the size limits; 503 when storage or the queue fail
//! (retry). A batch answers per item and accepts its valid events even when others fail.

pub mod accept;
pub mod answer;
pub mod api_keys;
pub mod event_store;
mod events;
pub mod schema;
mod stored_event;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{get, post};
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;

use crate::config::IngestConfig;
use crate::ingress::answer::{error, method_not_allowed};
use crate::ingress::api_keys::ApiKeys;
use crate::ingress::event_store::EventStore;
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
    fn new(sdk: &aws_config::SdkConfig, cfg: &IngestConfig) -> crate::error::Result<Self> {
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
    pub async fn load(
        sdk: &aws_config::SdkConfig,
        cfg: &IngestConfig,
    ) -> crate::error::Result<Self> {
        let mut deps = Self::new(sdk, cfg)?;
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

/// The ingest API as one service: the routes, with trailing slashes trimmed before routing
/// (`/v1/events/` is `/v1/events`).
pub type App = NormalizePath<axum::Router>;

/// The ingest function's routes. `main.rs` serves them through `lambda_http`, the local
/// stack and the tests in process ([`handle`]). Never fails: every problem is an HTTP
/// answer.
pub fn router(deps: Arc<IngestDeps>) -> App {
    let routes = axum::Router::new()
        .route(
            "/v1/events",
            post(events::post_event)
                .fallback(|| async { method_not_allowed("POST", "/v1/events takes POST") }),
        )
        .route(
            "/v1/events/batch",
            post(events::post_batch)
                .fallback(|| async { method_not_allowed("POST", "/v1/events/batch takes POST") }),
        )
        .route(
            "/v1/events/{*id}",
            get(stored_event::get).head(not_get).fallback(not_get),
        )
        .route(
            "/v1/webhooks/{*source}",
            post(webhooks::post).fallback(|| async {
                method_not_allowed("POST", "/v1/webhooks/{source} takes POST")
            }),
        )
        .fallback(no_route)
        // Lambda caps a request at 6 MB; each route checks its own, smaller limit.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(log_request))
        .with_state(deps);
    NormalizePath::trim_trailing_slash(routes)
}

/// Handles one HTTP request in process through [`router`] (the local stack's handler
/// tests, and requests read from `events/*.json`).
pub async fn handle<B>(
    req: http::Request<B>,
    deps: &Arc<IngestDeps>,
) -> Result<Response, std::convert::Infallible>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    router(deps.clone()).oneshot(req).await
}

/// The route and the method only: never headers (credentials) or the body.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    tracing::debug!(method = %req.method(), path = %req.uri().path(), "request");
    next.run(req).await
}

async fn not_get() -> Response {
    method_not_allowed("GET", "/v1/events/{id} takes GET with a signed link")
}

async fn no_route(uri: http::Uri) -> Response {
    let path = uri.path().trim_end_matches('/');
    error(
        404,
        "not_found",
        &format!("no route {path}; use POST /v1/events, POST /v1/events/batch or POST /v1/webhooks/{{source}}"),
        None,
    )
}
