//! Destinations beyond Slack through the whole local path, with the shipped binaries: an
//! event is ingested, the pipeline binary routes it to Slack, Discord and a signed webhook
//! at once, and the slack-delivery and destination-delivery binaries deliver each exactly
//! once, to the Slack and Discord stand-ins and to a receiver that verifies the signature
//! with the Standard Webhooks reference library. Then, per destination, what the issue asks
//! of each: a 429 honoured with nothing sent inside the wait, a 5xx storm ridden out with
//! nothing lost, one target paused with its hint while another of the same type flows, and
//! an ambiguous failure handled as the README promises.

use std::net::SocketAddr;
use std::time::Duration;

use ingestlayer_local::functions::{Functions, DESTINATION_DELIVERY};
use ingestlayer_local::runner::{pump_function, QueueFeed};
use ingestlayer_local::webhook_receiver::Receiver;
use serde_json::json;

use crate::harness::{feature_used, registered, run, Stack};

const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The destination-delivery binary with the stand-ins' URLs and the local-development
/// switch `make dev` sets.
fn binaries(s: &Stack, urls: Urls) -> Functions {
    crate::binaries::assert_built();
    let mut local = s.local();
    local.urls.discord_api_url = urls.discord;
    local.urls.telegram_api_url = urls.telegram;
    local.urls.notion_api_url = urls.notion;
    let extra = std::collections::BTreeMap::from([(
        DESTINATION_DELIVERY.logical_id,
        vec![("WEBHOOK_ALLOW_LOCAL", "true".to_owned())],
    )]);
    Functions::new(&local, &extra).expect("the functions' specs")
}

/// The stand-ins' base URLs (`None`: the real platform's, never reached here).
#[derive(Default)]
struct Urls {
    discord: Option<String>,
    telegram: Option<String>,
    notion: Option<String>,
}

fn destinations_feed(s: &Stack) -> QueueFeed {
    QueueFeed {
        sqs: s.sqs.clone(),
        url: s.res.destinations_queue_url.clone(),
        wait_seconds: 0,
    }
}

/// Pumps the three queues through the binaries until none gives anything.
async fn pump_all(s: &Stack, f: &Functions) {
    let destinations = destinations_feed(s);
    for _ in 0..20 {
        let a = pump_function(&s.events, &f.pipeline).await.unwrap();
        let b = pump_function(&s.slack, &f.delivery).await.unwrap();
        let c = pump_function(&destinations, &f.destinations).await.unwrap();
        if a + b + c == 0 {
            return;
        }
    }
    panic!("the queues never emptied");
}

/// Pumps (waiting out visibility timeouts: retries come back after a second or two) until
/// `done` holds; fails the test after `limit`.
async fn pump_until(s: &Stack, f: &Functions, limit: Duration, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed() > limit {
            let (lines, _) = f.destinations.output().await;
            let parked = s.peek(&s.res.destinations_dlq_url).await;
            panic!(
                "not done within {limit:?}; parked: {parked:?}\ndestination-delivery said:\n{}",
                lines.join("\n")
            );
        }
        pump_all(s, f).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Posts `n` feature.used events, each its own user, and returns their ids.
async fn post_events(s: &Stack, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = s
            .post("/v1/events", &feature_used(&format!("u_{i}"), "csv.export"))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn one_event_fans_out_to_slack_discord_and_a_signed_webhook_each_once() {
    let s = Stack::new().await;
    let discord = discord_standin::Standin::start(discord_standin::StandinConfig::default())
        .await
        .unwrap();
    let hook = discord.default_webhook().unwrap();
    let receiver = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), SIGNING_SECRET, false)
        .await
        .unwrap();
    s.res
        .put_destination_secret(
            &s.sdk,
            "ops-discord",
            &format!(
                "https://discord.com/api/webhooks/{}/{}",
                hook.id, hook.token
            ),
        )
        .await
        .unwrap();
    s.res
        .put_destination_secret(&s.sdk, "billing-hook", SIGNING_SECRET)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "fan-out",
        "events": ["feature.used"],
        "destinations": [
            {"type": "slack", "channel": "#alerts"},
            {"type": "discord", "secret": "ops-discord",
             "template": {"text": "*$event.user_id* used $event.feature"}},
            {"type": "webhook", "url": receiver.url, "secret": "billing-hook"}
        ]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            discord: Some(discord.api_url()),
            ..Urls::default()
        },
    );

    let (status, body) = s
        .post("/v1/events", &feature_used("@everyone", "csv.export"))
        .await;
    assert_eq!(status, 202, "{body}");
    pump_all(&s, &f).await;
    // Nothing more arrives on a second pass: each destination got its one message.
    tokio::time::sleep(Duration::from_millis(200)).await;
    pump_all(&s, &f).await;

    // (The stack's own example pipeline posts to #alerts too.)
    let slack: Vec<_> = s
        .alerts()
        .into_iter()
        .filter(|m| {
            m.metadata
                .as_ref()
                .is_some_and(|m| m["event_payload"]["pipeline_id"] == "fan-out")
        })
        .collect();
    assert_eq!(slack.len(), 1, "{slack:?}");

    let posted = discord.messages(&hook.id);
    assert_eq!(posted.len(), 1, "{posted:?}");
    let embed = &posted[0].embeds[0];
    assert_eq!(embed["title"], "feature.used", "{embed}");
    assert!(
        posted[0].pings.is_empty(),
        "an event value pinged: {:?}",
        posted[0].pings
    );
    assert_eq!(posted[0].allowed_mentions, Some(json!({"parse": []})));

    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].verified,
        "the reference library refused the signature"
    );
    assert!(got[0].id.starts_with("msg_"), "{}", got[0].id);
    assert_eq!(got[0].body["type"], "feature.used");
    assert_eq!(got[0].body["data"]["fields"]["feature"], "csv.export");

    let dlq = s.depth(&s.res.destinations_dlq_url).await;
    assert_eq!(dlq, 0, "nothing was parked");
}

#[tokio::test]
async fn discord_honours_a_429_and_rides_out_a_5xx_storm_with_nothing_lost() {
    use discord_standin::{Fault, FaultKind};
    let s = Stack::new().await;
    let discord = discord_standin::Standin::start(discord_standin::StandinConfig::default())
        .await
        .unwrap();
    let hook = discord.default_webhook().unwrap();
    s.res
        .put_destination_secret(
            &s.sdk,
            "ops-discord",
            &format!(
                "https://discord.com/api/webhooks/{}/{}",
                hook.id, hook.token
            ),
        )
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-discord", "events": ["feature.used"],
        "destinations": [{"type": "discord", "secret": "ops-discord"}]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            discord: Some(discord.api_url()),
            ..Urls::default()
        },
    );
    discord.inject(Fault::once(FaultKind::RateLimited {
        retry_after: Duration::from_millis(1500),
        global: false,
    }));
    discord.inject(Fault::times(3, FaultKind::HttpStatus(502)));
    let ids = post_events(&s, 4).await;
    pump_until(&s, &f, Duration::from_secs(60), || {
        discord.messages(&hook.id).len() >= ids.len()
    })
    .await;
    pump_all(&s, &f).await;

    let posted = discord.messages(&hook.id);
    let footers: Vec<String> = posted
        .iter()
        .map(|m| {
            m.embeds[0]["footer"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for id in &ids {
        let n = footers.iter().filter(|f| f.contains(id.as_str())).count();
        assert_eq!(n, 1, "event {id} arrived {n} times: {footers:?}");
    }
    assert_eq!(posted.len(), ids.len(), "{footers:?}");

    // Nothing was sent inside the 429's wait.
    let requests = discord.requests();
    let limited = requests.iter().position(|r| r.status == 429).unwrap();
    let next = &requests[limited + 1];
    let waited = next.at.duration_since(requests[limited].at);
    assert!(
        waited >= Duration::from_millis(1500),
        "the next request came {waited:?} after the 429"
    );
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
}

#[tokio::test]
async fn a_telegram_chat_that_is_not_found_is_paused_with_its_hint_while_another_flows() {
    let s = registered().await;
    let telegram = telegram_standin::Standin::start(telegram_standin::StandinConfig {
        length_unit: telegram_standin::LengthUnit::CodePoints,
        ..Default::default()
    })
    .await
    .unwrap();
    telegram.add_bot(telegram_standin::DEFAULT_TOKEN).unwrap();
    telegram
        .add_chat(1001, telegram_standin::ChatKind::Private)
        .unwrap();
    s.res
        .put_destination_secret(&s.sdk, "ops-bot", telegram_standin::DEFAULT_TOKEN)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-telegram", "events": ["feature.used"],
        "destinations": [
            {"type": "telegram", "secret": "ops-bot", "chat_id": 1001},
            {"type": "telegram", "secret": "ops-bot", "chat_id": 4242}
        ]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            telegram: Some(telegram.api_url()),
            ..Urls::default()
        },
    );
    let ids = post_events(&s, 3).await;
    pump_until(&s, &f, Duration::from_secs(30), || {
        telegram.messages(1001).len() >= ids.len()
    })
    .await;
    pump_all(&s, &f).await;

    let sent = telegram.messages(1001);
    assert_eq!(sent.len(), 3);
    for (m, id) in sent.iter().zip(&ids) {
        assert!(
            m.text.contains(id.as_str()),
            "in order, each once: {}",
            m.text
        );
        assert!(m.link_preview_disabled);
    }
    // And the pause is recorded for that chat alone.
    let paused = s.channels().paused().await.unwrap();
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert!(paused[0].pk.contains("4242"), "{}", paused[0].pk);

    // `explain` shows both targets' attempts; `dlq list` the parked ones.
    let text = run(&s, &["explain", &ids[0]]).stdout;
    assert!(
        text.contains("telegram chat 1001 (to-telegram): delivered, receipt"),
        "{text}"
    );
    assert!(
        text.contains("telegram chat 4242 (to-telegram): parked in the destinations DLQ"),
        "{text}"
    );
    assert!(text.contains("fix: "), "{text}");
    assert!(
        text.contains("ingestlayer dlq redrive --queue destinations"),
        "{text}"
    );
    // The unknown chat's three messages are parked, with what to do.
    let listed = run(&s, &["dlq", "list", "--queue", "destinations"]).stdout;
    assert!(listed.contains("destinations DLQ: 3 parked"), "{listed}");
    assert!(listed.contains("chat not found"), "{listed}");
    assert!(
        listed.contains("chat_id"),
        "the hint says what to check: {listed}"
    );

    // The fix (the bot is added to the chat), then the redrive: the target resumes and its
    // three messages arrive, in order, once each.
    telegram
        .add_chat(4242, telegram_standin::ChatKind::Private)
        .unwrap();
    let redriven = run(&s, &["dlq", "redrive", "--queue", "destinations"]);
    assert_eq!(redriven.code, Some(0), "{}", redriven.stderr);
    pump_until(&s, &f, Duration::from_secs(30), || {
        telegram.messages(4242).len() >= ids.len()
    })
    .await;
    pump_all(&s, &f).await;
    let late = telegram.messages(4242);
    assert_eq!(late.len(), 3);
    for (m, id) in late.iter().zip(&ids) {
        assert!(
            m.text.contains(id.as_str()),
            "in order, each once: {}",
            m.text
        );
    }
    assert_eq!(telegram.messages(1001).len(), 3, "nothing sent twice");
}

#[tokio::test]
async fn notion_finds_the_page_an_ambiguous_failure_created_and_never_creates_it_twice() {
    use notion_standin::{Failure, Fault, FaultKind};
    let s = Stack::new().await;
    let notion = notion_standin::Standin::start(notion_standin::StandinConfig::default())
        .await
        .unwrap();
    let db = notion.create_events_database().unwrap();
    s.res
        .put_destination_secret(&s.sdk, "ops-notion", notion_standin::DEFAULT_TOKEN)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-notion", "events": ["feature.used"],
        "destinations": [{"type": "notion", "secret": "ops-notion", "database": db.database_id,
                          "properties": {"Plan": "$event.plan", "Count": "$event.count"}}]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            notion: Some(notion.api_url()),
            ..Urls::default()
        },
    );
    let first = post_events(&s, 1).await;
    pump_until(&s, &f, Duration::from_secs(30), || {
        notion.pages(&db.data_source_id).len() == 1
    })
    .await;
    // The next page is created, but the answer is a 504: delivery cannot know.
    notion.inject(Fault::once(FaultKind::AcceptThenError(
        Failure::GatewayTimeout,
    )));
    let (status, body) = s.post("/v1/events", &feature_used("u_late", "api")).await;
    assert_eq!(status, 202, "{body}");
    let second = body["id"].as_str().unwrap().to_owned();
    // Until the retry has settled it: the message leaves the queue once delivery found
    // the page (or created it).
    let start = std::time::Instant::now();
    loop {
        pump_all(&s, &f).await;
        if s.depth(&s.res.destinations_queue_url).await == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the retry never settled"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let pages = notion.pages(&db.data_source_id);
    assert_eq!(pages.len(), 2, "one page per event: {pages:?}");
    for id in [&first[0], &second] {
        let n = pages
            .iter()
            .filter(|p| p.properties.to_string().contains(id.as_str()))
            .count();
        assert_eq!(n, 1, "event {id}: {n} pages");
    }
    assert_eq!(pages[0].properties["Plan"]["select"]["name"], "free");
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
}
