//! Checking a page's `properties` and `children` as Notion does, with its size limits
//! (<https://developers.notion.com/reference/request-limits#size-limits>):
//!
//! | What | Limit |
//! | --- | --- |
//! | rich text `text.content` | 2000 characters |
//! | rich text `text.link.url` | 2000 characters |
//! | rich text `equation.expression` | 1000 characters |
//! | any array of blocks or rich text objects | 100 elements |
//! | any URL | 2000 characters |
//! | any email, any phone number | 200 characters |
//! | any multi-select | 100 options |
//! | a whole payload | 1000 block elements and 500KB |
//!
//! Over a limit Notion answers 400 `validation_error` with "more specific details in the
//! message", in the form real responses show: ``body failed validation:
//! body.properties.Event.rich_text[0].text.content.length should be ≤ `2000`, instead was
//! `2001`.`` Lengths are counted as JavaScript's `String.length` counts them (UTF-16 units):
//! Notion's validator is a TypeScript one, as the wording of its messages shows.

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::reply::{quote, NotionError};
use crate::schema::{PropertyType, Schema};

pub(crate) const TEXT_CONTENT_MAX: usize = 2000;
pub(crate) const LINK_URL_MAX: usize = 2000;
pub(crate) const EQUATION_MAX: usize = 1000;
pub(crate) const ARRAY_MAX: usize = 100;
pub(crate) const URL_MAX: usize = 2000;
pub(crate) const EMAIL_MAX: usize = 200;
pub(crate) const PHONE_MAX: usize = 200;
pub(crate) const BLOCKS_MAX: usize = 1000;
pub(crate) const PAYLOAD_MAX_BYTES: usize = 500 * 1000;
/// A block three levels down may not have children of its own: Notion answers
/// `body.children[0].bulleted_list_item.children[0].bulleted_list_item.children[0].bulleted_list_item.children
/// should be not present` (<https://developers.notion.com/reference/patch-block-children>:
/// "up to two levels of nesting" below the blocks sent).
const NESTING_MAX: usize = 3;

/// Block types whose content is a `rich_text` array.
const TEXT_BLOCKS: [&str; 11] = [
    "paragraph",
    "heading_1",
    "heading_2",
    "heading_3",
    "bulleted_list_item",
    "numbered_list_item",
    "quote",
    "to_do",
    "toggle",
    "callout",
    "code",
];

fn js_len(text: &str) -> usize {
    text.encode_utf16().count()
}

fn too_long(path: &str, max: usize, was: usize) -> NotionError {
    NotionError::validation(format!(
        "body failed validation: {path}.length should be ≤ `{max}`, instead was `{was}`."
    ))
}

fn undefined(path: &str) -> NotionError {
    NotionError::validation(format!(
        "body failed validation: {path} should be defined, instead was `undefined`."
    ))
}

fn wrong(path: &str, expected: &str, value: &Value) -> NotionError {
    NotionError::validation(format!(
        "body failed validation: {path} should be {expected}, instead was `{}`.",
        quote(value)
    ))
}

fn string_at<'a>(value: &'a Value, path: &str) -> Result<&'a str, NotionError> {
    value.as_str().ok_or_else(|| wrong(path, "a string", value))
}

fn array_at<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, NotionError> {
    let items = value
        .as_array()
        .ok_or_else(|| wrong(path, "an array", value))?;
    if items.len() > ARRAY_MAX {
        return Err(too_long(path, ARRAY_MAX, items.len()));
    }
    Ok(items)
}

/// A rich text array at `path`, returned as Notion returns rich text: with `annotations`,
/// `plain_text` and `href` filled in.
pub(crate) fn rich_text(value: &Value, path: &str) -> Result<Vec<Value>, NotionError> {
    let items = array_at(value, path)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let object = item
            .as_object()
            .ok_or_else(|| wrong(&at, "an object", item))?;
        let kind = match object.get("type") {
            Some(kind) => string_at(kind, &format!("{at}.type"))?,
            None if object.contains_key("equation") => "equation",
            None => "text",
        };
        let annotations = annotations(object.get("annotations"));
        match kind {
            "text" => {
                let text = object
                    .get("text")
                    .ok_or_else(|| undefined(&format!("{at}.text")))?;
                let content_path = format!("{at}.text.content");
                let content = text
                    .get("content")
                    .ok_or_else(|| undefined(&content_path))
                    .and_then(|c| string_at(c, &content_path))?;
                if js_len(content) > TEXT_CONTENT_MAX {
                    return Err(too_long(&content_path, TEXT_CONTENT_MAX, js_len(content)));
                }
                let link = match text.get("link") {
                    None | Some(Value::Null) => None,
                    Some(link) => {
                        let url_path = format!("{at}.text.link.url");
                        let url = link
                            .get("url")
                            .ok_or_else(|| undefined(&url_path))
                            .and_then(|u| string_at(u, &url_path))?;
                        if js_len(url) > LINK_URL_MAX {
                            return Err(too_long(&url_path, LINK_URL_MAX, js_len(url)));
                        }
                        Some(url.to_owned())
                    }
                };
                out.push(json!({
                    "type": "text",
                    "text": {"content": content, "link": link.as_ref().map(|u| json!({"url": u}))},
                    "annotations": annotations,
                    "plain_text": content,
                    "href": link,
                }));
            }
            "equation" => {
                let expression_path = format!("{at}.equation.expression");
                let expression = object
                    .get("equation")
                    .and_then(|e| e.get("expression"))
                    .ok_or_else(|| undefined(&expression_path))
                    .and_then(|e| string_at(e, &expression_path))?;
                if js_len(expression) > EQUATION_MAX {
                    return Err(too_long(&expression_path, EQUATION_MAX, js_len(expression)));
                }
                out.push(json!({
                    "type": "equation",
                    "equation": {"expression": expression},
                    "annotations": annotations,
                    "plain_text": expression,
                    "href": null,
                }));
            }
            other => {
                return Err(wrong(
                    &format!("{at}.type"),
                    "`text` or `equation`",
                    &json!(other),
                ))
            }
        }
    }
    Ok(out)
}

fn annotations(given: Option<&Value>) -> Value {
    let mut out = json!({
        "bold": false, "italic": false, "strikethrough": false,
        "underline": false, "code": false, "color": "default"
    });
    if let (Some(Value::Object(given)), Some(out)) = (given, out.as_object_mut()) {
        for (key, value) in given {
            if out.contains_key(key) {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

/// The plain text of a stored title or rich text value.
pub(crate) fn plain_text(value: &Value) -> String {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("plain_text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks `properties` against the schema and returns each given property's value (the value
/// under its type key, as a page shows it), keyed by property name. Select options are given by
/// `name` (or by the `id` of an existing option); the state resolves them.
pub(crate) fn properties(
    schema: &Schema,
    given: Option<&Value>,
    require_title: bool,
) -> Result<Vec<(String, Value)>, NotionError> {
    let given = given.ok_or_else(|| undefined("body.properties"))?;
    let given = given
        .as_object()
        .ok_or_else(|| wrong("body.properties", "an object", given))?;
    let mut values: Vec<(String, Value)> = Vec::new();
    for (key, value) in given {
        let property = schema.find(key).ok_or_else(|| {
            NotionError::validation(format!("{key} is not a property that exists."))
        })?;
        let name = &property.name;
        let kind = property.kind;
        let expected =
            || NotionError::validation(format!("{name} is expected to be {}.", kind.key()));
        let object = value.as_object().ok_or_else(expected)?;
        if let Some(declared) = object.get("type") {
            if declared.as_str() != Some(kind.key()) {
                return Err(expected());
            }
        }
        let inner = object.get(kind.key()).ok_or_else(expected)?;
        let path = format!("body.properties.{name}.{}", kind.key());
        let stored = property_value(schema, name, kind, inner, &path)?;
        values.retain(|(n, _)| n != name);
        values.push((name.clone(), stored));
    }
    if require_title {
        if let Some(title) = schema.title() {
            if !values.iter().any(|(n, _)| *n == title.name) {
                return Err(undefined(&format!("body.properties.{}", title.name)));
            }
        }
    }
    Ok(values)
}

fn property_value(
    schema: &Schema,
    name: &str,
    kind: PropertyType,
    value: &Value,
    path: &str,
) -> Result<Value, NotionError> {
    let limited_string = |max: usize| -> Result<Value, NotionError> {
        match value {
            Value::Null => Ok(Value::Null),
            Value::String(s) if js_len(s) > max => Err(too_long(path, max, js_len(s))),
            Value::String(s) => Ok(json!(s)),
            other => Err(wrong(path, "a string or `null`", other)),
        }
    };
    match kind {
        PropertyType::Title | PropertyType::RichText => Ok(Value::Array(rich_text(value, path)?)),
        PropertyType::Number => match value {
            Value::Null | Value::Number(_) => Ok(value.clone()),
            other => Err(wrong(path, "a number or `null`", other)),
        },
        PropertyType::Checkbox => match value {
            Value::Bool(_) => Ok(value.clone()),
            other => Err(wrong(path, "a boolean", other)),
        },
        PropertyType::Url => limited_string(URL_MAX),
        PropertyType::Email => limited_string(EMAIL_MAX),
        PropertyType::PhoneNumber => limited_string(PHONE_MAX),
        PropertyType::Select => match value {
            Value::Null => Ok(Value::Null),
            option => select_option(schema, name, option, path),
        },
        PropertyType::MultiSelect => {
            let items = array_at(value, path)?;
            items
                .iter()
                .enumerate()
                .map(|(i, item)| select_option(schema, name, item, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        PropertyType::Date => match value {
            Value::Null => Ok(Value::Null),
            Value::Object(date) => {
                let start_path = format!("{path}.start");
                let start = date
                    .get("start")
                    .ok_or_else(|| undefined(&start_path))
                    .and_then(|s| iso_date(s, &start_path))?;
                let end = match date.get("end") {
                    None | Some(Value::Null) => Value::Null,
                    Some(end) => json!(iso_date(end, &format!("{path}.end"))?),
                };
                let time_zone = date.get("time_zone").cloned().unwrap_or(Value::Null);
                Ok(json!({"start": start, "end": end, "time_zone": time_zone}))
            }
            other => Err(wrong(path, "an object or `null`", other)),
        },
    }
}

fn select_option(
    schema: &Schema,
    name: &str,
    option: &Value,
    path: &str,
) -> Result<Value, NotionError> {
    let object = option
        .as_object()
        .ok_or_else(|| wrong(path, "an object", option))?;
    if let Some(option_name) = object.get("name") {
        let option_name = string_at(option_name, &format!("{path}.name"))?;
        if option_name.contains(',') {
            // Notion's select option names cannot contain commas.
            return Err(NotionError::validation(format!(
                "Invalid select option, commas not allowed: {option_name}"
            )));
        }
        if js_len(option_name) > ARRAY_MAX {
            return Err(too_long(
                &format!("{path}.name"),
                ARRAY_MAX,
                js_len(option_name),
            ));
        }
        return Ok(json!({"name": option_name}));
    }
    if let Some(id) = object.get("id").and_then(Value::as_str) {
        let property = schema.find(name);
        if let Some(found) = property.and_then(|p| p.options.iter().find(|o| o.id == id)) {
            return Ok(json!({"name": found.name}));
        }
        return Err(NotionError::validation(format!(
            "body failed validation: {path}.id `{id}` is not an option of {name}."
        )));
    }
    Err(undefined(&format!("{path}.name")))
}

/// An ISO 8601 date (`2025-09-03`) or date-time (with or without an offset), as Notion's date
/// property takes them (<https://developers.notion.com/reference/page-property-values#date>).
fn iso_date(value: &Value, path: &str) -> Result<String, NotionError> {
    let text = string_at(value, path)?;
    let valid = Date::parse(text, format_description!("[year]-[month]-[day]")).is_ok()
        || OffsetDateTime::parse(text, &Rfc3339).is_ok()
        || PrimitiveDateTime::parse(
            text,
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        )
        .is_ok()
        || PrimitiveDateTime::parse(
            text,
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        )
        .is_ok()
        || PrimitiveDateTime::parse(
            text,
            format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        )
        .is_ok();
    if valid {
        Ok(text.to_owned())
    } else {
        Err(wrong(path, "a valid ISO 8601 date string", value))
    }
}

/// Checks the `children` blocks: at most 100 per array, rich text limits inside text blocks,
/// nesting, and 1000 blocks in all.
pub(crate) fn children(given: Option<&Value>) -> Result<Vec<Value>, NotionError> {
    let Some(given) = given else {
        return Ok(Vec::new());
    };
    let mut count = 0usize;
    let blocks = block_list(given, "body.children", 1, &mut count)?;
    if count > BLOCKS_MAX {
        // The docs state the limit ("a maximum size of 1000 block elements") but show no
        // message for it; this one names the count.
        return Err(NotionError::validation(format!(
            "body failed validation: the request has {count} block elements, more than the {BLOCKS_MAX} allowed."
        )));
    }
    Ok(blocks)
}

fn block_list(
    value: &Value,
    path: &str,
    depth: usize,
    count: &mut usize,
) -> Result<Vec<Value>, NotionError> {
    let items = array_at(value, path)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, block) in items.iter().enumerate() {
        *count += 1;
        let at = format!("{path}[{i}]");
        let object = block
            .as_object()
            .ok_or_else(|| wrong(&at, "an object", block))?;
        let kind = match object.get("type") {
            Some(kind) => string_at(kind, &format!("{at}.type"))?.to_owned(),
            None => object
                .keys()
                .find(|k| k.as_str() != "object")
                .cloned()
                .ok_or_else(|| undefined(&format!("{at}.type")))?,
        };
        let content_path = format!("{at}.{kind}");
        let content = object.get(&kind).ok_or_else(|| undefined(&content_path))?;
        let mut content_out = content
            .as_object()
            .cloned()
            .ok_or_else(|| wrong(&content_path, "an object", content))?;
        if TEXT_BLOCKS.contains(&kind.as_str()) {
            let text_path = format!("{content_path}.rich_text");
            let text = content
                .get("rich_text")
                .ok_or_else(|| undefined(&text_path))?;
            content_out.insert(
                "rich_text".to_owned(),
                Value::Array(rich_text(text, &text_path)?),
            );
        }
        if let Some(nested) = content.get("children") {
            let nested_path = format!("{content_path}.children");
            if depth >= NESTING_MAX {
                return Err(NotionError::validation(format!(
                    "body failed validation: {nested_path} should be not present, instead was `{}`.",
                    quote(nested)
                )));
            }
            content_out.insert(
                "children".to_owned(),
                Value::Array(block_list(nested, &nested_path, depth + 1, count)?),
            );
        }
        let mut stored = Map::new();
        stored.insert("object".to_owned(), json!("block"));
        stored.insert("type".to_owned(), json!(kind));
        stored.insert(kind, Value::Object(content_out));
        out.push(Value::Object(stored));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    fn text(content: &str) -> Value {
        json!([{"text": {"content": content}}])
    }

    #[test]
    fn content_is_counted_in_utf16_units_as_notion_counts_it() {
        // 1000 emoji are 2000 UTF-16 units: at the limit.
        let at_limit = "🙂".repeat(1000);
        assert!(rich_text(&text(&at_limit), "p").is_ok());
        let over = format!("{at_limit}a");
        let error = rich_text(&text(&over), "p").unwrap_err();
        assert_eq!(
            error.message,
            "body failed validation: p[0].text.content.length should be ≤ `2000`, instead was `2001`."
        );
    }

    #[test]
    fn rich_text_comes_back_as_notion_returns_it() {
        let out = rich_text(
            &json!([{"type": "text", "text": {"content": "hi", "link": {"url": "https://x.y"}}, "annotations": {"bold": true}}]),
            "p",
        )
        .unwrap();
        assert_eq!(out[0]["plain_text"], "hi");
        assert_eq!(out[0]["href"], "https://x.y");
        assert_eq!(out[0]["annotations"]["bold"], true);
        assert_eq!(out[0]["annotations"]["italic"], false);
    }

    #[test]
    fn dates_take_the_iso_forms_notion_takes() {
        for good in [
            "2025-09-03",
            "2025-09-03T10:00:00Z",
            "2025-09-03T10:00:00.123+02:00",
            "2025-09-03T10:00:00",
            "2025-09-03T10:00",
        ] {
            assert!(iso_date(&json!(good), "d").is_ok(), "{good}");
        }
        for bad in ["yesterday", "2025-13-01", "03/09/2025"] {
            assert!(iso_date(&json!(bad), "d").is_err(), "{bad}");
        }
    }

    #[test]
    fn blocks_nest_three_levels_and_no_deeper() {
        let leaf = json!({"paragraph": {"rich_text": text("x")}});
        let level3 = json!({"toggle": {"rich_text": text("3"), "children": [leaf]}});
        let level2 = json!({"toggle": {"rich_text": text("2"), "children": [level3]}});
        let level1 = json!([{"toggle": {"rich_text": text("1"), "children": [level2]}}]);
        let error = children(Some(&level1)).unwrap_err();
        assert!(error.message.contains(
            "body.children[0].toggle.children[0].toggle.children[0].toggle.children should be not present"
        ), "{}", error.message);
        let ok = json!([{"toggle": {"rich_text": text("1"), "children": [{"toggle": {"rich_text": text("2"), "children": [{"paragraph": {"rich_text": text("3")}}]}}]}}]);
        assert_eq!(children(Some(&ok)).unwrap().len(), 1);
    }
}
