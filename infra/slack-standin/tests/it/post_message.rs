use std::time::Duration;

use serde_json::{json, Value};
use slack_standin::{Standin, StandinConfig};

use crate::{call, post, reply, unpaced, TOKEN};

#[tokio::test]
async fn accepts_a_valid_message_and_records_it() {
    let standin = unpaced().await;
    let blocks = json!([
        {"type": "header", "text": {"type": "plain_text", "text": "feature.used"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*plan*\nfree"}]}
    ]);
    let metadata = json!({"event_type": "feature_used", "event_payload": {"plan": "free"}});

    let reply = post(
        &standin,
        &json!({"channel": "#alerts", "text": "feature.used", "blocks": blocks, "metadata": metadata}),
    )
    .await;

    assert!(reply.is_ok(), "{}", reply.body);
    let channel_id = standin.channel_id("#alerts").unwrap();
    assert_eq!(reply.body["channel"], Value::String(channel_id.clone()));
    let messages = standin.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(reply.body["ts"], Value::String(message.ts.clone()));
    assert_eq!(message.channel, "alerts");
    assert_eq!(message.channel_id, channel_id);
    assert_eq!(message.text.as_deref(), Some("feature.used"));
    assert_eq!(message.blocks.as_ref(), Some(&blocks));
    assert_eq!(message.metadata.as_ref(), Some(&metadata));
    assert_eq!(message.token, TOKEN);
    assert_eq!(reply.body["message"]["text"], "feature.used");
    standin.shutdown().await;
}

#[tokio::test]
async fn answers_json_with_a_charset_like_slack() {
    let standin = unpaced().await;
    let reply = post(&standin, &json!({"channel": "alerts", "text": "hi"})).await;
    assert_eq!(
        reply.headers["content-type"],
        "application/json; charset=utf-8"
    );
}

#[tokio::test]
async fn a_channel_is_the_same_with_or_without_hash_or_by_id() {
    let standin = unpaced().await;
    assert!(
        post(&standin, &json!({"channel": "#alerts", "text": "one"}))
            .await
            .is_ok()
    );
    assert!(post(&standin, &json!({"channel": "alerts", "text": "two"}))
        .await
        .is_ok());
    let id = standin.channel_id("alerts").unwrap();
    assert!(post(&standin, &json!({"channel": id, "text": "three"}))
        .await
        .is_ok());

    assert_eq!(standin.messages_in("#alerts").len(), 3);
    assert_eq!(standin.messages_in("alerts").len(), 3);
    assert_eq!(standin.messages_in(&id).len(), 3);
    assert_eq!(standin.messages_in("#other").len(), 0);
}

#[tokio::test]
async fn ts_values_are_unique_and_increasing() {
    let standin = unpaced().await;
    for i in 0..20 {
        let channel = if i % 2 == 0 { "#a" } else { "#b" };
        assert!(post(&standin, &json!({"channel": channel, "text": "x"}))
            .await
            .is_ok());
    }
    let ts: Vec<(u64, u64)> = standin
        .messages()
        .iter()
        .map(|m| {
            let (secs, micros) = m.ts.split_once('.').unwrap();
            assert_eq!(micros.len(), 6, "{}", m.ts);
            (secs.parse().unwrap(), micros.parse().unwrap())
        })
        .collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_second_message_within_a_second_gets_429_with_retry_after_while_another_channel_is_unaffected(
) {
    let standin = Standin::start(StandinConfig::default()).await.unwrap();

    assert!(post(&standin, &json!({"channel": "#alerts", "text": "1"}))
        .await
        .is_ok());
    let limited = post(&standin, &json!({"channel": "#alerts", "text": "2"})).await;
    let other = post(&standin, &json!({"channel": "#sales", "text": "3"})).await;

    assert_eq!(limited.status, 429);
    assert_eq!(limited.error(), Some("ratelimited"));
    assert_eq!(limited.headers["retry-after"], "1");
    assert!(other.is_ok(), "{}", other.body);
    assert_eq!(standin.messages_in("#alerts").len(), 1);
    assert_eq!(standin.messages_in("#sales").len(), 1);
    let statuses: Vec<u16> = standin.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 429, 200]);
}

// Paused clock: the stand-in paces on tokio's clock, so load on the machine cannot let the
// bucket refill between the first two posts.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_channel_accepts_again_once_its_bucket_refills() {
    let standin = Standin::start(StandinConfig {
        rate_per_channel_per_sec: 20.0,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    assert!(post(&standin, &json!({"channel": "#alerts", "text": "1"}))
        .await
        .is_ok());
    assert_eq!(
        post(&standin, &json!({"channel": "#alerts", "text": "2"}))
            .await
            .status,
        429
    );
    tokio::time::advance(Duration::from_millis(80)).await;
    assert!(post(&standin, &json!({"channel": "#alerts", "text": "3"}))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_burst_allows_that_many_messages_back_to_back() {
    let standin = Standin::start(StandinConfig {
        burst: 3,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    for _ in 0..3 {
        assert!(post(&standin, &json!({"channel": "#alerts", "text": "x"}))
            .await
            .is_ok());
    }
    assert_eq!(
        post(&standin, &json!({"channel": "#alerts", "text": "x"}))
            .await
            .status,
        429
    );
}

#[tokio::test]
async fn rejects_a_request_without_a_token_with_not_authed() {
    let standin = unpaced().await;
    let response = reqwest::Client::new()
        .post(format!("{}/chat.postMessage", standin.api_url()))
        .json(&json!({"channel": "#alerts", "text": "hi"}))
        .send()
        .await
        .unwrap();
    let reply = reply(response).await;
    assert_eq!((reply.status, reply.error()), (200, Some("not_authed")));
    assert!(standin.messages().is_empty());
}

#[tokio::test]
async fn rejects_a_token_it_does_not_know_with_invalid_auth() {
    let standin = Standin::start(StandinConfig {
        accepted_tokens: Some(vec!["xoxb-the-right-one".to_owned()]),
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let reply = post(&standin, &json!({"channel": "#alerts", "text": "hi"})).await;
    assert_eq!(reply.error(), Some("invalid_auth"));

    let any = unpaced().await;
    let response = reqwest::Client::new()
        .post(format!("{}/chat.postMessage", any.api_url()))
        .bearer_auth("not-a-slack-token")
        .json(&json!({"channel": "#alerts", "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(super::reply(response).await.error(), Some("invalid_auth"));
}

#[tokio::test]
async fn accepts_a_form_encoded_body_with_the_token_and_blocks_in_it() {
    let standin = unpaced().await;
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi* &amp; bye"}}]);
    let metadata = json!({"event_type": "t", "event_payload": {"a": 1}});
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", TOKEN)
        .append_pair("channel", "#alerts")
        .append_pair("blocks", &blocks.to_string())
        .append_pair("metadata", &metadata.to_string())
        .finish();
    let response = reqwest::Client::new()
        .post(format!("{}/chat.postMessage", standin.api_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let reply = reply(response).await;
    assert!(reply.is_ok(), "{}", reply.body);
    let message = &standin.messages_in("#alerts")[0];
    assert_eq!(message.blocks.as_ref(), Some(&blocks));
    assert_eq!(message.metadata.as_ref(), Some(&metadata));
}

#[tokio::test]
async fn rejects_malformed_json_with_invalid_json() {
    let standin = unpaced().await;
    for body in ["{\"channel\": ", "[1, 2]", "\"text\""] {
        let response = reqwest::Client::new()
            .post(format!("{}/chat.postMessage", standin.api_url()))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .unwrap();
        let reply = reply(response).await;
        assert_eq!(
            (reply.status, reply.error()),
            (200, Some("invalid_json")),
            "{body}"
        );
    }
    assert!(standin.messages().is_empty());
}

#[tokio::test]
async fn rejects_a_message_without_text_or_blocks_with_no_text() {
    let standin = unpaced().await;
    for body in [
        json!({"channel": "#alerts"}),
        json!({"channel": "#alerts", "text": ""}),
        json!({"channel": "#alerts", "blocks": []}),
        json!({"channel": "#alerts", "text": null, "blocks": null}),
    ] {
        assert_eq!(
            post(&standin, &body).await.error(),
            Some("no_text"),
            "{body}"
        );
    }
    assert!(standin.messages().is_empty());
}

#[tokio::test]
async fn rejects_text_over_40000_characters_with_msg_too_long() {
    let standin = unpaced().await;
    let at_limit = post(
        &standin,
        &json!({"channel": "#a", "text": "é".repeat(40_000)}),
    )
    .await;
    assert!(at_limit.is_ok());
    let over = post(
        &standin,
        &json!({"channel": "#a", "text": "x".repeat(40_001)}),
    )
    .await;
    assert_eq!(over.error(), Some("msg_too_long"));
}

#[tokio::test]
async fn rejects_a_missing_or_unknown_channel_with_channel_not_found() {
    let standin = unpaced().await;
    for body in [
        json!({"text": "hi"}),
        json!({"channel": "", "text": "hi"}),
        json!({"channel": "C0NOSUCHID", "text": "hi"}),
        json!({"channel": "two words", "text": "hi"}),
        json!({"channel": 42, "text": "hi"}),
    ] {
        assert_eq!(
            post(&standin, &body).await.error(),
            Some("channel_not_found"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn posting_to_a_private_channel_the_bot_is_not_in_fails_with_not_in_channel() {
    let standin = unpaced().await;
    standin.create_channel("#secret", true, false);
    standin.create_channel("#inner-circle", true, true);
    standin.create_channel("#lobby", false, false);

    let secret = post(&standin, &json!({"channel": "#secret", "text": "hi"})).await;
    assert_eq!(
        (secret.status, secret.error()),
        (200, Some("not_in_channel"))
    );
    assert!(
        post(&standin, &json!({"channel": "#inner-circle", "text": "hi"}))
            .await
            .is_ok()
    );
    assert!(post(&standin, &json!({"channel": "#lobby", "text": "hi"}))
        .await
        .is_ok());
    assert!(standin.messages_in("#secret").is_empty());
}

#[tokio::test]
async fn posting_to_an_archived_channel_fails_with_is_archived() {
    let standin = unpaced().await;
    assert!(post(&standin, &json!({"channel": "#old", "text": "hi"}))
        .await
        .is_ok());
    standin.archive_channel("old");
    let reply = post(&standin, &json!({"channel": "#old", "text": "hi"})).await;
    assert_eq!(reply.error(), Some("is_archived"));
}

#[tokio::test]
async fn rejects_malformed_metadata_with_invalid_metadata_format() {
    let standin = unpaced().await;
    for metadata in [
        json!({"event_type": "x"}),
        json!({"event_payload": {}}),
        json!({"event_type": "x", "event_payload": "nope"}),
        json!("{not json"),
    ] {
        let reply = post(
            &standin,
            &json!({"channel": "#alerts", "text": "hi", "metadata": metadata}),
        )
        .await;
        assert_eq!(reply.error(), Some("invalid_metadata_format"), "{metadata}");
    }
    assert!(standin.messages().is_empty());
}

#[tokio::test]
async fn records_every_request_including_rejected_ones() {
    let standin = unpaced().await;
    post(&standin, &json!({"channel": "#alerts", "text": "ok"})).await;
    post(&standin, &json!({"channel": "alerts"})).await;
    post(&standin, &json!({"text": "no channel"})).await;

    let requests = standin.requests();
    let seen: Vec<(&str, u16, Option<&str>)> = requests
        .iter()
        .map(|r| (r.channel.as_str(), r.status, r.error.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("alerts", 200, None),
            ("alerts", 200, Some("no_text")),
            ("", 200, Some("channel_not_found")),
        ]
    );
    assert_eq!(
        requests[0].ts.as_deref(),
        Some(standin.messages()[0].ts.as_str())
    );
    assert!(requests[0].at <= requests[1].at && requests[1].at <= requests[2].at);
}

#[tokio::test]
async fn auth_test_describes_the_bot() {
    let standin = unpaced().await;
    let reply = call(&standin, "auth.test", &json!({})).await;
    assert!(reply.is_ok());
    assert_eq!(reply.body["team_id"], "T0STANDIN");
    assert_eq!(reply.body["user_id"], "U0BOT");
    assert_eq!(reply.body["bot_id"], "B0BOT");
}

#[tokio::test]
async fn unknown_methods_answer_unknown_method() {
    let standin = unpaced().await;
    let reply = call(&standin, "chat.scheduleMessage", &json!({})).await;
    assert_eq!((reply.status, reply.error()), (200, Some("unknown_method")));
}

#[tokio::test(start_paused = true)]
async fn pacing_follows_tokios_clock_so_paused_tests_can_advance_it() {
    let standin = Standin::start(StandinConfig::default()).await.unwrap();
    assert!(post(&standin, &json!({"channel": "#alerts", "text": "1"}))
        .await
        .is_ok());
    let limited = post(&standin, &json!({"channel": "#alerts", "text": "2"})).await;
    assert_eq!(limited.status, 429);

    tokio::time::advance(Duration::from_secs(1)).await;

    assert!(post(&standin, &json!({"channel": "#alerts", "text": "3"}))
        .await
        .is_ok());
    let messages = standin.messages_in("#alerts");
    assert_eq!(
        messages[1].at.duration_since(messages[0].at),
        Duration::from_secs(1)
    );
}

#[tokio::test]
async fn channels_can_be_shaped_and_requests_read_over_http() {
    let standin = unpaced().await;
    let base = format!("http://{}", standin.addr());
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/_standin/channels"))
        .json(&json!({"name": "#secret", "private": true, "bot_member": false}))
        .send()
        .await
        .unwrap();
    let created = reply(created).await;
    assert!(created.is_ok(), "{}", created.body);
    assert_eq!(
        created.body["channel"]["id"],
        Value::String(standin.channel_id("secret").unwrap())
    );

    post(&standin, &json!({"channel": "#secret", "text": "hi"})).await;

    let requests = client
        .get(format!("{base}/_standin/requests"))
        .send()
        .await
        .unwrap();
    let requests = reply(requests).await.body;
    assert_eq!(requests[0]["channel"], "secret");
    assert_eq!(requests[0]["error"], "not_in_channel");
}

#[tokio::test]
async fn messages_from_a_count_are_those_accepted_after_it_in_order() {
    let standin = unpaced().await;
    for (channel, text) in [("#alerts", "one"), ("#growth", "two"), ("#alerts", "three")] {
        assert!(post(&standin, &json!({"channel": channel, "text": text}))
            .await
            .is_ok());
    }
    let texts = |from: usize| -> Vec<String> {
        standin
            .messages_from(from)
            .into_iter()
            .filter_map(|m| m.text)
            .collect()
    };
    assert_eq!(texts(0), ["one", "two", "three"]);
    assert_eq!(texts(1), ["two", "three"]);
    assert!(texts(3).is_empty());
    assert!(texts(10).is_empty(), "past the end is nothing, not a panic");
    standin.shutdown().await;
}
