//! The destinations page for destinations beyond Slack, over HTTP: each is listed with its
//! target and whether its secret is stored; the admin stores a secret (write only: the value
//! is never shown back) and changes a target's plain setting, checked by the pipeline rules.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

use crate::harness::{Stack, ADMIN_TOKEN};

const PIPELINE: &str = "signups-everywhere";
const DISCORD_SECRET: &str = "community-hook";
const TELEGRAM_SECRET: &str = "ops-bot";
/// What the admin stores as the Discord webhook's URL: it must never come back in a page.
const DISCORD_URL: &str =
    "https://discord.com/api/webhooks/123456/never-shown-again-0123456789abcdef";

fn bearer() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {ADMIN_TOKEN}"))]
}

fn form() -> Vec<(&'static str, String)> {
    vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("authorization", format!("Bearer {ADMIN_TOKEN}")),
    ]
}

fn encoded(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The value of `name="csrf"` in a page.
fn csrf(page: &str) -> String {
    let at =
        page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

/// The stack with a pipeline sending to Slack, Discord, Telegram and email.
async fn stack() -> Stack {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": PIPELINE,
        "events": ["user.signed_up"],
        "destinations": [
            {"type": "slack", "channel": "#alerts"},
            {"type": "discord", "name": "community", "secret": DISCORD_SECRET},
            {"type": "telegram", "secret": TELEGRAM_SECRET, "chat_id": "@ops_alerts"},
            {"type": "email", "from": "alerts@example.com", "to": ["ops@example.com"]},
        ],
    }))
    .await;
    s
}

async fn page(s: &Stack) -> String {
    let (status, _, page) = s
        .connect_request("GET", "/destinations", &bearer(), "")
        .await;
    assert_eq!(status, 200, "{page}");
    page
}

/// The markup of destination `index` of the test pipeline.
fn destination(page: &str, index: usize) -> String {
    let section = page
        .find(&format!("data-pipeline=\"{PIPELINE}\""))
        .unwrap_or_else(|| panic!("no section for {PIPELINE}: {page}"));
    let mark = format!("<div class=\"destination\" data-destination=\"{index}\"");
    let at = section
        + page[section..]
            .find(&mark)
            .unwrap_or_else(|| panic!("no destination {index}: {page}"));
    let end = at + page[at..].find("</section>").unwrap();
    page[at..end].to_owned()
}

async fn post(s: &Stack, path: &str, pairs: &[(&str, &str)]) -> (u16, http::HeaderMap, String) {
    s.connect_request("POST", path, &form(), &encoded(pairs))
        .await
}

async fn stored_pipeline(s: &Stack) -> Value {
    let item = s
        .dynamo
        .get_item()
        .table_name(&s.res.pipelines_table)
        .key("id", AttributeValue::S(PIPELINE.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    serde_dynamo::from_item(item).unwrap()
}

#[tokio::test]
async fn destinations_beyond_slack_are_listed_with_their_target_and_missing_secret() {
    let s = stack().await;
    let page = page(&s).await;
    let discord = destination(&page, 1);
    assert!(discord.contains("data-type=\"discord\""), "{discord}");
    assert!(
        discord.contains("discord webhook (community-hook)"),
        "{discord}"
    );
    assert!(
        discord.contains("data-state=\"missing\"") && discord.contains("missing — store it below"),
        "{discord}"
    );
    assert!(discord.contains("type=\"password\""), "{discord}");
    let telegram = destination(&page, 2);
    assert!(telegram.contains("telegram chat @ops_alerts"), "{telegram}");
    assert!(telegram.contains("missing — store it below"), "{telegram}");
    assert!(
        telegram.contains("name=\"value\" value=\"@ops_alerts\""),
        "the chat id can be changed: {telegram}"
    );
    let email = destination(&page, 3);
    assert!(email.contains("email to ops@example.com"), "{email}");
    assert!(
        !email.contains("data-secret"),
        "email has no secret: {email}"
    );
    assert!(
        page.contains("name=\"target\""),
        "the Slack destination keeps its channel picker"
    );
}

#[tokio::test]
async fn a_stored_secret_is_in_secrets_manager_and_never_in_the_page() {
    let s = stack().await;
    let token = csrf(&page(&s).await);

    let (status, _, refused) = post(
        &s,
        "/destinations/secrets",
        &[
            ("csrf", "0".repeat(64).as_str()),
            ("pipeline", PIPELINE),
            ("destination", "1"),
            ("secret", DISCORD_SECRET),
            ("value", DISCORD_URL),
        ],
    )
    .await;
    assert_eq!(status, 403, "a wrong form token is refused");
    assert!(!refused.contains(DISCORD_URL));

    let (status, _, refused) = post(
        &s,
        "/destinations/secrets",
        &[
            ("csrf", &token),
            ("pipeline", PIPELINE),
            ("destination", "1"),
            ("secret", DISCORD_SECRET),
            ("value", "   "),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused.contains("an empty value is not stored"),
        "{refused}"
    );

    let (status, headers, _) = post(
        &s,
        "/destinations/secrets",
        &[
            ("csrf", &token),
            ("pipeline", PIPELINE),
            ("destination", "1"),
            ("secret", DISCORD_SECRET),
            ("value", DISCORD_URL),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let location = headers["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/destinations?stored={DISCORD_SECRET}"));

    let secrets = aws_sdk_secretsmanager::Client::new(&s.sdk);
    let stored = secrets
        .get_secret_value()
        .secret_id(format!(
            "{}/{DISCORD_SECRET}",
            s.res.destination_secret_prefix
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.secret_string(), Some(DISCORD_URL));

    let (status, _, after) = s.connect_request("GET", &location, &bearer(), "").await;
    assert_eq!(status, 200);
    assert!(
        after.contains(&format!("Stored the secret {DISCORD_SECRET}.")),
        "{after}"
    );
    let discord = destination(&after, 1);
    assert!(discord.contains("data-state=\"stored\""), "{discord}");
    assert!(
        destination(&after, 2).contains("data-state=\"missing\""),
        "the Telegram secret is still missing"
    );
    assert!(!after.contains(DISCORD_URL), "the value is never shown");
    assert!(!after.contains("never-shown-again"), "nor a part of it");
}

#[tokio::test]
async fn a_secret_form_for_a_destination_without_that_secret_is_refused() {
    let s = stack().await;
    let token = csrf(&page(&s).await);
    for (index, named) in [("0", DISCORD_SECRET), ("3", DISCORD_SECRET), ("9", "x")] {
        let (status, _, refused) = post(
            &s,
            "/destinations/secrets",
            &[
                ("csrf", &token),
                ("pipeline", PIPELINE),
                ("destination", index),
                ("secret", named),
                ("value", "a-value"),
            ],
        )
        .await;
        assert!(
            [400, 404].contains(&status),
            "destination {index}: {status} {refused}"
        );
        assert!(!refused.contains("a-value"));
    }
    // The form's secret name is only checked against the stored one, never used.
    let (status, _, refused) = post(
        &s,
        "/destinations/secrets",
        &[
            ("csrf", &token),
            ("pipeline", PIPELINE),
            ("destination", "2"),
            ("secret", DISCORD_SECRET),
            ("value", "a-value"),
        ],
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.contains(TELEGRAM_SECRET), "{refused}");
    let secrets = aws_sdk_secretsmanager::Client::new(&s.sdk);
    for name in [DISCORD_SECRET, TELEGRAM_SECRET] {
        let read = secrets
            .describe_secret()
            .secret_id(format!("{}/{name}", s.res.destination_secret_prefix))
            .send()
            .await;
        assert!(read.is_err(), "nothing was stored as {name}");
    }
}

#[tokio::test]
async fn a_telegram_chat_id_is_changed_by_the_pipeline_rules() {
    let s = stack().await;
    let token = csrf(&page(&s).await);
    let set = |csrf: String, value: &'static str| {
        let s = &s;
        async move {
            post(
                s,
                "/destinations/targets",
                &[
                    ("csrf", &csrf),
                    ("pipeline", PIPELINE),
                    ("destination", "2"),
                    ("value", value),
                ],
            )
            .await
        }
    };

    let (status, _, _) = set("f".repeat(64), "-100123").await;
    assert_eq!(status, 403, "a wrong form token is refused");

    let (status, _, refused) = set(token.clone(), "general").await;
    assert_eq!(status, 400);
    assert!(refused.contains("destinations[2].chat_id"), "{refused}");
    assert_eq!(
        stored_pipeline(&s).await["destinations"][2]["chat_id"],
        json!("@ops_alerts"),
        "unchanged"
    );

    let (status, headers, _) = set(token.clone(), "-100123").await;
    assert_eq!(status, 303);
    assert_eq!(
        headers["location"],
        format!("/destinations?target={PIPELINE}")
    );
    let doc = stored_pipeline(&s).await;
    assert_eq!(doc["destinations"][2]["chat_id"], json!(-100123));
    assert_eq!(
        doc["destinations"][2]["secret"],
        json!(TELEGRAM_SECRET),
        "the rest of the destination is kept"
    );
    assert_eq!(doc["destinations"].as_array().unwrap().len(), 4);

    let after = page(&s).await;
    assert!(
        destination(&after, 2).contains("telegram chat -100123"),
        "{after}"
    );

    // A destination whose target has no plain setting here.
    let (status, _, refused) = post(
        &s,
        "/destinations/targets",
        &[
            ("csrf", &token),
            ("pipeline", PIPELINE),
            ("destination", "1"),
            ("value", "https://example.com"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{refused}");
}

#[tokio::test]
async fn email_recipients_are_entered_comma_separated_and_each_is_checked() {
    let s = stack().await;
    let token = csrf(&page(&s).await);
    let body = |value: &'static str| {
        [
            ("csrf", token.clone()),
            ("pipeline", PIPELINE.to_owned()),
            ("destination", "3".to_owned()),
            ("value", value.to_owned()),
        ]
    };
    let pairs = body("ops@example.com, not-an-address");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, refused) = post(&s, "/destinations/targets", &pairs).await;
    assert_eq!(status, 400);
    assert!(refused.contains("destinations[3].to[1]"), "{refused}");

    let pairs = body("ops@example.com, sales@example.com");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = post(&s, "/destinations/targets", &pairs).await;
    assert_eq!(status, 303);
    assert_eq!(
        stored_pipeline(&s).await["destinations"][3]["to"],
        json!(["ops@example.com", "sales@example.com"])
    );
}
