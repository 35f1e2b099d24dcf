//! Connecting Slack once with OAuth: the install flow through the stand-in's consent page
//! and oauth.v2.access, the Events API, and token rotation.

use std::sync::{Arc, Mutex};

use ingestlayer::config::TokenConfig;
use ingestlayer::slack::oauth::{AppCredentials, OAuthClient, StateSigner};
use ingestlayer::slack::tokens::TokenSource;
use ingestlayer::slack::tokens::WorkspaceTokens;
use ingestlayer::slack::workspaces::WorkspaceToken;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use slack_standin::StandinConfig;

use crate::harness::{feature_used, Stack, APP_SECRET, PUBLIC_API_URL};

const TEAM: &str = "T0STANDIN";
const SIGNING_SECRET: &str = "test-signing-secret";

/// Add to Slack → consent (Allow) → callback; returns the callback's status and page.
async fn install(s: &Stack) -> (u16, String, String) {
    let (status, headers, _) = s
        .connect_request("GET", "/slack/install", &admin(), "")
        .await;
    assert_eq!(status, 302);
    let location = headers["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&s.standin.authorize_url()),
        "{location}"
    );
    let back = s.standin.approve(&location).unwrap();
    let path = back
        .strip_prefix(PUBLIC_API_URL)
        .expect("redirected to our callback")
        .to_owned();
    let (status, _, page) = s.connect_request("GET", &path, &[], "").await;
    (status, page, path)
}

fn admin() -> Vec<(&'static str, String)> {
    vec![(
        "authorization",
        format!("Bearer {}", crate::harness::ADMIN_TOKEN),
    )]
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn only_a_signed_in_admin_can_start_an_install() {
    let s = Stack::new().await;
    let (status, _, page) = s.connect_request("GET", "/slack/install", &[], "").await;
    assert_eq!(status, 401);
    assert!(page.contains("sign in"), "{page}");
    // Without a state from a signed-in install, the callback stores nothing.
    let (status, _, _) = s
        .connect_request("GET", "/slack/oauth/callback?code=x&state=y", &[], "")
        .await;
    assert_eq!(status, 400);
    assert!(s.connect.connections.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_install_asks_for_the_minimal_scopes_with_a_signed_state() {
    let s = Stack::new().await;
    let (_, headers, _) = s
        .connect_request("GET", "/slack/install", &admin(), "")
        .await;
    let location = headers["location"].to_str().unwrap();
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(query["client_id"], "standin-client-id");
    assert_eq!(
        query["redirect_uri"],
        format!("{PUBLIC_API_URL}/slack/oauth/callback")
    );
    let scopes: Vec<&str> = query["scope"].split(',').collect();
    assert_eq!(scopes, ingestlayer::slack::oauth::BOT_SCOPES);
    assert!(s.connect.states.verify(&query["state"], now()).is_ok());
}

#[tokio::test]
async fn a_full_install_stores_an_encrypted_secret_and_a_connection_and_delivery_uses_it() {
    let s = Stack::new().await;
    let (status, page, _) = install(&s).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Connected to <strong>Stand-in</strong>"),
        "{page}"
    );

    let conn = s
        .connect
        .connections
        .get(TEAM)
        .await
        .unwrap()
        .expect("a connection");
    assert_eq!(conn.status.as_str(), "active");
    assert_eq!(conn.installed_by, "U0INSTALLER");
    assert!(conn.scopes.contains("chat:write"));
    let described = s
        .connect
        .connections
        .secrets
        .describe_secret()
        .secret_id(&conn.secret_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.kms_key_id(),
        Some(s.res.kms_key_id.as_str()),
        "encrypted under the stack's key"
    );
    let token = s
        .connect
        .connections
        .read_token(&conn.secret_arn)
        .await
        .unwrap()
        .unwrap();
    assert!(token.bot_token.expose_secret().starts_with("xoxb-"));

    // A pipeline whose destination names the workspace posts with that workspace's token.
    s.put_pipeline(&json!({"id": "to-sales", "events": ["feature.used"],
        "destinations": [{"type": "slack", "team": TEAM, "channel": "#sales"}]}))
        .await;
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.pump().await;
    let sales = s.standin.messages_in("#sales");
    assert_eq!(sales.len(), 1);
    assert_eq!(sales[0].token, token.bot_token.expose_secret());
}

#[tokio::test]
async fn forged_expired_and_replayed_states_are_refused() {
    let s = Stack::new().await;
    let (status, _, callback) = install(&s).await;
    assert_eq!(status, 200);
    let (status, _, page) = s.connect_request("GET", &callback, &[], "").await;
    assert_eq!(status, 400, "a replayed state");
    assert!(page.contains("already used"), "{page}");

    let (_, headers, _) = s
        .connect_request("GET", "/slack/install", &admin(), "")
        .await;
    let back = s
        .standin
        .approve(headers["location"].to_str().unwrap())
        .unwrap();
    let forged = back
        .strip_prefix(PUBLIC_API_URL)
        .unwrap()
        .replace("state=", "state=0");
    let (status, _, page) = s.connect_request("GET", &forged, &[], "").await;
    assert_eq!(status, 400);
    assert!(
        page.contains("not issued here") || page.contains("malformed"),
        "{page}"
    );

    let key =
        ingestlayer::event_links::load_key(&s.connect.connections.secrets, &s.res.link_secret_arn)
            .await
            .unwrap();
    let old = StateSigner::new(key).issue(now() - 700);
    let path = format!(
        "/slack/oauth/callback?code=anything&state={}",
        url::form_urlencoded::byte_serialize(old.as_bytes()).collect::<String>()
    );
    let (status, _, page) = s.connect_request("GET", &path, &[], "").await;
    assert_eq!(status, 400);
    assert!(page.contains("expired"), "{page}");
    assert_eq!(
        s.connect.connections.list().await.unwrap().len(),
        1,
        "only the real install"
    );
}

#[tokio::test]
async fn a_slack_error_in_the_exchange_shows_a_clear_page_and_stores_nothing() {
    let s = Stack::new().await;
    let state = s.connect.states.issue(now());
    let path = format!(
        "/slack/oauth/callback?code=not-a-code&state={}",
        url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
    );
    let (status, _, page) = s.connect_request("GET", &path, &[], "").await;
    assert_eq!(status, 502);
    assert!(
        page.contains("invalid_code") && page.contains("Nothing was stored"),
        "{page}"
    );
    assert!(s.connect.connections.list().await.unwrap().is_empty());

    let (status, _, page) = s
        .connect_request(
            "GET",
            "/slack/oauth/callback?error=access_denied&state=x",
            &[],
            "",
        )
        .await;
    assert_eq!(status, 400);
    assert!(page.contains("cancelled"));
}

fn signed(body: &str, ts: i64) -> Vec<(&'static str, String)> {
    vec![
        ("x-slack-request-timestamp", ts.to_string()),
        (
            "x-slack-signature",
            slack_standin::sign_event_request(SIGNING_SECRET, ts, body),
        ),
        ("content-type", "application/json".into()),
    ]
}

#[tokio::test]
async fn events_api_requests_need_a_fresh_valid_signature() {
    let s = Stack::new().await;
    let body = json!({"type": "url_verification", "challenge": "c-123"}).to_string();
    let (status, _, answer) = s
        .connect_request("POST", "/slack/events", &signed(&body, now()), &body)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()["challenge"],
        "c-123"
    );

    let (status, _, _) = s
        .connect_request("POST", "/slack/events", &signed(&body, now() - 301), &body)
        .await;
    assert_eq!(status, 401, "older than five minutes");
    let (status, _, _) = s
        .connect_request("POST", "/slack/events", &signed(&body, now() + 301), &body)
        .await;
    assert_eq!(status, 401, "from the future");
    let mut bad = signed(&body, now());
    bad[1].1 = slack_standin::sign_event_request("wrong-secret", now(), &body);
    assert_eq!(
        s.connect_request("POST", "/slack/events", &bad, &body)
            .await
            .0,
        401
    );
    let tampered = body.replace("c-123", "c-999");
    assert_eq!(
        s.connect_request("POST", "/slack/events", &signed(&body, now()), &tampered)
            .await
            .0,
        401
    );
    assert_eq!(
        s.connect_request("POST", "/slack/events", &[], &body)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn tokens_revoked_pauses_that_workspace_only() {
    let s = Stack::new().await;
    assert_eq!(install(&s).await.0, 200);
    s.put_pipeline(&json!({"id": "to-sales", "events": ["feature.used"],
        "destinations": [{"type": "slack", "team": TEAM, "channel": "#sales"}]}))
        .await;
    let body = json!({"type": "event_callback", "team_id": TEAM,
        "event": {"type": "tokens_revoked", "tokens": {"bot": ["U0BOT"]}}})
    .to_string();
    let (status, _, _) = s
        .connect_request("POST", "/slack/events", &signed(&body, now()), &body)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        s.connect
            .connections
            .get(TEAM)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "revoked"
    );
    let paused = s.channels().paused().await.unwrap();
    assert_eq!(
        paused.iter().map(|p| p.pk.as_str()).collect::<Vec<_>>(),
        [format!("team#{TEAM}")]
    );

    s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.pump().await;
    assert_eq!(s.alerts().len(), 1, "the other workspace flows");
    assert!(s.standin.messages_in("#sales").is_empty());
    let parked = ingestlayer_cli::dlq::list(&s.sqs, &s.res.slack_dlq_url)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1, "the backlog is kept");
    assert!(
        parked[0].reason.contains("tokens_revoked"),
        "{}",
        parked[0].reason
    );
}

#[tokio::test]
async fn two_concurrent_refreshes_perform_one_and_both_get_the_new_token() {
    let s = Stack::with_standin(StandinConfig {
        rate_per_channel_per_sec: f64::INFINITY,
        token_rotation: true,
        ..StandinConfig::default()
    })
    .await;
    assert_eq!(install(&s).await.0, 200);
    let conn = s.connect.connections.get(TEAM).await.unwrap().unwrap();
    let issued = s
        .connect
        .connections
        .read_token(&conn.secret_arn)
        .await
        .unwrap()
        .unwrap();
    assert!(
        issued.refresh_token.is_some() && issued.expires_at_ms.is_some(),
        "a rotating token"
    );
    // Ten minutes before expiry: due for a refresh.
    let soon = WorkspaceToken {
        expires_at_ms: Some(now() * 1000 + 600_000),
        ..issued.clone()
    };
    s.connect.connections.put_token(TEAM, &soon).await.unwrap();

    let instance = || {
        let mut t = WorkspaceTokens::new(
            TokenSource::new(
                TokenConfig::Env(SecretString::from("xoxb-default".to_owned())),
                s.connect.connections.secrets.clone(),
            ),
            Some(s.connect.connections.clone()),
            None,
        );
        t.set_refresher(
            OAuthClient::new(&s.standin.api_url()).unwrap(),
            AppCredentials::parse(APP_SECRET).unwrap(),
        );
        t
    };
    let (a, b) = (instance(), instance());
    let (ta, tb) = tokio::join!(a.token(TEAM), b.token(TEAM));
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(
        s.standin.refresh_count(),
        1,
        "one refresh, though two instances needed one"
    );
    assert_eq!(
        ta.expose_secret(),
        tb.expose_secret(),
        "both use the new token"
    );
    assert_ne!(ta.expose_secret(), issued.bot_token.expose_secret());
    let stored = s
        .connect
        .connections
        .read_token(&conn.secret_arn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.bot_token.expose_secret(), ta.expose_secret());
}

/// Collects everything logged while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_and_secrets_never_appear_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    // The functions' own logging setup at the most verbose LogLevel a stack can be given.
    let subscriber = tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        ingestlayer::config::log_layer(Some("trace"), move || writer.clone()),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = Stack::with_standin(StandinConfig {
        rate_per_channel_per_sec: f64::INFINITY,
        token_rotation: true,
        ..StandinConfig::default()
    })
    .await;
    assert_eq!(install(&s).await.0, 200);
    s.put_pipeline(&json!({"id": "to-sales", "events": ["feature.used"],
        "destinations": [{"type": "slack", "team": TEAM, "channel": "#sales"}]}))
        .await;
    s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.pump().await;
    assert_eq!(s.standin.messages_in("#sales").len(), 1);

    // A webhook source whose secret is malformed: serde's message would quote the value.
    s.connect
        .connections
        .secrets
        .create_secret()
        .name(format!("{}broken", s.res.webhook_secret_prefix))
        .secret_string(r#"{"provider":"stripe","secrets":"whsec_MALFORMED_BUT_SECRET"}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = s
        .webhook(
            "broken",
            &[("stripe-signature", "t=1,v1=00".to_owned())],
            b"{}",
        )
        .await;
    assert_eq!(status, 503, "{body}");

    let conn = s.connect.connections.get(TEAM).await.unwrap().unwrap();
    let token = s
        .connect
        .connections
        .read_token(&conn.secret_arn)
        .await
        .unwrap()
        .unwrap();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("webhook source broken"),
        "the misconfigured source is logged: {logs}"
    );
    assert!(
        logs.contains("Slack workspace connected"),
        "the capture works"
    );
    for secret in [
        token.bot_token.expose_secret().to_owned(),
        token
            .refresh_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned(),
        crate::harness::BOT_TOKEN.to_owned(),
        "standin-client-secret".to_owned(),
        crate::harness::API_KEY.to_owned(),
        "whsec_MALFORMED_BUT_SECRET".to_owned(),
    ] {
        assert!(!logs.contains(&secret), "a secret was logged");
    }
}
