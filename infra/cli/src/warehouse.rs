//! `ingestlayer warehouse`: the Postgres every routed event lands in.
//!
//! - `connect --url postgres://… [--ca FILE]`: checks the connection string (and, when the
//!   database answers from here, the connection), then puts it in the stack's warehouse
//!   secret. The stack's `Warehouse` parameter turns the path on.
//! - `migrate`: brings the schema to this build's version (the function also does at cold
//!   start).
//! - `status`: lag (the oldest event not yet written), what waits and what is parked, rows
//!   per day, the newest row, the schema version.
//! - `backfill --since 7d`: reads the events table (within its TTL) and writes what is
//!   missing, with a progress bar; what is already there is skipped, so it can run again.
//!
//! The database is the one in the stack's secret, or `--database-url` / `DATABASE_URL` (a
//! database in a private VPC is reached from a host in it).

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ingestlayer::routing::enrich::DynamoEntities;
use ingestlayer::routing::handoff::Handoff;
use ingestlayer::warehouse::postgres::{self, Target, Warehouse};
use serde_json::json;

use crate::error::CliError;
use crate::progress::Progress;
use crate::stack::Stack;
use crate::status;

/// Rows written per INSERT by a backfill.
pub const BACKFILL_BATCH: usize = 1000;

/// The warehouse database: `database_url` when given, else the stack's secret.
pub async fn target(stack: &Stack, database_url: Option<&str>) -> Result<Target, CliError> {
    if let Some(url) = database_url.filter(|u| !u.trim().is_empty()) {
        return Ok(Target::from_secret(url)?);
    }
    let arn = stack.output("WarehouseSecretArn")?;
    let value = ingestlayer::aws::secrets::read_secret(
        &aws_sdk_secretsmanager::Client::new(&stack.sdk),
        arn,
        "the warehouse connection secret",
    )
    .await?;
    Target::from_secret(&value).map_err(|e| {
        CliError::Stack(format!(
            "{e} (the stack's warehouse secret; set it with `ingestlayer {} warehouse connect --url postgres://…`)",
            stack.target.flags()
        ))
    })
}

/// `warehouse connect`.
pub async fn connect(
    stack: &Stack,
    url: &str,
    ca_pem: Option<String>,
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    let value = match &ca_pem {
        Some(pem) => json!({"url": url, "ca_pem": pem}).to_string(),
        None => url.to_owned(),
    };
    let target = Target::from_secret(&value)?;
    // The database may be private to the stack's VPC: not answering from here is said, not
    // refused.
    let reached = match target.connect().await {
        Ok(mut client) => Some(postgres::migrate(&mut client, None).await?),
        Err(e) => {
            writeln!(
                out,
                "note: {e}; stored anyway (the function reaches the database from the stack's VPC)"
            )
            .ok();
            None
        }
    };
    let arn = stack.output("WarehouseSecretArn")?;
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| {
            ingestlayer::error::Error::aws("storing the warehouse connection string", e)
        })?;
    if as_json {
        writeln!(
            out,
            "{}",
            json!({"database": target.describe, "schema_version": reached})
        )
        .ok();
    } else {
        writeln!(out, "warehouse: {} stored in {arn}", target.describe).ok();
        if let Some(v) = reached {
            writeln!(out, "schema version {v} (migrated)").ok();
        }
        writeln!(out, "turn the path on with the stack parameter Warehouse=on (sam deploy --parameter-overrides Warehouse=on)").ok();
    }
    Ok(())
}

/// `warehouse migrate`.
pub async fn migrate(
    stack: &Stack,
    database_url: Option<&str>,
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    let target = target(stack, database_url).await?;
    let mut client = target.connect().await?;
    let before = postgres::schema_version(&client).await?;
    let after = postgres::migrate(&mut client, None).await?;
    if as_json {
        writeln!(
            out,
            "{}",
            json!({"database": target.describe, "from": before, "to": after})
        )
        .ok();
    } else if before == after {
        writeln!(
            out,
            "{}: schema at version {after}, nothing to do",
            target.describe
        )
        .ok();
    } else {
        writeln!(
            out,
            "{}: schema migrated from version {before} to {after}",
            target.describe
        )
        .ok();
    }
    Ok(())
}

/// `warehouse status`.
pub async fn status(
    stack: &Stack,
    database_url: Option<&str>,
    out: &mut dyn Write,
    as_json: bool,
) -> Result<(), CliError> {
    let target = target(stack, database_url).await?;
    let queues = status::read(stack).await?.queues;
    let queue = |name: &str| queues.iter().find(|q| q.queue == name).cloned();
    let (waiting, parked) = (queue("warehouse"), queue("warehouse DLQ"));
    let client = target.connect().await?;
    let version = postgres::schema_version(&client).await?;
    let (rows_per_day, newest) = if version == 0 {
        (Vec::new(), None)
    } else {
        let days = client
            .query(
                "SELECT to_char((received_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD'), count(*) \
                 FROM events WHERE received_at >= now() - interval '7 days' GROUP BY 1 ORDER BY 1 DESC",
                &[],
            )
            .await
            .map_err(|e| query_error("reading rows per day", &e))?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect::<Vec<_>>();
        let newest = client
            .query_one(
                "SELECT to_char(max(received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                        to_char(max(written_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM events",
                &[],
            )
            .await
            .map_err(|e| query_error("reading the newest row", &e))?;
        (
            days,
            Some((
                newest.get::<_, Option<String>>(0),
                newest.get::<_, Option<String>>(1),
            )),
        )
    };
    let lag = waiting.as_ref().map(|q| match &q.oldest {
        status::Age::Empty => "none: every event is written".to_owned(),
        status::Age::Known { seconds, .. } => format!(
            "the oldest unwritten event waits {} ({} events waiting)",
            status::human(*seconds),
            q.depth
        ),
        status::Age::Unavailable { why } => format!("{} events waiting; their age: {why}", q.depth),
    });
    if as_json {
        writeln!(
            out,
            "{}",
            json!({
                "database": target.describe,
                "schema_version": version,
                "latest_schema_version": postgres::latest_version(),
                "queue": waiting,
                "dlq": parked,
                "lag": lag,
                "rows_per_day": rows_per_day.iter().map(|(d, n)| json!({"day": d, "rows": n})).collect::<Vec<_>>(),
                "newest_received_at": newest.as_ref().and_then(|n| n.0.clone()),
                "last_written_at": newest.as_ref().and_then(|n| n.1.clone()),
            })
        )
        .ok();
        return Ok(());
    }
    writeln!(out, "warehouse   {}", target.describe).ok();
    writeln!(
        out,
        "schema      version {version} of {}{}",
        postgres::latest_version(),
        if version < postgres::latest_version() {
            " (run `ingestlayer warehouse migrate`)"
        } else {
            ""
        }
    )
    .ok();
    if let Some(lag) = &lag {
        writeln!(out, "lag         {lag}").ok();
    }
    if let Some(p) = &parked {
        writeln!(
            out,
            "parked      {}{}",
            p.depth,
            if p.depth > 0 {
                " (ingestlayer dlq list --queue warehouse)"
            } else {
                ""
            }
        )
        .ok();
    }
    if let Some((received, written)) = &newest {
        writeln!(
            out,
            "newest row  received {}, written {}",
            received.as_deref().unwrap_or("-"),
            written.as_deref().unwrap_or("-")
        )
        .ok();
    }
    writeln!(out, "rows per day (UTC, last 7 days)").ok();
    if rows_per_day.is_empty() {
        writeln!(out, "  none").ok();
    }
    for (day, n) in &rows_per_day {
        writeln!(out, "  {day}  {n}").ok();
    }
    Ok(())
}

fn query_error(what: &str, e: &tokio_postgres::Error) -> CliError {
    CliError::Lib(ingestlayer::error::Error::Upstream {
        what: what.into(),
        detail: postgres::error_chain(e),
        retryable: true,
    })
}

/// What a backfill did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Backfilled {
    /// Items of the events table read.
    pub scanned: u64,
    /// Of those, received within the window (and not expired).
    pub in_window: u64,
    pub inserted: u64,
    pub already_there: u64,
    /// Event ids Postgres refused, with why.
    pub refused: Vec<(String, String)>,
}

/// `warehouse backfill --since D`: every stored event received within `since` of `now`.
pub async fn backfill(
    stack: &Stack,
    database_url: Option<&str>,
    since: Duration,
    now: time::OffsetDateTime,
    progress: &Progress,
) -> Result<Backfilled, CliError> {
    let target = target(stack, database_url).await?;
    let warehouse = Warehouse::new(target);
    warehouse.ready().await?;
    let dynamo = stack.dynamo();
    let events_table = stack.output("EventsTableName")?.to_owned();
    let entities = DynamoEntities {
        client: dynamo.clone(),
        table: stack.output("EntitiesTableName")?.to_owned(),
    };
    let from_ms = (now - since).unix_timestamp() * 1000;
    let now_s = now.unix_timestamp();
    let mut done = Backfilled::default();
    let mut pending: Vec<Handoff> = Vec::new();
    let mut pages = dynamo
        .scan()
        .table_name(&events_table)
        .projection_expression("envelope, received_ms, expires_at")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| ingestlayer::error::Error::aws("reading the events table", e))?;
        for item in page.items() {
            done.scanned += 1;
            progress.inc(1);
            let Some(handoff) = stored(item, from_ms, now_s) else {
                continue;
            };
            done.in_window += 1;
            pending.push(handoff);
            if pending.len() == BACKFILL_BATCH {
                write(&warehouse, &entities, &mut pending, &mut done).await?;
            }
        }
    }
    write(&warehouse, &entities, &mut pending, &mut done).await?;
    progress.finish();
    Ok(done)
}

/// The stored event of an events-table item, when it was received at or after `from_ms`
/// and has not expired.
fn stored(item: &HashMap<String, AttributeValue>, from_ms: i64, now_s: i64) -> Option<Handoff> {
    let number = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    if number("received_ms").unwrap_or(0) < from_ms {
        return None;
    }
    if number("expires_at").is_some_and(|t| t < now_s) {
        return None;
    }
    let envelope = item.get("envelope")?.as_s().ok()?;
    Some(Handoff {
        event: serde_json::from_str(envelope).ok()?,
        pipelines: Vec::new(),
    })
}

async fn write(
    warehouse: &Warehouse,
    entities: &DynamoEntities,
    pending: &mut Vec<Handoff>,
    done: &mut Backfilled,
) -> Result<(), CliError> {
    if pending.is_empty() {
        return Ok(());
    }
    let refs: Vec<&Handoff> = pending.iter().collect();
    let rows = ingestlayer::warehouse::rows(&refs, entities).await?;
    let written = warehouse.write(&rows).await?;
    done.inserted += written.inserted;
    done.already_there += rows.len() as u64 - written.inserted - written.refused.len() as u64;
    for (i, why) in written.refused {
        done.refused.push((rows[i].id.clone(), why));
    }
    pending.clear();
    Ok(())
}

/// How many items the events table holds (DynamoDB's estimate, for the progress bar).
pub async fn stored_count(stack: &Stack) -> Result<u64, CliError> {
    let out = stack
        .dynamo()
        .describe_table()
        .table_name(stack.output("EventsTableName")?)
        .send()
        .await
        .map_err(|e| ingestlayer::error::Error::aws("describing the events table", e))?;
    Ok(out.table().and_then(|t| t.item_count()).unwrap_or(0).max(0) as u64)
}

/// Prints a backfill's outcome.
pub fn print_backfilled(b: &Backfilled, out: &mut dyn Write, as_json: bool) {
    if as_json {
        writeln!(out, "{}", json!(b)).ok();
        return;
    }
    writeln!(
        out,
        "backfill: {} stored events read, {} in the window: {} written, {} already there, {} refused",
        b.scanned,
        b.in_window,
        b.inserted,
        b.already_there,
        b.refused.len()
    )
    .ok();
    for (id, why) in &b.refused {
        writeln!(out, "  refused {id}: {why}").ok();
    }
}
