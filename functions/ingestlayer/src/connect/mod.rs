//! The slack-connect function, the operator's side, as one axum [`router`]: connecting
//! Slack with OAuth ([`install`]: `GET /slack/install`, `GET /slack/oauth/callback`),
//! Slack's Events API ([`events_api`]: `POST /slack/events`), Slack's interactivity (the
//! Mute button, [`interactions`]: `POST /slack/interactions`) and the destinations page
//! ([`destinations`]: `/destinations…`, behind [`admin_session`]). The Lambda serves the
//! router through `lambda_http`; the local stack and the tests serve it in process.

pub mod admin_session;
pub mod destinations;
pub mod events_api;
pub mod install;
pub mod interactions;
pub mod overview;
pub mod page;

use std::sync::Arc;

use axum::response::Response;
use axum::routing::{get, post};
use http::HeaderMap;
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;

use crate::connect::admin_session::{usable_token, AdminAuth, AdminTokenSource};
use maud::html;

use crate::connect::page::page;
use crate::delivery::channel_state::Channels;
use crate::slack::client::SlackClient;
use crate::slack::oauth::{OAuthClient, SlackAppSource, StateSigner};
use crate::slack::tokens::TokenSource;
use crate::slack::tokens::WorkspaceTokens;
use crate::slack::workspaces::Connections;

/// What the connect handler holds across invocations: a cheap handle (clone it freely) to
/// [`ConnectParts`], whose fields it derefs to.
#[derive(Clone)]
pub struct ConnectDeps(Arc<ConnectParts>);

impl std::ops::Deref for ConnectDeps {
    type Target = ConnectParts;
    fn deref(&self) -> &ConnectParts {
        &self.0
    }
}

/// The clients, keys and settings of the connect function.
pub struct ConnectParts {
    /// The Slack app's credentials, read when first needed: a placeholder secret answers
    /// each request with the fix instead of failing the cold start.
    pub app: std::sync::Arc<SlackAppSource>,
    pub oauth: OAuthClient,
    pub states: StateSigner,
    pub connections: Connections,
    pub channels: Channels,
    /// The public base URL of this API, for the OAuth redirect URI; `None` derives it from
    /// each request's host (API Gateway's own domain).
    pub public_url: Option<String>,
    /// Where Slack's consent page lives (`https://slack.com`; the stand-in locally).
    pub authorize_base: String,
    /// The destinations page's admin credential and sessions.
    pub admin: AdminAuth,
    pub pipelines_table: String,
    pub slack: SlackClient,
    pub tokens: WorkspaceTokens,
    pub sqs: aws_sdk_sqs::Client,
    pub slack_queue_url: String,
    pub slack_dlq_url: String,
    /// Each pipeline's latest events, for the page.
    pub journey: Option<crate::journey::JourneyStore>,
    /// Stored events and entities, for "Send test".
    pub events: Option<crate::ingress::event_store::EventStore>,
    pub entities: Option<crate::routing::enrich::DynamoEntities>,
    /// Mutes set with Slack's Mute button (`STATE_TABLE`); `None` answers clicks with 503.
    pub mutes: Option<crate::routing::mutes::MuteStore>,
    /// Where destination secrets are stored (`<prefix>/<name>`), with `secrets` and the
    /// stack's key `kms_key_id`; `None` when the stack gives no prefix.
    pub destination_secret_prefix: Option<String>,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub kms_key_id: String,
    /// The default workspace's (team id, bot user id), from auth.test once.
    pub(crate) default_bot: tokio::sync::OnceCell<(String, String)>,
}

impl ConnectDeps {
    /// Builds the clients and reads the app's credentials and the state signing key.
    pub async fn load(
        sdk: &aws_config::SdkConfig,
        cfg: &crate::config::ConnectConfig,
    ) -> crate::error::Result<Self> {
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let app = std::sync::Arc::new(SlackAppSource::secret(
            secrets.clone(),
            cfg.slack_app_secret_arn.clone(),
        ));
        let key = crate::event_links::load_key(&secrets, &cfg.link_secret_arn).await?;
        let admin_token = match (&cfg.admin_token, &cfg.admin_token_secret_arn) {
            (Some(t), _) => AdminTokenSource::Fixed(usable_token(t.expose_secret())),
            (None, Some(arn)) => AdminTokenSource::secret(secrets.clone(), arn.clone()),
            (None, None) => AdminTokenSource::Fixed(None),
        };
        let connections = Connections {
            dynamo: dynamo.clone(),
            table: cfg.connections_table.clone(),
            secrets: secrets.clone(),
            secret_prefix: cfg.token_secret_prefix.clone(),
            kms_key_id: cfg.kms_key_id.clone(),
        };
        let default_token = match &cfg.default_token {
            Some(t) => crate::config::TokenConfig::Env(t.clone()),
            None => crate::config::TokenConfig::Secret(
                cfg.slack_token_secret_arn.clone().unwrap_or_default(),
            ),
        };
        let oauth = OAuthClient::new(&cfg.slack_api_url)
            .map_err(|e| crate::error::Error::slack("building the OAuth client", e))?;
        let mut tokens = WorkspaceTokens::new(
            TokenSource::new(default_token, secrets.clone()),
            Some(connections.clone()),
            None,
        );
        tokens.set_app_source(oauth.clone(), app.clone());
        Ok(Self(Arc::new(ConnectParts {
            app,
            oauth,
            states: StateSigner::new(key.clone()),
            admin: AdminAuth::new(
                &key,
                admin_token,
                dynamo.clone(),
                cfg.connections_table.clone(),
            ),
            pipelines_table: cfg.pipelines_table.clone(),
            journey: cfg
                .journey_table
                .clone()
                .map(|table| crate::journey::JourneyStore {
                    client: dynamo.clone(),
                    table,
                    ttl_days: 0,
                }),
            events: cfg
                .events_table
                .clone()
                .map(|table| crate::ingress::event_store::EventStore {
                    client: dynamo.clone(),
                    table,
                    ttl_days: 0,
                }),
            mutes: cfg
                .state_table
                .clone()
                .map(|table| crate::routing::mutes::MuteStore::new(dynamo.clone(), table)),
            entities: cfg.entities_table.clone().map(|table| {
                crate::routing::enrich::DynamoEntities {
                    client: dynamo.clone(),
                    table,
                }
            }),
            slack: SlackClient::new(&cfg.slack_api_url, std::time::Duration::from_secs(10))
                .map_err(|e| crate::error::Error::slack("building the Slack client", e))?,
            tokens,
            connections,
            channels: Channels {
                client: dynamo,
                table: cfg.channels_table.clone(),
            },
            public_url: cfg.public_api_url.clone(),
            authorize_base: cfg.slack_authorize_url.clone(),
            sqs: aws_sdk_sqs::Client::new(sdk),
            slack_queue_url: cfg.slack_queue_url.clone(),
            slack_dlq_url: cfg.slack_dlq_url.clone(),
            destination_secret_prefix: cfg.destination_secret_prefix.clone(),
            secrets,
            kms_key_id: cfg.kms_key_id.clone(),
            default_bot: tokio::sync::OnceCell::new(),
        })))
    }
}

impl ConnectParts {
    pub fn dynamo(&self) -> &aws_sdk_dynamodb::Client {
        &self.connections.dynamo
    }

    /// The OAuth redirect URI for a request: `<public url>/slack/oauth/callback`.
    pub fn redirect_uri(&self, headers: &HeaderMap) -> String {
        let base = match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let host = headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("https://{host}")
            }
        };
        format!("{base}/slack/oauth/callback")
    }
}

pub(crate) fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The connect API as one service: the routes, with trailing slashes trimmed before routing.
pub type App = NormalizePath<axum::Router>;

/// The slack-connect function's routes (template.yaml gives it `/slack/*` and
/// `/destinations*`). Never fails: every problem is an HTTP answer. A method a route does
/// not take is answered like an unknown route, as before.
pub fn router(deps: ConnectDeps) -> App {
    let routes = axum::Router::new()
        .route(
            "/slack/install",
            get(install::start).head(not_found).fallback(not_found),
        )
        .route(
            "/slack/oauth/callback",
            get(install::finish).head(not_found).fallback(not_found),
        )
        .route(
            "/slack/events",
            post(events_api::receive).fallback(not_found),
        )
        .route(
            "/slack/interactions",
            post(interactions::receive).fallback(not_found),
        )
        .merge(destinations::routes())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(deps);
    NormalizePath::trim_trailing_slash(routes)
}

/// Handles one HTTP request in process through [`router`].
pub async fn handle<B>(
    req: http::Request<B>,
    deps: &ConnectDeps,
) -> Result<Response, std::convert::Infallible>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    router(deps.clone()).oneshot(req).await
}

async fn not_found() -> Response {
    page(404, "Not found", html! { p { "There is nothing here." } })
}
