//! What the stand-in holds — integrations, databases, data sources, pages, faults, rate-limit
//! state, the request log — and the Notion operations on it. Everything here is synchronous;
//! `crate::api` does the HTTP and the waiting.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use axum::http::HeaderMap;
use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::fault::{Fault, FaultKind, Faults};
use crate::ids;
use crate::page::{self, plain_text};
use crate::query::{Query, Row};
use crate::reply::{quote, NotionError};
use crate::schema::{PropertyType, Schema};
use crate::version::ApiVersion;
use crate::{CreatedPage, DatabaseIds, RecordedRequest, StandinConfig};
use standin_server::Pacer;

/// A `/v1` request the stand-in understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    RetrieveDatabase(String),
    QueryDatabase(String),
    RetrieveDataSource(String),
    QueryDataSource(String),
    CreatePage,
}

struct Database {
    id: String,
    title: String,
    data_sources: Vec<String>,
    shared: bool,
    created_time: String,
}

struct DataSource {
    id: String,
    database_id: String,
    name: String,
    schema: Schema,
    created_time: String,
}

struct StoredPage {
    id: String,
    data_source_id: String,
    database_id: String,
    values: HashMap<String, Value>,
    children: Vec<Value>,
    created_time: String,
    at: Instant,
}

struct State {
    tokens: HashSet<String>,
    databases: Vec<Database>,
    data_sources: Vec<DataSource>,
    pages: Vec<StoredPage>,
    faults: Faults,
    pacer: Pacer,
    requests: Vec<RecordedRequest>,
}

pub(crate) struct Shared {
    config: StandinConfig,
    bot_id: String,
    started: Instant,
    state: Mutex<State>,
}

/// Notion's timestamps, which it rounds to the minute (`"2022-07-06T19:41:00.000Z"` in the
/// docs' examples).
fn now_iso() -> String {
    OffsetDateTime::now_utc()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:00.000Z"
        ))
        .unwrap_or_default()
}

fn title_json(text: &str) -> Value {
    json!([{
        "type": "text",
        "text": {"content": text, "link": null},
        "annotations": {"bold": false, "italic": false, "strikethrough": false,
                        "underline": false, "code": false, "color": "default"},
        "plain_text": text,
        "href": null,
    }])
}

/// `https://www.notion.so/Title-Words-<id without dashes>`, the shape of Notion's page URLs.
fn notion_url(title: &str, id: &str) -> String {
    let slug: Vec<&str> = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if slug.is_empty() {
        format!("https://www.notion.so/{}", ids::compact(id))
    } else {
        format!(
            "https://www.notion.so/{}-{}",
            slug.join("-"),
            ids::compact(id)
        )
    }
}

fn path_id(value: &str, name: &str) -> Result<String, NotionError> {
    ids::parse(value).ok_or_else(|| {
        NotionError::validation(format!(
            "path failed validation: path.{name} should be a valid uuid, instead was `{}`.",
            quote(&json!(value))
        ))
    })
}

impl Shared {
    pub(crate) fn new(config: StandinConfig) -> Shared {
        let state = State {
            tokens: config.tokens.iter().cloned().collect(),
            databases: Vec::new(),
            data_sources: Vec::new(),
            pages: Vec::new(),
            faults: Faults::default(),
            // Notion's request limit, a token bucket per integration.
            // <https://developers.notion.com/reference/request-limits>: "The rate limit for incoming
            // requests per connection is an average of three requests per second. Some bursts beyond the
            // average rate are allowed." Over it Notion answers 429 `rate_limited` with a `Retry-After`
            // header "set as an integer number of seconds", after which requests "should no longer be rate
            // limited". The docs do not size the burst; it is `StandinConfig::burst`.
            pacer: Pacer::new(config.rate_per_sec, config.burst),
            requests: Vec::new(),
        };
        Shared {
            config,
            bot_id: ids::new(),
            started: Instant::now(),
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the stand-in down with it: the data stays usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The integration's token from `Authorization: Bearer <token>`, if it is a registered one.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<String, NotionError> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(NotionError::unauthorized)?;
        if self.lock().tokens.contains(token) {
            Ok(token.to_owned())
        } else {
            Err(NotionError::unauthorized())
        }
    }

    pub(crate) fn add_integration(&self, token: &str) {
        self.lock().tokens.insert(token.to_owned());
    }

    pub(crate) fn pace(&self, token: &str) -> Result<(), NotionError> {
        self.lock()
            .pacer
            .take(token, Instant::now())
            .map_err(NotionError::rate_limited)
    }

    pub(crate) fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub(crate) fn take_fault(&self, data_source: Option<&str>) -> Option<FaultKind> {
        self.lock().faults.take(data_source)
    }

    pub(crate) fn record(&self, method: &str, path: &str, outcome: &Result<Value, NotionError>) {
        let (status, code) = match outcome {
            Ok(_) => (200, None),
            Err(e) => (e.status, Some(e.code.to_owned())),
        };
        self.lock().requests.push(RecordedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            code,
            at: Instant::now(),
        });
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn since_start_ms(&self, at: Instant) -> u128 {
        at.saturating_duration_since(self.started).as_millis()
    }

    pub(crate) fn create_database(
        &self,
        title: &str,
        properties: &[(String, PropertyType)],
    ) -> Result<DatabaseIds> {
        let schema = Schema::new(properties)?;
        let database_id = ids::new();
        let data_source_id = ids::new();
        let created_time = now_iso();
        let mut state = self.lock();
        state.data_sources.push(DataSource {
            id: data_source_id.clone(),
            database_id: database_id.clone(),
            name: title.to_owned(),
            schema,
            created_time: created_time.clone(),
        });
        state.databases.push(Database {
            id: database_id.clone(),
            title: title.to_owned(),
            data_sources: vec![data_source_id.clone()],
            shared: true,
            created_time,
        });
        Ok(DatabaseIds {
            database_id,
            data_source_id,
        })
    }

    pub(crate) fn add_data_source(
        &self,
        database_id: &str,
        name: &str,
        properties: &[(String, PropertyType)],
    ) -> Result<String> {
        let schema = Schema::new(properties)?;
        let wanted = ids::parse(database_id)
            .ok_or_else(|| Error::UnknownDatabase(database_id.to_owned()))?;
        let id = ids::new();
        let mut state = self.lock();
        let database = state
            .databases
            .iter_mut()
            .find(|d| d.id == wanted)
            .ok_or_else(|| Error::UnknownDatabase(database_id.to_owned()))?;
        database.data_sources.push(id.clone());
        state.data_sources.push(DataSource {
            id: id.clone(),
            database_id: wanted,
            name: name.to_owned(),
            schema,
            created_time: now_iso(),
        });
        Ok(id)
    }

    /// Shares or unshares a database (and so its data sources) with every integration;
    /// `false` when there is no such database.
    pub(crate) fn set_shared(&self, database_id: &str, shared: bool) -> bool {
        let Some(wanted) = ids::parse(database_id) else {
            return false;
        };
        let mut state = self.lock();
        match state.databases.iter_mut().find(|d| d.id == wanted) {
            Some(database) => {
                database.shared = shared;
                true
            }
            None => false,
        }
    }

    /// Pages created in a data source (either ID form), oldest first; `None` for an unknown
    /// data source.
    pub(crate) fn pages(&self, data_source_id: &str) -> Option<Vec<CreatedPage>> {
        let wanted = ids::parse(data_source_id)?;
        let state = self.lock();
        let source = state.data_sources.iter().find(|s| s.id == wanted)?;
        Some(
            state
                .pages
                .iter()
                .filter(|p| p.data_source_id == wanted)
                .map(|p| CreatedPage {
                    id: p.id.clone(),
                    data_source_id: p.data_source_id.clone(),
                    database_id: p.database_id.clone(),
                    properties: render_properties(&source.schema, &p.values),
                    children: p.children.clone(),
                    created_time: p.created_time.clone(),
                    at: p.at,
                })
                .collect(),
        )
    }

    /// Forgets pages, faults, rate-limit state and the request log; databases, data sources,
    /// sharing and integrations stay (a local stack keeps the IDs it printed at start).
    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        state.pages.clear();
        state.faults.clear();
        state.pacer.clear();
        state.requests.clear();
    }

    /// The data source a request is about, for matching faults; `None` when it names none (or
    /// names it wrongly: the request then fails on its own).
    pub(crate) fn target(&self, route: &Route, body: &Value) -> Option<String> {
        match route {
            Route::RetrieveDataSource(id) | Route::QueryDataSource(id) => ids::parse(id),
            Route::QueryDatabase(id) => self.single_source(&ids::parse(id)?),
            Route::RetrieveDatabase(_) => None,
            Route::CreatePage => {
                let parent = body.get("parent")?;
                if let Some(id) = parent.get("data_source_id").and_then(Value::as_str) {
                    ids::parse(id)
                } else {
                    let id = parent.get("database_id").and_then(Value::as_str)?;
                    self.single_source(&ids::parse(id)?)
                }
            }
        }
    }

    fn single_source(&self, database_id: &str) -> Option<String> {
        let state = self.lock();
        let database = state.databases.iter().find(|d| d.id == database_id)?;
        match database.data_sources.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }
    }

    pub(crate) fn run(
        &self,
        version: ApiVersion,
        route: &Route,
        body: &Value,
    ) -> Result<Value, NotionError> {
        match route {
            Route::RetrieveDatabase(id) => self.retrieve_database(version, id),
            Route::QueryDatabase(id) => self.query_database(version, id, body),
            Route::RetrieveDataSource(id) => self.retrieve_data_source(version, id),
            Route::QueryDataSource(id) => self.query_data_source(version, id, body),
            Route::CreatePage => self.create_page(version, body),
        }
    }

    fn retrieve_database(&self, version: ApiVersion, raw: &str) -> Result<Value, NotionError> {
        let id = path_id(raw, "database_id")?;
        let state = self.lock();
        let database = state.visible_database(&id)?;
        let mut out = json!({
            "object": "database",
            "id": database.id,
            "title": title_json(&database.title),
            "description": [],
            "parent": {"type": "workspace", "workspace": true},
            "is_inline": false,
            "archived": false,
            "in_trash": false,
            "is_locked": false,
            "created_time": database.created_time,
            "last_edited_time": database.created_time,
            "created_by": {"object": "user", "id": self.bot_id},
            "last_edited_by": {"object": "user", "id": self.bot_id},
            "icon": null,
            "cover": null,
            "url": notion_url(&database.title, &database.id),
            "public_url": null,
        });
        let extra = match version {
            ApiVersion::DataSources => {
                let sources: Vec<Value> = database
                    .data_sources
                    .iter()
                    .filter_map(|ds| state.data_sources.iter().find(|s| s.id == *ds))
                    .map(|s| json!({"id": s.id, "name": s.name}))
                    .collect();
                ("data_sources", Value::Array(sources))
            }
            ApiVersion::Legacy => {
                let source = state.legacy_source(database)?;
                ("properties", source.schema.to_json())
            }
        };
        if let Some(map) = out.as_object_mut() {
            map.insert(extra.0.to_owned(), extra.1);
        }
        Ok(out)
    }

    fn retrieve_data_source(&self, version: ApiVersion, raw: &str) -> Result<Value, NotionError> {
        if version == ApiVersion::Legacy {
            return Err(NotionError::invalid_request_url());
        }
        let id = path_id(raw, "data_source_id")?;
        let state = self.lock();
        let source = state.visible_data_source(&id)?;
        Ok(json!({
            "object": "data_source",
            "id": source.id,
            "title": title_json(&source.name),
            "description": [],
            "properties": source.schema.to_json(),
            "parent": {"type": "database_id", "database_id": source.database_id},
            "database_parent": {"type": "workspace", "workspace": true},
            "is_inline": false,
            "archived": false,
            "in_trash": false,
            "created_time": source.created_time,
            "last_edited_time": source.created_time,
            "created_by": {"object": "user", "id": self.bot_id},
            "last_edited_by": {"object": "user", "id": self.bot_id},
            "icon": null,
            "cover": null,
            "url": notion_url(&source.name, &source.database_id),
            "public_url": null,
        }))
    }

    fn query_data_source(
        &self,
        version: ApiVersion,
        raw: &str,
        body: &Value,
    ) -> Result<Value, NotionError> {
        if version == ApiVersion::Legacy {
            return Err(NotionError::invalid_request_url());
        }
        let id = path_id(raw, "data_source_id")?;
        let state = self.lock();
        let source = state.visible_data_source(&id)?;
        self.query(&state, version, source, body)
    }

    fn query_database(
        &self,
        version: ApiVersion,
        raw: &str,
        body: &Value,
    ) -> Result<Value, NotionError> {
        // From 2025-09-03 on, queries go to the data source
        // (<https://developers.notion.com/docs/upgrade-guide-2025-09-03>).
        if version == ApiVersion::DataSources {
            return Err(NotionError::invalid_request_url());
        }
        let id = path_id(raw, "database_id")?;
        let state = self.lock();
        let database = state.visible_database(&id)?;
        let source = state.legacy_source(database)?;
        self.query(&state, version, source, body)
    }

    fn query(
        &self,
        state: &State,
        version: ApiVersion,
        source: &DataSource,
        body: &Value,
    ) -> Result<Value, NotionError> {
        let query = Query::parse(body, &source.schema)?;
        let pages: Vec<&StoredPage> = state
            .pages
            .iter()
            .filter(|p| p.data_source_id == source.id)
            .collect();
        let rows: Vec<Row<'_>> = pages
            .iter()
            .map(|p| Row {
                id: &p.id,
                values: &p.values,
            })
            .collect();
        let results = query.run(&rows)?;
        let listed: Vec<Value> = results
            .rows
            .iter()
            .filter_map(|&i| pages.get(i))
            .map(|p| self.page_json(version, &source.schema, p))
            .collect();
        let kind = match version {
            ApiVersion::DataSources => "page_or_data_source",
            ApiVersion::Legacy => "page_or_database",
        };
        Ok(json!({
            "object": "list",
            "results": listed,
            "next_cursor": results.next_cursor,
            "has_more": results.next_cursor.is_some(),
            "type": kind,
            kind: {},
            "request_id": ids::new(),
        }))
    }

    fn create_page(&self, version: ApiVersion, body: &Value) -> Result<Value, NotionError> {
        if !body.is_object() {
            return Err(NotionError::validation(format!(
                "body failed validation: body should be an object, instead was `{}`.",
                quote(body)
            )));
        }
        let parent = body.get("parent").ok_or_else(|| {
            NotionError::validation(
                "body failed validation: body.parent should be defined, instead was `undefined`.",
            )
        })?;
        let mut state = self.lock();
        let source_id = state.page_parent(version, parent)?;
        let require_title = self.config.require_title;
        let (values, children, database_id, source_name) = {
            let source = state
                .data_sources
                .iter()
                .find(|s| s.id == source_id)
                .ok_or_else(|| NotionError::not_found("data_source", &source_id))?;
            let values = page::properties(&source.schema, body.get("properties"), require_title)?;
            let children = page::children(body.get("children"))?;
            (
                values,
                children,
                source.database_id.clone(),
                source.name.clone(),
            )
        };
        let source = state
            .data_sources
            .iter_mut()
            .find(|s| s.id == source_id)
            .ok_or_else(|| NotionError::not_found("data_source", &source_id))?;
        let values: HashMap<String, Value> = values
            .into_iter()
            .map(|(name, value)| {
                let kind = source.schema.find(&name).map(|p| p.kind);
                let value = match kind {
                    Some(PropertyType::Select) => resolve_option(&mut source.schema, &name, &value),
                    Some(PropertyType::MultiSelect) => Value::Array(
                        value
                            .as_array()
                            .map(|items| {
                                items
                                    .iter()
                                    .map(|v| resolve_option(&mut source.schema, &name, v))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    _ => value,
                };
                (name, value)
            })
            .collect();
        let stored = StoredPage {
            id: ids::new(),
            data_source_id: source_id,
            database_id,
            values,
            children,
            created_time: now_iso(),
            at: Instant::now(),
        };
        let schema = source.schema.clone();
        let out = self.page_json(version, &schema, &stored);
        if self.config.print_pages {
            println!("{}", summary(&source_name, &schema, &stored));
        }
        state.pages.push(stored);
        Ok(out)
    }

    fn page_json(&self, version: ApiVersion, schema: &Schema, page: &StoredPage) -> Value {
        let parent = match version {
            ApiVersion::DataSources => json!({
                "type": "data_source_id",
                "data_source_id": page.data_source_id,
                "database_id": page.database_id,
            }),
            ApiVersion::Legacy => json!({"type": "database_id", "database_id": page.database_id}),
        };
        let title = schema
            .title()
            .and_then(|t| page.values.get(&t.name))
            .map(plain_text)
            .unwrap_or_default();
        json!({
            "object": "page",
            "id": page.id,
            "created_time": page.created_time,
            "last_edited_time": page.created_time,
            "created_by": {"object": "user", "id": self.bot_id},
            "last_edited_by": {"object": "user", "id": self.bot_id},
            "cover": null,
            "icon": null,
            "parent": parent,
            "archived": false,
            "in_trash": false,
            "is_locked": false,
            "properties": render_properties(schema, &page.values),
            "url": notion_url(&title, &page.id),
            "public_url": null,
        })
    }
}

impl State {
    fn visible_database(&self, id: &str) -> Result<&Database, NotionError> {
        self.databases
            .iter()
            .find(|d| d.id == id && d.shared)
            .ok_or_else(|| NotionError::not_found("database", id))
    }

    /// A data source whose database is shared (permissions live on the database:
    /// <https://developers.notion.com/docs/upgrade-guide-2025-09-03>, "How do permissions work
    /// for data sources?").
    fn visible_data_source(&self, id: &str) -> Result<&DataSource, NotionError> {
        self.data_sources
            .iter()
            .find(|s| s.id == id)
            .filter(|s| {
                self.databases
                    .iter()
                    .any(|d| d.id == s.database_id && d.shared)
            })
            .ok_or_else(|| NotionError::not_found("data_source", id))
    }

    /// The one data source of a database, as a pre-2025 version sees it; several answer
    /// Notion's `multiple_data_sources_for_database` error.
    fn legacy_source(&self, database: &Database) -> Result<&DataSource, NotionError> {
        match database.data_sources.as_slice() {
            [only] => self
                .data_sources
                .iter()
                .find(|s| s.id == *only)
                .ok_or_else(|| NotionError::not_found("database", &database.id)),
            several => Err(NotionError::multiple_data_sources(&database.id, several)),
        }
    }

    /// The data source a new page goes into, from its `parent`.
    fn page_parent(&self, version: ApiVersion, parent: &Value) -> Result<String, NotionError> {
        let id_at = |key: &str| -> Result<Option<String>, NotionError> {
            match parent.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(raw)) => ids::parse(raw).map(Some).ok_or_else(|| {
                    NotionError::validation(format!(
                        "body failed validation: body.parent.{key} should be a valid uuid, instead was `{}`.",
                        quote(&json!(raw))
                    ))
                }),
                Some(other) => Err(NotionError::validation(format!(
                    "body failed validation: body.parent.{key} should be a string, instead was `{}`.",
                    quote(other)
                ))),
            }
        };
        if let Some(id) = id_at("data_source_id")? {
            if version == ApiVersion::Legacy {
                // Data sources do not exist before 2025-09-03; the docs show no answer for
                // this, so the stand-in asks for what that version takes.
                return Err(NotionError::validation(
                    "body failed validation: body.parent.database_id should be defined, instead was `undefined`. (data_source_id parents need Notion-Version 2025-09-03 or later.)",
                ));
            }
            return self.visible_data_source(&id).map(|s| s.id.clone());
        }
        if let Some(id) = id_at("database_id")? {
            let database = self.visible_database(&id)?;
            return match (version, database.data_sources.as_slice()) {
                (_, [only]) => Ok(only.clone()),
                (ApiVersion::Legacy, several) => {
                    Err(NotionError::multiple_data_sources(&database.id, several))
                }
                // 2025-09-03 asks for the data source; a database_id parent is only
                // unambiguous with one. The docs show no message for this case.
                (ApiVersion::DataSources, several) => Err(NotionError {
                    additional_data: Some(Box::new(json!({"child_data_source_ids": several}))),
                    ..NotionError::validation(format!(
                        "body failed validation: body.parent.database_id {} has {} data sources; give body.parent.data_source_id instead.",
                        database.id,
                        several.len()
                    ))
                }),
            };
        }
        if let Some(id) = id_at("page_id")? {
            // The stand-in holds databases only; no page can be a parent.
            return Err(NotionError::not_found("page", &id));
        }
        let wanted = match version {
            ApiVersion::DataSources => "data_source_id",
            ApiVersion::Legacy => "database_id",
        };
        Err(NotionError::validation(format!(
            "body failed validation: body.parent.{wanted} should be defined, instead was `undefined`."
        )))
    }
}

fn resolve_option(schema: &mut Schema, property: &str, value: &Value) -> Value {
    match value.get("name").and_then(Value::as_str) {
        Some(name) => match schema.option(property, name) {
            Some(option) => json!({"id": option.id, "name": option.name, "color": "default"}),
            None => value.clone(),
        },
        None => value.clone(),
    }
}

/// Every property of the schema as a page shows it: `{"id", "type", <type>: value}`, unset
/// ones with their empty value.
fn render_properties(schema: &Schema, values: &HashMap<String, Value>) -> Value {
    let mut map = serde_json::Map::new();
    for property in &schema.properties {
        let value = values
            .get(&property.name)
            .cloned()
            .unwrap_or_else(|| property.kind.empty_value());
        map.insert(
            property.name.clone(),
            json!({"id": property.id, "type": property.kind.key(), property.kind.key(): value}),
        );
    }
    Value::Object(map)
}

/// One line for stdout: where the page went, its title and the other values set. Never the
/// whole payload: long values are cut.
fn summary(source: &str, schema: &Schema, page: &StoredPage) -> String {
    let cut = |text: String| -> String {
        if text.chars().count() > 60 {
            format!("{}…", text.chars().take(59).collect::<String>())
        } else {
            text
        }
    };
    let mut parts = Vec::new();
    for property in &schema.properties {
        let Some(value) = page.values.get(&property.name) else {
            continue;
        };
        let shown = match property.kind {
            PropertyType::Title | PropertyType::RichText => plain_text(value),
            PropertyType::Select => value
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            PropertyType::Date => value
                .get("start")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            PropertyType::MultiSelect => value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.get("name").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
            _ => match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            },
        };
        if shown.is_empty() {
            continue;
        }
        if property.kind == PropertyType::Title {
            parts.insert(0, format!("{:?}", cut(shown)));
        } else {
            parts.push(format!("{}={}", property.name, cut(shown)));
        }
    }
    format!("notion ▸ {source} ▸ {} ({})", parts.join(" · "), page.id)
}
