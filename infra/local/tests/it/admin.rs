//! The admin credential and what it signs: one key per purpose (a link is never a session,
//! a state never a CSRF token…), sessions that can be ended and that end when the admin
//! token is rotated, and a Slack app secret that is still the placeholder.

use std::time::Duration;

use ingestlayer::config::{ConnectConfig, DeliveryConfig, TokenConfig};
use ingestlayer::connect::admin_session::{AdminAuth, AdminTokenSource, ADMIN_TOKEN_REFRESH};
use ingestlayer::connect::ConnectDeps;
use ingestlayer::delivery::DeliveryDeps;
use ingestlayer::error::Error;
use ingestlayer::event_links::LinkSigner;
use ingestlayer::slack::oauth::SlackAppSource;
use secrecy::SecretString;

use crate::harness::{Stack, ADMIN_TOKEN, PUBLIC_API_URL};

const PLACEHOLDER_APP_SECRET: &str = r#"{"client_id":"","client_secret":"","signing_secret":""}"#;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn form() -> Vec<(&'static str, String)> {
    vec![(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )]
}

fn cookie(value: &str) -> Vec<(&'static str, String)> {
    vec![("cookie", format!("il_session={value}"))]
}

/// The value of `name="csrf"` in a page.
fn csrf(page: &str) -> String {
    let at =
        page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

async fn root_key(s: &Stack) -> SecretString {
    ingestlayer::event_links::load_key(&s.connect.connections.secrets, &s.res.link_secret_arn)
        .await
        .unwrap()
}

/// Signs in through the form; the session cookie's value.
async fn sign_in(s: &Stack) -> String {
    let (status, headers, _) = s
        .connect_request(
            "POST",
            "/destinations/sign-in",
            &form(),
            &format!("token={ADMIN_TOKEN}"),
        )
        .await;
    assert_eq!(status, 303);
    let set = headers["set-cookie"].to_str().unwrap();
    set.split(';')
        .next()
        .unwrap()
        .strip_prefix("il_session=")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_signed_event_link_never_opens_the_destinations_page() {
    let s = Stack::new().await;
    // The review's attack: an event with the id `session` gets a signed link in a
    // truncated message; its exp and sig used to be a valid session cookie.
    let link = LinkSigner::new(
        root_key(&s).await,
        PUBLIC_API_URL,
        Duration::from_secs(86_400),
    )
    .link("session", now());
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(link.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    let (exp, sig) = (&query["exp"], &query["sig"]);
    for forged in [
        format!("{exp}.{sig}"),
        format!("session.{exp}.{sig}"),
        format!("{}.{exp}.{sig}", "0".repeat(32)),
    ] {
        let (status, _, page) = s
            .connect_request("GET", "/destinations", &cookie(&forged), "")
            .await;
        assert_eq!(status, 401, "{forged}: {page}");
    }
    // Nor does the link's signature pass as a form's CSRF token.
    let (status, _, _) = s
        .connect_request(
            "POST",
            "/destinations/pipelines",
            &[
                form()[0].clone(),
                ("authorization", format!("Bearer {ADMIN_TOKEN}")),
            ],
            &format!(
                "csrf={sig}&pipeline=feature-usage-to-alerts&destination=0&target=default%7C%23x"
            ),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_oauth_state_and_a_session_are_not_interchangeable() {
    let s = Stack::new().await;
    let state = s.connect.states.issue(now());
    let (status, _, _) = s
        .connect_request("GET", "/destinations", &cookie(&state), "")
        .await;
    assert_eq!(status, 401, "a state is not a session");

    let session = sign_in(&s).await;
    let path = format!(
        "/slack/oauth/callback?code=anything&state={}",
        url::form_urlencoded::byte_serialize(session.as_bytes()).collect::<String>()
    );
    let (status, _, page) = s.connect_request("GET", &path, &[], "").await;
    assert_eq!(status, 400, "a session is not a state: {page}");
    assert!(s.connect.connections.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn signing_out_ends_the_session_for_every_copy_of_its_cookie() {
    let s = Stack::new().await;
    let session = sign_in(&s).await;
    let (status, _, page) = s
        .connect_request("GET", "/destinations", &cookie(&session), "")
        .await;
    assert_eq!(status, 200);
    let token = csrf(&page);
    let mut headers = cookie(&session);
    headers.extend(form());
    let (status, h, _) = s
        .connect_request(
            "POST",
            "/destinations/sign-out",
            &headers,
            &format!("csrf={token}"),
        )
        .await;
    assert_eq!(status, 303);
    assert!(h["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    // A copy of the cookie kept elsewhere (another tab, a stolen copy) no longer works.
    let (status, _, _) = s
        .connect_request("GET", "/destinations", &cookie(&session), "")
        .await;
    assert_eq!(status, 401);
    let (status, _, _) = s
        .connect_request("GET", "/slack/install", &cookie(&session), "")
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn two_sign_ins_are_two_sessions_with_their_own_csrf_tokens() {
    let s = Stack::new().await;
    let (a, b) = (sign_in(&s).await, sign_in(&s).await);
    assert_ne!(a, b);
    let (_, _, page_a) = s
        .connect_request("GET", "/destinations", &cookie(&a), "")
        .await;
    let mut headers = cookie(&b);
    headers.extend(form());
    // b's form with a's token is refused.
    let (status, _, _) = s
        .connect_request(
            "POST",
            "/destinations/sign-out",
            &headers,
            &format!("csrf={}", csrf(&page_a)),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn rotating_the_admin_token_ends_every_session_within_a_minute() {
    let s = Stack::new().await;
    let secrets = s.connect.connections.secrets.clone();
    let arn = secrets
        .create_secret()
        .name(format!("{}-admin-token", s.res.connections_table))
        .secret_string("the-first-admin-token-0123")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let auth = AdminAuth::new(
        &root_key(&s).await,
        AdminTokenSource::secret(secrets.clone(), arn.clone()),
        s.dynamo.clone(),
        s.res.connections_table.clone(),
    );
    let t0 = now();
    let session = auth
        .sign_in("the-first-admin-token-0123", t0)
        .await
        .unwrap()
        .expect("the right token signs in");
    assert!(auth
        .authenticate(None, Some(&session), t0 + 1)
        .await
        .unwrap()
        .is_some());

    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("the-rotated-admin-token-456")
        .send()
        .await
        .unwrap();
    let refresh = ADMIN_TOKEN_REFRESH.as_secs() as i64;
    // Within the refresh interval the old token is still the one in force…
    assert!(auth
        .authenticate(None, Some(&session), t0 + refresh - 1)
        .await
        .unwrap()
        .is_some());
    // …and once it passes, the session made with it, and the old token itself, stop working.
    let later = t0 + refresh + 1;
    assert_eq!(
        auth.authenticate(None, Some(&session), later)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        auth.authenticate(Some("the-first-admin-token-0123"), None, later)
            .await
            .unwrap(),
        None
    );
    assert!(auth
        .authenticate(Some("the-rotated-admin-token-456"), None, later)
        .await
        .unwrap()
        .is_some());
    assert!(auth
        .sign_in("the-rotated-admin-token-456", later)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn an_expired_session_record_is_refused_even_before_dynamodb_deletes_it() {
    let s = Stack::new().await;
    let auth = AdminAuth::new(
        &root_key(&s).await,
        AdminTokenSource::Fixed(Some(SecretString::from(ADMIN_TOKEN.to_owned()))),
        s.dynamo.clone(),
        s.res.connections_table.clone(),
    );
    let t0 = now();
    let session = auth.sign_in(ADMIN_TOKEN, t0).await.unwrap().unwrap();
    let id = session.split('.').next().unwrap();
    s.dynamo
        .update_item()
        .table_name(&s.res.connections_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("session#{id}")),
        )
        .update_expression("SET expires_at = :e")
        .expression_attribute_values(
            ":e",
            aws_sdk_dynamodb::types::AttributeValue::N((t0 - 1).to_string()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        auth.authenticate(None, Some(&session), t0 + 1)
            .await
            .unwrap(),
        None
    );
}

async fn with_placeholder_app_secret(s: &Stack) {
    s.connect
        .connections
        .secrets
        .put_secret_value()
        .secret_id(&s.res.slack_app_secret_arn)
        .secret_string(PLACEHOLDER_APP_SECRET)
        .send()
        .await
        .unwrap();
}

fn connect_config(s: &Stack) -> ConnectConfig {
    ConnectConfig {
        slack_app_secret_arn: s.res.slack_app_secret_arn.clone(),
        connections_table: s.res.connections_table.clone(),
        channels_table: s.res.channels_table.clone(),
        pipelines_table: s.res.pipelines_table.clone(),
        public_api_url: Some(PUBLIC_API_URL.to_owned()),
        slack_api_url: s.standin.api_url(),
        slack_authorize_url: format!("http://{}", s.standin.addr()),
        link_secret_arn: s.res.link_secret_arn.clone(),
        token_secret_prefix: s.res.token_secret_prefix.clone(),
        kms_key_id: s.res.kms_key_id.clone(),
        slack_token_secret_arn: Some(s.res.slack_token_secret_arn.clone()),
        default_token: None,
        admin_token_secret_arn: None,
        admin_token: Some(SecretString::from(ADMIN_TOKEN.to_owned())),
        slack_queue_url: s.res.slack_queue_url.clone(),
        slack_dlq_url: s.res.slack_dlq_url.clone(),
        journey_table: None,
        state_table: Some(s.res.state_table.clone()),
        events_table: None,
        entities_table: None,
        destination_secret_prefix: Some(s.res.destination_secret_prefix.clone()),
    }
}

#[tokio::test]
async fn a_placeholder_app_secret_is_a_clear_state_not_a_cold_start_failure() {
    let s = Stack::new().await;
    with_placeholder_app_secret(&s).await;
    let connect = ConnectDeps::load(&s.sdk, &connect_config(&s))
        .await
        .expect("the connect function starts with the placeholder secret");
    let delivery = DeliveryDeps::load(
        &s.sdk,
        &DeliveryConfig {
            slack_queue_url: s.res.slack_queue_url.clone(),
            slack_drain_queue_url: Some(s.res.slack_drain_queue_url.clone()),
            slack_dlq_url: s.res.slack_dlq_url.clone(),
            channels_table: s.res.channels_table.clone(),
            deliveries_table: s.res.deliveries_table.clone(),
            max_age: Duration::from_secs(24 * 3600),
            connections_table: Some(s.res.connections_table.clone()),
            slack_app_secret_arn: Some(s.res.slack_app_secret_arn.clone()),
            token_secret_prefix: s.res.token_secret_prefix.clone(),
            kms_key_id: Some(s.res.kms_key_id.clone()),
            slack_api_url: s.standin.api_url(),
            token: TokenConfig::Secret(s.res.slack_token_secret_arn.clone()),
            slack_timeout: Duration::from_secs(2),
            ops_channel: None,
            journey: None,
            state_table: Some(s.res.state_table.clone()),
            buffer_table: Some(s.res.buffer_table.clone()),
        },
    )
    .await;
    assert!(
        delivery.is_ok(),
        "the delivery function starts with the placeholder secret"
    );

    let req = http::Request::builder()
        .method("GET")
        .uri(format!("{PUBLIC_API_URL}/slack/install"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = ingestlayer_local::runner::call_connect(req, &connect).await;
    assert_eq!(resp.status(), 503);
    let page = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        page.contains("not configured yet") && page.contains("signing_secret"),
        "{page}"
    );

    // Filling the secret in takes effect without a deploy, once the recheck interval passes.
    let source = SlackAppSource::secret(
        s.connect.connections.secrets.clone(),
        s.res.slack_app_secret_arn.clone(),
    );
    let t0 = std::time::Instant::now();
    assert!(matches!(
        source.get_at(t0).await,
        Err(Error::AppNotConfigured { .. })
    ));
    s.connect
        .connections
        .secrets
        .put_secret_value()
        .secret_id(&s.res.slack_app_secret_arn)
        .secret_string(crate::harness::APP_SECRET)
        .send()
        .await
        .unwrap();
    assert!(source.get_at(t0 + Duration::from_secs(30)).await.is_err());
    let app = source
        .get_at(t0 + ingestlayer::slack::oauth::APP_RECHECK + Duration::from_secs(1))
        .await
        .expect("the filled-in secret is read again");
    assert_eq!(app.client_id, "standin-client-id");
}
