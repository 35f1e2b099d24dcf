//! `ingestlayer entities import|get`: the entities table (`pk = "<entity>#<id>"`, the other
//! attributes what `enrich.entity` attaches) from files, and one entity back.
//!
//! An import reads each chunk's current items first (the library's own batched lookup, the
//! one the pipeline function uses) and writes only the rows that differ, with BatchWriteItem
//! (25 a request, a few chunks at once), unprocessed items sent again after the library's
//! [`UNPROCESSED`] backoff. A row replaces its whole item, so importing the same file again
//! writes nothing and leaves the table as it was.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures_util::StreamExt;
use ingestlayer::aws::retry::UNPROCESSED;
use ingestlayer::routing::enrich::{DynamoEntities, EntityStore};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::CliError;
use crate::progress::{rate, Progress};
use crate::rows::{self, EntityName, Format, Rejected, Row};
use crate::stack::{reach, Stack};

/// Rows read and compared per BatchGetItem (its limit).
const CHUNK: usize = 100;
/// BatchWriteItem's limit.
const BATCH_WRITE_MAX: usize = 25;
/// Chunks in flight at once.
const CONCURRENT_CHUNKS: usize = 4;

/// What an import did.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub file: String,
    pub entity: String,
    pub table: String,
    /// Data rows in the file.
    pub read: usize,
    /// Rows put because their item was missing or different.
    pub written: usize,
    /// Rows whose item was already exactly this.
    pub unchanged: usize,
    /// Rows not imported: bad input, or refused by DynamoDB.
    pub rejected: Vec<Rejected>,
    /// Rows DynamoDB left unprocessed after every retry (throttling): import the file again.
    pub failed: Vec<Rejected>,
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// Which table and how to reach it, for the chunks.
struct Target<'a> {
    stack: &'a Stack,
    client: aws_sdk_dynamodb::Client,
    table: String,
    entity: &'a EntityName,
}

#[derive(Default)]
struct ChunkOutcome {
    written: usize,
    unchanged: usize,
    rejected: Vec<Rejected>,
    failed: Vec<Rejected>,
}

/// `entities import FILE --entity E --key K`: parses the file, then writes what differs.
/// `progress` is made from the number of valid rows.
pub async fn import(
    stack: &Stack,
    file: &Path,
    entity: &EntityName,
    key: &str,
    progress: impl FnOnce(u64) -> Progress,
) -> Result<ImportReport, CliError> {
    let started = Instant::now();
    let format = Format::from_path(file)?;
    let text = std::fs::read(file).map_err(|source| CliError::Io {
        what: "reading",
        path: file.to_owned(),
        source,
    })?;
    let parsed = rows::parse(format, &text, entity, key)?;
    drop(text);
    let table = stack.output("EntitiesTableName")?.to_owned();
    let client = stack.dynamo();
    client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .map_err(|e| reach(&stack.target, "reading the entities table", e))?;
    let target = Target {
        stack,
        client,
        table: table.clone(),
        entity,
    };
    let progress = progress(parsed.rows.len() as u64);
    let mut report = ImportReport {
        file: file.display().to_string(),
        entity: entity.as_str().to_owned(),
        table,
        read: parsed.read,
        written: 0,
        unchanged: 0,
        rejected: parsed.rejected,
        failed: Vec::new(),
        seconds: 0.0,
        rows_per_second: 0.0,
    };
    let mut chunks = futures_util::stream::iter(parsed.rows.chunks(CHUNK))
        .map(|chunk| import_chunk(&target, chunk, &progress))
        .buffer_unordered(CONCURRENT_CHUNKS);
    while let Some(outcome) = chunks.next().await {
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        report.written += outcome.written;
        report.unchanged += outcome.unchanged;
        report.rejected.extend(outcome.rejected);
        report.failed.extend(outcome.failed);
    }
    progress.finish();
    report.rejected.sort_by_key(|r| r.line);
    report.failed.sort_by_key(|r| r.line);
    let elapsed = started.elapsed();
    report.seconds = elapsed.as_secs_f64();
    report.rows_per_second = rate(report.read as u64, elapsed);
    Ok(report)
}

/// One chunk: read the items, write those that differ.
async fn import_chunk(
    t: &Target<'_>,
    chunk: &[Row],
    progress: &Progress,
) -> Result<ChunkOutcome, CliError> {
    let keys: Vec<String> = chunk.iter().map(|r| t.entity.key(&r.id)).collect();
    let stored = DynamoEntities {
        client: t.client.clone(),
        table: t.table.clone(),
    }
    .get_many(&keys)
    .await?;
    let mut outcome = ChunkOutcome::default();
    let mut changed: Vec<(&Row, String)> = Vec::new();
    for (row, pk) in chunk.iter().zip(keys) {
        if stored.get(&pk) == Some(&row.attributes) {
            outcome.unchanged += 1;
        } else {
            changed.push((row, pk));
        }
    }
    progress.inc(outcome.unchanged as u64);
    for batch in changed.chunks(BATCH_WRITE_MAX) {
        write_batch(t, batch, &mut outcome).await?;
        progress.inc(batch.len() as u64);
    }
    Ok(outcome)
}

/// The item a row becomes.
fn item(row: &Row, pk: &str) -> Result<HashMap<String, AttributeValue>, String> {
    let mut item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(&row.attributes).map_err(|e| format!("cannot be stored: {e}"))?;
    item.insert("pk".to_owned(), AttributeValue::S(pk.to_owned()));
    Ok(item)
}

/// One BatchWriteItem of at most 25 rows, its unprocessed items retried; a batch DynamoDB
/// refuses as invalid is written again row by row, so the row it refuses is rejected with its
/// line and the others are written.
async fn write_batch(
    t: &Target<'_>,
    batch: &[(&Row, String)],
    outcome: &mut ChunkOutcome,
) -> Result<(), CliError> {
    let mut lines: HashMap<&str, usize> = HashMap::new();
    let mut requests = Vec::new();
    for (row, pk) in batch {
        let put = item(row, pk).and_then(|i| {
            PutRequest::builder()
                .set_item(Some(i))
                .build()
                .map_err(|e| e.to_string())
        });
        match put {
            Ok(p) => {
                lines.insert(pk, row.line);
                requests.push(WriteRequest::builder().put_request(p).build());
            }
            Err(reason) => outcome.rejected.push(Rejected {
                line: row.line,
                reason,
            }),
        }
    }
    let sent = requests.len();
    let mut attempt = 0;
    while !requests.is_empty() {
        attempt += 1;
        let Some(wait) = UNPROCESSED.before(attempt) else {
            for w in &requests {
                outcome.failed.push(Rejected {
                    line: line_of(w, &lines),
                    reason: format!(
                        "DynamoDB left the write unprocessed after {} attempts (throttled): \
                         import the file again",
                        UNPROCESSED.attempts()
                    ),
                });
            }
            outcome.written += sent - requests.len();
            return Ok(());
        };
        tokio::time::sleep(wait).await;
        let answer = t
            .client
            .batch_write_item()
            .request_items(&t.table, std::mem::take(&mut requests))
            .send()
            .await;
        match answer {
            Ok(out) => {
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&t.table))
                    .unwrap_or_default();
            }
            Err(e) if is_validation(&e) && attempt == 1 => {
                return write_one_by_one(t, batch, &lines, outcome).await;
            }
            Err(e) => return Err(reach(&t.stack.target, "writing entities", e)),
        }
    }
    outcome.written += sent;
    Ok(())
}

async fn write_one_by_one(
    t: &Target<'_>,
    batch: &[(&Row, String)],
    lines: &HashMap<&str, usize>,
    outcome: &mut ChunkOutcome,
) -> Result<(), CliError> {
    for (row, pk) in batch {
        if !lines.contains_key(pk.as_str()) {
            continue;
        }
        let Ok(i) = item(row, pk) else { continue };
        match t
            .client
            .put_item()
            .table_name(&t.table)
            .set_item(Some(i))
            .send()
            .await
        {
            Ok(_) => outcome.written += 1,
            Err(e) if is_validation(&e) => outcome.rejected.push(Rejected {
                line: row.line,
                reason: format!(
                    "DynamoDB refused it: {}",
                    e.as_service_error()
                        .and_then(|s| aws_sdk_dynamodb::error::ProvideErrorMetadata::message(s))
                        .unwrap_or("ValidationException")
                ),
            }),
            Err(e) => return Err(reach(&t.stack.target, "writing an entity", e)),
        }
    }
    Ok(())
}

fn line_of(w: &WriteRequest, lines: &HashMap<&str, usize>) -> usize {
    w.put_request()
        .and_then(|p| p.item().get("pk"))
        .and_then(|v| v.as_s().ok())
        .and_then(|pk| lines.get(pk.as_str()))
        .copied()
        .unwrap_or_default()
}

fn is_validation<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ValidationException")
}

/// Rejected rows listed in text output; the rest are counted (all are in `--json`).
const LISTED: usize = 50;

/// Prints the report: rejected rows with their lines, then the totals and the rate.
pub fn print_report(r: &ImportReport, out: &mut dyn Write, as_json: bool) {
    if as_json {
        writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default()).ok();
        return;
    }
    for (what, list) in [("rejected", &r.rejected), ("failed", &r.failed)] {
        for x in list.iter().take(LISTED) {
            writeln!(out, "{}:{}: {what}: {}", r.file, x.line, x.reason).ok();
        }
        if list.len() > LISTED {
            writeln!(
                out,
                "… and {} more {what} rows (all of them with --json)",
                list.len() - LISTED
            )
            .ok();
        }
    }
    writeln!(
        out,
        "{} rows read, {} written, {} unchanged, {} rejected{} in {:.1} s ({:.0} rows/s) into {} as {}#<id>",
        r.read,
        r.written,
        r.unchanged,
        r.rejected.len(),
        if r.failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed", r.failed.len())
        },
        r.seconds,
        r.rows_per_second,
        r.table,
        r.entity,
    )
    .ok();
}

/// The command's outcome: rejected rows make it fail (exit 2) after the good rows are
/// written, unprocessed ones too (exit 1), each saying what to do.
pub fn verdict(r: &ImportReport) -> Result<(), CliError> {
    if !r.failed.is_empty() {
        return Err(CliError::Stack(format!(
            "{} rows were left unprocessed by DynamoDB (throttled): import the file again; \
             the rows already written are left as they are",
            r.failed.len()
        )));
    }
    if !r.rejected.is_empty() {
        return Err(CliError::Usage(format!(
            "{} rows of {} were rejected (listed above with their lines): fix them and import \
             the file again; the rows already written are left as they are",
            r.rejected.len(),
            r.file
        )));
    }
    Ok(())
}

/// `entities get ENTITY KEY`: the stored item, read consistently.
pub async fn get(
    stack: &Stack,
    entity: &EntityName,
    id: &str,
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    let table = stack.output("EntitiesTableName")?;
    let pk = entity.key(id);
    let answer = stack
        .dynamo()
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.clone()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| reach(&stack.target, "reading the entities table", e))?;
    let Some(item) = answer.item else {
        return Err(CliError::Stack(format!(
            "no {} {id:?} (key {pk}) in the entities table {table}: import it with \
             `ingestlayer entities import FILE --entity {}`",
            entity.as_str(),
            entity.as_str()
        )));
    };
    let mut attrs: Map<String, Value> = serde_dynamo::from_item(item).map_err(|e| {
        CliError::Stack(format!(
            "the item {pk} in {table} is not readable as JSON: {e}"
        ))
    })?;
    attrs.remove("pk");
    if as_json {
        writeln!(
            out,
            "{}",
            json!({"entity": entity.as_str(), "id": id, "pk": pk, "attributes": attrs})
        )
        .ok();
        return Ok(());
    }
    writeln!(out, "{pk}").ok();
    let width = attrs.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    for (k, v) in &attrs {
        let shown = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        writeln!(out, "  {k:<width$}  {shown}").ok();
    }
    Ok(())
}
