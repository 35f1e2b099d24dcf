//! What Telegram decides: bot tokens, chats, the message rules, flood limits, faults, and the
//! record of everything sent. No HTTP here; `api` translates.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::chat::{Chat, ChatKind, ChatRef};
use crate::fault::{Fault, FaultKind, Faults};
use crate::html::{self, Formatted};
use crate::pacing::{Limits, Pacer};
use crate::rejection::Rejection;
use crate::{Error, ParseMode, RecordedRequest, SentMessage, StandinConfig};

/// A Bot API call: the token from the URL and the arguments (query string, then body on top).
/// No `Debug`: it holds a token.
#[derive(Clone)]
pub(crate) struct ApiCall {
    pub(crate) token: String,
    /// `Err` when the body was declared JSON but is not a JSON object.
    pub(crate) params: Result<Map<String, Value>, Rejection>,
}

/// What to do with a `sendMessage` request.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Answer this now.
    Answer(Result<Value, Rejection>),
    /// Answer this after the delay (the decision is already made).
    AnswerAfter(Result<Value, Rejection>, Duration),
    /// Wait, then decide (without faults) and answer.
    DecideAfter(Duration),
}

/// The stand-in's state, shared by the server task and the [`crate::Standin`] handle.
pub(crate) struct Shared {
    config: StandinConfig,
    state: Mutex<State>,
}

struct State {
    /// Bot ID by token.
    bots: HashMap<String, i64>,
    chats: BTreeMap<i64, Chat>,
    messages: Vec<SentMessage>,
    requests: Vec<RecordedRequest>,
    faults: Faults,
    pacer: Pacer,
    /// The last message ID given out in each chat.
    last_message_id: HashMap<i64, i64>,
}

impl State {
    fn resolve(&self, chat: &ChatRef) -> Option<&Chat> {
        match chat {
            ChatRef::Id(id) => self.chats.get(id),
            // Telegram resolves @username for public supergroups and channels, not people.
            ChatRef::Username(name) => self.chats.values().find(|c| {
                c.kind != ChatKind::Private && c.username.as_deref() == Some(name.as_str())
            }),
            ChatRef::Unknown => None,
        }
    }

    /// Whether a fault's `chat` (`-5`, `@alerts`) names the request's chat.
    fn fault_matches(&self, fault_chat: &str, request: Option<&ChatRef>) -> bool {
        let (Some(wanted), Some(request)) = (ChatRef::parse(fault_chat), request) else {
            return false;
        };
        match (self.resolve(&wanted), self.resolve(request)) {
            (Some(a), Some(b)) => a.id == b.id,
            _ => wanted == *request,
        }
    }
}

/// The `sendMessage` arguments that passed the checks, for a known chat.
struct Accepted {
    bot_id: i64,
    chat: Chat,
    raw_text: String,
    formatted: Formatted,
    parse_mode: Option<ParseMode>,
    link_preview_disabled: bool,
}

impl Shared {
    pub(crate) fn new(config: StandinConfig) -> Result<Shared, Error> {
        let pacer = Pacer::new(limits(&config));
        let mut bots = HashMap::new();
        for token in &config.bot_tokens {
            bots.insert(token.clone(), bot_id(token)?);
        }
        Ok(Shared {
            config,
            state: Mutex::new(State {
                bots,
                chats: BTreeMap::new(),
                messages: Vec::new(),
                requests: Vec::new(),
                faults: Faults::default(),
                pacer,
                last_message_id: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add_bot(&self, token: &str) -> Result<i64, Error> {
        let id = bot_id(token)?;
        self.lock().bots.insert(token.to_owned(), id);
        Ok(id)
    }

    pub(crate) fn add_chat(&self, id: i64, kind: ChatKind) -> Result<(), Error> {
        if !kind.fits(id) {
            return Err(Error::ChatIdSign { id, kind });
        }
        let mut state = self.lock();
        match state.chats.get_mut(&id) {
            Some(chat) => chat.kind = kind,
            None => {
                state.chats.insert(id, Chat::new(id, kind));
            }
        }
        Ok(())
    }

    pub(crate) fn set_chat_title(&self, id: i64, title: &str) -> Result<(), Error> {
        let mut state = self.lock();
        let chat = state.chats.get_mut(&id).ok_or(Error::UnknownChat(id))?;
        chat.title = title.to_owned();
        Ok(())
    }

    pub(crate) fn set_chat_username(&self, id: i64, username: &str) -> Result<(), Error> {
        let name = username.trim().trim_start_matches('@');
        let valid = (5..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(Error::BadUsername(username.to_owned()));
        }
        let mut state = self.lock();
        let chat = state.chats.get_mut(&id).ok_or(Error::UnknownChat(id))?;
        chat.username = Some(name.to_ascii_lowercase());
        Ok(())
    }

    /// Sets a private chat's `blocked` flag.
    pub(crate) fn set_blocked(&self, id: i64, blocked: bool) -> Result<(), Error> {
        let mut state = self.lock();
        let chat = state.chats.get_mut(&id).ok_or(Error::UnknownChat(id))?;
        if chat.kind != ChatKind::Private {
            return Err(Error::WrongChatKind {
                id,
                kind: chat.kind,
                action: "block the bot (only a person can, in a private chat)",
            });
        }
        chat.blocked = blocked;
        Ok(())
    }

    /// Sets a group's, supergroup's or channel's `kicked` flag.
    pub(crate) fn set_kicked(&self, id: i64, kicked: bool) -> Result<(), Error> {
        let mut state = self.lock();
        let chat = state.chats.get_mut(&id).ok_or(Error::UnknownChat(id))?;
        if chat.kind == ChatKind::Private {
            return Err(Error::WrongChatKind {
                id,
                kind: chat.kind,
                action: "kick the bot (a private chat can only block it)",
            });
        }
        chat.kicked = kicked;
        Ok(())
    }

    /// Resolves a chat reference (`-5`, `@alerts`) to a registered chat's ID.
    pub(crate) fn chat_id(&self, chat: &str) -> Option<i64> {
        let state = self.lock();
        ChatRef::parse(chat).and_then(|c| state.resolve(&c).map(|c| c.id))
    }

    pub(crate) fn messages(&self, chat_id: Option<i64>) -> Vec<SentMessage> {
        self.lock()
            .messages
            .iter()
            .filter(|m| chat_id.is_none_or(|id| m.chat_id == id))
            .cloned()
            .collect()
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        state.messages.clear();
        state.requests.clear();
        state.faults.clear();
        state.pacer.clear();
        state.last_message_id.clear();
    }

    /// `getMe`: the bot's `User`.
    pub(crate) fn get_me(&self, call: &ApiCall) -> Result<Value, Rejection> {
        let id = *self
            .lock()
            .bots
            .get(&call.token)
            .ok_or(Rejection::Unauthorized)?;
        Ok(bot_user(id, true))
    }

    /// `sendMessage`, first step: the token, then the fault queue.
    pub(crate) fn plan_send(&self, call: &ApiCall) -> Plan {
        let mut state = self.lock();
        if !state.bots.contains_key(&call.token) {
            drop(state);
            return Plan::Answer(self.finish(call, Err(Rejection::Unauthorized)));
        }
        let chat_ref = call
            .params
            .as_ref()
            .ok()
            .and_then(|p| ChatRef::from_arg(p.get("chat_id")));
        // The queue comes out while the chats are read to match the faults' chats.
        let mut faults = std::mem::take(&mut state.faults);
        let fault = faults.take(|c| state.fault_matches(c, chat_ref.as_ref()));
        state.faults = faults;
        drop(state);
        match fault {
            None => Plan::Answer(self.send(call)),
            Some(FaultKind::HttpStatus(status)) => {
                Plan::Answer(self.finish(call, Err(Rejection::Http(FaultKind::status(status)))))
            }
            Some(FaultKind::RateLimited { retry_after }) => {
                Plan::Answer(self.finish(call, Err(Rejection::TooManyRequests { retry_after })))
            }
            Some(FaultKind::Delay(delay)) => Plan::DecideAfter(delay),
            Some(FaultKind::AcceptThenFail(status)) => {
                let answer = self.send(call);
                Plan::Answer(match answer {
                    Ok(_) => Err(Rejection::Http(FaultKind::status(status))),
                    refused => refused,
                })
            }
            Some(FaultKind::AcceptThenDelay(delay)) => Plan::AnswerAfter(self.send(call), delay),
        }
    }

    /// `sendMessage` without faults: decide, record, print. The answer is the `Message`.
    pub(crate) fn send(&self, call: &ApiCall) -> Result<Value, Rejection> {
        let now = Instant::now();
        let mut state = self.lock();
        let decided = self.decide(&mut state, call, now);
        let result = match decided {
            Err(rejection) => Err(rejection),
            Ok(accepted) => {
                let message = record(&mut state, accepted, now);
                let chat = state.chats.get(&message.chat_id).cloned();
                if self.config.print_messages {
                    print_message(&message, chat.as_ref());
                }
                Ok(message_json(&message, chat.as_ref()))
            }
        };
        drop(state);
        self.finish(call, result)
    }

    /// Records the request's outcome and logs it.
    fn finish(&self, call: &ApiCall, result: Result<Value, Rejection>) -> Result<Value, Rejection> {
        let chat_id = match &result {
            Ok(message) => message["chat"]["id"].as_i64(),
            Err(_) => call
                .params
                .as_ref()
                .ok()
                .and_then(|p| ChatRef::from_arg(p.get("chat_id")))
                .and_then(|c| self.lock().resolve(&c).map(|c| c.id)),
        };
        let (status, description) = match &result {
            Ok(_) => (200, None),
            Err(rejection) => (rejection.status(), Some(rejection.description())),
        };
        self.lock().requests.push(RecordedRequest {
            chat_id,
            at: Instant::now(),
            status,
            description: description.clone(),
        });
        tracing::info!(
            chat_id = chat_id.unwrap_or_default(),
            status,
            description = description.as_deref().unwrap_or(""),
            "sendMessage answered"
        );
        result
    }

    /// Telegram's checks, in the order the Bot API makes them: the arguments and the text's
    /// entities, then the chat and the bot's access to it, then the length, then flood limits.
    fn decide(
        &self,
        state: &mut State,
        call: &ApiCall,
        now: Instant,
    ) -> Result<Accepted, Rejection> {
        let bot_id = *state.bots.get(&call.token).ok_or(Rejection::Unauthorized)?;
        let params = call.params.as_ref().map_err(Clone::clone)?;
        let chat_ref = ChatRef::from_arg(params.get("chat_id")).ok_or(Rejection::ChatIdEmpty)?;
        let raw_text = text_arg(params.get("text")).ok_or(Rejection::TextEmpty)?;
        let parse_mode = parse_mode_arg(params.get("parse_mode"))?;
        let link_preview_disabled = link_preview_disabled(params)?;
        let formatted = match parse_mode {
            None => Formatted {
                text: raw_text.clone(),
                entities: Vec::new(),
            },
            Some(ParseMode::Html) => html::parse_html(&raw_text, self.config.html_strictness)
                .map_err(|e| Rejection::CantParseEntities(e.0))?,
        };
        let formatted = html::trim(formatted);

        let chat = state
            .resolve(&chat_ref)
            .cloned()
            .ok_or(Rejection::ChatNotFound)?;
        match chat.kind {
            ChatKind::Private if chat.blocked => return Err(Rejection::BlockedByUser),
            ChatKind::Group if chat.kicked => return Err(Rejection::KickedFromGroup),
            ChatKind::Supergroup if chat.kicked => return Err(Rejection::KickedFromSupergroup),
            ChatKind::Channel if chat.kicked => return Err(Rejection::NotChannelMember),
            _ => {}
        }
        if formatted.text.is_empty() {
            return Err(Rejection::TextEmpty);
        }
        if self.config.length_unit.measure(&formatted.text) > self.config.max_text_length {
            return Err(Rejection::TooLong);
        }
        state
            .pacer
            .admit(bot_id, chat.id, chat.kind.is_group(), now)
            .map_err(|retry_after| Rejection::TooManyRequests { retry_after })?;
        Ok(Accepted {
            bot_id,
            chat,
            raw_text,
            formatted,
            parse_mode,
            link_preview_disabled,
        })
    }
}

fn limits(config: &StandinConfig) -> Limits {
    let rate = |r: f64| (r.is_finite() && r > 0.0).then_some(r);
    Limits {
        per_chat: rate(config.per_chat_per_sec).map(|r| (r, config.per_chat_burst)),
        per_group: (config.per_group_per_minute > 0)
            .then_some((config.per_group_per_minute, Duration::from_secs(60))),
        per_bot: rate(config.per_bot_per_sec).map(|r| (r, config.per_bot_burst)),
    }
}

/// The bot ID of a token `<id>:<secret>`.
pub(crate) fn bot_id(token: &str) -> Result<i64, Error> {
    let (id, secret) = token.split_once(':').ok_or(Error::BadToken)?;
    if secret.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::BadToken);
    }
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(Error::BadToken)
}

/// The `text` argument; a JSON number or boolean counts as its text, as Telegram reads
/// arguments. `None` (or empty) is "message text is empty".
fn text_arg(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// `parse_mode`, case-insensitive as Telegram reads it; empty means none.
fn parse_mode_arg(value: Option<&Value>) -> Result<Option<ParseMode>, Rejection> {
    let mode = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(Rejection::UnsupportedParseMode),
    };
    match mode.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "html" => Ok(Some(ParseMode::Html)),
        "markdown" | "markdownv2" => Err(Rejection::ParseModeNotImplemented(mode.to_owned())),
        _ => Err(Rejection::UnsupportedParseMode),
    }
}

/// Truthy as the Bot API reads a Boolean argument: JSON `true`, or `"true"`/`"1"` in a form.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1"),
        _ => false,
    }
}

/// `link_preview_options.is_disabled` (an object, or its JSON text in a form) or the legacy
/// `disable_web_page_preview`.
fn link_preview_disabled(params: &Map<String, Value>) -> Result<bool, Rejection> {
    let options = match params.get("link_preview_options") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(serde_json::from_str::<Value>(s).map_err(|_| Rejection::BadLinkPreviewOptions)?)
        }
        Some(other) => Some(other.clone()),
    };
    let from_options = match &options {
        None => false,
        Some(Value::Object(o)) => truthy(o.get("is_disabled")),
        Some(_) => return Err(Rejection::BadLinkPreviewOptions),
    };
    Ok(from_options || truthy(params.get("disable_web_page_preview")))
}

fn record(state: &mut State, accepted: Accepted, now: Instant) -> SentMessage {
    let id = state.last_message_id.entry(accepted.chat.id).or_insert(0);
    *id += 1;
    let date = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let message = SentMessage {
        chat_id: accepted.chat.id,
        message_id: *id,
        bot_id: accepted.bot_id,
        date,
        at: now,
        raw_text: accepted.raw_text,
        text: accepted.formatted.text,
        entities: accepted.formatted.entities,
        parse_mode: accepted.parse_mode,
        link_preview_disabled: accepted.link_preview_disabled,
    };
    state.messages.push(message.clone());
    message
}

/// A bot's `User` object (`getMe`, a message's `from`).
fn bot_user(id: i64, full: bool) -> Value {
    let mut user = json!({
        "id": id,
        "is_bot": true,
        "first_name": "Stand-in bot",
        "username": format!("standin_{id}_bot"),
    });
    if full {
        user["can_join_groups"] = true.into();
        user["can_read_all_group_messages"] = false.into();
        user["supports_inline_queries"] = false.into();
    }
    user
}

/// The Bot API's `Message` for a sent text message.
fn message_json(message: &SentMessage, chat: Option<&Chat>) -> Value {
    let chat_json = chat.map_or_else(|| json!({"id": message.chat_id}), Chat::to_json);
    let mut value = json!({"message_id": message.message_id});
    if chat.is_some_and(|c| c.kind == ChatKind::Channel) {
        // A channel post is sent on behalf of the channel: `sender_chat`, no `from`.
        value["sender_chat"] = chat_json.clone();
    } else {
        value["from"] = bot_user(message.bot_id, false);
    }
    value["chat"] = chat_json;
    value["date"] = message.date.into();
    value["text"] = message.text.clone().into();
    if !message.entities.is_empty() {
        value["entities"] = message.entities.iter().map(html::Entity::to_json).collect();
    }
    if message.link_preview_disabled {
        value["link_preview_options"] = json!({"is_disabled": true});
    }
    value
}

/// One line per message on stdout: where it went and the start of its text.
fn print_message(message: &SentMessage, chat: Option<&Chat>) {
    let place = chat.map_or_else(
        || format!("chat {}", message.chat_id),
        |c| format!("{} {} \"{}\"", c.kind, c.id, c.title),
    );
    let first_line = message.text.lines().next().unwrap_or_default();
    let mut preview: String = first_line.chars().take(100).collect();
    if preview.len() < message.text.len() {
        preview.push('…');
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "telegram → {place} #{}: {preview}",
        message.message_id
    );
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_tokens_are_an_id_a_colon_and_a_secret() {
        assert_eq!(bot_id("123456:standin-token").ok(), Some(123_456));
        for bad in ["123456", "abc:def", "123456:", ":secret", "0:x", "-5:x"] {
            assert!(bot_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_modes_are_case_insensitive_and_markdown_is_refused_with_a_note() {
        assert_eq!(
            parse_mode_arg(Some(&json!("HTML"))),
            Ok(Some(ParseMode::Html))
        );
        assert_eq!(
            parse_mode_arg(Some(&json!("html"))),
            Ok(Some(ParseMode::Html))
        );
        assert_eq!(parse_mode_arg(Some(&json!(""))), Ok(None));
        assert_eq!(parse_mode_arg(None), Ok(None));
        assert_eq!(
            parse_mode_arg(Some(&json!("BBCode"))),
            Err(Rejection::UnsupportedParseMode)
        );
        assert!(matches!(
            parse_mode_arg(Some(&json!("MarkdownV2"))),
            Err(Rejection::ParseModeNotImplemented(_))
        ));
    }

    #[test]
    fn link_previews_are_disabled_by_either_argument_in_json_or_form_shape() {
        let params = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(
            link_preview_disabled(&params(
                json!({"link_preview_options": {"is_disabled": true}})
            )),
            Ok(true)
        );
        assert_eq!(
            link_preview_disabled(&params(
                json!({"link_preview_options": "{\"is_disabled\":true}"})
            )),
            Ok(true)
        );
        assert_eq!(
            link_preview_disabled(&params(json!({"disable_web_page_preview": "true"}))),
            Ok(true)
        );
        assert_eq!(link_preview_disabled(&params(json!({}))), Ok(false));
        assert_eq!(
            link_preview_disabled(&params(json!({"link_preview_options": "{nope"}))),
            Err(Rejection::BadLinkPreviewOptions)
        );
    }
}
