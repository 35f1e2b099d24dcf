//! DynamoDB items as typed structs: each table's item is a `Serialize`/`Deserialize` struct
//! read and written with `serde_dynamo`, so an attribute's name and type are written once.
//! Also the check every conditional write makes on its failure.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
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
