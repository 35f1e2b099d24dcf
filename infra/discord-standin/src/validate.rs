//! Execute Webhook's body rules: what Discord refuses with `Invalid Form Body` (50035) or
//! `Cannot send an empty message` (50006), and the parsed message when it accepts.
//!
//! Docs:
//! - <https://discord.com/developers/docs/resources/webhook#execute-webhook>: `content` up to
//!   2000 characters, up to 10 embeds, at least one of content, embeds, components, files,
//!   poll; `flags` only `SUPPRESS_EMBEDS` and `SUPPRESS_NOTIFICATIONS`.
//! - <https://discord.com/developers/docs/resources/message#embed-object-embed-limits>: title
//!   256, description 4096, up to 25 fields, field name 256, field value 1024, footer text
//!   2048, author name 256, and at most 6000 characters summed over all embeds' title,
//!   description, field names and values, footer text and author name. "All of the following
//!   limits are measured inclusively. Leading and trailing whitespace characters are not
//!   included."
//! - <https://discord.com/developers/docs/resources/webhook#create-webhook>: names of 1 to 80
//!   characters without `clyde` or `discord`; Discord applies the same to the `username`
//!   override.
//!
//! Characters are Unicode scalar values, counted after trimming whitespace (the docs say
//! "characters" without naming a unit). The error codes and messages (`BASE_TYPE_MAX_LENGTH`,
//! `Must be 2000 or fewer in length.`, `MAX_EMBED_SIZE_EXCEEDED`, ...) are those Discord
//! answers in practice; the docs only show the error format.

use serde_json::{Map, Value};

use crate::form::FormErrors;
use crate::mentions::{Allowed, MentionType};

pub(crate) const MAX_CONTENT: usize = 2000;
pub(crate) const MAX_EMBEDS: usize = 10;
pub(crate) const MAX_TITLE: usize = 256;
pub(crate) const MAX_DESCRIPTION: usize = 4096;
pub(crate) const MAX_FIELDS: usize = 25;
pub(crate) const MAX_FIELD_NAME: usize = 256;
pub(crate) const MAX_FIELD_VALUE: usize = 1024;
pub(crate) const MAX_FOOTER_TEXT: usize = 2048;
pub(crate) const MAX_AUTHOR_NAME: usize = 256;
pub(crate) const MAX_EMBED_TOTAL: usize = 6000;
const MAX_USERNAME: usize = 80;

/// `SUPPRESS_EMBEDS` (1 << 2) and `SUPPRESS_NOTIFICATIONS` (1 << 12): the only flags a
/// webhook message may set.
const SETTABLE_FLAGS: u64 = (1 << 2) | (1 << 12);

/// A body Discord accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) content: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) avatar_url: Option<String>,
    pub(crate) tts: bool,
    pub(crate) embeds: Vec<Value>,
    pub(crate) flags: u64,
    pub(crate) allowed: Allowed,
}

/// Why a body is refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Invalid {
    /// 50035 with these errors.
    Form(FormErrors),
    /// 50006: nothing to send.
    Empty,
}

/// Checks a body as Discord does: every field error at once (50035); a body without errors
/// that has nothing to show is empty (50006).
pub(crate) fn message(
    body: &Map<String, Value>,
    default_parse: &[MentionType],
) -> Result<Parsed, Invalid> {
    let mut errors = FormErrors::default();
    let content = string_field(body, "content", &mut errors);
    if let Some(content) = &content {
        if chars(content) > MAX_CONTENT {
            errors.too_long(&["content"], MAX_CONTENT);
        }
    }
    let username = string_field(body, "username", &mut errors);
    if let Some(username) = &username {
        check_username(username, &mut errors);
    }
    let avatar_url = string_field(body, "avatar_url", &mut errors);
    let tts = match body.get("tts") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add(
                &["tts"],
                "BASE_TYPE_BOOLEAN",
                "Must be either true or false.",
            );
            false
        }
    };
    let embeds = embeds(body.get("embeds"), &mut errors);
    let flags = match body.get("flags") {
        None | Some(Value::Null) => 0,
        Some(value) => match value.as_u64() {
            Some(flags) if flags & !SETTABLE_FLAGS == 0 => flags,
            // The docs say only these two can be set; the code and wording are the
            // stand-in's own (Discord's answer for other bits is not documented).
            _ => {
                errors.add(
                    &["flags"],
                    "MESSAGE_FLAGS_INVALID",
                    "Only SUPPRESS_EMBEDS (1 << 2) and SUPPRESS_NOTIFICATIONS (1 << 12) can be set.",
                );
                0
            }
        },
    };
    let allowed = Allowed::read(body.get("allowed_mentions"), default_parse, &mut errors);

    if !errors.is_empty() {
        return Err(Invalid::Form(errors));
    }
    let has_content = content.as_deref().is_some_and(|c| !c.trim().is_empty());
    let has_other = ["components", "sticker_ids", "attachments"]
        .iter()
        .any(|key| {
            body.get(*key)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
        || body.get("poll").is_some_and(Value::is_object);
    if !has_content && embeds.is_empty() && !has_other {
        return Err(Invalid::Empty);
    }
    Ok(Parsed {
        content,
        username,
        avatar_url,
        tts,
        embeds,
        flags,
        allowed,
    })
}

/// Characters as Discord counts them for limits: trimmed of surrounding whitespace.
pub(crate) fn chars(value: &str) -> usize {
    value.trim().chars().count()
}

fn string_field(body: &Map<String, Value>, key: &str, errors: &mut FormErrors) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.add(
                &[key],
                "BASE_TYPE_STRING",
                format!("Could not interpret \"{other}\" as string."),
            );
            None
        }
    }
}

fn check_username(username: &str, errors: &mut FormErrors) {
    let len = chars(username);
    if !(1..=MAX_USERNAME).contains(&len) {
        errors.add(
            &["username"],
            "BASE_TYPE_BAD_LENGTH",
            format!("Must be between 1 and {MAX_USERNAME} in length."),
        );
    }
    let lower = username.to_lowercase();
    for word in ["discord", "clyde"] {
        if lower.contains(word) {
            errors.add(
                &["username"],
                "USERNAME_INVALID_CONTAINS",
                format!("Username cannot contain \"{word}\""),
            );
        }
    }
}

fn embeds(value: Option<&Value>, errors: &mut FormErrors) -> Vec<Value> {
    let items = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.add(
                &["embeds"],
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            );
            return Vec::new();
        }
    };
    if items.len() > MAX_EMBEDS {
        errors.too_long(&["embeds"], MAX_EMBEDS);
        return items.clone();
    }
    let mut total = 0;
    for (i, embed) in items.iter().enumerate() {
        let index = i.to_string();
        match embed {
            Value::Object(embed) => total += check_embed(embed, &index, errors),
            _ => errors.add(
                &["embeds", &index],
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ),
        }
    }
    if total > MAX_EMBED_TOTAL {
        errors.add(
            &["embeds"],
            "MAX_EMBED_SIZE_EXCEEDED",
            format!("Embed size exceeds maximum size of {MAX_EMBED_TOTAL}"),
        );
    }
    items.clone()
}

/// Checks one embed and returns the characters it counts towards the 6000 total.
fn check_embed(embed: &Map<String, Value>, index: &str, errors: &mut FormErrors) -> usize {
    let mut total = 0;
    let mut text = |value: Option<&Value>,
                    path: &[&str],
                    max: usize,
                    required: bool,
                    errors: &mut FormErrors| {
        match value {
            None | Some(Value::Null) if required => errors.required(path),
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                let len = chars(s);
                if required && len == 0 {
                    errors.required(path);
                } else if len > max {
                    errors.too_long(path, max);
                }
                total += len;
            }
            Some(other) => errors.add(
                path,
                "BASE_TYPE_STRING",
                format!("Could not interpret \"{other}\" as string."),
            ),
        }
    };
    text(
        embed.get("title"),
        &["embeds", index, "title"],
        MAX_TITLE,
        false,
        errors,
    );
    text(
        embed.get("description"),
        &["embeds", index, "description"],
        MAX_DESCRIPTION,
        false,
        errors,
    );
    match embed.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Array(fields)) => {
            if fields.len() > MAX_FIELDS {
                errors.too_long(&["embeds", index, "fields"], MAX_FIELDS);
            }
            for (j, field) in fields.iter().enumerate() {
                let j = j.to_string();
                match field {
                    Value::Object(field) => {
                        text(
                            field.get("name"),
                            &["embeds", index, "fields", &j, "name"],
                            MAX_FIELD_NAME,
                            true,
                            errors,
                        );
                        text(
                            field.get("value"),
                            &["embeds", index, "fields", &j, "value"],
                            MAX_FIELD_VALUE,
                            true,
                            errors,
                        );
                    }
                    _ => errors.add(
                        &["embeds", index, "fields", &j],
                        "DICT_TYPE_CONVERT",
                        "Only dictionaries may be used in a DictType",
                    ),
                }
            }
        }
        Some(_) => errors.add(
            &["embeds", index, "fields"],
            "LIST_TYPE_CONVERT",
            "Only iterables may be used in a ListType",
        ),
    }
    for (key, inner, max) in [
        ("footer", "text", MAX_FOOTER_TEXT),
        ("author", "name", MAX_AUTHOR_NAME),
    ] {
        match embed.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(part)) => {
                text(
                    part.get(inner),
                    &["embeds", index, key, inner],
                    max,
                    true,
                    errors,
                );
            }
            Some(_) => errors.add(
                &["embeds", index, key],
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ),
        }
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use serde_json::json;

    use super::*;

    fn check(body: Value) -> Result<Parsed, Invalid> {
        message(body.as_object().unwrap(), &[MentionType::Users])
    }

    fn errors(body: Value) -> Value {
        match check(body) {
            Err(Invalid::Form(errors)) => errors.into_value(),
            other => panic!("expected form errors, got {other:?}"),
        }
    }

    #[test]
    fn whitespace_around_a_value_does_not_count() {
        let padded = format!("  {}  ", "a".repeat(MAX_TITLE));
        assert!(check(json!({"embeds": [{"title": padded}]})).is_ok());
    }

    #[test]
    fn characters_are_counted_not_bytes() {
        assert!(check(json!({"content": "é".repeat(MAX_CONTENT)})).is_ok());
    }

    #[test]
    fn whitespace_only_content_is_empty() {
        assert_eq!(check(json!({"content": "  \n "})), Err(Invalid::Empty));
        assert_eq!(check(json!({"embeds": []})), Err(Invalid::Empty));
        assert_eq!(check(json!({})), Err(Invalid::Empty));
    }

    #[test]
    fn a_field_needs_a_name_and_a_value() {
        let errors = errors(
            json!({"embeds": [{"fields": [{"name": "plan"}, {"name": " ", "value": "x"}]}]}),
        );
        assert_eq!(
            errors["embeds"]["0"]["fields"]["0"]["value"]["_errors"][0]["code"],
            "BASE_TYPE_REQUIRED"
        );
        assert_eq!(
            errors["embeds"]["0"]["fields"]["1"]["name"]["_errors"][0]["code"],
            "BASE_TYPE_REQUIRED"
        );
    }

    #[test]
    fn a_wrongly_typed_field_is_named() {
        let errors = errors(json!({"content": 5, "embeds": {"title": "x"}}));
        assert_eq!(errors["content"]["_errors"][0]["code"], "BASE_TYPE_STRING");
        assert_eq!(errors["embeds"]["_errors"][0]["code"], "LIST_TYPE_CONVERT");
    }

    #[test]
    fn usernames_follow_discords_name_rules() {
        assert!(check(json!({"content": "x", "username": "ingestlayer"})).is_ok());
        let named = errors(json!({"content": "x", "username": "My Discord Bot"}));
        assert_eq!(
            named["username"]["_errors"][0]["code"],
            "USERNAME_INVALID_CONTAINS"
        );
        let long = errors(json!({"content": "x", "username": "a".repeat(81)}));
        assert_eq!(
            long["username"]["_errors"][0]["code"],
            "BASE_TYPE_BAD_LENGTH"
        );
    }

    #[test]
    fn only_the_two_settable_flags_are_accepted() {
        assert_eq!(
            check(json!({"content": "x", "flags": 4096})).unwrap().flags,
            4096
        );
        assert_eq!(check(json!({"content": "x", "flags": 4})).unwrap().flags, 4);
        let errors = errors(json!({"content": "x", "flags": 64}));
        assert!(errors["flags"]["_errors"].is_array());
    }
}
