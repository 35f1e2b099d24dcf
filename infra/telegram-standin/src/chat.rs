//! Chats the bots can write to, and how `chat_id` names one.

use serde::Deserialize;
use serde_json::{json, Value};

/// A chat's type, as the Bot API's `Chat.type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// A person's chat with the bot; its ID is the person's user ID (positive).
    Private,
    /// A basic group; negative ID.
    Group,
    /// A supergroup; negative ID (`-100…` on Telegram).
    Supergroup,
    /// A channel; negative ID (`-100…` on Telegram). The bot posts as the channel.
    Channel,
}

impl ChatKind {
    /// The Bot API's `Chat.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Private => "private",
            ChatKind::Group => "group",
            ChatKind::Supergroup => "supergroup",
            ChatKind::Channel => "channel",
        }
    }

    /// Groups and supergroups share the "20 messages per minute" limit.
    pub(crate) fn is_group(self) -> bool {
        matches!(self, ChatKind::Group | ChatKind::Supergroup)
    }

    /// Whether `id` has the sign Telegram gives this kind of chat.
    pub(crate) fn fits(self, id: i64) -> bool {
        match self {
            ChatKind::Private => id > 0,
            _ => id < 0,
        }
    }
}

impl std::fmt::Display for ChatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered chat and what the bots may do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chat {
    pub(crate) id: i64,
    pub(crate) kind: ChatKind,
    /// The group's or channel's title, the person's first name for a private chat.
    pub(crate) title: String,
    /// Without `@`, lower case; `sendMessage` accepts `@username` for channels and
    /// supergroups.
    pub(crate) username: Option<String>,
    /// The person blocked the bots (private chats).
    pub(crate) blocked: bool,
    /// The bots were removed (groups, supergroups, channels).
    pub(crate) kicked: bool,
}

impl Chat {
    pub(crate) fn new(id: i64, kind: ChatKind) -> Chat {
        let title = match kind {
            ChatKind::Private => "Stand-in user".to_owned(),
            ChatKind::Group => format!("Stand-in group {id}"),
            ChatKind::Supergroup => format!("Stand-in supergroup {id}"),
            ChatKind::Channel => format!("Stand-in channel {id}"),
        };
        Chat {
            id,
            kind,
            title,
            username: None,
            blocked: false,
            kicked: false,
        }
    }

    /// The Bot API's `Chat` object.
    pub(crate) fn to_json(&self) -> Value {
        let mut chat = json!({"id": self.id, "type": self.kind.as_str()});
        match self.kind {
            ChatKind::Private => chat["first_name"] = self.title.clone().into(),
            _ => chat["title"] = self.title.clone().into(),
        }
        if let Some(username) = &self.username {
            chat["username"] = username.clone().into();
        }
        chat
    }
}

/// A `chat_id` argument: an integer ID or `@username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChatRef {
    Id(i64),
    /// Without `@`, lower case (Telegram usernames are case-insensitive).
    Username(String),
    /// Neither: no chat has it ("chat not found").
    Unknown,
}

impl ChatRef {
    /// `None` when the argument is missing or empty ("chat_id is empty").
    pub(crate) fn from_arg(value: Option<&Value>) -> Option<ChatRef> {
        match value? {
            Value::Number(n) => Some(n.as_i64().map_or(ChatRef::Unknown, ChatRef::Id)),
            Value::String(s) => ChatRef::parse(s),
            Value::Null => None,
            _ => Some(ChatRef::Unknown),
        }
    }

    /// Parses `-1001234`, `42` or `@name`; `None` for an empty string.
    pub(crate) fn parse(raw: &str) -> Option<ChatRef> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        Some(match raw.strip_prefix('@') {
            Some(name) => ChatRef::Username(name.to_ascii_lowercase()),
            None => raw.parse().map_or(ChatRef::Unknown, ChatRef::Id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids_are_integers_numeric_strings_or_usernames() {
        assert_eq!(ChatRef::from_arg(Some(&json!(-5))), Some(ChatRef::Id(-5)));
        assert_eq!(
            ChatRef::from_arg(Some(&json!("-1001"))),
            Some(ChatRef::Id(-1001))
        );
        assert_eq!(
            ChatRef::from_arg(Some(&json!("@Alerts"))),
            Some(ChatRef::Username("alerts".into()))
        );
        assert_eq!(
            ChatRef::from_arg(Some(&json!("alerts"))),
            Some(ChatRef::Unknown)
        );
        assert_eq!(ChatRef::from_arg(Some(&json!(""))), None);
        assert_eq!(ChatRef::from_arg(None), None);
    }
}
