//! Per-channel and per-workspace state every delivery instance shares, in DynamoDB:
//! the next moment a channel may be posted to (pacing, and Retry-After after a 429) and
//! pauses with the Slack error and what the operator must do.
//!
//! Items in the channels table (`pk`): `chan#<team>:<channel>` with `next_at_ms`,
//! `channel_id`, `member` (`yes` once the bot is in the channel, `invite_only` for a
//! private channel it can only be invited to), and when paused `paused_error`,
//! `paused_hint`, `paused_at`;
//! `team#<team>` with the same pause attributes for a whole workspace. Taking a posting
//! slot is one conditional write, so two instances never post to a channel in the same
//! interval.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Debug, thiserror::Error)]
#[error("channel state: {0}")]
pub struct ChannelError(pub String);

fn err<E>(e: aws_sdk_dynamodb::error::SdkError<E>) -> ChannelError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
{
    ChannelError(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
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
    /// The slot is taken: post now.
    Go,
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

/// Whether the bot is in a channel, as last learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The bot is in the channel (it joined, or was invited).
    Member,
    /// A private channel: the bot can only be invited.
    InviteOnly,
}

impl Membership {
    fn as_str(self) -> &'static str {
        match self {
            Membership::Member => "yes",
            Membership::InviteOnly => "invite_only",
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

#[derive(Clone, Debug)]
pub struct Channels {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl Channels {
    /// Takes the channel's next posting slot when it is due, so the following one is
    /// `interval` later.
    pub async fn acquire(
        &self,
        group: &str,
        interval: Duration,
        now_ms: i64,
    ) -> Result<Gate, ChannelError> {
        let next = now_ms + interval.as_millis() as i64;
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group)))
            .update_expression("SET next_at_ms = :next")
            .condition_expression("(attribute_not_exists(next_at_ms) OR next_at_ms <= :now) AND attribute_not_exists(paused_error)")
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        match taken {
            Ok(_) => return Ok(Gate::Go),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(err(e)),
        }
        let item = self.get(&channel_pk(group)).await?;
        if let Some(p) = pause_of(&item) {
            return Ok(Gate::Paused(p));
        }
        let next_at = number(&item, "next_at_ms").unwrap_or(now_ms);
        Ok(Gate::Wait(Duration::from_millis(
            (next_at - now_ms).max(1) as u64
        )))
    }

    /// After a 429: the channel posts nothing before `until_ms`.
    pub async fn hold_until(&self, group: &str, until_ms: i64) -> Result<(), ChannelError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group)))
            .update_expression("SET next_at_ms = :until")
            .condition_expression("attribute_not_exists(next_at_ms) OR next_at_ms < :until")
            .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(err(e)),
        }
    }

    /// The workspace's pause, if any.
    pub async fn workspace_pause(&self, team: &str) -> Result<Option<Pause>, ChannelError> {
        Ok(pause_of(&self.get(&team_pk(team)).await?))
    }

    /// The channel's pause, if any.
    pub async fn channel_pause(&self, group: &str) -> Result<Option<Pause>, ChannelError> {
        Ok(pause_of(&self.get(&channel_pk(group)).await?))
    }

    /// Pauses a channel (`chan#…`) or workspace (`team#…`) item.
    pub async fn pause(&self, pk: &str, pause: &Pause, now: &str) -> Result<(), ChannelError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .update_expression("SET paused_error = :e, paused_hint = :h, paused_at = :t")
            .expression_attribute_values(":e", AttributeValue::S(pause.error.clone()))
            .expression_attribute_values(":h", AttributeValue::S(pause.hint.clone()))
            .expression_attribute_values(":t", AttributeValue::S(now.to_owned()))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Lifts a pause; `true` when there was one.
    pub async fn resume(&self, pk: &str) -> Result<bool, ChannelError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .update_expression("REMOVE paused_error, paused_hint, paused_at")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .attributes
            .is_some_and(|a| a.contains_key("paused_error")))
    }

    /// Remembers the channel id Slack reported for a channel posted to by name.
    pub async fn set_channel_id(&self, group: &str, id: &str) -> Result<(), ChannelError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group)))
            .update_expression("SET channel_id = :c")
            .expression_attribute_values(":c", AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    pub async fn channel_id(&self, group: &str) -> Result<Option<String>, ChannelError> {
        let item = self.get(&channel_pk(group)).await?;
        Ok(match item.get("channel_id") {
            Some(AttributeValue::S(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
    }

    /// The channel's id and membership as last recorded.
    pub async fn state(&self, group: &str) -> Result<ChannelState, ChannelError> {
        let item = self.get(&channel_pk(group)).await?;
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        Ok(ChannelState {
            channel_id: text("channel_id"),
            membership: match text("member").as_deref() {
                Some("yes") => Some(Membership::Member),
                Some("invite_only") => Some(Membership::InviteOnly),
                _ => None,
            },
        })
    }

    /// Records the bot's membership of a channel (and the channel's id when known);
    /// `None` forgets it, so the next post checks again.
    pub async fn set_membership(
        &self,
        group: &str,
        membership: Option<Membership>,
        channel_id: Option<&str>,
    ) -> Result<(), ChannelError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group)));
        let mut set = Vec::new();
        // `member` is a DynamoDB reserved word.
        update = update.expression_attribute_names("#m", "member");
        if let Some(m) = membership {
            set.push("#m = :m");
            update = update.expression_attribute_values(":m", AttributeValue::S(m.as_str().into()));
        }
        if let Some(id) = channel_id {
            set.push("channel_id = :c");
            update = update.expression_attribute_values(":c", AttributeValue::S(id.to_owned()));
        }
        let mut expression = String::new();
        if !set.is_empty() {
            expression = format!("SET {}", set.join(", "));
        }
        if membership.is_none() {
            expression.push_str(" REMOVE #m");
        }
        update
            .update_expression(expression.trim())
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Every paused channel and workspace.
    pub async fn paused(&self) -> Result<Vec<PausedEntry>, ChannelError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("attribute_exists(paused_error)")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(err)?;
            for item in page.items.unwrap_or_default() {
                if let (Some(AttributeValue::S(pk)), Some(pause)) =
                    (item.get("pk"), pause_of(&item))
                {
                    let since = match item.get("paused_at") {
                        Some(AttributeValue::S(s)) => s.clone(),
                        _ => String::new(),
                    };
                    out.push(PausedEntry {
                        pk: pk.clone(),
                        pause,
                        since,
                    });
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.pk.cmp(&b.pk));
        Ok(out)
    }

    async fn get(&self, pk: &str) -> Result<HashMap<String, AttributeValue>, ChannelError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item
            .unwrap_or_default())
    }
}

fn pause_of(item: &HashMap<String, AttributeValue>) -> Option<Pause> {
    match (item.get("paused_error"), item.get("paused_hint")) {
        (Some(AttributeValue::S(e)), h) => Some(Pause {
            error: e.clone(),
            hint: match h {
                Some(AttributeValue::S(h)) => h.clone(),
                _ => String::new(),
            },
        }),
        _ => None,
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
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
