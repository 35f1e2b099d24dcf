//! Per-channel and per-workspace state every delivery instance shares, in DynamoDB:
//! the next moment a channel may be posted to (pacing, and Retry-After after a 429) and
//! pauses with the Slack error and what the operator must do.
//!
//! Items in the channels table (`pk`): `chan#<team>:<channel>` with `next_at_ms`,
//! `channel_id`, and when paused `paused_error`, `paused_hint`, `paused_at`;
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
