//! Channels the bot is not in, uncertain posts it must check, and what the enrichment and
//! pipeline tables may hold: each through the real handlers, the emulator and the Slack
//! stand-in over HTTP.

use std::time::{Duration, Instant};

use ingestlayer::slack::client::{PostMessage, SlackClient};
use secrecy::SecretString;
use serde_json::json;
use slack_standin::{Fault, FaultKind};

use crate::harness::{
    posted_client_ids, posted_event_ids, Stack, BOT_TOKEN, HELD_ANSWER, UNCERTAIN_TIMEOUT,
};

const SIGNING_SECRET: &str = "test-signing-secret";
/// The stand-in's workspace.
const TEAM: &str = "T0STANDIN";

fn event_with_id(id: &str) -> String {
    json!({"name": "feature.used", "id": id,
        "data": {"user_id": "u_42", "feature": "api", "count": 1, "plan": "pro"}})
    .to_string()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn signed(body: &str) -> Vec<(&'static str, String)> {
    let ts = now();
    vec![
        ("x-slack-request-timestamp", ts.to_string()),
        (
            "x-slack-signature",
            slack_standin::sign_event_request(SIGNING_SECRET, ts, body),
        ),
        ("content-type", "application/json".into()),
    ]
}

/// A pipeline like the example one, posting to `channel`.
async fn route_to(s: &Stack, channel: &str) {
    let mut p = ingestlayer_local::seed::example_pipeline(channel);
    p["id"] = json!(format!("to-{}", channel.trim_start_matches('#')));
    s.put_pipeline(&p).await;
}

/// A Slack client that gives up after [`UNCERTAIN_TIMEOUT`], with a fault that makes Slack
/// take the next post to `channel` at once and hold its answer far longer: an uncertain post
/// that landed.
fn uncertain_next_post(s: &mut Stack, channel: &str) {
    s.delivery.slack = SlackClient::new(&s.standin.api_url(), UNCERTAIN_TIMEOUT).unwrap();
    s.delivery.retry_schedule = vec![1];
    s.standin
        .inject(Fault::once(FaultKind::AcceptThenDelay(HELD_ANSWER)).on_channel(channel));
}

/// Pumps until slack-delivery holds nothing (its two queues are empty) or `timeout` passes.
async fn drain(s: &Stack, timeout: Duration) {
    let start = Instant::now();
    while s.delivery_depth().await > 0 && start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.pump().await;
    }
}

/// How many posts in `channel` carry the event the stack's API key sent as `client_id`.
fn posts_of(s: &Stack, channel: &str, client_id: &str) -> usize {
    let scoped = format!("tests:{client_id}");
    posted_event_ids(&s.standin.messages_in(channel))
        .iter()
        .filter(|id| **id == scoped)
        .count()
}

#[tokio::test]
async fn the_bot_joins_a_public_channel_before_its_first_post_so_an_uncertain_post_is_checked() {
    let mut s = Stack::new().await;
    // #growth exists and the bot is not in it: posting works (chat:write.public), reading
    // its history does not.
    s.standin.create_channel("growth", false, false);
    route_to(&s, "#growth").await;
    uncertain_next_post(&mut s, "#growth");
    s.post("/v1/events", &event_with_id("join-1")).await;
    s.pump().await;
    let joins_of_growth = |s: &Stack| s.standin.joins().iter().filter(|c| *c == "growth").count();
    assert_eq!(joins_of_growth(&s), 1, "joined before posting");
    assert_eq!(posts_of(&s, "#growth", "join-1"), 1, "Slack took it");
    assert_eq!(s.delivery_depth().await, 1, "outcome unknown");

    drain(&s, Duration::from_secs(20)).await;
    assert_eq!(
        s.delivery_depth().await,
        0,
        "the history check found the post and acknowledged it"
    );
    assert_eq!(posts_of(&s, "#growth", "join-1"), 1, "never posted twice");
    assert!(s.peek(&s.res.slack_dlq_url).await.is_empty());
    assert_eq!(s.channels().paused().await.unwrap(), []);

    // Joined once: later posts do not join again.
    s.post("/v1/events", &event_with_id("join-2")).await;
    s.pump().await;
    assert_eq!(posts_of(&s, "#growth", "join-2"), 1);
    assert_eq!(joins_of_growth(&s), 1);
}

#[tokio::test]
async fn a_bot_removed_from_a_public_channel_joins_again_when_history_says_not_in_channel() {
    let mut s = Stack::new().await;
    s.standin.create_channel("growth", false, true);
    route_to(&s, "#growth").await;
    s.post("/v1/events", &event_with_id("before")).await;
    s.pump().await;
    assert_eq!(posts_of(&s, "#growth", "before"), 1);

    // Someone removes the bot; the next post is uncertain.
    s.standin.create_channel("growth", false, false);
    uncertain_next_post(&mut s, "#growth");
    s.post("/v1/events", &event_with_id("after")).await;
    s.pump().await;
    drain(&s, Duration::from_secs(20)).await;
    assert_eq!(s.delivery_depth().await, 0);
    assert_eq!(
        posts_of(&s, "#growth", "after"),
        1,
        "found, not posted again"
    );
    assert_eq!(
        s.standin.joins().last().map(String::as_str),
        Some("growth"),
        "{:?}",
        s.standin.joins()
    );
    assert_eq!(s.channels().paused().await.unwrap(), []);
}

/// An uncertain post to a private channel the bot was then removed from: its history
/// cannot be read, so the channel is paused at once with what to do (not retried for
/// hours); inviting the bot back lifts the pause, and the check then finds the post.
#[tokio::test]
async fn a_channel_whose_history_cannot_be_read_is_paused_at_once_and_resumes_when_the_bot_is_invited(
) {
    let mut s = Stack::new().await;
    s.standin.create_channel("secret", true, true);
    route_to(&s, "#secret").await;
    uncertain_next_post(&mut s, "#secret");
    s.post("/v1/events", &event_with_id("priv-1")).await;
    s.pump().await;
    assert_eq!(posts_of(&s, "#secret", "priv-1"), 1, "Slack took it");
    s.standin.create_channel("secret", true, false);
    s.post("/v1/events", &event_with_id("priv-2")).await;

    let started = Instant::now();
    drain(&s, Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "surfaced at once, not retried"
    );
    let paused = s.channels().paused().await.unwrap();
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!(paused[0].name(), "#secret");
    assert_eq!(paused[0].pause.error, "not_in_channel");
    assert!(
        paused[0].pause.hint.contains("invite the app to #secret"),
        "{}",
        paused[0].pause.hint
    );
    assert!(!paused[0].pause.hint.contains("chan#"));
    // Read and released again, so the redrive below finds them.
    let parked = ingestlayer_cli::dlq::list(&s.sqs, &s.res.slack_dlq_url)
        .await
        .unwrap();
    assert_eq!(parked.len(), 2, "the backlog is kept");
    assert!(parked[0].reason.contains("invite the app to #secret"));
    assert_eq!(posts_of(&s, "#secret", "priv-1"), 1);
    assert_eq!(posts_of(&s, "#secret", "priv-2"), 0);

    // The bot is invited: Slack reports it, the pause lifts and the backlog flows.
    let event = s.standin.invite_bot("#secret").unwrap();
    let body = event.to_string();
    let (status, _, answer) = s
        .connect_request("POST", "/slack/events", &signed(&body), &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(s.channels().paused().await.unwrap(), []);
    assert!(
        s.pump_until(Duration::from_secs(15), |s| posts_of(
            s, "#secret", "priv-2"
        ) == 1)
            .await
    );
    assert_eq!(
        posted_client_ids(&s.standin.messages_in("#secret")),
        ["priv-1", "priv-2"],
        "in order, each once"
    );
    assert!(s.peek(&s.res.slack_dlq_url).await.is_empty());
}

#[tokio::test]
async fn inviting_the_bot_to_a_paused_channel_redrives_only_that_channels_backlog_in_order() {
    let s = Stack::new().await;
    s.standin.create_channel("secret", true, false);
    s.standin.create_channel("hidden", true, false);
    route_to(&s, "#secret").await;
    route_to(&s, "#hidden").await;
    for i in 0..3 {
        s.post("/v1/events", &event_with_id(&format!("sec-{i}")))
            .await;
    }
    s.pump().await;
    let paused = s.channels().paused().await.unwrap();
    let names: Vec<String> = paused.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["#hidden", "#secret"]);
    assert!(paused[1].pause.hint.contains("#secret") && !paused[1].pause.hint.contains("chan#"));
    // #alerts (the example pipeline) keeps flowing; #secret and #hidden wait, 3 each.
    assert_eq!(s.depth(&s.res.slack_dlq_url).await, 6);

    // Someone else joining #secret changes nothing.
    let mut other = s.standin.invite_bot("#secret").unwrap();
    s.standin.create_channel("secret", true, false);
    other["event"]["user"] = json!("U0SOMEONE");
    let body = other.to_string();
    let (status, _, _) = s
        .connect_request("POST", "/slack/events", &signed(&body), &body)
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.channels().paused().await.unwrap().len(), 2);

    // The bot joining #secret: only #secret resumes, in order.
    let event = s.standin.invite_bot("#secret").unwrap();
    assert_eq!(event["event"]["user"], s.standin.bot_user_id());
    assert_eq!(event["team_id"], TEAM);
    let body = event.to_string();
    let (status, _, _) = s
        .connect_request("POST", "/slack/events", &signed(&body), &body)
        .await;
    assert_eq!(status, 200);
    let still: Vec<String> = s
        .channels()
        .paused()
        .await
        .unwrap()
        .iter()
        .map(|p| p.name())
        .collect();
    assert_eq!(still, ["#hidden"]);
    assert!(
        s.pump_until(Duration::from_secs(15), |s| posted_client_ids(
            &s.standin.messages_in("#secret")
        )
        .len()
            >= 3)
            .await
    );
    assert_eq!(
        posted_client_ids(&s.standin.messages_in("#secret")),
        ["sec-0", "sec-1", "sec-2"]
    );
    assert!(s.standin.messages_in("#hidden").is_empty());
    assert_eq!(
        s.peek(&s.res.slack_dlq_url).await.len(),
        3,
        "#hidden's backlog still waits"
    );
}

/// More messages were posted to the channel after an uncertain post than the history
/// check reads: whether it landed is unknown, so it is neither posted again nor dropped.
#[tokio::test]
async fn beyond_the_history_look_back_the_check_answers_unknown_and_does_not_post_again() {
    let mut s = Stack::new().await;
    uncertain_next_post(&mut s, "#alerts");
    s.post("/v1/events", &event_with_id("deep-1")).await;
    s.pump().await;
    assert_eq!(posts_of(&s, "#alerts", "deep-1"), 1);

    // A busy channel: more messages since the attempt than the look-back reads.
    let filler = ingestlayer::slack::client::HISTORY_PAGES
        * ingestlayer::slack::client::HISTORY_PAGE_SIZE
        + 5;
    let client = SlackClient::new(&s.standin.api_url(), Duration::from_secs(10)).unwrap();
    let token = SecretString::from(BOT_TOKEN.to_owned());
    for i in 0..filler {
        let answer = client
            .post_message(
                &token,
                &PostMessage {
                    channel: "#alerts",
                    text: "chatter",
                    blocks: &[],
                    metadata: Some(json!({"event_type": "chatter", "event_payload": {"event_id": format!("chatter-{i}")}})),
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
    }

    // Retries come and go (1 s apart here), each taking the unsure key over (the ledger
    // counts them), checking the history and letting go of it unsure; none posts again.
    let attempts = |ledger: &[serde_json::Value]| {
        ledger
            .first()
            .map_or(0, |i| i["attempts"].as_u64().unwrap_or(0))
    };
    let start = Instant::now();
    let mut ledger = s.ledger().await;
    while attempts(&ledger) < 3 && start.elapsed() < Duration::from_secs(20) {
        s.pump().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        ledger = s.ledger().await;
    }
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert!(
        attempts(&ledger) >= 3,
        "two retries checked the history: {ledger:?}"
    );
    assert_eq!(
        ledger[0]["status"], "unsure",
        "still uncertain, and no invocation holds it"
    );
    assert_eq!(
        posts_of(&s, "#alerts", "deep-1"),
        1,
        "not posted on a guess"
    );
    assert_eq!(s.delivery_depth().await, 1, "still waiting, not dropped");
    assert!(s.peek(&s.res.slack_dlq_url).await.is_empty());
}

/// A sender cannot make its event pass a filter on an enriched attribute by carrying that
/// attribute itself: the entity lookup misses, and the attribute is empty.
#[tokio::test]
async fn a_sender_cannot_supply_enriched_attributes_to_pass_a_filter() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": "pro-only",
        "events": ["feature.used"],
        "steps": [
            {"type": "enrich.entity", "entity": "user", "key": "user_id"},
            {"type": "filter.match", "expr": "user.plan == 'pro'"}
        ],
        "destinations": [{"type": "slack", "channel": "#pro"}]
    }))
    .await;
    let spoof = json!({"name": "feature.used", "id": "spoof-1",
        "data": {"user_id": "u_nobody", "feature": "api", "count": 1, "plan": "pro", "user": {"plan": "pro", "account": "Spoofed"}}});
    assert_eq!(s.post("/v1/events", &spoof.to_string()).await.0, 202);
    s.pump().await;
    assert!(
        s.standin.messages_in("#pro").is_empty(),
        "the sender's own user.plan passed the filter"
    );
    let alerts = serde_json::to_string(
        &s.alerts()
            .iter()
            .map(|m| m.blocks.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!alerts.contains("Spoofed"), "{alerts}");

    // A user the entities table knows as pro passes, whatever the event claims.
    let pro = ingestlayer_local::seed::example_entities()
        .into_iter()
        .find(|e| e["plan"] == "pro")
        .expect("the example entities include a pro user");
    let user_id = pro["pk"].as_str().unwrap().trim_start_matches("user#");
    let real = json!({"name": "feature.used", "id": "real-1",
        "data": {"user_id": user_id, "feature": "api", "count": 1, "plan": "free", "user": {"plan": "free"}}});
    assert_eq!(s.post("/v1/events", &real.to_string()).await.0, 202);
    s.pump().await;
    assert_eq!(
        posted_client_ids(&s.standin.messages_in("#pro")),
        ["real-1"]
    );
}

/// DynamoDB refuses a whole BatchGetItem over one key above 2048 bytes: an event with a
/// huge user id must not fail the other events routed with it.
#[tokio::test]
async fn one_event_with_a_huge_user_id_does_not_fail_the_others() {
    let s = Stack::new().await;
    let mut events = Vec::new();
    for i in 0..4 {
        events.push(json!({"name": "feature.used", "id": format!("batch-{i}"),
            "data": {"user_id": "u_42", "feature": "api", "count": i, "plan": "pro"}}));
    }
    events.insert(
        2,
        json!({"name": "feature.used", "id": "huge",
            "data": {"user_id": "u".repeat(100_000), "feature": "api", "count": 9, "plan": "pro"}}),
    );
    let (status, body) = s
        .post("/v1/events/batch", &json!({ "events": events }).to_string())
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(5)),
        "{body}"
    );
    s.pump().await;
    let mut posted = posted_client_ids(&s.alerts());
    posted.sort();
    assert_eq!(posted, ["batch-0", "batch-1", "batch-2", "batch-3", "huge"]);
    assert_eq!(s.depth(&s.res.events_queue_url).await, 0);
    assert_eq!(s.depth(&s.res.events_dlq_url).await, 0);
}

/// The destinations page saves only what the pipeline function can load; an item that is
/// bad anyway (written by hand) is reported and never stops the others.
#[tokio::test]
async fn a_bad_team_is_refused_on_save_and_a_bad_item_never_stops_the_others() {
    let s = Stack::new().await;
    let bearer = (
        "authorization",
        format!("Bearer {}", crate::harness::ADMIN_TOKEN),
    );
    let (_, _, page) = s
        .connect_request("GET", "/destinations", std::slice::from_ref(&bearer), "")
        .await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let form = |target: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &csrf)
            .append_pair("pipeline", "feature-usage-to-alerts")
            .append_pair("destination", "0")
            .append_pair("target", target)
            .finish()
    };
    let headers = [
        bearer.clone(),
        ("content-type", "application/x-www-form-urlencoded".into()),
    ];
    let (status, _, page) = s
        .connect_request(
            "POST",
            "/destinations/pipelines",
            &headers,
            &form("bad team|#alerts"),
        )
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Slack team id"), "{page}");

    // A bad item written past the page: reported, and the other pipelines still run.
    s.put_pipeline(&json!({"id": "hand-written", "events": ["feature.used"],
        "destinations": [{"type": "slack", "team": "bad team", "channel": "#growth"}]}))
        .await;
    s.post("/v1/events", &event_with_id("still-1")).await;
    s.pump().await;
    assert_eq!(posted_client_ids(&s.alerts()), ["still-1"]);
    assert!(s.standin.messages_in("#growth").is_empty());
    let (_, _, page) = s
        .connect_request("GET", "/destinations", &[bearer], "")
        .await;
    assert!(
        page.contains("Not loaded: pipeline hand-written: destinations[0].team"),
        "{page}"
    );
    assert!(page.contains("data-pipeline=\"feature-usage-to-alerts\""));
}
