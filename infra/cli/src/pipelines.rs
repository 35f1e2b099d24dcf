//! `ingestlayer pipelines …`: validate, diff, apply, list and export pipeline files.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::CliError;
use crate::pipeline_files::{load_all, PipelineFile};
use crate::pipeline_table::{self, yaml, Applied, Change, Outcome, Stored};
use crate::stack::Stack;

/// `pipelines validate PATH…`: every file checked, every problem on its own line.
pub fn validate(paths: &[PathBuf], out: &mut dyn Write, as_json: bool) -> Result<(), CliError> {
    let files = load_all(paths)?;
    if as_json {
        let list: Vec<Value> = files
            .iter()
            .map(|f| json!({"path": f.path, "id": f.id, "valid": true}))
            .collect();
        writeln!(out, "{}", Value::Array(list)).ok();
    } else {
        for f in &files {
            writeln!(out, "ok  {}  {}", f.path.display(), f.id).ok();
        }
    }
    Ok(())
}

/// The plan for `paths` against the stack.
pub async fn plan(stack: &Stack, paths: &[PathBuf], prune: bool) -> Result<Vec<Change>, CliError> {
    let files = load_all(paths)?;
    let stored = pipeline_table::read_all(stack).await?;
    Ok(pipeline_table::plan(&files, &stored, prune))
}

/// Prints a plan: one line per pipeline, then the diff of each change.
pub fn print_plan(changes: &[Change], out: &mut dyn Write, as_json: bool) {
    if as_json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(changes).unwrap_or_default()
        )
        .ok();
        return;
    }
    for c in changes {
        writeln!(out, "{:<9}  {}", c.verb(), c.id()).ok();
    }
    for c in changes {
        let d = c.diff();
        if !d.is_empty() {
            writeln!(out, "\n{} {}:\n{d}", c.verb(), c.id()).ok();
        }
    }
    let n = changes
        .iter()
        .filter(|c| !matches!(c, Change::Unchanged { .. }))
        .count();
    writeln!(out, "{n} to change, {} unchanged", changes.len() - n).ok();
}

/// Saves a plan for `apply --plan`.
pub fn save_plan(path: &Path, changes: &[Change]) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(changes).unwrap_or_default();
    std::fs::write(path, text).map_err(|source| CliError::Io {
        what: "writing the plan",
        path: path.to_owned(),
        source,
    })
}

/// Reads a plan saved by `diff --out`.
pub fn read_plan(path: &Path) -> Result<Vec<Change>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what: "reading the plan",
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "{} is not a plan written by `ingestlayer pipelines diff --out`: {e}",
            path.display()
        ))
    })
}

/// Prints what `apply` did; a conflict makes the whole command fail after the others are
/// written.
pub fn report_applied(
    applied: &[Applied],
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    if as_json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(applied).unwrap_or_default()
        )
        .ok();
    } else {
        for a in applied {
            match &a.outcome {
                Outcome::Written { version } => {
                    writeln!(out, "{:<9}  {}  (version {version})", past(a.change), a.id).ok()
                }
                Outcome::Unchanged => writeln!(out, "unchanged  {}", a.id).ok(),
                Outcome::Conflict { .. } => writeln!(out, "refused    {}", a.id).ok(),
            };
        }
        if applied
            .iter()
            .any(|a| matches!(a.outcome, Outcome::Written { .. }))
        {
            writeln!(
                out,
                "the pipeline function picks the change up within its cache time (30 s deployed, 5 s in make dev)"
            )
            .ok();
        }
    }
    let conflicts: Vec<String> = applied
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Conflict { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(CliError::Conflict(conflicts.join("\n")))
    }
}

fn past(verb: &str) -> &'static str {
    match verb {
        "create" => "created",
        "update" => "updated",
        "disable" => "disabled",
        _ => "unchanged",
    }
}

/// Applies the files at `paths` (or a saved plan) and returns what was written.
pub async fn apply_files(
    stack: &Stack,
    paths: &[PathBuf],
    prune: bool,
    now: &str,
) -> Result<Vec<Applied>, CliError> {
    let changes = plan(stack, paths, prune).await?;
    pipeline_table::apply(stack, &changes, now).await
}

/// `pipelines list`.
pub async fn list(stack: &Stack, out: &mut dyn Write, as_json: bool) -> Result<(), CliError> {
    let stored = pipeline_table::read_all(stack).await?;
    if as_json {
        let list: Vec<Value> = stored.values().map(summary).collect();
        writeln!(out, "{}", Value::Array(list)).ok();
        return Ok(());
    }
    if stored.is_empty() {
        writeln!(
            out,
            "no pipelines: write one in pipelines/ and `ingestlayer pipelines apply pipelines/`"
        )
        .ok();
    }
    for s in stored.values() {
        let v = summary(s);
        let routes = ingestlayer::routing::pipelines::summary(&s.doc);
        writeln!(
            out,
            "{:<32}  {:<8}  v{:<3}  {}  →  {}",
            s.id,
            v["state"].as_str().unwrap_or_default(),
            s.version,
            routes.events.join(", "),
            routes.channels.join(", "),
        )
        .ok();
    }
    Ok(())
}

/// One pipeline's line: id, state (enabled, disabled, or invalid with the reason), version,
/// events, channels.
fn summary(s: &Stored) -> Value {
    let state = match ingestlayer::routing::pipelines::Pipeline::from_json(&s.doc) {
        Ok(Some(_)) => json!("enabled"),
        Ok(None) => json!("disabled"),
        Err(_) => json!("invalid"),
    };
    let problem = ingestlayer::routing::pipelines::Pipeline::from_json(&s.doc)
        .err()
        .map(|e| format!("{}: {}", e.field, e.message));
    let routes = ingestlayer::routing::pipelines::summary(&s.doc);
    json!({
        "id": s.id,
        "state": state,
        "problem": problem,
        "version": s.version,
        "applied_at": s.applied_at,
        "events": routes.events,
        "channels": routes.channels,
    })
}

/// `pipelines export DIR`: every stored pipeline as `DIR/<id>.yaml`, in the files' form.
pub async fn export(stack: &Stack, dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let stored = pipeline_table::read_all(stack).await?;
    std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
        what: "creating",
        path: dir.to_owned(),
        source,
    })?;
    for s in stored.values() {
        if ingestlayer::ids::PipelineId::parse(&s.id).is_err() {
            writeln!(
                out,
                "skipped {:?}: not a pipeline id that can name a file",
                s.id
            )
            .ok();
            continue;
        }
        let path = dir.join(format!("{}.yaml", s.id));
        std::fs::write(&path, yaml(&s.doc)).map_err(|source| CliError::Io {
            what: "writing",
            path: path.clone(),
            source,
        })?;
        writeln!(out, "wrote {}", path.display()).ok();
    }
    Ok(())
}

/// Reads files as `apply` would, for other commands (`pipelines test`).
pub fn load(paths: &[PathBuf]) -> Result<Vec<PipelineFile>, CliError> {
    load_all(paths)
}
