//! The Slack Web API over reqwest (rustls), with an injectable base URL: chat.postMessage
//! (answered as an [`Answer`] to classify), history checks, joining channels, listing them.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::slack::answers::Answer;
use serde_json::Value;

/// Slack's own base URL; tests and the local stack set `SLACK_API_URL` instead.
pub use crate::config::DEFAULT_SLACK_API_URL as DEFAULT_API_URL;

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
    /// Reply in the thread of this top-level message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<&'a str>,
}

/// Errors of a post with `thread_ts` that mean the thread is gone (its parent deleted) or
/// never was one: Slack posts nothing, and a new thread has to be started.
pub const THREAD_GONE: &[&str] = &["thread_not_found", "invalid_thread_ts"];

/// What users.lookupByEmail found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLookup {
    /// The member's user id (`U…`).
    Found(String),
    /// No member of the workspace has that email (`users_not_found`).
    NotFound,
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
            if let Some(ts) = carrying(&body, key) {
                return HistoryCheck::Found(ts);
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
    pub async fn join_channel(&self, token: &SecretString, channel: &str) -> Result<Join> {
        let request = self
            .http
            .post(format!("{}/conversations.join", self.base))
            .json(&serde_json::json!({ "channel": channel }));
        match self.call("conversations.join", token, request).await {
            Ok(body) => Ok(Join::Member {
                id: body["channel"]["id"].as_str().unwrap_or(channel).to_owned(),
            }),
            Err(Error::SlackRefused {
                code,
                retryable: false,
                ..
            }) => Ok(Join::Refused(code)),
            Err(e) => Err(e),
        }
    }

    /// chat.getPermalink: the link to a posted message (`channel` its id).
    pub async fn permalink(&self, token: &SecretString, channel: &str, ts: &str) -> Result<String> {
        let mut url = reqwest::Url::parse(&format!("{}/chat.getPermalink", self.base))
            .map_err(|e| Error::invalid("the Slack API URL", e))?;
        url.query_pairs_mut()
            .append_pair("channel", channel)
            .append_pair("message_ts", ts);
        let request = self.http.get(url);
        let body = self.call("chat.getPermalink", token, request).await?;
        Ok(body["permalink"].as_str().unwrap_or_default().to_owned())
    }

    /// auth.test: the workspace (team id) and the bot's own user id for a bot token.
    pub async fn auth_test(&self, token: &SecretString) -> Result<(String, String)> {
        let request = self.http.post(format!("{}/auth.test", self.base));
        let body = self.call("auth.test", token, request).await?;
        Ok((
            body["team_id"].as_str().unwrap_or_default().to_owned(),
            body["user_id"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// One Web API call that is not a post: the body of an `ok: true` answer. An `ok:
    /// false` answer is [`Error::SlackRefused`], retryable for 429, 5xx and Slack's
    /// transient errors; no answer at all is [`Error::Slack`].
    async fn call(
        &self,
        method: &str,
        token: &SecretString,
        request: reqwest::RequestBuilder,
    ) -> Result<Value> {
        let response = request
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| Error::slack(method, e))?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::slack(format!("{method}: HTTP {status}"), e))?;
        if body["ok"] == Value::Bool(true) {
            return Ok(body);
        }
        let code = body["error"]
            .as_str()
            .unwrap_or("no error given")
            .to_owned();
        Err(Error::SlackRefused {
            what: format!("{method}: HTTP {status}"),
            retryable: status == 429 || status >= 500 || READ_RETRY.contains(&code.as_str()),
            code,
        })
    }
}

impl SlackClient {
    /// users.lookupByEmail (`users:read.email`): the member with this email. `Err` for any
    /// other answer (rate limits, `missing_scope`, no answer), retryable or not.
    #[tracing::instrument(skip_all)]
    pub async fn lookup_user_by_email(
        &self,
        token: &SecretString,
        email: &str,
    ) -> Result<UserLookup> {
        // In a form body, not the query string: an email stays out of URLs (and their logs).
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("email", email)
            .finish();
        let request = self
            .http
            .post(format!("{}/users.lookupByEmail", self.base))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        match self.call("users.lookupByEmail", token, request).await {
            Ok(body) => match body["user"]["id"].as_str() {
                Some(id) if !id.is_empty() => Ok(UserLookup::Found(id.to_owned())),
                _ => Ok(UserLookup::NotFound),
            },
            Err(Error::SlackRefused { code, .. }) if code == "users_not_found" => {
                Ok(UserLookup::NotFound)
            }
            Err(e) => Err(e),
        }
    }

    /// chat.update: replaces the text and blocks of the app's message `ts` in `channel`
    /// (an id).
    #[tracing::instrument(skip_all, fields(channel = %channel))]
    pub async fn update_message(
        &self,
        token: &SecretString,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &[Value],
    ) -> Result<()> {
        let request = self.http.post(format!("{}/chat.update", self.base)).json(
            &serde_json::json!({"channel": channel, "ts": ts, "text": text, "blocks": blocks}),
        );
        self.call("chat.update", token, request).await.map(|_| ())
    }

    /// Looks for a reply carrying `key` (in its metadata, as [`Self::find_posted`] does) in
    /// the thread of `thread_ts`, among the replies since `oldest_secs`. A thread Slack no
    /// longer has (`thread_not_found`) holds nothing: [`HistoryCheck::NotFound`].
    #[tracing::instrument(skip_all, fields(channel = %channel))]
    pub async fn find_reply(
        &self,
        token: &SecretString,
        channel: &str,
        thread_ts: &str,
        key: &str,
        oldest_secs: i64,
    ) -> HistoryCheck {
        let mut cursor: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            let mut url = match reqwest::Url::parse(&format!("{}/conversations.replies", self.base))
            {
                Ok(u) => u,
                Err(e) => return HistoryCheck::Unavailable(e.to_string()),
            };
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("channel", channel)
                    .append_pair("ts", thread_ts)
                    .append_pair("oldest", &format!("{}.000000", oldest_secs.max(0)))
                    .append_pair("limit", &HISTORY_PAGE_SIZE.to_string())
                    .append_pair("include_all_metadata", "true");
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let body = match self
                .call("conversations.replies", token, self.http.get(url))
                .await
            {
                Ok(body) => body,
                Err(Error::SlackRefused { code, .. }) if code == "thread_not_found" => {
                    return HistoryCheck::NotFound
                }
                Err(Error::SlackRefused {
                    code,
                    retryable: false,
                    ..
                }) => return HistoryCheck::Refused(code),
                Err(e) => return HistoryCheck::Unavailable(e.to_string()),
            };
            if let Some(ts) = carrying(&body, key) {
                return HistoryCheck::Found(ts);
            }
            if body["has_more"] != Value::Bool(true) {
                return HistoryCheck::NotFound;
            }
            match body["response_metadata"]["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => {
                    return HistoryCheck::Unavailable(
                        "conversations.replies has more messages but gave no cursor".into(),
                    )
                }
            }
        }
        HistoryCheck::Unavailable(format!(
            "more than {} replies were posted since the attempt; the check reads no further",
            HISTORY_PAGES * HISTORY_PAGE_SIZE
        ))
    }
}

/// The ts of the first message of a history or replies page whose metadata carries `key`.
fn carrying(body: &Value, key: &str) -> Option<String> {
    body["messages"].as_array()?.iter().find_map(|m| {
        let payload = &m["metadata"]["event_payload"];
        let one = payload["key"].as_str() == Some(key);
        let many = payload["keys"]
            .as_array()
            .is_some_and(|ks| ks.iter().any(|k| k.as_str() == Some(key)));
        (one || many).then(|| m["ts"].as_str().unwrap_or_default().to_owned())
    })
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
    pub async fn list_channels(&self, token: &SecretString) -> Result<Vec<ChannelInfo>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let mut url = reqwest::Url::parse(&format!("{}/conversations.list", self.base))
                .map_err(|e| Error::invalid("SLACK_API_URL", e))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("types", "public_channel,private_channel")
                    .append_pair("exclude_archived", "true")
                    .append_pair("limit", "1000");
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let request = self.http.get(url);
            let body = self.call("conversations.list", token, request).await?;
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
    ) -> Result<Option<String>> {
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
    use crate::slack::answers::{classify, Action, Answer};

    fn message<'a>() -> PostMessage<'a> {
        PostMessage {
            channel: "#alerts",
            text: "hi",
            blocks: &[],
            metadata: None,
            unfurl_links: false,
            unfurl_media: false,
            thread_ts: None,
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
}
