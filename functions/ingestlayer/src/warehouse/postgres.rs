//! The warehouse database: a Postgres the user brings, reached over TLS that is verified by
//! default, its schema kept by versioned migrations (refinery, `migrations/` beside this
//! crate), and rows written a batch at a time with COPY.
//!
//! **Connection strings.** The secret holds a `postgres://` URL, or JSON
//! `{"url": "postgres://…", "ca_pem": "-----BEGIN CERTIFICATE-----…"}` for a database whose
//! certificate a public CA did not sign (RDS and Aurora: Amazon's RDS CA bundle). TLS is
//! always verified, the chain and the host name, against webpki's roots, or only against
//! the CA given by `ca_pem` or the URL's `sslrootcert=<file>`. `sslmode=disable` is the one
//! way to turn TLS off (a database on loopback); every other `sslmode` (`require`,
//! `verify-ca`, `verify-full`, `prefer`) means verified TLS here. libpq's `require` does not
//! verify; ours does.
//!
//! **Writes.** A batch is one binary `COPY` straight into `events`, which writes all of it
//! or nothing. When a row of it is there already (a redelivered message, a backfill), the
//! batch is staged instead: `COPY` into a session's temporary table, then one `INSERT …
//! SELECT … ON CONFLICT (id, received_at) DO NOTHING`, in one transaction, so the rows
//! already there are skipped. Either way the rows cross once, in COPY's binary format (the
//! fastest way into Postgres), with a round trip per step rather than per row. An event's `received_at` never changes, so `(id,
//! received_at)` is its identity (a partitioned table's keys must hold the partition key).
//! When Postgres refuses the batch for a row's data (a value it cannot hold, an index entry
//! too large), the rows are written one at a time so that only the refused ones fail; when
//! the database cannot be reached, the whole batch fails and is retried.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A database to connect to: its settings without the TLS parameters libpq puts in the
/// URL, and how its certificate is checked.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    /// `None`: TLS is off (`sslmode=disable`).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `host:port/database`, for logs and errors (never the password).
    pub describe: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.describe)
    }
}

/// How long a connection attempt may take before the batch is retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Target {
    /// Reads a secret's value: a URL, or `{"url", "ca_pem"}`.
    pub fn from_secret(value: &str) -> Result<Self> {
        let value = value.trim();
        if value.starts_with('{') {
            #[derive(serde::Deserialize)]
            struct Stored {
                url: String,
                #[serde(default)]
                ca_pem: Option<String>,
            }
            let stored: Stored = serde_json::from_str(value).map_err(|e| {
                Error::invalid(
                    "the warehouse secret",
                    format!(
                        "it is JSON but not {{\"url\": \"postgres://…\", \"ca_pem\": \"…\"}}: {e}"
                    ),
                )
            })?;
            Self::parse(&stored.url, stored.ca_pem.as_deref())
        } else {
            Self::parse(value, None)
        }
    }

    /// Parses a `postgres://` URL; `ca_pem` (or the URL's `sslrootcert` file) replaces the
    /// public roots.
    pub fn parse(url: &str, ca_pem: Option<&str>) -> Result<Self> {
        let bad = |reason: String| Error::invalid("the warehouse connection string", reason);
        if url.trim().is_empty() {
            return Err(bad(
                "it is empty: put the database's postgres:// URL in the warehouse secret \
                 (`ingestlayer warehouse connect --url …`)"
                    .into(),
            ));
        }
        let mut parsed =
            url::Url::parse(url).map_err(|e| bad(format!("it is not a postgres:// URL ({e})")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad(format!(
                "its scheme is {}, not postgres://",
                parsed.scheme()
            )));
        }
        let mut mode = None;
        let mut root_file = None;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| match k.as_ref() {
                "sslmode" => {
                    mode = Some(v.into_owned());
                    None
                }
                "sslrootcert" => {
                    root_file = Some(v.into_owned());
                    None
                }
                _ => Some((k.into_owned(), v.into_owned())),
            })
            .collect();
        // Percent-encoded as libpq reads it (`+` would stay a plus, not a space).
        let enc = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let query: Vec<String> = kept
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        parsed.set_query((!query.is_empty()).then(|| query.join("&")).as_deref());
        let mut config =
            tokio_postgres::Config::from_str(parsed.as_str()).map_err(|e| bad(e.to_string()))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("ingestlayer-warehouse");
        let tls = match mode.as_deref() {
            Some("disable") => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            None | Some("allow" | "prefer" | "require" | "verify-ca" | "verify-full") => {
                config.ssl_mode(SslMode::Require);
                let pem = match (ca_pem, &root_file) {
                    (Some(pem), _) => Some(pem.to_owned()),
                    (None, Some(file)) => Some(std::fs::read_to_string(file).map_err(|e| {
                        bad(format!("sslrootcert {file} cannot be read: {e}"))
                    })?),
                    (None, None) => None,
                };
                Some(Arc::new(tls_config(pem.as_deref())?))
            }
            Some(other) => {
                return Err(bad(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        };
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let describe = format!(
            "{host}:{port}/{}{}",
            config.get_dbname().unwrap_or("postgres"),
            if tls.is_some() { "" } else { " (no TLS)" }
        );
        Ok(Self {
            config,
            tls,
            describe,
        })
    }

    /// The same server, another database (the tests give each test its own).
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut other = self.clone();
        other.config.dbname(dbname);
        if let Some((at, _)) = self.describe.split_once('/') {
            other.describe = format!("{at}/{dbname}");
        }
        other
    }

    /// Opens a connection; its driver runs on its own task until the connection closes.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let unreachable = |e: tokio_postgres::Error| Error::Upstream {
            what: format!("connecting to the warehouse {}", self.describe),
            detail: error_chain(&e),
            retryable: true,
        };
        match &self.tls {
            Some(tls) => {
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) =
                    self.config.connect(connector).await.map_err(unreachable)?;
                tokio::spawn(drive(connection));
                Ok(client)
            }
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(unreachable)?;
                tokio::spawn(drive(connection));
                Ok(client)
            }
        }
    }
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio_postgres::tls::TlsStream + Unpin,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %error_chain(&e), "warehouse connection closed");
    }
}

/// A client TLS configuration that verifies the chain and the host name: against `ca_pem`
/// alone when given, else webpki's roots (Mozilla's).
fn tls_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| Error::invalid("the warehouse CA certificate", e.to_string()))?;
            if certs.is_empty() {
                return Err(Error::invalid(
                    "the warehouse CA certificate",
                    "it holds no PEM certificate",
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::invalid("the warehouse CA certificate", e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("the warehouse TLS settings", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A Postgres error with its causes (the TLS or I/O error under "error connecting").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// The latest migration version this build knows.
pub fn latest_version() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// Brings the schema to `target` (the latest when `None`), under an advisory lock so that
/// instances starting together migrate once. Returns the version now applied.
pub async fn migrate(client: &mut tokio_postgres::Client, target: Option<i32>) -> Result<i32> {
    let failed = |e: &dyn std::fmt::Display| Error::Upstream {
        what: "migrating the warehouse schema".into(),
        detail: e.to_string(),
        retryable: true,
    };
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| failed(&error_chain(&e)))?;
    let mut runner = embedded::migrations::runner();
    if let Some(v) = target {
        runner = runner.set_target(refinery::Target::Version(v));
    }
    let ran = runner.run_async(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    ran.map_err(|e| failed(&e))?;
    unlocked.map_err(|e| failed(&error_chain(&e)))?;
    schema_version(client).await
}

/// The applied migration version (0 for an empty database).
pub async fn schema_version(client: &tokio_postgres::Client) -> Result<i32> {
    let exists = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| database("reading the schema version", &e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM refinery_schema_history",
            &[],
        )
        .await
        .map_err(|e| database("reading the schema version", &e))?;
    Ok(row.get(0))
}

/// The advisory lock key migrations hold ("ingestlayer" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x696e_6765_7374_6c61;

/// An error from a query, as retryable: the database is the one to come back.
fn database(what: &str, e: &tokio_postgres::Error) -> Error {
    Error::Upstream {
        what: what.into(),
        detail: error_chain(e),
        retryable: true,
    }
}

/// One `events` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub source: String,
    pub received_at: OffsetDateTime,
    pub occurred_at: Option<OffsetDateTime>,
    pub user_id: Option<String>,
    pub account_id: Option<String>,
    pub plan: Option<String>,
    pub data: Value,
    pub entities: Value,
    pub pipelines: Value,
}

/// What became of a batch: how many rows were new, and the rows Postgres refused for their
/// data (index into the batch, and why). The rest were there already.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Written {
    pub inserted: u64,
    pub refused: Vec<(usize, String)>,
}

/// A connection to the warehouse, opened (and the schema migrated) on first use and opened
/// again after it breaks. One per function instance: a Lambda instance handles one batch at
/// a time.
pub struct Warehouse {
    pub target: Target,
    client: Mutex<Option<tokio_postgres::Client>>,
    /// Monthly partitions known to exist.
    partitions: Mutex<HashSet<(i32, u8)>>,
}

impl Warehouse {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            client: Mutex::new(None),
            partitions: Mutex::new(HashSet::new()),
        }
    }

    /// Opens the connection now and migrates the schema (cold start, `warehouse migrate`).
    pub async fn ready(&self) -> Result<i32> {
        let mut slot = self.client.lock().await;
        let client = self.open(&mut slot).await?;
        schema_version(client).await
    }

    async fn open<'a>(
        &self,
        slot: &'a mut Option<tokio_postgres::Client>,
    ) -> Result<&'a mut tokio_postgres::Client> {
        if slot.as_ref().is_some_and(|c| c.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            let mut client = self.target.connect().await?;
            let version = migrate(&mut client, None).await?;
            tracing::info!(database = %self.target.describe, version, "warehouse connected");
            *slot = Some(client);
        }
        slot.as_mut()
            .ok_or_else(|| Error::reason("no warehouse connection"))
    }

    /// Writes `rows` (see the module's opening comment). `Err` when the database could not
    /// take the batch at all: nothing of it is known to be written, and all of it is
    /// retried (rows already written are skipped then).
    pub async fn write(&self, rows: &[Row]) -> Result<Written> {
        if rows.is_empty() {
            return Ok(Written::default());
        }
        let mut slot = self.client.lock().await;
        let client = self.open(&mut slot).await?;
        let outcome = self.write_on(client, rows).await;
        if outcome.is_err() && client.is_closed() {
            *slot = None;
        }
        outcome
    }

    async fn write_on(&self, client: &tokio_postgres::Client, rows: &[Row]) -> Result<Written> {
        self.ensure_partitions(client, rows).await?;
        match insert(client, rows).await {
            Ok(inserted) => Ok(Written {
                inserted,
                refused: Vec::new(),
            }),
            Err(e) if refused_for_data(&e) => {
                tracing::warn!(rows = rows.len(), error = %error_chain(&e), "Postgres refused the batch for a row's data; writing its rows one at a time");
                let mut written = Written::default();
                for (i, row) in rows.iter().enumerate() {
                    match insert(client, std::slice::from_ref(row)).await {
                        Ok(n) => written.inserted += n,
                        Err(e) if refused_for_data(&e) => {
                            written.refused.push((i, error_chain(&e)));
                        }
                        Err(e) => return Err(database("writing events to the warehouse", &e)),
                    }
                }
                Ok(written)
            }
            Err(e) => Err(database("writing events to the warehouse", &e)),
        }
    }

    /// Creates the monthly partitions the rows fall in, once per instance and month.
    async fn ensure_partitions(&self, client: &tokio_postgres::Client, rows: &[Row]) -> Result<()> {
        let mut known = self.partitions.lock().await;
        let mut months: Vec<OffsetDateTime> = Vec::new();
        let mut seen = HashSet::new();
        for row in rows {
            let at = row.received_at.to_offset(time::UtcOffset::UTC);
            let month = (at.year(), u8::from(at.month()));
            if !known.contains(&month) && seen.insert(month) {
                months.push(at);
            }
        }
        if months.is_empty() {
            return Ok(());
        }
        client
            .execute(
                "SELECT ingestlayer_ensure_partition(m) FROM unnest($1::timestamptz[]) AS m",
                &[&months],
            )
            .await
            .map_err(|e| database("creating the warehouse's monthly partitions", &e))?;
        known.extend(seen);
        Ok(())
    }
}

/// The columns every write names, in [`COLUMN_TYPES`]' order.
const COLUMNS: &str =
    "(id, name, source, received_at, occurred_at, user_id, account_id, plan, data, entities, pipelines)";

/// The types of [`COLUMNS`], as COPY's binary format writes them.
const COLUMN_TYPES: [Type; 11] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
];

/// The batch's staging table: one per session, emptied at each commit. It is created in
/// every staged write's transaction when missing, so a pooler that hands each transaction
/// a different server connection still finds it.
const BEGIN_STAGING: &str = "BEGIN; \
     CREATE TEMP TABLE IF NOT EXISTS ingestlayer_batch \
     (id text, name text, source text, received_at timestamptz, occurred_at timestamptz, \
      user_id text, account_id text, plan text, data jsonb, entities jsonb, pipelines jsonb) \
     ON COMMIT DELETE ROWS";

/// Writes `rows`; the number that were new. First one binary COPY straight into `events`:
/// a statement is atomic, so it writes the whole batch or nothing, and it fails only when a
/// row is there already (a redelivered batch, a backfill over written days) or for a row's
/// data. On a row that is there already, the batch is staged instead: COPY into the
/// session's staging table, then one `INSERT … SELECT … ON CONFLICT (id, received_at) DO
/// NOTHING`, in one transaction. A first delivery, by far the common case, so costs one
/// statement; a redelivery adds the staged write (measured: the direct COPY takes about
/// two thirds of the staged write's time).
async fn insert(
    client: &tokio_postgres::Client,
    rows: &[Row],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let copy_events = format!("COPY events {COLUMNS} FROM STDIN BINARY");
    match copy_rows(client, &copy_events, rows).await {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => staged(client, rows).await,
        other => other,
    }
}

/// `rows` through the staging table, in one transaction (see [`insert`]).
async fn staged(
    client: &tokio_postgres::Client,
    rows: &[Row],
) -> std::result::Result<u64, tokio_postgres::Error> {
    client.batch_execute(BEGIN_STAGING).await?;
    let outcome = async {
        copy_rows(
            client,
            &format!("COPY ingestlayer_batch {COLUMNS} FROM STDIN BINARY"),
            rows,
        )
        .await?;
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO events {COLUMNS} SELECT * FROM ingestlayer_batch \
                     ON CONFLICT (id, received_at) DO NOTHING"
                ),
                &[],
            )
            .await?;
        client.batch_execute("COMMIT").await?;
        Ok(inserted)
    }
    .await;
    if outcome.is_err() && !client.is_closed() {
        // Ends the failed transaction (after a failed COMMIT there is none: a warning only).
        let _ = client.batch_execute("ROLLBACK").await;
    }
    outcome
}

/// Streams `rows` through `copy` (a `COPY … FROM STDIN BINARY` of [`COLUMNS`]); the
/// number of rows copied.
async fn copy_rows(
    client: &tokio_postgres::Client,
    copy: &str,
    rows: &[Row],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(copy).await?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &COLUMN_TYPES));
    for r in rows {
        writer
            .as_mut()
            .write(&[
                &r.id,
                &r.name,
                &r.source,
                &r.received_at,
                &r.occurred_at,
                &r.user_id,
                &r.account_id,
                &r.plan,
                &r.data,
                &r.entities,
                &r.pipelines,
            ])
            .await?;
    }
    writer.finish().await
}

/// Whether Postgres refused the statement for what a row holds (data exceptions, integrity
/// violations, program limits such as an index entry too large), not for being unreachable.
fn refused_for_data(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        let class = &c.code()[..2];
        matches!(class, "22" | "23" | "54")
    })
}

/// Postgres cannot store `\u0000` in text or jsonb: each is replaced by U+FFFD, so an event
/// carrying one still lands (the stored event keeps the original).
pub fn without_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(without_nul),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
            for k in keys {
                if let Some(v) = map.remove(&k) {
                    map.insert(k.replace('\0', "\u{FFFD}"), v);
                }
            }
            map.values_mut().for_each(without_nul);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_verified_unless_disabled() {
        let t = Target::parse("postgres://u:secret@db.example.com:6543/wh", None).unwrap();
        assert!(t.tls.is_some());
        assert_eq!(t.describe, "db.example.com:6543/wh");
        assert!(!format!("{t:?}").contains("secret"));
        for mode in ["require", "verify-full", "prefer"] {
            let t = Target::parse(&format!("postgres://u@h/d?sslmode={mode}"), None).unwrap();
            assert!(t.tls.is_some(), "{mode}");
        }
        let t = Target::parse("postgres://u@127.0.0.1/d?sslmode=disable", None).unwrap();
        assert!(t.tls.is_none());
        assert!(t.describe.ends_with("(no TLS)"));
    }

    #[test]
    fn bad_connection_strings_are_named() {
        let e = Target::parse("", None).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = Target::parse("mysql://h/d", None).unwrap_err().to_string();
        assert!(e.contains("scheme is mysql"), "{e}");
        let e = Target::parse("postgres://h/d?sslmode=sometimes", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=sometimes"), "{e}");
        let e = Target::parse("postgres://h/d?sslrootcert=/nonexistent/ca.pem", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e = Target::parse("postgres://h/d", Some("not a pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = Target::from_secret("{\"uri\": \"x\"}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not {\"url\""), "{e}");
    }

    #[test]
    fn secret_json_carries_url_and_other_params_survive() {
        let t = Target::from_secret(
            "{\"url\": \"postgres://u:p@h:5432/d?sslmode=disable&options=-c%20statement_timeout%3D5000\"}",
        )
        .unwrap();
        assert!(t.tls.is_none());
        assert_eq!(t.describe, "h:5432/d (no TLS)");
        assert_eq!(t.config.get_options(), Some("-c statement_timeout=5000"));
    }

    #[test]
    fn nul_characters_are_replaced_everywhere() {
        let mut v = serde_json::json!({"a\u{0}b": ["x\u{0}", {"k": "\u{0}"}], "n": 1});
        without_nul(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a\u{FFFD}b": ["x\u{FFFD}", {"k": "\u{FFFD}"}], "n": 1})
        );
    }

    #[test]
    fn migrations_are_versioned_in_order() {
        let runner = embedded::migrations::runner();
        let versions: Vec<i32> = runner
            .get_migrations()
            .iter()
            .map(|m| m.version())
            .collect();
        assert_eq!(versions, (1..=latest_version()).collect::<Vec<_>>());
        assert!(latest_version() >= 2);
    }
}
