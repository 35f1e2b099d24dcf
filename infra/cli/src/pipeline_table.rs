//! The pipelines table as the command line sees it: what is stored, what the files would
//! change (a plan), and writing a plan.
//!
//! Every write is conditional on the version that was read (`version`, one more on each
//! write), so two operators never lose each other's change: the second write is refused and
//! names the pipeline to look at again. A plan saved by `pipelines diff --out` keeps the
//! versions it read, so `pipelines apply --plan` writes exactly what was reviewed, or nothing
//! for a pipeline someone changed since.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use ingestlayer::routing::pipelines::MANAGED_FIELDS;

use crate::error::CliError;
use crate::pipeline_files::PipelineFile;
use crate::stack::reach;
use crate::stack::Stack;

/// A stored pipeline item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub id: String,
    /// 0 for an item written before versions (or by hand).
    pub version: u64,
    pub applied_at: Option<String>,
    /// The item without the managed fields: what a file holds.
    pub doc: Value,
}

impl Stored {
    pub fn enabled(&self) -> bool {
        self.doc.get("enabled").and_then(Value::as_bool) != Some(false)
    }
}

/// Reads every pipeline item, by id.
pub async fn read_all(stack: &Stack) -> Result<BTreeMap<String, Stored>, CliError> {
    let table = stack.output("PipelinesTableName")?;
    let items: Vec<_> = stack
        .dynamo()
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| reach(&stack.target, "reading the pipelines table", e))?;
    let mut out = BTreeMap::new();
    for item in items {
        let stored = from_item(item)?;
        out.insert(stored.id.clone(), stored);
    }
    Ok(out)
}

fn from_item(item: std::collections::HashMap<String, AttributeValue>) -> Result<Stored, CliError> {
    let mut doc: Value = serde_dynamo::from_item(item)
        .map_err(|e| ingestlayer::error::Error::invalid("a pipeline item", e))?;
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("<no id>")
        .to_owned();
    let map = doc.as_object_mut().ok_or_else(|| {
        ingestlayer::error::Error::invalid(format!("pipeline item {id}"), "is not a map")
    })?;
    let version = map
        .get("version")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    let applied_at = map
        .get("applied_at")
        .and_then(Value::as_str)
        .map(str::to_owned);
    for f in MANAGED_FIELDS {
        map.remove(*f);
    }
    Ok(Stored {
        id,
        version,
        applied_at,
        doc,
    })
}

/// What applying the files would do to one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Create {
        id: String,
        after: Value,
    },
    Update {
        id: String,
        /// The version read; the write is conditional on it.
        version: u64,
        before: Value,
        after: Value,
    },
    /// Stored and enabled but in no file (`--prune`): written with `enabled: false`, kept so
    /// its history and `explain` still resolve.
    Disable {
        id: String,
        version: u64,
        before: Value,
    },
    Unchanged {
        id: String,
    },
}

impl Change {
    pub fn id(&self) -> &str {
        match self {
            Change::Create { id, .. }
            | Change::Update { id, .. }
            | Change::Disable { id, .. }
            | Change::Unchanged { id } => id,
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            Change::Create { .. } => "create",
            Change::Update { .. } => "update",
            Change::Disable { .. } => "disable",
            Change::Unchanged { .. } => "unchanged",
        }
    }

    /// The change as a unified diff of the YAML forms (empty when unchanged).
    pub fn diff(&self) -> String {
        let (before, after) = match self {
            Change::Create { after, .. } => (String::new(), yaml(after)),
            Change::Update { before, after, .. } => (yaml(before), yaml(after)),
            Change::Disable { before, .. } => {
                let mut after = before.clone();
                after["enabled"] = Value::Bool(false);
                (yaml(before), yaml(&after))
            }
            Change::Unchanged { .. } => return String::new(),
        };
        similar::TextDiff::from_lines(&before, &after)
            .unified_diff()
            .context_radius(3)
            .header("stored", "files")
            .to_string()
    }
}

/// A pipeline document as YAML, keys in the order people write them.
pub fn yaml(doc: &Value) -> String {
    serde_norway::to_string(&ordered(doc)).unwrap_or_default()
}

/// The document in one canonical order, so a diff shows only what changed: top-level keys in
/// reading order (id, description, enabled, events, sources, steps, destinations, then any
/// other), nested maps with `type` first and the rest by name. DynamoDB keeps no key order.
pub fn ordered(doc: &Value) -> Value {
    const TOP: [&str; 7] = [
        "id",
        "description",
        "enabled",
        "events",
        "sources",
        "steps",
        "destinations",
    ];
    canonical(doc, &TOP)
}

fn canonical(v: &Value, first: &[&str]) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| {
                (
                    first.iter().position(|f| f == k).unwrap_or(first.len()),
                    k.as_str(),
                )
            });
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k], &["type"])))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| canonical(i, &["type"])).collect())
        }
        other => other.clone(),
    }
}

/// The changes that make the table match the files; with `prune`, stored pipelines in no
/// file are disabled.
pub fn plan(files: &[PipelineFile], stored: &BTreeMap<String, Stored>, prune: bool) -> Vec<Change> {
    let mut changes = Vec::new();
    for f in files {
        changes.push(match stored.get(&f.id) {
            None => Change::Create {
                id: f.id.clone(),
                after: f.doc.clone(),
            },
            Some(s) if s.doc == f.doc => Change::Unchanged { id: f.id.clone() },
            Some(s) => Change::Update {
                id: f.id.clone(),
                version: s.version,
                before: s.doc.clone(),
                after: f.doc.clone(),
            },
        });
    }
    if prune {
        for (id, s) in stored {
            if s.enabled() && !files.iter().any(|f| &f.id == id) {
                changes.push(Change::Disable {
                    id: id.clone(),
                    version: s.version,
                    before: s.doc.clone(),
                });
            }
        }
    }
    changes
}

/// One change's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    pub id: String,
    pub change: &'static str,
    /// The version written, or why nothing was.
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Written { version: u64 },
    Unchanged,
    Conflict { message: String },
}

/// Writes the plan's changes, each conditional on the version it was planned against. A
/// pipeline changed since is not written and is reported as a conflict; the others are.
pub async fn apply(stack: &Stack, changes: &[Change], now: &str) -> Result<Vec<Applied>, CliError> {
    let table = stack.output("PipelinesTableName")?;
    let dynamo = stack.dynamo();
    let mut applied = Vec::with_capacity(changes.len());
    for change in changes {
        let (doc, read) = match change {
            Change::Unchanged { id } => {
                applied.push(Applied {
                    id: id.clone(),
                    change: change.verb(),
                    outcome: Outcome::Unchanged,
                });
                continue;
            }
            Change::Create { after, .. } => (after.clone(), None),
            Change::Update { version, after, .. } => (after.clone(), Some(*version)),
            Change::Disable {
                version, before, ..
            } => {
                let mut d = before.clone();
                d["enabled"] = Value::Bool(false);
                (d, Some(*version))
            }
        };
        let next = read.unwrap_or(0) + 1;
        let mut doc = doc;
        doc["version"] = Value::from(next);
        doc["applied_at"] = Value::from(now);
        let item = serde_dynamo::to_item(&doc)
            .map_err(|e| ingestlayer::error::Error::invalid("a pipeline document", e))?;
        let put = dynamo.put_item().table_name(table).set_item(Some(item));
        let put = match read {
            None => put.condition_expression("attribute_not_exists(id)"),
            Some(0) => {
                put.condition_expression("attribute_exists(id) AND attribute_not_exists(version)")
            }
            Some(v) => put
                .condition_expression("version = :read")
                .expression_attribute_values(":read", AttributeValue::N(v.to_string())),
        };
        let outcome = match put.send().await {
            Ok(_) => Outcome::Written { version: next },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Outcome::Conflict {
                    message: format!(
                        "pipeline {} changed since it was read (someone else applied it): \
                         nothing written; run `ingestlayer pipelines diff` again",
                        change.id()
                    ),
                }
            }
            Err(e) => return Err(reach(&stack.target, "writing a pipeline", e)),
        };
        applied.push(Applied {
            id: change.id().to_owned(),
            change: change.verb(),
            outcome,
        });
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(id: &str, channel: &str) -> PipelineFile {
        PipelineFile {
            path: format!("{id}.yaml").into(),
            id: id.into(),
            doc: json!({"id": id, "enabled": true, "events": ["a.b"], "destinations": [{"type": "slack", "channel": channel}]}),
        }
    }

    fn stored(f: &PipelineFile, version: u64) -> Stored {
        Stored {
            id: f.id.clone(),
            version,
            applied_at: None,
            doc: f.doc.clone(),
        }
    }

    #[test]
    fn the_plan_creates_updates_and_leaves_alone() {
        let (a, b, c) = (file("a", "#x"), file("b", "#x"), file("c", "#x"));
        let on_table = BTreeMap::from([
            ("a".to_owned(), stored(&a, 3)),
            ("b".to_owned(), stored(&file("b", "#old"), 1)),
        ]);
        let changes = plan(&[a, b, c], &on_table, false);
        let verbs: Vec<_> = changes.iter().map(|c| (c.id(), c.verb())).collect();
        assert_eq!(
            verbs,
            [("a", "unchanged"), ("b", "update"), ("c", "create")]
        );
        let Change::Update { version, .. } = &changes[1] else {
            unreachable!()
        };
        assert_eq!(*version, 1, "the write is conditional on the version read");
        assert!(
            changes[1].diff().contains("-  channel: '#old'"),
            "{}",
            changes[1].diff()
        );
        assert!(changes[1].diff().contains("+  channel: '#x'"));
    }

    #[test]
    fn prune_disables_only_enabled_pipelines_in_no_file() {
        let a = file("a", "#x");
        let mut off = stored(&file("off", "#x"), 2);
        off.doc["enabled"] = json!(false);
        let on_table = BTreeMap::from([
            ("a".to_owned(), stored(&a, 1)),
            ("gone".to_owned(), stored(&file("gone", "#x"), 4)),
            ("off".to_owned(), off),
        ]);
        let without = plan(std::slice::from_ref(&a), &on_table, false);
        assert_eq!(without.len(), 1);
        let with = plan(&[a], &on_table, true);
        let verbs: Vec<_> = with.iter().map(|c| (c.id(), c.verb())).collect();
        assert_eq!(verbs, [("a", "unchanged"), ("gone", "disable")]);
        assert!(
            with[1].diff().contains("+enabled: false"),
            "{}",
            with[1].diff()
        );
    }

    #[test]
    fn nested_maps_diff_alike_whatever_order_they_were_stored_in() {
        let stored = json!({"id": "p", "steps": [{"expr": "x", "type": "filter.match"}]});
        let file = json!({"id": "p", "steps": [{"type": "filter.match", "expr": "x"}]});
        assert_eq!(yaml(&stored), yaml(&file));
        assert_eq!(
            yaml(&file),
            "id: p\nsteps:\n- type: filter.match\n  expr: x\n"
        );
    }

    #[test]
    fn yaml_puts_the_keys_in_reading_order() {
        let y = yaml(&json!({"destinations": [], "events": ["a"], "id": "p", "enabled": true}));
        assert_eq!(y, "id: p\nenabled: true\nevents:\n- a\ndestinations: []\n");
    }
}
