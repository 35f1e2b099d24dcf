//! The destinations page over HTTP: sign-in, the channel picker, saving a channel.

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
