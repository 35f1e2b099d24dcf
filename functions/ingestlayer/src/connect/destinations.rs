//! The destinations page: connected workspaces with an "Add to Slack" button, each
//! pipeline's destination channel picked from its workspace's channels, and paused
//! channels and workspaces with their reasons. Server-rendered, no front-end build.
//!
//! Destinations beyond Slack are listed with their target and whether their secret is
//! stored (DescribeSecret: the page never reads a secret's value). The admin stores a
//! secret's value (`POST /destinations/secrets`, for the secret the stored pipeline names)
//! and changes a target's plain setting (`POST /destinations/targets`: a Telegram
//! `chat_id`, a webhook's `url`, an email's `to`, a Notion `database`), checked by the
//! pipeline function's own rules before it is written.
//!
//! Behind the admin credential: `Authorization: Bearer <token>`, or the sign-in form, which
//! sets a signed, expiring session cookie (HttpOnly, Secure, SameSite=Strict). Every form
//! carries a token derived from the session (CSRF). Without an admin token configured every
//! `/destinations…` route answers 404.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::{FromRequestParts, State};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use cookie::{Cookie, SameSite};
use http::HeaderMap;
use secrecy::ExposeSecret;

use crate::connect::admin_session::{Admin, SESSION_SECONDS};
use maud::html;

use crate::connect::overview::{self, OutboundRow, Overview, Row, SecretState, Setting};
use crate::connect::page::page;
use crate::connect::{now_unix, ConnectDeps};
use crate::dispatch::secrets::{put_secret, secret_id};
use crate::ids::{ChannelRef, DEFAULT_TEAM};
use crate::journey::Record;
use crate::routing::pipelines::{valid_secret_name, Destination, Pipeline};
use crate::slack::client::ChannelInfo;
use crate::slack::workspaces::ConnectionStatus;

const COOKIE: &str = crate::connect::admin_session::COOKIE;

/// The `/destinations…` routes. Any other path or method below `/destinations` is 401 (the
/// sign-in page) before sign-in and 404 after.
pub(crate) fn routes() -> axum::Router<ConnectDeps> {
    axum::Router::new()
        .route("/destinations", get(overview).fallback(nothing_here))
        .route(
            "/destinations/sign-in",
            post(sign_in).fallback(nothing_here),
        )
        .route(
            "/destinations/sign-out",
            post(sign_out).fallback(nothing_here),
        )
        .route(
            "/destinations/pipelines",
            post(set_channel).fallback(nothing_here),
        )
        .route("/destinations/test", post(send_test).fallback(nothing_here))
        .route(
            "/destinations/secrets",
            post(store_secret).fallback(nothing_here),
        )
        .route(
            "/destinations/targets",
            post(set_target).fallback(nothing_here),
        )
        .route("/destinations/{*rest}", axum::routing::any(nothing_here))
}

/// Who is asking, when it is the admin: a bearer token or a live session. `Err` is an
/// answer to send as is (the session store or the admin token could not be read).
pub async fn signed_in(headers: &HeaderMap, deps: &ConnectDeps) -> Result<Option<Admin>, Response> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned());
    deps.admin
        .authenticate(bearer, cookie.as_deref(), now_unix())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "checking the admin credential failed");
            page(
                503,
                "Try again",
                html! { p { "The sign-in could not be checked; reload in a moment." } },
            )
        })
}

/// The page is on: an admin token is configured. Rejected with 404 (off) or 503.
pub(crate) struct PageOn;

impl FromRequestParts<ConnectDeps> for PageOn {
    type Rejection = Response;

    async fn from_request_parts(
        _parts: &mut http::request::Parts,
        deps: &ConnectDeps,
    ) -> Result<Self, Response> {
        match deps.admin.admin_token(now_unix()).await {
            Ok(Some(_)) => Ok(PageOn),
            Ok(None) => Err(page(
                404,
                "Not found",
                html! { p { "The destinations page is not enabled: set the admin token (16 or more characters)." } },
            )),
            Err(e) => {
                tracing::error!(error = %e, "reading the admin token failed");
                Err(page(
                    503,
                    "Try again",
                    html! { p { "Reload in a moment." } },
                ))
            }
        }
    }
}

/// The page is on and the admin is signed in; otherwise the sign-in page (401).
pub(crate) struct SignedIn(Admin);

impl FromRequestParts<ConnectDeps> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        deps: &ConnectDeps,
    ) -> Result<Self, Response> {
        PageOn::from_request_parts(parts, deps).await?;
        match signed_in(&parts.headers, deps).await? {
            Some(who) => Ok(SignedIn(who)),
            None => Err(sign_in_page(401, None)),
        }
    }
}

/// A route or method the page does not have, for a signed-in admin.
async fn nothing_here(_: SignedIn) -> Response {
    page(404, "Not found", html! { p { "There is nothing here." } })
}

/// 403 titled `title` unless the form carries the session's CSRF token.
fn stale_form(
    deps: &ConnectDeps,
    who: &Admin,
    form: &HashMap<String, String>,
    title: &str,
) -> Option<Response> {
    let token = form.get("csrf").map(String::as_str).unwrap_or_default();
    (!deps.admin.csrf_ok(who, token)).then(|| {
        page(
            403,
            title,
            html! { p { "The form expired; reload the page and try again." } },
        )
    })
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// The session cookie: HttpOnly, Secure, SameSite=Strict, for the whole site; an empty
/// value with no lifetime ends it.
fn session_cookie(value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build((COOKIE, value))
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .build()
}

fn redirect(to: &str, cookie: Option<Cookie<'static>>) -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = http::StatusCode::SEE_OTHER;
    if let Ok(v) = http::HeaderValue::from_str(to) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| http::HeaderValue::from_str(&c.to_string()).ok()) {
        r.headers_mut().insert(http::header::SET_COOKIE, c);
    }
    r
}

/// `POST /destinations/sign-out`: ends the session when the form's CSRF token is its own.
async fn sign_out(
    _: PageOn,
    State(deps): State<ConnectDeps>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match signed_in(&headers, &deps).await {
        Ok(w) => w,
        Err(answer) => return answer,
    };
    let csrf = form(&body).remove("csrf").unwrap_or_default();
    let Some(who) = who.filter(|who| deps.admin.csrf_ok(who, &csrf)) else {
        return page(
            403,
            "Not signed out",
            html! { p { "The form expired; reload the page and try again." } },
        );
    };
    if let Err(e) = deps.admin.sign_out(&who).await {
        tracing::error!(error = %e, "ending the session failed");
        return page(
            503,
            "Not signed out",
            html! { p { "The session could not be ended; try again." } },
        );
    }
    redirect("/destinations", Some(session_cookie(String::new(), 0)))
}

fn sign_in_page(status: u16, error: Option<&str>) -> Response {
    page(status, "Sign in", overview::sign_in(error))
}

/// `POST /destinations/sign-in`.
async fn sign_in(_: PageOn, State(deps): State<ConnectDeps>, body: Bytes) -> Response {
    let given = form(&body).remove("token").unwrap_or_default();
    match deps.admin.sign_in(&given, now_unix()).await {
        Ok(Some(value)) => redirect(
            "/destinations",
            Some(session_cookie(value, SESSION_SECONDS)),
        ),
        Ok(None) => {
            tracing::warn!("destinations sign-in refused");
            sign_in_page(401, Some("That admin token is not right."))
        }
        Err(e) => {
            tracing::error!(error = %e, "recording the session failed");
            sign_in_page(503, Some("The sign-in could not be recorded; try again."))
        }
    }
}

async fn pipelines(deps: &ConnectDeps) -> crate::error::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut items = deps
        .dynamo()
        .scan()
        .table_name(&deps.pipelines_table)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = items.next().await {
        let item = item.map_err(|e| crate::error::Error::aws("reading the pipelines table", e))?;
        let error = crate::routing::pipelines::Pipeline::from_item(&item)
            .err()
            .map(|e| e.to_string());
        let json: serde_json::Value = serde_dynamo::from_item(item).unwrap_or_default();
        let id = json["id"].as_str().unwrap_or("<no id>").to_owned();
        let events = crate::routing::pipelines::summary(&json).events.join(", ");
        let dests = json["destinations"].as_array().cloned().unwrap_or_default();
        if dests.is_empty() {
            rows.push(Row {
                pipeline: id.clone(),
                events: events.clone(),
                index: 0,
                team: String::new(),
                channel: String::new(),
                error: error.clone(),
                outbound: None,
            });
        }
        for (i, d) in dests.iter().enumerate() {
            let outbound = outbound_row(d, i);
            let (team, channel) = match outbound {
                Some(_) => (String::new(), String::new()),
                None => (
                    d["team"].as_str().unwrap_or(DEFAULT_TEAM).to_owned(),
                    d["channel"].as_str().unwrap_or_default().to_owned(),
                ),
            };
            rows.push(Row {
                pipeline: id.clone(),
                events: events.clone(),
                index: i,
                team,
                channel,
                error: error.clone(),
                outbound,
            });
        }
    }
    rows.sort_by(|a, b| (&a.pipeline, a.index).cmp(&(&b.pipeline, b.index)));
    Ok(rows)
}

/// `GET /destinations`.
async fn overview(
    SignedIn(who): SignedIn,
    State(deps): State<ConnectDeps>,
    uri: http::Uri,
) -> Response {
    let (deps, who) = (&deps, &who);
    let csrf = deps.admin.csrf(who);
    let connections = deps.connections.list().await.unwrap_or_default();
    let paused = deps.channels.paused().await.unwrap_or_default();
    let rows = match pipelines(deps).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "reading pipelines failed");
            return page(
                503,
                "Destinations",
                html! { p { "The pipelines could not be read; reload in a moment." } },
            );
        }
    };
    let query = |name: &str| {
        uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    };
    let saved = query("saved");
    let tested = query("tested");
    let recent = latest_events(deps, &rows).await;
    let secrets = secret_states(deps, &rows).await;
    let mut channel_lists: HashMap<String, crate::error::Result<Vec<ChannelInfo>>> = HashMap::new();
    let wanted: Vec<String> = rows
        .iter()
        .map(|r| r.team.clone())
        .chain(
            connections
                .iter()
                .filter(|c| c.status == ConnectionStatus::Active)
                .map(|c| c.team_id.clone()),
        )
        .filter(|t| !t.is_empty())
        .collect();
    for team in wanted {
        if let std::collections::hash_map::Entry::Vacant(slot) = channel_lists.entry(team) {
            let list = match deps.tokens.token(slot.key()).await {
                Ok(t) => deps.slack.list_channels(&t).await,
                Err(e) => Err(e),
            };
            slot.insert(list);
        }
    }
    let body = overview::render(&Overview {
        csrf: &csrf,
        saved,
        connections: &connections,
        paused: &paused,
        rows: &rows,
        channel_lists: &channel_lists,
        recent: &recent,
        tested,
        stored: query("stored"),
        target_saved: query("target"),
        secrets: &secrets,
        secrets_on: deps.destination_secret_prefix.is_some(),
    });
    page(200, "Destinations", body)
}

/// `POST /destinations/pipelines`: one destination's channel.
async fn set_channel(
    SignedIn(who): SignedIn,
    State(deps): State<ConnectDeps>,
    body: Bytes,
) -> Response {
    let (deps, who) = (&deps, &who);
    let f = form(&body);
    if let Some(refused) = stale_form(deps, who, &f, "Not saved") {
        return refused;
    }
    let (Some(pipeline), Some(index), Some(target)) = (
        f.get("pipeline"),
        f.get("destination").and_then(|d| d.parse::<usize>().ok()),
        f.get("target"),
    ) else {
        return page(
            400,
            "Not saved",
            html! { p { "The form is missing the pipeline, destination or channel." } },
        );
    };
    let Some((team, channel)) = target.split_once('|') else {
        return page(400, "Not saved", html! { p { "Pick a channel." } });
    };
    // The pipeline function's own rules: what is saved here always loads there.
    let team = match crate::ids::parse_team(team) {
        Ok(t) => t,
        Err(e) => {
            return page(
                400,
                "Not saved",
                html! { p { "The workspace is not valid: " (e) } },
            )
        }
    };
    let channel = match ChannelRef::parse(channel) {
        Ok(c) => c,
        Err(e) => return page(400, "Not saved", html! { p { (e) } }),
    };
    let updated = deps
        .dynamo()
        .update_item()
        .table_name(&deps.pipelines_table)
        .key("id", AttributeValue::S(pipeline.clone()))
        .update_expression(format!(
            "SET destinations[{index}].channel = :c, destinations[{index}].team = :t"
        ))
        .condition_expression(format!(
            "attribute_exists(id) AND attribute_exists(destinations[{index}])"
        ))
        .expression_attribute_values(":c", AttributeValue::S(channel.as_str().to_owned()))
        .expression_attribute_values(":t", AttributeValue::S(team.clone()))
        .send()
        .await;
    match updated {
        Ok(_) => {
            tracing::info!(pipeline = %pipeline, destination = index, team = %team, channel = %channel, "destination channel changed");
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("saved", pipeline)
                .finish();
            redirect(&format!("/destinations?{q}"), None)
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            page(
                404,
                "Not saved",
                html! { p { "That pipeline or destination no longer exists." } },
            )
        }
        Err(e) => {
            tracing::error!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(e), "updating the pipeline failed");
            page(
                503,
                "Not saved",
                html! { p { "The pipeline could not be updated; try again." } },
            )
        }
    }
}

/// The `type`s of the destinations beyond Slack, as pipelines write them.
const OUTBOUND_KINDS: [&str; 5] = ["webhook", "discord", "telegram", "email", "notion"];

/// The plain setting of each target type that the page changes: the field in the pipeline
/// item and what the form calls it. Secrets are never settings.
fn setting(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "telegram" => Some(("chat_id", "Chat id")),
        "webhook" => Some(("url", "URL")),
        "email" => Some(("to", "To (comma-separated)")),
        "notion" => Some(("database", "Database")),
        _ => None,
    }
}

/// A stored destination (its JSON) as the page shows it, when it is one beyond Slack.
fn outbound_row(d: &serde_json::Value, index: usize) -> Option<OutboundRow> {
    let kind = d["type"].as_str().filter(|k| OUTBOUND_KINDS.contains(k))?;
    Some(OutboundRow {
        kind: kind.to_owned(),
        name: d["name"].as_str().map(str::to_owned),
        target: describe(d, index),
        secret: d["secret"]
            .as_str()
            .filter(|s| valid_secret_name(s))
            .map(str::to_owned),
        setting: setting(kind).map(|(field, label)| Setting {
            field,
            label,
            current: shown(&d[field]),
        }),
    })
}

/// A stored setting as a text field shows it: a list joined with ", ".
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The target of destination `index` (its JSON) as [`crate::outbound::message::Target::describe`]
/// names it, parsed on its own by the pipeline function's rules (so a disabled or otherwise
/// broken pipeline still shows it), or why it does not load.
fn describe(d: &serde_json::Value, index: usize) -> Result<String, String> {
    let alone = serde_json::json!({
        "id": "destinations-page",
        "events": ["example"],
        "destinations": [d],
    });
    match Pipeline::from_json(&alone) {
        Ok(Some(p)) => match p.destinations.into_iter().next() {
            Some(Destination::Outbound(o)) => Ok(o.target.describe()),
            _ => Err("not a destination beyond Slack".to_owned()),
        },
        Ok(None) => Err("not readable".to_owned()),
        Err(e) => Err(format!(
            "{}: {}",
            e.field
                .replacen("destinations[0]", &format!("destinations[{index}]"), 1),
            e.message
        )),
    }
}

/// Whether each destination secret the rows name is stored (one DescribeSecret per name,
/// at once); empty when the stack stores no destination secrets.
async fn secret_states(deps: &ConnectDeps, rows: &[Row]) -> HashMap<String, SecretState> {
    let Some(prefix) = &deps.destination_secret_prefix else {
        return HashMap::new();
    };
    let mut names: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.outbound.as_ref()?.secret.as_deref())
        .collect();
    names.sort_unstable();
    names.dedup();
    let states = futures_util::future::join_all(
        names
            .iter()
            .map(|name| secret_state(&deps.secrets, prefix, name)),
    )
    .await;
    names.into_iter().map(str::to_owned).zip(states).collect()
}

/// Whether the destination secret `name` has a current value; an error is `Unknown` with
/// its reason, never a failed page.
#[tracing::instrument(skip_all, fields(secret = %name))]
async fn secret_state(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    name: &str,
) -> SecretState {
    let described = client
        .describe_secret()
        .secret_id(secret_id(prefix, name))
        .send()
        .await;
    match described {
        Ok(d) if d.deleted_date().is_some() => SecretState::Deleted,
        Ok(d) => {
            let current = d
                .version_ids_to_stages()
                .is_some_and(|v| v.values().flatten().any(|stage| stage == "AWSCURRENT"));
            if current {
                SecretState::Stored
            } else {
                SecretState::Missing
            }
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            SecretState::Missing
        }
        Err(e) => {
            let e = crate::error::Error::aws(format!("checking the secret {name}"), e);
            tracing::warn!(error = %e, "checking a destination secret failed");
            SecretState::Unknown(e.to_string())
        }
    }
}

/// A stored pipeline item as JSON, read consistently; `Err` is the answer to send.
async fn stored_pipeline(
    deps: &ConnectDeps,
    id: &str,
    title: &str,
) -> Result<serde_json::Value, Response> {
    let item = deps
        .dynamo()
        .get_item()
        .table_name(&deps.pipelines_table)
        .key("id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| {
            tracing::error!(pipeline = %id, error = %aws_sdk_dynamodb::error::DisplayErrorContext(e), "reading the pipeline failed");
            page(
                503,
                title,
                html! { p { "The pipeline could not be read; try again." } },
            )
        })?
        .item
        .ok_or_else(|| page(404, title, html! { p { "There is no pipeline " (id) "." } }))?;
    serde_dynamo::from_item(item).map_err(|e| {
        page(
            400,
            title,
            html! { p { "The pipeline " (id) " is not readable: " (e) } },
        )
    })
}

/// `POST /destinations/secrets`: stores (or replaces) the secret of one destination beyond
/// Slack under the stack's key. The secret is the one the stored pipeline names for that
/// destination; the form's `secret` only has to agree with it (else the pipeline changed
/// since the page was read). The value is never logged, echoed or shown.
async fn store_secret(
    SignedIn(who): SignedIn,
    State(deps): State<ConnectDeps>,
    body: Bytes,
) -> Response {
    const TITLE: &str = "Not stored";
    let (deps, who) = (&deps, &who);
    let mut f = form(&body);
    if let Some(refused) = stale_form(deps, who, &f, TITLE) {
        return refused;
    }
    let value = secrecy::SecretString::from(f.remove("value").unwrap_or_default());
    let (Some(pipeline), Some(index), Some(named)) = (
        f.get("pipeline"),
        f.get("destination").and_then(|d| d.parse::<usize>().ok()),
        f.get("secret"),
    ) else {
        return page(
            400,
            TITLE,
            html! { p { "The form is missing the pipeline, destination or secret name." } },
        );
    };
    let value = value.expose_secret().trim();
    if value.is_empty() {
        return page(
            400,
            TITLE,
            html! { p { "Enter the secret's value: an empty value is not stored." } },
        );
    }
    let Some(prefix) = &deps.destination_secret_prefix else {
        return page(
            404,
            TITLE,
            html! { p { "This stack stores no destination secrets: DESTINATION_SECRET_PREFIX is not set." } },
        );
    };
    let doc = match stored_pipeline(deps, pipeline, TITLE).await {
        Ok(d) => d,
        Err(answer) => return answer,
    };
    let Some(dest) = doc["destinations"].get(index) else {
        return page(
            404,
            TITLE,
            html! { p { "That pipeline or destination no longer exists." } },
        );
    };
    let Some(name) = dest["secret"].as_str() else {
        return page(
            400,
            TITLE,
            html! { p { "Destination " (index) " of " (pipeline) " has no secret." } },
        );
    };
    if name != named {
        return page(
            409,
            TITLE,
            html! { p { "The pipeline changed since the page was read: destination " (index) " of " (pipeline) " now uses the secret " (name) ". Reload the page and try again." } },
        );
    }
    let key = Some(deps.kms_key_id.as_str()).filter(|k| !k.is_empty());
    match put_secret(&deps.secrets, prefix, name, value, key).await {
        Ok(()) => {
            tracing::info!(pipeline = %pipeline, destination = index, secret = %name, "destination secret stored from the destinations page");
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("stored", name)
                .finish();
            redirect(&format!("/destinations?{q}"), None)
        }
        Err(e @ crate::error::Error::Invalid { .. }) => page(400, TITLE, html! { p { (e) } }),
        Err(e) => {
            tracing::error!(pipeline = %pipeline, destination = index, secret = %name, error = %e, "storing a destination secret failed");
            page(
                503,
                TITLE,
                html! { p { "The secret could not be stored; try again." } },
            )
        }
    }
}

/// A setting's text from the form as the pipeline item holds it: `to` as the list of its
/// comma-separated addresses, a numeric `chat_id` as a number, anything else as its text.
fn setting_value(field: &str, text: &str) -> serde_json::Value {
    let text = text.trim();
    match field {
        "to" => text
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(serde_json::Value::from)
            .collect(),
        "chat_id" => text
            .parse::<i64>()
            .map_or_else(|_| serde_json::Value::from(text), serde_json::Value::from),
        _ => serde_json::Value::from(text),
    }
}

/// `POST /destinations/targets`: one destination's plain target setting (which one follows
/// from the stored destination's type, never from the form). The whole updated pipeline
/// must load by the pipeline function's rules (a disabled one as if enabled); the write is
/// conditional on the version read and bumps it, so `ingestlayer pipelines apply` sees it.
async fn set_target(
    SignedIn(who): SignedIn,
    State(deps): State<ConnectDeps>,
    body: Bytes,
) -> Response {
    const TITLE: &str = "Not saved";
    let (deps, who) = (&deps, &who);
    let f = form(&body);
    if let Some(refused) = stale_form(deps, who, &f, TITLE) {
        return refused;
    }
    let (Some(pipeline), Some(index), Some(text)) = (
        f.get("pipeline"),
        f.get("destination").and_then(|d| d.parse::<usize>().ok()),
        f.get("value"),
    ) else {
        return page(
            400,
            TITLE,
            html! { p { "The form is missing the pipeline, destination or value." } },
        );
    };
    let doc = match stored_pipeline(deps, pipeline, TITLE).await {
        Ok(d) => d,
        Err(answer) => return answer,
    };
    let Some(kind) = doc["destinations"]
        .get(index)
        .map(|d| d["type"].as_str().unwrap_or_default().to_owned())
    else {
        return page(
            404,
            TITLE,
            html! { p { "That pipeline or destination no longer exists." } },
        );
    };
    let Some((field, _)) = setting(&kind) else {
        return page(
            400,
            TITLE,
            html! { p { "Destination " (index) " of " (pipeline) " has no target setting to change here." } },
        );
    };
    let new = setting_value(field, text);
    let mut check = doc.clone();
    check["destinations"][index][field] = new.clone();
    check["enabled"] = serde_json::Value::Bool(true);
    if let Err(e) = Pipeline::from_json(&check) {
        return page(400, TITLE, html! { p { (e) } });
    }
    let value = match serde_dynamo::to_attribute_value::<_, AttributeValue>(&new) {
        Ok(v) => v,
        Err(e) => {
            return page(
                400,
                TITLE,
                html! { p { "The value is not storable: " (e) } },
            )
        }
    };
    let read = doc["version"].as_u64();
    let update = deps
        .dynamo()
        .update_item()
        .table_name(&deps.pipelines_table)
        .key("id", AttributeValue::S(pipeline.clone()))
        .update_expression(format!(
            "SET destinations[{index}].#f = :v, #version = :next"
        ))
        .expression_attribute_names("#f", field)
        .expression_attribute_names("#type", "type")
        .expression_attribute_names("#version", "version")
        .expression_attribute_values(":v", value)
        .expression_attribute_values(":type", AttributeValue::S(kind.clone()))
        .expression_attribute_values(
            ":next",
            AttributeValue::N((read.unwrap_or(0) + 1).to_string()),
        );
    let update = match read {
        Some(v) => update
            .condition_expression(format!(
                "attribute_exists(id) AND destinations[{index}].#type = :type AND #version = :read"
            ))
            .expression_attribute_values(":read", AttributeValue::N(v.to_string())),
        None => update.condition_expression(format!(
            "attribute_exists(id) AND destinations[{index}].#type = :type AND attribute_not_exists(#version)"
        )),
    };
    match update.send().await {
        Ok(_) => {
            tracing::info!(pipeline = %pipeline, destination = index, kind = %kind, field, "destination target changed");
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("target", pipeline)
                .finish();
            redirect(&format!("/destinations?{q}"), None)
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            page(
                409,
                TITLE,
                html! { p { "The pipeline changed since it was read (or no longer has that destination); reload the page and try again." } },
            )
        }
        Err(e) => {
            tracing::error!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(e), "updating the pipeline failed");
            page(
                503,
                TITLE,
                html! { p { "The pipeline could not be updated; try again." } },
            )
        }
    }
}

/// How many of a pipeline's latest events the page shows.
pub const LATEST_EVENTS: usize = 50;

/// What a test message from the page says of itself.
pub const PAGE_TEST_MARK: &str =
    "test: sent with the destinations page's Send test button, not a real event";

/// Each pipeline's latest events from the journey (one Query each); a pipeline whose events
/// could not be read is left out (the page says so).
async fn latest_events(deps: &ConnectDeps, rows: &[Row]) -> HashMap<String, Vec<Vec<Record>>> {
    let mut out = HashMap::new();
    let Some(journey) = &deps.journey else {
        return out;
    };
    for row in rows.iter().filter(|r| r.index == 0) {
        match journey.recent(&row.pipeline, LATEST_EVENTS).await {
            Ok(list) => {
                out.insert(row.pipeline.clone(), list);
            }
            Err(e) => {
                tracing::warn!(pipeline = %row.pipeline, error = %e, "reading a pipeline's latest events failed");
            }
        }
    }
    out
}

/// `POST /destinations/test`: the pipeline's message for its latest stored event (a sample
/// one when it has none), filters skipped, enriched as the pipeline function would, marked
/// as a test and queued for its channels.
async fn send_test(
    SignedIn(who): SignedIn,
    State(deps): State<ConnectDeps>,
    body: Bytes,
) -> Response {
    let (deps, who) = (&deps, &who);
    let f = form(&body);
    if let Some(refused) = stale_form(deps, who, &f, "Not sent") {
        return refused;
    }
    let Some(id) = f.get("pipeline").filter(|p| !p.is_empty()) else {
        return page(
            400,
            "Not sent",
            html! { p { "The form does not name a pipeline." } },
        );
    };
    match test_message(deps, id).await {
        Ok((channels, from)) => {
            tracing::info!(pipeline = %id, channels = channels.len(), "test message queued from the destinations page");
            let said = if channels.is_empty() {
                format!("{id} has no destination: nothing was sent.")
            } else {
                format!(
                    "Test message of {id} queued for {} ({from}).",
                    channels.join(", ")
                )
            };
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("tested", &said)
                .finish();
            redirect(&format!("/destinations?{q}"), None)
        }
        Err(TestRefused(status, why)) => page(status, "Not sent", html! { p { (why) } }),
    }
}

/// Why "Send test" sent nothing: the status and what to do.
struct TestRefused(u16, String);

/// Renders and queues the test message of pipeline `id`: the channels, and which event it
/// was made from.
async fn test_message(deps: &ConnectDeps, id: &str) -> Result<(Vec<String>, String), TestRefused> {
    let unavailable = |what: &str, e: crate::error::Error| {
        tracing::error!(pipeline = %id, error = %e, "{what} failed");
        TestRefused(503, format!("{what} failed; try again in a moment."))
    };
    let item = deps
        .dynamo()
        .get_item()
        .table_name(&deps.pipelines_table)
        .key("id", AttributeValue::S(id.to_owned()))
        .send()
        .await
        .map_err(|e| {
            unavailable(
                "Reading the pipeline",
                crate::error::Error::aws("reading the pipeline", e),
            )
        })?
        .item
        .ok_or_else(|| TestRefused(404, format!("There is no pipeline {id}.")))?;
    let json: serde_json::Value = serde_dynamo::from_item(item)
        .map_err(|e| TestRefused(400, format!("The pipeline {id} is not readable: {e}")))?;
    let pipeline = crate::routing::test_message::unfiltered(&json)
        .map_err(|e| TestRefused(400, format!("The pipeline {id} does not load: {e}")))?;
    let Some(entities) = &deps.entities else {
        return Err(TestRefused(
            404,
            "Send test needs the entities table (ENTITIES_TABLE).".into(),
        ));
    };
    let mut event = None;
    if let (Some(journey), Some(events)) = (&deps.journey, &deps.events) {
        let latest = journey
            .recent(id, 5)
            .await
            .map_err(|e| unavailable("Reading the latest events", e))?;
        for records in latest {
            let Some(first) = records.first() else {
                continue;
            };
            if let Some(e) = events
                .get(&first.event_id)
                .await
                .map_err(|e| unavailable("Reading the latest event", e))?
            {
                event = Some(e);
                break;
            }
        }
    }
    let (event, from) = match event {
        Some(e) => {
            let from = format!("from event {}", e.id.as_str());
            (e, from)
        }
        None => {
            let name = pipeline
                .events
                .first()
                .map(|p| p.example())
                .ok_or_else(|| {
                    TestRefused(400, format!("The pipeline {id} listens to no event."))
                })?;
            let sample = crate::event::Envelope {
                id: crate::event::EventId::generate(),
                name,
                time: None,
                received_at: time::OffsetDateTime::now_utc(),
                source: "test".into(),
                data: serde_json::json!({}),
                cloudevent: None,
                webhook: None,
            };
            (
                sample,
                "from a sample event with no fields: no event has reached it yet".to_owned(),
            )
        }
    };
    let deliveries = crate::routing::test_message::render(pipeline, &event, entities)
        .await
        .map_err(|e| unavailable("Enriching the event", e))?;
    let channels = crate::routing::test_message::send(
        &deps.sqs,
        &deps.slack_queue_url,
        &deliveries,
        PAGE_TEST_MARK,
    )
    .await
    .map_err(|e| unavailable("Queueing the test message", e))?;
    Ok((channels, from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_slack_destination_is_not_a_row_beyond_slack() {
        assert!(outbound_row(&json!({"type": "slack", "channel": "#alerts"}), 0).is_none());
    }

    #[test]
    fn a_destination_beyond_slack_shows_its_target_secret_name_and_setting() {
        let d = json!({"type": "telegram", "secret": "tg-bot", "chat_id": -100123});
        let row = outbound_row(&d, 2).unwrap();
        assert_eq!(row.kind, "telegram");
        assert_eq!(row.target, Ok("telegram chat -100123".to_owned()));
        assert_eq!(row.secret.as_deref(), Some("tg-bot"));
        let s = row.setting.unwrap();
        assert_eq!((s.field, s.current.as_str()), ("chat_id", "-100123"));
        let email = json!({"type": "email", "from": "a@x.io", "to": ["b@x.io", "c@x.io"]});
        let row = outbound_row(&email, 0).unwrap();
        assert!(row.secret.is_none());
        assert_eq!(row.setting.unwrap().current, "b@x.io, c@x.io");
    }

    #[test]
    fn a_broken_destination_says_which_field_of_it_is_wrong() {
        let d = json!({"type": "telegram", "secret": "tg-bot", "chat_id": "general"});
        let why = outbound_row(&d, 3).unwrap().target.unwrap_err();
        assert!(why.starts_with("destinations[3].chat_id: "), "{why}");
    }

    /// A Secrets Manager client answering DescribeSecret with `rule`.
    fn secrets_answering(rule: aws_smithy_mocks::Rule) -> aws_sdk_secretsmanager::Client {
        let interceptor = aws_smithy_mocks::MockResponseInterceptor::new().with_rule(&rule);
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    #[tokio::test]
    async fn a_secret_that_cannot_be_checked_is_unknown_with_the_reason() {
        use aws_sdk_secretsmanager::operation::describe_secret::{
            DescribeSecretError, DescribeSecretOutput,
        };
        use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
        use aws_smithy_mocks::mock;
        use aws_smithy_types::error::ErrorMetadata;

        let denied = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_error(|| {
            DescribeSecretError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized to perform secretsmanager:DescribeSecret")
                    .build(),
            )
        });
        let state = secret_state(&secrets_answering(denied), "p/destinations", "hook").await;
        let SecretState::Unknown(why) = state else {
            panic!("an error is not a state");
        };
        assert!(why.contains("checking the secret hook"), "{why}");
        assert!(why.contains("AccessDeniedException"), "{why}");

        let absent = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_error(|| {
            DescribeSecretError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            )
        });
        let state = secret_state(&secrets_answering(absent), "p/destinations", "hook").await;
        assert!(matches!(state, SecretState::Missing));

        let no_value = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_output(|| {
            DescribeSecretOutput::builder()
                .name("p/destinations/hook")
                .build()
        });
        let state = secret_state(&secrets_answering(no_value), "p/destinations", "hook").await;
        assert!(matches!(state, SecretState::Missing), "no current value");

        let current = mock!(aws_sdk_secretsmanager::Client::describe_secret)
            .match_requests(|r| r.secret_id() == Some("p/destinations/hook"))
            .then_output(|| {
                DescribeSecretOutput::builder()
                    .version_ids_to_stages("v1", vec!["AWSCURRENT".to_owned()])
                    .build()
            });
        let state = secret_state(&secrets_answering(current), "p/destinations/", "hook").await;
        assert!(matches!(state, SecretState::Stored));

        let deleted = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_output(|| {
            DescribeSecretOutput::builder()
                .version_ids_to_stages("v1", vec!["AWSCURRENT".to_owned()])
                .deleted_date(aws_smithy_types::DateTime::from_secs(1))
                .build()
        });
        let state = secret_state(&secrets_answering(deleted), "p/destinations", "hook").await;
        assert!(matches!(state, SecretState::Deleted));
    }

    #[test]
    fn setting_text_becomes_what_the_item_holds() {
        assert_eq!(setting_value("chat_id", " -100123 "), json!(-100123));
        assert_eq!(setting_value("chat_id", "@channel"), json!("@channel"));
        assert_eq!(
            setting_value("to", "a@x.io, b@x.io,,"),
            json!(["a@x.io", "b@x.io"])
        );
        assert_eq!(setting_value("to", " "), json!([]));
        assert_eq!(
            setting_value("url", " https://x.io/h "),
            json!("https://x.io/h")
        );
    }
}
