//! The destinations page over HTTP: sign-in, the channel picker, saving a channel.

use std::time::Duration;

use serde_json::json;

use crate::harness::{feature_used, Stack, ADMIN_TOKEN};

fn bearer() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {ADMIN_TOKEN}"))]
}

/// The value of `name="csrf"` in a page.
fn csrf(page: &str) -> String {
    let at =
        page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

#[tokio::test]
async fn the_page_needs_the_admin_credential() {
    let s = Stack::new().await;
    let (status, _, page) = s.connect_request("GET", "/destinations", &[], "").await;
    assert_eq!(status, 401);
    assert!(page.contains("name=\"token\""), "a sign-in form");
    let wrong = vec![("authorization", "Bearer not-the-admin-token".to_owned())];
    assert_eq!(
        s.connect_request("GET", "/destinations", &wrong, "")
            .await
            .0,
        401
    );
    let form = vec![(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let (status, _, page) = s
        .connect_request("POST", "/destinations/sign-in", &form, "token=nope")
        .await;
    assert_eq!(status, 401);
    assert!(page.contains("That admin token is not right."));
    assert_eq!(
        s.connect_request("GET", "/destinations", &bearer(), "")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn signing_in_sets_a_secure_session_cookie_that_opens_the_page() {
    let s = Stack::new().await;
    let form = vec![(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let (status, headers, _) = s
        .connect_request(
            "POST",
            "/destinations/sign-in",
            &form,
            &format!("token={ADMIN_TOKEN}"),
        )
        .await;
    assert_eq!(status, 303);
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let value = cookie.split(';').next().unwrap().to_owned();
    let (status, _, page) = s
        .connect_request("GET", "/destinations", &[("cookie", value.clone())], "")
        .await;
    assert_eq!(status, 200, "{page}");
    let forged = value.replace("il_session=", "il_session=9");
    assert_eq!(
        s.connect_request("GET", "/destinations", &[("cookie", forged)], "")
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn a_channel_picked_for_a_pipeline_is_where_its_events_arrive() {
    let s = Stack::new().await;
    s.standin.create_channel("sales", false, true);
    s.standin.create_channel("secret", true, true);
    let (status, _, page) = s
        .connect_request("GET", "/destinations", &bearer(), "")
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-pipeline=\"feature-usage-to-alerts\""),
        "{page}"
    );
    assert!(
        page.contains("value=\"default|#sales\""),
        "the default workspace's channels are offered: {page}"
    );
    assert!(
        page.contains("🔒 #secret"),
        "private channels the bot is in are offered"
    );

    let token = csrf(&page);
    let form = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("authorization", format!("Bearer {ADMIN_TOKEN}")),
    ];
    let body = format!(
        "csrf={token}&pipeline=feature-usage-to-alerts&destination=0&target=default%7C%23sales"
    );
    let (status, headers, _) = s
        .connect_request("POST", "/destinations/pipelines", &form, &body)
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        headers["location"],
        "/destinations?saved=feature-usage-to-alerts"
    );

    // The pipeline function reloads pipelines after its cache TTL; a fresh cache sees the change.
    s.pipeline.pipelines.invalidate().await;
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.pump().await;
    assert_eq!(s.standin.messages_in("#sales").len(), 1);
    assert!(s.alerts().is_empty());
}

#[tokio::test]
async fn saving_without_the_form_token_is_refused() {
    let s = Stack::new().await;
    let form = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("authorization", format!("Bearer {ADMIN_TOKEN}")),
    ];
    let (status, _, _) = s
        .connect_request(
            "POST",
            "/destinations/pipelines",
            &form,
            "pipeline=feature-usage-to-alerts&destination=0&target=default%7C%23x",
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = s
        .connect_request("POST", "/destinations/sign-out", &form, "")
        .await;
    assert_eq!(status, 403, "sign-out needs the form token too");
    let item = s
        .dynamo
        .get_item()
        .table_name(&s.res.pipelines_table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S("feature-usage-to-alerts".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let doc: serde_json::Value = serde_dynamo::from_item(item).unwrap();
    assert_eq!(
        doc["destinations"][0]["channel"],
        json!("#alerts"),
        "unchanged"
    );
}

#[tokio::test]
async fn paused_channels_are_shown_with_what_to_do() {
    let s = Stack::new().await;
    s.standin.create_channel("alerts", true, false);
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.pump().await;
    let (_, _, page) = s
        .connect_request("GET", "/destinations", &bearer(), "")
        .await;
    assert!(
        page.contains("#alerts is paused: invite the app to #alerts"),
        "{page}"
    );
    assert!(
        page.contains("<li><strong>#alerts</strong> since"),
        "the paused list names the channel: {page}"
    );
    assert!(!page.contains("chan#"), "never an internal key");
}

#[tokio::test]
async fn each_pipeline_shows_its_latest_events_with_their_outcome_and_sends_a_test() {
    let s = Stack::new().await;
    let (_, _, page) = s
        .connect_request("GET", "/destinations", &bearer(), "")
        .await;
    assert!(
        page.contains("No event has reached this pipeline yet."),
        "{page}"
    );
    let (_, posted) = s.post("/v1/events", &feature_used("u_42", "api")).await;
    let (_, filtered) = s.post("/v1/events", &feature_used("u_42", "search")).await;
    s.pump().await;
    let post = s.alerts().remove(0);

    let (status, _, page) = s
        .connect_request("GET", "/destinations", &bearer(), "")
        .await;
    assert_eq!(status, 200);
    let row = |id: &str| {
        let at = page
            .find(&format!("data-event=\"{id}\""))
            .unwrap_or_else(|| panic!("no row for {id}: {page}"));
        page[at..at + page[at..].find("</tr>").unwrap()].to_owned()
    };
    let posted_row = row(posted["id"].as_str().unwrap());
    assert!(
        posted_row.contains("data-outcome=\"posted\""),
        "{posted_row}"
    );
    assert!(
        posted_row.contains(&format!("#alerts · ts {}", post.ts)),
        "{posted_row}"
    );
    assert!(posted_row.contains("open in Slack"), "{posted_row}");
    let filtered_row = row(filtered["id"].as_str().unwrap());
    assert!(
        filtered_row.contains("data-outcome=\"filtered\""),
        "{filtered_row}"
    );
    assert!(
        filtered_row.contains("is false"),
        "the filter's reason, escaped: {filtered_row}"
    );
    assert!(
        page.find(&format!(
            "data-event=\"{}\"",
            posted["id"].as_str().unwrap()
        )) < page.find(&format!(
            "data-event=\"{}\"",
            filtered["id"].as_str().unwrap()
        )),
        "latest activity first: the post came after both were routed"
    );

    let form = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("authorization", format!("Bearer {ADMIN_TOKEN}")),
    ];
    let (status, _, _) = s
        .connect_request(
            "POST",
            "/destinations/test",
            &form,
            "csrf=wrong&pipeline=feature-usage-to-alerts",
        )
        .await;
    assert_eq!(status, 403, "the form token is checked");
    let body = format!("csrf={}&pipeline=feature-usage-to-alerts", csrf(&page));
    let (status, headers, _) = s
        .connect_request("POST", "/destinations/test", &form, &body)
        .await;
    assert_eq!(status, 303);
    let location = headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/destinations?tested="), "{location}");
    // The channel's next slot is a second after the real post.
    assert!(
        s.pump_until(Duration::from_secs(15), |s| s.alerts().len() == 2)
            .await,
        "the test message was not posted"
    );
    let alerts = s.alerts();
    assert_eq!(alerts.len(), 2, "the real post and the test");
    let test = &alerts[1];
    assert!(
        test.text.as_deref().unwrap_or("").starts_with("[test] "),
        "{test:?}"
    );
    let blocks = test.blocks.clone().unwrap().to_string();
    assert!(blocks.contains("Send test button"), "{blocks}");
    assert!(
        blocks.contains(posted["id"].as_str().unwrap()) && blocks.contains("acme"),
        "made from the pipeline's latest event, enriched: {blocks}"
    );
    let (_, _, page) = s.connect_request("GET", &location, &bearer(), "").await;
    assert!(
        page.contains("Test message of feature-usage-to-alerts queued for #alerts (from event"),
        "{page}"
    );
}
