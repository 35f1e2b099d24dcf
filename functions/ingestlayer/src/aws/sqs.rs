//! Sending to SQS in batches: SendMessageBatch with at most 10 entries and 1 MiB a call,
//! each entry's own result reported back.
//!
//! Each message carries the invocation's X-Ray trace header (`AWSTraceHeader`, from the
//! `_X_AMZN_TRACE_ID` that the Lambda runtime sets per invocation), so the function that
//! consumes it continues the same trace: one event is one trace from ingest to Slack.

use std::collections::HashMap;

use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};

use crate::error::{Error, Result};

/// SQS's limit for one SendMessageBatch call (and one message).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
const MAX_BATCH_ENTRIES: usize = 10;

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub body: String,
    /// FIFO only.
    pub group_id: Option<String>,
    /// FIFO only.
    pub dedup_id: Option<String>,
    pub attributes: HashMap<String, String>,
}

impl Outgoing {
    fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>()
    }
}

/// The trace header to send with messages: the current invocation's, when tracing is on.
pub fn trace_header() -> Option<String> {
    std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|t| !t.is_empty())
}

/// The `AWSTraceHeader` system attribute for `header`.
fn trace_attribute(
    header: Option<&str>,
) -> Option<HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>> {
    let value = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header?)
        .build()
        .ok()?;
    Some(HashMap::from([(
        MessageSystemAttributeNameForSends::AwsTraceHeader,
        value,
    )]))
}

/// Sends every message; the answer holds one result per message, in order.
pub async fn send_all(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[Outgoing],
) -> Vec<Result<()>> {
    let mut results: Vec<Result<()>> = messages.iter().map(|_| Ok(())).collect();
    let trace = trace_header();
    let mut chunk: Vec<usize> = Vec::new();
    let mut chunk_bytes = 0;
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let size = m.size();
        if size > MAX_BATCH_BYTES {
            results[i] = Err(Error::invalid(
                "an SQS message",
                format!("{size} bytes is above SQS's 1 MiB limit"),
            ));
            continue;
        }
        if chunk.len() == MAX_BATCH_ENTRIES || chunk_bytes + size > MAX_BATCH_BYTES {
            chunks.push(std::mem::take(&mut chunk));
            chunk_bytes = 0;
        }
        chunk.push(i);
        chunk_bytes += size;
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    for chunk in chunks {
        let mut entries = Vec::with_capacity(chunk.len());
        for &i in &chunk {
            let m = &messages[i];
            let mut attrs = HashMap::new();
            for (k, v) in &m.attributes {
                match MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                {
                    Ok(a) => {
                        attrs.insert(k.clone(), a);
                    }
                    Err(e) => results[i] = Err(Error::invalid("an SQS message", e)),
                }
            }
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body)
                .set_message_group_id(m.group_id.clone())
                .set_message_deduplication_id(m.dedup_id.clone())
                .set_message_attributes((!attrs.is_empty()).then_some(attrs))
                .set_message_system_attributes(trace_attribute(trace.as_deref()))
                .build();
            match entry {
                Ok(e) => entries.push(e),
                Err(e) => results[i] = Err(Error::invalid("an SQS message", e)),
            }
        }
        if entries.is_empty() {
            continue;
        }
        match client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for failed in out.failed {
                    if let Ok(i) = failed.id.parse::<usize>() {
                        if let Some(r) = results.get_mut(i) {
                            // SenderFault: this entry is wrong and always will be.
                            *r = Err(Error::Upstream {
                                what: format!("SendMessageBatch entry ({})", failed.code),
                                detail: failed.message.unwrap_or_default(),
                                retryable: !failed.sender_fault,
                            });
                        }
                    }
                }
            }
            Err(e) => {
                let e = Error::aws("SendMessageBatch", e);
                for &i in &chunk {
                    if results[i].is_ok() {
                        results[i] = Err(e.for_another());
                    }
                }
            }
        }
    }
    results
}

/// The answer to an SQS event source: the ids of the records to retry (partial batch
/// response); every other record of the batch is deleted.
pub fn batch_response(failures: Vec<String>) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let mut r = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    r.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut f = aws_lambda_events::event::sqs::BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    r
}

/// Sets each message's visibility (receipt handle, seconds) so it comes back when it
/// should; a change that fails leaves the queue's visibility timeout to bring it back.
pub async fn hand_back(client: &aws_sdk_sqs::Client, queue_url: &str, later: &[(String, i32)]) {
    use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
    for chunk in later.chunks(MAX_BATCH_ENTRIES) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (handle, secs))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(*secs)
                    .build()
                    .ok()
            })
            .collect();
        let result = client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Error::aws("changing the visibility of messages to retry", e));
        match result {
            Ok(out) if !out.failed.is_empty() => {
                tracing::warn!(failed = out.failed.len(), "some visibility changes failed; those messages return after the queue's visibility timeout")
            }
            Err(e) => {
                tracing::warn!(error = %e, "visibility change failed; messages return after the queue's visibility timeout")
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_header_rides_as_the_aws_trace_header_system_attribute() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let attrs = trace_attribute(Some(header)).unwrap();
        let value = &attrs[&MessageSystemAttributeNameForSends::AwsTraceHeader];
        assert_eq!(value.string_value(), Some(header));
        assert_eq!(value.data_type(), "String");
        assert!(trace_attribute(None).is_none(), "no trace, no attribute");
    }
}
