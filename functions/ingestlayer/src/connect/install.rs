//! Connecting a workspace: `GET /slack/install` redirects a signed-in admin to Slack's
//! consent page with a signed, expiring, single-use state; `GET /slack/oauth/callback`
//! checks the state, exchanges the code, stores the bot token in the workspace's own
//! secret and records the connection.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use http::HeaderMap;
use time::OffsetDateTime;

use maud::{html, Markup};

use crate::connect::page::page;
use crate::connect::{now_unix, ConnectDeps};
use crate::delivery::channel_state::team_pk;
use crate::error::Error;
use crate::slack::oauth::{authorize_url, AppCredentials, STATE_TTL};

/// `GET /slack/install`: only a signed-in admin may start an install; the state it gets
/// is the only way through the callback (signed, expiring, single-use).
pub(crate) async fn start(State(deps): State<ConnectDeps>, headers: HeaderMap) -> Response {
    match crate::connect::destinations::signed_in(&headers, &deps).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return page(
                401,
                "Sign in first",
                html! { p { "Connecting Slack needs the admin token: " a href="/destinations" { "sign in" } ", then use Add to Slack." } },
            )
        }
        Err(answer) => return answer,
    }
    match deps.app.get().await {
        Ok(app) => install(&deps.redirect_uri(&headers), &app, &deps),
        Err(e) => app_unusable(&e),
    }
}

/// `GET /slack/oauth/callback`.
pub(crate) async fn finish(
    State(deps): State<ConnectDeps>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let params = query.map(|Query(q)| q).unwrap_or_default();
    callback(&params, &deps.redirect_uri(&headers), &deps).await
}

/// The page for a request that needs the Slack app's credentials when they are unusable:
/// what to put in the secret when it is a placeholder; only "try again" when it could not
/// be read (the cause goes to the log, not the page).
pub(crate) fn app_unusable(e: &Error) -> Response {
    if let Error::AppNotConfigured { .. } = e {
        tracing::warn!(reason = %e, "a Slack request needs the app's credentials");
        return page(503, "Slack is not set up yet", html! { p { (e) } });
    }
    tracing::error!(error = %e, "reading the Slack app's credentials failed");
    page(
        503,
        "Try again",
        html! { p { "The Slack app's credentials could not be read; try again in a moment." } },
    )
}

fn install(redirect_uri: &str, app: &AppCredentials, deps: &ConnectDeps) -> Response {
    let state = deps.states.issue(now_unix());
    let url = authorize_url(&deps.authorize_base, &app.client_id, redirect_uri, &state);
    let mut r = Response::new(axum::body::Body::empty());
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

async fn callback(
    params: &HashMap<String, String>,
    redirect_uri: &str,
    deps: &ConnectDeps,
) -> Response {
    if let Some(error) = params.get("error") {
        let why = if error == "access_denied" {
            "The install was cancelled in Slack.".to_owned()
        } else {
            format!("Slack reported: {error}")
        };
        return page(
            400,
            "Slack was not connected",
            html! { p { (why) } p { a href="/slack/install" { "Try again" } } },
        );
    }
    let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
        return page(
            400,
            "Slack was not connected",
            html! { p { "The callback is missing its code or state. Start from " a href="/slack/install" { "Add to Slack" } "." } },
        );
    };
    let nonce = match deps.states.verify(state, now_unix()) {
        Ok(n) => n,
        Err(e) => {
            return page(
                400,
                "Slack was not connected",
                html! { p { (e) "." } (start_again()) },
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
                html! { p { (e) "." } (start_again()) },
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record the OAuth state");
            return page(
                503,
                "Try again",
                html! { p { "The install could not be recorded; try again in a moment." } },
            );
        }
    }
    let app = match deps.app.get().await {
        Ok(app) => app,
        Err(e) => return app_unusable(&e),
    };
    let access = match deps.oauth.exchange(&app, code, redirect_uri).await {
        Ok(a) => a,
        Err(Error::SlackRefused { code: e, .. }) => {
            tracing::warn!(slack_error = %e, "Slack refused the OAuth code exchange");
            return page(
                502,
                "Slack was not connected",
                html! { p { "Slack refused the install: " code { (e) } ". Nothing was stored." } (start_again()) },
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "OAuth code exchange failed");
            return page(
                502,
                "Slack was not connected",
                html! { p { "Slack could not be reached. Nothing was stored." } (start_again()) },
            );
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
            page(
                200,
                "Slack connected",
                html! {
                    p { "Connected to " strong { (c.team_name) } " (" (c.team_id) ")." }
                    p { a href="/destinations" { "Pick channels for your pipelines" } }
                },
            )
        }
        Err(e) => {
            tracing::error!(error = %e, team = %access.team_id, "could not store the Slack connection");
            page(
                503,
                "Try again",
                html! { p { "The token could not be stored; run the install again." } },
            )
        }
    }
}

fn start_again() -> Markup {
    html! { p { a href="/slack/install" { "Start again" } } }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn a_placeholder_app_secret_shows_what_to_fill_in() {
        let e = Error::AppNotConfigured {
            source: std::sync::Arc::new(Error::reason("the Slack app secret has no client_id")),
        };
        let r = app_unusable(&e);
        assert_eq!(r.status(), 503);
        let page = body(r).await;
        assert!(page.contains("not configured yet"), "{page}");
        assert!(page.contains("has no client_id"), "{page}");
    }

    #[tokio::test]
    async fn an_unreadable_app_secret_keeps_its_cause_out_of_the_page() {
        let e = Error::Upstream {
            what: "reading the Slack app secret".into(),
            detail: "dispatch failure: arn:aws:secretsmanager:internal".into(),
            retryable: true,
        };
        let r = app_unusable(&e);
        assert_eq!(r.status(), 503);
        let page = body(r).await;
        assert!(!page.contains("arn:aws"), "{page}");
        assert!(page.contains("try again"), "{page}");
    }
}
