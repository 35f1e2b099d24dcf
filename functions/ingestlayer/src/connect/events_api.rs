//! `POST /slack/events`, Slack's Events API: the signature checked, `url_verification`
//! answered, `app_uninstalled` / `tokens_revoked` pause the workspace, and
//! `member_joined_channel` for the bot lifts its channel's pause and redrives the backlog.
//! A failure to record any of it answers 503, so Slack retries the event.

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::connect::page::json_response;
use crate::connect::{now_unix, ConnectDeps};
use crate::delivery::channel_state::{team_pk, Pause};

/// `POST /slack/events`.
pub(crate) async fn receive(
    State(deps): State<ConnectDeps>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    events(&headers, &body, &deps).await
}

async fn events(headers: &HeaderMap, body: &[u8], deps: &ConnectDeps) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let app = match deps.app.get().await {
        Ok(app) => app,
        Err(e @ crate::error::Error::AppNotConfigured { .. }) => {
            tracing::warn!(reason = %e, "a Slack event arrived before the app's signing secret was set");
            return json_response(503, &json!({"error": e.to_string()}));
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the Slack app's signing secret failed");
            return json_response(
                503,
                &json!({"error": "the app's signing secret could not be read; retry"}),
            );
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
async fn member_joined(team: &str, event: &Value, deps: &ConnectDeps) -> Response {
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
pub(crate) async fn default_bot(deps: &ConnectDeps) -> Option<(String, String)> {
    deps.default_bot
        .get_or_try_init(|| async {
            let token = deps.tokens.token(crate::ids::DEFAULT_TEAM).await?;
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
