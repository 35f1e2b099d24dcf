//! A data source's schema: named, typed properties
//! (<https://developers.notion.com/reference/property-object>).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::Error;

/// The property types the stand-in knows; their names are Notion's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    Title,
    RichText,
    Number,
    Select,
    MultiSelect,
    Date,
    Checkbox,
    Url,
    Email,
    PhoneNumber,
}

impl PropertyType {
    /// The type's name in JSON (`rich_text`, …), also the key holding a value of that type.
    pub fn key(self) -> &'static str {
        match self {
            PropertyType::Title => "title",
            PropertyType::RichText => "rich_text",
            PropertyType::Number => "number",
            PropertyType::Select => "select",
            PropertyType::MultiSelect => "multi_select",
            PropertyType::Date => "date",
            PropertyType::Checkbox => "checkbox",
            PropertyType::Url => "url",
            PropertyType::Email => "email",
            PropertyType::PhoneNumber => "phone_number",
        }
    }

    /// The value of a property nobody set, as Notion shows it in a page.
    pub(crate) fn empty_value(self) -> Value {
        match self {
            PropertyType::Title | PropertyType::RichText | PropertyType::MultiSelect => json!([]),
            PropertyType::Checkbox => json!(false),
            _ => Value::Null,
        }
    }
}

/// One property of a schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Property {
    /// Notion's short property ID; the title property's is always `title`.
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) kind: PropertyType,
    /// Select and multi-select options, in the order they appeared.
    pub(crate) options: Vec<SelectOption>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SelectOption {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// A data source's properties, in the order they were defined.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schema {
    pub(crate) properties: Vec<Property>,
}

impl Schema {
    /// A schema with exactly one title property (Notion's databases always have one) and
    /// unique, non-empty names.
    pub(crate) fn new(properties: &[(String, PropertyType)]) -> Result<Schema, Error> {
        let titles = properties
            .iter()
            .filter(|(_, kind)| *kind == PropertyType::Title)
            .count();
        if titles != 1 {
            return Err(Error::InvalidSchema(format!(
                "a data source needs exactly one title property, found {titles}"
            )));
        }
        let mut built: Vec<Property> = Vec::new();
        for (index, (name, kind)) in properties.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(Error::InvalidSchema("a property name is empty".to_owned()));
            }
            if built.iter().any(|p| p.name == *name) {
                return Err(Error::InvalidSchema(format!(
                    "the property name {name:?} is used twice"
                )));
            }
            let id = if *kind == PropertyType::Title {
                "title".to_owned()
            } else {
                property_id(index)
            };
            built.push(Property {
                id,
                name: name.clone(),
                kind: *kind,
                options: Vec::new(),
            });
        }
        Ok(Schema { properties: built })
    }

    /// The property named `key`, or whose ID is `key` (requests may use either).
    pub(crate) fn find(&self, key: &str) -> Option<&Property> {
        self.properties
            .iter()
            .find(|p| p.name == key)
            .or_else(|| self.properties.iter().find(|p| p.id == key))
    }

    pub(crate) fn title(&self) -> Option<&Property> {
        self.properties
            .iter()
            .find(|p| p.kind == PropertyType::Title)
    }

    /// Adds a select option the first time a page uses its name, as Notion does for
    /// integrations that may edit the schema; returns the option.
    pub(crate) fn option(&mut self, property: &str, name: &str) -> Option<SelectOption> {
        let property = self.properties.iter_mut().find(|p| p.name == property)?;
        if let Some(found) = property.options.iter().find(|o| o.name == name) {
            return Some(found.clone());
        }
        let option = SelectOption {
            id: crate::ids::new(),
            name: name.to_owned(),
        };
        property.options.push(option.clone());
        Some(option)
    }

    /// The `properties` object of a data source (or a pre-2025 database).
    pub(crate) fn to_json(&self) -> Value {
        let mut map = Map::new();
        for property in &self.properties {
            let config = match property.kind {
                PropertyType::Select | PropertyType::MultiSelect => json!({
                    "options": property.options.iter().map(|o| json!({
                        "id": o.id, "name": o.name, "color": "default", "description": null
                    })).collect::<Vec<_>>()
                }),
                PropertyType::Number => json!({"format": "number"}),
                _ => json!({}),
            };
            map.insert(
                property.name.clone(),
                json!({
                    "id": property.id,
                    "name": property.name,
                    "description": "",
                    "type": property.kind.key(),
                    property.kind.key(): config,
                }),
            );
        }
        Value::Object(map)
    }
}

/// Short IDs in the style of Notion's (`%3AUPp`-like, URL-safe).
fn property_id(index: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut n = index + 1000;
    let mut id = String::new();
    while n > 0 {
        if let Some(c) = ALPHABET.get(n % ALPHABET.len()) {
            id.push(char::from(*c));
        }
        n /= ALPHABET.len();
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(list: &[(&str, PropertyType)]) -> Vec<(String, PropertyType)> {
        list.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect()
    }

    #[test]
    fn a_schema_needs_exactly_one_title_and_unique_names() {
        assert!(Schema::new(&props(&[("Event", PropertyType::RichText)])).is_err());
        assert!(Schema::new(&props(&[
            ("A", PropertyType::Title),
            ("B", PropertyType::Title)
        ]))
        .is_err());
        assert!(Schema::new(&props(&[
            ("A", PropertyType::Title),
            ("A", PropertyType::RichText)
        ]))
        .is_err());
        let schema = Schema::new(&props(&[
            ("Name", PropertyType::Title),
            ("Event", PropertyType::RichText),
            ("Count", PropertyType::Number),
        ]))
        .ok();
        let schema = schema.as_ref();
        assert_eq!(
            schema
                .and_then(|s| s.find("title"))
                .map(|p| p.name.as_str()),
            Some("Name")
        );
        let event_id = schema.and_then(|s| s.find("Event")).map(|p| p.id.clone());
        assert_eq!(
            event_id
                .as_deref()
                .and_then(|id| schema?.find(id))
                .map(|p| p.name.as_str()),
            Some("Event")
        );
        assert_ne!(
            event_id.as_deref(),
            schema.and_then(|s| s.find("Count")).map(|p| p.id.as_str())
        );
    }
}
