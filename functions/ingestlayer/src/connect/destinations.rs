//! The destinations page: connected workspaces with an "Add to Slack" button, each
//! pipeline's destination channel picked from its workspace's channels, and paused
//! channels and workspaces with their reasons. Server-rendered, no front-end build.
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

use crate::connect::admin_session::{Admin, SESSION_SECONDS};
use maud::html;

use crate::connect::overview::{self, Overview, Row};
use crate::connect::page::page;
use crate::connect::{now_unix, ConnectDeps};
use crate::ids::{ChannelRef, DEFAULT_TEAM};
use crate::journey::Record;
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
            });
        }
        for (i, d) in dests.iter().enumerate() {
            rows.push(Row {
                pipeline: id.clone(),
                events: events.clone(),
                index: i,
                team: d["team"].as_str().unwrap_or(DEFAULT_TEAM).to_owned(),
                channel: d["channel"].as_str().unwrap_or_default().to_owned(),
                error: error.clone(),
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
