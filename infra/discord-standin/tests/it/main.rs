//! Drives the stand-in over real HTTP, as Discord clients do.

#![allow(clippy::unwrap_used)] // a failing test may panic

mod binary;
mod execute;
mod faults;
mod limits;
mod mentions;
mod rate_limits;

use discord_standin::{Standin, StandinConfig, Webhook};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A stand-in without rate limits, for tests about anything but pacing.
pub async fn unpaced() -> Standin {
    Standin::start(StandinConfig {
        webhook_rate_limit: None,
        global_rate_limit: None,
        ..StandinConfig::default()
    })
    .await
    .unwrap()
}

pub fn default_webhook(standin: &Standin) -> Webhook {
    standin.default_webhook().unwrap()
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The JSON body; `Null` for an empty or non-JSON body.
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `_errors[0].code` at `path` of an Invalid Form Body answer.
    pub fn form_error(&self, path: &[&str]) -> Option<String> {
        assert_eq!(self.status, 400, "{}", self.body);
        assert_eq!(self.body["code"], 50035, "{}", self.body);
        assert_eq!(self.body["message"], "Invalid Form Body");
        let mut node = &self.body["errors"];
        for segment in path {
            node = &node[*segment];
        }
        node["_errors"][0]["code"].as_str().map(str::to_owned)
    }
}

/// Executes `url` (a webhook's URL, with or without a query) with a JSON body.
pub async fn execute(url: &str, body: &Value) -> Reply {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    reply(response).await
}

/// Executes with `?wait=true`.
pub async fn execute_wait(webhook: &Webhook, body: &Value) -> Reply {
    execute(&format!("{}?wait=true", webhook.url), body).await
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}
