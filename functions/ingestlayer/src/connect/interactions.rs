//! `POST /slack/interactions`, Slack's interactivity: a click on a message's Mute button.
//!
//! The request is signed as Events API requests are (v0, the app's signing secret, a
//! 5-minute window, compared in constant time): anything else is 401. Its form body holds
//! `payload=<json>`, a `block_actions` payload. A click on our button (`action_id`
//! [`MUTE_ACTION`], `value` `{"p": pipeline, "k": key, "d": duration ms}`) writes the mute
//! ([`crate::routing::mutes`]) and then updates the message with chat.update (the bot token of
//! the payload's workspace): the button gives way to "Muted for <key> by <@U…> until <date>".
//! Any other payload is answered 200 and nothing is done. Slack wants an answer within 3 s,
//! so the update has [`UPDATE_BUDGET`]; a mute that is stored is answered 200 even when the
//! update fails (logged), and a mute that could not be stored 503, which Slack shows the
//! person as a failed action.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::connect::page::json_response;
use crate::connect::{now_unix, ConnectDeps};
use crate::error::{Error, Result};
use crate::routing::mutes::Mute;
use crate::slack::block_kit::{escape, limits, mrkdwn};

/// The Mute button's `action_id`.
pub const MUTE_ACTION: &str = "ingestlayer_mute";
/// The longest mute a button may ask for.
pub const MAX_MUTE_MS: i64 = 366 * 24 * 3600 * 1000;
/// How long the message update may take before the click is answered anyway.
pub const UPDATE_BUDGET: Duration = Duration::from_millis(2000);
/// The longest pipeline id and key a button may carry.
const MAX_PIPELINE: usize = 128;
const MAX_KEY: usize = 1024;

/// A click on a Mute button, read from a `block_actions` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteClick {
    pub team: String,
    pub user: String,
    pub channel: String,
    pub ts: String,
    pub pipeline: String,
    pub key: String,
    pub duration_ms: i64,
    /// The message as it is now: its fallback text and blocks.
    pub text: String,
    pub blocks: Vec<Value>,
}

impl MuteClick {
    /// The click, when `payload` is a `block_actions` payload of a message whose action is
    /// our Mute button with a well-formed value; `None` for anything else.
    pub fn parse(payload: &Value) -> Option<Self> {
        if payload["type"] != "block_actions" {
            return None;
        }
        let action = payload["actions"]
            .as_array()?
            .iter()
            .find(|a| a["action_id"] == MUTE_ACTION)?;
        let value: Value = serde_json::from_str(action["value"].as_str()?).ok()?;
        let pipeline = value["p"].as_str()?.to_owned();
        let key = value["k"].as_str()?.to_owned();
        let duration_ms = value["d"].as_i64()?;
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let click = MuteClick {
            team: text(&payload["team"]["id"]).or_else(|| text(&payload["user"]["team_id"]))?,
            user: text(&payload["user"]["id"]).filter(|u| is_user_id(u))?,
            channel: text(&payload["container"]["channel_id"])
                .or_else(|| text(&payload["channel"]["id"]))?,
            ts: text(&payload["container"]["message_ts"])
                .or_else(|| text(&payload["message"]["ts"]))?,
            text: payload["message"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            blocks: payload["message"]["blocks"].as_array()?.clone(),
            pipeline,
            key,
            duration_ms,
        };
        let sane = !click.pipeline.is_empty()
            && click.pipeline.len() <= MAX_PIPELINE
            && !click.key.is_empty()
            && click.key.len() <= MAX_KEY
            && (1..=MAX_MUTE_MS).contains(&click.duration_ms);
        sane.then_some(click)
    }

    /// The mute this click sets at `now_ms`.
    pub fn mute(&self, now_ms: i64) -> Mute {
        Mute {
            pipeline: self.pipeline.clone(),
            key: self.key.clone(),
            until_ms: now_ms + self.duration_ms,
            by: self.user.clone(),
            at_ms: now_ms,
        }
    }
}

/// A Slack user id (`U…`/`W…`, capitals and digits): the only thing put inside `<@…>`.
fn is_user_id(id: &str) -> bool {
    id.len() <= 32
        && id.starts_with(['U', 'W'])
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// "Muted for <key> by <@U…> until <date>", the date in each reader's time zone (Slack's
/// `<!date>`), with a UTC fallback.
pub fn muted_line(mute: &Mute) -> String {
    let secs = mute.until_ms.div_euclid(1000);
    let fallback = time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| secs.to_string());
    format!(
        "Muted for {} by <@{}> until <!date^{secs}^{{date_short_pretty}} {{time}}|{fallback}>",
        escape(&mute.key),
        mute.by
    )
}

/// The message's blocks after the mute: the Mute button leaves its actions block (the
/// block goes when nothing is left in it), and the muted line takes its place. Within
/// Block Kit's limits (a line that finds no room replaces the button's block's last place).
pub fn muted_blocks(blocks: &[Value], mute: &Mute) -> Vec<Value> {
    let line = json!({"type": "context", "elements": [mrkdwn(muted_line(mute))]});
    let mut out = Vec::with_capacity(blocks.len() + 1);
    let mut placed = false;
    for block in blocks {
        let has_button = block["type"] == "actions"
            && block["elements"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["action_id"] == MUTE_ACTION));
        if !has_button {
            out.push(block.clone());
            continue;
        }
        let mut kept = block.clone();
        if let Some(elements) = kept["elements"].as_array_mut() {
            elements.retain(|e| e["action_id"] != MUTE_ACTION);
            if !elements.is_empty() {
                out.push(kept);
            }
        }
        if !placed {
            out.push(line.clone());
            placed = true;
        }
    }
    if !placed {
        if out.len() >= limits::BLOCKS {
            out.truncate(limits::BLOCKS - 1);
        }
        out.push(line);
    }
    out.truncate(limits::BLOCKS);
    out
}

/// `POST /slack/interactions`.
pub(crate) async fn receive(
    State(deps): State<ConnectDeps>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let app = match deps.app.get().await {
        Ok(app) => app,
        Err(e @ Error::AppNotConfigured { .. }) => {
            tracing::warn!(reason = %e, "a Slack interaction arrived before the app's signing secret was set");
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
        &body,
        now_unix(),
    ) {
        tracing::warn!(reason = %e, "Slack interaction refused");
        return json_response(401, &json!({"error": e.to_string()}));
    }
    let payload = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .and_then(|(_, v)| serde_json::from_str::<Value>(&v).ok());
    let Some(payload) = payload else {
        return json_response(
            400,
            &json!({"error": "the body is not a form with a JSON `payload` field"}),
        );
    };
    let Some(click) = MuteClick::parse(&payload) else {
        tracing::info!(
            kind = payload["type"].as_str().unwrap_or_default(),
            "an interaction that is not a click on our Mute button; nothing done"
        );
        return json_response(200, &json!({}));
    };
    let Some(store) = &deps.mutes else {
        tracing::error!("a Mute click arrived but STATE_TABLE is not set; nothing muted");
        return json_response(
            503,
            &json!({"error": "mutes are not configured (STATE_TABLE)"}),
        );
    };
    let now_ms = now_unix() * 1000;
    let mute = click.mute(now_ms);
    if let Err(e) = store.mute(&mute).await {
        tracing::error!(pipeline = %mute.pipeline, error = %e, "could not store the mute");
        return json_response(
            503,
            &json!({"error": "the mute could not be stored; try again"}),
        );
    }
    tracing::info!(pipeline = %mute.pipeline, by = %mute.by, until_ms = mute.until_ms, outcome = "muted", "muted from Slack");
    let blocks = muted_blocks(&click.blocks, &mute);
    match tokio::time::timeout(UPDATE_BUDGET, update(&click, &blocks, &deps)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "muted, but the message could not be updated")
        }
        Err(_) => tracing::warn!("muted, but updating the message took too long"),
    }
    json_response(200, &json!({}))
}

/// chat.update with the bot token of the click's workspace.
async fn update(click: &MuteClick, blocks: &[Value], deps: &ConnectDeps) -> Result<()> {
    let token = team_token(&click.team, deps).await?;
    deps.slack
        .update_message(&token, &click.channel, &click.ts, &click.text, blocks)
        .await
}

/// The bot token of workspace `team` (a Slack team id): its connection's, or the default
/// workspace's when that is the team.
async fn team_token(team: &str, deps: &ConnectDeps) -> Result<SecretString> {
    if deps.connections.get(team).await?.is_some() {
        return deps.tokens.token(team).await;
    }
    match crate::connect::events_api::default_bot(deps).await {
        Some((default_team, _)) if default_team == team => {
            deps.tokens.token(crate::ids::DEFAULT_TEAM).await
        }
        _ => Err(Error::NotConnected {
            team: team.to_owned(),
            revoked: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(value: &str) -> Value {
        json!({
            "type": "block_actions",
            "user": {"id": "U0ADA", "team_id": "T1"},
            "team": {"id": "T1"},
            "container": {"type": "message", "message_ts": "1.000100", "channel_id": "C1"},
            "message": {"ts": "1.000100", "text": "fallback", "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}},
                {"type": "actions", "elements": [
                    {"type": "button", "action_id": "open", "url": "https://x"},
                    {"type": "button", "action_id": MUTE_ACTION, "value": value}
                ]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "ctx"}]}
            ]},
            "actions": [{"action_id": MUTE_ACTION, "value": value}]
        })
    }

    #[test]
    fn a_click_on_our_button_reads_as_a_mute_from_now() {
        let click =
            MuteClick::parse(&payload(r#"{"p":"logins","k":"acme","d":604800000}"#)).unwrap();
        assert_eq!(click.team, "T1");
        assert_eq!(click.channel, "C1");
        assert_eq!(click.ts, "1.000100");
        let m = click.mute(1_700_000_000_000);
        assert_eq!(
            m,
            Mute {
                pipeline: "logins".into(),
                key: "acme".into(),
                until_ms: 1_700_604_800_000,
                by: "U0ADA".into(),
                at_ms: 1_700_000_000_000,
            }
        );
    }

    #[test]
    fn anything_but_a_well_formed_click_on_our_button_is_not_ours() {
        for value in [
            "not json",
            r#"{"p":"","k":"a","d":1000}"#,
            r#"{"p":"x","k":"","d":1000}"#,
            r#"{"p":"x","k":"a","d":0}"#,
            r#"{"p":"x","k":"a","d":-5}"#,
            r#"{"p":"x","k":"a","d":999999999999999}"#,
            r#"{"p":"x","k":"a"}"#,
        ] {
            assert_eq!(MuteClick::parse(&payload(value)), None, "{value}");
        }
        let mut other = payload(r#"{"p":"x","k":"a","d":1000}"#);
        other["actions"][0]["action_id"] = json!("someone_elses");
        assert_eq!(MuteClick::parse(&other), None);
        let mut kind = payload(r#"{"p":"x","k":"a","d":1000}"#);
        kind["type"] = json!("view_submission");
        assert_eq!(MuteClick::parse(&kind), None);
        let mut user = payload(r#"{"p":"x","k":"a","d":1000}"#);
        user["user"]["id"] = json!("U1><!channel");
        assert_eq!(MuteClick::parse(&user), None);
    }

    #[test]
    fn the_button_gives_way_to_who_muted_it_and_until_when() {
        let click = MuteClick::parse(&payload(r#"{"p":"logins","k":"<acme>","d":1000}"#)).unwrap();
        // 2023-11-14T22:13:20Z
        let m = click.mute(1_699_999_999_000);
        let blocks = muted_blocks(&click.blocks, &m);
        assert_eq!(blocks.len(), 4);
        assert_eq!(blocks[1]["type"], "actions");
        assert_eq!(blocks[1]["elements"].as_array().unwrap().len(), 1);
        assert_eq!(blocks[1]["elements"][0]["action_id"], "open");
        assert_eq!(
            blocks[2]["elements"][0]["text"],
            "Muted for &lt;acme&gt; by <@U0ADA> until <!date^1700000000^{date_short_pretty} {time}|2023-11-14 22:13 UTC>"
        );
        assert_eq!(blocks[3]["elements"][0]["text"], "ctx");

        // The only button: its block goes.
        let only = vec![
            json!({"type": "actions", "elements": [{"type": "button", "action_id": MUTE_ACTION}]}),
        ];
        let blocks = muted_blocks(&only, &m);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0]["type"], "context");

        // No button left (muted already): the line is added, within 50 blocks.
        let full = vec![json!({"type": "divider"}); limits::BLOCKS];
        let blocks = muted_blocks(&full, &m);
        assert_eq!(blocks.len(), limits::BLOCKS);
        assert_eq!(blocks[limits::BLOCKS - 1]["type"], "context");
    }
}
