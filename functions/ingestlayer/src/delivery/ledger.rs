//! The delivery ledger: at most one Slack post per (event, pipeline, destination).
//!
//! One item per delivery key in the deliveries table (`pk`): `status` is `posting` while a
//! post may be in flight or its outcome is unknown (a timeout, a 5xx, `fatal_error`, a crash
//! between post and acknowledge), `not_posted` when the last attempt certainly did not post,
//! `delivered` (with the message `ts`) once Slack took it. Writes are conditional, so two
//! instances can never both start a post for the same key. Items expire (TTL) after 30 days.

use aws_sdk_dynamodb::types::AttributeValue;

const TTL_SECONDS: i64 = 30 * 86_400;

/// Where a delivery stands before an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Never attempted, or the last attempt certainly did not post: post now.
    Clear,
    /// A previous attempt may have posted (started at `since_ms`): look in the channel's
    /// history before posting again.
    Uncertain { since_ms: i64 },
    /// Slack already took it.
    Delivered { ts: String },
}

#[derive(Debug, thiserror::Error)]
#[error("delivery ledger: {0}")]
pub struct LedgerError(pub String);

fn err<E>(e: aws_sdk_dynamodb::error::SdkError<E>) -> LedgerError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
{
    LedgerError(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

#[derive(Clone, Debug)]
pub struct Ledger {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl Ledger {
    /// Claims `key` for an attempt at `now_ms` and says what the previous attempts left.
    /// On [`Entry::Clear`] and [`Entry::Uncertain`] the key is now `posting`.
    pub async fn begin(&self, key: &str, now_ms: i64) -> Result<Entry, LedgerError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .update_expression(
                "SET #s = :posting, since_ms = :now, expires_at = :exp ADD attempts :one",
            )
            .condition_expression("attribute_not_exists(pk) OR #s = :not_posted")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":posting", AttributeValue::S("posting".into()))
            .expression_attribute_values(":not_posted", AttributeValue::S("not_posted".into()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(
                ":exp",
                AttributeValue::N((now_ms / 1000 + TTL_SECONDS).to_string()),
            )
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        match claimed {
            Ok(_) => return Ok(Entry::Clear),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(err(e)),
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item
            .unwrap_or_default();
        let s = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            Some(AttributeValue::N(v)) => Some(v.clone()),
            _ => None,
        };
        match s("status").as_deref() {
            Some("delivered") => Ok(Entry::Delivered {
                ts: s("ts").unwrap_or_default(),
            }),
            _ => {
                let since_ms = s("since_ms").and_then(|v| v.parse().ok()).unwrap_or(0);
                // Record this attempt too; the key stays `posting`.
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(key.to_owned()))
                    .update_expression("ADD attempts :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .send()
                    .await
                    .map_err(err)?;
                Ok(Entry::Uncertain { since_ms })
            }
        }
    }

    /// Slack took the message.
    pub async fn delivered(
        &self,
        key: &str,
        ts: &str,
        channel_id: Option<&str>,
    ) -> Result<(), LedgerError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .update_expression("SET #s = :d, ts = :ts, channel_id = :c")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":d", AttributeValue::S("delivered".into()))
            .expression_attribute_values(":ts", AttributeValue::S(ts.to_owned()));
        update = update.expression_attribute_values(
            ":c",
            AttributeValue::S(channel_id.unwrap_or_default().to_owned()),
        );
        update.send().await.map_err(err)?;
        Ok(())
    }

    /// The attempt certainly did not post (refused, rate-limited, never reached Slack).
    pub async fn not_posted(&self, key: &str) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .update_expression("SET #s = :n")
            .condition_expression("#s = :posting")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":n", AttributeValue::S("not_posted".into()))
            .expression_attribute_values(":posting", AttributeValue::S("posting".into()))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    Ok(())
                } else {
                    Err(err(e))
                }
            })
    }
}
