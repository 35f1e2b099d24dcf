//! Three requests per second per integration, bursts allowed, 429 + Retry-After over it.
//! Docs: https://developers.notion.com/reference/request-limits#rate-limits

use std::time::Duration;

use notion_standin::{Standin, StandinConfig, DEFAULT_TOKEN};
use reqwest::Method;

use crate::{event_page, send, VERSION};

async fn paced(burst: u32) -> (Standin, notion_standin::DatabaseIds) {
    let standin = Standin::start(StandinConfig {
        rate_per_sec: 3.0,
        burst,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let ids = standin.create_events_database().unwrap();
    (standin, ids)
}

async fn page(standin: &Standin, ds: &str, token: &str) -> crate::Reply {
    send(
        standin,
        Method::POST,
        "/v1/pages",
        Some(VERSION),
        Some(token),
        Some(&event_page(ds, "e")),
    )
    .await
}

// Docs: https://developers.notion.com/reference/request-limits#rate-limits
#[tokio::test(start_paused = true)]
async fn over_the_burst_notion_answers_429_with_an_integer_retry_after() {
    let (standin, ids) = paced(3).await;
    for _ in 0..3 {
        assert_eq!(
            page(&standin, &ids.data_source_id, DEFAULT_TOKEN)
                .await
                .status,
            200
        );
    }
    let limited = page(&standin, &ids.data_source_id, DEFAULT_TOKEN).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), Some("rate_limited"));
    assert_eq!(limited.body["object"], "error");
    assert_eq!(limited.body["status"], 429);
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 1);
    assert_eq!(standin.pages(&ids.data_source_id).len(), 3);

    // Another integration has its own budget.
    standin.add_integration("ntn_other");
    assert_eq!(
        page(&standin, &ids.data_source_id, "ntn_other")
            .await
            .status,
        200
    );
}

// Docs: https://developers.notion.com/reference/request-limits#rate-limits
#[tokio::test(start_paused = true)]
async fn waiting_retry_after_is_enough_and_the_average_holds_at_three_per_second() {
    let (standin, ids) = paced(3).await;
    for _ in 0..3 {
        page(&standin, &ids.data_source_id, DEFAULT_TOKEN).await;
    }
    let limited = page(&standin, &ids.data_source_id, DEFAULT_TOKEN).await;
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    tokio::time::advance(Duration::from_secs(retry_after)).await;
    assert_eq!(
        page(&standin, &ids.data_source_id, DEFAULT_TOKEN)
            .await
            .status,
        200
    );

    // Ten seconds of one request every 100 ms: 3 per second get through, plus what was left.
    let mut accepted = 0;
    for _ in 0..100 {
        tokio::time::advance(Duration::from_millis(100)).await;
        if page(&standin, &ids.data_source_id, DEFAULT_TOKEN)
            .await
            .status
            == 200
        {
            accepted += 1;
        }
    }
    assert!((30..=33).contains(&accepted), "accepted {accepted} in 10 s");
}

// Docs: https://developers.notion.com/reference/request-limits#rate-limits
#[tokio::test(start_paused = true)]
async fn the_burst_is_configurable() {
    let (standin, ids) = paced(10).await;
    for i in 0..10 {
        assert_eq!(
            page(&standin, &ids.data_source_id, DEFAULT_TOKEN)
                .await
                .status,
            200,
            "request {i}"
        );
    }
    assert_eq!(
        page(&standin, &ids.data_source_id, DEFAULT_TOKEN)
            .await
            .status,
        429
    );
    tokio::time::advance(Duration::from_millis(334)).await;
    assert_eq!(
        page(&standin, &ids.data_source_id, DEFAULT_TOKEN)
            .await
            .status,
        200
    );
}
