//! Which mentions an accepted message would ping.

use discord_standin::{MentionType, Pings, Standin, StandinConfig};
use serde_json::json;

use crate::{default_webhook, execute, unpaced};

const CONTENT: &str = "@everyone @here hi <@123> and <@!456>, role <@&789>";

async fn pings_of(standin: &Standin, body: serde_json::Value) -> Pings {
    let webhook = default_webhook(standin);
    let reply = execute(&webhook.url, &body).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    standin.messages(&webhook.id).pop().unwrap().pings
}

// Docs: https://discord.com/developers/docs/resources/message#allowed-mentions-object
// ("If you want to completely suppress all mentions in the message ... "parse": []")
#[tokio::test]
async fn an_empty_parse_pings_nobody_whatever_the_content_says() {
    let standin = unpaced().await;
    let pings = pings_of(
        &standin,
        json!({"content": CONTENT, "allowed_mentions": {"parse": []}}),
    )
    .await;
    assert!(pings.is_empty(), "{pings:?}");
}

// Docs: https://discord.com/developers/docs/resources/message#allowed-mentions-object
// ("In interactions and webhooks, only user mentions are parsed")
#[tokio::test]
async fn without_allowed_mentions_a_webhook_pings_the_users_it_mentions() {
    let standin = unpaced().await;
    let pings = pings_of(&standin, json!({"content": CONTENT})).await;
    assert_eq!(
        pings,
        Pings {
            everyone: false,
            here: false,
            users: vec!["123".into(), "456".into()],
            roles: vec![],
        }
    );
}

#[tokio::test]
async fn a_stricter_default_pings_everything_written() {
    let standin = Standin::start(StandinConfig {
        webhook_rate_limit: None,
        global_rate_limit: None,
        default_parse: vec![
            MentionType::Users,
            MentionType::Roles,
            MentionType::Everyone,
        ],
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let pings = pings_of(&standin, json!({"content": CONTENT})).await;
    assert!(pings.everyone && pings.here);
    assert_eq!(pings.users, vec!["123", "456"]);
    assert_eq!(pings.roles, vec!["789"]);
}

// Docs: https://discord.com/developers/docs/resources/message#allowed-mentions-object
// (listed ids ping only if present in the content; parse is mutually exclusive with them)
#[tokio::test]
async fn listed_ids_ping_only_when_the_content_mentions_them() {
    let standin = unpaced().await;
    let pings = pings_of(
        &standin,
        json!({"content": CONTENT, "allowed_mentions": {"parse": ["everyone"], "users": ["456", "999"], "roles": []}}),
    )
    .await;
    assert!(pings.everyone && pings.here);
    assert_eq!(pings.users, vec!["456"]);
    assert!(pings.roles.is_empty());
}

// Docs: https://discord.com/developers/docs/resources/message#allowed-mentions-object
// ("an invalid configuration, because it includes both parse and users")
#[tokio::test]
async fn parse_users_together_with_a_users_list_is_refused() {
    let standin = unpaced().await;
    let reply = execute(
        &default_webhook(&standin).url,
        &json!({"content": CONTENT, "allowed_mentions": {"parse": ["users"], "users": ["123"]}}),
    )
    .await;
    assert_eq!(
        reply.form_error(&["allowed_mentions"]).as_deref(),
        Some("MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE")
    );
    assert!(standin.all_messages().is_empty());
}

#[tokio::test]
async fn mentions_inside_embeds_never_ping() {
    let standin = unpaced().await;
    let pings = pings_of(
        &standin,
        json!({"embeds": [{"title": "@everyone", "description": "<@123> <@&789>"}]}),
    )
    .await;
    assert!(pings.is_empty(), "{pings:?}");
}

// Docs: https://discord.com/developers/docs/resources/message#message-object
#[tokio::test]
async fn the_message_object_reports_the_mentions_that_ping() {
    let standin = unpaced().await;
    let webhook = default_webhook(&standin);
    let reply = crate::execute_wait(
        &webhook,
        &json!({"content": CONTENT, "allowed_mentions": {"parse": ["roles"]}}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["mention_everyone"], false);
    assert_eq!(reply.body["mentions"], json!([]));
    assert_eq!(reply.body["mention_roles"], json!(["789"]));
}
