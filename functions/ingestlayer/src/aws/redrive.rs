//! Moving parked messages from a DLQ back to its queue: the Slack FIFO DLQ to the Slack
//! queue, or the events DLQ (a standard queue) to the events queue.
//!
//! Messages are received, sent and deleted one by one. A FIFO message is sent with its
//! message group and a fresh deduplication id, so each channel's messages keep their order
//! and SQS's 5-minute deduplication window cannot swallow a message parked and redriven
//! before; a standard queue's message (no group) is sent as it is.
//! Messages of other groups are held while the DLQ is read and released at the end.
//! Redriven messages keep their delivery key, so the ledger still prevents a second post
//! of anything already delivered. (A whole-queue redrive on AWS may use
//! StartMessageMoveTask instead; it cannot pick one channel.)

use std::collections::HashMap;

use aws_sdk_sqs::types::MessageSystemAttributeName;

use crate::aws::sqs::{send_all, Outgoing};
use crate::error::{Error, Result};

/// The FIFO message group of a received message (`<team>:<channel>`).
pub fn group_of(m: &aws_sdk_sqs::types::Message) -> String {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned()
        .unwrap_or_default()
}

/// Receives up to 10 messages of a DLQ with all their attributes, hiding them for
/// `visibility_seconds` (an empty answer: none is visible now). Whoever reads the whole
/// queue holds what it received and [`release`]s what it leaves parked.
pub async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    visibility_seconds: i32,
) -> Result<Vec<aws_sdk_sqs::types::Message>> {
    Ok(sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| Error::aws("reading the DLQ", e))?
        .messages
        .unwrap_or_default())
}

/// Makes held messages visible again at once.
pub async fn release(sqs: &aws_sdk_sqs::Client, url: &str, handles: &[String]) {
    for h in handles {
        let _ = sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(h)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

/// Moves every parked message whose group `wanted` accepts from `dlq_url` back to
/// `queue_url`, in each group's order; returns how many moved. On an error the messages
/// not yet moved stay parked (a message is deleted from the DLQ only once it was sent).
pub async fn move_back(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<usize> {
    move_back_reporting(sqs, dlq_url, queue_url, wanted, |_| {}).await
}

/// [`move_back`], calling `moved` with each message once it is back in the queue (for a
/// progress display).
pub async fn move_back_reporting(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    wanted: impl Fn(&str) -> bool,
    mut moved_one: impl FnMut(&aws_sdk_sqs::types::Message),
) -> Result<usize> {
    let mut moved = 0;
    let mut skipped = Vec::new();
    let result = async {
        loop {
            let got = receive_batch(sqs, dlq_url, 60).await?;
            if got.is_empty() {
                return Ok::<(), Error>(());
            }
            for m in got {
                let group = group_of(&m);
                let handle = m.receipt_handle().unwrap_or_default().to_owned();
                if !wanted(&group) {
                    skipped.push(handle);
                    continue;
                }
                let fifo = !group.is_empty();
                let out = Outgoing {
                    body: m.body().unwrap_or_default().to_owned(),
                    group_id: fifo.then_some(group),
                    dedup_id: fifo.then(|| format!("redrive-{}", ulid::Ulid::new())),
                    attributes: HashMap::new(),
                };
                send_all(sqs, queue_url, std::slice::from_ref(&out))
                    .await
                    .remove(0)?;
                sqs.delete_message()
                    .queue_url(dlq_url)
                    .receipt_handle(&handle)
                    .send()
                    .await
                    .map_err(|e| Error::aws("deleting a redriven message from the DLQ", e))?;
                moved += 1;
                moved_one(&m);
            }
        }
    }
    .await;
    release(sqs, dlq_url, &skipped).await;
    result.map(|()| moved)
}
