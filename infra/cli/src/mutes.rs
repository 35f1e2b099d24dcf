//! `ingestlayer mutes …`: the mutes set with Slack's Mute button, in the stack's state table
//! (output `StateTableName`). `list` shows those in force (pipeline, key, who, until);
//! `remove PIPELINE KEY` lifts one at once.

use std::io::Write;

use ingestlayer::routing::mutes::{Mute, MuteStore};
use serde_json::{json, Value};

use crate::error::CliError;
use crate::stack::Stack;

fn store(stack: &Stack) -> Result<MuteStore, CliError> {
    Ok(MuteStore::new(
        stack.dynamo(),
        stack.output("StateTableName")?.to_owned(),
    ))
}

/// `mutes list`: the mutes in force at `now_ms`, as a table (or `--json`).
pub async fn list(
    stack: &Stack,
    now_ms: i64,
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    let mutes = store(stack)?
        .list(now_ms)
        .await
        .map_err(|e| stack.explain(e))?;
    if as_json {
        let list: Vec<Value> = mutes.iter().map(mute_json).collect();
        writeln!(out, "{}", Value::Array(list)).ok();
        return Ok(());
    }
    if mutes.is_empty() {
        writeln!(out, "no mutes: a message's Mute button in Slack sets one").ok();
        return Ok(());
    }
    write!(out, "{}", table(&mutes)).ok();
    Ok(())
}

/// `mutes remove PIPELINE KEY`: says whether there was one.
pub async fn remove(
    stack: &Stack,
    pipeline: &str,
    key: &str,
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    let removed = store(stack)?
        .remove(pipeline, key)
        .await
        .map_err(|e| stack.explain(e))?;
    if as_json {
        writeln!(
            out,
            "{}",
            json!({"pipeline": pipeline, "key": key, "removed": removed})
        )
        .ok();
    } else if removed {
        writeln!(out, "unmuted {key} for pipeline {pipeline}").ok();
    } else {
        writeln!(
            out,
            "no mute of {key} for pipeline {pipeline}: `ingestlayer {} mutes list` shows them",
            stack.target.flags()
        )
        .ok();
    }
    Ok(())
}

fn until_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn mute_json(m: &Mute) -> Value {
    json!({
        "pipeline": m.pipeline,
        "key": m.key,
        "by": m.by,
        "until": until_text(m.until_ms),
        "until_ms": m.until_ms,
        "at_ms": m.at_ms,
    })
}

/// The mutes as aligned columns: PIPELINE, KEY, BY, UNTIL.
fn table(mutes: &[Mute]) -> String {
    let rows: Vec<[String; 4]> = mutes
        .iter()
        .map(|m| {
            [
                m.pipeline.clone(),
                m.key.clone(),
                m.by.clone(),
                until_text(m.until_ms),
            ]
        })
        .collect();
    let header = ["PIPELINE", "KEY", "BY", "UNTIL"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutes_read_as_aligned_columns_with_a_utc_until() {
        let mutes = vec![
            Mute {
                pipeline: "failed-logins".into(),
                key: "acme".into(),
                until_ms: 1_700_000_000_000,
                by: "U0ADA".into(),
                at_ms: 1_699_000_000_000,
            },
            Mute {
                pipeline: "p".into(),
                key: "a-much-longer-key".into(),
                until_ms: 1_700_086_400_000,
                by: "U0BOB".into(),
                at_ms: 0,
            },
        ];
        assert_eq!(
            table(&mutes),
            "PIPELINE       KEY                BY     UNTIL\n\
             failed-logins  acme               U0ADA  2023-11-14T22:13:20Z\n\
             p              a-much-longer-key  U0BOB  2023-11-15T22:13:20Z\n"
        );
        assert_eq!(mute_json(&mutes[0])["until"], "2023-11-14T22:13:20Z");
    }
}
