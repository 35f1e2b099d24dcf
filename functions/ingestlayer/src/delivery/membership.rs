//! The bot's membership of the channels it posts to. So that a later no-duplicate check can
//! read a channel's history, the bot joins a public channel before its first post there;
//! what was settled (joined, invite-only, not joinable) is remembered in the channels table
//! and, per instance, in memory, so it is asked once per instance and channel.

use secrecy::SecretString;

use crate::delivery::channel_store::Membership;
use crate::delivery::DeliveryDeps;
use crate::ids::{ChannelRef, GroupId};
use crate::slack::client::Join;

/// Before the first post to a channel, makes the bot a member of it when it is a public
/// channel the bot has not joined. Best effort: whatever happens here, the post goes ahead
/// and Slack's answer to it decides; only a settled outcome is remembered.
pub(super) async fn ensure_member(
    group: &GroupId,
    channel: &ChannelRef,
    token: &SecretString,
    deps: &DeliveryDeps,
) {
    let channel = channel.as_str();
    if settled(group, deps) {
        return;
    }
    let state = match deps.channels.channel(group).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "channel state unavailable; posting without checking membership");
            return;
        }
    };
    if state.membership.is_some() {
        settle(group, deps);
        return;
    }
    let id = match state.channel_id {
        Some(id) => id,
        None if channel.starts_with('#') => {
            let wanted = channel.trim_start_matches('#');
            match deps.slack.list_channels(token).await {
                Ok(list) => match list.into_iter().find(|c| c.name == wanted) {
                    Some(c) if c.is_member => {
                        record(group, Membership::Member, Some(&c.id), deps).await;
                        return;
                    }
                    Some(c) if c.is_private => {
                        record(group, Membership::InviteOnly, Some(&c.id), deps).await;
                        return;
                    }
                    Some(c) => c.id,
                    // Not visible (yet): the post tells.
                    None => return,
                },
                Err(e) => {
                    tracing::warn!(channel = %channel, error = %e, "could not list channels; posting without joining");
                    return;
                }
            }
        }
        None => channel.to_owned(),
    };
    match deps.slack.join_channel(token, &id).await {
        Ok(Join::Member { id }) => {
            tracing::info!(channel = %channel, channel_id = %id, "joined the channel before posting");
            record(group, Membership::Member, Some(&id), deps).await;
        }
        Ok(Join::Refused(e)) if e == "method_not_supported_for_channel_type" => {
            record(group, Membership::InviteOnly, Some(&id), deps).await;
        }
        Ok(Join::Refused(e)) => {
            // E.g. missing_scope on an install from before channels:join: posting still
            // works; this instance does not ask again.
            tracing::warn!(channel = %channel, slack_error = %e, "could not join the channel; posting without joining (an uncertain post there cannot be checked until the app is in it)");
            settle(group, deps);
        }
        Err(e) => {
            tracing::warn!(channel = %channel, error = %e, "could not join the channel; posting without joining");
        }
    }
}

fn settled(group: &GroupId, deps: &DeliveryDeps) -> bool {
    deps.settled
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(group)
}

fn settle(group: &GroupId, deps: &DeliveryDeps) {
    deps.settled
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(group.clone());
}

/// Records the bot's membership (and the channel id when known), settled for this instance.
pub(super) async fn record(
    group: &GroupId,
    membership: Membership,
    channel_id: Option<&str>,
    deps: &DeliveryDeps,
) {
    if let Err(e) = deps
        .channels
        .set_membership(group, Some(membership), channel_id)
        .await
    {
        tracing::warn!(error = %e, "could not record the channel's membership");
    }
    settle(group, deps);
}

/// Forgets the bot's membership, so the next post checks again.
pub(super) async fn forget(group: &GroupId, deps: &DeliveryDeps) {
    deps.settled
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(group);
    if let Err(e) = deps.channels.set_membership(group, None, None).await {
        tracing::warn!(error = %e, "could not forget the channel's membership");
    }
}
