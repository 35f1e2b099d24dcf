//! One post to Slack: a single message, or a digest of several, with the metadata (delivery
//! keys and event ids) that lets a later no-duplicate check find it in the channel's history.

use secrecy::SecretString;

use crate::delivery::digest::{digest, DigestItem};
use crate::delivery::message::Item;
use crate::delivery::DeliveryDeps;
use crate::slack::answers::Answer;
use crate::slack::client::PostMessage;

/// Message metadata `event_type` of a single post.
pub const SINGLE_EVENT_TYPE: &str = "ingestlayer_delivery";
/// Message metadata `event_type` of a digest.
pub const DIGEST_EVENT_TYPE: &str = "ingestlayer_digest";

/// Posts one message or a digest (`unit` is never empty); returns Slack's answer and the
/// channel posted to.
pub(super) async fn post_unit(
    unit: &[Item<'_>],
    token: &SecretString,
    deps: &DeliveryDeps,
) -> (Answer, String) {
    let first = &unit[0].delivery;
    let (message, metadata) = if unit.len() == 1 {
        (
            first.message.clone(),
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
        (
            digest(&items),
            serde_json::json!({
                "event_type": DIGEST_EVENT_TYPE,
                "event_payload": {
                    "keys": unit.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
                    "event_ids": unit.iter().map(|i| i.delivery.event_id.as_str()).collect::<Vec<_>>()
                }
            }),
        )
    };
    let answer = deps
        .slack
        .post_message(
            token,
            &PostMessage {
                channel: first.channel.as_str(),
                text: &message.text,
                blocks: &message.blocks,
                metadata: Some(metadata),
                unfurl_links: false,
                unfurl_media: false,
            },
        )
        .await;
    (answer, first.channel.to_string())
}
