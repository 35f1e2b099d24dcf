//! Querying a data source (<https://developers.notion.com/reference/query-a-data-source>):
//! filters (<https://developers.notion.com/reference/filter-data-source-entries>), sorts and
//! cursor pagination (<https://developers.notion.com/reference/intro#pagination>: `page_size`
//! at most 100, default 100; `has_more`, `next_cursor`, given back as `start_cursor`).
//!
//! Filters implemented: text conditions (`equals`, `does_not_equal`, `contains`,
//! `does_not_contain`, `starts_with`, `ends_with`, `is_empty`, `is_not_empty`) on title, rich
//! text, URL, email and phone properties; number comparisons; `select` `equals` /
//! `does_not_equal` / `is_empty` / `is_not_empty`; `checkbox` `equals` / `does_not_equal`;
//! and `and` / `or` compounds, nested up to two levels as the docs allow. Anything else is a
//! `validation_error` naming it, so a client never mistakes an unsupported filter for an empty
//! result.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::Value;

use crate::page::plain_text;
use crate::reply::{quote, NotionError};
use crate::schema::{PropertyType, Schema};

/// Compound filters may nest this deep (the filter docs: "nested up to two levels deep").
const COMPOUND_DEPTH_MAX: usize = 2;
const PAGE_SIZE_MAX: u64 = 100;

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Property { name: String, condition: Condition },
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Text(TextOp, String),
    TextEmpty(bool),
    Number(NumberOp, f64),
    NumberEmpty(bool),
    Select { equals: bool, name: String },
    SelectEmpty(bool),
    Checkbox { equals: bool, value: bool },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TextOp {
    Equals,
    DoesNotEqual,
    Contains,
    DoesNotContain,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumberOp {
    Equals,
    DoesNotEqual,
    GreaterThan,
    LessThan,
    GreaterThanOrEqualTo,
    LessThanOrEqualTo,
}

#[derive(Debug, Clone, PartialEq)]
enum SortKey {
    CreatedTime,
    Property(String, PropertyType),
}

/// A parsed query body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    filter: Option<Filter>,
    sorts: Vec<(SortKey, bool)>,
    page_size: usize,
    start_cursor: Option<String>,
}

/// What the query sees of a page.
pub(crate) struct Row<'a> {
    pub(crate) id: &'a str,
    pub(crate) values: &'a HashMap<String, Value>,
}

/// One page of results: indices into the rows given, and the cursor for the next page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Results {
    pub(crate) rows: Vec<usize>,
    pub(crate) next_cursor: Option<String>,
}

fn invalid(message: String) -> NotionError {
    NotionError::validation(message)
}

impl Query {
    /// Parses a query body (an absent body is `{}`) against the data source's schema.
    pub(crate) fn parse(body: &Value, schema: &Schema) -> Result<Query, NotionError> {
        let object = body.as_object().ok_or_else(|| {
            invalid(format!(
                "body failed validation: body should be an object, instead was `{}`.",
                quote(body)
            ))
        })?;
        let filter = match object.get("filter") {
            None | Some(Value::Null) => None,
            Some(filter) => Some(parse_filter(filter, schema, "body.filter", 0)?),
        };
        let sorts = match object.get("sorts") {
            None | Some(Value::Null) => Vec::new(),
            Some(sorts) => parse_sorts(sorts, schema)?,
        };
        let page_size = match object.get("page_size") {
            None | Some(Value::Null) => PAGE_SIZE_MAX,
            Some(size) => {
                let n = size.as_u64().ok_or_else(|| {
                    invalid(format!(
                        "body failed validation: body.page_size should be a number, instead was `{}`.",
                        quote(size)
                    ))
                })?;
                if n > PAGE_SIZE_MAX {
                    return Err(invalid(format!(
                        "body failed validation: body.page_size should be ≤ `{PAGE_SIZE_MAX}`, instead was `{n}`."
                    )));
                }
                if n == 0 {
                    return Err(invalid(
                        "body failed validation: body.page_size should be ≥ `1`, instead was `0`."
                            .to_owned(),
                    ));
                }
                n
            }
        };
        let start_cursor = match object.get("start_cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(cursor)) => Some(cursor.clone()),
            Some(other) => {
                return Err(invalid(format!(
                "body failed validation: body.start_cursor should be a string, instead was `{}`.",
                quote(other)
            )))
            }
        };
        Ok(Query {
            filter,
            sorts,
            page_size: usize::try_from(page_size).unwrap_or(100),
            start_cursor,
        })
    }

    /// Filters, sorts (stable: creation order breaks ties, and is the order without sorts) and
    /// pages `rows`, which come in creation order.
    pub(crate) fn run(&self, rows: &[Row<'_>]) -> Result<Results, NotionError> {
        let mut matching: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                self.filter
                    .as_ref()
                    .is_none_or(|f| rows.get(i).is_some_and(|row| matches(f, row)))
            })
            .collect();
        for (key, ascending) in self.sorts.iter().rev() {
            matching.sort_by(|&a, &b| {
                let order = compare(key, rows.get(a), rows.get(b), a, b);
                if *ascending {
                    order
                } else {
                    order.reverse()
                }
            });
        }
        let start = match &self.start_cursor {
            None => 0,
            Some(cursor) => matching
                .iter()
                .position(|&i| rows.get(i).is_some_and(|r| r.id == cursor))
                .ok_or_else(|| {
                    invalid(format!(
                        "body failed validation: body.start_cursor `{cursor}` is not a cursor of this query."
                    ))
                })?,
        };
        let page: Vec<usize> = matching
            .iter()
            .skip(start)
            .take(self.page_size)
            .copied()
            .collect();
        let next_cursor = matching
            .get(start + self.page_size)
            .and_then(|&i| rows.get(i))
            .map(|r| r.id.to_owned());
        Ok(Results {
            rows: page,
            next_cursor,
        })
    }
}

fn parse_filter(
    value: &Value,
    schema: &Schema,
    path: &str,
    depth: usize,
) -> Result<Filter, NotionError> {
    let object = value.as_object().ok_or_else(|| {
        invalid(format!(
            "body failed validation: {path} should be an object, instead was `{}`.",
            quote(value)
        ))
    })?;
    for (key, build) in [("and", Filter::And as fn(_) -> _), ("or", Filter::Or)] {
        if let Some(list) = object.get(key) {
            if depth >= COMPOUND_DEPTH_MAX {
                return Err(invalid(format!(
                    "body failed validation: {path}.{key} is nested more than {COMPOUND_DEPTH_MAX} levels deep."
                )));
            }
            let items = list.as_array().ok_or_else(|| {
                invalid(format!(
                    "body failed validation: {path}.{key} should be an array, instead was `{}`.",
                    quote(list)
                ))
            })?;
            let parsed = items
                .iter()
                .enumerate()
                .map(|(i, f)| parse_filter(f, schema, &format!("{path}.{key}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(build(parsed));
        }
    }
    let Some(key) = object.get("property").and_then(Value::as_str) else {
        return Err(invalid(format!(
            "body failed validation: {path}.property should be defined, instead was `undefined`."
        )));
    };
    let property = schema
        .find(key)
        .ok_or_else(|| invalid(format!("Could not find property with name or id: {key}")))?;
    let (filter_type, condition) = object
        .iter()
        .find(|(k, _)| k.as_str() != "property" && k.as_str() != "type")
        .ok_or_else(|| {
            invalid(format!(
                "body failed validation: {path}.{} should be defined, instead was `undefined`.",
                property.kind.key()
            ))
        })?;
    let textual = matches!(
        property.kind,
        PropertyType::Title
            | PropertyType::RichText
            | PropertyType::Url
            | PropertyType::Email
            | PropertyType::PhoneNumber
    );
    let at = format!("{path}.{filter_type}");
    let fits = match filter_type.as_str() {
        "rich_text" | "title" | "url" | "email" | "phone_number" => textual,
        other => other == property.kind.key(),
    };
    if !fits {
        return Err(invalid(format!(
            "body failed validation: {at} is not a filter for {} (a {} property).",
            property.name,
            property.kind.key()
        )));
    }
    let (op, operand) = condition
        .as_object()
        .and_then(|c| c.iter().next())
        .ok_or_else(|| {
            invalid(format!(
                "body failed validation: {at} should be an object with one condition, instead was `{}`.",
                quote(condition)
            ))
        })?;
    let unsupported = || {
        invalid(format!(
            "body failed validation: {at}.{op} is not a supported {filter_type} filter condition."
        ))
    };
    let string = || {
        operand.as_str().map(str::to_owned).ok_or_else(|| {
            invalid(format!(
                "body failed validation: {at}.{op} should be a string, instead was `{}`.",
                quote(operand)
            ))
        })
    };
    let boolean = || {
        operand.as_bool().ok_or_else(|| {
            invalid(format!(
                "body failed validation: {at}.{op} should be a boolean, instead was `{}`.",
                quote(operand)
            ))
        })
    };
    let condition = if textual {
        let op = match op.as_str() {
            "equals" => TextOp::Equals,
            "does_not_equal" => TextOp::DoesNotEqual,
            "contains" => TextOp::Contains,
            "does_not_contain" => TextOp::DoesNotContain,
            "starts_with" => TextOp::StartsWith,
            "ends_with" => TextOp::EndsWith,
            "is_empty" => return Ok(prop(property.name.clone(), Condition::TextEmpty(true))),
            "is_not_empty" => return Ok(prop(property.name.clone(), Condition::TextEmpty(false))),
            _ => return Err(unsupported()),
        };
        Condition::Text(op, string()?)
    } else {
        match property.kind {
            PropertyType::Number => {
                let op = match op.as_str() {
                    "equals" => NumberOp::Equals,
                    "does_not_equal" => NumberOp::DoesNotEqual,
                    "greater_than" => NumberOp::GreaterThan,
                    "less_than" => NumberOp::LessThan,
                    "greater_than_or_equal_to" => NumberOp::GreaterThanOrEqualTo,
                    "less_than_or_equal_to" => NumberOp::LessThanOrEqualTo,
                    "is_empty" => {
                        return Ok(prop(property.name.clone(), Condition::NumberEmpty(true)))
                    }
                    "is_not_empty" => {
                        return Ok(prop(property.name.clone(), Condition::NumberEmpty(false)))
                    }
                    _ => return Err(unsupported()),
                };
                let n = operand.as_f64().ok_or_else(|| {
                    invalid(format!(
                        "body failed validation: {at}.{op:?} should be a number, instead was `{}`.",
                        quote(operand)
                    ))
                })?;
                Condition::Number(op, n)
            }
            PropertyType::Select => match op.as_str() {
                "equals" => Condition::Select {
                    equals: true,
                    name: string()?,
                },
                "does_not_equal" => Condition::Select {
                    equals: false,
                    name: string()?,
                },
                "is_empty" => Condition::SelectEmpty(true),
                "is_not_empty" => Condition::SelectEmpty(false),
                _ => return Err(unsupported()),
            },
            PropertyType::Checkbox => match op.as_str() {
                "equals" => Condition::Checkbox {
                    equals: true,
                    value: boolean()?,
                },
                "does_not_equal" => Condition::Checkbox {
                    equals: false,
                    value: boolean()?,
                },
                _ => return Err(unsupported()),
            },
            _ => return Err(unsupported()),
        }
    };
    Ok(prop(property.name.clone(), condition))
}

fn prop(name: String, condition: Condition) -> Filter {
    Filter::Property { name, condition }
}

fn parse_sorts(value: &Value, schema: &Schema) -> Result<Vec<(SortKey, bool)>, NotionError> {
    let items = value.as_array().ok_or_else(|| {
        invalid(format!(
            "body failed validation: body.sorts should be an array, instead was `{}`.",
            quote(value)
        ))
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, sort)| {
            let path = format!("body.sorts[{i}]");
            let ascending = match sort.get("direction").and_then(Value::as_str) {
                Some("ascending") => true,
                Some("descending") => false,
                _ => {
                    return Err(invalid(format!(
                        "body failed validation: {path}.direction should be `\"ascending\"` or `\"descending\"`."
                    )))
                }
            };
            if let Some(timestamp) = sort.get("timestamp") {
                return match timestamp.as_str() {
                    // Pages are never edited here, so last edit is creation.
                    Some("created_time" | "last_edited_time") => Ok((SortKey::CreatedTime, ascending)),
                    _ => Err(invalid(format!(
                        "body failed validation: {path}.timestamp should be `\"created_time\"` or `\"last_edited_time\"`, instead was `{}`.",
                        quote(timestamp)
                    ))),
                };
            }
            let key = sort.get("property").and_then(Value::as_str).ok_or_else(|| {
                invalid(format!(
                    "body failed validation: {path}.property should be defined, instead was `undefined`."
                ))
            })?;
            let property = schema.find(key).ok_or_else(|| {
                invalid(format!("Could not find sort property with name or id: {key}"))
            })?;
            Ok((SortKey::Property(property.name.clone(), property.kind), ascending))
        })
        .collect()
}

fn text_of(row: &Row<'_>, name: &str) -> String {
    match row.values.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(value @ Value::Array(_)) => plain_text(value),
        _ => String::new(),
    }
}

fn number_of(row: &Row<'_>, name: &str) -> Option<f64> {
    row.values.get(name).and_then(Value::as_f64)
}

fn select_of(row: &Row<'_>, name: &str) -> Option<String> {
    row.values
        .get(name)
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn matches(filter: &Filter, row: &Row<'_>) -> bool {
    match filter {
        Filter::And(all) => all.iter().all(|f| matches(f, row)),
        Filter::Or(any) => any.iter().any(|f| matches(f, row)),
        Filter::Property { name, condition } => match condition {
            Condition::Text(op, wanted) => {
                let text = text_of(row, name);
                match op {
                    TextOp::Equals => text == *wanted,
                    TextOp::DoesNotEqual => text != *wanted,
                    TextOp::Contains => text.contains(wanted.as_str()),
                    TextOp::DoesNotContain => !text.contains(wanted.as_str()),
                    TextOp::StartsWith => text.starts_with(wanted.as_str()),
                    TextOp::EndsWith => text.ends_with(wanted.as_str()),
                }
            }
            Condition::TextEmpty(empty) => text_of(row, name).is_empty() == *empty,
            Condition::Number(op, wanted) => number_of(row, name).is_some_and(|n| match op {
                NumberOp::Equals => n == *wanted,
                NumberOp::DoesNotEqual => n != *wanted,
                NumberOp::GreaterThan => n > *wanted,
                NumberOp::LessThan => n < *wanted,
                NumberOp::GreaterThanOrEqualTo => n >= *wanted,
                NumberOp::LessThanOrEqualTo => n <= *wanted,
            }),
            Condition::NumberEmpty(empty) => number_of(row, name).is_none() == *empty,
            Condition::Select {
                equals,
                name: wanted,
            } => (select_of(row, name).as_deref() == Some(wanted.as_str())) == *equals,
            Condition::SelectEmpty(empty) => select_of(row, name).is_none() == *empty,
            Condition::Checkbox { equals, value } => {
                let checked = row
                    .values
                    .get(name)
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (checked == *value) == *equals
            }
        },
    }
}

fn compare(
    key: &SortKey,
    a: Option<&Row<'_>>,
    b: Option<&Row<'_>>,
    ia: usize,
    ib: usize,
) -> Ordering {
    let (Some(a), Some(b)) = (a, b) else {
        return Ordering::Equal;
    };
    match key {
        SortKey::CreatedTime => ia.cmp(&ib),
        SortKey::Property(name, PropertyType::Number) => {
            let (x, y) = (number_of(a, name), number_of(b, name));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        SortKey::Property(name, PropertyType::Select) => {
            select_of(a, name).cmp(&select_of(b, name))
        }
        SortKey::Property(name, PropertyType::Checkbox) => {
            let checked = |r: &Row<'_>| r.values.get(name).and_then(Value::as_bool);
            checked(a).cmp(&checked(b))
        }
        SortKey::Property(name, PropertyType::Date) => {
            let start = |r: &Row<'_>| {
                r.values
                    .get(name)
                    .and_then(|d| d.get("start"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            start(a).cmp(&start(b))
        }
        SortKey::Property(name, _) => text_of(a, name).cmp(&text_of(b, name)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::new(&[
            ("Name".to_owned(), PropertyType::Title),
            ("Event ID".to_owned(), PropertyType::RichText),
            ("Count".to_owned(), PropertyType::Number),
            ("Plan".to_owned(), PropertyType::Select),
        ])
        .unwrap()
    }

    fn values(event: &str, count: f64, plan: &str) -> HashMap<String, Value> {
        HashMap::from([
            ("Event ID".to_owned(), json!([{"plain_text": event}])),
            ("Count".to_owned(), json!(count)),
            ("Plan".to_owned(), json!({"name": plan})),
        ])
    }

    #[test]
    fn filters_combine_with_and_and_or() {
        let data = [
            values("e1", 1.0, "free"),
            values("e2", 5.0, "pro"),
            values("e3", 9.0, "pro"),
        ];
        let ids = ["a", "b", "c"];
        let rows: Vec<Row<'_>> = data
            .iter()
            .zip(ids)
            .map(|(v, id)| Row { id, values: v })
            .collect();
        let run = |body: Value| {
            let q = Query::parse(&body, &schema()).unwrap();
            q.run(&rows).unwrap().rows
        };
        assert_eq!(
            run(json!({"filter": {"property": "Event ID", "rich_text": {"equals": "e2"}}})),
            vec![1]
        );
        assert_eq!(
            run(json!({"filter": {"or": [
                {"property": "Event ID", "rich_text": {"equals": "e1"}},
                {"and": [
                    {"property": "Plan", "select": {"equals": "pro"}},
                    {"property": "Count", "number": {"greater_than": 6}}
                ]}
            ]}})),
            vec![0, 2]
        );
        assert_eq!(
            run(json!({"sorts": [{"property": "Count", "direction": "descending"}]})),
            vec![2, 1, 0]
        );
    }

    #[test]
    fn unknown_properties_and_mismatched_filters_are_named() {
        let err = Query::parse(
            &json!({"filter": {"property": "Nope", "rich_text": {"equals": "x"}}}),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(err.message, "Could not find property with name or id: Nope");
        let err = Query::parse(
            &json!({"filter": {"property": "Count", "rich_text": {"equals": "x"}}}),
            &schema(),
        )
        .unwrap_err();
        assert!(err.message.contains("Count"), "{}", err.message);
        let too_deep = json!({"filter": {"and": [{"or": [{"and": []}]}]}});
        assert!(Query::parse(&too_deep, &schema()).is_err());
    }

    #[test]
    fn pages_follow_the_cursor() {
        let data: Vec<_> = (0..5)
            .map(|i| values(&format!("e{i}"), f64::from(i), "p"))
            .collect();
        let ids = ["a", "b", "c", "d", "e"];
        let rows: Vec<Row<'_>> = data
            .iter()
            .zip(ids)
            .map(|(v, id)| Row { id, values: v })
            .collect();
        let first = Query::parse(&json!({"page_size": 2}), &schema())
            .unwrap()
            .run(&rows)
            .unwrap();
        assert_eq!(
            (first.rows.clone(), first.next_cursor.as_deref()),
            (vec![0, 1], Some("c"))
        );
        let last = Query::parse(&json!({"page_size": 2, "start_cursor": "e"}), &schema())
            .unwrap()
            .run(&rows)
            .unwrap();
        assert_eq!((last.rows, last.next_cursor), (vec![4], None));
    }
}
