//! A busy channel's backlog beyond one queue batch (`BUFFER_TABLE`), so one post can carry
//! a Block Kit digest's worth of messages rather than the 10 a FIFO batch holds.
//!
//! - **Spill.** A batch of a channel whose posting slot is not due (or whose buffer already
//!   holds messages) is written here whole, in queue order (the sort key is the SQS FIFO
//!   sequence number), and taken off the queue; a drain ticket for the channel is queued in
//!   the channel's own ticket group. Only the channel's FIFO group writes its buffer, one batch
//!   at a time, so a batch that finds the buffer empty cannot be overtaken by a spilled one.
//! - **Drain.** A ticket's invocation takes the channel's slot and posts the oldest messages
//!   as one digest, through the same group loop as queued ones (ledger, history check, pacing,
//!   429s, pauses, threads and owners), then removes what that loop settled. What it did not
//!   settle stays, in order, and the ticket comes back when the loop says.
//! - **Nothing lost, nothing twice.** A message leaves the queue only once it is stored
//!   here; it leaves the buffer only once it was posted (and the ledger says so), parked or
//!   found already posted. A process that stops between the post and the removal leaves
//!   items the ledger knows as posted, or as uncertain (the history check), so the next drain
//!   removes them without posting again.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

use crate::aws::retry::UNPROCESSED;
use crate::error::{Error, Result};
use crate::ids::GroupId;

/// DynamoDB's BatchWriteItem limit.
const BATCH_WRITE_MAX: usize = 25;
/// A drain ticket's FIFO group is the channel's with this in front.
pub const TICKET_PREFIX: &str = "drain#";
/// The ticket group of a channel's FIFO group (at most SQS's 128 characters; the ticket's
/// body names the channel whole).
pub fn ticket_group(group: &GroupId) -> String {
    format!("{TICKET_PREFIX}{}", group.as_str())
        .chars()
        .take(128)
        .collect()
}

/// A drain ticket's body: the channel's FIFO group.
pub fn ticket_body(group: &GroupId) -> String {
    serde_json::json!({ "drain": group.as_str() }).to_string()
}

/// The channel a message drains, when it is a ticket (its FIFO group is a ticket group and
/// its body names the channel).
pub fn drained_by(r: &SqsMessage) -> Option<GroupId> {
    #[derive(serde::Deserialize)]
    struct Ticket {
        drain: String,
    }
    r.attributes
        .get("MessageGroupId")?
        .strip_prefix(TICKET_PREFIX)?;
    let t: Ticket = serde_json::from_str(r.body.as_deref()?).ok()?;
    Some(GroupId::from_queue(&t.drain))
}

/// A message's place in its channel's buffer: the FIFO sequence number (zero-padded, so
/// text order is queue order), else when it was sent and its id.
pub fn sort_key(r: &SqsMessage) -> String {
    match r.attributes.get("SequenceNumber") {
        Some(seq) if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{seq:0>40}")
        }
        _ => format!(
            "t{:0>20}#{}",
            r.attributes
                .get("SentTimestamp")
                .map(String::as_str)
                .unwrap_or("0"),
            r.message_id.as_deref().unwrap_or_default()
        ),
    }
}

/// One buffered message, as it was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffered {
    pub sk: String,
    pub body: String,
    pub sent_ms: i64,
    /// How often it was received from the queue or tried from here.
    pub receive_count: usize,
}

impl Buffered {
    /// The id its record carries through the group loop.
    pub fn record_id(&self) -> String {
        format!("buffered:{}", self.sk)
    }

    /// The message as the group loop reads a queued one: body, group, when it was sent and
    /// how often it was tried.
    pub fn as_record(&self, group: &GroupId) -> SqsMessage {
        let mut r = SqsMessage::default();
        r.message_id = Some(self.record_id());
        r.body = Some(self.body.clone());
        r.attributes
            .insert("MessageGroupId".into(), group.as_str().to_owned());
        r.attributes
            .insert("SentTimestamp".into(), self.sent_ms.to_string());
        r.attributes.insert(
            "ApproximateReceiveCount".into(),
            self.receive_count.to_string(),
        );
        r
    }
}

/// The buffer table.
#[derive(Clone, Debug)]
pub struct Buffer {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

fn pk(group: &GroupId) -> AttributeValue {
    AttributeValue::S(format!("buf#{}", group.as_str()))
}

impl Buffer {
    /// Whether the channel's buffer holds nothing (a consistent read of one key).
    pub async fn is_empty(&self, group: &GroupId) -> Result<bool> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", pk(group))
            .projection_expression("sk")
            .consistent_read(true)
            .limit(1)
            .send()
            .await
            .map_err(|e| Error::aws("reading a channel's backlog", e))?;
        Ok(out.items.unwrap_or_default().is_empty())
    }

    /// Stores `records` (one batch of the channel's queue, in order) to expire at
    /// `expires_at` (seconds). Storing one twice (a batch that came back) rewrites it.
    pub async fn put(
        &self,
        group: &GroupId,
        records: &[&SqsMessage],
        expires_at: i64,
    ) -> Result<()> {
        let requests: Vec<WriteRequest> = records
            .iter()
            .map(|r| {
                let item = HashMap::from([
                    ("pk".to_owned(), pk(group)),
                    ("sk".to_owned(), AttributeValue::S(sort_key(r))),
                    (
                        "body".to_owned(),
                        AttributeValue::S(r.body.clone().unwrap_or_default()),
                    ),
                    (
                        "sent_ms".to_owned(),
                        AttributeValue::N(
                            r.attributes
                                .get("SentTimestamp")
                                .cloned()
                                .unwrap_or_else(|| "0".into()),
                        ),
                    ),
                    (
                        "receive_count".to_owned(),
                        AttributeValue::N(
                            r.attributes
                                .get("ApproximateReceiveCount")
                                .cloned()
                                .unwrap_or_else(|| "1".into()),
                        ),
                    ),
                    (
                        "expires_at".to_owned(),
                        AttributeValue::N(expires_at.to_string()),
                    ),
                ]);
                Ok(WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                    .build())
            })
            .collect::<std::result::Result<_, aws_sdk_dynamodb::error::BuildError>>()
            .map_err(|e| Error::invalid("a backlog item", e))?;
        self.write_all(requests, "storing a channel's backlog")
            .await
    }

    /// The channel's oldest `limit` messages, in queue order.
    pub async fn load(&self, group: &GroupId, limit: usize) -> Result<Vec<Buffered>> {
        self.load_after(group, None, limit).await
    }

    /// The channel's oldest `limit` messages queued after the one `after` names (all of
    /// them for `None`), in queue order.
    pub async fn load_after(
        &self,
        group: &GroupId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Buffered>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", pk(group));
        let query = match after {
            Some(sk) => query
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":after", AttributeValue::S(sk.to_owned())),
            None => query.key_condition_expression("pk = :pk"),
        };
        let out = query
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| Error::aws("reading a channel's backlog", e))?;
        Ok(out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let n = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<i64>().ok())
                };
                Buffered {
                    sk: s("sk").unwrap_or_default(),
                    body: s("body").unwrap_or_default(),
                    sent_ms: n("sent_ms").unwrap_or(0),
                    receive_count: n("receive_count")
                        .and_then(|c| usize::try_from(c).ok())
                        .unwrap_or(1),
                }
            })
            .collect())
    }

    /// Takes settled messages out of the channel's buffer.
    pub async fn remove(&self, group: &GroupId, sks: &[String]) -> Result<()> {
        let requests: Vec<WriteRequest> = sks
            .iter()
            .map(|sk| {
                Ok(WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .key("pk", pk(group))
                            .key("sk", AttributeValue::S(sk.clone()))
                            .build()?,
                    )
                    .build())
            })
            .collect::<std::result::Result<_, aws_sdk_dynamodb::error::BuildError>>()
            .map_err(|e| Error::invalid("a backlog key", e))?;
        self.write_all(requests, "clearing a channel's backlog")
            .await
    }

    /// Counts one more try of a buffered message (the retry schedule reads it).
    pub async fn count_try(&self, group: &GroupId, sk: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(group))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .update_expression("ADD receive_count :one")
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if crate::aws::dynamo::is_condition_failed(&e) {
                    Ok(())
                } else {
                    Err(Error::aws("counting a backlog message's try", e))
                }
            })
    }

    async fn write_all(&self, requests: Vec<WriteRequest>, what: &str) -> Result<()> {
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                let Some(wait) = UNPROCESSED.before(attempt) else {
                    return Err(Error::Upstream {
                        what: what.into(),
                        detail: format!("DynamoDB left {} items unprocessed", pending.len()),
                        retryable: true,
                    });
                };
                tokio::time::sleep(wait).await;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| Error::aws(what.to_owned(), e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: Option<&str>, sent: &str, id: &str) -> SqsMessage {
        let mut r = SqsMessage::default();
        r.message_id = Some(id.into());
        if let Some(seq) = seq {
            r.attributes.insert("SequenceNumber".into(), seq.into());
        }
        r.attributes.insert("SentTimestamp".into(), sent.into());
        r
    }

    #[test]
    fn sort_keys_keep_queue_order_whatever_the_numbers_length() {
        let a = sort_key(&record(Some("9"), "5", "a"));
        let b = sort_key(&record(Some("18849496460467696128"), "1", "b"));
        let c = sort_key(&record(Some("18849496460467696129"), "1", "c"));
        assert!(a < b && b < c, "{a} {b} {c}");
        let d = sort_key(&record(None, "1700000000000", "d"));
        let e = sort_key(&record(None, "1700000000001", "e"));
        assert!(d < e);
    }

    #[test]
    fn a_ticket_names_its_channel_and_nothing_else_is_one() {
        let ticket = |group: &str, body: &str| {
            let mut r = SqsMessage::default();
            r.body = Some(body.into());
            r.attributes.insert("MessageGroupId".into(), group.into());
            r
        };
        let g = GroupId::from_queue("T0123:#alerts");
        assert_eq!(ticket_group(&g), "drain#T0123:#alerts");
        let t = ticket(&ticket_group(&g), &ticket_body(&g));
        assert_eq!(drained_by(&t), Some(g.clone()));
        // A message of the channel itself is no ticket, whatever its body.
        assert_eq!(drained_by(&ticket("T0123:#alerts", &ticket_body(&g))), None);
        assert_eq!(drained_by(&ticket(&ticket_group(&g), "{}")), None);
        let long = GroupId::from_queue(&format!("T0123:{}", "c".repeat(126)));
        assert_eq!(ticket_group(&long).chars().count(), 128);
        let t = ticket(&ticket_group(&long), &ticket_body(&long));
        assert_eq!(drained_by(&t), Some(long));
    }

    #[test]
    fn a_buffered_message_reads_as_the_queued_one() {
        let b = Buffered {
            sk: "0001".into(),
            body: "{}".into(),
            sent_ms: 1_700_000_000_000,
            receive_count: 3,
        };
        let g = GroupId::from_queue("default:#alerts");
        let r = b.as_record(&g);
        assert_eq!(r.message_id.as_deref(), Some("buffered:0001"));
        assert_eq!(r.attributes["ApproximateReceiveCount"], "3");
        assert_eq!(r.attributes["SentTimestamp"], "1700000000000");
        assert_eq!(r.attributes["MessageGroupId"], "default:#alerts");
    }
}
