//! The no-duplicate check after an uncertain attempt: is the message (found by its delivery
//! key, carried in message metadata) already in the channel's history, or, for a message
//! with a thread key, in that key's thread (replies are not in the history)?

use crate::delivery::channel_store::Membership;
use crate::delivery::membership;
use crate::delivery::message::Delivery;
use crate::delivery::retry::HISTORY_SKEW_SECS;
use crate::delivery::threads::{thread_pk, utc_day};
use crate::delivery::DeliveryDeps;
use crate::ids::{DeliveryKey, GroupId};
use crate::slack::client::{HistoryCheck, Join};
use secrecy::SecretString;

/// Looks for `key` in the channel's history since shortly before the uncertain attempt
/// began (`since_ms`). A channel the bot was removed from is joined again and read again.
pub(super) async fn check(
    delivery: &Delivery,
    group: &GroupId,
    key: &DeliveryKey,
    since_ms: i64,
    deps: &DeliveryDeps,
) -> HistoryCheck {
    let token = match deps.tokens.token(group.team().as_str()).await {
        Ok(t) => t,
        Err(e) => return HistoryCheck::Unavailable(e.to_string()),
    };
    let token = &token;
    let channel = match deps.channels.channel(group).await.map(|s| s.channel_id) {
        Ok(Some(id)) => id,
        Ok(None) if delivery.channel.as_str().starts_with('#') => {
            // History takes channel ids: resolve the name the pipeline uses.
            match deps
                .slack
                .resolve_channel(token, delivery.channel.as_str())
                .await
            {
                Ok(Some(id)) => {
                    deps.remember_channel_id(group, &id).await;
                    id
                }
                // No such channel among those the bot can see: nothing can have been
                // posted to it. (A channel the bot was removed from after posting is
                // checked by the id recorded when it was in, and answers not_in_channel.)
                Ok(None) => return HistoryCheck::NotFound,
                Err(e) => return HistoryCheck::Unavailable(e.to_string()),
            }
        }
        Ok(None) => delivery.channel.to_string(),
        Err(e) => return HistoryCheck::Unavailable(e.to_string()),
    };
    let oldest = since_ms / 1000 - HISTORY_SKEW_SECS;
    let key = key.as_str();
    match in_history(delivery, group, &channel, key, oldest, token, deps).await {
        HistoryCheck::NotFound => in_threads(delivery, &channel, key, since_ms, token, deps).await,
        other => other,
    }
}

/// Replies of the key's threads of the days the attempt may have used (the day it began
/// and today).
async fn in_threads(
    delivery: &Delivery,
    channel: &str,
    key: &str,
    since_ms: i64,
    token: &SecretString,
    deps: &DeliveryDeps,
) -> HistoryCheck {
    let (Some(thread_key), Some(store)) = (&delivery.thread_key, &deps.threads) else {
        return HistoryCheck::NotFound;
    };
    let oldest = since_ms / 1000 - HISTORY_SKEW_SECS;
    let mut days = vec![utc_day(since_ms), utc_day(deps.clock.now_ms())];
    days.dedup();
    for day in days {
        let pk = thread_pk(&delivery.team, &delivery.channel, thread_key, &day);
        match store.get(&pk).await {
            Ok(Some(ts)) => match deps
                .slack
                .find_reply(token, channel, &ts, key, oldest)
                .await
            {
                HistoryCheck::NotFound => {}
                other => return other,
            },
            Ok(None) => {}
            Err(e) => return HistoryCheck::Unavailable(e.to_string()),
        }
    }
    HistoryCheck::NotFound
}

/// The channel's history (a channel the bot was removed from is joined again and read again).
async fn in_history(
    delivery: &Delivery,
    group: &GroupId,
    channel: &str,
    key: &str,
    oldest: i64,
    token: &SecretString,
    deps: &DeliveryDeps,
) -> HistoryCheck {
    let channel = channel.to_owned();
    match deps.slack.find_posted(token, &channel, key, oldest).await {
        // Posted with chat:write.public without joining, or removed since: join, read again.
        HistoryCheck::Refused(e) if e == "not_in_channel" => {
            membership::forget(group, deps).await;
            match deps.slack.join_channel(token, &channel).await {
                Ok(Join::Member { id }) => {
                    membership::record(group, Membership::Member, Some(&id), deps).await;
                    deps.slack.find_posted(token, &channel, key, oldest).await
                }
                Ok(Join::Refused(why)) => {
                    tracing::warn!(channel = %delivery.channel, slack_error = %why, "the bot cannot join the channel to read its history");
                    HistoryCheck::Refused(e)
                }
                Err(why) => HistoryCheck::Unavailable(why.to_string()),
            }
        }
        other => other,
    }
}
