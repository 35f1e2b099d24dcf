//! Discord's rate limits, paced on tokio's paused clock so machine load cannot refill a
//! bucket between two requests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use discord_standin::{RateLimit, Standin, StandinConfig};
use serde_json::json;

use crate::{default_webhook, execute, Reply};

fn seconds(reply: &Reply, header: &str) -> f64 {
    reply
        .header(header)
        .unwrap_or_else(|| panic!("no {header}"))
        .parse()
        .unwrap()
}

// Docs: https://discord.com/developers/docs/topics/rate-limits#header-format
#[tokio::test(start_paused = true)]
async fn every_answer_carries_the_buckets_headers() {
    let standin = Standin::start(StandinConfig::default()).await.unwrap();
    let webhook = default_webhook(&standin);
    let wall_before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    let accepted = execute(&webhook.url, &json!({"content": "x"})).await;
    let refused = execute(&webhook.url, &json!({"content": ""})).await;

    assert_eq!(accepted.status, 204);
    assert_eq!(refused.status, 400);
    for (reply, remaining) in [(&accepted, "4"), (&refused, "3")] {
        assert_eq!(reply.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
        assert_eq!(reply.header("x-ratelimit-reset-after"), Some("2.000"));
        assert!(reply
            .header("x-ratelimit-bucket")
            .is_some_and(|b| !b.is_empty()));
        let reset = seconds(reply, "x-ratelimit-reset");
        assert!(
            reset >= wall_before + 1.9 && reset < wall_before + 60.0,
            "{reset}"
        );
        assert!(
            reply.header("x-ratelimit-scope").is_none(),
            "scope only on 429s"
        );
    }
    assert_eq!(
        accepted.header("x-ratelimit-bucket"),
        refused.header("x-ratelimit-bucket")
    );
}

// Docs: https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit
#[tokio::test(start_paused = true)]
async fn the_sixth_request_within_two_seconds_gets_429_with_retry_after() {
    let standin = Standin::start(StandinConfig::default()).await.unwrap();
    let webhook = default_webhook(&standin);
    for i in 0..5 {
        let reply = execute(&webhook.url, &json!({"content": format!("m{i}")})).await;
        assert_eq!(reply.status, 204, "{i}");
    }
    tokio::time::advance(Duration::from_millis(500)).await;

    let limited = execute(&webhook.url, &json!({"content": "m5"})).await;

    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.body,
        json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false})
    );
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(limited.header("x-ratelimit-scope"), Some("user"));
    assert_eq!(limited.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(limited.header("x-ratelimit-reset-after"), Some("1.500"));
    assert!(limited.header("x-ratelimit-global").is_none());
    assert_eq!(standin.messages(&webhook.id).len(), 5);
    assert_eq!(standin.requests().last().map(|r| r.status), Some(429));
}

// Docs: https://discord.com/developers/docs/topics/rate-limits
// (per-route limits account for the webhook as a top-level resource of the path)
#[tokio::test(start_paused = true)]
async fn a_webhook_refills_after_its_window_and_others_have_their_own_bucket() {
    let standin = Standin::start(StandinConfig {
        webhook_rate_limit: Some(RateLimit::new(2, Duration::from_secs(2))),
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let webhook = default_webhook(&standin);
    let other = standin.create_webhook("other");
    assert_eq!(
        execute(&webhook.url, &json!({"content": "1"})).await.status,
        204
    );
    assert_eq!(
        execute(&webhook.url, &json!({"content": "2"})).await.status,
        204
    );
    assert_eq!(
        execute(&webhook.url, &json!({"content": "3"})).await.status,
        429
    );
    assert_eq!(
        execute(&other.url, &json!({"content": "elsewhere"}))
            .await
            .status,
        204
    );

    tokio::time::advance(Duration::from_millis(1999)).await;
    assert_eq!(
        execute(&webhook.url, &json!({"content": "4"})).await.status,
        429
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let refilled = execute(&webhook.url, &json!({"content": "5"})).await;

    assert_eq!(refilled.status, 204);
    assert_eq!(refilled.header("x-ratelimit-remaining"), Some("1"));
    let messages = standin.messages(&webhook.id);
    let contents: Vec<_> = messages
        .iter()
        .map(|m| m.content.clone().unwrap())
        .collect();
    assert_eq!(contents, ["1", "2", "5"]);
    assert_eq!(
        messages[2].at.duration_since(messages[0].at),
        Duration::from_secs(2)
    );
}

// Docs: https://discord.com/developers/docs/topics/rate-limits#global-rate-limit
#[tokio::test(start_paused = true)]
async fn over_the_global_limit_every_webhook_gets_a_global_429() {
    let standin = Standin::start(StandinConfig {
        webhook_rate_limit: None,
        global_rate_limit: Some(RateLimit::new(3, Duration::from_secs(1))),
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let hooks: Vec<_> = (0..4)
        .map(|i| standin.create_webhook(&format!("w{i}")))
        .collect();
    for hook in &hooks[..3] {
        assert_eq!(
            execute(&hook.url, &json!({"content": "x"})).await.status,
            204
        );
    }
    tokio::time::advance(Duration::from_millis(250)).await;

    let limited = execute(&hooks[3].url, &json!({"content": "x"})).await;

    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.body,
        json!({"message": "You are being rate limited.", "retry_after": 0.75, "global": true})
    );
    assert_eq!(limited.header("x-ratelimit-global"), Some("true"));
    assert_eq!(limited.header("x-ratelimit-scope"), Some("global"));
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert!(standin.messages(&hooks[3].id).is_empty());

    tokio::time::advance(Duration::from_millis(750)).await;
    assert_eq!(
        execute(&hooks[3].url, &json!({"content": "x"}))
            .await
            .status,
        204
    );
}

// Docs: https://discord.com/developers/docs/topics/rate-limits#global-rate-limit (50 per second)
#[tokio::test(start_paused = true)]
async fn the_default_global_limit_is_fifty_requests_per_second() {
    let standin = Standin::start(StandinConfig {
        webhook_rate_limit: None,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let webhook = default_webhook(&standin);
    let client = reqwest::Client::new();
    let post = || {
        client
            .post(&webhook.url)
            .json(&json!({"content": "x"}))
            .send()
    };
    for i in 0..50 {
        assert_eq!(post().await.unwrap().status(), 204, "{i}");
    }
    let limited = crate::reply(post().await.unwrap()).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["global"], true);
}
