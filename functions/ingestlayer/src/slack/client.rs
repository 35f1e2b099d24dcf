//! The Slack Web API: chat.postMessage over reqwest (rustls) and the classification of
//! every answer into what delivery does next (DESIGN.md, "Slack facts").

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Slack's own base URL; tests and the local stack set `SLACK_API_URL` instead.
pub use crate::config::DEFAULT_SLACK_API_URL as DEFAULT_API_URL;
/// The longest Retry-After we honour in one wait; longer ones wait again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A chat.postMessage request.
#[derive(Debug, Clone, Serialize)]
pub struct PostMessage<'a> {
    pub channel: &'a str,
    pub text: &'a str,
    pub blocks: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    pub unfurl_links: bool,
    pub unfurl_media: bool,
}

/// The body of a Slack Web API answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SlackBody {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
}

/// What came back from one call, before interpretation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Http {
        status: u16,
        retry_after: Option<Duration>,
        /// `None` when the body was not Slack's JSON.
        body: Option<SlackBody>,
    },
    /// No HTTP answer. `maybe_sent` means the request may have reached Slack: everything
    /// but a failure to connect (a timeout, a reset or a close after the request was sent,
    /// a body cut short) leaves that open.
    Transport { maybe_sent: bool, error: String },
}

/// What delivery does with a message after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Slack took it; `channel` is the channel id Slack reported.
    Delivered { ts: String, channel: Option<String> },
    /// Rate limited: this channel waits exactly this long.
    WaitRetryAfter(Duration),
    /// A transient failure; retry with backoff. `maybe_posted` means Slack may already
    /// show the message (timeouts, 5xx, `fatal_error`, `internal_error`).
    Retry { reason: String, maybe_posted: bool },
    /// The message itself is unacceptable; park it in the DLQ with the reason.
    Park { reason: String },
    /// The channel cannot take messages until an operator acts; keep its backlog.
    PauseChannel { error: String },
    /// The workspace's token no longer works; keep every backlog of the workspace.
    PauseWorkspace { error: String },
}

const PARK: &[&str] = &[
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "no_text",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "metadata_too_large",
    "metadata_must_be_sent_from_app",
    "too_many_attachments",
    "invalid_arguments",
    "invalid_arg_name",
    "invalid_array_arg",
    "invalid_charset",
    "invalid_form_data",
    "invalid_post_type",
    "missing_post_type",
    "json_not_object",
    "invalid_json",
    "as_user_not_supported",
    "duplicate_message_not_found",
];
const PAUSE_CHANNEL: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "restricted_action_non_threadable_channel",
    "team_access_not_granted",
    "ekm_access_denied",
];
const PAUSE_WORKSPACE: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "account_inactive",
    "missing_scope",
    "token_expired",
    "no_permission",
    "org_login_required",
    "not_allowed_token_type",
    "team_not_found",
];
/// Retry, and the message may already be posted.
const RETRY_MAYBE_POSTED: &[&str] = &["internal_error", "fatal_error"];
/// Retry; Slack did not take the message.
const RETRY: &[&str] = &[
    "request_timeout",
    "service_unavailable",
    "team_added_to_org",
];

/// Classifies an answer (DESIGN.md, "Slack facts").
pub fn classify(answer: &Answer) -> Action {
    match answer {
        Answer::Transport { maybe_sent, error } => Action::Retry {
            reason: format!("no answer from Slack: {error}"),
            maybe_posted: *maybe_sent,
        },
        Answer::Http {
            status: 429,
            retry_after,
            ..
        } => Action::WaitRetryAfter(
            retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER),
        ),
        Answer::Http { status, body, .. } if *status >= 500 => Action::Retry {
            reason: format!(
                "Slack answered HTTP {status}{}",
                body.as_ref()
                    .and_then(|b| b.error.as_deref())
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
            maybe_posted: true,
        },
        Answer::Http {
            status,
            body: Some(body),
            retry_after,
        } if (200..300).contains(status) => classify_body(body, *retry_after),
        Answer::Http {
            status: 200..=299,
            body: None,
            ..
        } => Action::Retry {
            reason: "Slack answered 2xx with a body that is not Slack's JSON".into(),
            maybe_posted: true,
        },
        Answer::Http { status: 408, .. } => Action::Retry {
            reason: "Slack answered HTTP 408".into(),
            maybe_posted: false,
        },
        Answer::Http { status, body, .. } => match body.as_ref() {
            Some(b) if b.error.is_some() => classify_body(b, None),
            _ => Action::Park {
                reason: format!("Slack answered HTTP {status}; check SLACK_API_URL"),
            },
        },
    }
}

fn classify_body(body: &SlackBody, retry_after: Option<Duration>) -> Action {
    if body.ok {
        return match &body.ts {
            Some(ts) => Action::Delivered {
                ts: ts.clone(),
                channel: body.channel.clone(),
            },
            None => Action::Retry {
                reason: "Slack said ok without a message ts".into(),
                maybe_posted: true,
            },
        };
    }
    let error = body.error.clone().unwrap_or_else(|| "unknown_error".into());
    let e = error.as_str();
    if e == "ratelimited" || e == "rate_limited" {
        Action::WaitRetryAfter(
            retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER),
        )
    } else if RETRY_MAYBE_POSTED.contains(&e) {
        Action::Retry {
            reason: format!("Slack error {e}"),
            maybe_posted: true,
        }
    } else if RETRY.contains(&e) {
        Action::Retry {
            reason: format!("Slack error {e}"),
            maybe_posted: false,
        }
    } else if PAUSE_CHANNEL.contains(&e) {
        Action::PauseChannel { error }
    } else if PAUSE_WORKSPACE.contains(&e) {
        Action::PauseWorkspace { error }
    } else if PARK.contains(&e) {
        Action::Park {
            reason: format!("Slack refused the message: {e}"),
        }
    } else {
        // An error we do not know is parked, not retried forever: nothing is lost and the
        // operator sees the reason.
        Action::Park {
            reason: format!("Slack refused the message with an unrecognised error: {e}"),
        }
    }
}

/// What an operator must do for a paused channel or workspace.
pub fn operator_hint(error: &str, channel: &str) -> String {
    match error {
        "not_in_channel" => format!("invite the app to {channel} (/invite @ingestlayer in {channel}); its backlog is kept and flows once it is in"),
        "channel_not_found" => format!("{channel} does not exist or the app cannot see it: create it, invite the app, or change the pipeline's channel"),
        "is_archived" => format!("{channel} is archived: unarchive it or point the pipeline at another channel"),
        e if e.starts_with("restricted_action") => format!("posting in {channel} is restricted ({e}): allow the app to post there"),
        "missing_scope" => "the Slack app lacks a scope it needs: reinstall it from the destinations page".into(),
        "token_revoked" | "invalid_auth" | "not_authed" | "account_inactive" | "token_expired" => {
            "the workspace's bot token no longer works: reconnect Slack (reinstall the app), then the backlog flows".into()
        }
        e => format!("Slack says {e}: fix the workspace or channel, then the backlog flows"),
    }
}

/// What an operator must do for a channel paused because its history could not be read
/// after an uncertain post (so whether the post landed cannot be told).
pub fn history_hint(error: &str, channel: &str) -> String {
    let why = format!("an earlier post to {channel} may have landed and the app cannot read {channel} to check ({error})");
    match error {
        "not_in_channel" => format!("{why}: invite the app to {channel} (/invite @ingestlayer in {channel}), or reinstall it so it may join public channels (channels:join); its backlog is kept and flows once it is in"),
        "missing_scope" => format!("{why}: reinstall the app from the destinations page so it has channels:history, groups:history and channels:join; then redrive the backlog"),
        _ => format!("{why}: {}", operator_hint(error, channel)),
    }
}

/// A Slack Web API client with an injectable base URL.
#[derive(Clone, Debug)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
}

impl SlackClient {
    /// `base` is e.g. `https://slack.com/api`; `timeout` bounds each call.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("ingestlayer/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Calls chat.postMessage. Never fails: every outcome is an [`Answer`] to classify.
    #[tracing::instrument(skip_all, fields(channel = %message.channel))]
    pub async fn post_message(&self, token: &SecretString, message: &PostMessage<'_>) -> Answer {
        let sent = self
            .http
            .post(format!("{}/chat.postMessage", self.base))
            .bearer_auth(token.expose_secret())
            .json(message)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Answer::Transport {
                    maybe_sent: !e.is_connect(),
                    error: without_url(&e),
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match response.bytes().await {
            Ok(bytes) => Answer::Http {
                status,
                retry_after,
                body: serde_json::from_slice(&bytes).ok(),
            },
            Err(e) => Answer::Transport {
                maybe_sent: true,
                error: without_url(&e),
            },
        }
    }
}

/// What a look into a channel's history found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryCheck {
    /// A message carrying the delivery key: it was posted, with this ts.
    Found(String),
    /// Every message since the attempt was read and none carries the key.
    NotFound,
    /// Whether it was posted is still unknown, and reading again later may tell: the
    /// history could not be read this time (network, 5xx, rate limit), or more messages
    /// were posted since the attempt than the look-back reads.
    Unavailable(String),
    /// Slack refuses to show the channel's history (`not_in_channel`, `channel_not_found`,
    /// `missing_scope`, …): reading again cannot help until someone acts.
    Refused(String),
}

/// Pages of conversations.history read (200 messages each) before the check gives up and
/// answers "unknown"; a key not found within them may still have been posted.
pub const HISTORY_PAGES: usize = 5;
/// Messages per conversations.history page.
pub const HISTORY_PAGE_SIZE: usize = 200;

/// Slack errors of a read that may work when tried again.
const READ_RETRY: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "request_timeout",
    "service_unavailable",
];

impl SlackClient {
    /// Looks for a message whose metadata carries `key` (in `event_payload.key` or
    /// `event_payload.keys`) among the channel's messages since `oldest_secs`.
    #[tracing::instrument(skip_all, fields(channel = %channel))]
    pub async fn find_posted(
        &self,
        token: &SecretString,
        channel: &str,
        key: &str,
        oldest_secs: i64,
    ) -> HistoryCheck {
        let mut cursor: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            let mut url = match reqwest::Url::parse(&format!("{}/conversations.history", self.base))
            {
                Ok(u) => u,
                Err(e) => return HistoryCheck::Unavailable(e.to_string()),
            };
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("channel", channel)
                    .append_pair("oldest", &format!("{}.000000", oldest_secs.max(0)))
                    .append_pair("limit", &HISTORY_PAGE_SIZE.to_string())
                    .append_pair("include_all_metadata", "true");
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let response = match self
                .http
                .get(url)
                .bearer_auth(token.expose_secret())
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return HistoryCheck::Unavailable(without_url(&e)),
            };
            let status = response.status().as_u16();
            let body: Value = match response.json().await {
                Ok(v) => v,
                Err(e) => {
                    return HistoryCheck::Unavailable(format!("HTTP {status}: {}", without_url(&e)))
                }
            };
            if body["ok"] != Value::Bool(true) {
                let error = body["error"].as_str().unwrap_or("no error given");
                return if status == 429 || status >= 500 || READ_RETRY.contains(&error) {
                    HistoryCheck::Unavailable(format!(
                        "conversations.history: HTTP {status} {error}"
                    ))
                } else {
                    HistoryCheck::Refused(error.to_owned())
                };
            }
            for m in body["messages"].as_array().into_iter().flatten() {
                let payload = &m["metadata"]["event_payload"];
                let one = payload["key"].as_str() == Some(key);
                let many = payload["keys"]
                    .as_array()
                    .is_some_and(|ks| ks.iter().any(|k| k.as_str() == Some(key)));
                if one || many {
                    return HistoryCheck::Found(m["ts"].as_str().unwrap_or_default().to_owned());
                }
            }
            if body["has_more"] != Value::Bool(true) {
                return HistoryCheck::NotFound;
            }
            match body["response_metadata"]["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => {
                    return HistoryCheck::Unavailable(
                        "conversations.history has more messages but gave no cursor".into(),
                    )
                }
            }
        }
        HistoryCheck::Unavailable(format!(
            "more than {} messages were posted since the attempt; the check reads no further",
            HISTORY_PAGES * HISTORY_PAGE_SIZE
        ))
    }
}

/// What conversations.join answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    /// The bot is in the channel (now or already); its id.
    Member { id: String },
    /// Slack will not let the bot join (`method_not_supported_for_channel_type` for a
    /// private channel, `missing_scope` without channels:join, `is_archived`, …).
    Refused(String),
}

impl SlackClient {
    /// conversations.join: the bot joins a public channel by id (needs `channels:join`).
    /// `Err` when Slack could not be asked or answered with a transient failure.
    #[tracing::instrument(skip_all, fields(channel = %channel))]
    pub async fn join_channel(&self, token: &SecretString, channel: &str) -> Result<Join, String> {
        let response = self
            .http
            .post(format!("{}/conversations.join", self.base))
            .bearer_auth(token.expose_secret())
            .json(&serde_json::json!({ "channel": channel }))
            .send()
            .await
            .map_err(|e| without_url(&e))?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("HTTP {status}: {}", without_url(&e)))?;
        if body["ok"] == Value::Bool(true) {
            return Ok(Join::Member {
                id: body["channel"]["id"].as_str().unwrap_or(channel).to_owned(),
            });
        }
        let error = body["error"].as_str().unwrap_or("no error given");
        if status == 429 || status >= 500 || READ_RETRY.contains(&error) {
            Err(format!("conversations.join: HTTP {status} {error}"))
        } else {
            Ok(Join::Refused(error.to_owned()))
        }
    }

    /// auth.test: the workspace (team id) and the bot's own user id for a bot token.
    pub async fn auth_test(&self, token: &SecretString) -> Result<(String, String), String> {
        let response = self
            .http
            .post(format!("{}/auth.test", self.base))
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| without_url(&e))?;
        let body: Value = response.json().await.map_err(|e| without_url(&e))?;
        if body["ok"] != Value::Bool(true) {
            return Err(format!(
                "auth.test: {}",
                body["error"].as_str().unwrap_or("no error given")
            ));
        }
        Ok((
            body["team_id"].as_str().unwrap_or_default().to_owned(),
            body["user_id"].as_str().unwrap_or_default().to_owned(),
        ))
    }
}

/// A channel as conversations.list describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: String,
    pub name: String,
    pub is_private: bool,
    pub is_member: bool,
    pub is_archived: bool,
}

impl SlackClient {
    /// Every channel the bot can see: public channels, and private ones it was invited to.
    pub async fn list_channels(&self, token: &SecretString) -> Result<Vec<ChannelInfo>, String> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let mut url = reqwest::Url::parse(&format!("{}/conversations.list", self.base))
                .map_err(|e| e.to_string())?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("types", "public_channel,private_channel")
                    .append_pair("exclude_archived", "true")
                    .append_pair("limit", "1000");
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let response = self
                .http
                .get(url)
                .bearer_auth(token.expose_secret())
                .send()
                .await
                .map_err(|e| without_url(&e))?;
            let body: Value = response.json().await.map_err(|e| without_url(&e))?;
            if body["ok"] != Value::Bool(true) {
                return Err(format!(
                    "conversations.list: {}",
                    body["error"].as_str().unwrap_or("no error given")
                ));
            }
            for c in body["channels"].as_array().into_iter().flatten() {
                out.push(ChannelInfo {
                    id: c["id"].as_str().unwrap_or_default().to_owned(),
                    name: c["name"].as_str().unwrap_or_default().to_owned(),
                    is_private: c["is_private"].as_bool().unwrap_or(false),
                    is_member: c["is_member"].as_bool().unwrap_or(false),
                    is_archived: c["is_archived"].as_bool().unwrap_or(false),
                });
            }
            match body["response_metadata"]["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The id of the channel named `name` (`#alerts` or `alerts`) among those the bot can
    /// see (conversations.list); `Ok(None)` when there is none.
    pub async fn resolve_channel(
        &self,
        token: &SecretString,
        name: &str,
    ) -> Result<Option<String>, String> {
        let wanted = name.trim_start_matches('#');
        Ok(self
            .list_channels(token)
            .await?
            .into_iter()
            .find(|c| c.name == wanted)
            .map(|c| c.id))
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<slack>");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_false(e: &str) -> Answer {
        Answer::Http {
            status: 200,
            retry_after: None,
            body: Some(SlackBody {
                ok: false,
                error: Some(e.into()),
                ts: None,
                channel: None,
            }),
        }
    }

    #[test]
    fn classifies_as_design_lists() {
        assert!(matches!(
            classify(&ok_false("invalid_blocks")),
            Action::Park { .. }
        ));
        assert!(matches!(
            classify(&ok_false("msg_too_long")),
            Action::Park { .. }
        ));
        assert!(matches!(
            classify(&ok_false("no_text")),
            Action::Park { .. }
        ));
        for e in [
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "restricted_action",
        ] {
            assert_eq!(
                classify(&ok_false(e)),
                Action::PauseChannel { error: e.into() }
            );
        }
        for e in [
            "invalid_auth",
            "token_revoked",
            "account_inactive",
            "missing_scope",
            "token_expired",
        ] {
            assert_eq!(
                classify(&ok_false(e)),
                Action::PauseWorkspace { error: e.into() }
            );
        }
        assert!(matches!(
            classify(&ok_false("fatal_error")),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&ok_false("internal_error")),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&ok_false("request_timeout")),
            Action::Retry {
                maybe_posted: false,
                ..
            }
        ));
        assert!(matches!(
            classify(&ok_false("something_new")),
            Action::Park { .. }
        ));
    }

    #[test]
    fn a_429_waits_exactly_its_retry_after() {
        let a = Answer::Http {
            status: 429,
            retry_after: Some(Duration::from_secs(30)),
            body: None,
        };
        assert_eq!(
            classify(&a),
            Action::WaitRetryAfter(Duration::from_secs(30))
        );
        let huge = Answer::Http {
            status: 429,
            retry_after: Some(Duration::from_secs(99_999)),
            body: None,
        };
        assert_eq!(classify(&huge), Action::WaitRetryAfter(MAX_RETRY_AFTER));
    }

    #[test]
    fn server_errors_and_timeouts_retry_and_may_have_posted() {
        let a = Answer::Http {
            status: 503,
            retry_after: None,
            body: None,
        };
        assert!(matches!(
            classify(&a),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
        let t = Answer::Transport {
            maybe_sent: true,
            error: "timeout".into(),
        };
        assert!(matches!(
            classify(&t),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
        let c = Answer::Transport {
            maybe_sent: false,
            error: "refused".into(),
        };
        assert!(matches!(
            classify(&c),
            Action::Retry {
                maybe_posted: false,
                ..
            }
        ));
    }

    #[test]
    fn ok_true_is_delivered() {
        let a = Answer::Http {
            status: 200,
            retry_after: None,
            body: Some(SlackBody {
                ok: true,
                error: None,
                ts: Some("1.2".into()),
                channel: Some("C1".into()),
            }),
        };
        assert_eq!(
            classify(&a),
            Action::Delivered {
                ts: "1.2".into(),
                channel: Some("C1".into())
            }
        );
    }

    fn message<'a>() -> PostMessage<'a> {
        PostMessage {
            channel: "#alerts",
            text: "hi",
            blocks: &[],
            metadata: None,
            unfurl_links: false,
            unfurl_media: false,
        }
    }

    /// A server that accepts one connection, reads the whole request and closes it
    /// without answering, as a proxy or Slack's edge may after taking a request.
    async fn close_after_request() -> std::net::SocketAddr {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the body by its Content-Length.
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .and_then(|v| v.trim().parse::<usize>().ok())
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            // Reset rather than close gracefully: no answer either way.
            socket.set_zero_linger().unwrap();
            drop(socket);
        });
        addr
    }

    #[tokio::test]
    async fn a_connection_dropped_after_the_request_was_sent_may_have_posted() {
        let addr = close_after_request().await;
        let client =
            SlackClient::new(&format!("http://{addr}/api"), Duration::from_secs(5)).unwrap();
        let answer = client
            .post_message(&SecretString::from("xoxb-1"), &message())
            .await;
        assert!(
            matches!(
                answer,
                Answer::Transport {
                    maybe_sent: true,
                    ..
                }
            ),
            "{answer:?}"
        );
        assert!(matches!(
            classify(&answer),
            Action::Retry {
                maybe_posted: true,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_refused_connection_certainly_did_not_post() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let client =
            SlackClient::new(&format!("http://{closed}/api"), Duration::from_secs(5)).unwrap();
        let answer = client
            .post_message(&SecretString::from("xoxb-1"), &message())
            .await;
        assert!(
            matches!(
                answer,
                Answer::Transport {
                    maybe_sent: false,
                    ..
                }
            ),
            "{answer:?}"
        );
        assert!(matches!(
            classify(&answer),
            Action::Retry {
                maybe_posted: false,
                ..
            }
        ));
    }

    #[test]
    fn operators_are_told_what_to_do() {
        assert!(operator_hint("not_in_channel", "#growth").contains("invite the app to #growth"));
    }
}
