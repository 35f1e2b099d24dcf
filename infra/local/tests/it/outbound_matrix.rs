//! The rest of issue 14's test matrix for destinations beyond Slack, through the whole local
//! path with the shipped binaries (ingest → pipeline → destination-delivery → stand-in).
//! `outbound.rs` has the first cells (fan-out; Discord 429 and 5xx storm; a Telegram chat
//! paused while another flows; Notion's ambiguous 504; webhooks' 429, 5xx storm and 410;
//! email digests and an unverified sender); this file has the others:
//!
//! | | limits, cut with the link | 429 | 5xx storm | target paused | ambiguous |
//! |---|---|---|---|---|---|
//! | discord | here | outbound.rs | outbound.rs | here (deleted webhook) | here (resent, marked) |
//! | telegram | here | here | here | outbound.rs | here (resent, marked) |
//! | notion | here | here | here (asked before creating) | here (unshared database) | outbound.rs |
//! | webhook | here (no limit of ours: the event whole) | outbound.rs | outbound.rs | outbound.rs (410) | here (same webhook-id) |
//! | email | here | here | here | outbound.rs | here (sent again, the journey says so) |
//!
//! Three more cells hold what the matrix found broken, now fixed: a global Discord 429 holds
//! every webhook of the sender; a 429 to Notion's duplicate-check query holds the
//! integration; a deleted webhook's fix (a new URL in its secret) is what a warm function's
//! redrive sends with.
//!
//! Email's 429, 5xx and ambiguous cells use the emulator launcher's SES faults
//! (`infra/emulator/moto_server.py`: `POST /_ingestlayer/ses-faults`), since moto alone
//! cannot make SES throttle, fail or lose an answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ingestlayer_local::functions::Functions;
use ingestlayer_local::webhook_receiver::{Answer, Receiver};
use serde_json::{json, Value};

use crate::harness::{feature_used, registered, run, Stack, PUBLIC_API_URL};
use crate::outbound::{
    binaries, binaries_with, post_events, pump_all, pump_until, sent_emails, Urls, SIGNING_SECRET,
};

/// What Discord and Telegram add to a message sent again after an unconfirmed attempt.
const RESENT_NOTE: &str = "(sent again after an unconfirmed attempt)";

/// The start of every signed link to a stored event the pipeline binary makes here.
fn link_prefix() -> String {
    format!("{PUBLIC_API_URL}/v1/events/")
}

/// A Discord webhook's URL as Discord's "Copy Webhook URL" gives it (the secret's value).
fn discord_url(hook: &discord_standin::Webhook) -> String {
    format!(
        "https://discord.com/api/webhooks/{}/{}",
        hook.id, hook.token
    )
}

/// A Telegram stand-in without flood limits (the tests inject the 429s they want), with the
/// default bot and these private chats.
async fn telegram_with(chats: &[i64]) -> telegram_standin::Standin {
    let telegram = telegram_standin::Standin::start(telegram_standin::StandinConfig::unlimited())
        .await
        .unwrap();
    telegram.add_bot(telegram_standin::DEFAULT_TOKEN).unwrap();
    for &chat in chats {
        telegram
            .add_chat(chat, telegram_standin::ChatKind::Private)
            .unwrap();
    }
    telegram
}

/// A Notion stand-in without its own rate limit (the tests inject the 429s they want).
async fn notion_unlimited() -> notion_standin::Standin {
    notion_standin::Standin::start(notion_standin::StandinConfig {
        rate_per_sec: f64::INFINITY,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Pumps until `done` holds and the destinations queue is empty (nothing in flight, no
/// retry pending); fails the test after `limit`, saying what was parked.
async fn settle(s: &Stack, f: &Functions, limit: Duration, done: impl Fn() -> bool) {
    pump_all(s, f).await;
    pump_until(s, f, limit, &done).await;
    let start = Instant::now();
    while s.depth(&s.res.destinations_queue_url).await > 0 {
        assert!(
            start.elapsed() < limit,
            "the destinations queue never emptied"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        pump_all(s, f).await;
    }
}

/// How many of `texts` name each of `ids`; every id must be named exactly once.
fn each_once(what: &str, ids: &[String], texts: &[String]) {
    for id in ids {
        let n = texts.iter().filter(|t| t.contains(id.as_str())).count();
        assert_eq!(n, 1, "{what}: event {id} arrived {n} times: {texts:#?}");
    }
    assert_eq!(texts.len(), ids.len(), "{what}: {texts:#?}");
}

/// The gap between a 429 (at index `limited` of `at`) and the next request.
fn quiet_after(at: &[Instant], limited: usize) -> Duration {
    let next = at.get(limited + 1).expect("a request after the 429");
    next.duration_since(at[limited])
}

/// `ingestlayer dlq list --queue destinations` shows `n` parked, with each of `says`.
fn parked_with(s: &Stack, n: usize, says: &[&str]) {
    let listed = run(s, &["dlq", "list", "--queue", "destinations"]).stdout;
    assert!(
        listed.contains(&format!("destinations DLQ: {n} parked")),
        "{listed}"
    );
    for text in says {
        assert!(
            listed.contains(text),
            "the DLQ should say {text:?}: {listed}"
        );
    }
}

// ---- (1) the rendered message at its limits, cut with the payload link ----

/// Text that each platform escapes or parses: HTML, Markdown, a mention, an ampersand.
fn filler(n: usize) -> String {
    "R&D <b>not bold</b> *not italic* _nor this_ @everyone "
        .chars()
        .cycle()
        .take(n)
        .collect()
}

/// An event past every destination's limits: a 5,000-character note (the template's header
/// and text), 30 fields of 1,800 characters and one of 12,000 (past email's 10,000 a value).
fn oversized(user: &str) -> String {
    let mut data = serde_json::Map::new();
    for (k, v) in [
        ("user_id", json!(user)),
        ("feature", json!("csv.export")),
        ("count", json!(1)),
        ("plan", json!("free")),
    ] {
        data.insert(k.into(), v);
    }
    data.insert("note".into(), json!(filler(5000)));
    for i in 0..30 {
        data.insert(format!("f{i:02}"), json!(filler(1800)));
    }
    data.insert("blob".into(), json!(filler(12_000)));
    json!({"name": "feature.used", "data": data}).to_string()
}

/// Every `text.content` of the rich text objects in `v` (a page's properties or blocks),
/// and every link's URL.
fn rich_text(v: &Value, contents: &mut Vec<String>, links: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(content) = map
                .get("text")
                .and_then(|t| t.get("content"))
                .and_then(Value::as_str)
            {
                contents.push(content.to_owned());
                if let Some(url) = map["text"]["link"]["url"].as_str() {
                    links.push(url.to_owned());
                }
            }
            map.values().for_each(|v| rich_text(v, contents, links));
        }
        Value::Array(list) => list.iter().for_each(|v| rich_text(v, contents, links)),
        _ => {}
    }
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// What is wrong with a Discord message against Discord's embed limits
/// (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
fn discord_problems(m: &discord_standin::WebhookMessage, link: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    if m.embeds.len() != 1 {
        wrong.push(format!("discord: {} embeds, not one", m.embeds.len()));
    }
    let Some(embed) = m.embeds.first() else {
        return wrong;
    };
    let fields = embed["fields"].as_array().cloned().unwrap_or_default();
    let mut total = chars(&embed["title"])
        + chars(&embed["description"])
        + chars(&embed["footer"]["text"])
        + chars(&embed["author"]["name"]);
    for f in &fields {
        total += chars(&f["name"]) + chars(&f["value"]);
        if chars(&f["value"]) > 1024 || chars(&f["name"]) > 256 {
            wrong.push(format!(
                "discord: a field of {} + {} characters",
                chars(&f["name"]),
                chars(&f["value"])
            ));
        }
    }
    for (what, n, max) in [
        ("title", chars(&embed["title"]), 256),
        ("description", chars(&embed["description"]), 4096),
        ("footer", chars(&embed["footer"]["text"]), 2048),
        ("fields", fields.len(), 25),
        ("embed in all", total, 6000),
    ] {
        if n > max {
            wrong.push(format!("discord: {what} is {n}, over {max}"));
        }
    }
    if total < 5000 {
        wrong.push(format!(
            "discord: {total} characters in all: the embed should be filled near 6,000"
        ));
    }
    let description = embed["description"].as_str().unwrap_or_default();
    if !description.contains("View the full event") || !description.contains(link) {
        wrong.push(format!(
            "discord: the description does not link the full event: …{}",
            description
                .chars()
                .rev()
                .take(200)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        ));
    }
    if !embed["url"].as_str().is_some_and(|u| u.starts_with(link)) {
        wrong.push(format!("discord: the title links {}", embed["url"]));
    }
    if !m.pings.is_empty() {
        wrong.push(format!("discord: a value pinged {:?}", m.pings));
    }
    wrong
}

/// Telegram: 4,096 characters after entity parsing
/// (<https://core.telegram.org/bots/api#sendmessage>), and a link to the full event.
fn telegram_problems(m: &telegram_standin::SentMessage, link: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let (n, units) = (m.text.chars().count(), m.text.encode_utf16().count());
    if n > 4096 || units > 4096 {
        wrong.push(format!("telegram: {n} characters ({units} UTF-16 units)"));
    }
    if n < 3500 {
        wrong.push(format!(
            "telegram: {n} characters: the message should be filled near 4,096"
        ));
    }
    let linked = m.entities.iter().any(|e| {
        matches!(&e.kind, telegram_standin::EntityKind::TextLink { url } if url.starts_with(link))
    });
    if !linked || !m.text.contains("View the full event") {
        wrong.push(format!(
            "telegram: no link to the full event: {:?}",
            m.entities
        ));
    }
    if !m.link_preview_disabled {
        wrong.push("telegram: link previews are on".into());
    }
    wrong
}

/// Notion: 2,000 characters a rich text object, 100 blocks
/// (<https://developers.notion.com/reference/request-limits#size-limits>), the note whole in
/// its property (split, not cut), and a last block linking the full event.
fn notion_problems(page: &notion_standin::CreatedPage, note: &str, link: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let (mut contents, mut links) = (Vec::new(), Vec::new());
    rich_text(&page.properties, &mut contents, &mut links);
    rich_text(
        &Value::Array(page.children.clone()),
        &mut contents,
        &mut links,
    );
    if let Some(long) = contents.iter().map(|c| c.encode_utf16().count()).max() {
        if long > 2000 {
            wrong.push(format!("notion: a rich text object of {long} characters"));
        }
    }
    if page.children.len() > 100 {
        wrong.push(format!("notion: {} blocks", page.children.len()));
    }
    if page.text("Account").as_deref() != Some(note) {
        wrong.push("notion: the note is not whole in its property".into());
    }
    let mut last = (Vec::new(), Vec::new());
    if let Some(block) = page.children.last() {
        rich_text(block, &mut last.0, &mut last.1);
    }
    if last.0 != ["View the full event"] || !last.1.iter().any(|u| u.starts_with(link)) {
        wrong.push(format!(
            "notion: the last block does not link the full event: {:?}",
            page.children.last()
        ));
    }
    wrong
}

/// One event past every limit, fanned out to every destination type: each gets a message
/// within its platform's limits that links the full stored event (the webhook, which has no
/// limit of ours, gets the event whole with the link).
#[tokio::test]
async fn an_oversized_event_reaches_each_destination_within_its_limits_with_the_payload_link() {
    let s = Stack::new().await;
    let discord = discord_standin::Standin::start(discord_standin::StandinConfig::default())
        .await
        .unwrap();
    let hook = discord.default_webhook().unwrap();
    let telegram = telegram_with(&[1001]).await;
    let notion = notion_unlimited().await;
    let db = notion.create_events_database().unwrap();
    let receiver = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), SIGNING_SECRET, false)
        .await
        .unwrap();
    let ses = aws_sdk_sesv2::Client::new(&s.sdk);
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let (from, to) = (
        format!("alerts-{tag}@acme.example"),
        format!("ops-{tag}@acme.example"),
    );
    ses.create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    for (name, value) in [
        ("ops-discord", discord_url(&hook)),
        ("ops-bot", telegram_standin::DEFAULT_TOKEN.to_owned()),
        ("ops-notion", notion_standin::DEFAULT_TOKEN.to_owned()),
        ("ops-hook", SIGNING_SECRET.to_owned()),
    ] {
        s.res
            .put_destination_secret(&s.sdk, name, &value)
            .await
            .unwrap();
    }
    let template = json!({"header": "$event.note", "text": "$event.note"});
    s.put_pipeline(&json!({
        "id": "everywhere", "events": ["feature.used"],
        "destinations": [
            {"type": "discord", "secret": "ops-discord", "template": template},
            {"type": "telegram", "secret": "ops-bot", "chat_id": 1001, "template": template},
            {"type": "notion", "secret": "ops-notion", "database": db.database_id,
             "properties": {"Account": "$event.note"}, "template": template},
            {"type": "email", "from": from, "to": [to], "template": template},
            {"type": "webhook", "url": receiver.url, "secret": "ops-hook"}
        ]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            discord: Some(discord.api_url()),
            telegram: Some(telegram.api_url()),
            notion: Some(notion.api_url()),
        },
    );

    let (status, body) = s.post("/v1/events", &oversized("u_big")).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    settle(&s, &f, Duration::from_secs(60), || {
        !discord.messages(&hook.id).is_empty()
            && !telegram.messages(1001).is_empty()
            && !notion.pages(&db.data_source_id).is_empty()
            && !receiver.received().is_empty()
    })
    .await;

    let link = link_prefix();
    let note = filler(5000);
    let mut wrong = Vec::new();
    let posted = discord.messages(&hook.id);
    assert_eq!(posted.len(), 1, "discord: one message");
    wrong.extend(discord_problems(&posted[0], &link));
    let sent = telegram.messages(1001);
    assert_eq!(sent.len(), 1, "telegram: one message");
    wrong.extend(telegram_problems(&sent[0], &link));
    let pages = notion.pages(&db.data_source_id);
    assert_eq!(pages.len(), 1, "notion: one page");
    wrong.extend(notion_problems(&pages[0], &note, &link));

    // Email: the subject is one line of at most 200 characters; the 12,000-character value
    // is cut (a single email shows 10,000 a value) and the email links the full event.
    let emails = sent_emails(&to).await;
    assert_eq!(emails.len(), 1, "email: one email");
    let subject = emails[0]["subject"].as_str().unwrap_or_default();
    if subject.chars().count() > 200 || subject.contains('\n') {
        wrong.push(format!(
            "email: a subject of {} characters",
            subject.chars().count()
        ));
    }
    let html = emails[0]["body"].as_str().unwrap_or_default();
    if !html.contains("View the full event") || !html.contains(&format!("href=\"{link}")) {
        wrong.push("email: no link to the full event".into());
    }
    if !html.contains(id.as_str()) {
        wrong.push("email: the event id is not in the footer".into());
    }

    // The webhook keeps no size limit of its own: the README's "the event whole"; what a
    // receiver refuses as too large (413) is parked, which the adapter's tests cover. So the
    // receiver gets every value uncut, and the link.
    let got = receiver.received();
    assert_eq!(got.len(), 1, "webhook: one delivery");
    let data = &got[0].body["data"];
    if data["fields"]["blob"].as_str() != Some(filler(12_000).as_str())
        || data["fields"]["note"].as_str() != Some(note.as_str())
    {
        wrong.push("webhook: the event did not arrive whole".into());
    }
    if !data["link"].as_str().is_some_and(|l| l.starts_with(&link)) {
        wrong.push(format!("webhook: the link is {}", data["link"]));
    }
    if !got[0].verified {
        wrong.push("webhook: the signature did not verify".into());
    }

    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
}

/// The webhook's limit is the event's own: the largest event ingest takes (256 KiB stored)
/// reaches a webhook whole, signed, with the link, while Discord gets it cut to its limits:
/// the destinations queue's message for it, the card and the event together, fits.
#[tokio::test]
async fn the_largest_event_ingest_takes_reaches_a_webhook_whole_and_discord_cut() {
    let s = Stack::new().await;
    let discord = discord_standin::Standin::start(discord_standin::StandinConfig::default())
        .await
        .unwrap();
    let hook = discord.default_webhook().unwrap();
    let receiver = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), SIGNING_SECRET, false)
        .await
        .unwrap();
    s.res
        .put_destination_secret(&s.sdk, "ops-discord", &discord_url(&hook))
        .await
        .unwrap();
    s.res
        .put_destination_secret(&s.sdk, "ops-hook", SIGNING_SECRET)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "largest", "events": ["feature.used"],
        "destinations": [
            {"type": "webhook", "url": receiver.url, "secret": "ops-hook"},
            {"type": "discord", "secret": "ops-discord"}
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
    // Just under the stored limit (the envelope adds the id, source and times).
    let blob = filler(255 * 1024);
    let event = json!({"name": "feature.used", "data": {
        "user_id": "u_largest", "feature": "csv.export", "count": 1, "plan": "free", "blob": blob
    }});
    let (status, body) = s.post("/v1/events", &event.to_string()).await;
    assert_eq!(status, 202, "{body}");
    settle(&s, &f, Duration::from_secs(60), || {
        !receiver.received().is_empty() && !discord.messages(&hook.id).is_empty()
    })
    .await;

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].verified,
        "the reference library refused the signature"
    );
    assert_eq!(
        got[0].body["data"]["fields"]["blob"].as_str(),
        Some(blob.as_str())
    );
    assert!(got[0].body["data"]["link"]
        .as_str()
        .is_some_and(|l| l.starts_with(&link_prefix())));
    let posted = discord.messages(&hook.id);
    assert_eq!(posted.len(), 1);
    let wrong = discord_problems(&posted[0], &link_prefix());
    // (One field, so the embed is not filled near 6,000: only the limits count here.)
    let wrong: Vec<_> = wrong
        .into_iter()
        .filter(|w| !w.contains("filled"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
}

// ---- (2) a 429 honoured and (3) a 5xx storm ridden out ----

/// Telegram's 429 says how long in `parameters.retry_after`
/// (<https://core.telegram.org/bots/api#responseparameters>): nothing is sent to the chat
/// inside it; then three 502s, and every event still arrives once.
#[tokio::test]
async fn telegram_honours_retry_after_and_rides_out_a_5xx_storm_each_message_once() {
    use telegram_standin::{Fault, FaultKind};
    let s = Stack::new().await;
    let telegram = telegram_with(&[1001]).await;
    s.res
        .put_destination_secret(&s.sdk, "ops-bot", telegram_standin::DEFAULT_TOKEN)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-telegram", "events": ["feature.used"],
        "destinations": [{"type": "telegram", "secret": "ops-bot", "chat_id": 1001}]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            telegram: Some(telegram.api_url()),
            ..Urls::default()
        },
    );
    telegram.inject(Fault::once(FaultKind::RateLimited { retry_after: 2 }).in_chat(1001));
    telegram.inject(Fault::times(3, FaultKind::HttpStatus(502)).in_chat(1001));
    let ids = post_events(&s, 4).await;
    settle(&s, &f, Duration::from_secs(60), || {
        telegram.messages(1001).len() >= ids.len()
    })
    .await;

    let texts: Vec<String> = telegram
        .messages(1001)
        .into_iter()
        .map(|m| m.text)
        .collect();
    each_once("telegram", &ids, &texts);
    let requests = telegram.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 502).count(),
        3,
        "{statuses:?}"
    );
    let limited = statuses.iter().position(|&s| s == 429).unwrap();
    let at: Vec<Instant> = requests.iter().map(|r| r.at.into_std()).collect();
    let waited = quiet_after(&at, limited);
    assert!(
        waited >= Duration::from_secs(2),
        "the next sendMessage came {waited:?} after `retry_after: 2`"
    );
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
}

/// Notion's 429 says how long in `Retry-After`
/// (<https://developers.notion.com/reference/request-limits>): nothing is asked inside it.
/// Then a storm of 502s, each of which may have created the page
/// (<https://developers.notion.com/reference/status-codes>): delivery queries the data source
/// before creating again, and every event has one page.
#[tokio::test]
async fn notion_honours_retry_after_and_asks_before_creating_again_through_a_5xx_storm() {
    use notion_standin::{Failure, Fault, FaultKind};
    let s = Stack::new().await;
    let notion = notion_unlimited().await;
    let db = notion.create_events_database().unwrap();
    s.res
        .put_destination_secret(&s.sdk, "ops-notion", notion_standin::DEFAULT_TOKEN)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-notion", "events": ["feature.used"],
        "destinations": [{"type": "notion", "secret": "ops-notion", "database": db.database_id}]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            notion: Some(notion.api_url()),
            ..Urls::default()
        },
    );
    // A first event, so the function has read the data source and the faults meet pages.
    let mut ids = post_events(&s, 1).await;
    settle(&s, &f, Duration::from_secs(30), || {
        notion.pages(&db.data_source_id).len() == 1
    })
    .await;
    let before = notion.requests().len();
    let ds = db.data_source_id.as_str();
    notion.inject(
        Fault::once(FaultKind::RateLimited {
            retry_after_secs: 2,
        })
        .on_data_source(ds),
    );
    notion.inject(Fault::times(3, FaultKind::Error(Failure::BadGateway)).on_data_source(ds));
    ids.extend(post_events(&s, 3).await);
    settle(&s, &f, Duration::from_secs(60), || {
        notion.pages(&db.data_source_id).len() >= ids.len()
    })
    .await;

    let pages: Vec<String> = notion
        .pages(&db.data_source_id)
        .iter()
        .map(|p| p.text("Event ID").unwrap_or_default())
        .collect();
    each_once("notion", &ids, &pages);

    let requests = notion.requests()[before..].to_vec();
    let said: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    let create =
        |r: &notion_standin::RecordedRequest| r.method == "POST" && r.path.ends_with("/pages");
    let limited = requests.iter().position(|r| r.status == 429).unwrap();
    let at: Vec<Instant> = requests.iter().map(|r| r.at.into_std()).collect();
    let waited = quiet_after(&at, limited);
    assert!(
        waited >= Duration::from_secs(2),
        "the next request came {waited:?} after `Retry-After: 2`: {said:#?}"
    );
    // Every create that failed with a 5xx is followed by a query that answered before
    // the next create: never a create on a guess.
    let failed: Vec<usize> = (0..requests.len())
        .filter(|&i| create(&requests[i]) && requests[i].status >= 500)
        .collect();
    assert!(!failed.is_empty(), "no create met the storm: {said:#?}");
    for i in failed {
        let next = requests[i + 1..]
            .iter()
            .position(create)
            .map(|n| i + 1 + n)
            .unwrap_or_else(|| panic!("no create after the 5xx at {i}: {said:#?}"));
        assert!(
            requests[i + 1..next]
                .iter()
                .any(|r| r.path.ends_with("/query") && r.status == 200),
            "the create at {next} was not preceded by an answered query: {said:#?}"
        );
    }
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
}

// ---- (4) a target paused with its hint while another of the same type flows ----

/// A deleted Discord webhook answers 404 Unknown Webhook (10015)
/// (<https://discord.com/developers/docs/topics/opcodes-and-status-codes#json>): that webhook
/// is paused and its messages parked with what to do; another webhook keeps flowing.
#[tokio::test]
async fn a_deleted_discord_webhook_is_paused_with_its_hint_while_another_flows() {
    let s = registered().await;
    let discord = discord_standin::Standin::start(discord_standin::StandinConfig::default())
        .await
        .unwrap();
    let live = discord.default_webhook().unwrap();
    let gone = discord.create_webhook("old-alerts");
    for (name, hook) in [("live-hook", &live), ("gone-hook", &gone)] {
        s.res
            .put_destination_secret(&s.sdk, name, &discord_url(hook))
            .await
            .unwrap();
    }
    assert!(discord.delete_webhook(&gone.id));
    s.put_pipeline(&json!({
        "id": "to-discord", "events": ["feature.used"],
        "destinations": [
            {"type": "discord", "secret": "live-hook"},
            {"type": "discord", "secret": "gone-hook"}
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
    let ids = post_events(&s, 3).await;
    settle(&s, &f, Duration::from_secs(60), || {
        discord.messages(&live.id).len() >= ids.len()
    })
    .await;

    let footers: Vec<String> = discord
        .messages(&live.id)
        .iter()
        .map(|m| {
            m.embeds[0]["footer"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    each_once("the live webhook", &ids, &footers);
    let asked: Vec<_> = discord
        .requests()
        .into_iter()
        .filter(|r| r.webhook_id == gone.id)
        .collect();
    assert!(
        !asked.is_empty()
            && asked
                .iter()
                .all(|r| r.status == 404 && r.code == Some(10015)),
        "{asked:?}"
    );
    let paused = s.channels().paused().await.unwrap();
    assert_eq!(paused.len(), 1, "only the deleted webhook: {paused:?}");
    assert!(paused[0].pk.contains("gone-hook"), "{}", paused[0].pk);
    parked_with(
        &s,
        ids.len(),
        &[
            "Unknown Webhook",
            "create a webhook in the channel's Integrations settings",
        ],
    );
}

/// The fix the hint gives for a deleted Discord webhook: a new webhook's URL stored in the
/// destination's secret, then `ingestlayer dlq redrive --queue destinations`. The parked
/// messages then reach the new webhook, once each, from the same (warm) function.
#[tokio::test]
async fn a_deleted_discord_webhooks_redriven_messages_reach_the_new_one_stored_as_the_fix() {
    let s = registered().await;
    let discord = discord_standin::Standin::start(discord_standin::StandinConfig::default())
        .await
        .unwrap();
    let old = discord.create_webhook("old-alerts");
    s.res
        .put_destination_secret(&s.sdk, "alerts-hook", &discord_url(&old))
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-discord", "events": ["feature.used"],
        "destinations": [{"type": "discord", "secret": "alerts-hook"}]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            discord: Some(discord.api_url()),
            ..Urls::default()
        },
    );
    // The webhook works, then is deleted: the next events are parked with the hint.
    let mut ids = post_events(&s, 1).await;
    settle(&s, &f, Duration::from_secs(30), || {
        discord.messages(&old.id).len() == 1
    })
    .await;
    assert!(discord.delete_webhook(&old.id));
    let parked = post_events(&s, 2).await;
    settle(&s, &f, Duration::from_secs(30), || true).await;
    parked_with(&s, parked.len(), &["Unknown Webhook"]);

    // The fix: a new webhook's URL in the same secret; then the redrive.
    let new = discord.create_webhook("alerts");
    s.res
        .put_destination_secret(&s.sdk, "alerts-hook", &discord_url(&new))
        .await
        .unwrap();
    let redriven = run(&s, &["dlq", "redrive", "--queue", "destinations"]);
    assert_eq!(redriven.code, Some(0), "{}", redriven.stderr);
    settle(&s, &f, Duration::from_secs(30), || {
        discord.messages(&new.id).len() >= parked.len()
    })
    .await;
    let footers: Vec<String> = discord
        .messages(&new.id)
        .iter()
        .map(|m| {
            m.embeds[0]["footer"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    each_once("the new webhook", &parked, &footers);
    ids.extend(parked);
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked again"
    );
    assert!(s.channels().paused().await.unwrap().is_empty(), "resumed");
}

/// A Notion database no longer shared with the integration answers 404 `object_not_found`
/// (<https://developers.notion.com/reference/status-codes>): that database is paused and its
/// messages parked with how to share it; another database of the same integration flows.
#[tokio::test]
async fn an_unshared_notion_database_is_paused_with_its_hint_while_another_flows() {
    let s = registered().await;
    let notion = notion_unlimited().await;
    let shared = notion.create_events_database().unwrap();
    let unshared = notion
        .create_database("old events", notion_standin::EVENTS_SCHEMA)
        .unwrap();
    assert!(notion.unshare(&unshared.database_id));
    s.res
        .put_destination_secret(&s.sdk, "ops-notion", notion_standin::DEFAULT_TOKEN)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "to-notion", "events": ["feature.used"],
        "destinations": [
            {"type": "notion", "secret": "ops-notion", "database": shared.database_id},
            {"type": "notion", "secret": "ops-notion", "database": unshared.database_id}
        ]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            notion: Some(notion.api_url()),
            ..Urls::default()
        },
    );
    let ids = post_events(&s, 3).await;
    settle(&s, &f, Duration::from_secs(60), || {
        notion.pages(&shared.data_source_id).len() >= ids.len()
    })
    .await;

    let pages: Vec<String> = notion
        .pages(&shared.data_source_id)
        .iter()
        .map(|p| p.text("Event ID").unwrap_or_default())
        .collect();
    each_once("the shared database", &ids, &pages);
    assert!(notion.pages(&unshared.data_source_id).is_empty());
    let refused: Vec<_> = notion
        .requests()
        .into_iter()
        .filter(|r| r.code.as_deref() == Some("object_not_found"))
        .collect();
    assert!(!refused.is_empty(), "the unshared database was never asked");
    let paused = s.channels().paused().await.unwrap();
    assert_eq!(paused.len(), 1, "only the unshared database: {paused:?}");
    assert!(
        paused[0].pk.contains(&unshared.database_id),
        "{}",
        paused[0].pk
    );
    parked_with(
        &s,
        ids.len(),
        &[
            "object_not_found",
            "share the database with the integration",
        ],
    );
}

// ---- (5) an ambiguous failure, as the README's "no duplicates" section promises ----

/// A failure that leaves it open whether the platform took the message.
#[derive(Debug, Clone, Copy)]
enum Ambiguity {
    /// Discord posts the message, then answers 502.
    DiscordPostsThen502,
    /// Discord posts the message and answers after delivery's timeout.
    DiscordPostsThenTimesOut,
    /// Telegram sends the message, then answers 502.
    TelegramSendsThen502,
    /// Telegram sends the message and answers after delivery's timeout.
    TelegramSendsThenTimesOut,
    /// The receiver processes the delivery and answers after delivery's timeout.
    WebhookTakesThenTimesOut,
}

/// Delivery's timeout here (`DESTINATION_TIMEOUT_SECONDS`); a held answer comes after it.
const TIMEOUT_SECS: u64 = 2;
const HELD: Duration = Duration::from_secs(4);

/// Discord and Telegram cannot be asked whether a message arrived: after an ambiguous
/// attempt the message is sent once more, its footer saying so, and the journey too.
/// A webhook is sent again under the same `webhook-id`, so a receiver that keeps the ids it
/// processed drops the repeat. The other destinations of the event get it once, unmarked.
#[tokio::test]
async fn an_ambiguous_attempt_is_resent_once_marked_or_under_the_same_webhook_id() {
    let s = registered().await;
    let discord = discord_standin::Standin::start(discord_standin::StandinConfig::default())
        .await
        .unwrap();
    let hook = discord.default_webhook().unwrap();
    let telegram = telegram_with(&[1001]).await;
    let receiver = Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), SIGNING_SECRET, false)
        .await
        .unwrap();
    for (name, value) in [
        ("ops-discord", discord_url(&hook)),
        ("ops-bot", telegram_standin::DEFAULT_TOKEN.to_owned()),
        ("ops-hook", SIGNING_SECRET.to_owned()),
    ] {
        s.res
            .put_destination_secret(&s.sdk, name, &value)
            .await
            .unwrap();
    }
    s.put_pipeline(&json!({
        "id": "three-ways", "events": ["feature.used"],
        "destinations": [
            {"type": "discord", "secret": "ops-discord"},
            {"type": "telegram", "secret": "ops-bot", "chat_id": 1001},
            {"type": "webhook", "url": receiver.url, "secret": "ops-hook"}
        ]
    }))
    .await;
    let timeout = TIMEOUT_SECS.to_string();
    let f = binaries_with(
        &s,
        Urls {
            discord: Some(discord.api_url()),
            telegram: Some(telegram.api_url()),
            ..Urls::default()
        },
        &[
            ("DESTINATION_TIMEOUT_SECONDS", &timeout),
            ("WEBHOOK_RETRY_SCHEDULE", "1s, 1s, 1s"),
        ],
    );
    // Per event: (footer or text, whether marked as sent again) of each copy, and the
    // webhook's attempts as (webhook-id, status).
    let discord_copies = |id: &str| -> Vec<bool> {
        discord
            .messages(&hook.id)
            .iter()
            .filter_map(|m| m.embeds[0]["footer"]["text"].as_str().map(str::to_owned))
            .filter(|footer| footer.contains(id))
            .map(|footer| footer.ends_with(RESENT_NOTE))
            .collect()
    };
    let telegram_copies = |id: &str| -> Vec<bool> {
        telegram
            .messages(1001)
            .into_iter()
            .filter(|m| m.text.contains(id))
            .map(|m| m.text.contains(RESENT_NOTE))
            .collect()
    };
    let attempts = |id: &str| -> Vec<String> {
        receiver
            .received()
            .into_iter()
            .filter(|r| r.body["data"]["id"] == id && r.verified)
            .map(|r| r.id)
            .collect()
    };

    for (i, case) in [
        Ambiguity::DiscordPostsThen502,
        Ambiguity::DiscordPostsThenTimesOut,
        Ambiguity::TelegramSendsThen502,
        Ambiguity::TelegramSendsThenTimesOut,
        Ambiguity::WebhookTakesThenTimesOut,
    ]
    .into_iter()
    .enumerate()
    {
        match case {
            Ambiguity::DiscordPostsThen502 => discord.inject(discord_standin::Fault::once(
                discord_standin::FaultKind::AcceptThenStatus(502),
            )),
            Ambiguity::DiscordPostsThenTimesOut => discord.inject(discord_standin::Fault::once(
                discord_standin::FaultKind::AcceptThenDelay(HELD),
            )),
            Ambiguity::TelegramSendsThen502 => telegram.inject(telegram_standin::Fault::once(
                telegram_standin::FaultKind::AcceptThenFail(502),
            )),
            Ambiguity::TelegramSendsThenTimesOut => telegram.inject(telegram_standin::Fault::once(
                telegram_standin::FaultKind::AcceptThenDelay(HELD),
            )),
            Ambiguity::WebhookTakesThenTimesOut => {
                receiver.answer_next([Answer::delayed(204, HELD)]);
            }
        }
        let (status, body) = s
            .post("/v1/events", &feature_used(&format!("u_{i}"), "csv.export"))
            .await;
        assert_eq!(status, 202, "{case:?}: {body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let resent = |which: bool| if which { 2 } else { 1 };
        let (on_discord, on_telegram, on_webhook) = (
            resent(matches!(
                case,
                Ambiguity::DiscordPostsThen502 | Ambiguity::DiscordPostsThenTimesOut
            )),
            resent(matches!(
                case,
                Ambiguity::TelegramSendsThen502 | Ambiguity::TelegramSendsThenTimesOut
            )),
            resent(matches!(case, Ambiguity::WebhookTakesThenTimesOut)),
        );
        settle(&s, &f, Duration::from_secs(60), || {
            discord_copies(&id).len() >= on_discord
                && telegram_copies(&id).len() >= on_telegram
                && attempts(&id).len() >= on_webhook
        })
        .await;
        // A held answer may still be pending: let it come, then look again.
        tokio::time::sleep(HELD).await;
        pump_all(&s, &f).await;

        // The first copy is as sent; a second, only after an ambiguous attempt, says so.
        let expect = |n: usize| {
            if n == 2 {
                vec![false, true]
            } else {
                vec![false]
            }
        };
        assert_eq!(discord_copies(&id), expect(on_discord), "{case:?}: discord");
        assert_eq!(
            telegram_copies(&id),
            expect(on_telegram),
            "{case:?}: telegram"
        );
        let ids = attempts(&id);
        assert_eq!(ids.len(), on_webhook, "{case:?}: webhook attempts {ids:?}");
        assert!(
            ids.iter().all(|w| *w == ids[0] && w.starts_with("msg_")),
            "{case:?}: one webhook-id for every attempt: {ids:?}"
        );
        // The journey says which delivery was a repeat (`explain --json`, as the timeline
        // does under the delivery).
        let journey = run(&s, &["explain", &id, "--json"]).stdout;
        let repeats = journey
            .matches("sent again after an unconfirmed attempt")
            .count();
        assert_eq!(
            repeats,
            usize::from(on_discord == 2 || on_telegram == 2 || on_webhook == 2),
            "{case:?}: the journey should say which delivery was sent again: {journey}"
        );
    }
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
}

// ---- 429s that hold more than the target that got them ----

/// The requests to any target in the `window` after the first 429, as `what` lines,
/// leaving out those that arrived within `in_flight` of it: a request already on its way
/// when the 429 was answered (the groups of a batch send side by side) cannot be called
/// back; what must not happen is a send begun once the 429 was known.
fn inside_the_wait(
    at: &[(Instant, u16, String)],
    window: Duration,
    in_flight: Duration,
) -> Vec<String> {
    let Some(limited) = at.iter().position(|(_, status, _)| *status == 429) else {
        panic!("no 429 was answered: {at:?}");
    };
    let t = at[limited].0;
    at[limited + 1..]
        .iter()
        .filter(|(when, _, _)| {
            let after = when.duration_since(t);
            after >= in_flight && after < window
        })
        .map(|(when, status, what)| format!("{what} {status} after {:?}", when.duration_since(t)))
        .collect()
}

/// Discord's 429 with `global: true` is "the global rate limit"
/// (<https://discord.com/developers/docs/topics/rate-limits#global-rate-limit>): every
/// request of the sender waits `retry_after`, not only the webhook's. The issue asks for
/// pacing "including the `global` flag"; delivery's own reason says "every webhook of this
/// sender waits".
#[tokio::test]
async fn a_global_discord_429_holds_every_webhook_for_its_wait() {
    use discord_standin::{Fault, FaultKind};
    let s = Stack::new().await;
    let discord = discord_standin::Standin::start(discord_standin::StandinConfig::default())
        .await
        .unwrap();
    let first = discord.default_webhook().unwrap();
    let second = discord.create_webhook("second");
    for (name, hook) in [("first-hook", &first), ("second-hook", &second)] {
        s.res
            .put_destination_secret(&s.sdk, name, &discord_url(hook))
            .await
            .unwrap();
    }
    s.put_pipeline(&json!({
        "id": "two-webhooks", "events": ["feature.used"],
        "destinations": [
            {"type": "discord", "secret": "first-hook"},
            {"type": "discord", "secret": "second-hook"}
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
    discord.inject(
        Fault::once(FaultKind::RateLimited {
            retry_after: Duration::from_secs(3),
            global: true,
        })
        .on_webhook(&first.id),
    );
    let ids = post_events(&s, 3).await;
    settle(&s, &f, Duration::from_secs(60), || {
        discord.messages(&first.id).len() >= ids.len()
            && discord.messages(&second.id).len() >= ids.len()
    })
    .await;
    let at: Vec<(Instant, u16, String)> = discord
        .requests()
        .into_iter()
        .map(|r| {
            (
                r.at.into_std(),
                r.status,
                format!("webhook {}", r.webhook_id),
            )
        })
        .collect();
    let inside = inside_the_wait(&at, Duration::from_secs(3), Duration::from_millis(100));
    assert!(
        inside.is_empty(),
        "sent inside the global 429's wait: {inside:#?}"
    );
}

/// Notion's rate limit is per integration (<https://developers.notion.com/reference/request-limits>):
/// a 429 answered to the query delivery makes after an ambiguous failure (is the page
/// there?) holds the integration as a 429 to a create does, so another database of the same
/// integration is not written inside the wait.
#[tokio::test]
async fn a_429_to_notions_duplicate_check_holds_the_whole_integration() {
    use notion_standin::{Failure, Fault, FaultKind};
    let s = Stack::new().await;
    let notion = notion_unlimited().await;
    let a = notion.create_events_database().unwrap();
    let b = notion
        .create_database("more events", notion_standin::EVENTS_SCHEMA)
        .unwrap();
    s.res
        .put_destination_secret(&s.sdk, "ops-notion", notion_standin::DEFAULT_TOKEN)
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": "two-databases", "events": ["feature.used"],
        "destinations": [
            {"type": "notion", "secret": "ops-notion", "database": a.database_id},
            {"type": "notion", "secret": "ops-notion", "database": b.database_id}
        ]
    }))
    .await;
    let f = binaries(
        &s,
        Urls {
            notion: Some(notion.api_url()),
            ..Urls::default()
        },
    );
    // Both data sources read first, so the faults meet a create and then its query.
    let mut ids = post_events(&s, 1).await;
    settle(&s, &f, Duration::from_secs(30), || {
        notion.pages(&a.data_source_id).len() == 1 && notion.pages(&b.data_source_id).len() == 1
    })
    .await;
    let before = notion.requests().len();
    notion.inject(
        Fault::once(FaultKind::AcceptThenError(Failure::GatewayTimeout))
            .on_data_source(&a.data_source_id),
    );
    notion.inject(
        Fault::once(FaultKind::RateLimited {
            retry_after_secs: 3,
        })
        .on_data_source(&a.data_source_id),
    );
    ids.extend(post_events(&s, 1).await);
    pump_until(&s, &f, Duration::from_secs(30), || {
        notion.requests()[before..].iter().any(|r| r.status == 429)
    })
    .await;
    // Inside the query's Retry-After, more events for both databases.
    ids.extend(post_events(&s, 2).await);
    settle(&s, &f, Duration::from_secs(60), || {
        notion.pages(&a.data_source_id).len() >= ids.len()
            && notion.pages(&b.data_source_id).len() >= ids.len()
    })
    .await;
    for ds in [&a.data_source_id, &b.data_source_id] {
        let pages: Vec<String> = notion
            .pages(ds)
            .iter()
            .map(|p| p.text("Event ID").unwrap_or_default())
            .collect();
        each_once(ds, &ids, &pages);
    }
    let at: Vec<(Instant, u16, String)> = notion.requests()[before..]
        .iter()
        .map(|r| {
            (
                r.at.into_std(),
                r.status,
                format!("{} {}", r.method, r.path),
            )
        })
        .collect();
    let inside = inside_the_wait(&at, Duration::from_secs(3), Duration::from_millis(100));
    assert!(
        inside.is_empty(),
        "Notion was asked inside the query's Retry-After: {inside:#?}"
    );
}

// ---- email: SES's throttle, 5xx and lost answer, through the emulator's SES faults ----

/// Queues SES faults for emails to `to` in the emulator launcher (see its docs).
async fn ses_faults(to: &str, faults: Value) {
    let faults: Vec<Value> = faults
        .as_array()
        .expect("an array of faults")
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f["to"] = json!(to);
            f
        })
        .collect();
    let url = format!("{}/_ingestlayer/ses-faults", crate::harness::endpoint());
    let answer = reqwest::Client::new()
        .post(&url)
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204, "the emulator took the faults");
}

/// A verified sender, a recipient of its own, and a pipeline emailing each event alone.
async fn email_pipeline(s: &Stack, id: &str) -> String {
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let from = format!("alerts-{tag}@acme.example");
    let to = format!("ops-{tag}@acme.example");
    aws_sdk_sesv2::Client::new(&s.sdk)
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    s.put_pipeline(&json!({
        "id": id, "events": ["feature.used"],
        "destinations": [{"type": "email", "from": from, "to": [to], "digest_threshold": 0}]
    }))
    .await;
    to
}

/// Pumps until `n` emails reached `to`; fails the test after `limit`.
async fn until_emailed(s: &Stack, f: &Functions, to: &str, n: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        pump_all(s, f).await;
        if sent_emails(to).await.len() >= n && s.depth(&s.res.destinations_queue_url).await == 0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{n} emails to {to} not sent within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// SES's throttle (429 TooManyRequestsException, "Maximum sending rate exceeded") is waited
/// out, and a storm of 500 InternalFailure and 503 ServiceUnavailable is ridden out
/// (<https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html#API_SendEmail_Errors>,
/// <https://docs.aws.amazon.com/ses/latest/APIReference-V2/CommonErrors.html>): every event
/// arrives in exactly one email, nothing is parked, and the journey shows the waits.
#[tokio::test]
async fn email_waits_out_a_throttle_and_rides_out_a_5xx_storm_each_event_once() {
    let s = registered().await;
    let to = email_pipeline(&s, "to-email-storm").await;
    let f = binaries(&s, Urls::default());
    ses_faults(
        &to,
        json!([{"status": 429}, {"status": 500}, {"status": 503}, {"status": 500}]),
    )
    .await;
    let ids = post_events(&s, 3).await;
    until_emailed(&s, &f, &to, ids.len(), Duration::from_secs(90)).await;

    let bodies: Vec<String> = sent_emails(&to)
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    each_once("email", &ids, &bodies);
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
    let journey = run(&s, &["explain", &ids[0], "--json"]).stdout;
    for outcome in ["rate_limited", "retry"] {
        assert!(
            journey.contains(&format!("\"{outcome}\"")),
            "the first event's journey shows it {outcome}: {journey}"
        );
    }
}

/// SES took the email and the answer was a 500 (the answer lost): SES gives no way to ask
/// whether it sent, so the README promises it is sent again once and the journey says so.
#[tokio::test]
async fn an_email_ses_took_before_a_500_is_sent_again_once_and_the_journey_says_so() {
    let s = registered().await;
    let to = email_pipeline(&s, "to-email-lost").await;
    let f = binaries(&s, Urls::default());
    ses_faults(&to, json!([{"status": 500, "after_send": true}])).await;
    let ids = post_events(&s, 1).await;
    until_emailed(&s, &f, &to, 2, Duration::from_secs(60)).await;

    let sent = sent_emails(&to).await;
    assert_eq!(sent.len(), 2, "the email and one repeat: {sent:#?}");
    assert!(sent.iter().all(|m| m["body"]
        .as_str()
        .unwrap_or_default()
        .contains(ids[0].as_str())));
    let journey = run(&s, &["explain", &ids[0], "--json"]).stdout;
    assert_eq!(
        journey
            .matches("sent again after an unconfirmed attempt")
            .count(),
        1,
        "{journey}"
    );
    assert_eq!(
        s.depth(&s.res.destinations_dlq_url).await,
        0,
        "nothing parked"
    );
}
