//! JSON Schema per event name.
//!
//! Schemas ship in `functions/ingestlayer/schemas/<event name>.json` and are compiled into
//! the binary. An event whose name has no schema is accepted as is, unless the registry was
//! built with `required = true` (`SCHEMAS_REQUIRED=true`), which refuses unknown names.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::incoming::escape_pointer;
use crate::event::{EventName, FieldError};

/// Schemas compiled into the binary: (event name, schema JSON).
pub const BUILTIN: &[(&str, &str)] = &[(
    "feature.used",
    include_str!("../../schemas/feature.used.json"),
)];

fn invalid_schema(name: &str, reason: impl std::fmt::Display) -> Error {
    Error::invalid(format!("the schema for {name}"), reason)
}

/// Compiled validators by event name.
pub struct SchemaRegistry {
    validators: HashMap<String, jsonschema::Validator>,
    required: bool,
}

impl SchemaRegistry {
    /// Compiles the built-in schemas; a schema that does not compile is
    /// [`Error::Invalid`] naming its event.
    pub fn builtin(required: bool) -> Result<Self> {
        let mut registry = Self {
            validators: HashMap::new(),
            required,
        };
        for (name, text) in BUILTIN {
            let schema: Value = serde_json::from_str(text).map_err(|e| invalid_schema(name, e))?;
            registry.register(name, &schema)?;
        }
        Ok(registry)
    }

    /// Adds or replaces the schema for `name`.
    pub fn register(&mut self, name: &str, schema: &Value) -> Result<()> {
        let validator = jsonschema::validator_for(schema).map_err(|e| invalid_schema(name, e))?;
        self.validators.insert(name.to_owned(), validator);
        Ok(())
    }

    pub fn has_schema(&self, name: &EventName) -> bool {
        self.validators.contains_key(name.as_str())
    }

    /// Validates `data` of an event named `name`; `at` is the pointer of `data` in the
    /// request (e.g. `/data`). Returns every failing field with its pointer.
    pub fn validate(
        &self,
        name: &EventName,
        data: &Value,
        at: &str,
    ) -> Result<(), Vec<FieldError>> {
        let Some(validator) = self.validators.get(name.as_str()) else {
            if self.required {
                return Err(vec![FieldError::new(
                    at,
                    format!(
                        "no schema is registered for {name:?} and this deployment requires one"
                    ),
                )]);
            }
            return Ok(());
        };
        let errors: Vec<FieldError> = validator
            .iter_errors(data)
            .map(|e| {
                let mut pointer = format!("{at}{}", e.instance_path());
                if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
                    if let Some(p) = property.as_str() {
                        pointer = format!("{pointer}/{}", escape_pointer(p));
                    }
                }
                FieldError::new(pointer, e.to_string())
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn name(s: &str) -> EventName {
        EventName::parse(s).unwrap()
    }

    #[test]
    fn feature_used_ships_registered() {
        let r = SchemaRegistry::builtin(false).unwrap();
        let ok = json!({"user_id": "u1", "feature": "csv.export", "count": 1, "plan": "free"});
        assert!(r.validate(&name("feature.used"), &ok, "/data").is_ok());
    }

    #[test]
    fn every_failing_field_is_named_with_its_pointer() {
        let r = SchemaRegistry::builtin(false).unwrap();
        let bad = json!({"user_id": 7, "feature": "csv.export", "count": "three"});
        let errs = r
            .validate(&name("feature.used"), &bad, "/data")
            .unwrap_err();
        let mut pointers: Vec<_> = errs.iter().map(|e| e.pointer.clone()).collect();
        pointers.sort();
        assert_eq!(pointers, vec!["/data/count", "/data/plan", "/data/user_id"]);
    }

    #[test]
    fn unknown_names_pass_unless_schemas_are_required() {
        let data = json!({"anything": true});
        assert!(SchemaRegistry::builtin(false)
            .unwrap()
            .validate(&name("user.signed_up"), &data, "/data")
            .is_ok());
        let errs = SchemaRegistry::builtin(true)
            .unwrap()
            .validate(&name("user.signed_up"), &data, "/data")
            .unwrap_err();
        assert!(errs[0].message.contains("no schema"));
    }
}
