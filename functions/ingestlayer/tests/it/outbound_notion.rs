//! The Notion adapter against the Notion stand-in (in process, over HTTP, API 2025-09-03): a
//! page is created in the database's data source with the mapped properties and the card as
//! content; long text is split as Notion requires and accepted; a mapping Notion would refuse
//! is refused before sending, naming the property; 429 waits the Retry-After; an answer lost
//! after Notion created the page is a maybe-sent retry, and `find` then finds the page so it
//! is not created twice; an unshared or unknown database, or a bad token, pauses the target.

#![allow(clippy::unwrap_used)] // a failing test may panic

use std::time::Duration;

use ingestlayer::outbound::card::{Card, Field, Span};
use ingestlayer::outbound::notion::{
    page_body, DataSource, Notion, PropertyType, DEFAULT_ID_PROPERTY, MIN_INTERVAL, TEXT_MAX,
};
use ingestlayer::outbound::Verdict;
use notion_standin::{
    DatabaseIds, Failure, Fault, FaultKind, Standin, StandinConfig, DEFAULT_TOKEN, EVENTS_SCHEMA,
};
use secrecy::SecretString;
use serde_json::Value;

/// A stand-in with the events database and no rate limit (pacing has its own test).
async fn standin() -> (Standin, DatabaseIds) {
    let standin = Standin::start(StandinConfig {
        rate_per_sec: f64::INFINITY,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let ids = standin.create_events_database().unwrap();
    (standin, ids)
}

fn notion(standin: &Standin) -> Notion {
    Notion::new(&standin.api_url(), Duration::from_secs(5)).unwrap()
}

fn token() -> SecretString {
    SecretString::from(DEFAULT_TOKEN)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn card(title: &str) -> Card {
    Card {
        title: title.into(),
        text: vec![
            Span::Text {
                text: "Feature used by ".into(),
            },
            Span::Value {
                text: "acme".into(),
            },
        ],
        fields: vec![Field {
            name: "Feature".into(),
            value: "csv.export".into(),
        }],
        footer: "ingestlayer · from web-app".into(),
        link: Some("https://ingest.example/v1/events/e1?sig=s".into()),
        ..Card::default()
    }
}

fn mapping(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn pages_text(children: &[Value]) -> Vec<String> {
    children
        .iter()
        .map(|b| {
            b["paragraph"]["rich_text"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["plain_text"].as_str().unwrap())
                .collect()
        })
        .collect()
}

async fn events_source(standin: &Standin, ids: &DatabaseIds) -> DataSource {
    notion(standin)
        .data_source(&token(), &ids.database_id)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_page_is_created_with_the_mapped_properties_and_the_card_as_content() {
    let (standin, ids) = standin().await;
    let notion = notion(&standin);
    let source = notion
        .data_source(&token(), &ids.database_id)
        .await
        .unwrap();
    assert_eq!(source.id, ids.data_source_id);
    assert_eq!(source.title_property, "Name");
    assert_eq!(source.kind_of("Count"), Some(&PropertyType::Number));

    let body = page_body(
        &source,
        &mapping(&[
            ("Event", "feature.used"),
            ("Account", "acme"),
            ("Plan", "pro"),
            ("Count", "3"),
            ("Received", "2026-11-30T10:00:00Z"),
        ]),
        &card("Feature used: csv.export"),
        "web-app:e1",
        DEFAULT_ID_PROPERTY,
    )
    .unwrap();
    let verdict = notion.create(&token(), &body, now()).await;

    let pages = standin.pages(&ids.data_source_id);
    assert_eq!(pages.len(), 1);
    let page = &pages[0];
    assert_eq!(
        verdict,
        Verdict::Delivered {
            receipt: page.id.clone(),
            hold: None
        }
    );
    assert_eq!(page.text("Name").unwrap(), "Feature used: csv.export");
    assert_eq!(page.text("Event ID").unwrap(), "web-app:e1");
    assert_eq!(page.text("Event").unwrap(), "feature.used");
    assert_eq!(page.text("Account").unwrap(), "acme");
    assert_eq!(page.value("Plan").unwrap()["name"], "pro");
    assert_eq!(page.value("Count").unwrap(), 3);
    assert_eq!(
        page.value("Received").unwrap()["start"],
        "2026-11-30T10:00:00Z"
    );
    assert_eq!(
        pages_text(&page.children),
        [
            "Feature used by acme",
            "Feature: csv.export",
            "ingestlayer · from web-app"
        ]
    );
}

#[tokio::test]
async fn a_data_source_id_works_as_well_as_its_database_and_a_link() {
    let (standin, ids) = standin().await;
    let notion = notion(&standin);
    let by_source = notion
        .data_source(&token(), &ids.data_source_id.replace('-', ""))
        .await
        .unwrap();
    assert_eq!(by_source.id, ids.data_source_id);
    let link = format!(
        "https://www.notion.so/acme/ingestlayer-events-{}?v=1",
        ids.database_id.replace('-', "")
    );
    let by_link = notion.data_source(&token(), &link).await.unwrap();
    assert_eq!(by_link, by_source);
}

#[tokio::test]
async fn a_database_with_several_data_sources_pauses_and_lists_them() {
    let (standin, ids) = standin().await;
    let second = standin
        .add_data_source(
            &ids.database_id,
            "archive",
            &[
                ("Name", notion_standin::PropertyType::Title),
                ("Event ID", notion_standin::PropertyType::RichText),
            ],
        )
        .unwrap();
    let notion = notion(&standin);
    let Err(Verdict::PauseTarget { hint, .. }) =
        notion.data_source(&token(), &ids.database_id).await
    else {
        panic!("several data sources pause")
    };
    assert!(hint.contains(&ids.data_source_id), "{hint}");
    assert!(hint.contains(&format!("{second} (archive)")), "{hint}");
    // Naming one of them works.
    let chosen = notion.data_source(&token(), &second).await.unwrap();
    assert_eq!(chosen.id, second);
}

#[tokio::test]
async fn long_text_is_split_into_objects_of_at_most_2000_characters_and_accepted() {
    let (standin, ids) = standin().await;
    let source = events_source(&standin, &ids).await;
    // 11,600 characters, 12,000 UTF-16 units (the fox is two): Notion counts the units.
    let long = "The quick brown fox 🦊 jumps. ".repeat(400);
    let mut c = card("long");
    c.text = vec![Span::Value { text: long.clone() }];
    let body = page_body(
        &source,
        &mapping(&[("Account", &long)]),
        &c,
        "e-long",
        DEFAULT_ID_PROPERTY,
    )
    .unwrap();
    let verdict = notion(&standin).create(&token(), &body, now()).await;
    assert!(matches!(verdict, Verdict::Delivered { .. }), "{verdict:?}");

    let page = &standin.pages(&ids.data_source_id)[0];
    assert_eq!(page.text("Account").unwrap(), long);
    let objects = page.value("Account").unwrap().as_array().unwrap();
    assert_eq!(objects.len(), 6);
    for o in objects {
        let content = o["text"]["content"].as_str().unwrap();
        assert!(content.encode_utf16().count() <= TEXT_MAX);
    }
    assert_eq!(pages_text(&page.children)[0], long);
}

#[tokio::test]
async fn a_property_notion_would_refuse_is_refused_before_sending_naming_it() {
    let (standin, ids) = standin().await;
    let source = events_source(&standin, &ids).await;
    let unknown = page_body(
        &source,
        &mapping(&[("Plann", "pro")]),
        &card("x"),
        "e",
        DEFAULT_ID_PROPERTY,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        unknown,
        "`Plann` is not a property of the Notion data source; it has: Name, Event, Event ID, \
         Account, Plan, Count, Received"
    );
    let not_a_number = page_body(
        &source,
        &mapping(&[("Count", "many")]),
        &card("x"),
        "e",
        DEFAULT_ID_PROPERTY,
    )
    .unwrap_err()
    .to_string();
    assert!(not_a_number.contains("`Count`"), "{not_a_number}");
    let no_id = page_body(&source, &[], &card("x"), "e", "Delivery").unwrap_err();
    assert!(no_id.to_string().contains("`Delivery`"), "{no_id}");
    // Two reads of the schema, nothing else.
    assert_eq!(standin.requests().len(), 2);
}

#[tokio::test]
async fn what_notion_itself_refuses_is_parked_with_its_message() {
    let (standin, ids) = standin().await;
    let source = events_source(&standin, &ids).await;
    let mut body = page_body(&source, &[], &card("x"), "e", DEFAULT_ID_PROPERTY).unwrap();
    body["properties"]["Count"] = serde_json::json!({"rich_text": []});
    let verdict = notion(&standin).create(&token(), &body, now()).await;
    assert_eq!(
        verdict,
        Verdict::Park {
            reason: "Notion answered 400 validation_error: Count is expected to be number.".into()
        }
    );
}

#[tokio::test]
async fn a_429_waits_the_retry_after_notion_gave() {
    let (standin, ids) = standin().await;
    let source = events_source(&standin, &ids).await;
    standin.inject(Fault::once(FaultKind::RateLimited {
        retry_after_secs: 7,
    }));
    let body = page_body(&source, &[], &card("x"), "e", DEFAULT_ID_PROPERTY).unwrap();
    let verdict = notion(&standin).create(&token(), &body, now()).await;
    assert!(
        matches!(verdict, Verdict::RetryAfter { wait, .. } if wait == Duration::from_secs(7)),
        "{verdict:?}"
    );
    assert!(standin.pages(&ids.data_source_id).is_empty());
}

#[tokio::test]
async fn a_conflict_is_retried_as_not_created() {
    let (standin, ids) = standin().await;
    let source = events_source(&standin, &ids).await;
    standin.inject(Fault::once(FaultKind::Error(Failure::Conflict)));
    let body = page_body(&source, &[], &card("x"), "e", DEFAULT_ID_PROPERTY).unwrap();
    let verdict = notion(&standin).create(&token(), &body, now()).await;
    assert!(
        matches!(
            verdict,
            Verdict::Retry {
                maybe_sent: false,
                ..
            }
        ),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_page_created_behind_a_5xx_is_found_so_it_is_not_created_twice() {
    let (standin, ids) = standin().await;
    let notion = notion(&standin);
    let source = events_source(&standin, &ids).await;
    assert_eq!(
        notion
            .find(&token(), &source, DEFAULT_ID_PROPERTY, "web-app:e7")
            .await,
        Ok(None)
    );
    standin.inject(Fault::once(FaultKind::AcceptThenError(Failure::BadGateway)));
    let body = page_body(&source, &[], &card("x"), "web-app:e7", DEFAULT_ID_PROPERTY).unwrap();
    let verdict = notion.create(&token(), &body, now()).await;
    assert!(
        matches!(
            verdict,
            Verdict::Retry {
                maybe_sent: true,
                ..
            }
        ),
        "{verdict:?}"
    );
    let found = notion
        .find(&token(), &source, DEFAULT_ID_PROPERTY, "web-app:e7")
        .await
        .unwrap();
    let pages = standin.pages(&ids.data_source_id);
    assert_eq!(pages.len(), 1);
    assert_eq!(found.as_deref(), Some(pages[0].id.as_str()));
    // Another event's id finds nothing.
    assert_eq!(
        notion
            .find(&token(), &source, DEFAULT_ID_PROPERTY, "web-app:e8")
            .await,
        Ok(None)
    );
}

#[tokio::test]
async fn an_answer_later_than_the_timeout_is_maybe_sent_and_found() {
    let (standin, ids) = standin().await;
    let source = events_source(&standin, &ids).await;
    let impatient = Notion::new(&standin.api_url(), Duration::from_millis(300)).unwrap();
    standin.inject(Fault::once(FaultKind::AcceptThenDelay(
        Duration::from_secs(3),
    )));
    let body = page_body(&source, &[], &card("x"), "web-app:e9", DEFAULT_ID_PROPERTY).unwrap();
    let verdict = impatient.create(&token(), &body, now()).await;
    assert!(
        matches!(&verdict, Verdict::Retry { reason, maybe_sent: true } if reason.starts_with("Notion did not answer in time")),
        "{verdict:?}"
    );
    let found = notion(&standin)
        .find(&token(), &source, DEFAULT_ID_PROPERTY, "web-app:e9")
        .await
        .unwrap();
    assert_eq!(
        found,
        Some(standin.pages(&ids.data_source_id)[0].id.clone())
    );
}

#[tokio::test]
async fn an_unshared_or_unknown_database_pauses_with_how_to_share_it() {
    let (standin, ids) = standin().await;
    let notion = notion(&standin);
    let source = events_source(&standin, &ids).await;
    assert!(standin.unshare(&ids.database_id));

    for id in [ids.database_id.as_str(), "27a5d30a17284a1ea78871341f22fb97"] {
        let Err(Verdict::PauseTarget { reason, hint }) = notion.data_source(&token(), id).await
        else {
            panic!("{id} pauses")
        };
        assert!(reason.contains("object_not_found"), "{reason}");
        assert!(hint.contains("→ Connections"), "{hint}");
    }
    // A page for a data source read before it was unshared.
    let body = page_body(&source, &[], &card("x"), "e", DEFAULT_ID_PROPERTY).unwrap();
    let verdict = notion.create(&token(), &body, now()).await;
    assert!(
        matches!(&verdict, Verdict::PauseTarget { hint, .. } if hint.contains("Connections")),
        "{verdict:?}"
    );
    let Err(Verdict::PauseTarget { .. }) = notion.data_source(&token(), "not an id").await else {
        panic!("a malformed id pauses")
    };
}

#[tokio::test]
async fn a_bad_token_pauses_and_is_never_shown() {
    let (standin, ids) = standin().await;
    let notion = notion(&standin);
    let bad = SecretString::from("ntn_revoked_secret_value");
    let Err(verdict) = notion.data_source(&bad, &ids.database_id).await else {
        panic!("a bad token is refused")
    };
    let Verdict::PauseTarget { reason, hint } = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(reason.contains("401 unauthorized"), "{reason}");
    assert!(hint.contains("integration token"), "{hint}");
    for shown in [
        format!("{verdict:?}"),
        format!("{notion:?}"),
        format!("{bad:?}"),
    ] {
        assert!(!shown.contains("ntn_revoked_secret_value"), "{shown}");
    }
}

#[tokio::test]
async fn requests_min_interval_apart_are_never_rate_limited() {
    // Notion's documented average, three a second, and no burst at all.
    let standin = Standin::start(StandinConfig {
        rate_per_sec: 3.0,
        burst: 1,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let ids = standin.create_events_database().unwrap();
    let source = DataSource {
        id: ids.data_source_id.clone(),
        properties: EVENTS_SCHEMA
            .iter()
            .map(|(name, kind)| ((*name).to_owned(), PropertyType::parse(kind.key())))
            .collect(),
        title_property: "Name".into(),
    };
    let notion = notion(&standin);
    for i in 0..7 {
        let body = page_body(
            &source,
            &[],
            &card("paced"),
            &format!("e{i}"),
            DEFAULT_ID_PROPERTY,
        )
        .unwrap();
        let verdict = notion.create(&token(), &body, now()).await;
        assert!(
            matches!(verdict, Verdict::Delivered { .. }),
            "{i}: {verdict:?}"
        );
        tokio::time::sleep(MIN_INTERVAL).await;
    }
    assert_eq!(standin.pages(&ids.data_source_id).len(), 7);
}
