//! Identifiers every stage shares, parsed once at the edge: pipeline ids, Slack channels and
//! workspaces, the Slack queue's message groups and delivery keys, and the names of event
//! sources (API keys and webhook sources).

use std::fmt;

/// A pipeline's id: 1–128 characters of letters, digits and `_ . - :`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId(String);

impl PipelineId {
    pub fn parse(s: &str) -> crate::error::Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-:".contains(c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(crate::error::Error::reason(format!(
                "pipeline id {s:?} must be 1-128 characters of letters, digits and _ . - :"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Slack channel: `#name` (public channels by name) or a channel id such as `C0123ABCD`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelRef(String);

impl ChannelRef {
    pub fn parse(s: &str) -> crate::error::Result<Self> {
        let is_id = s.len() >= 9
            && s.starts_with(['C', 'G', 'D'])
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if is_id {
            return Ok(Self(s.to_owned()));
        }
        let name = s.strip_prefix('#').unwrap_or(s);
        let ok = !name.is_empty()
            && name.chars().count() <= 80
            && name
                .chars()
                .all(|c| c.is_lowercase() || c.is_numeric() || c == '-' || c == '_' || c == '.');
        if ok {
            Ok(Self(format!("#{name}")))
        } else {
            Err(crate::error::Error::reason(format!(
                "channel {s:?} must be a channel id (C0123ABCD) or a name like #alerts (lowercase, no spaces, at most 80 characters)"
            )))
        }
    }
    /// The channel as sent to Slack: `#name` or the id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The workspace a destination posts into: a Slack team id, or `default` for the
/// deployment's single workspace.
pub const DEFAULT_TEAM: &str = "default";

/// The longest workspace a destination may name. Slack's team and enterprise ids are about
/// 11 characters; the bound keeps `<team>:<channel>` within SQS's 128-character
/// MessageGroupId.
pub const MAX_TEAM_LEN: usize = 32;

/// A destination's workspace: `default` or a Slack team id (letters, digits, `-`, `_`, at
/// most [`MAX_TEAM_LEN`]). Pipelines are loaded and destinations saved with this one rule.
pub fn parse_team(s: &str) -> crate::error::Result<String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_TEAM_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(crate::error::Error::reason(format!(
            "{s:?} must be a Slack team id such as T0123ABCD, or {DEFAULT_TEAM:?} (letters, digits, - and _, at most {MAX_TEAM_LEN})"
        )))
    }
}

/// The longest source an API key may name.
pub const MAX_KEY_SOURCE_LEN: usize = 64;

/// An API key's source: 1–64 letters, digits, `-`, `_` or `.`, and not `webhook` (that
/// prefix belongs to webhook sources' event ids).
pub fn valid_key_source(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEY_SOURCE_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.eq_ignore_ascii_case("webhook")
}

/// The longest webhook source name.
pub const MAX_WEBHOOK_SOURCE_LEN: usize = 48;

/// A webhook source's name, as it appears in `/v1/webhooks/{source}`: 1–48 lowercase
/// letters, digits, `_` or `-`.
pub fn valid_webhook_source(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_WEBHOOK_SOURCE_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A destination's workspace, parsed by [`parse_team`]'s rule: `default` or a Slack team
/// id. Serialized as the bare string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TeamId(String);

impl TeamId {
    pub fn parse(s: &str) -> crate::error::Result<Self> {
        parse_team(s).map(Self)
    }
    /// The deployment's single workspace.
    pub fn default_team() -> Self {
        Self(DEFAULT_TEAM.to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for TeamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TeamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for ChannelRef {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl serde::Serialize for ChannelRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Parsed on the way in, so a queue message that names no valid channel is unreadable
/// (parked with the reason), never posted.
impl<'de> serde::Deserialize<'de> for ChannelRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A FIFO message group of the Slack queue: one workspace and channel, `<team>:<channel>`.
/// Messages of one group are delivered in order; groups never wait for each other.
///
/// The team and channel are kept typed beside the group's text, so nothing behind the
/// queue's edge splits the text again. Two groups are equal when their text is.
#[derive(Debug, Clone)]
pub struct GroupId {
    /// As SQS carries it.
    id: String,
    team: TeamId,
    /// `None` for a group our routing did not make (see [`GroupId::from_queue`]).
    channel: Option<ChannelRef>,
}

impl GroupId {
    pub fn new(team: &TeamId, channel: &ChannelRef) -> Self {
        Self {
            id: format!("{team}:{channel}"),
            team: team.clone(),
            channel: Some(channel.clone()),
        }
    }

    /// The group as SQS reported it (the `MessageGroupId` attribute our own routing set),
    /// parsed once here.
    ///
    /// A group our routing did not make (a message sent to the queue by hand, or with no
    /// group at all) is not refused, so that its messages still reach the delivery loop,
    /// which parks or pauses them with a reason: its [`GroupId::channel`] is `None`, and
    /// its [`GroupId::team`] is the text before the first `:` as it stands, unchecked. That
    /// team matches no connected workspace unless the text names one, as before the parse.
    pub fn from_queue(s: &str) -> Self {
        if let Some((team, channel)) = s.split_once(':') {
            if let (Ok(team), Ok(channel)) = (TeamId::parse(team), ChannelRef::parse(channel)) {
                let group = Self::new(&team, &channel);
                // Only the text routing writes: `alerts` for `#alerts` is not ours.
                if group.id == s {
                    return group;
                }
            }
        }
        Self {
            id: s.to_owned(),
            team: TeamId(s.split(':').next().unwrap_or_default().to_owned()),
            channel: None,
        }
    }

    /// The group's workspace.
    pub fn team(&self) -> TeamId {
        self.team.clone()
    }

    /// The group's channel; `None` for a group our routing did not make.
    pub fn channel(&self) -> Option<&ChannelRef> {
        self.channel.as_ref()
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl PartialEq for GroupId {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for GroupId {}

impl std::hash::Hash for GroupId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialOrd for GroupId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// A delivery's key: SHA-256 hex of (event, pipeline, destination). At most one Slack post
/// each; also the FIFO deduplication id and the ledger's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DeliveryKey(String);

impl DeliveryKey {
    pub fn of(event_id: &str, pipeline_id: &str, destination: usize) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(event_id.as_bytes());
        h.update([0]);
        h.update(pipeline_id.as_bytes());
        h.update([0]);
        h.update(destination.to_string().as_bytes());
        Self(hex::encode(h.finalize()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(s: &str) -> TeamId {
        TeamId::parse(s).unwrap()
    }

    fn channel(s: &str) -> ChannelRef {
        ChannelRef::parse(s).unwrap()
    }

    #[test]
    fn a_group_from_the_queue_is_the_group_routing_made() {
        for (t, c) in [("T0123", "#alerts"), ("default", "C0123ABCD")] {
            let made = GroupId::new(&team(t), &channel(c));
            let read = GroupId::from_queue(made.as_str());
            assert_eq!(read, made);
            assert_eq!(read.team(), team(t));
            assert_eq!(read.channel(), Some(&channel(c)));
            assert_eq!(read.to_string(), format!("{t}:{c}"));
        }
    }

    #[test]
    fn a_malformed_group_keeps_its_text_and_has_no_channel() {
        for (raw, team_text) in [
            ("", ""),
            ("T0123", "T0123"),
            ("T0123:", "T0123"),
            ("T 0123:#alerts", "T 0123"),
            ("T0123:not a channel", "T0123"),
            // Not the text routing writes for `#alerts`.
            ("T0123:alerts", "T0123"),
        ] {
            let g = GroupId::from_queue(raw);
            assert_eq!(g.as_str(), raw);
            assert_eq!(g.channel(), None, "{raw:?}");
            assert_eq!(g.team().as_str(), team_text, "{raw:?}");
        }
    }

    #[test]
    fn groups_are_equal_by_their_text() {
        let a = GroupId::from_queue("T0123:#alerts");
        let b = GroupId::new(&team("T0123"), &channel("#alerts"));
        assert_eq!(a, b);
        let mut set = std::collections::HashSet::new();
        set.insert(a);
        assert!(set.contains(&b));
        assert!(GroupId::from_queue("T0123:#a") < GroupId::from_queue("T0123:#b"));
    }
}
