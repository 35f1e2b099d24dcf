//! Drives the stand-in over real HTTP, as Telegram Bot API clients do.

#![allow(clippy::unwrap_used)] // a failing test may panic

mod binary;
mod errors;
mod faults;
mod html;
mod length;
mod pacing;
mod send_message;

use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use telegram_standin::{ChatKind, Standin, StandinConfig};

pub const TOKEN: &str = "123456:test-token";
pub const BOT_ID: i64 = 123_456;
pub const PRIVATE: i64 = 42;
pub const GROUP: i64 = -100;
pub const SUPERGROUP: i64 = -1_001_234;
pub const CHANNEL: i64 = -1_005_678;

/// A stand-in with [`TOKEN`] and one chat of each kind (the supergroup is `@standin_alerts`,
/// the channel `@standin_news`).
pub async fn standin(config: StandinConfig) -> Standin {
    let standin = Standin::start(config).await.unwrap();
    standin.add_bot(TOKEN).unwrap();
    standin.add_chat(PRIVATE, ChatKind::Private).unwrap();
    standin.add_chat(GROUP, ChatKind::Group).unwrap();
    standin.add_chat(SUPERGROUP, ChatKind::Supergroup).unwrap();
    standin.add_chat(CHANNEL, ChatKind::Channel).unwrap();
    standin
        .set_chat_username(SUPERGROUP, "standin_alerts")
        .unwrap();
    standin.set_chat_username(CHANNEL, "@standin_news").unwrap();
    standin
}

/// [`standin`] without flood limits, for tests about anything but pacing.
pub async fn unlimited() -> Standin {
    standin(StandinConfig::unlimited()).await
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        self.status == 200 && self.body["ok"] == Value::Bool(true)
    }

    pub fn description(&self) -> Option<&str> {
        self.body["description"].as_str()
    }

    /// `(HTTP status, error_code, description)` of a refusal.
    pub fn refusal(&self) -> (u16, Option<i64>, Option<&str>) {
        (
            self.status,
            self.body["error_code"].as_i64(),
            self.description(),
        )
    }
}

pub fn method_url(standin: &Standin, token: &str, method: &str) -> String {
    format!("{}/bot{token}/{method}", standin.api_url())
}

pub async fn call(standin: &Standin, token: &str, method: &str, body: &Value) -> Reply {
    let response = reqwest::Client::new()
        .post(method_url(standin, token, method))
        .json(body)
        .send()
        .await
        .unwrap();
    reply(response).await
}

pub async fn send(standin: &Standin, body: &Value) -> Reply {
    call(standin, TOKEN, "sendMessage", body).await
}

/// `sendMessage` of `text` to `chat_id`.
pub async fn send_text(standin: &Standin, chat_id: i64, text: &str) -> Reply {
    send(standin, &json!({"chat_id": chat_id, "text": text})).await
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
