//! Per-channel and per-workspace state every delivery instance shares, in DynamoDB:
//! the next moment a channel may be posted to (pacing, and Retry-After after a 429) and
//! pauses with the Slack error and what the operator must do.
//!
//! Items in the channels table (`pk`): `chan#<team>:<channel>` with `next_at_ms`,
//! `channel_id`, `member` (`yes` once the bot is in the channel, `invite_only` for a
//! private channel it can only be invited to), `last_error` and `last_error_at` (the last
//! failed post, kept after the channel recovers), and when paused `paused_error`,
//! `paused_hint`, `paused_at`;
//! `team#<team>` with the same pause attributes for a whole workspace. Taking a posting
//! slot is one conditional write, so two instances never post to a channel in the same
//! interval.
//!
//! This file is the DynamoDB table: [`Channels`] implements delivery's [`ChannelStore`]
//! (whose types live in [`super::channel_store`] and are re-exported here), and the
//! operator's side (connect, the DLQ tool) uses its own methods to list, pause and resume.

use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use crate::aws::dynamo::{self, is_condition_failed, Item};
pub use crate::delivery::channel_store::{
    channel_pk, display_name, team_pk, ChannelState, ChannelStore, Gate, LastError, Membership,
    Pause, PauseScope, PausedEntry,
};
use crate::error::{Error, Result};
use crate::ids::{GroupId, TeamId};

/// The channels table in DynamoDB.
#[derive(Clone, Debug)]
pub struct Channels {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

/// A channels table item (`chan#…` or `team#…`), as stored. Written attribute by attribute
/// with update expressions; read whole.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct ChannelItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pk: Option<String>,
    /// The channel's next posting slot (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel_id: Option<String>,
    /// [`Membership::as_str`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused_hint: Option<String>,
    /// When the pause began (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused_at: Option<String>,
    /// The channel's last failed post (kept after it recovers), and when (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error_at: Option<String>,
}

impl ChannelItem {
    fn pause(&self) -> Option<Pause> {
        Some(Pause {
            error: self.paused_error.clone()?,
            hint: self.paused_hint.clone().unwrap_or_default(),
        })
    }

    fn state(&self) -> ChannelState {
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        ChannelState {
            channel_id: text(&self.channel_id),
            membership: text(&self.member).as_deref().and_then(Membership::parse),
        }
    }
}

impl Channels {
    /// Pauses a channel (`chan#…`) or workspace (`team#…`) item, as [`PauseScope::key`]
    /// names it.
    pub async fn pause(&self, pk: &str, pause: &Pause, now: &str) -> Result<()> {
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
            .map_err(|e| Error::aws("pausing in the channels table", e))?;
        Ok(())
    }

    /// Lifts a pause; `true` when there was one.
    pub async fn resume(&self, pk: &str) -> Result<bool> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .update_expression("REMOVE paused_error, paused_hint, paused_at")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("lifting a pause in the channels table", e))?;
        Ok(out
            .attributes
            .is_some_and(|a| a.contains_key("paused_error")))
    }

    /// The channel's id and membership as last recorded (`group` is `<team>:<channel>`).
    pub async fn state(&self, group: &str) -> Result<ChannelState> {
        Ok(self.get(&channel_pk(group)).await?.state())
    }

    /// Every paused channel and workspace.
    pub async fn paused(&self) -> Result<Vec<PausedEntry>> {
        let items: Vec<Item> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("attribute_exists(paused_error)")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::aws("listing paused channels", e))?;
        let mut out: Vec<PausedEntry> = items
            .into_iter()
            .filter_map(|item| {
                let item: ChannelItem = dynamo::from_item(item, "a channels table item")
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "skipping an unreadable paused item"),
                    )
                    .ok()?;
                Some(PausedEntry {
                    pause: item.pause()?,
                    pk: item.pk?,
                    since: item.paused_at.unwrap_or_default(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.pk.cmp(&b.pk));
        Ok(out)
    }

    /// Every channel's last failed post, by channel.
    pub async fn last_errors(&self) -> Result<Vec<LastError>> {
        let items: Vec<crate::aws::dynamo::Item> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("attribute_exists(last_error)")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::aws("listing the channels' last errors", e))?;
        let mut out: Vec<LastError> = items
            .into_iter()
            .filter_map(|item| {
                let c: ChannelItem = crate::aws::dynamo::from_item(item, "a channel").ok()?;
                Some(LastError {
                    pk: c.pk.unwrap_or_default(),
                    error: c.last_error.unwrap_or_default(),
                    at: c.last_error_at.unwrap_or_default(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.pk.cmp(&b.pk));
        Ok(out)
    }

    async fn write_error(&self, group: &GroupId, error: &str, now: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group.as_str())))
            .update_expression("SET last_error = :e, last_error_at = :t")
            .expression_attribute_values(":e", AttributeValue::S(error.to_owned()))
            .expression_attribute_values(":t", AttributeValue::S(now.to_owned()))
            .send()
            .await
            .map_err(|e| Error::aws("recording the channel's last error", e))?;
        Ok(())
    }

    async fn get(&self, pk: &str) -> Result<ChannelItem> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("reading the channels table", e))?
            .item;
        dynamo::from_item_or_default(item, "a channels table item")
    }

    /// Takes the slot at `at` when the channel's slot is still `seen` (`None`: it has none
    /// set), so the next begins `interval` later. `Ok(Err(item))` when it is not (another
    /// instance took it, a hold moved it) or the channel is paused, with the item as it is
    /// then (DynamoDB returns it with the failed condition; no extra read).
    async fn take_slot_at(
        &self,
        group: &GroupId,
        seen: Option<i64>,
        at: i64,
        interval: Duration,
    ) -> Result<std::result::Result<(), ChannelItem>> {
        let next = at + interval.as_millis() as i64;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group.as_str())))
            .update_expression("SET next_at_ms = :next")
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match seen {
            // Due: any slot at or before now is as good as the one read.
            Some(seen) if seen <= at => update
                .condition_expression(
                    "(attribute_not_exists(next_at_ms) OR next_at_ms <= :at) AND attribute_not_exists(paused_error)",
                )
                .expression_attribute_values(":at", AttributeValue::N(at.to_string())),
            // Ahead: exactly the slot read, so two instances never both take it.
            Some(seen) => update
                .condition_expression("next_at_ms = :seen AND attribute_not_exists(paused_error)")
                .expression_attribute_values(":seen", AttributeValue::N(seen.to_string())),
            None => update.condition_expression(
                "attribute_not_exists(next_at_ms) AND attribute_not_exists(paused_error)",
            ),
        };
        match update.send().await {
            Ok(_) => Ok(Ok(())),
            Err(e) if is_condition_failed(&e) => {
                let old = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let item = match old {
                    Some(item) => dynamo::from_item(item, "a channels table item")?,
                    None => self.get(&channel_pk(group.as_str())).await?,
                };
                Ok(Err(item))
            }
            Err(e) => Err(Error::aws("taking the channel's posting slot", e)),
        }
    }

    /// The slot due now, or the next one when it begins within `ahead`; two conditional
    /// writes at most (the second only when the first found the slot ahead). The first
    /// asks for `told` (the slot a wait named) when it begins within `ahead`, else for a
    /// slot due now.
    async fn take_slot(
        &self,
        group: &GroupId,
        interval: Duration,
        now_ms: i64,
        ahead: Duration,
        told: Option<i64>,
    ) -> Result<Gate> {
        let told = told.filter(|t| *t - now_ms <= ahead.as_millis() as i64);
        let mut seen = Some(told.unwrap_or(now_ms));
        for _ in 0..2 {
            let at = seen.map_or(now_ms, |s| s.max(now_ms));
            let item = match self.take_slot_at(group, seen, at, interval).await? {
                Ok(()) => return Ok(Gate::At(at)),
                Err(item) => item,
            };
            if let Some(p) = item.pause() {
                return Ok(Gate::Paused(p));
            }
            let wait = item.next_at_ms.map_or(0, |next| next - now_ms);
            if wait > ahead.as_millis() as i64 {
                return Ok(Gate::Wait(Duration::from_millis(wait as u64)));
            }
            seen = item.next_at_ms;
        }
        // Another instance took the slot ahead as this one tried: ask again shortly.
        Ok(Gate::Wait(Duration::from_millis(1)))
    }

    async fn claim(&self, subject: &str, now_ms: i64, quiet_ms: i64) -> Result<bool> {
        let until = now_ms + quiet_ms;
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("notice#{subject}")))
            .item("until_ms", AttributeValue::N(until.to_string()))
            // The table's TTL removes the mark some time after it lapses.
            .item(
                "expires_at",
                AttributeValue::N((until / 1000 + 3600).to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR until_ms <= :now")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(Error::aws("claiming an operations notice", e)),
        }
    }

    async fn hold(&self, group: &GroupId, until_ms: i64) -> Result<()> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group.as_str())))
            .update_expression("SET next_at_ms = :until")
            .condition_expression("attribute_not_exists(next_at_ms) OR next_at_ms < :until")
            .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(Error::aws("holding the channel after a 429", e)),
        }
    }

    async fn write_channel_id(&self, group: &GroupId, id: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group.as_str())))
            .update_expression("SET channel_id = :c")
            .expression_attribute_values(":c", AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(|e| Error::aws("recording the channel id", e))?;
        Ok(())
    }

    async fn write_membership(
        &self,
        group: &GroupId,
        membership: Option<Membership>,
        channel_id: Option<&str>,
    ) -> Result<()> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(channel_pk(group.as_str())));
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
            .map_err(|e| Error::aws("recording the channel's membership", e))?;
        Ok(())
    }
}

impl ChannelStore for Channels {
    fn acquire<'a>(
        &'a self,
        group: &'a GroupId,
        interval: Duration,
        now_ms: i64,
        ahead: Duration,
        told: Option<i64>,
    ) -> BoxFuture<'a, Result<Gate>> {
        self.take_slot(group, interval, now_ms, ahead, told).boxed()
    }

    fn next_slot<'a>(&'a self, group: &'a GroupId) -> BoxFuture<'a, Result<Option<i64>>> {
        async move { Ok(self.get(&channel_pk(group.as_str())).await?.next_at_ms) }.boxed()
    }

    fn hold_until<'a>(&'a self, group: &'a GroupId, until_ms: i64) -> BoxFuture<'a, Result<()>> {
        self.hold(group, until_ms).boxed()
    }

    fn workspace_pause<'a>(&'a self, team: &'a TeamId) -> BoxFuture<'a, Result<Option<Pause>>> {
        async move { Ok(self.get(&team_pk(team.as_str())).await?.pause()) }.boxed()
    }

    fn claim_notice<'a>(
        &'a self,
        subject: &'a str,
        now_ms: i64,
        quiet_ms: i64,
    ) -> BoxFuture<'a, Result<bool>> {
        self.claim(subject, now_ms, quiet_ms).boxed()
    }

    fn record_pause<'a>(
        &'a self,
        scope: &'a PauseScope,
        pause: &'a Pause,
        now: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        async move { self.pause(&scope.key(), pause, now).await }.boxed()
    }

    fn record_error<'a>(
        &'a self,
        group: &'a GroupId,
        error: &'a str,
        now: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        self.write_error(group, error, now).boxed()
    }

    fn channel<'a>(&'a self, group: &'a GroupId) -> BoxFuture<'a, Result<ChannelState>> {
        self.state(group.as_str()).boxed()
    }

    fn set_channel_id<'a>(&'a self, group: &'a GroupId, id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.write_channel_id(group, id).boxed()
    }

    fn set_membership<'a>(
        &'a self,
        group: &'a GroupId,
        membership: Option<Membership>,
        channel_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        self.write_membership(group, membership, channel_id).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn read(item: &Item) -> ChannelItem {
        dynamo::from_item(item.clone(), "a channels table item").unwrap()
    }

    #[test]
    fn a_paused_channel_item_as_stored_round_trips() {
        let stored = Item::from([
            ("pk".to_owned(), s("chan#T0123:#growth")),
            (
                "next_at_ms".to_owned(),
                AttributeValue::N("1700000001100".into()),
            ),
            ("channel_id".to_owned(), s("C0456")),
            ("member".to_owned(), s("yes")),
            ("paused_error".to_owned(), s("not_in_channel")),
            ("paused_hint".to_owned(), s("invite the app to #growth")),
            ("paused_at".to_owned(), s("2023-11-14T22:13:20Z")),
        ]);
        let item = read(&stored);
        assert_eq!(item.next_at_ms, Some(1_700_000_001_100));
        assert_eq!(
            item.pause(),
            Some(Pause {
                error: "not_in_channel".into(),
                hint: "invite the app to #growth".into()
            })
        );
        assert_eq!(
            item.state(),
            ChannelState {
                channel_id: Some("C0456".into()),
                membership: Some(Membership::Member)
            }
        );
        assert_eq!(
            dynamo::to_item(&item, "a channels table item").unwrap(),
            stored
        );
    }

    #[test]
    fn a_workspace_pause_without_a_hint_and_an_unpaused_channel_read_as_before() {
        let team = Item::from([
            ("pk".to_owned(), s("team#T0123")),
            ("paused_error".to_owned(), s("token_revoked")),
        ]);
        let item = read(&team);
        assert_eq!(
            item.pause(),
            Some(Pause {
                error: "token_revoked".into(),
                hint: String::new()
            })
        );
        assert_eq!(
            dynamo::to_item(&item, "a channels table item").unwrap(),
            team
        );

        let channel = Item::from([
            ("pk".to_owned(), s("chan#default:#secret")),
            ("member".to_owned(), s("invite_only")),
            ("channel_id".to_owned(), s("")),
        ]);
        let item = read(&channel);
        assert_eq!(item.pause(), None);
        assert_eq!(
            item.state(),
            ChannelState {
                channel_id: None,
                membership: Some(Membership::InviteOnly)
            },
            "an empty channel id is none"
        );
        assert_eq!(
            dynamo::to_item(&item, "a channels table item").unwrap(),
            channel
        );
        assert_eq!(ChannelItem::default().state(), ChannelState::default());
    }
}
