//! Owner mentions: a destination's `mention` (an email) becomes `<@U…>` in the message, found
//! with users.lookupByEmail in the workspace the message goes to.
//!
//! A mention never fails a message. An email no member has (`users_not_found`) is shown as
//! escaped plain text; any other failure (rate limit, `missing_scope`, no answer) is logged,
//! without the email, and shows the plain text too. Each instance caches what it learnt per
//! (workspace, email): a found user for [`FOUND_TTL_MS`], an unknown email for
//! [`NOT_FOUND_TTL_MS`], a failed lookup for [`FAILED_TTL_MS`] (so a rate-limited workspace is
//! not asked again for every message). Times come from the delivery's injected clock.

use std::collections::HashMap;
use std::sync::Mutex;

use secrecy::SecretString;
use serde_json::json;

use crate::delivery::DeliveryDeps;
use crate::ids::TeamId;
use crate::slack::block_kit::{cut, escape, limits, mrkdwn, RenderedMessage};
use crate::slack::client::UserLookup;

/// How long a found member is remembered.
pub const FOUND_TTL_MS: i64 = 60 * 60 * 1000;
/// How long an email no member has is remembered.
pub const NOT_FOUND_TTL_MS: i64 = 10 * 60 * 1000;
/// How long after a failed lookup the email is shown as text without asking again.
pub const FAILED_TTL_MS: i64 = 60 * 1000;
/// Entries at which the cache drops what expired (and, if still full, everything).
const MAX_ENTRIES: usize = 10_000;
/// The longest email users.lookupByEmail is asked about (RFC 5321's limit).
const MAX_EMAIL: usize = 254;

/// What a lookup learnt about an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learnt {
    /// A member: mention them.
    User(String),
    /// No member has it.
    NotFound,
    /// Slack could not tell (rate limit, missing scope, no answer).
    Failed,
}

impl Learnt {
    /// How long this answer is trusted.
    pub fn ttl_ms(&self) -> i64 {
        match self {
            Learnt::User(_) => FOUND_TTL_MS,
            Learnt::NotFound => NOT_FOUND_TTL_MS,
            Learnt::Failed => FAILED_TTL_MS,
        }
    }
}

/// Each instance's cache of lookups, by (workspace, lower-cased email).
#[derive(Default)]
pub struct Mentions {
    cache: Mutex<HashMap<(String, String), (Learnt, i64)>>,
}

impl Mentions {
    /// What is known of `email` in `team` at `now_ms`, if still fresh.
    pub fn cached(&self, team: &str, email: &str, now_ms: i64) -> Option<Learnt> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&(team.to_owned(), email.to_lowercase()))
            .filter(|(_, until)| *until > now_ms)
            .map(|(learnt, _)| learnt.clone())
    }

    /// Remembers what a lookup at `now_ms` learnt, for its TTL.
    pub fn remember(&self, team: &str, email: &str, learnt: Learnt, now_ms: i64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, (_, until)| *until > now_ms);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        let until = now_ms + learnt.ttl_ms();
        cache.insert((team.to_owned(), email.to_lowercase()), (learnt, until));
    }
}

/// What the message shows for the owner: `<@U…>` for a member, else the email as escaped
/// plain text.
pub fn owner_markup(email: &str, learnt: &Learnt) -> String {
    match learnt {
        Learnt::User(id) if is_user_id(id) => format!("<@{id}>"),
        _ => escape(email),
    }
}

/// A Slack user id as users.lookupByEmail returns it (`U…` or `W…`, letters and digits):
/// anything else is never put inside `<@…>`.
fn is_user_id(id: &str) -> bool {
    id.len() <= 32
        && id.starts_with(['U', 'W'])
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Whether `email` is worth asking Slack about.
fn askable(email: &str) -> bool {
    let email = email.trim();
    email.len() <= MAX_EMAIL && email.contains('@') && !email.chars().any(char::is_whitespace)
}

/// The owner line for `email` in `team`'s workspace: from the cache, else from
/// users.lookupByEmail. Never fails.
pub(super) async fn resolve(
    team: &TeamId,
    email: &str,
    token: &SecretString,
    deps: &DeliveryDeps,
) -> String {
    let email = email.trim();
    if !askable(email) {
        return owner_markup(email, &Learnt::NotFound);
    }
    let now_ms = deps.clock.now_ms();
    if let Some(learnt) = deps.mentions.cached(team.as_str(), email, now_ms) {
        return owner_markup(email, &learnt);
    }
    let learnt = match deps.slack.lookup_user_by_email(token, email).await {
        Ok(UserLookup::Found(id)) => Learnt::User(id),
        Ok(UserLookup::NotFound) => Learnt::NotFound,
        Err(e) => {
            // The error names the method and Slack's code, never the email.
            tracing::warn!(team = %team, error = %e, "owner lookup failed; the owner is shown as text");
            Learnt::Failed
        }
    };
    deps.mentions
        .remember(team.as_str(), email, learnt.clone(), deps.clock.now_ms());
    owner_markup(email, &learnt)
}

/// The owner line as the message shows it.
pub fn owner_line(markup: &str) -> String {
    format!("Owner: {markup}")
}

/// `message` with its owner: an element of its last context line (Slack shows up to 10),
/// else a context line of its own (when there is room for one more block), else at the end
/// of the text of a message without blocks. Block Kit limits hold.
pub fn with_owner(message: &RenderedMessage, markup: &str) -> RenderedMessage {
    let mut out = message.clone();
    let line = owner_line(markup);
    let mut ignored = false;
    if out.blocks.is_empty() {
        out.text = format!("{}\n{line}", out.text);
        return out;
    }
    let element = mrkdwn(cut(&line, limits::CONTEXT_TEXT, &mut ignored));
    if let Some(last) = out.blocks.last_mut() {
        if last["type"] == "context" {
            if let Some(elements) = last["elements"].as_array_mut() {
                if elements.len() < 10 {
                    elements.push(element);
                    return out;
                }
            }
        }
    }
    if out.blocks.len() < limits::BLOCKS {
        out.blocks
            .push(json!({"type": "context", "elements": [element]}));
    } else {
        out.truncated = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_found_member_is_mentioned_and_anything_else_is_escaped_text() {
        assert_eq!(
            owner_markup("ada@x.io", &Learnt::User("U0ADA".into())),
            "<@U0ADA>"
        );
        assert_eq!(owner_markup("ada@x.io", &Learnt::NotFound), "ada@x.io");
        assert_eq!(
            owner_markup("<!channel>@x.io", &Learnt::Failed),
            "&lt;!channel&gt;@x.io"
        );
        // An id that is not Slack's shape never goes inside <@…>.
        assert_eq!(
            owner_markup("a@x.io", &Learnt::User("U1|<!here>".into())),
            "a@x.io"
        );
        assert!(!askable("not an email"));
        assert!(!askable(&format!("{}@x.io", "a".repeat(260))));
        assert!(askable(" ada@x.io "));
    }

    #[test]
    fn the_cache_keeps_each_answer_for_its_ttl_per_workspace() {
        let m = Mentions::default();
        let t0 = 1_700_000_000_000;
        m.remember("T1", "Ada@X.io", Learnt::User("U0ADA".into()), t0);
        m.remember("T1", "nobody@x.io", Learnt::NotFound, t0);
        m.remember("T1", "flaky@x.io", Learnt::Failed, t0);
        assert_eq!(
            m.cached("T1", "ada@x.io", t0 + FOUND_TTL_MS - 1),
            Some(Learnt::User("U0ADA".into()))
        );
        assert_eq!(m.cached("T1", "ada@x.io", t0 + FOUND_TTL_MS), None);
        assert_eq!(m.cached("T2", "ada@x.io", t0), None, "another workspace");
        assert_eq!(
            m.cached("T1", "nobody@x.io", t0 + NOT_FOUND_TTL_MS - 1),
            Some(Learnt::NotFound)
        );
        assert_eq!(m.cached("T1", "nobody@x.io", t0 + NOT_FOUND_TTL_MS), None);
        assert_eq!(
            m.cached("T1", "flaky@x.io", t0 + FAILED_TTL_MS - 1),
            Some(Learnt::Failed)
        );
        assert_eq!(m.cached("T1", "flaky@x.io", t0 + FAILED_TTL_MS), None);
    }

    #[test]
    fn the_owner_joins_the_context_line_or_gets_one_within_limits() {
        let with_context = RenderedMessage {
            text: "t".into(),
            blocks: vec![
                json!({"type": "section", "text": mrkdwn("s")}),
                json!({"type": "context", "elements": [mrkdwn("ingestlayer")]}),
            ],
            truncated: false,
        };
        let m = with_owner(&with_context, "<@U0ADA>");
        assert_eq!(m.blocks.len(), 2);
        assert_eq!(m.blocks[1]["elements"][1]["text"], "Owner: <@U0ADA>");

        let full_context = RenderedMessage {
            blocks: vec![json!({"type": "context", "elements": vec![mrkdwn("x"); 10]})],
            ..with_context.clone()
        };
        let m = with_owner(&full_context, "<@U0ADA>");
        assert_eq!(m.blocks.len(), 2);
        assert_eq!(m.blocks[1]["elements"][0]["text"], "Owner: <@U0ADA>");

        let fifty = RenderedMessage {
            blocks: vec![json!({"type": "section", "text": mrkdwn("s")}); limits::BLOCKS],
            ..with_context.clone()
        };
        let m = with_owner(&fifty, "<@U0ADA>");
        assert_eq!(m.blocks.len(), limits::BLOCKS);
        assert!(m.truncated);

        let text_only = RenderedMessage {
            text: "hello".into(),
            blocks: Vec::new(),
            truncated: false,
        };
        assert_eq!(
            with_owner(&text_only, "a@x.io").text,
            "hello\nOwner: a@x.io"
        );
    }
}
