//! Slack's OAuth v2 install flow, token rotation, revocation and `users.lookupByEmail`, over HTTP.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Url};
use serde_json::{json, Value};
use slack_standin::{Standin, StandinConfig};

use crate::{reply, Reply};

const CLIENT_ID: &str = "standin-client-id";
const CLIENT_SECRET: &str = "standin-client-secret";
const REDIRECT_URI: &str = "https://app.example/slack/oauth/callback";

async fn standin(config: StandinConfig) -> Standin {
    Standin::start(StandinConfig {
        rate_per_channel_per_sec: f64::INFINITY,
        ..config
    })
    .await
    .unwrap()
}

/// A stand-in that accepts no token but those it issues, so a passing call proves the
/// issued token was accepted.
async fn strict(token_rotation: bool) -> Standin {
    standin(StandinConfig {
        accepted_tokens: Some(Vec::new()),
        token_rotation,
        ..StandinConfig::default()
    })
    .await
}

/// A client that shows redirects instead of following them, as a test of a 302 needs.
fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

fn authorize_query(state: &str) -> String {
    form(&[
        ("client_id", CLIENT_ID),
        ("scope", "chat:write,channels:read"),
        ("user_scope", ""),
        ("redirect_uri", REDIRECT_URI),
        ("state", state),
    ])
}

fn query_value(url: &str, key: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Clicks Allow without a browser and returns the code from the redirect.
fn code(standin: &Standin) -> String {
    let redirect = standin.approve(&authorize_query("s")).unwrap();
    query_value(&redirect, "code").unwrap()
}

enum Credentials<'a> {
    Basic(&'a str, &'a str),
    Form(&'a str, &'a str),
}

/// `POST oauth.v2.access` with a form body, as Slack documents it.
async fn access(standin: &Standin, credentials: Credentials<'_>, args: &[(&str, &str)]) -> Reply {
    let mut pairs = args.to_vec();
    let mut request = Client::new()
        .post(format!("{}/oauth.v2.access", standin.api_url()))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    match credentials {
        Credentials::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
        Credentials::Form(id, secret) => {
            pairs.push(("client_id", id));
            pairs.push(("client_secret", secret));
        }
    }
    reply(request.body(form(&pairs)).send().await.unwrap()).await
}

async fn exchange(standin: &Standin, code: &str) -> Reply {
    access(
        standin,
        Credentials::Basic(CLIENT_ID, CLIENT_SECRET),
        &[
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("grant_type", "authorization_code"),
        ],
    )
    .await
}

async fn refresh(standin: &Standin, refresh_token: &str) -> Reply {
    access(
        standin,
        Credentials::Basic(CLIENT_ID, CLIENT_SECRET),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

async fn call_with(standin: &Standin, token: &str, method: &str, body: &Value) -> Reply {
    let response = Client::new()
        .post(format!("{}/{method}", standin.api_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    reply(response).await
}

async fn post_with(standin: &Standin, token: &str) -> Reply {
    call_with(
        standin,
        token,
        "chat.postMessage",
        &json!({"channel": "#alerts", "text": "hello"}),
    )
    .await
}

fn str_field<'r>(reply: &'r Reply, key: &str) -> &'r str {
    reply.body[key].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_full_install_flow_gives_a_bot_token_that_posts_a_message() {
    let standin = strict(false).await;
    let browser = browser();

    let page = browser
        .get(format!(
            "{}?{}",
            standin.authorize_url(),
            authorize_query("csrf-123")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Install ingestlayer to Stand-in workspace"),
        "{html}"
    );
    assert!(html.contains("chat:write") && html.contains("channels:read"));
    assert!(html.contains(">Allow</button>") && html.contains(">Cancel</button>"));

    // What the Allow form posts.
    let allowed = browser
        .post(standin.authorize_url())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("{}&decision=allow", authorize_query("csrf-123")))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 302);
    let location = allowed.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(query_value(&location, "state").as_deref(), Some("csrf-123"));
    let code = query_value(&location, "code").unwrap();

    let installed = exchange(&standin, &code).await;
    assert!(installed.is_ok(), "{}", installed.body);
    let token = str_field(&installed, "access_token").to_owned();
    assert!(token.starts_with("xoxb-"), "{token}");
    assert_eq!(installed.body["token_type"], "bot");
    assert_eq!(installed.body["scope"], "chat:write,channels:read");
    assert_eq!(installed.body["app_id"], "A0STANDIN");
    assert_eq!(installed.body["bot_user_id"], "U0BOT");
    assert_eq!(installed.body["authed_user"], json!({"id": "U0INSTALLER"}));
    assert_eq!(
        installed.body["team"],
        json!({"id": "T0STANDIN", "name": "Stand-in"})
    );
    assert_eq!(installed.body["enterprise"], Value::Null);
    assert_eq!(installed.body["is_enterprise_install"], false);
    assert!(installed.body.get("refresh_token").is_none());
    assert!(installed.body.get("expires_in").is_none());

    let posted = post_with(&standin, &token).await;
    assert!(posted.is_ok(), "{}", posted.body);
    assert_eq!(standin.messages()[0].token, token);
    let whoami = call_with(&standin, &token, "auth.test", &json!({})).await;
    assert_eq!(whoami.body["team_id"], "T0STANDIN");
}

#[tokio::test]
async fn a_code_works_only_once() {
    let standin = strict(false).await;
    let code = code(&standin);
    assert!(exchange(&standin, &code).await.is_ok());
    let again = exchange(&standin, &code).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, json!({"ok": false, "error": "invalid_code"}));
}

#[tokio::test]
async fn an_unknown_code_is_invalid_code() {
    let standin = strict(false).await;
    let reply = exchange(&standin, "123.456.not-a-code").await;
    assert_eq!(reply.error(), Some("invalid_code"));
}

#[tokio::test]
async fn a_wrong_client_secret_is_bad_client_secret_and_leaves_the_code_usable() {
    let standin = strict(false).await;
    let code = code(&standin);
    let args = [("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    for credentials in [
        Credentials::Basic(CLIENT_ID, "wrong"),
        Credentials::Form(CLIENT_ID, "wrong"),
        Credentials::Form(CLIENT_ID, ""),
    ] {
        let reply = access(&standin, credentials, &args).await;
        assert_eq!(reply.error(), Some("bad_client_secret"));
    }
    assert!(exchange(&standin, &code).await.is_ok());
}

#[tokio::test]
async fn an_unknown_or_missing_client_id_is_invalid_client_id() {
    let standin = strict(false).await;
    let code = code(&standin);
    let args = [("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    let unknown = access(&standin, Credentials::Basic("nobody", CLIENT_SECRET), &args).await;
    assert_eq!(unknown.error(), Some("invalid_client_id"));
    let missing = Client::new()
        .post(format!("{}/oauth.v2.access", standin.api_url()))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&args))
        .send()
        .await
        .unwrap();
    assert_eq!(reply(missing).await.error(), Some("invalid_client_id"));
}

#[tokio::test]
async fn client_credentials_work_as_basic_auth_and_as_form_fields() {
    let standin = strict(false).await;
    for credentials in [
        Credentials::Basic(CLIENT_ID, CLIENT_SECRET),
        Credentials::Form(CLIENT_ID, CLIENT_SECRET),
    ] {
        let code = code(&standin);
        let reply = access(
            &standin,
            credentials,
            &[("code", &code), ("redirect_uri", REDIRECT_URI)],
        )
        .await;
        assert!(reply.is_ok(), "{}", reply.body);
    }
}

#[tokio::test]
async fn the_redirect_uri_must_repeat_the_one_given_at_authorize() {
    let standin = strict(false).await;
    let code = code(&standin);
    for args in [
        vec![("code", code.as_str())],
        vec![
            ("code", code.as_str()),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    ] {
        let reply = access(
            &standin,
            Credentials::Basic(CLIENT_ID, CLIENT_SECRET),
            &args,
        )
        .await;
        assert_eq!(reply.error(), Some("bad_redirect_uri"));
    }
    assert!(exchange(&standin, &code).await.is_ok());
}

#[tokio::test]
async fn an_unknown_grant_type_is_invalid_grant_type() {
    let standin = strict(false).await;
    let reply = access(
        &standin,
        Credentials::Basic(CLIENT_ID, CLIENT_SECRET),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(reply.error(), Some("invalid_grant_type"));
}

#[tokio::test]
async fn oauth_v2_access_does_not_read_json_bodies_like_slack() {
    let standin = strict(false).await;
    let code = code(&standin);
    let response = Client::new()
        .post(format!("{}/oauth.v2.access", standin.api_url()))
        .json(
            &json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                      "code": code, "redirect_uri": REDIRECT_URI}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reply(response).await.error(), Some("invalid_client_id"));
}

#[tokio::test]
async fn cancel_sends_the_installer_back_with_access_denied() {
    let standin = strict(false).await;
    let cancelled = browser()
        .post(standin.authorize_url())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("{}&decision=cancel", authorize_query("s-42")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 302);
    let location = cancelled.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(
        query_value(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_value(&location, "state").as_deref(), Some("s-42"));
    assert_eq!(query_value(&location, "code"), None);
}

#[tokio::test]
async fn an_unknown_client_id_gets_an_error_page_and_no_redirect() {
    let standin = strict(false).await;
    let query = form(&[
        ("client_id", "nobody"),
        ("scope", "chat:write"),
        ("redirect_uri", REDIRECT_URI),
    ]);
    let page = browser()
        .get(format!("{}?{query}", standin.authorize_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.headers().get(LOCATION).is_none());
    assert!(page.text().await.unwrap().contains("invalid_client_id"));

    let posted = browser()
        .post(standin.authorize_url())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("{query}&decision=allow"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 400);
    assert!(posted.headers().get(LOCATION).is_none());

    assert_eq!(
        standin.approve(&query).map_err(|e| e.code()),
        Err("invalid_client_id")
    );
}

#[tokio::test]
async fn a_script_in_the_state_is_escaped_on_the_page_and_encoded_in_the_redirect() {
    let standin = strict(false).await;
    let state = "\"><script>alert(document.cookie)</script>";
    let page = browser()
        .get(format!(
            "{}?{}",
            standin.authorize_url(),
            authorize_query(state)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;script&gt;alert(document.cookie)&lt;/script&gt;"));

    let redirect = standin.approve(&authorize_query(state)).unwrap();
    assert!(
        !redirect.contains('<') && !redirect.contains('"'),
        "{redirect}"
    );
    assert_eq!(query_value(&redirect, "state").as_deref(), Some(state));
}

#[tokio::test]
async fn approve_takes_the_whole_authorize_url_too() {
    let standin = strict(false).await;
    let url = format!("{}?{}", standin.authorize_url(), authorize_query("st"));
    let redirect = standin.approve(&url).unwrap();
    assert_eq!(query_value(&redirect, "state").as_deref(), Some("st"));
    assert!(query_value(&redirect, "code").is_some());
}

#[tokio::test]
async fn with_rotation_a_refresh_token_works_once_and_retires_the_old_access_token() {
    let standin = strict(true).await;
    let installed = exchange(&standin, &code(&standin)).await;
    assert!(installed.is_ok(), "{}", installed.body);
    let first_token = str_field(&installed, "access_token").to_owned();
    let first_refresh = str_field(&installed, "refresh_token").to_owned();
    assert!(first_token.starts_with("xoxe.xoxb-"), "{first_token}");
    assert!(first_refresh.starts_with("xoxe-1-"), "{first_refresh}");
    assert_eq!(installed.body["expires_in"], 43_200);
    assert!(post_with(&standin, &first_token).await.is_ok());

    let refreshed = refresh(&standin, &first_refresh).await;
    assert!(refreshed.is_ok(), "{}", refreshed.body);
    let second_token = str_field(&refreshed, "access_token").to_owned();
    let second_refresh = str_field(&refreshed, "refresh_token").to_owned();
    assert!(second_token.starts_with("xoxe.xoxb-"));
    assert_ne!(second_token, first_token);
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(refreshed.body["expires_in"], 43_200);
    assert_eq!(refreshed.body["token_type"], "bot");
    assert_eq!(refreshed.body["team"]["id"], "T0STANDIN");
    assert_eq!(standin.refresh_count(), 1);

    assert_eq!(
        post_with(&standin, &first_token).await.error(),
        Some("token_expired")
    );
    assert!(post_with(&standin, &second_token).await.is_ok());

    let reused = refresh(&standin, &first_refresh).await;
    assert_eq!(reused.error(), Some("invalid_refresh_token"));
    assert_eq!(standin.refresh_count(), 1);

    assert!(refresh(&standin, &second_refresh).await.is_ok());
    assert_eq!(standin.refresh_count(), 2);
}

#[tokio::test]
async fn an_expired_rotating_token_is_refreshed_back_to_work() {
    let standin = strict(true).await;
    let installed = exchange(&standin, &code(&standin)).await;
    let token = str_field(&installed, "access_token").to_owned();
    standin.expire_token(&token);
    assert_eq!(
        post_with(&standin, &token).await.error(),
        Some("token_expired")
    );
    let refreshed = refresh(&standin, str_field(&installed, "refresh_token")).await;
    assert!(refreshed.is_ok(), "{}", refreshed.body);
    assert!(post_with(&standin, str_field(&refreshed, "access_token"))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_code_expires_after_ten_minutes() {
    let standin = strict(false).await;
    let fresh = code(&standin);
    let stale = code(&standin);
    tokio::time::advance(Duration::from_secs(599)).await;
    assert!(exchange(&standin, &fresh).await.is_ok());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        exchange(&standin, &stale).await.error(),
        Some("invalid_code")
    );
}

#[tokio::test(start_paused = true)]
async fn a_rotating_token_expires_after_twelve_hours() {
    let standin = strict(true).await;
    let installed = exchange(&standin, &code(&standin)).await;
    let token = str_field(&installed, "access_token").to_owned();
    tokio::time::advance(Duration::from_secs(43_199)).await;
    assert!(post_with(&standin, &token).await.is_ok());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        post_with(&standin, &token).await.error(),
        Some("token_expired")
    );
    let refreshed = refresh(&standin, str_field(&installed, "refresh_token")).await;
    assert!(post_with(&standin, str_field(&refreshed, "access_token"))
        .await
        .is_ok());
}

#[tokio::test]
async fn without_rotation_there_is_nothing_to_refresh() {
    let standin = strict(false).await;
    let installed = exchange(&standin, &code(&standin)).await;
    assert!(installed.body.get("refresh_token").is_none());
    let reply = refresh(&standin, "xoxe-1-made-up").await;
    assert_eq!(reply.error(), Some("invalid_refresh_token"));
    assert_eq!(standin.refresh_count(), 0);
}

#[tokio::test]
async fn auth_revoke_makes_the_token_fail_with_token_revoked() {
    let standin = strict(true).await;
    let installed = exchange(&standin, &code(&standin)).await;
    let token = str_field(&installed, "access_token").to_owned();

    let trial = call_with(&standin, &token, "auth.revoke", &json!({"test": true})).await;
    assert_eq!(trial.body, json!({"ok": true, "revoked": false}));
    assert!(post_with(&standin, &token).await.is_ok());

    let revoked = call_with(&standin, &token, "auth.revoke", &json!({})).await;
    assert_eq!(revoked.body, json!({"ok": true, "revoked": true}));
    assert_eq!(
        post_with(&standin, &token).await.error(),
        Some("token_revoked")
    );
    assert_eq!(
        call_with(&standin, &token, "auth.test", &json!({}))
            .await
            .error(),
        Some("token_revoked")
    );
    let refresh_token = str_field(&installed, "refresh_token");
    assert_eq!(
        refresh(&standin, refresh_token).await.error(),
        Some("invalid_refresh_token")
    );
}

#[tokio::test]
async fn configured_tokens_can_be_expired_and_revoked_too() {
    let standin = standin(StandinConfig::default()).await;
    assert!(post_with(&standin, "xoxb-one").await.is_ok());
    standin.expire_token("xoxb-one");
    assert_eq!(
        post_with(&standin, "xoxb-one").await.error(),
        Some("token_expired")
    );
    standin.revoke_token("xoxb-two");
    assert_eq!(
        post_with(&standin, "xoxb-two").await.error(),
        Some("token_revoked")
    );
    assert!(post_with(&standin, "xoxb-three").await.is_ok());
}

#[tokio::test]
async fn the_control_endpoints_expire_and_revoke_tokens() {
    let standin = standin(StandinConfig::default()).await;
    let control = format!("http://{}/_standin", standin.addr());
    for (path, token, error) in [
        ("expire", "xoxb-a", "token_expired"),
        ("revoke", "xoxb-b", "token_revoked"),
    ] {
        let response = Client::new()
            .post(format!("{control}/tokens/{path}"))
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(post_with(&standin, token).await.error(), Some(error));
    }
}

#[tokio::test]
async fn users_lookup_by_email_finds_registered_users_only() {
    let standin = standin(StandinConfig::default()).await;
    standin.add_user("Ada@Example.com", "U0ADA");
    let found = call_with(
        &standin,
        "xoxb-t",
        "users.lookupByEmail",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    assert!(found.is_ok(), "{}", found.body);
    assert_eq!(found.body["user"]["id"], "U0ADA");
    assert_eq!(found.body["user"]["name"], "Ada");
    assert_eq!(found.body["user"]["profile"]["email"], "Ada@Example.com");

    // As a GET with the email in the query string, the way most clients call it.
    let response = Client::new()
        .get(format!(
            "{}/users.lookupByEmail?email=grace%40example.com",
            standin.api_url()
        ))
        .bearer_auth("xoxb-t")
        .send()
        .await
        .unwrap();
    assert_eq!(reply(response).await.error(), Some("users_not_found"));

    let response = Client::new()
        .post(format!("http://{}/_standin/users", standin.addr()))
        .json(&json!({"email": "grace@example.com", "id": "U0GRACE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let found = call_with(
        &standin,
        "xoxb-t",
        "users.lookupByEmail",
        &json!({"email": "grace@example.com"}),
    )
    .await;
    assert_eq!(found.body["user"]["id"], "U0GRACE");
}

#[tokio::test]
async fn the_workspace_is_configurable_and_consistent() {
    let standin = standin(StandinConfig {
        team_id: "T0ACME".to_owned(),
        team_name: "Acme & Co".to_owned(),
        oauth_clients: vec![("acme-id".to_owned(), "acme-secret".to_owned())],
        ..StandinConfig::default()
    })
    .await;
    let query = form(&[
        ("client_id", "acme-id"),
        ("scope", "chat:write"),
        ("redirect_uri", REDIRECT_URI),
    ]);
    let html = browser()
        .get(format!("{}?{query}", standin.authorize_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Install ingestlayer to Acme &amp; Co workspace"),
        "{html}"
    );

    assert_eq!(
        standin.approve(&authorize_query("s")).map_err(|e| e.code()),
        Err("invalid_client_id")
    );
    let code = query_value(&standin.approve(&query).unwrap(), "code").unwrap();
    let installed = access(
        &standin,
        Credentials::Form("acme-id", "acme-secret"),
        &[("code", &code), ("redirect_uri", REDIRECT_URI)],
    )
    .await;
    assert_eq!(
        installed.body["team"],
        json!({"id": "T0ACME", "name": "Acme & Co"})
    );
    let token = str_field(&installed, "access_token");
    let whoami = call_with(&standin, token, "auth.test", &json!({})).await;
    assert_eq!(whoami.body["team_id"], "T0ACME");
    assert_eq!(whoami.body["team"], "Acme & Co");
    let posted = post_with(&standin, token).await;
    assert_eq!(posted.body["message"]["team"], "T0ACME");
}

#[tokio::test]
async fn user_scopes_add_a_user_token_under_authed_user() {
    let standin = strict(false).await;
    let query = form(&[
        ("client_id", CLIENT_ID),
        ("scope", "chat:write"),
        ("user_scope", "identity.basic"),
        ("redirect_uri", REDIRECT_URI),
    ]);
    let code = query_value(&standin.approve(&query).unwrap(), "code").unwrap();
    let installed = exchange(&standin, &code).await;
    let user = &installed.body["authed_user"];
    assert_eq!(user["id"], "U0INSTALLER");
    assert_eq!(user["token_type"], "user");
    assert_eq!(user["scope"], "identity.basic");
    let user_token = user["access_token"].as_str().unwrap();
    assert!(user_token.starts_with("xoxp-"));
    let whoami = call_with(&standin, user_token, "auth.test", &json!({})).await;
    assert_eq!(whoami.body["user_id"], "U0INSTALLER");
}

#[tokio::test]
async fn conversations_list_describes_privacy_membership_and_archival() {
    let standin = standin(StandinConfig::default()).await;
    standin.create_channel("#general", false, true);
    standin.create_channel("#outside", false, false);
    standin.create_channel("#secret", true, true);
    standin.create_channel("#hidden", true, false);
    standin.archive_channel("#old");

    let all = call_with(
        &standin,
        "xoxb-t",
        "conversations.list",
        &json!({"types": "public_channel,private_channel"}),
    )
    .await;
    assert!(all.is_ok(), "{}", all.body);
    let channels = all.body["channels"].as_array().unwrap();
    let names: Vec<&str> = channels.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["general", "old", "outside", "secret"]);
    for channel in channels {
        for field in ["is_private", "is_member", "is_archived"] {
            assert!(channel[field].is_boolean(), "{field} in {channel}");
        }
    }
    let by_name = |name: &str| channels.iter().find(|c| c["name"] == name).unwrap();
    assert_eq!(by_name("secret")["is_private"], true);
    assert_eq!(by_name("outside")["is_member"], false);
    assert_eq!(by_name("old")["is_archived"], true);

    // Slack lists public channels only unless asked for more.
    let public = call_with(&standin, "xoxb-t", "conversations.list", &json!({})).await;
    let names: Vec<&str> = public.body["channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["general", "old", "outside"]);

    let live = call_with(
        &standin,
        "xoxb-t",
        "conversations.list",
        &json!({"exclude_archived": true}),
    )
    .await;
    assert_eq!(live.body["channels"].as_array().unwrap().len(), 2);

    let bad = call_with(
        &standin,
        "xoxb-t",
        "conversations.list",
        &json!({"types": "public_channel,nonsense"}),
    )
    .await;
    assert_eq!(bad.error(), Some("invalid_types"));
}

#[tokio::test]
async fn malformed_oauth_requests_get_answers_not_crashes() {
    let standin = strict(false).await;
    let client = browser();
    for query in [
        "",
        "client_id",
        "client_id=%FF%FE&scope=%00&redirect_uri=%E2%28%A1",
        "client_id=standin-client-id&scope=chat:write&redirect_uri=javascript:alert(1)",
        "client_id=standin-client-id&scope=chat:write&redirect_uri=https://a.example/%0d%0aX:1",
    ] {
        let page = client
            .get(format!("{}?{query}", standin.authorize_url()))
            .send()
            .await
            .unwrap();
        assert!(page.status() == 400 || page.status() == 200, "{query}");
        let posted = client
            .post(standin.authorize_url())
            .body(format!("{query}&decision=allow"))
            .send()
            .await
            .unwrap();
        assert!(
            posted.status() == 400 || posted.status() == 302,
            "{query}: {}",
            posted.status()
        );
        if let Some(location) = posted.headers().get(LOCATION) {
            assert!(location.to_str().unwrap().starts_with("https://a.example/"));
        }
    }

    for header in ["Basic", "Basic !!!", "Basic Zm9v", "Basic /w==", "Bearer x"] {
        let response = Client::new()
            .post(format!("{}/oauth.v2.access", standin.api_url()))
            .header(AUTHORIZATION, HeaderValue::from_str(header).unwrap())
            .body("code=%FF&grant_type=%00")
            .send()
            .await
            .unwrap();
        assert_eq!(
            reply(response).await.error(),
            Some("invalid_client_id"),
            "{header}"
        );
    }
}
