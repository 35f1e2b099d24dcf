//! A stand-in for the Notion API that behaves like Notion where ingestlayer cares: one page per
//! event in a database, on the current API version.
//!
//! # What the docs say about the current version (2025-09-03)
//!
//! - Databases now contain data sources. "The database becomes a container for one or more data
//!   sources", each with its own schema and its own pages; "most API operations that used
//!   `database_id` now require a `data_source_id`"
//!   (<https://developers.notion.com/docs/upgrade-guide-2025-09-03>,
//!   <https://developers.notion.com/guides/get-started/upgrade-faqs-2025-09-03>).
//! - Discovery: `GET /v1/databases/{database_id}` returns the container with
//!   `data_sources: [{"id", "name"}]` and no `properties`
//!   (<https://developers.notion.com/reference/database>).
//! - The schema lives on `GET /v1/data_sources/{data_source_id}` (`object: "data_source"`,
//!   `properties`, `parent: {"type": "database_id", …}`)
//!   (<https://developers.notion.com/reference/data-source>).
//! - Pages are created with `POST /v1/pages` and
//!   `parent: {"type": "data_source_id", "data_source_id": …}`; the page's `parent` comes back
//!   as `{"type": "data_source_id", "data_source_id", "database_id"}`
//!   (<https://developers.notion.com/reference/post-page>,
//!   <https://developers.notion.com/reference/parent-object>).
//! - Queries go to `POST /v1/data_sources/{id}/query`, paged with `page_size` (≤ 100),
//!   `start_cursor`, `has_more`, `next_cursor`
//!   (<https://developers.notion.com/reference/query-a-data-source>).
//! - `Notion-Version` is required on every request; without it Notion answers 400
//!   `missing_version` (<https://developers.notion.com/reference/versioning>,
//!   <https://developers.notion.com/reference/status-codes>).
//! - Older versions (2022-06-28) keep working for databases with a single data source:
//!   `database_id` parents, `GET /v1/databases/{id}` with `properties`,
//!   `POST /v1/databases/{id}/query`. A database with several data sources answers them 400
//!   `validation_error` "Databases with multiple data sources are not supported in this API
//!   version." with `additional_data.child_data_source_ids` (upgrade guide, "Behavior for
//!   existing integrations").
//! - 2026-03-11 exists since; it changes block positioning, `archived` → `in_trash` and one
//!   block type (<https://developers.notion.com/docs/upgrade-guide-2026-03-11>), none of which
//!   the stand-in serves, so it is accepted and treated as 2025-09-03.
//! - Limits (<https://developers.notion.com/reference/request-limits>): an average of three
//!   requests per second per integration with bursts allowed, 429 `rate_limited` with an
//!   integer-seconds `Retry-After`; `text.content` ≤ 2000 characters, any array of blocks or
//!   rich text ≤ 100 elements, multi-select ≤ 100 options, 1000 blocks and 500KB a payload, over
//!   which Notion answers 400 `validation_error` naming the field. (A newer revision of that
//!   page describes a per-60-second budget per connection that depends on the workspace's
//!   plan; the stand-in keeps the documented three per second, configurable.)
//!
//! # What it serves
//!
//! Under `/v1` (so `NOTION_API_URL` is [`Standin::api_url`], `http://127.0.0.1:PORT`):
//! `GET /v1/databases/{id}`, `GET /v1/data_sources/{id}`, `POST /v1/data_sources/{id}/query`,
//! `POST /v1/pages`, and for versions before 2025-09-03 `POST /v1/databases/{id}/query`.
//! Anything else is Notion's 400 `invalid_request_url`.
//!
//! - Auth: `Authorization: Bearer <token>` of a registered integration
//!   ([`StandinConfig::tokens`], default [`DEFAULT_TOKEN`]), else 401 `unauthorized` "API token
//!   is invalid.".
//! - A database not shared with the integration ([`Standin::unshare`]) and its data sources
//!   answer 404 `object_not_found`, "Could not find database with ID: …. Make sure the relevant
//!   pages and databases are shared with your integration." (`data_source` for data sources).
//! - `POST /v1/pages` checks `properties` against the data source's schema: an unknown name is
//!   "`X` is not a property that exists.", a value of the wrong type "`X` is expected to be
//!   rich_text.", and with [`StandinConfig::require_title`] a missing title property is
//!   "body failed validation: body.properties.Name should be defined, …". Sizes as above.
//!
//! Tests drive it in process: [`Standin::create_database`], [`Standin::pages`],
//! [`Standin::inject`] ([`Fault`]), [`Standin::unshare`]. `make dev` runs the `notion-standin`
//! binary, which creates [`EVENTS_DATABASE_TITLE`] with [`EVENTS_SCHEMA`] at start.
//!
//! Control endpoints, outside `/v1`:
//! - `GET /_standin/data_sources/{id}/pages`: pages created there, oldest first.
//! - `GET /_standin/requests`: every `/v1` request with its status and code.
//! - `POST /_standin/faults`: a [`Fault`] as JSON or an array of them (format on [`Fault`]).
//! - `POST /_standin/databases`: `{"title": "…", "properties": {"Name": "title", "Event":
//!   "rich_text"}}` → `{"database_id", "data_source_id"}`.
//! - `POST /_standin/databases/{id}/data_sources`: `{"name": "…", "properties": {…}}` →
//!   `{"data_source_id"}` (the database then has several).
//! - `POST /_standin/databases/{id}/unshare`, `…/share`.
//! - `POST /_standin/reset`: forget pages, faults, rate-limit state and requests.

mod api;
pub mod error;
mod fault;
mod ids;
mod page;
mod query;
mod reply;
mod schema;
mod state;
mod version;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

pub use error::{Error, Result};
pub use fault::{Failure, Fault, FaultKind};
pub use schema::PropertyType;

use state::Shared;

/// The integration token the stand-in accepts unless told otherwise.
pub const DEFAULT_TOKEN: &str = "ntn_standin_token";

/// The title of the database the binary creates at start.
pub const EVENTS_DATABASE_TITLE: &str = "ingestlayer events";

/// The properties of the database the binary creates at start: one page per event.
pub const EVENTS_SCHEMA: &[(&str, PropertyType)] = &[
    ("Name", PropertyType::Title),
    ("Event", PropertyType::RichText),
    ("Event ID", PropertyType::RichText),
    ("Account", PropertyType::RichText),
    ("Plan", PropertyType::Select),
    ("Count", PropertyType::Number),
    ("Received", PropertyType::Date),
];

/// How the stand-in behaves. Build with struct update syntax over [`Default`].
#[derive(Clone, PartialEq)]
pub struct StandinConfig {
    /// The integrations' bearer tokens. Default `[DEFAULT_TOKEN]`.
    pub tokens: Vec<String>,
    /// Average requests per second per integration (Notion: 3). A value that is not finite and
    /// positive (e.g. `f64::INFINITY`) disables rate limiting.
    pub rate_per_sec: f64,
    /// Requests an integration may make back to back before the average applies; at least 1.
    /// Notion allows "some bursts" without saying how many. Default 10.
    pub burst: u32,
    /// Refuse a page without its title property. Notion itself would create an untitled page;
    /// ingestlayer never means to, so by default the stand-in treats it as the client bug it
    /// is. Default true.
    pub require_title: bool,
    /// Print one line per created page on stdout. Default false.
    pub print_pages: bool,
}

impl std::fmt::Debug for StandinConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandinConfig")
            .field("tokens", &format!("[{} redacted]", self.tokens.len()))
            .field("rate_per_sec", &self.rate_per_sec)
            .field("burst", &self.burst)
            .field("require_title", &self.require_title)
            .field("print_pages", &self.print_pages)
            .finish()
    }
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            tokens: vec![DEFAULT_TOKEN.to_owned()],
            rate_per_sec: 3.0,
            burst: 10,
            require_title: true,
            print_pages: false,
        }
    }
}

/// The IDs of a database created in the stand-in and of its (first) data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseIds {
    pub database_id: String,
    pub data_source_id: String,
}

/// A page Notion created.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedPage {
    pub id: String,
    pub data_source_id: String,
    pub database_id: String,
    /// Every property of the data source as the page object shows it:
    /// `{"Event ID": {"id": …, "type": "rich_text", "rich_text": [...]}, …}`.
    pub properties: serde_json::Value,
    /// The `children` blocks as stored.
    pub children: Vec<serde_json::Value>,
    /// `created_time` as the API reports it (wall clock, to the minute).
    pub created_time: String,
    /// When it was created on tokio's clock, so paused-time tests see paused time.
    pub at: Instant,
}

impl CreatedPage {
    /// The plain text of a title or rich text property, `None` for another type or name.
    pub fn text(&self, property: &str) -> Option<String> {
        let value = self.properties.get(property)?;
        let kind = value.get("type")?.as_str()?;
        if kind != "title" && kind != "rich_text" {
            return None;
        }
        Some(page::plain_text(value.get(kind)?))
    }

    /// The value under a property's type key (`rich_text` array, number, `{"name"}` for a
    /// select, …).
    pub fn value(&self, property: &str) -> Option<&serde_json::Value> {
        let value = self.properties.get(property)?;
        value.get(value.get("type")?.as_str()?)
    }
}

/// One `/v1` request and what the stand-in answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Notion's error code; `None` for a 200.
    pub code: Option<String>,
    /// When it arrived (tokio's clock).
    pub at: Instant,
}

/// A running stand-in. Dropping it stops accepting connections; [`Standin::shutdown`] also
/// waits (briefly) for the server task.
pub struct Standin {
    shared: Arc<Shared>,
    server: standin_server::Server,
}

impl Standin {
    /// Binds `127.0.0.1:0`, serves in a tokio task, and returns once the port is bound.
    pub async fn start(config: StandinConfig) -> Result<Standin> {
        Standin::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Binds `addr`, serves in a tokio task, and returns once the port is bound.
    pub async fn start_on(addr: SocketAddr, config: StandinConfig) -> Result<Standin> {
        let bound = standin_server::Bound::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let shared = Arc::new(Shared::new(config));
        let server = bound.serve(api::router(Arc::clone(&shared)), "notion stand-in");
        Ok(Standin { shared, server })
    }

    /// The base URL clients use as `NOTION_API_URL`, `http://127.0.0.1:PORT`, in place of
    /// `https://api.notion.com`: requests go to `{api_url}/v1/...` (an unspecified bind address
    /// is reported as `127.0.0.1`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Registers another integration's token.
    pub fn add_integration(&self, token: &str) {
        self.shared.add_integration(token);
    }

    /// Creates a database with one data source of that schema (property names and types, in
    /// order; exactly one title property), shared with every integration.
    pub fn create_database(
        &self,
        title: &str,
        properties: &[(&str, PropertyType)],
    ) -> Result<DatabaseIds> {
        self.shared.create_database(title, &owned(properties))
    }

    /// Creates [`EVENTS_DATABASE_TITLE`] with [`EVENTS_SCHEMA`], as the binary does at start.
    pub fn create_events_database(&self) -> Result<DatabaseIds> {
        self.create_database(EVENTS_DATABASE_TITLE, EVENTS_SCHEMA)
    }

    /// Adds another data source to a database, which then has several (requests before
    /// 2025-09-03 that name the database then fail, as in Notion). Returns its ID.
    pub fn add_data_source(
        &self,
        database_id: &str,
        name: &str,
        properties: &[(&str, PropertyType)],
    ) -> Result<String> {
        self.shared
            .add_data_source(database_id, name, &owned(properties))
    }

    /// Stops sharing a database (and its data sources) with the integrations: requests about
    /// it answer 404 `object_not_found`. `false` for an unknown database.
    pub fn unshare(&self, database_id: &str) -> bool {
        self.shared.set_shared(database_id, false)
    }

    /// Shares a database with the integrations again.
    pub fn share(&self, database_id: &str) -> bool {
        self.shared.set_shared(database_id, true)
    }

    /// The pages created in a data source (either ID form), oldest first; empty for an unknown
    /// one.
    pub fn pages(&self, data_source_id: &str) -> Vec<CreatedPage> {
        self.shared.pages(data_source_id).unwrap_or_default()
    }

    /// Every `/v1` request, including refused ones, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Queues a fault behind those already queued (see [`Fault`] for how they are consumed).
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Forgets pages, faults, rate-limit state and requests; databases and integrations stay.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting connections and waits up to one second for requests in flight.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

impl std::fmt::Debug for Standin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standin")
            .field("addr", &self.server.addr())
            .finish()
    }
}

fn owned(properties: &[(&str, PropertyType)]) -> Vec<(String, PropertyType)> {
    properties
        .iter()
        .map(|(name, kind)| ((*name).to_owned(), *kind))
        .collect()
}
