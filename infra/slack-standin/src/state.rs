//! What Slack decides: authentication, channels, message rules, pacing, faults, and the record
//! of everything posted. No HTTP here; `api` translates.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::channel::{normalize_name, ChannelRef, Channels};
use crate::fault::{Fault, FaultKind, Faults};
use crate::oauth::{self, AuthorizeRequest, Installation, Issued, Registry, TokenStatus};
pub(crate) use crate::rejection::Rejection;
use crate::{blocks, PostedMessage, RecordedRequest, StandinConfig};
use standin_server::Pacer;

/// Slack's limit on a message's `text`, in characters.
pub(crate) const MAX_TEXT: usize = 40_000;

const USER_ID: &str = "U0BOT";
/// `conversations.history` cursors: this prefix and the ts (µs) the next page starts below.
const CURSOR_PREFIX: &str = "next_ts:";
const BOT_ID: &str = "B0BOT";
const APP_ID: &str = "A0STANDIN";

/// A Web API call's arguments (query string, then body on top) and its token. No `Debug`:
/// it holds a token.
pub(crate) struct ApiRequest {
    /// From `Authorization: Bearer`, else a `token` argument in the query string or form body.
    pub(crate) token: Option<String>,
    /// `Err` when the body was declared JSON but is not a JSON object.
    pub(crate) params: Result<Map<String, Value>, InvalidJson>,
}

/// The request body could not be read as JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InvalidJson;

/// A `chat.postMessage` answer and how long to hold it back.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) result: Result<Value, Rejection>,
    pub(crate) delay: Option<Duration>,
}

/// The stand-in's state, shared by the server task and the [`crate::Standin`] handle.
pub(crate) struct Shared {
    config: StandinConfig,
    addr: SocketAddr,
    state: Mutex<State>,
}

struct State {
    channels: Channels,
    messages: Vec<PostedMessage>,
    requests: Vec<RecordedRequest>,
    faults: Faults,
    pacer: Pacer,
    last_ts_micros: u64,
    oauth: Registry,
    /// Users `users.lookupByEmail` finds, by lower-cased email.
    users: BTreeMap<String, User>,
    /// Channels joined with `conversations.join`, by name, in order.
    joins: Vec<String>,
}

/// A workspace member registered with [`crate::Standin::add_user`].
#[derive(Debug, Clone)]
struct User {
    id: String,
    email: String,
}

impl State {
    /// Wall-clock microseconds, bumped so every ts is unique and increasing.
    fn next_ts(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let micros = now.max(self.last_ts_micros.saturating_add(1));
        self.last_ts_micros = micros;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

impl Shared {
    pub(crate) fn new(config: StandinConfig, addr: SocketAddr) -> Shared {
        let pacer = Pacer::new(config.rate_per_channel_per_sec, config.burst);
        Shared {
            config,
            addr,
            state: Mutex::new(State {
                channels: Channels::default(),
                messages: Vec::new(),
                requests: Vec::new(),
                faults: Faults::default(),
                pacer,
                last_ts_micros: 0,
                oauth: Registry::default(),
                users: BTreeMap::new(),
                joins: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Slack's token check: revoked and expired tokens fail whatever else holds; tokens issued
    /// by `oauth.v2.access` pass; any other token passes by the `accepted_tokens` rule.
    fn authenticate<'r>(
        &self,
        state: &State,
        request: &'r ApiRequest,
    ) -> Result<&'r str, Rejection> {
        let token = request
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::NotAuthed)?;
        let accepted = match state.oauth.status(token, Instant::now()) {
            TokenStatus::Revoked => return Err(Rejection::TokenRevoked),
            TokenStatus::Expired => return Err(Rejection::TokenExpired),
            TokenStatus::Issued => true,
            TokenStatus::Unknown => match &self.config.accepted_tokens {
                None => token.starts_with("xox"),
                Some(tokens) => tokens.iter().any(|t| t == token),
            },
        };
        if accepted {
            Ok(token)
        } else {
            Err(Rejection::InvalidAuth)
        }
    }

    /// `chat.postMessage`: decides, records the request (and the message when accepted), and
    /// prints the message box when configured.
    pub(crate) fn post_message(&self, request: &ApiRequest) -> Outcome {
        let arrived = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let channel_key = request
            .params
            .as_ref()
            .ok()
            .and_then(|p| p.get("channel"))
            .and_then(Value::as_str)
            .map(|raw| match ChannelRef::parse(raw) {
                Some(channel) => state.channels.key(&channel),
                None => raw.trim().to_owned(),
            });

        let (result, delay) = self.decide_post(state, request, channel_key.as_deref(), arrived);

        let (status, error, ts) = match &result {
            Ok(message) => (200, None, Some(message.ts.clone())),
            Err(rejection) => (rejection.status(), Some(rejection.code().to_owned()), None),
        };
        state.requests.push(RecordedRequest {
            channel: channel_key.clone().unwrap_or_default(),
            at: arrived.into_std(),
            status,
            error: error.clone(),
            ts,
        });
        drop(guard);

        tracing::info!(
            channel = channel_key.as_deref().unwrap_or(""),
            status,
            error = error.as_deref().unwrap_or(""),
            delay_ms = delay.map_or(0, |d| d.as_millis()),
            "chat.postMessage answered"
        );
        let result = result.map(|message| {
            if self.config.print_messages {
                print_box(&message);
            }
            json!({
                "ok": true,
                "channel": message.channel_id,
                "ts": message.ts,
                "message": message_json(&message, true, &self.config.team_id),
            })
        });
        Outcome { result, delay }
    }

    fn decide_post(
        &self,
        state: &mut State,
        request: &ApiRequest,
        channel_key: Option<&str>,
        now: Instant,
    ) -> (Result<PostedMessage, Rejection>, Option<Duration>) {
        let token = match self.authenticate(state, request) {
            Ok(token) => token,
            Err(rejection) => return (Err(rejection), None),
        };
        let Ok(params) = &request.params else {
            return (Err(Rejection::InvalidJson), None);
        };
        let delay = match state.faults.take(&state.channels, channel_key) {
            None => None,
            Some(FaultKind::HttpStatus(status)) => {
                let status = if (200..=599).contains(&status) {
                    status
                } else {
                    500
                };
                return (Err(Rejection::Http(status)), None);
            }
            Some(FaultKind::SlackError(name)) => return (Err(Rejection::Injected(name)), None),
            Some(FaultKind::RateLimited { retry_after_secs }) => {
                return (Err(Rejection::RateLimited { retry_after_secs }), None)
            }
            Some(FaultKind::Delay(delay)) => return (Err(Rejection::RequestTimeout), Some(delay)),
            Some(FaultKind::AcceptThenDelay(delay)) => Some(delay),
        };
        (accept(state, params, token, now), delay)
    }

    /// `chat.getPermalink`: a link to one posted message (`channel` an ID or name,
    /// `message_ts`), as Slack's `https://<workspace>.slack.com/archives/<channel>/p<ts>`.
    pub(crate) fn permalink(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let state = self.lock();
        self.authenticate(&state, request)?;
        let params = request
            .params
            .as_ref()
            .map_err(|InvalidJson| Rejection::InvalidJson)?;
        let channel = state
            .channels
            .lookup(&channel_arg(params)?)
            .ok_or(Rejection::ChannelNotFound)?;
        let ts = params
            .get("message_ts")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let message = state
            .messages
            .iter()
            .find(|m| m.channel_id == channel.id && m.ts == ts)
            .ok_or(Rejection::MessageNotFound)?;
        Ok(json!({
            "ok": true,
            "channel": message.channel_id,
            "permalink": format!(
                "http://{}/archives/{}/p{}",
                self.addr,
                message.channel_id,
                message.ts.replace('.', "")
            ),
        }))
    }

    /// `conversations.history`, newest first. Channel names are accepted as well as IDs.
    pub(crate) fn history(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let state = self.lock();
        self.authenticate(&state, request)?;
        let params = request
            .params
            .as_ref()
            .map_err(|InvalidJson| Rejection::InvalidJson)?;
        let channel = state
            .channels
            .lookup(&channel_arg(params)?)
            .ok_or(Rejection::ChannelNotFound)?;
        if !channel.bot_member {
            return Err(Rejection::NotInChannel);
        }
        let limit = match params.get("limit") {
            None | Some(Value::Null) => 100,
            Some(value) => count_arg(value).ok_or(Rejection::InvalidArguments)?,
        };
        let limit = if limit == 0 { 100 } else { limit.min(999) };
        let oldest = match params.get("oldest") {
            None | Some(Value::Null) => 0,
            Some(value) => ts_arg(value).ok_or(Rejection::InvalidTsOldest)?,
        };
        let latest = match params.get("latest") {
            None | Some(Value::Null) => u64::MAX,
            Some(value) => ts_arg(value).ok_or(Rejection::InvalidTsLatest)?,
        };
        let inclusive = bool_arg(params.get("inclusive"));
        let include_metadata = bool_arg(params.get("include_all_metadata"));
        // A cursor continues below the last ts of the previous page.
        let before = match params.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) if c.is_empty() => None,
            Some(Value::String(c)) => Some(
                c.strip_prefix(CURSOR_PREFIX)
                    .and_then(|ts| ts.parse::<u64>().ok())
                    .ok_or(Rejection::InvalidCursor)?,
            ),
            Some(_) => return Err(Rejection::InvalidCursor),
        };

        let matching: Vec<&PostedMessage> = state
            .messages
            .iter()
            .rev()
            .filter(|m| m.channel_id == channel.id)
            // Replies live in their thread (conversations.replies), not in the history.
            .filter(|m| m.thread_ts.is_none())
            .filter(|m| {
                let ts = parse_ts(&m.ts).unwrap_or(0);
                let in_range = if inclusive {
                    oldest <= ts && ts <= latest
                } else {
                    oldest < ts && ts < latest
                };
                in_range && before.is_none_or(|b| ts < b)
            })
            .collect();
        let page: Vec<&PostedMessage> = matching.iter().take(limit).copied().collect();
        let has_more = matching.len() > limit;
        let next_cursor = match page.last() {
            Some(last) if has_more => {
                format!("{CURSOR_PREFIX}{}", parse_ts(&last.ts).unwrap_or(0))
            }
            _ => String::new(),
        };
        let messages: Vec<Value> = page
            .iter()
            .map(|m| {
                with_thread(
                    message_json(m, include_metadata, &self.config.team_id),
                    m,
                    &state.messages,
                )
            })
            .collect();
        Ok(json!({
            "ok": true,
            "messages": messages,
            "has_more": has_more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }))
    }

    /// `conversations.join` (scope `channels:join`): the bot joins a public channel, by ID as
    /// Slack requires (names are accepted too). Private channels answer
    /// `method_not_supported_for_channel_type`: the bot can only be invited to them.
    pub(crate) fn join(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let mut state = self.lock();
        self.authenticate(&state, request)?;
        let params = request
            .params
            .as_ref()
            .map_err(|InvalidJson| Rejection::InvalidJson)?;
        let wanted = channel_arg(params)?;
        let channel = state
            .channels
            .lookup(&wanted)
            .cloned()
            .ok_or(Rejection::ChannelNotFound)?;
        if channel.archived {
            return Err(Rejection::IsArchived);
        }
        if channel.private {
            return Err(Rejection::MethodNotSupportedForChannelType);
        }
        let already = channel.bot_member;
        state.channels.upsert(&channel.name, false, true);
        state.joins.push(channel.name.clone());
        let mut body = json!({
            "ok": true,
            "channel": {"id": channel.id, "name": channel.name, "is_channel": true,
                        "is_private": false, "is_member": true, "is_archived": false},
        });
        if already {
            body["warning"] = json!("already_in_channel");
            body["response_metadata"] = json!({"warnings": ["already_in_channel"]});
        }
        Ok(body)
    }

    /// Puts the bot in a channel as an invite does, and returns the Events API callback
    /// Slack then sends: `member_joined_channel` for the bot user. `None` for an unknown
    /// channel.
    pub(crate) fn invite_bot(&self, name: &str) -> Option<Value> {
        let mut state = self.lock();
        let channel = state
            .channels
            .lookup(&ChannelRef::Name(normalize_name(name)))
            .cloned()?;
        state.channels.upsert(&channel.name, channel.private, true);
        let ts = state.next_ts();
        Some(json!({
            "token": "standin-verification-token",
            "team_id": self.config.team_id,
            "api_app_id": APP_ID,
            "type": "event_callback",
            "event_id": format!("Ev{}", ts.replace('.', "")),
            "event_time": ts.split('.').next().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0),
            "event": {
                "type": "member_joined_channel",
                "user": USER_ID,
                "channel": channel.id,
                "channel_type": if channel.private { "G" } else { "C" },
                "team": self.config.team_id,
                "inviter": oauth::INSTALLER_ID,
                "event_ts": ts,
            },
        }))
    }

    /// The bot's own user id (`auth.test`'s `user_id`, the `user` of its own messages).
    pub(crate) fn bot_user_id(&self) -> &'static str {
        USER_ID
    }

    /// The channels the bot joined with `conversations.join`, in order.
    pub(crate) fn joins(&self) -> Vec<String> {
        self.lock().joins.clone()
    }

    /// `conversations.list` as a bot token sees it: the `types` asked for (default
    /// `public_channel`; private channels only where the bot is a member), archived ones
    /// unless `exclude_archived`. One page holds everything.
    pub(crate) fn conversations_list(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let state = self.lock();
        self.authenticate(&state, request)?;
        let params = request
            .params
            .as_ref()
            .map_err(|InvalidJson| Rejection::InvalidJson)?;
        let types = match params.get("types") {
            None | Some(Value::Null) => "public_channel",
            Some(Value::String(types)) => types.as_str(),
            Some(_) => return Err(Rejection::InvalidTypes),
        };
        let (mut public, mut private) = (false, false);
        for kind in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match kind {
                "public_channel" => public = true,
                "private_channel" => private = true,
                // The stand-in has no DMs or group DMs to list.
                "im" | "mpim" => {}
                _ => return Err(Rejection::InvalidTypes),
            }
        }
        let exclude_archived = bool_arg(params.get("exclude_archived"));
        let channels: Vec<Value> = state
            .channels
            .all()
            .filter(|c| {
                if c.private {
                    private && c.bot_member
                } else {
                    public
                }
            })
            .filter(|c| !(exclude_archived && c.archived))
            .map(|c| {
                json!({"id": c.id, "name": c.name, "is_channel": true, "is_private": c.private,
                       "is_archived": c.archived, "is_member": c.bot_member})
            })
            .collect();
        Ok(json!({"ok": true, "channels": channels, "response_metadata": {"next_cursor": ""}}))
    }

    /// `auth.test`: the bot, or the installer for a user token from an install.
    pub(crate) fn auth_test(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let state = self.lock();
        let token = self.authenticate(&state, request)?;
        if state.oauth.issued_kind(token) == Some(oauth::TokenKind::User) {
            return Ok(json!({
                "ok": true,
                "url": format!("http://{}/", self.addr),
                "team": self.config.team_name,
                "user": "installer",
                "team_id": self.config.team_id,
                "user_id": oauth::INSTALLER_ID,
                "is_enterprise_install": false,
            }));
        }
        Ok(json!({
            "ok": true,
            "url": format!("http://{}/", self.addr),
            "team": self.config.team_name,
            "user": "ingestlayer",
            "team_id": self.config.team_id,
            "user_id": USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": false,
        }))
    }

    pub(crate) fn messages(&self, channel: Option<&str>) -> Vec<PostedMessage> {
        let state = self.lock();
        let wanted = channel.map(|raw| {
            ChannelRef::parse(raw).unwrap_or_else(|| ChannelRef::Name(normalize_name(raw)))
        });
        state
            .messages
            .iter()
            .filter(|m| match &wanted {
                None => true,
                Some(ChannelRef::Name(name)) => &m.channel == name,
                Some(ChannelRef::Id(id)) => &m.channel_id == id,
            })
            .cloned()
            .collect()
    }

    pub(crate) fn messages_from(&self, first: usize) -> Vec<PostedMessage> {
        let state = self.lock();
        state.messages.get(first..).unwrap_or_default().to_vec()
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub(crate) fn create_channel(&self, name: &str, private: bool, bot_member: bool) {
        self.lock()
            .channels
            .upsert(&normalize_name(name), private, bot_member);
    }

    pub(crate) fn archive_channel(&self, name: &str) {
        self.lock().channels.archive(&normalize_name(name));
    }

    pub(crate) fn channel_id(&self, name: &str) -> Option<String> {
        let state = self.lock();
        state
            .channels
            .lookup(&ChannelRef::Name(normalize_name(name)))
            .map(|c| c.id.clone())
    }

    /// Forgets everything but the configuration; ts values keep increasing.
    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        state.channels.clear();
        state.messages.clear();
        state.requests.clear();
        state.faults.clear();
        state.pacer.clear();
        state.oauth = Registry::default();
        state.users.clear();
        state.joins.clear();
    }

    /// The workspace's name, for the consent page.
    pub(crate) fn team_name(&self) -> &str {
        &self.config.team_name
    }

    /// Checks `/oauth/v2/authorize` arguments against the registered apps.
    pub(crate) fn authorize(
        &self,
        pairs: &[(String, String)],
    ) -> Result<AuthorizeRequest, oauth::AuthorizeError> {
        AuthorizeRequest::parse(pairs, &self.config.oauth_clients)
    }

    /// The installer clicked Allow: a fresh one-time code, and where it sends the browser.
    pub(crate) fn approve(&self, request: &AuthorizeRequest) -> String {
        let code = self.lock().oauth.issue_code(request, Instant::now());
        request.approved_redirect(&code)
    }

    /// `oauth.v2.access`. `basic` holds the credentials of an `Authorization: Basic` header,
    /// which win over `client_id`/`client_secret` arguments. Checks the app, then its secret,
    /// then the grant.
    pub(crate) fn oauth_access(
        &self,
        basic: Option<(String, String)>,
        params: &[(String, String)],
    ) -> Result<Value, Rejection> {
        let (client_id, secret) = match &basic {
            Some((id, secret)) => (Some(id.as_str()), Some(secret.as_str())),
            None => (
                oauth::first(params, "client_id"),
                oauth::first(params, "client_secret"),
            ),
        };
        let (client_id, expected_secret) = client_id
            .and_then(|id| {
                self.config
                    .oauth_clients
                    .iter()
                    .find(|(known, _)| known == id)
            })
            .ok_or(Rejection::InvalidClientId)?;
        if secret != Some(expected_secret.as_str()) {
            return Err(Rejection::BadClientSecret);
        }
        let now = Instant::now();
        match oauth::first(params, "grant_type") {
            None | Some("" | "authorization_code") => {
                let code = oauth::first(params, "code").ok_or(Rejection::InvalidCode)?;
                let redirect_uri = oauth::first(params, "redirect_uri");
                let installation = self.lock().oauth.exchange_code(
                    client_id,
                    code,
                    redirect_uri,
                    self.config.token_rotation,
                    now,
                )?;
                Ok(self.installation_json(installation))
            }
            Some("refresh_token") => {
                let refresh_token =
                    oauth::first(params, "refresh_token").ok_or(Rejection::InvalidRefreshToken)?;
                let issued = self.lock().oauth.refresh(client_id, refresh_token, now)?;
                Ok(self.refreshed_json(issued))
            }
            Some(_) => Err(Rejection::InvalidGrantType),
        }
    }

    /// `oauth.v2.access` after an install: the bot token at the top level, the user token (if
    /// user scopes were granted) under `authed_user`.
    fn installation_json(&self, installation: Installation) -> Value {
        let mut body = Map::new();
        body.insert("ok".into(), json!(true));
        body.insert("app_id".into(), json!(APP_ID));
        let mut authed_user = Map::new();
        authed_user.insert("id".into(), json!(oauth::INSTALLER_ID));
        if let Some(user) = installation.user {
            token_fields(&mut authed_user, user);
        }
        body.insert("authed_user".into(), Value::Object(authed_user));
        if let Some(bot) = installation.bot {
            token_fields(&mut body, bot);
            body.insert("bot_user_id".into(), json!(USER_ID));
        }
        self.team_fields(&mut body);
        Value::Object(body)
    }

    /// `oauth.v2.access` after a refresh: the new token at the top level, whichever kind.
    fn refreshed_json(&self, issued: Issued) -> Value {
        let mut body = Map::new();
        body.insert("ok".into(), json!(true));
        body.insert("app_id".into(), json!(APP_ID));
        let kind = issued.kind;
        token_fields(&mut body, issued);
        match kind {
            oauth::TokenKind::Bot => {
                body.insert("bot_user_id".into(), json!(USER_ID));
            }
            oauth::TokenKind::User => {
                body.insert("user_id".into(), json!(oauth::INSTALLER_ID));
            }
        }
        self.team_fields(&mut body);
        Value::Object(body)
    }

    fn team_fields(&self, body: &mut Map<String, Value>) {
        body.insert(
            "team".into(),
            json!({"id": self.config.team_id, "name": self.config.team_name}),
        );
        body.insert("enterprise".into(), Value::Null);
        body.insert("is_enterprise_install".into(), json!(false));
    }

    /// `auth.revoke`: the calling token stops working (`token_revoked`); with `test=true`
    /// nothing is revoked.
    pub(crate) fn auth_revoke(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let mut state = self.lock();
        let token = self.authenticate(&state, request)?;
        let test = request
            .params
            .as_ref()
            .is_ok_and(|params| bool_arg(params.get("test")));
        if !test {
            state.oauth.revoke(token);
        }
        Ok(json!({"ok": true, "revoked": !test}))
    }

    /// `users.lookupByEmail`, case-insensitive on the email.
    pub(crate) fn lookup_by_email(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let state = self.lock();
        self.authenticate(&state, request)?;
        let params = request
            .params
            .as_ref()
            .map_err(|InvalidJson| Rejection::InvalidJson)?;
        let email = params
            .get("email")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or(Rejection::InvalidArguments)?;
        let user = state
            .users
            .get(&email.to_lowercase())
            .ok_or(Rejection::UsersNotFound)?;
        let name = user.email.split('@').next().unwrap_or_default();
        Ok(json!({
            "ok": true,
            "user": {
                "id": user.id,
                "team_id": self.config.team_id,
                "name": name,
                "deleted": false,
                "real_name": name,
                "is_bot": false,
                "profile": {
                    "email": user.email,
                    "real_name": name,
                    "display_name": name,
                },
            },
        }))
    }

    pub(crate) fn add_user(&self, email: &str, id: &str) {
        let email = email.trim();
        self.lock().users.insert(
            email.to_lowercase(),
            User {
                id: id.to_owned(),
                email: email.to_owned(),
            },
        );
    }

    pub(crate) fn expire_token(&self, token: &str) {
        self.lock().oauth.expire(token);
    }

    pub(crate) fn revoke_token(&self, token: &str) {
        self.lock().oauth.revoke(token);
    }

    pub(crate) fn refresh_count(&self) -> usize {
        self.lock().oauth.refresh_count()
    }
}

/// `thread_ts` of a post: the parent's ts, which must be a top-level message of the same
/// channel. Slack answers `thread_not_found` for a ts that is no message of the channel and
/// `invalid_thread_ts` for one that is itself a reply (or not a ts at all).
fn thread_arg(
    state: &State,
    channel_id: &str,
    value: Option<&Value>,
) -> Result<Option<String>, Rejection> {
    let ts = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(Rejection::InvalidThreadTs),
    };
    if parse_ts(&ts).is_none() {
        return Err(Rejection::InvalidThreadTs);
    }
    let parent = state
        .messages
        .iter()
        .find(|m| m.channel_id == channel_id && m.ts == ts)
        .ok_or(Rejection::ThreadNotFound)?;
    if parent.thread_ts.is_some() {
        return Err(Rejection::InvalidThreadTs);
    }
    Ok(Some(ts))
}

/// A parent message as the history shows it: with `thread_ts`, `reply_count` and
/// `latest_reply` once it has replies.
fn with_thread(mut json: Value, message: &PostedMessage, all: &[PostedMessage]) -> Value {
    let replies: Vec<&PostedMessage> = all
        .iter()
        .filter(|m| {
            m.channel_id == message.channel_id && m.thread_ts.as_deref() == Some(&message.ts)
        })
        .collect();
    if let Some(last) = replies.last() {
        json["thread_ts"] = json!(message.ts);
        json["reply_count"] = json!(replies.len());
        json["latest_reply"] = json!(last.ts);
    }
    json
}

impl Shared {
    /// `conversations.replies`: the thread of `ts` (its parent, or any reply in it), parent
    /// first, then the replies oldest first (`oldest`/`latest` bound the replies; `limit` and
    /// `cursor` page them). `thread_not_found` when `ts` is no message of the channel.
    pub(crate) fn replies(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let state = self.lock();
        self.authenticate(&state, request)?;
        let params = request
            .params
            .as_ref()
            .map_err(|InvalidJson| Rejection::InvalidJson)?;
        let channel = state
            .channels
            .lookup(&channel_arg(params)?)
            .ok_or(Rejection::ChannelNotFound)?;
        if !channel.bot_member {
            return Err(Rejection::NotInChannel);
        }
        let ts = params
            .get("ts")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::ThreadNotFound)?;
        let found = state
            .messages
            .iter()
            .find(|m| m.channel_id == channel.id && m.ts == ts)
            .ok_or(Rejection::ThreadNotFound)?;
        let parent_ts = found.thread_ts.clone().unwrap_or_else(|| found.ts.clone());
        let parent = state
            .messages
            .iter()
            .find(|m| m.channel_id == channel.id && m.ts == parent_ts)
            .ok_or(Rejection::ThreadNotFound)?;
        let limit = match params.get("limit") {
            None | Some(Value::Null) => 1000,
            Some(value) => count_arg(value).ok_or(Rejection::InvalidArguments)?,
        };
        let limit = if limit == 0 { 1000 } else { limit.min(1000) };
        let oldest = match params.get("oldest") {
            None | Some(Value::Null) => 0,
            Some(value) => ts_arg(value).ok_or(Rejection::InvalidTsOldest)?,
        };
        let latest = match params.get("latest") {
            None | Some(Value::Null) => u64::MAX,
            Some(value) => ts_arg(value).ok_or(Rejection::InvalidTsLatest)?,
        };
        let after = match params.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) if c.is_empty() => None,
            Some(Value::String(c)) => Some(
                c.strip_prefix(CURSOR_PREFIX)
                    .and_then(|ts| ts.parse::<u64>().ok())
                    .ok_or(Rejection::InvalidCursor)?,
            ),
            Some(_) => return Err(Rejection::InvalidCursor),
        };
        let include_metadata = bool_arg(params.get("include_all_metadata"));
        let replies: Vec<&PostedMessage> = state
            .messages
            .iter()
            .filter(|m| m.channel_id == channel.id && m.thread_ts.as_deref() == Some(&parent_ts))
            .filter(|m| {
                let ts = parse_ts(&m.ts).unwrap_or(0);
                oldest < ts && ts < latest && after.is_none_or(|a| ts > a)
            })
            .collect();
        let page: Vec<&PostedMessage> = replies.iter().take(limit).copied().collect();
        let has_more = replies.len() > limit;
        let next_cursor = match page.last() {
            Some(last) if has_more => format!("{CURSOR_PREFIX}{}", parse_ts(&last.ts).unwrap_or(0)),
            _ => String::new(),
        };
        let team = &self.config.team_id;
        let mut messages = Vec::new();
        if after.is_none() {
            messages.push(with_thread(
                message_json(parent, include_metadata, team),
                parent,
                &state.messages,
            ));
        }
        messages.extend(page.iter().map(|m| message_json(m, include_metadata, team)));
        Ok(json!({
            "ok": true,
            "messages": messages,
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        }))
    }

    /// `chat.update`: replaces the text and blocks of the bot's message `ts` in `channel`,
    /// checked as a post is (`no_text`, `msg_too_long`, `invalid_blocks`).
    /// `message_not_found` for no such message, `cant_update_message` for one the bot did not
    /// post.
    pub(crate) fn update(&self, request: &ApiRequest) -> Result<Value, Rejection> {
        let mut guard = self.lock();
        let state = &mut *guard;
        self.authenticate(state, request)?;
        let params = request
            .params
            .as_ref()
            .map_err(|InvalidJson| Rejection::InvalidJson)?;
        let channel = state
            .channels
            .lookup(&channel_arg(params)?)
            .cloned()
            .ok_or(Rejection::ChannelNotFound)?;
        if channel.archived {
            return Err(Rejection::IsArchived);
        }
        let ts = params
            .get("ts")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let index = state
            .messages
            .iter()
            .position(|m| m.channel_id == channel.id && m.ts == ts)
            .ok_or(Rejection::MessageNotFound)?;
        if state.messages[index].user != USER_ID {
            return Err(Rejection::CantUpdateMessage);
        }
        let text = text_arg(params.get("text"))?;
        if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
            return Err(Rejection::MsgTooLong);
        }
        let blocks = blocks_arg(params.get("blocks"))?;
        let has_text = text.as_ref().is_some_and(|t| !t.is_empty());
        let has_blocks = blocks
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|b| !b.is_empty());
        if !has_text && !has_blocks {
            return Err(Rejection::NoText);
        }
        let message = &mut state.messages[index];
        message.text = text;
        message.blocks = blocks;
        message.edits += 1;
        let json = message_json(message, false, &self.config.team_id);
        Ok(json!({
            "ok": true,
            "channel": channel.id,
            "ts": ts,
            "text": json["text"],
            "message": json,
        }))
    }

    /// A person's message (see [`crate::Standin::post_as_user`]).
    pub(crate) fn post_as_user(
        &self,
        channel: &str,
        user_id: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> Option<String> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let channel = state
            .channels
            .lookup_or_create(&ChannelRef::parse(channel)?)?
            .clone();
        let thread_ts = match thread_ts {
            Some(ts) => thread_arg(state, &channel.id, Some(&json!(ts))).ok()?,
            None => None,
        };
        let ts = state.next_ts();
        state.messages.push(PostedMessage {
            channel: channel.name,
            channel_id: channel.id,
            ts: ts.clone(),
            text: Some(text.to_owned()),
            blocks: None,
            metadata: None,
            token: String::new(),
            at: Instant::now().into_std(),
            thread_ts,
            user: user_id.to_owned(),
            edits: 0,
        });
        Some(ts)
    }

    /// A click on a message's button, as the signed request Slack sends the app (see
    /// [`crate::Standin::click`]).
    pub(crate) fn click(
        &self,
        channel: &str,
        ts: &str,
        action_id: &str,
        user_id: &str,
        signing_secret: &str,
        timestamp: i64,
    ) -> Option<crate::Interaction> {
        let state = self.lock();
        let channel = state.channels.lookup(&ChannelRef::parse(channel)?)?.clone();
        let message = state
            .messages
            .iter()
            .find(|m| m.channel_id == channel.id && m.ts == ts)?;
        let blocks = message.blocks.as_ref()?.as_array()?;
        let (block_id, button) = blocks.iter().enumerate().find_map(|(i, block)| {
            let button = block["elements"]
                .as_array()?
                .iter()
                .find(|e| e["type"] == "button" && e["action_id"] == action_id)?;
            let block_id = block["block_id"]
                .as_str()
                .map_or_else(|| format!("b{i}"), str::to_owned);
            Some((block_id, button.clone()))
        })?;
        let team = &self.config.team_id;
        let action_ts = format!("{timestamp}.000000");
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user_id, "username": user_id.to_lowercase(), "name": user_id.to_lowercase(), "team_id": team},
            "api_app_id": APP_ID,
            "token": "standin-verification-token",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel.id, "is_ephemeral": false},
            "trigger_id": format!("{timestamp}.{}", ts.replace('.', "")),
            "team": {"id": team, "domain": "standin"},
            "enterprise": Value::Null,
            "is_enterprise_install": false,
            "channel": {"id": channel.id, "name": channel.name},
            "message": message_json(message, false, team),
            "state": {"values": {}},
            "response_url": format!("http://{}/actions/{}", self.addr, ts.replace('.', "")),
            "actions": [{
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": button["text"],
                "value": button["value"],
                "action_ts": action_ts,
            }],
        });
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let signature = crate::signing::sign_event_request(signing_secret, timestamp, &body);
        Some(crate::Interaction {
            body,
            timestamp,
            signature,
            payload,
        })
    }
}

/// The `channel` argument (an ID or a name); Slack answers `channel_not_found` for a
/// missing or malformed one.
fn channel_arg(params: &Map<String, Value>) -> Result<ChannelRef, Rejection> {
    params
        .get("channel")
        .and_then(Value::as_str)
        .and_then(ChannelRef::parse)
        .ok_or(Rejection::ChannelNotFound)
}

/// Slack's checks after auth and faults, in Slack's order; records the message when accepted.
fn accept(
    state: &mut State,
    params: &Map<String, Value>,
    token: &str,
    now: Instant,
) -> Result<PostedMessage, Rejection> {
    let channel_ref = channel_arg(params)?;
    let channel = state
        .channels
        .lookup_or_create(&channel_ref)
        .cloned()
        .ok_or(Rejection::ChannelNotFound)?;
    if channel.archived {
        return Err(Rejection::IsArchived);
    }
    if channel.private && !channel.bot_member {
        return Err(Rejection::NotInChannel);
    }

    let text = text_arg(params.get("text"))?;
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(Rejection::MsgTooLong);
    }
    let blocks = blocks_arg(params.get("blocks"))?;
    let has_text = text.as_ref().is_some_and(|t| !t.is_empty());
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|b| !b.is_empty());
    if !has_text && !has_blocks {
        return Err(Rejection::NoText);
    }
    let metadata = metadata_arg(params.get("metadata"))?;
    let thread_ts = thread_arg(state, &channel.id, params.get("thread_ts"))?;

    state
        .pacer
        .take(&channel.id, now)
        .map_err(|retry_after_secs| Rejection::RateLimited { retry_after_secs })?;

    let message = PostedMessage {
        channel: channel.name,
        channel_id: channel.id,
        ts: state.next_ts(),
        text,
        blocks,
        metadata,
        token: token.to_owned(),
        at: now.into_std(),
        thread_ts,
        user: USER_ID.to_owned(),
        edits: 0,
    };
    state.messages.push(message.clone());
    Ok(message)
}

/// `text`: a string (numbers and booleans as Slack's form encoding would send them).
fn text_arg(value: Option<&Value>) -> Result<Option<String>, Rejection> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        Some(_) => Err(Rejection::InvalidArguments),
    }
}

/// `blocks`: an array, or a string holding one (form bodies); an empty string is absent.
fn blocks_arg(value: Option<&Value>) -> Result<Option<Value>, Rejection> {
    let blocks = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            Rejection::InvalidBlocks(vec![format!(
                "failed to parse blocks as JSON: {e} [json-pointer:/blocks]"
            )])
        })?,
        Some(other) => other.clone(),
    };
    blocks::validate(&blocks).map_err(Rejection::InvalidBlocks)?;
    Ok(Some(blocks))
}

/// `metadata`: `{"event_type": non-empty string, "event_payload": object}`, or a string
/// holding one.
fn metadata_arg(value: Option<&Value>) -> Result<Option<Value>, Rejection> {
    let metadata = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s).map_err(|_| Rejection::InvalidMetadataFormat)?
        }
        Some(other) => other.clone(),
    };
    let event_type = metadata.get("event_type").and_then(Value::as_str);
    let payload = metadata.get("event_payload").and_then(Value::as_object);
    match (event_type, payload) {
        (Some(event_type), Some(payload)) if !event_type.is_empty() => Ok(Some(json!({
            "event_type": event_type,
            "event_payload": payload,
        }))),
        _ => Err(Rejection::InvalidMetadataFormat),
    }
}

fn count_arg(value: &Value) -> Option<usize> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn bool_arg(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => matches!(s.trim(), "true" | "1"),
        _ => false,
    }
}

fn ts_arg(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => parse_ts(s.trim()),
        Value::Number(n) => parse_ts(&n.to_string()),
        _ => None,
    }
}

/// `"1700000000.000100"` → microseconds since the epoch. Fractions beyond six digits are cut.
fn parse_ts(ts: &str) -> Option<u64> {
    let (secs, fraction) = ts.split_once('.').unwrap_or((ts, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut micros = 0u64;
    for i in 0..6 {
        let digit = fraction
            .as_bytes()
            .get(i)
            .map_or(0, |b| u64::from(b - b'0'));
        micros = micros * 10 + digit;
    }
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// `access_token`, `token_type`, `scope` and, with rotation, `refresh_token` and `expires_in`.
fn token_fields(body: &mut Map<String, Value>, issued: Issued) {
    body.insert("scope".into(), json!(issued.scopes.join(",")));
    body.insert("token_type".into(), json!(issued.kind.as_str()));
    body.insert("access_token".into(), json!(issued.access_token));
    if let Some(rotation) = issued.rotation {
        body.insert("refresh_token".into(), json!(rotation.refresh_token));
        body.insert("expires_in".into(), json!(rotation.expires_in));
    }
}

/// A message as `conversations.history` and `chat.postMessage` return it.
fn message_json(message: &PostedMessage, include_metadata: bool, team_id: &str) -> Value {
    let mut json = json!({
        "type": "message",
        "user": message.user,
        "team": team_id,
        "text": message.text.clone().unwrap_or_default(),
        "ts": message.ts,
    });
    if message.user == USER_ID {
        json["bot_id"] = json!(BOT_ID);
        json["app_id"] = json!(APP_ID);
    }
    if let Some(thread_ts) = &message.thread_ts {
        json["thread_ts"] = json!(thread_ts);
        json["parent_user_id"] = json!(USER_ID);
    }
    if message.edits > 0 {
        json["edited"] = json!({"user": USER_ID, "ts": message.ts});
    }
    if let Some(blocks) = &message.blocks {
        json["blocks"] = blocks.clone();
    }
    if include_metadata {
        if let Some(metadata) = &message.metadata {
            json["metadata"] = metadata.clone();
        }
    }
    json
}

fn print_box(message: &PostedMessage) {
    let drawn = message_box::message_box(
        &message.channel,
        message.text.as_deref(),
        message.blocks.as_ref(),
    );
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(drawn.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_values_parse_to_microseconds() {
        assert_eq!(parse_ts("1700000000.000100"), Some(1_700_000_000_000_100));
        assert_eq!(parse_ts("1700000000.1"), Some(1_700_000_000_100_000));
        assert_eq!(parse_ts("1700000000"), Some(1_700_000_000_000_000));
        assert_eq!(parse_ts("0"), Some(0));
        assert_eq!(parse_ts("abc"), None);
        assert_eq!(parse_ts("1.2x"), None);
        assert_eq!(parse_ts(".5"), None);
    }

    #[test]
    fn metadata_needs_an_event_type_and_an_object_payload() {
        let ok = json!({"event_type": "feature_used", "event_payload": {"plan": "free"}});
        assert!(metadata_arg(Some(&ok)).is_ok());
        assert!(metadata_arg(Some(&Value::String(ok.to_string()))).is_ok());
        for bad in [
            json!({"event_type": "x"}),
            json!({"event_type": "", "event_payload": {}}),
            json!({"event_type": "x", "event_payload": []}),
            json!("not json"),
            json!(3),
        ] {
            assert_eq!(
                metadata_arg(Some(&bad)),
                Err(Rejection::InvalidMetadataFormat),
                "{bad}"
            );
        }
    }
}
