//! Drives the stand-in over real HTTP, as a Notion client does.

#![allow(clippy::unwrap_used)] // a failing test may panic

mod binary;
mod faults;
mod limits;
mod pacing;
mod query;
mod sharing;
mod validation;
mod versions;

use notion_standin::{DatabaseIds, Standin, StandinConfig, DEFAULT_TOKEN};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

pub const VERSION: &str = "2025-09-03";
pub const LEGACY: &str = "2022-06-28";

/// A stand-in without rate limiting and with the events database, for tests about anything
/// but pacing.
pub async fn unpaced() -> (Standin, DatabaseIds) {
    let standin = Standin::start(StandinConfig {
        rate_per_sec: f64::INFINITY,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let ids = standin.create_events_database().unwrap();
    (standin, ids)
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

/// A request as a Notion client sends it; `version` and `token` are left out when `None`.
pub async fn send(
    standin: &Standin,
    method: Method,
    path: &str,
    version: Option<&str>,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", standin.api_url()));
    if let Some(version) = version {
        request = request.header("Notion-Version", version);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    reply(request.send().await.unwrap()).await
}

pub async fn get(standin: &Standin, path: &str) -> Reply {
    send(
        standin,
        Method::GET,
        path,
        Some(VERSION),
        Some(DEFAULT_TOKEN),
        None,
    )
    .await
}

pub async fn post(standin: &Standin, path: &str, body: &Value) -> Reply {
    send(
        standin,
        Method::POST,
        path,
        Some(VERSION),
        Some(DEFAULT_TOKEN),
        Some(body),
    )
    .await
}

pub async fn create_page(standin: &Standin, body: &Value) -> Reply {
    post(standin, "/v1/pages", body).await
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn rich(text: &str) -> Value {
    json!([{"type": "text", "text": {"content": text}}])
}

/// The page ingestlayer creates for one event.
pub fn event_page(data_source_id: &str, event_id: &str) -> Value {
    json!({
        "parent": {"type": "data_source_id", "data_source_id": data_source_id},
        "properties": {
            "Name": {"title": rich("user.signed_up")},
            "Event": {"rich_text": rich("user.signed_up")},
            "Event ID": {"rich_text": rich(event_id)},
            "Account": {"rich_text": rich("acme")},
            "Plan": {"select": {"name": "pro"}},
            "Count": {"number": 3},
            "Received": {"date": {"start": "2025-09-03T10:00:00Z"}},
        }
    })
}

/// `event_page` with one property replaced.
pub fn with_property(data_source_id: &str, name: &str, value: Value) -> Value {
    let mut page = event_page(data_source_id, "evt_1");
    page["properties"][name] = value;
    page
}
