//! DynamoDB items as typed structs: each table's item is a `Serialize`/`Deserialize` struct
//! read and written with `serde_dynamo`, so an attribute's name and type are written once.
//! Also the check every conditional write makes on its failure.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// One DynamoDB item, as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// `value` as an item; `what` names it in the error.
pub fn to_item<T: Serialize>(value: &T, what: &str) -> Result<Item> {
    serde_dynamo::to_item(value).map_err(|e| Error::invalid(what, e))
}

/// An item read from a table as `T`; `what` names it in the error.
pub fn from_item<T: DeserializeOwned>(item: Item, what: &str) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| Error::invalid(what, e))
}

/// What a GetItem returned as `T`: an absent item is `T::default()` (every attribute
/// missing).
pub fn from_item_or_default<T: DeserializeOwned + Default>(
    item: Option<Item>,
    what: &str,
) -> Result<T> {
    item.map_or_else(|| Ok(T::default()), |item| from_item(item, what))
}

/// Whether a conditional write failed because its condition did not hold (the expected
/// outcome of a lost race, not an error).
pub fn is_condition_failed<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// DynamoDB's limit of actions in one TransactWriteItems.
pub const TRANSACTION_MAX: usize = 100;

/// What became of one update given to [`transact_updates`].
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Written.
    Done,
    /// Its condition did not hold: nothing written; the item as it was, when the update
    /// asked for it (`ReturnValuesOnConditionCheckFailure::AllOld`) and it existed.
    ConditionFailed(Option<Item>),
}

/// Applies `updates` (each on its own item) in transactions of at most [`TRANSACTION_MAX`],
/// one request each in the common case. A transaction is all or nothing, so when some
/// updates' conditions do not hold, those are left out and the rest sent again: each result
/// says what became of its update. A transaction that fails otherwise (a throttle, a
/// conflict with another writer) is an error for each of its updates, none of which was
/// written; `what` names the call in it.
pub async fn transact_updates(
    client: &aws_sdk_dynamodb::Client,
    updates: Vec<Update>,
    what: &str,
) -> Vec<Result<Applied>> {
    let mut results: Vec<Option<Result<Applied>>> = updates.iter().map(|_| None).collect();
    let indexed: Vec<(usize, Update)> = updates.into_iter().enumerate().collect();
    for chunk in indexed.chunks(TRANSACTION_MAX) {
        let mut todo: Vec<&(usize, Update)> = chunk.iter().collect();
        while !todo.is_empty() {
            let items = todo
                .iter()
                .map(|(_, u)| TransactWriteItem::builder().update(u.clone()).build())
                .collect();
            let sent = client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let e = match sent {
                Ok(_) => {
                    for (i, _) in todo.drain(..) {
                        results[*i] = Some(Ok(Applied::Done));
                    }
                    break;
                }
                Err(e) => e,
            };
            let reasons = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons().to_vec()
                }
                _ => Vec::new(),
            };
            let failed: Vec<bool> = reasons
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect();
            let only_conditions = reasons.len() == todo.len()
                && failed.iter().any(|f| *f)
                && reasons
                    .iter()
                    .all(|r| matches!(r.code(), None | Some("None" | "ConditionalCheckFailed")));
            if !only_conditions {
                let e = Error::aws(what.to_owned(), e);
                for (i, _) in todo.drain(..) {
                    results[*i] = Some(Err(e.for_another()));
                }
                break;
            }
            let mut again = Vec::with_capacity(todo.len());
            for (entry, reason) in todo.into_iter().zip(&reasons) {
                if reason.code() == Some("ConditionalCheckFailed") {
                    results[entry.0] = Some(Ok(Applied::ConditionFailed(reason.item().cloned())));
                } else {
                    again.push(entry);
                }
            }
            todo = again;
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::Upstream {
                    what: what.to_owned(),
                    detail: "not sent".into(),
                    retryable: true,
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Thing {
        #[serde(default)]
        name: Option<String>,
    }

    #[test]
    fn an_absent_item_reads_as_every_attribute_missing_and_a_wrong_type_is_refused() {
        assert_eq!(
            from_item_or_default::<Thing>(None, "a thing").unwrap(),
            Thing::default()
        );
        let item = Item::from([("name".to_owned(), AttributeValue::S("a".into()))]);
        assert_eq!(
            from_item_or_default::<Thing>(Some(item.clone()), "a thing").unwrap(),
            Thing {
                name: Some("a".into())
            }
        );
        assert_eq!(
            to_item(
                &Thing {
                    name: Some("a".into())
                },
                "a thing"
            )
            .unwrap(),
            item
        );
        let wrong = Item::from([("name".to_owned(), AttributeValue::N("1".into()))]);
        let e = from_item::<Thing>(wrong, "a thing").unwrap_err();
        assert!(e.to_string().contains("a thing"), "{e}");
    }
}
