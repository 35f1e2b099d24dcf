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
use ingestlayer_local::runner::{pump_delivery_function, pump_function, QueueFeed};
use ingestlayer_local::webhook_receiver::{Answer, Receiver};
use serde_json::json;

use crate::harness::{feature_used, registered, run, Stack};

pub(crate) const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The destination-delivery binary with the stand-ins' URLs and the local-development
/// switch `make dev` sets.
pub(crate) fn binaries(s: &Stack, urls: Urls) -> Functions {
    binaries_with(s, urls, &[])
}

/// [`binaries`], with more of destination-delivery's environment.
pub(crate) fn binaries_with(s: &Stack, urls: Urls, env: &[(&'static str, &str)]) -> Functions {
    crate::binaries::assert_built();
    let mut local = s.local();
    local.urls.discord_api_url = urls.discord;
    local.urls.telegram_api_url = urls.telegram;
    local.urls.notion_api_url = urls.notion;
    let extra = std::collections::BTreeMap::from([(
        DESTINATION_DELIVERY.logical_id,
        std::iter::once(("WEBHOOK_ALLOW_LOCAL", "true".to_owned()))
            .chain(env.iter().map(|(k, v)| (*k, (*v).to_owned())))
            .collect(),
    )]);
    Functions::new(&local, &extra).expect("the functions' specs")
}

/// The stand-ins' base URLs (`None`: the real platform's, never reached here).
#[derive(Default)]
pub(crate) struct Urls {
    pub(crate) discord: Option<String>,
    pub(crate) telegram: Option<String>,
    pub(crate) notion: Option<String>,
}

fn destinations_feed(s: &Stack) -> QueueFeed {
    QueueFeed {
        sqs: s.sqs.clone(),
        url: s.res.destinations_queue_url.clone(),
        wait_seconds: 0,
    }
}

/// Pumps the three queues through the binaries until none gives anything.
pub(crate) async fn pump_all(s: &Stack, f: &Functions) {
    let destinations = destinations_feed(s);
    for _ in 0..20 {
        let a = pump_function(&s.events, &f.pipeline).await.unwrap();
        let b = pump_delivery_function(&s.slack, &f.delivery).await.unwrap();
        let c = pump_function(&destinations, &f.destinations).await.unwrap();
        if a + b + c == 0 {
            return;
        }
    }
    panic!("the queues never emptied");
}

/// Pumps (waiting out visibility timeouts: retries come back after a second or two) until
/// `done` holds; fails the test after `limit`.
pub(crate) async fn pump_until(s: &Stack, f: &Functions, limit: Duration, done: impl Fn() -> bool) {
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
pub(crate) async fn post_events(s: &Stack, n: usize) -> Vec<String> {
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

/// What `sam local invoke DestinationDeliveryFunction -e events/destination-delivery-fifo.json`
/// does with a Discord webhook stored under the file's secret name: the card is posted
/// once, as an embed. (The file's SentTimestamp is set to now, as SQS would on delivery.)
#[tokio::test]
async fn the_destination_delivery_file_posts_its_card_to_discord() {
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
    let f = binaries(
        &s,
        Urls {
            discord: Some(discord.api_url()),
            ..Urls::default()
        },
    );
    let path = format!(
        "{}/../../events/destination-delivery-fifo.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    for r in event["Records"].as_array_mut().unwrap() {
        r["attributes"]["SentTimestamp"] = json!(now_ms.to_string());
        r["attributes"]["ApproximateFirstReceiveTimestamp"] = json!(now_ms.to_string());
    }
    let answer = f.destinations.invoke(&event).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let posted = discord.messages(&hook.id);
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].embeds[0]["title"], "feature.used");
    assert_eq!(s.depth(&s.res.destinations_dlq_url).await, 0);
}

/// The webhook destination through the whole path, with a retry schedule of seconds
/// (`WEBHOOK_RETRY_SCHEDULE`, as a user may set it): one endpoint answers 429 with
/// Retry-After and then a storm of 5xx, and every event still arrives once, each attempt of
/// one delivery under the same `webhook-id`, nothing sent inside the 429's wait; another
/// endpoint answers 410 Gone and is disabled, its messages parked with the notice, without
/// slowing the first.
#[tokio::test]
async fn webhooks_ride_out_a_429_and_a_5xx_storm_once_each_while_a_gone_endpoint_is_disabled() {
    let s = registered().await;
    let live = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), SIGNING_SECRET, false)
        .await
        .unwrap();
    let gone = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), SIGNING_SECRET, false)
        .await
        .unwrap();
    s.res
        .put_destination_secret(&s.sdk, "billing-hook", SIGNING_SECRET)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-hooks", "events": ["feature.used"],
        "destinations": [
            {"type": "webhook", "url": live.url, "secret": "billing-hook"},
            {"type": "webhook", "url": gone.url, "secret": "billing-hook"}
        ]
    }))
    .await;
    let f = binaries_with(
        &s,
        Urls::default(),
        &[("WEBHOOK_RETRY_SCHEDULE", "1s, 1s, 1s, 1s, 1s")],
    );
    live.answer_next([
        Answer::retry_after(429, "2"),
        Answer::status(500),
        Answer::status(502),
        Answer::status(503),
    ]);
    gone.answer_next([Answer::status(410)]);

    let ids = post_events(&s, 3).await;
    let accepted = |r: &ingestlayer_local::webhook_receiver::Received| r.status == 204;
    pump_until(&s, &f, Duration::from_secs(60), || {
        live.received().iter().filter(|r| accepted(r)).count() >= ids.len()
    })
    .await;
    pump_all(&s, &f).await;

    let got = live.received();
    assert!(got.iter().all(|r| r.verified), "every attempt is signed");
    // Each event accepted once (the events queue is a standard one, so events sent one by
    // one may reach the pipeline in any order); the failed attempts carried the same
    // webhook-id as the success that followed them.
    let ok: Vec<_> = got.iter().filter(|r| accepted(r)).collect();
    let mut delivered: Vec<&str> = ok
        .iter()
        .map(|r| r.body["data"]["id"].as_str().unwrap_or_default())
        .collect();
    delivered.sort_unstable();
    let mut sent: Vec<&str> = ids.iter().map(String::as_str).collect();
    sent.sort_unstable();
    assert_eq!(delivered, sent);
    let first = &got[0];
    let attempts: Vec<_> = got.iter().filter(|r| r.id == first.id).collect();
    let said = f.destinations.output().await.0.join("\n");
    assert_eq!(
        attempts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 500, 502, 503, 204],
        "one delivery, five attempts, one webhook-id: {:?}\ndestination-delivery said:\n{said}",
        got.iter()
            .map(|r| (r.id.as_str(), r.status, r.body["data"]["id"].as_str()))
            .collect::<Vec<_>>()
    );
    assert_eq!(got.len(), 7, "no other request was made");
    let waited = got[1].at.duration_since(got[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "the next attempt came {waited:?} after the 429's Retry-After: 2"
    );

    // The gone endpoint was asked once; its three messages are parked with the notice.
    let asked = gone.received();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let listed = run(&s, &["dlq", "list", "--queue", "destinations"]).stdout;
    assert!(listed.contains("destinations DLQ: 3 parked"), "{listed}");
    assert!(listed.contains("410 Gone"), "{listed}");
    let paused = s.channels().paused().await.unwrap();
    assert_eq!(
        paused.len(),
        1,
        "only the gone endpoint is paused: {paused:?}"
    );
}

/// Email through the whole path (SES on the emulator): a burst to one recipient list goes
/// out as digests, every event in exactly one email, while a destination whose sender SES
/// has not verified is paused with what to verify and the verified one keeps flowing.
#[tokio::test]
async fn an_email_burst_goes_as_digests_while_an_unverified_sender_is_paused() {
    let s = registered().await;
    let ses = aws_sdk_sesv2::Client::new(&s.sdk);
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let from = format!("alerts-{tag}@acme.example");
    let unverified = format!("nobody-{tag}@unverified.example");
    let to = format!("ops-{tag}@acme.example");
    let other = format!("sales-{tag}@acme.example");
    ses.create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-email", "events": ["feature.used"],
        "destinations": [
            {"type": "email", "from": from, "to": [to], "digest_threshold": 2},
            {"type": "email", "from": unverified, "to": [other]}
        ]
    }))
    .await;
    let f = binaries(&s, Urls::default());
    let ids = post_events(&s, 8).await;
    // Routed first, so the burst waits in the destinations queue together, as a burst does
    // when delivery is busier than routing.
    while pump_function(&s.events, &f.pipeline).await.unwrap() > 0 {}
    pump_all(&s, &f).await;

    // The queue hands over 10 messages at a time, here both destinations' interleaved: the
    // eight go out in two digests.
    let sent = sent_emails(&to).await;
    assert!(
        (1..=2).contains(&sent.len()),
        "a burst of {} goes as one or two emails: {}",
        ids.len(),
        sent.len()
    );
    let bodies: Vec<&str> = sent
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default())
        .collect();
    for id in &ids {
        let n = bodies.iter().filter(|b| b.contains(id.as_str())).count();
        assert_eq!(n, 1, "event {id} is in {n} emails");
    }
    assert!(sent_emails(&other).await.is_empty());
    let listed = run(&s, &["dlq", "list", "--queue", "destinations"]).stdout;
    assert!(listed.contains("destinations DLQ: 8 parked"), "{listed}");
    assert!(
        listed.contains(&format!("verify {unverified} in SES")),
        "{listed}"
    );
    let paused = s.channels().paused().await.unwrap();
    assert_eq!(paused.len(), 1, "{paused:?}");
}

/// The emails the emulator has sent to `to`, as it keeps them (sender, destinations,
/// subject and the HTML body), from its `GET /_ingestlayer/ses-sent?to=` (moto's
/// `/moto-api/data.json` serialises every service's state and fails under parallel tests).
pub(crate) async fn sent_emails(to: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/_ingestlayer/ses-sent", crate::harness::endpoint());
    let url = reqwest::Url::parse_with_params(&url, [("to", to)]).unwrap();
    let answer = reqwest::get(url.clone()).await.unwrap();
    assert_eq!(answer.status(), 200, "GET {url}");
    answer.json().await.unwrap()
}
