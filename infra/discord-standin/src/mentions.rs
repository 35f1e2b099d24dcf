//! Which mentions a message would ping: those written in its `content` that its
//! `allowed_mentions` lets through.
//!
//! Docs: <https://discord.com/developers/docs/resources/message#allowed-mentions-object>.
//! - Without `allowed_mentions`, webhooks parse user mentions only (`{"parse": ["users"]}`),
//!   per "Default Settings for Allowed Mentions"; [`crate::StandinConfig::default_parse`]
//!   can make the stand-in stricter.
//! - With it, only the types in `parse` and the ids in `users` / `roles` ping; a missing
//!   `parse` parses nothing; `{"parse": []}` pings nobody.
//! - `parse` containing `users` (or `roles`) together with a non-empty `users` (`roles`) list
//!   is refused as mutually exclusive; `users` and `roles` hold at most 100 ids.
//! - Only `content` is parsed: mentions inside embeds never ping.
//!
//! Not modelled (the stand-in assumes they hold): the webhook's `MENTION_EVERYONE`
//! permission, roles being mentionable, the user being in the guild. Mentions inside code
//! blocks are counted too, which is stricter than Discord's client.

use serde_json::Value;

use crate::form::FormErrors;

/// A type of mention in `allowed_mentions.parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MentionType {
    /// `"users"`: `<@id>` and `<@!id>`.
    Users,
    /// `"roles"`: `<@&id>`.
    Roles,
    /// `"everyone"`: `@everyone` and `@here`.
    Everyone,
}

impl MentionType {
    fn parse(name: &str) -> Option<MentionType> {
        match name {
            "users" => Some(MentionType::Users),
            "roles" => Some(MentionType::Roles),
            "everyone" => Some(MentionType::Everyone),
            _ => None,
        }
    }
}

/// The mentions an accepted message would ping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pings {
    /// `@everyone`.
    pub everyone: bool,
    /// `@here`.
    pub here: bool,
    /// User ids, in order of first mention.
    pub users: Vec<String>,
    /// Role ids, in order of first mention.
    pub roles: Vec<String>,
}

impl Pings {
    /// True when the message pings nobody.
    pub fn is_empty(&self) -> bool {
        !self.everyone && !self.here && self.users.is_empty() && self.roles.is_empty()
    }
}

/// What `allowed_mentions` lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Allowed {
    parse: Vec<MentionType>,
    users: Vec<String>,
    roles: Vec<String>,
}

/// Most ids `allowed_mentions.users` / `.roles` may hold.
const MAX_IDS: usize = 100;

impl Allowed {
    /// Reads `allowed_mentions` (absent or null: `default_parse`), adding Discord's form
    /// errors for what it refuses.
    pub(crate) fn read(
        value: Option<&Value>,
        default_parse: &[MentionType],
        errors: &mut FormErrors,
    ) -> Allowed {
        let map = match value {
            None | Some(Value::Null) => {
                return Allowed {
                    parse: default_parse.to_vec(),
                    ..Allowed::default()
                }
            }
            Some(Value::Object(map)) => map,
            Some(_) => {
                errors.add(
                    &["allowed_mentions"],
                    "DICT_TYPE_CONVERT",
                    "Only dictionaries may be used in a DictType",
                );
                return Allowed::default();
            }
        };
        let mut allowed = Allowed::default();
        match map.get("parse") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().and_then(MentionType::parse) {
                        Some(kind) => allowed.parse.push(kind),
                        None => errors.add(
                            &["allowed_mentions", "parse", &i.to_string()],
                            "BASE_TYPE_CHOICES",
                            "Value must be one of {'everyone', 'roles', 'users'}.",
                        ),
                    }
                }
            }
            Some(_) => errors.add(
                &["allowed_mentions", "parse"],
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ),
        }
        allowed.users = ids(map.get("users"), "users", errors);
        allowed.roles = ids(map.get("roles"), "roles", errors);
        for (kind, list, name) in [
            (MentionType::Users, &allowed.users, "users"),
            (MentionType::Roles, &allowed.roles, "roles"),
        ] {
            if allowed.parse.contains(&kind) && !list.is_empty() {
                errors.add(
                    &["allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    format!("parse:[\"{name}\"] and {name}: [ids...] are mutually exclusive."),
                );
            }
        }
        allowed
    }

    /// The mentions in `content` that this lets through.
    pub(crate) fn pings(&self, content: &str) -> Pings {
        let written = written(content);
        let everyone = self.parse.contains(&MentionType::Everyone);
        let users = self.parse.contains(&MentionType::Users);
        let roles = self.parse.contains(&MentionType::Roles);
        Pings {
            everyone: everyone && written.everyone,
            here: everyone && written.here,
            users: written
                .users
                .into_iter()
                .filter(|id| users || self.users.contains(id))
                .collect(),
            roles: written
                .roles
                .into_iter()
                .filter(|id| roles || self.roles.contains(id))
                .collect(),
        }
    }
}

/// A list of snowflakes (strings or numbers); a falsy value (absent, null, `[]`) is empty.
fn ids(value: Option<&Value>, name: &str, errors: &mut FormErrors) -> Vec<String> {
    let items = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.add(
                &["allowed_mentions", name],
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            );
            return Vec::new();
        }
    };
    if items.len() > MAX_IDS {
        errors.too_long(&["allowed_mentions", name], MAX_IDS);
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = match item {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        if is_snowflake(&id) {
            out.push(id);
        } else {
            errors.add(
                &["allowed_mentions", name, &i.to_string()],
                "NUMBER_TYPE_COERCE",
                format!("Value \"{}\" is not snowflake.", display(item)),
            );
        }
    }
    out
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A snowflake as the HTTP API writes it: decimal digits of a u64.
pub(crate) fn is_snowflake(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) && value.parse::<u64>().is_ok()
}

/// Every mention written in `content`, whether or not it would ping.
fn written(content: &str) -> Pings {
    let mut found = Pings::default();
    let mut rest = content;
    while let Some(at) = rest.find('@') {
        let after = &rest[at + 1..];
        if after.starts_with("everyone") {
            found.everyone = true;
        } else if after.starts_with("here") {
            found.here = true;
        } else if at > 0 && rest[..at].ends_with('<') {
            let (role, digits) = match after.as_bytes().first() {
                Some(b'&') => (true, &after[1..]),
                Some(b'!') => (false, &after[1..]),
                _ => (false, after),
            };
            let len = digits.bytes().take_while(u8::is_ascii_digit).count();
            let id = &digits[..len];
            if digits[len..].starts_with('>') && is_snowflake(id) {
                let list = if role {
                    &mut found.roles
                } else {
                    &mut found.users
                };
                if !list.iter().any(|known| known == id) {
                    list.push(id.to_owned());
                }
            }
        }
        rest = after;
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CONTENT: &str = "@here Hello <@&1234> and <@5678> and <@!90> @everyone <@5678> <@x> <@&>";

    fn read(value: Value) -> (Allowed, FormErrors) {
        let mut errors = FormErrors::default();
        let allowed = Allowed::read(Some(&value), &[], &mut errors);
        (allowed, errors)
    }

    #[test]
    fn every_kind_of_mention_is_found_once() {
        assert_eq!(
            written(CONTENT),
            Pings {
                everyone: true,
                here: true,
                users: vec!["5678".into(), "90".into()],
                roles: vec!["1234".into()],
            }
        );
        assert!(written("mail me at ops@example.com <@ 1>").is_empty());
    }

    #[test]
    fn webhooks_parse_only_users_by_default() {
        let mut errors = FormErrors::default();
        let allowed = Allowed::read(None, &[MentionType::Users], &mut errors);
        let pings = allowed.pings(CONTENT);
        assert!(!pings.everyone && !pings.here && pings.roles.is_empty());
        assert_eq!(pings.users, vec!["5678", "90"]);
    }

    #[test]
    fn an_empty_parse_pings_nobody() {
        let (allowed, errors) = read(json!({"parse": []}));
        assert!(errors.is_empty());
        assert!(allowed.pings(CONTENT).is_empty());
        let (allowed, _) = read(json!({}));
        assert!(allowed.pings(CONTENT).is_empty());
    }

    #[test]
    fn listed_ids_ping_only_when_written() {
        let (allowed, errors) = read(json!({"parse": ["everyone"], "users": ["5678", "42"]}));
        assert!(errors.is_empty());
        let pings = allowed.pings(CONTENT);
        assert!(pings.everyone && pings.here);
        assert_eq!(pings.users, vec!["5678"]);
        assert!(pings.roles.is_empty());
    }

    #[test]
    fn parse_users_with_a_users_list_is_refused() {
        let (_, errors) = read(json!({"parse": ["users"], "users": ["1"]}));
        assert_eq!(
            errors.into_value()["allowed_mentions"]["_errors"][0]["code"],
            "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"
        );
        let (_, errors) = read(json!({"parse": ["users"], "users": []}));
        assert!(errors.is_empty());
    }

    #[test]
    fn unknown_parse_types_and_too_many_ids_are_refused() {
        let (_, errors) = read(json!({"parse": ["users", "channels"]}));
        assert_eq!(
            errors.into_value()["allowed_mentions"]["parse"]["1"]["_errors"][0]["code"],
            "BASE_TYPE_CHOICES"
        );
        let ids: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        let (_, errors) = read(json!({"users": ids}));
        assert_eq!(
            errors.into_value()["allowed_mentions"]["users"]["_errors"][0]["code"],
            "BASE_TYPE_MAX_LENGTH"
        );
    }
}
