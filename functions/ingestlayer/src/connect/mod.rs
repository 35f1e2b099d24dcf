//! Connecting Slack: `GET /slack/install` (redirect to Slack's consent page with a signed,
//! expiring, single-use state), `GET /slack/oauth/callback` (check the state, exchange the
//! code, store the bot token in the workspace's own secret under the stack's KMS key, record
//! the connection) and `POST /slack/events` (Slack's Events API: signature checked,
//! `url_verification` answered, `app_uninstalled` / `tokens_revoked` pause the workspace,
//! `member_joined_channel` for the bot lifts its channel's pause and redrives the backlog).

pub mod admin_session;
pub mod destinations;

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use time::OffsetDateTime;

use secrecy::ExposeSecret;

use crate::connect::admin_session::{usable_token, AdminAuth, AdminTokenSource};
use crate::delivery::channel_state::{team_pk, Channels, Pause};
use crate::slack::client::SlackClient;
use crate::slack::oauth::{
    authorize_url, AppCredentials, AppError, OAuthClient, OAuthError, SlackAppSource, StateSigner,
    STATE_TTL,
};
use crate::slack::tokens::TokenSource;
use crate::slack::tokens::WorkspaceTokens;
use crate::slack::workspaces::Connections;

/// What the connect handler holds across invocations.
pub struct ConnectDeps {
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
    /// The default workspace's (team id, bot user id), from auth.test once.
    default_bot: tokio::sync::OnceCell<(String, String)>,
}

impl ConnectDeps {
    /// Builds the clients and reads the app's credentials and the state signing key.
    pub async fn load(
        sdk: &aws_config::SdkConfig,
        cfg: &crate::config::ConnectConfig,
    ) -> Result<Self, String> {
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
        let oauth = OAuthClient::new(&cfg.slack_api_url).map_err(|e| e.to_string())?;
        let mut tokens = WorkspaceTokens::new(
            TokenSource::new(default_token, secrets),
            Some(connections.clone()),
            None,
        );
        tokens.set_app_source(oauth.clone(), app.clone());
        Ok(Self {
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
            slack: SlackClient::new(&cfg.slack_api_url, std::time::Duration::from_secs(10))
                .map_err(|e| e.to_string())?,
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
            default_bot: tokio::sync::OnceCell::new(),
        })
    }

    pub fn dynamo(&self) -> &aws_sdk_dynamodb::Client {
        &self.connections.dynamo
    }

    /// The OAuth redirect URI for a request: `<public url>/slack/oauth/callback`.
    pub fn redirect_uri(&self, req: &Request) -> String {
        let base = match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("https://{host}")
            }
        };
        format!("{base}/slack/oauth/callback")
    }
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Routes `/slack/*` requests. Never fails: every problem is an HTTP answer.
pub async fn handle(
    req: Request,
    deps: &ConnectDeps,
) -> Result<Response<Body>, std::convert::Infallible> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    if path == "/destinations" || path.starts_with("/destinations/") {
        return Ok(crate::connect::destinations::handle(&req, deps).await);
    }
    Ok(match (method.as_str(), path.as_str()) {
        ("GET", "/slack/install") => {
            // Only a signed-in admin may start an install; the state it gets is the only
            // way through the callback (signed, expiring, single-use).
            match crate::connect::destinations::signed_in(&req, deps).await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(page(401, "Sign in first", "<p>Connecting Slack needs the admin token: <a href=\"/destinations\">sign in</a>, then use Add to Slack.</p>")),
                Err(answer) => return Ok(answer),
            }
            match deps.app.get().await {
                Ok(app) => install(&deps.redirect_uri(&req), &app, deps),
                Err(e) => app_unusable(&e),
            }
        }
        ("GET", "/slack/oauth/callback") => {
            callback(
                req.uri().query().unwrap_or_default(),
                &deps.redirect_uri(&req),
                deps,
            )
            .await
        }
        ("POST", "/slack/events") => events(&req, deps).await,
        _ => page(404, "Not found", "<p>There is nothing here.</p>"),
    })
}

/// The page for a request that needs the Slack app's credentials when they are unusable.
fn app_unusable(e: &AppError) -> Response<Body> {
    tracing::warn!(reason = %e, "a Slack request needs the app's credentials");
    page(
        503,
        "Slack is not set up yet",
        &format!("<p>{}</p>", html(&e.to_string())),
    )
}

fn install(redirect_uri: &str, app: &AppCredentials, deps: &ConnectDeps) -> Response<Body> {
    let state = deps.states.issue(now_unix());
    let url = authorize_url(&deps.authorize_base, &app.client_id, redirect_uri, &state);
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = http::StatusCode::FOUND;
    if let Ok(v) = http::HeaderValue::from_str(&url) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

async fn callback(query: &str, redirect_uri: &str, deps: &ConnectDeps) -> Response<Body> {
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    if let Some(error) = params.get("error") {
        let why = if error == "access_denied" {
            "The install was cancelled in Slack.".to_owned()
        } else {
            format!("Slack reported: {}", html(error))
        };
        return page(
            400,
            "Slack was not connected",
            &format!("<p>{why}</p><p><a href=\"/slack/install\">Try again</a></p>"),
        );
    }
    let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
        return page(400, "Slack was not connected", "<p>The callback is missing its code or state. Start from <a href=\"/slack/install\">Add to Slack</a>.</p>");
    };
    let nonce = match deps.states.verify(state, now_unix()) {
        Ok(n) => n,
        Err(e) => {
            return page(
                400,
                "Slack was not connected",
                &format!(
                    "<p>{}.</p><p><a href=\"/slack/install\">Start again</a></p>",
                    html(&e.to_string())
                ),
            )
        }
    };
    match deps
        .connections
        .consume_state(&nonce, now_unix() + STATE_TTL.as_secs() as i64)
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return page(
                400,
                "Slack was not connected",
                &format!(
                    "<p>{}.</p><p><a href=\"/slack/install\">Start again</a></p>",
                    html(&e.to_string())
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record the OAuth state");
            return page(
                503,
                "Try again",
                "<p>The install could not be recorded; try again in a moment.</p>",
            );
        }
    }
    let app = match deps.app.get().await {
        Ok(app) => app,
        Err(e) => return app_unusable(&e),
    };
    let access = match deps.oauth.exchange(&app, code, redirect_uri).await {
        Ok(a) => a,
        Err(OAuthError::Slack(e)) => {
            tracing::warn!(slack_error = %e, "Slack refused the OAuth code exchange");
            return page(502, "Slack was not connected", &format!("<p>Slack refused the install: <code>{}</code>. Nothing was stored.</p><p><a href=\"/slack/install\">Start again</a></p>", html(&e)));
        }
        Err(e) => {
            tracing::warn!(error = %e, "OAuth code exchange failed");
            return page(502, "Slack was not connected", "<p>Slack could not be reached. Nothing was stored.</p><p><a href=\"/slack/install\">Start again</a></p>");
        }
    };
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let now_text = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    match deps
        .connections
        .save_install(&access, now_ms, &now_text)
        .await
    {
        Ok(c) => {
            // A re-install fixes a revoked or paused workspace.
            let _ = deps.channels.resume(&team_pk(&c.team_id)).await;
            tracing::info!(team = %c.team_id, installed_by = %c.installed_by, scopes = %c.scopes, "Slack workspace connected");
            page(200, "Slack connected", &format!("<p>Connected to <strong>{}</strong> ({}).</p><p><a href=\"/destinations\">Pick channels for your pipelines</a></p>", html(&c.team_name), html(&c.team_id)))
        }
        Err(e) => {
            tracing::error!(error = %e, team = %access.team_id, "could not store the Slack connection");
            page(
                503,
                "Try again",
                "<p>The token could not be stored; run the install again.</p>",
            )
        }
    }
}

async fn events(req: &Request, deps: &ConnectDeps) -> Response<Body> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let body: &[u8] = req.body().as_ref();
    let app = match deps.app.get().await {
        Ok(app) => app,
        Err(e) => {
            tracing::warn!(reason = %e, "a Slack event arrived before the app's signing secret was set");
            return json_response(503, &json!({"error": e.to_string()}));
        }
    };
    if let Err(e) = crate::slack::request_signing::verify(
        &app.signing_secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        now_unix(),
    ) {
        tracing::warn!(reason = %e, "Slack event refused");
        return json_response(401, &json!({"error": e.to_string()}));
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return json_response(400, &json!({"error": "the body is not JSON"}));
    };
    match v["type"].as_str() {
        Some("url_verification") => json_response(200, &json!({"challenge": v["challenge"]})),
        Some("event_callback") => {
            let team = v["team_id"].as_str().unwrap_or_default();
            let kind = v["event"]["type"].as_str().unwrap_or_default();
            if matches!(kind, "app_uninstalled" | "tokens_revoked") && !team.is_empty() {
                let hint = "the app was removed from the workspace or its tokens revoked: reconnect Slack from the destinations page, then redrive the backlog";
                let pause = Pause {
                    error: kind.to_owned(),
                    hint: hint.to_owned(),
                };
                let now_text = OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let marked = deps.connections.mark_revoked(team, kind).await;
                let paused = deps.channels.pause(&team_pk(team), &pause, &now_text).await;
                if marked.is_err() || paused.is_err() {
                    tracing::error!(team = %team, "could not record the revocation; Slack will retry");
                    return json_response(503, &json!({"error": "try again"}));
                }
                tracing::warn!(team = %team, event = %kind, outcome = "pause_workspace", "Slack revoked the app; the workspace's deliveries are paused");
            }
            if kind == "member_joined_channel" && !team.is_empty() {
                return member_joined(team, &v["event"], deps).await;
            }
            json_response(200, &json!({"ok": true}))
        }
        _ => json_response(200, &json!({"ok": true})),
    }
}

/// Pauses the bot joining a channel ends: it was not in it, or could not see it.
const LIFTED_BY_JOINING: &[&str] = &["not_in_channel", "channel_not_found"];

/// `member_joined_channel`: when the member is the bot itself (the workspace's connection
/// record, or auth.test for the default workspace, names its user id), lifts the pause of
/// that channel if the bot's absence caused it, and moves the channel's parked messages
/// back to the Slack queue in order. Anyone else joining is ignored. A failed redrive puts
/// the pause back and answers 503, so Slack's retry of the event tries again.
async fn member_joined(team: &str, event: &Value, deps: &ConnectDeps) -> Response<Body> {
    let ok = json_response(200, &json!({"ok": true}));
    let (Some(user), Some(channel)) = (event["user"].as_str(), event["channel"].as_str()) else {
        return ok;
    };
    // The workspaces (as pipelines name them) whose bot this is.
    let mut teams: Vec<String> = Vec::new();
    match deps.connections.get(team).await {
        Ok(Some(c)) if c.bot_user_id == user => teams.push(team.to_owned()),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(team = %team, error = %e, "could not read the connection; Slack will retry");
            return json_response(503, &json!({"error": "try again"}));
        }
    }
    if let Some((default_team, bot)) = default_bot(deps).await {
        if default_team == team && bot == user {
            teams.push(crate::ids::DEFAULT_TEAM.to_owned());
        }
    }
    if teams.is_empty() {
        return ok;
    }
    let paused = match deps.channels.paused().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "could not read paused channels; Slack will retry");
            return json_response(503, &json!({"error": "try again"}));
        }
    };
    let mut names: std::collections::HashMap<String, Option<String>> = Default::default();
    for entry in paused {
        let Some(group) = entry.group() else { continue };
        let Some((group_team, group_channel)) = group.split_once(':') else {
            continue;
        };
        if !teams.iter().any(|t| t == group_team)
            || !LIFTED_BY_JOINING.contains(&entry.pause.error.as_str())
        {
            continue;
        }
        let same = group_channel == channel
            || matches!(deps.channels.state(group).await, Ok(s) if s.channel_id.as_deref() == Some(channel))
            || match group_channel.strip_prefix('#') {
                Some(name) => {
                    if !names.contains_key(group_team) {
                        let found = channel_name(group_team, channel, deps).await;
                        names.insert(group_team.to_owned(), found);
                    }
                    names.get(group_team).and_then(|n| n.as_deref()) == Some(name)
                }
                None => false,
            };
        if !same {
            continue;
        }
        let group = group.to_owned();
        if let Err(e) = deps.channels.resume(&entry.pk).await {
            tracing::warn!(error = %e, "could not lift the pause; Slack will retry");
            return json_response(503, &json!({"error": "try again"}));
        }
        let wanted = group.clone();
        match crate::aws::redrive::move_back(
            &deps.sqs,
            &deps.slack_dlq_url,
            &deps.slack_queue_url,
            |g| g == wanted,
        )
        .await
        {
            Ok(moved) => {
                tracing::info!(channel = %entry.name(), moved, outcome = "resumed", "the app joined the channel; its pause is lifted and its backlog redriven");
            }
            Err(e) => {
                tracing::error!(channel = %entry.name(), error = %e, "the app joined the channel but its backlog could not be redriven; paused again until Slack retries");
                let now_text = OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let _ = deps
                    .channels
                    .pause(&entry.pk, &entry.pause, &now_text)
                    .await;
                return json_response(503, &json!({"error": "try again"}));
            }
        }
    }
    ok
}

/// The default workspace's team id and bot user id (auth.test with its token), once.
async fn default_bot(deps: &ConnectDeps) -> Option<(String, String)> {
    deps.default_bot
        .get_or_try_init(|| async {
            let token = deps
                .tokens
                .token(crate::ids::DEFAULT_TEAM)
                .await
                .map_err(crate::error::Error::from)?;
            deps.slack.auth_test(&token).await
        })
        .await
        .map_err(|e| tracing::info!(error = %e, "no default workspace bot to match events against"))
        .ok()
        .cloned()
}

/// The name of channel `id` in `team`'s workspace, as the bot sees it now.
async fn channel_name(team: &str, id: &str, deps: &ConnectDeps) -> Option<String> {
    let token = deps.tokens.token(team).await.ok()?;
    deps.slack
        .list_channels(&token)
        .await
        .ok()?
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.name)
}

/// Escapes text for HTML content and attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small page; `body` is trusted HTML built with [`html`].
pub fn page(status: u16, title: &str, body: &str) -> Response<Body> {
    let doc = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t} · ingestlayer</title>\
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#1d1c1d}}h1{{font-size:1.4rem}}td,th{{padding:.2em .8em;text-align:left}}code{{background:#f4f4f4;padding:0 .3em}}</style></head>\
<body><h1>{t}</h1>{body}</body></html>",
        t = html(title)
    );
    let mut r = Response::new(Body::from(doc));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert("x-frame-options", http::HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
