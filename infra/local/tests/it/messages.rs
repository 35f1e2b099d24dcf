//! Issue 12's messages, Slack side, through the whole local path (ingest, pipeline, delivery
//! against the emulator and the stand-in): owner mentions, threads per key (across a restart
//! of the delivery function), the Mute button (signed `/slack/interactions`) and
//! `ingestlayer mutes list|remove`.

use std::time::Duration;

use ingestlayer::config::{DeliveryConfig, TokenConfig};
use ingestlayer::delivery::threads::{thread_pk, utc_day};
use ingestlayer::delivery::DeliveryDeps;
use ingestlayer::ids::{ChannelRef, TeamId};
use ingestlayer::routing::mutes::{Mute, MuteStore};
use ingestlayer::slack::client::{PostMessage, SlackClient};
use ingestlayer_local::runner::pump_delivery;
use secrecy::SecretString;
use serde_json::{json, Value};
use slack_standin::PostedMessage;

use crate::harness::{feature_used, journey_config, registered, run, Stack, BOT_TOKEN};

const SIGNING_SECRET: &str = "test-signing-secret";

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The example pipeline to #alerts with `extra` set on its destination, paced fast.
async fn pipeline_with(s: &Stack, extra: Value) {
    let mut p = ingestlayer_local::seed::example_pipeline("#alerts");
    p["destinations"][0]["rate_per_second"] = json!(50);
    for (k, v) in extra.as_object().unwrap() {
        p["destinations"][0][k] = v.clone();
    }
    s.put_pipeline(&p).await;
}

/// Sends `events` (user id, feature) and runs the pipeline and delivery until both are idle.
async fn send(s: &Stack, events: &[(&str, &str)]) {
    for (user, feature) in events {
        let (status, body) = s.post("/v1/events", &feature_used(user, feature)).await;
        assert_eq!(status, 202, "{body}");
    }
    s.pump().await;
}

fn all_text(m: &PostedMessage) -> String {
    format!(
        "{}\n{}",
        m.text.clone().unwrap_or_default(),
        m.blocks.clone().unwrap_or(Value::Null)
    )
}

fn top_level(s: &Stack) -> Vec<PostedMessage> {
    s.standin
        .messages_in("#alerts")
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .collect()
}

/// The DeliveryConfig the harness builds its delivery function with.
pub(crate) fn delivery_config(s: &Stack) -> DeliveryConfig {
    let res = &s.res;
    DeliveryConfig {
        slack_queue_url: res.slack_queue_url.clone(),
        slack_drain_queue_url: Some(res.slack_drain_queue_url.clone()),
        slack_dlq_url: res.slack_dlq_url.clone(),
        channels_table: res.channels_table.clone(),
        deliveries_table: res.deliveries_table.clone(),
        max_age: Duration::from_secs(24 * 3600),
        connections_table: Some(res.connections_table.clone()),
        slack_app_secret_arn: Some(res.slack_app_secret_arn.clone()),
        token_secret_prefix: res.token_secret_prefix.clone(),
        kms_key_id: Some(res.kms_key_id.clone()),
        slack_api_url: s.standin.api_url(),
        token: TokenConfig::Secret(res.slack_token_secret_arn.clone()),
        slack_timeout: Duration::from_secs(2),
        ops_channel: None,
        journey: Some(journey_config(res)),
        state_table: Some(res.state_table.clone()),
        buffer_table: Some(res.buffer_table.clone()),
    }
}

async fn dlq_is_empty(s: &Stack) {
    let out = s
        .sqs
        .receive_message()
        .queue_url(&s.res.slack_dlq_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert!(
        out.messages.unwrap_or_default().is_empty(),
        "a message was parked"
    );
}

#[tokio::test]
async fn a_known_owner_is_mentioned_and_an_unknown_one_shown_as_text_never_failing() {
    let s = Stack::new().await;
    pipeline_with(
        &s,
        json!({"mention": "$event.user.owner", "digest_threshold": 0}),
    )
    .await;
    s.standin.add_user("Maria@YourCo.com", "U0MARIA");
    // u_42's owner is maria@yourco.com (a member); u_7's sam@yourco.com is not.
    send(
        &s,
        &[("u_42", "export"), ("u_7", "api"), ("u_42", "webhook")],
    )
    .await;
    let posted = s.standin.messages_in("#alerts");
    assert_eq!(posted.len(), 3, "every message posted, none failed");
    let texts: Vec<String> = posted.iter().map(all_text).collect();
    assert!(texts[0].contains("Owner: <@U0MARIA>"), "{}", texts[0]);
    assert!(texts[1].contains("Owner: sam@yourco.com"), "{}", texts[1]);
    assert!(
        !texts[1].contains("<@"),
        "an unknown owner is not mentioned"
    );
    assert!(texts[2].contains("Owner: <@U0MARIA>"), "{}", texts[2]);
    dlq_is_empty(&s).await;
}

#[tokio::test]
async fn replies_land_in_the_keys_thread_of_the_day_also_after_a_restart() {
    let s = Stack::new().await;
    pipeline_with(
        &s,
        json!({"thread_by": "$event.user.account", "digest_threshold": 0}),
    )
    .await;
    // acme (u_42) and globex (u_7) each start their thread; acme's second one replies.
    send(&s, &[("u_42", "export")]).await;
    send(&s, &[("u_7", "api")]).await;
    send(&s, &[("u_42", "webhook")]).await;
    let parents = top_level(&s);
    assert_eq!(parents.len(), 2, "one thread per key");
    let (acme, globex) = (parents[0].ts.clone(), parents[1].ts.clone());
    assert_eq!(s.standin.replies("#alerts", &acme).len(), 1);

    // The thread's ts is in the state table, under (team, channel, key, day).
    let pk = thread_pk(
        &TeamId::default_team(),
        &ChannelRef::parse("#alerts").unwrap(),
        "acme",
        &utc_day(now_ms()),
    );
    let item = s
        .dynamo
        .get_item()
        .table_name(&s.res.state_table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["ts"].as_s().unwrap(), &acme);
    assert!(item.contains_key("expires_at"));

    // A restart: the delivery function's deps built again, as a new instance would.
    let restarted = DeliveryDeps::load(&s.sdk, &delivery_config(&s))
        .await
        .unwrap();
    for (user, feature) in [("u_42", "api"), ("u_7", "export")] {
        let (status, _) = s.post("/v1/events", &feature_used(user, feature)).await;
        assert_eq!(status, 202);
    }
    while ingestlayer_local::runner::pump_pipeline(&s.events, &s.pipeline)
        .await
        .unwrap()
        > 0
    {}
    while pump_delivery(&s.slack, &restarted).await.unwrap() > 0 {}
    assert_eq!(top_level(&s).len(), 2, "no new thread after the restart");
    assert_eq!(s.standin.replies("#alerts", &acme).len(), 2);
    assert_eq!(s.standin.replies("#alerts", &globex).len(), 1);
    dlq_is_empty(&s).await;
}

#[tokio::test]
async fn a_digest_gathers_one_keys_messages_and_goes_in_its_thread() {
    let s = Stack::new().await;
    pipeline_with(
        &s,
        json!({"thread_by": "$event.user.account", "digest_threshold": 3}),
    )
    .await;
    send(&s, &[("u_42", "export")]).await;
    let acme = top_level(&s)[0].ts.clone();
    // Three of acme's in a row, then one of globex's: one digest in acme's thread, and
    // globex's own message starting its thread.
    send(
        &s,
        &[
            ("u_42", "api"),
            ("u_42", "webhook"),
            ("u_42", "export"),
            ("u_7", "api"),
        ],
    )
    .await;
    let replies = s.standin.replies("#alerts", &acme);
    assert_eq!(replies.len(), 1, "one digest reply");
    let metadata = replies[0].metadata.clone().unwrap();
    assert_eq!(metadata["event_type"], "ingestlayer_digest");
    assert_eq!(
        metadata["event_payload"]["event_ids"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let parents = top_level(&s);
    assert_eq!(parents.len(), 2);
    assert_eq!(
        parents[1].metadata.clone().unwrap()["event_type"],
        "ingestlayer_delivery",
        "globex's message is not in acme's digest"
    );
}

#[tokio::test]
async fn a_thread_slack_no_longer_has_is_started_again() {
    let s = Stack::new().await;
    pipeline_with(
        &s,
        json!({"thread_by": "$event.user.account", "digest_threshold": 0}),
    )
    .await;
    let pk = thread_pk(
        &TeamId::default_team(),
        &ChannelRef::parse("#alerts").unwrap(),
        "acme",
        &utc_day(now_ms()),
    );
    // The day's thread points at a message Slack does not have (deleted).
    s.dynamo
        .put_item()
        .table_name(&s.res.state_table)
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
        .item(
            "ts",
            aws_sdk_dynamodb::types::AttributeValue::S("1.000001".into()),
        )
        .send()
        .await
        .unwrap();
    send(&s, &[("u_42", "export")]).await;
    send(&s, &[("u_42", "api")]).await;
    let parents = top_level(&s);
    assert_eq!(parents.len(), 1, "posted as a new thread, not failed");
    assert_eq!(s.standin.replies("#alerts", &parents[0].ts).len(), 1);
    let refused = s
        .standin
        .requests()
        .iter()
        .filter(|r| r.error.as_deref() == Some("thread_not_found"))
        .count();
    assert_eq!(refused, 1);
    dlq_is_empty(&s).await;
}

/// A message with a Mute button as the pipeline renders it, posted by the bot.
async fn message_with_mute_button(s: &Stack, pipeline: &str, key: &str, ms: i64) -> String {
    let value = json!({"p": pipeline, "k": key, "d": ms}).to_string();
    let blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": "5 failed logins"}}),
        json!({"type": "actions", "elements": [
            {"type": "button", "action_id": "open", "text": {"type": "plain_text", "text": "Open"}, "url": "https://example.com"},
            {"type": "button", "action_id": "ingestlayer_mute", "text": {"type": "plain_text", "text": "Mute this account for 7 days"}, "value": value}
        ]}),
    ];
    let client = SlackClient::new(&s.standin.api_url(), Duration::from_secs(5)).unwrap();
    let answer = client
        .post_message(
            &SecretString::from(BOT_TOKEN.to_owned()),
            &PostMessage {
                channel: "#alerts",
                text: "5 failed logins",
                blocks: &blocks,
                metadata: None,
                unfurl_links: false,
                unfurl_media: false,
                thread_ts: None,
            },
        )
        .await;
    assert!(matches!(
        ingestlayer::slack::answers::classify(&answer),
        ingestlayer::slack::answers::Action::Delivered { .. }
    ));
    s.standin.messages_in("#alerts").last().unwrap().ts.clone()
}

async fn click(s: &Stack, i: &slack_standin::Interaction) -> (u16, String) {
    let (status, _, body) = s
        .connect_request("POST", "/slack/interactions", &i.headers(), &i.body)
        .await;
    (status, body)
}

#[tokio::test]
async fn a_signed_click_on_mute_stores_the_mute_and_says_so_on_the_message() {
    let s = Stack::new().await;
    let week = 7 * 24 * 3600 * 1000;
    let ts = message_with_mute_button(&s, "failed-logins", "acme", week).await;
    let store = MuteStore::new(s.dynamo.clone(), s.res.state_table.clone());
    let now = now_ms() / 1000;
    let keys = [("failed-logins".to_owned(), "acme".to_owned())];

    // Forged (another secret) and stale (older than 5 minutes): refused, nothing muted.
    let forged = s
        .standin
        .click(
            "#alerts",
            &ts,
            "ingestlayer_mute",
            "U0ADA",
            "not-the-secret",
            now,
        )
        .unwrap();
    assert_eq!(click(&s, &forged).await.0, 401);
    let stale = s
        .standin
        .click(
            "#alerts",
            &ts,
            "ingestlayer_mute",
            "U0ADA",
            SIGNING_SECRET,
            now - 301,
        )
        .unwrap();
    assert_eq!(click(&s, &stale).await.0, 401);
    let mut tampered = s
        .standin
        .click(
            "#alerts",
            &ts,
            "ingestlayer_mute",
            "U0ADA",
            SIGNING_SECRET,
            now,
        )
        .unwrap();
    tampered.body = tampered.body.replace("acme", "initech");
    assert_eq!(click(&s, &tampered).await.0, 401);
    assert!(store.active(&keys, now_ms()).await.unwrap().is_empty());
    assert_eq!(s.standin.messages_in("#alerts")[0].edits, 0);

    // Another button of ours is not a mute: acknowledged, nothing done.
    let other = s
        .standin
        .click("#alerts", &ts, "open", "U0ADA", SIGNING_SECRET, now)
        .unwrap();
    assert_eq!(click(&s, &other).await.0, 200);
    assert!(store.active(&keys, now_ms()).await.unwrap().is_empty());

    let before = now_ms();
    let real = s
        .standin
        .click(
            "#alerts",
            &ts,
            "ingestlayer_mute",
            "U0ADA",
            SIGNING_SECRET,
            now,
        )
        .unwrap();
    let (status, body) = click(&s, &real).await;
    assert_eq!(status, 200, "{body}");
    let active = store.active(&keys, now_ms()).await.unwrap();
    let mute = &active[&keys[0]];
    assert_eq!(mute.by, "U0ADA");
    assert!(
        mute.until_ms >= before / 1000 * 1000 + week - 1000 && mute.until_ms <= now_ms() + week
    );
    assert!(
        store.active(&keys, mute.until_ms).await.unwrap().is_empty(),
        "over at until_ms"
    );

    let updated = s.standin.messages_in("#alerts")[0].clone();
    assert_eq!(updated.edits, 1);
    let blocks = updated.blocks.unwrap().to_string();
    assert!(
        !blocks.contains("ingestlayer_mute"),
        "the button is gone: {blocks}"
    );
    assert!(blocks.contains("\"open\""), "other buttons stay: {blocks}");
    assert!(
        blocks.contains("Muted for acme by <@U0ADA> until <!date^"),
        "{blocks}"
    );
}

#[tokio::test]
async fn mutes_are_listed_and_removed_with_the_cli() {
    let s = registered().await;
    let store = MuteStore::new(s.dynamo.clone(), s.res.state_table.clone());
    let now = now_ms();
    for (key, until) in [("acme", now + 3_600_000), ("globex", now - 1000)] {
        store
            .mute(&Mute {
                pipeline: "failed-logins".into(),
                key: key.into(),
                until_ms: until,
                by: "U0ADA".into(),
                at_ms: now - 5000,
            })
            .await
            .unwrap();
    }
    let list = run(&s, &["mutes", "list", "--json"]);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let list = list.json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1, "an expired mute is not in force: {list}");
    assert_eq!(rows[0]["pipeline"], "failed-logins");
    assert_eq!(rows[0]["key"], "acme");
    assert_eq!(rows[0]["by"], "U0ADA");
    let text = run(&s, &["mutes", "list"]);
    assert!(text.stdout.starts_with("PIPELINE"), "{}", text.stdout);
    assert!(
        text.stdout.contains("failed-logins  acme"),
        "{}",
        text.stdout
    );

    let removed = run(&s, &["mutes", "remove", "failed-logins", "acme"]);
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    assert!(
        removed.stdout.contains("unmuted acme"),
        "{}",
        removed.stdout
    );
    let again = run(&s, &["mutes", "remove", "failed-logins", "acme"]);
    assert!(again.stdout.contains("no mute of acme"), "{}", again.stdout);
    let empty = run(&s, &["mutes", "list", "--json"]).json();
    assert_eq!(empty, json!([]));
}

/// No duplicates for replies: Slack takes a reply but its answer never arrives in time; the
/// retry finds the reply in the key's thread (replies are not in the channel's history) and
/// does not post it again.
#[tokio::test]
async fn a_reply_whose_answer_was_lost_is_found_in_its_thread_not_posted_twice() {
    use crate::harness::{HELD_ANSWER, UNCERTAIN_TIMEOUT};
    use slack_standin::{Fault, FaultKind};
    let mut s = Stack::new().await;
    pipeline_with(
        &s,
        json!({"thread_by": "$event.user.account", "digest_threshold": 0}),
    )
    .await;
    send(&s, &[("u_42", "export")]).await;
    let acme = top_level(&s)[0].ts.clone();
    s.delivery.slack = SlackClient::new(&s.standin.api_url(), UNCERTAIN_TIMEOUT).unwrap();
    s.standin
        .inject(Fault::once(FaultKind::AcceptThenDelay(HELD_ANSWER)).on_channel("#alerts"));
    send(&s, &[("u_42", "api")]).await;
    assert_eq!(
        s.standin.replies("#alerts", &acme).len(),
        1,
        "Slack took it"
    );
    let start = std::time::Instant::now();
    while s.delivery_depth().await > 0 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.pump().await;
    }
    assert_eq!(s.delivery_depth().await, 0, "the retry acknowledged it");
    assert_eq!(
        s.standin.replies("#alerts", &acme).len(),
        1,
        "not posted twice"
    );
    assert_eq!(s.standin.requests().len(), 2, "no second chat.postMessage");
}
