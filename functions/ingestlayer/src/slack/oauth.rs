//! Connecting Slack with OAuth v2: the install redirect, a signed, expiring, single-use
//! `state` (CSRF), and the code exchange / token refresh at `oauth.v2.access`.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::purpose::{Purpose, TokenError, TokenKey};

/// The bot scopes ingestlayer asks for, and why:
/// posting (`chat:write`), posting to public channels it has not joined
/// (`chat:write.public`), listing channels to pick from (`channels:read`, `groups:read`),
/// reading history for the no-duplicate check (`channels:history`, `groups:history`),
/// joining a public channel before posting so that check can read it (`channels:join`), and
/// looking up owners by email for mentions (`users:read`, `users:read.email`).
pub const BOT_SCOPES: &[&str] = &[
    "chat:write",
    "chat:write.public",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
    "channels:join",
    "users:read",
    "users:read.email",
];

/// How long an install link's state is valid.
pub const STATE_TTL: Duration = Duration::from_secs(600);

/// The Slack app's credentials, from Secrets Manager:
/// `{"client_id": "…", "client_secret": "…", "signing_secret": "…"}`.
#[derive(Clone)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    pub signing_secret: SecretString,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl AppCredentials {
    /// Parses the secret's JSON, naming what is missing.
    pub fn parse(secret: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Raw {
            client_id: Option<String>,
            client_secret: Option<String>,
            signing_secret: Option<String>,
        }
        let raw: Raw = serde_json::from_str(secret)
            .map_err(|_| Error::reason("the Slack app secret is not JSON"))?;
        let need = |v: Option<String>, name: &str| {
            v.filter(|s| !s.is_empty())
                .ok_or_else(|| Error::reason(format!("the Slack app secret has no {name}")))
        };
        Ok(Self {
            client_id: need(raw.client_id, "client_id")?,
            client_secret: SecretString::from(need(raw.client_secret, "client_secret")?),
            signing_secret: SecretString::from(need(raw.signing_secret, "signing_secret")?),
        })
    }
}

/// How long an unusable (placeholder) app secret is trusted before it is read again, so
/// filling it in takes effect within a minute without a deploy.
pub const APP_RECHECK: Duration = Duration::from_secs(60);

/// What a read of the app secret found: the credentials, or why the secret is not usable
/// yet (shared, as it is handed out again until [`APP_RECHECK`] passes).
type AppRead = std::result::Result<AppCredentials, Arc<Error>>;

/// The Slack app's credentials, read from Secrets Manager when first needed. A usable
/// secret is kept for the instance's life; a placeholder is read again after
/// [`APP_RECHECK`]. A failed read is not kept.
#[derive(Debug)]
pub enum SlackAppSource {
    Fixed(AppCredentials),
    Secret {
        client: aws_sdk_secretsmanager::Client,
        arn: String,
        cached: tokio::sync::Mutex<Option<(std::time::Instant, AppRead)>>,
    },
}

impl SlackAppSource {
    pub fn secret(client: aws_sdk_secretsmanager::Client, arn: String) -> Self {
        Self::Secret {
            client,
            arn,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The credentials, or why there are none: [`Error::AppNotConfigured`] while the secret
    /// is a placeholder (the operator fills it), the read's own error when Secrets Manager
    /// could not be read.
    pub async fn get(&self) -> Result<AppCredentials> {
        self.get_at(std::time::Instant::now()).await
    }

    /// [`SlackAppSource::get`] at `now` (tests pass their own clock).
    pub async fn get_at(&self, now: std::time::Instant) -> Result<AppCredentials> {
        let (client, arn, cached) = match self {
            SlackAppSource::Fixed(app) => return Ok(app.clone()),
            SlackAppSource::Secret {
                client,
                arn,
                cached,
            } => (client, arn, cached),
        };
        let not_configured = |source| Error::AppNotConfigured { source };
        let mut guard = cached.lock().await;
        if let Some((at, result)) = guard.as_ref() {
            if result.is_ok() || now.saturating_duration_since(*at) < APP_RECHECK {
                return result.clone().map_err(not_configured);
            }
        }
        let text = crate::aws::secrets::read_secret(client, arn, "the Slack app secret").await?;
        let result: AppRead = AppCredentials::parse(&text).map_err(Arc::new);
        if let Err(e) = &result {
            tracing::warn!(reason = %e, "the Slack app secret is not usable yet");
        }
        *guard = Some((now, result.clone()));
        result.map_err(not_configured)
    }
}

/// Why a state was refused (the callback answers 400 with it). A refusal, not one of the
/// library's failures: [`StateSigner::verify`] returns it, and
/// [`crate::slack::workspaces::Connections::consume_state`], which can also fail, returns
/// it inside its `Ok`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the install link is malformed")]
    Malformed,
    #[error("the install link was not issued here")]
    Forged,
    #[error("the install link has expired; start again")]
    Expired,
    #[error("the install link was already used; start again")]
    Replayed,
}

/// Signs and checks OAuth `state` values: `{nonce}.{expires}.{hex hmac}`, [`TokenKey`]
/// tokens of [`Purpose::OAuthState`] that live at most [`STATE_TTL`].
#[derive(Clone)]
pub struct StateSigner {
    key: TokenKey,
}

impl StateSigner {
    /// A signer whose key is derived from the stack's signing secret `root`
    /// ([`Purpose::OAuthState`]), so a state never works as a link, session or CSRF token.
    pub fn new(root: SecretString) -> Self {
        Self {
            key: TokenKey::new(&root, Purpose::OAuthState, Some(STATE_TTL)),
        }
    }

    /// A fresh state valid for [`STATE_TTL`] from `now_unix`.
    pub fn issue(&self, now_unix: i64) -> String {
        let nonce = ulid::Ulid::new().to_string();
        self.key
            .issue(&nonce, now_unix + STATE_TTL.as_secs() as i64)
    }

    /// Checks signature and expiry; returns the nonce, which the caller consumes once. A
    /// state that claims to live longer than [`STATE_TTL`] was not issued here (forged).
    pub fn verify(&self, state: &str, now_unix: i64) -> Result<String, StateError> {
        match self.key.check(state, now_unix) {
            Ok(nonce) => Ok(nonce.to_owned()),
            Err(TokenError::Malformed) => Err(StateError::Malformed),
            Err(TokenError::BadSignature) => Err(StateError::Forged),
            Err(TokenError::Expired) => Err(StateError::Expired),
        }
    }
}

/// The authorize URL a user is sent to.
pub fn authorize_url(
    authorize_base: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
) -> String {
    let mut url = format!(
        "{}/oauth/v2/authorize?",
        authorize_base.trim_end_matches('/')
    );
    url.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("scope", &BOT_SCOPES.join(","))
            .append_pair("user_scope", "")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .finish(),
    );
    url
}

/// What `oauth.v2.access` grants.
#[derive(Clone)]
pub struct Access {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Seconds until the access token expires, with token rotation.
    pub expires_in: Option<u64>,
    pub team_id: String,
    pub team_name: String,
    pub bot_user_id: String,
    pub scope: String,
    pub installer: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("team_id", &self.team_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Calls `oauth.v2.access` at the Slack API base.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    http: reqwest::Client,
    base: String,
}

impl OAuthClient {
    pub fn new(api_base: &str) -> std::result::Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base: api_base.trim_end_matches('/').to_owned(),
        })
    }

    /// Exchanges an authorization code (client credentials sent with HTTP Basic). Slack's
    /// refusal (`invalid_code`, `bad_client_secret`, …) is [`Error::SlackRefused`]; no
    /// answer is [`Error::Slack`].
    pub async fn exchange(
        &self,
        app: &AppCredentials,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Access> {
        self.call(
            "exchanging the OAuth code",
            app,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ],
        )
        .await
    }

    /// Trades a refresh token (each works once) for a new access and refresh token; fails as
    /// [`OAuthClient::exchange`] does.
    pub async fn refresh(
        &self,
        app: &AppCredentials,
        refresh_token: &SecretString,
    ) -> Result<Access> {
        self.call(
            "refreshing the bot token",
            app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ],
        )
        .await
    }

    async fn call(
        &self,
        what: &str,
        app: &AppCredentials,
        form: &[(&str, &str)],
    ) -> Result<Access> {
        // Finished before any await: the serializer is not Send.
        let body = {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                ser.append_pair(k, v);
            }
            ser.finish()
        };
        let response = self
            .http
            .post(format!("{}/oauth.v2.access", self.base))
            .basic_auth(&app.client_id, Some(app.client_secret.expose_secret()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| Error::slack(what, e))?;
        let status = response.status().as_u16();
        let v: serde_json::Value = response
            .json()
            .await
            .map_err(|e| Error::slack(format!("{what}: HTTP {status}"), e))?;
        let refused = |code: &str| Error::SlackRefused {
            what: format!("{what}: HTTP {status}"),
            code: code.to_owned(),
            retryable: status == 429 || status >= 500,
        };
        if v["ok"] != serde_json::Value::Bool(true) {
            return Err(refused(v["error"].as_str().unwrap_or("unknown_error")));
        }
        let s = |p: &serde_json::Value| p.as_str().unwrap_or_default().to_owned();
        let token = s(&v["access_token"]);
        if token.is_empty() {
            return Err(refused("no access_token in the answer"));
        }
        Ok(Access {
            access_token: SecretString::from(token),
            refresh_token: v["refresh_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(|t| SecretString::from(t.to_owned())),
            expires_in: v["expires_in"].as_u64(),
            team_id: s(&v["team"]["id"]),
            team_name: s(&v["team"]["name"]),
            bot_user_id: s(&v["bot_user_id"]),
            scope: s(&v["scope"]),
            installer: s(&v["authed_user"]["id"]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> StateSigner {
        StateSigner::new(SecretString::from(
            "state-signing-key-0123456789".to_owned(),
        ))
    }

    #[test]
    fn a_fresh_state_verifies_and_yields_its_nonce() {
        let s = signer();
        let state = s.issue(1000);
        let nonce = s.verify(&state, 1000 + 599).unwrap();
        assert!(state.starts_with(&nonce));
    }

    #[test]
    fn forged_expired_and_malformed_states_are_refused() {
        let s = signer();
        let state = s.issue(1000);
        assert_eq!(s.verify(&state, 1000 + 601), Err(StateError::Expired));
        let other = StateSigner::new(SecretString::from("someone-else".to_owned()));
        assert_eq!(other.verify(&state, 1000), Err(StateError::Forged));
        let (nonce, rest) = state.split_once('.').unwrap();
        assert_eq!(
            s.verify(&format!("{nonce}X.{rest}"), 1000),
            Err(StateError::Forged)
        );
        let bumped = state.replacen(&(1000 + 600).to_string(), &(1000 + 6000).to_string(), 1);
        assert_eq!(s.verify(&bumped, 1000), Err(StateError::Forged));
        assert_eq!(s.verify("", 1000), Err(StateError::Malformed));
        assert_eq!(s.verify("a.b.c.d", 1000), Err(StateError::Malformed));
    }

    #[test]
    fn the_authorize_url_asks_for_the_minimal_scopes() {
        let u = authorize_url(
            "https://slack.com",
            "123.456",
            "https://x/slack/oauth/callback",
            "st",
        );
        assert!(u.starts_with("https://slack.com/oauth/v2/authorize?client_id=123.456&scope=chat%3Awrite%2Cchat%3Awrite.public%2C"));
        assert!(u.contains("redirect_uri=https%3A%2F%2Fx%2Fslack%2Foauth%2Fcallback&state=st"));
    }

    /// An `oauth.v2.access` that always answers `status` with `body`; its base URL.
    async fn oauth_answering(status: u16, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/oauth.v2.access",
            axum::routing::post(move || async move {
                (http::StatusCode::from_u16(status).unwrap(), body)
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    fn app() -> AppCredentials {
        AppCredentials::parse(r#"{"client_id":"a","client_secret":"b","signing_secret":"c"}"#)
            .unwrap()
    }

    #[tokio::test]
    async fn slack_refusing_the_code_is_slacks_no_and_not_retryable() {
        let base = oauth_answering(200, r#"{"ok":false,"error":"invalid_code"}"#).await;
        let e = OAuthClient::new(&base)
            .unwrap()
            .exchange(&app(), "code", "https://x/cb")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::SlackRefused { code, .. } if code == "invalid_code"),
            "{e}"
        );
        assert!(!e.is_retryable());
    }

    #[tokio::test]
    async fn a_failing_or_unreachable_oauth_endpoint_is_retryable() {
        let base = oauth_answering(503, r#"{"ok":false,"error":"service_unavailable"}"#).await;
        let e = OAuthClient::new(&base)
            .unwrap()
            .refresh(&app(), &SecretString::from("xoxe-1".to_owned()))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::SlackRefused { .. }), "{e}");
        assert!(e.is_retryable());

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let e = OAuthClient::new(&closed)
            .unwrap()
            .exchange(&app(), "code", "https://x/cb")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Slack { .. }), "{e}");
        assert!(e.is_retryable());
        assert!(std::error::Error::source(&e).is_some(), "keeps its cause");
    }

    #[test]
    fn app_credentials_name_what_is_missing() {
        assert!(AppCredentials::parse(
            r#"{"client_id":"a","client_secret":"b","signing_secret":"c"}"#
        )
        .is_ok());
        assert_eq!(
            AppCredentials::parse(r#"{"client_id":"a","client_secret":"b"}"#)
                .unwrap_err()
                .to_string(),
            "the Slack app secret has no signing_secret"
        );
    }
}
