//! One post to Slack: a single message, or a digest of several, with the metadata (delivery
//! keys and event ids) that lets a later no-duplicate check find it in the channel's history
//! (or its thread), the owners mentioned, in its key's thread when it has one.

use secrecy::SecretString;

use crate::delivery::digest::{digest_with_owners, DigestItem};
use crate::delivery::message::Item;
use crate::delivery::DeliveryDeps;
use crate::slack::answers::Answer;
use crate::slack::client::{PostMessage, THREAD_GONE};

/// Message metadata `event_type` of a single post.
pub const SINGLE_EVENT_TYPE: &str = "ingestlayer_delivery";
/// Message metadata `event_type` of a digest.
pub const DIGEST_EVENT_TYPE: &str = "ingestlayer_digest";

/// What a post did.
pub struct Posted {
    pub(super) answer: Answer,
    /// The channel posted to, as the delivery names it.
    pub(super) channel: String,
    /// The thread it was meant to reply in, which Slack no longer has: it was posted as a new
    /// top-level message instead.
    pub(super) thread_gone: Option<String>,
}

/// Posts one message or a digest (`unit` is never empty), with each item's owner line
/// (already resolved) and in the thread of `reply_to` when given; a thread Slack no longer
/// has is left for a new top-level post.
pub(super) async fn post_unit(
    unit: &[&Item<'_>],
    token: &SecretString,
    deps: &DeliveryDeps,
    reply_to: Option<&str>,
) -> Posted {
    let first = &unit[0].delivery;
    let owner = |i: usize| unit.get(i).and_then(|item| item.owner.as_deref());
    let (message, metadata) = if unit.len() == 1 {
        (
            match owner(0) {
                Some(markup) => crate::delivery::mention::with_owner(&first.message, markup),
                None => first.message.clone(),
            },
            serde_json::json!({
                "event_type": SINGLE_EVENT_TYPE,
                "event_payload": {"key": unit[0].key, "event_id": first.event_id, "pipeline_id": first.pipeline_id}
            }),
        )
    } else {
        let items: Vec<DigestItem<'_>> = unit
            .iter()
            .map(|i| DigestItem {
                event_name: &i.delivery.event_name,
                event_id: &i.delivery.event_id,
                message: &i.delivery.message,
                link: i.delivery.link.as_deref(),
            })
            .collect();
        let owners: Vec<Option<&str>> = (0..unit.len()).map(owner).collect();
        (
            digest_with_owners(&items, &owners),
            serde_json::json!({
                "event_type": DIGEST_EVENT_TYPE,
                "event_payload": {
                    "keys": unit.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
                    "event_ids": unit.iter().map(|i| i.delivery.event_id.as_str()).collect::<Vec<_>>()
                }
            }),
        )
    };
    let answer = send(
        deps,
        token,
        first.channel.as_str(),
        &message,
        &metadata,
        reply_to,
    )
    .await;
    if let (Some(old), Some(error)) = (reply_to, refusal(&answer)) {
        if THREAD_GONE.contains(&error) {
            // Slack posted nothing: the message starts the day's thread again.
            tracing::info!(channel = %first.channel, slack_error = %error, "the key's thread is gone; posting as a new thread");
            return Posted {
                answer: send(
                    deps,
                    token,
                    first.channel.as_str(),
                    &message,
                    &metadata,
                    None,
                )
                .await,
                channel: first.channel.to_string(),
                thread_gone: Some(old.to_owned()),
            };
        }
    }
    Posted {
        answer,
        channel: first.channel.to_string(),
        thread_gone: None,
    }
}

async fn send(
    deps: &DeliveryDeps,
    token: &SecretString,
    channel: &str,
    message: &crate::slack::block_kit::RenderedMessage,
    metadata: &serde_json::Value,
    thread_ts: Option<&str>,
) -> Answer {
    deps.slack
        .post_message(
            token,
            &PostMessage {
                channel,
                text: &message.text,
                blocks: &message.blocks,
                metadata: Some(metadata.clone()),
                unfurl_links: false,
                unfurl_media: false,
                thread_ts,
            },
        )
        .await
}

/// The channel id Slack reported for a post it took.
pub(super) fn channel_id(answer: &Answer) -> Option<String> {
    match answer {
        Answer::Http {
            body: Some(body), ..
        } if body.ok => body.channel.clone(),
        _ => None,
    }
}

/// Slack's error code of an `ok: false` answer.
fn refusal(answer: &Answer) -> Option<&str> {
    match answer {
        Answer::Http {
            body: Some(body), ..
        } if !body.ok => body.error.as_deref(),
        _ => None,
    }
}
