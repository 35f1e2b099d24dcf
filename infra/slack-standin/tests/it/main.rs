//! Drives the stand-in over real HTTP, as Slack clients do.

#![allow(clippy::unwrap_used)] // a failing test may panic

mod binary;
mod blocks;
mod faults;
mod history;
mod membership;
mod oauth;
mod post_message;
mod threads;

use reqwest::header::HeaderMap;
use serde_json::Value;
use slack_standin::{Standin, StandinConfig};

pub const TOKEN: &str = "xoxb-test-token";

/// A stand-in without rate limiting, for tests about anything but pacing.
pub async fn unpaced() -> Standin {
    Standin::start(StandinConfig {
        rate_per_channel_per_sec: f64::INFINITY,
        ..StandinConfig::default()
    })
    .await
    .unwrap()
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn error(&self) -> Option<&str> {
        self.body["error"].as_str()
    }

    pub fn is_ok(&self) -> bool {
        self.status == 200 && self.body["ok"] == Value::Bool(true)
    }
}

pub async fn call(standin: &Standin, method: &str, body: &Value) -> Reply {
    let response = reqwest::Client::new()
        .post(format!("{}/{method}", standin.api_url()))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    reply(response).await
}

pub async fn post(standin: &Standin, body: &Value) -> Reply {
    call(standin, "chat.postMessage", body).await
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
