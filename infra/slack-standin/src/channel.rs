//! Channels as Slack knows them: an ID, a name, visibility, bot membership, archive state.

use std::collections::BTreeMap;

/// A channel as a request names it, parsed once at the edge.
///
/// `#alerts`, `alerts` and `Alerts` are the same name (`alerts`). A value that starts with
/// `C`, `G` or `D` and is otherwise only ASCII upper-case letters and digits is an ID, as
/// Slack's IDs are; Slack channel names are lower case, so the two never collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChannelRef {
    Id(String),
    Name(String),
}

impl ChannelRef {
    /// `None` when the value is neither an ID nor a valid channel name.
    pub(crate) fn parse(raw: &str) -> Option<ChannelRef> {
        let raw = raw.trim();
        if let Some(name) = raw.strip_prefix('#') {
            return parse_name(name).map(ChannelRef::Name);
        }
        if looks_like_id(raw) {
            return Some(ChannelRef::Id(raw.to_owned()));
        }
        parse_name(raw).map(ChannelRef::Name)
    }
}

fn looks_like_id(raw: &str) -> bool {
    let mut chars = raw.chars();
    matches!(chars.next(), Some('C' | 'G' | 'D'))
        && raw.len() >= 2
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Slack names: at most 80 characters of lower-case letters, digits, `-`, `_` and `.`.
fn parse_name(raw: &str) -> Option<String> {
    let name = raw.to_lowercase();
    let valid = !name.is_empty()
        && name.chars().count() <= 80
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    valid.then_some(name)
}

/// The name form used by the test API (`create_channel("#secret", ..)`): `#` stripped, lower case.
pub(crate) fn normalize_name(raw: &str) -> String {
    let raw = raw.trim();
    raw.strip_prefix('#').unwrap_or(raw).to_lowercase()
}

#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) private: bool,
    pub(crate) bot_member: bool,
    pub(crate) archived: bool,
}

/// Every channel the stand-in knows, by name.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    by_name: BTreeMap<String, Channel>,
    next_id: u64,
}

impl Channels {
    pub(crate) fn lookup(&self, channel: &ChannelRef) -> Option<&Channel> {
        match channel {
            ChannelRef::Name(name) => self.by_name.get(name),
            ChannelRef::Id(id) => self.by_name.values().find(|c| &c.id == id),
        }
    }

    /// Resolves a channel, creating unknown names as public channels the bot is in (so a local
    /// stack works with any configured channel). Unknown IDs stay unknown.
    pub(crate) fn lookup_or_create(&mut self, channel: &ChannelRef) -> Option<&Channel> {
        match channel {
            ChannelRef::Id(_) => self.lookup(channel),
            ChannelRef::Name(name) => {
                if !self.by_name.contains_key(name) {
                    self.upsert(name, false, true);
                }
                self.by_name.get(name)
            }
        }
    }

    /// Creates the channel or changes an existing one's visibility and membership.
    pub(crate) fn upsert(&mut self, name: &str, private: bool, bot_member: bool) -> &mut Channel {
        let next_id = &mut self.next_id;
        let channel = self.by_name.entry(name.to_owned()).or_insert_with(|| {
            *next_id += 1;
            Channel {
                id: format!("C{:010}", *next_id),
                name: name.to_owned(),
                private,
                bot_member,
                archived: false,
            }
        });
        channel.private = private;
        channel.bot_member = bot_member;
        channel
    }

    /// Archives the channel, creating it (public, bot a member) first if unknown.
    pub(crate) fn archive(&mut self, name: &str) {
        if let Some(channel) = self.by_name.get_mut(name) {
            channel.archived = true;
        } else {
            self.upsert(name, false, true).archived = true;
        }
    }

    /// Every channel, in name order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Channel> {
        self.by_name.values()
    }

    /// Forgets every channel; IDs handed out later are still new ones.
    pub(crate) fn clear(&mut self) {
        self.by_name.clear();
    }

    /// A stable key for matching and recording: the channel's name when it resolves, otherwise
    /// the name or ID as given.
    pub(crate) fn key(&self, channel: &ChannelRef) -> String {
        match self.lookup(channel) {
            Some(found) => found.name.clone(),
            None => match channel {
                ChannelRef::Id(id) => id.clone(),
                ChannelRef::Name(name) => name.clone(),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn hash_prefix_and_case_do_not_change_the_name() {
        assert_eq!(
            ChannelRef::parse("#alerts"),
            Some(ChannelRef::Name("alerts".into()))
        );
        assert_eq!(
            ChannelRef::parse("alerts"),
            Some(ChannelRef::Name("alerts".into()))
        );
        assert_eq!(
            ChannelRef::parse("#Alerts"),
            Some(ChannelRef::Name("alerts".into()))
        );
    }

    #[test]
    fn upper_case_c_values_are_ids() {
        assert_eq!(
            ChannelRef::parse("C0123ABCD"),
            Some(ChannelRef::Id("C0123ABCD".into()))
        );
        assert_eq!(
            ChannelRef::parse("critical"),
            Some(ChannelRef::Name("critical".into()))
        );
    }

    #[test]
    fn names_with_spaces_or_empty_are_not_channels() {
        assert_eq!(ChannelRef::parse(""), None);
        assert_eq!(ChannelRef::parse("#"), None);
        assert_eq!(ChannelRef::parse("two words"), None);
    }

    #[test]
    fn unknown_names_are_created_public_but_unknown_ids_are_not() {
        let mut channels = Channels::default();
        let created = channels
            .lookup_or_create(&ChannelRef::Name("alerts".into()))
            .cloned();
        let created = created.unwrap();
        assert!(!created.private && created.bot_member && !created.archived);
        assert!(channels
            .lookup_or_create(&ChannelRef::Id("C999".into()))
            .is_none());
        assert_eq!(
            channels
                .lookup(&ChannelRef::Id(created.id.clone()))
                .map(|c| c.name.as_str()),
            Some("alerts")
        );
    }
}
