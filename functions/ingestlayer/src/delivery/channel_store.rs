//! Per-channel and per-workspace state, as delivery sees it: whether a post may go now
//! ([`Gate`]), pauses and what they cover ([`PauseScope`]), the bot's membership, and the
//! [`ChannelStore`] trait delivery reads and writes them through. The DynamoDB table behind
//! it is [`super::channel_state`]; unit tests use an in-memory fake.

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::error::Result;
use crate::ids::{GroupId, TeamId};

/// What is paused: one channel (its FIFO group) or a whole workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PauseScope {
    Channel(GroupId),
    Workspace(TeamId),
}

impl PauseScope {
    /// The item's key in the channels table.
    pub fn key(&self) -> String {
        match self {
            PauseScope::Channel(group) => channel_pk(group.as_str()),
            PauseScope::Workspace(team) => team_pk(team.as_str()),
        }
    }
}

/// Why a channel or workspace is paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub error: String,
    pub hint: String,
}

/// Whether a post may go now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The slot beginning at this time (ms since the epoch: now, or a moment ahead) is
    /// taken: post at it, not before.
    At(i64),
    /// The channel's next slot is this far away.
    Wait(Duration),
    Paused(Pause),
}

/// A paused channel or workspace, as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedEntry {
    /// `chan#<team>:<channel>` or `team#<team>`.
    pub pk: String,
    pub pause: Pause,
    pub since: String,
}

impl PausedEntry {
    /// What is paused, as operators name it (see [`display_name`]).
    pub fn name(&self) -> String {
        display_name(&self.pk)
    }

    /// The FIFO group (`<team>:<channel>`) of a paused channel.
    pub fn group(&self) -> Option<&str> {
        self.pk.strip_prefix("chan#")
    }
}

/// A channel or workspace item's key as operators name it: `#growth`, `#growth in
/// workspace T0123`, `workspace T0123`, `the default workspace` (the key itself for an
/// item of no known kind).
pub fn display_name(pk: &str) -> String {
    if let Some(group) = pk.strip_prefix("chan#") {
        let (team, channel) = group.split_once(':').unwrap_or(("", group));
        if team.is_empty() || team == crate::ids::DEFAULT_TEAM {
            channel.to_owned()
        } else {
            format!("{channel} in workspace {team}")
        }
    } else if let Some(team) = pk.strip_prefix("team#") {
        if team == crate::ids::DEFAULT_TEAM {
            "the default workspace".to_owned()
        } else {
            format!("workspace {team}")
        }
    } else {
        pk.to_owned()
    }
}

/// A channel's last failed post, as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// `chan#<team>:<channel>`.
    pub pk: String,
    pub error: String,
    /// When (RFC 3339).
    pub at: String,
}

impl LastError {
    /// The channel as operators name it (see [`display_name`]).
    pub fn name(&self) -> String {
        display_name(&self.pk)
    }
}

/// Whether the bot is in a channel, as last learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The bot is in the channel (it joined, or was invited).
    Member,
    /// A private channel: the bot can only be invited.
    InviteOnly,
}

impl Membership {
    /// As the channels table stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Member => "yes",
            Membership::InviteOnly => "invite_only",
        }
    }

    /// From [`Membership::as_str`]'s text; anything else is unknown.
    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "yes" => Some(Membership::Member),
            "invite_only" => Some(Membership::InviteOnly),
            _ => None,
        }
    }
}

/// What the channels table knows of a channel besides pacing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelState {
    pub channel_id: Option<String>,
    pub membership: Option<Membership>,
}

pub fn channel_pk(group: &str) -> String {
    format!("chan#{group}")
}

pub fn team_pk(team: &str) -> String {
    format!("team#{team}")
}

/// The channel and workspace state delivery reads and writes. [`Channels`] keeps it in
/// DynamoDB; unit tests use an in-memory fake.
pub trait ChannelStore: Send + Sync {
    /// Takes the channel's next posting slot when it is due, or when it begins at most
    /// `ahead` from now (so the post can go out at the slot's first moment, not a request's
    /// latency after it); the following slot is `interval` after the one taken. Otherwise
    /// says how far away the next slot is, or that the channel is paused. `told`: the slot
    /// a [`Gate::Wait`] named to this caller, when it asks again for it; taking it ahead
    /// then costs one conditional write, not two (the first, conditional on the slot being
    /// due, fails while it is ahead), so the take lands sooner before the slot.
    fn acquire<'a>(
        &'a self,
        group: &'a GroupId,
        interval: Duration,
        now_ms: i64,
        ahead: Duration,
        told: Option<i64>,
    ) -> BoxFuture<'a, Result<Gate>>;
    /// When the channel's next slot begins (ms), without taking it; `None`: any time.
    fn next_slot<'a>(&'a self, group: &'a GroupId) -> BoxFuture<'a, Result<Option<i64>>>;
    /// After a 429: the channel posts nothing before `until_ms` (never moves a later slot
    /// earlier).
    fn hold_until<'a>(&'a self, group: &'a GroupId, until_ms: i64) -> BoxFuture<'a, Result<()>>;
    /// The workspace's pause, if any.
    fn workspace_pause<'a>(&'a self, team: &'a TeamId) -> BoxFuture<'a, Result<Option<Pause>>>;
    /// Claims the right to send an operations notice about `subject` at `now_ms`: true when
    /// none was sent within `quiet_ms` (the claim then lasts `quiet_ms`), false otherwise.
    fn claim_notice<'a>(
        &'a self,
        subject: &'a str,
        now_ms: i64,
        quiet_ms: i64,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Pauses a channel or a workspace, with when (`now`, RFC 3339).
    fn record_pause<'a>(
        &'a self,
        scope: &'a PauseScope,
        pause: &'a Pause,
        now: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// Remembers the last failure of a post to the channel (Slack's error, or why it was
    /// retried or parked), with when (`now`, RFC 3339), for operators (`ingestlayer status`).
    /// Written only when a post fails, so a healthy channel costs nothing.
    fn record_error<'a>(
        &'a self,
        group: &'a GroupId,
        error: &'a str,
        now: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// The channel's id and the bot's membership as last recorded.
    fn channel<'a>(&'a self, group: &'a GroupId) -> BoxFuture<'a, Result<ChannelState>>;
    /// Remembers the channel id Slack reported for a channel posted to by name.
    fn set_channel_id<'a>(&'a self, group: &'a GroupId, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Records the bot's membership of a channel (and the channel's id when known); `None`
    /// forgets it, so the next post checks again.
    fn set_membership<'a>(
        &'a self,
        group: &'a GroupId,
        membership: Option<Membership>,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_items_are_named_as_operators_know_them() {
        assert_eq!(display_name("chan#default:#growth"), "#growth");
        assert_eq!(
            display_name("chan#T0123:#growth"),
            "#growth in workspace T0123"
        );
        assert_eq!(display_name("chan#T0123:C0456"), "C0456 in workspace T0123");
        assert_eq!(display_name("team#T0123"), "workspace T0123");
        assert_eq!(display_name("team#default"), "the default workspace");
    }
}
