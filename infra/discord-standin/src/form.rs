//! Discord's `Invalid Form Body` errors: one `_errors` list per failing field, nested by path
//! (`embeds.0.fields.3.name`).
//!
//! Docs: <https://discord.com/developers/docs/reference#error-messages>.

use serde_json::{json, Map, Value};

/// The errors of one request body, by path.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct FormErrors {
    tree: Map<String, Value>,
}

impl FormErrors {
    /// Adds an error at `path` (empty: the whole body).
    pub(crate) fn add(&mut self, path: &[&str], code: &str, message: impl Into<String>) {
        let mut node = &mut self.tree;
        for segment in path {
            let child = node
                .entry((*segment).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            let Value::Object(child) = child else {
                return;
            };
            node = child;
        }
        let errors = node
            .entry("_errors")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(errors) = errors {
            errors.push(json!({"code": code, "message": message.into()}));
        }
    }

    /// `Must be N or fewer in length.` at `path`.
    pub(crate) fn too_long(&mut self, path: &[&str], max: usize) {
        self.add(
            path,
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {max} or fewer in length."),
        );
    }

    /// `This field is required` at `path`.
    pub(crate) fn required(&mut self, path: &[&str]) {
        self.add(path, "BASE_TYPE_REQUIRED", "This field is required");
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The `errors` object of the 400 body.
    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_nest_by_path_and_collect_per_field() {
        let mut errors = FormErrors::default();
        errors.too_long(&["embeds", "0", "title"], 256);
        errors.required(&["embeds", "0", "fields", "1", "name"]);
        errors.add(
            &["embeds"],
            "MAX_EMBED_SIZE_EXCEEDED",
            "Embed size exceeds maximum size of 6000",
        );
        assert_eq!(
            errors.into_value(),
            json!({"embeds": {
                "_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds maximum size of 6000"}],
                "0": {
                    "title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]},
                    "fields": {"1": {"name": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}}
                }
            }})
        );
    }
}
