//! Bot tokens per workspace, as delivery needs them: the workspace's own secret (recorded
//! by the OAuth install), cached per instance and refreshed before it expires when Slack
//! rotates tokens, with exactly one refresher at a time across instances.
//!
//! The team `default` is the deployment's single workspace: its token comes from
//! `SLACK_TOKEN_SECRET_ARN` (or `SLACK_BOT_TOKEN` for `make dev`).
//!
//! Failures are the library's [`Error`]: [`Error::NotConnected`] for a workspace that was
//! never connected or revoked the app, [`Error::AppNotConfigured`] when a rotating token is
//! due and the app's credentials are a placeholder, [`Error::NotFound`] for a secret that
//! holds no token; anything else (Secrets Manager, Slack unreachable) may pass with time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::{Mutex, OnceCell};

use crate::aws::retry::{with_retries, MUST_STORE};
use crate::config::TokenConfig;
use crate::error::{Error, Result};
use crate::ids::DEFAULT_TEAM;
use crate::slack::oauth::{AppCredentials, OAuthClient, SlackAppSource};
use crate::slack::workspaces::{ConnectionStatus, Connections, WorkspaceToken};

/// The bot token: fetched from Secrets Manager once and cached for the instance's life.
pub struct TokenSource {
    config: TokenConfig,
    secrets: aws_sdk_secretsmanager::Client,
    cached: OnceCell<SecretString>,
}

impl TokenSource {
    pub fn new(config: TokenConfig, secrets: aws_sdk_secretsmanager::Client) -> Self {
        Self {
            config,
            secrets,
            cached: OnceCell::new(),
        }
    }

    pub async fn token(&self) -> Result<&SecretString> {
        self.cached
            .get_or_try_init(|| async {
                match &self.config {
                    TokenConfig::Env(t) => Ok(t.clone()),
                    TokenConfig::Secret(arn) => {
                        let out = self
                            .secrets
                            .get_secret_value()
                            .secret_id(arn)
                            .send()
                            .await
                            .map_err(|e| Error::aws("the Slack token secret", e))?;
                        parse_secret(out.secret_string().unwrap_or_default())
                    }
                }
            })
            .await
    }
}

/// A token secret that holds no token.
fn no_bot_token() -> Error {
    Error::NotFound("the Slack token secret holds no bot token: connect Slack or put the token in the secret as {\"bot_token\": \"xoxb-...\"}".into())
}

/// A token secret is `{"bot_token": "xoxb-…"}` or the bare token.
fn parse_secret(s: &str) -> Result<SecretString> {
    let token = match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => v
            .get("bot_token")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned(),
        Err(_) => s.trim().to_owned(),
    };
    if token.is_empty() {
        Err(no_bot_token())
    } else {
        Ok(SecretString::from(token))
    }
}

/// How long a read token is reused before its secret is read again (so a re-install or
/// another instance's refresh is picked up).
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// Refresh a rotating token when it has less than this left (Slack's last 12 h).
pub const REFRESH_BEFORE: Duration = Duration::from_secs(3600);
/// How long one refresher holds the lock.
const LOCK_LEASE: Duration = Duration::from_secs(30);
struct Cached {
    token: SecretString,
    read_at: Instant,
    expires_at_ms: Option<i64>,
}

/// Tokens for every workspace.
pub struct WorkspaceTokens {
    default: TokenSource,
    connections: Option<Connections>,
    refresher: Option<(OAuthClient, Arc<SlackAppSource>)>,
    cache: Mutex<HashMap<String, Cached>>,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl WorkspaceTokens {
    pub fn new(
        default: TokenSource,
        connections: Option<Connections>,
        refresher: Option<(OAuthClient, AppCredentials)>,
    ) -> Self {
        Self {
            default,
            connections,
            refresher: refresher.map(|(c, app)| (c, Arc::new(SlackAppSource::Fixed(app)))),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Refreshes rotating tokens with these app credentials.
    pub fn set_refresher(&mut self, client: OAuthClient, app: AppCredentials) {
        self.refresher = Some((client, Arc::new(SlackAppSource::Fixed(app))));
    }

    /// Refreshes rotating tokens with the app credentials `app` yields when a refresh is due
    /// (read from Secrets Manager then, so a placeholder secret is a clear error at that
    /// moment, not a failure at cold start).
    pub fn set_app_source(&mut self, client: OAuthClient, app: Arc<SlackAppSource>) {
        self.refresher = Some((client, app));
    }

    /// The bot token for `team`.
    pub async fn token(&self, team: &str) -> Result<SecretString> {
        if team == DEFAULT_TEAM {
            return self.default.token().await.cloned();
        }
        let Some(connections) = &self.connections else {
            return Err(not_connected(team, false));
        };
        {
            let cache = self.cache.lock().await;
            if let Some(c) = cache.get(team) {
                let fresh = c.read_at.elapsed() < CACHE_TTL && !near_expiry(c.expires_at_ms);
                if fresh {
                    return Ok(c.token.clone());
                }
            }
        }
        let conn = connections
            .get(team)
            .await?
            .ok_or_else(|| not_connected(team, false))?;
        if conn.status == ConnectionStatus::Revoked {
            return Err(not_connected(team, true));
        }
        let mut token = connections
            .read_token(&conn.secret_arn)
            .await?
            .ok_or_else(no_bot_token)?;
        if near_expiry(token.expires_at_ms) {
            token = self
                .refresh(connections, team, &conn.secret_arn, token)
                .await?;
        }
        self.cache.lock().await.insert(
            team.to_owned(),
            Cached {
                token: token.bot_token.clone(),
                read_at: Instant::now(),
                expires_at_ms: token.expires_at_ms,
            },
        );
        Ok(token.bot_token)
    }

    /// Forgets a cached token (Slack said it no longer works), so the next call reads again.
    pub async fn invalidate(&self, team: &str) {
        self.cache.lock().await.remove(team);
    }

    async fn refresh(
        &self,
        connections: &Connections,
        team: &str,
        secret_arn: &str,
        current: WorkspaceToken,
    ) -> Result<WorkspaceToken> {
        let (Some((client, app)), Some(refresh_token)) =
            (&self.refresher, current.refresh_token.clone())
        else {
            return Ok(current);
        };
        let now = now_ms();
        let locked = connections
            .lock_refresh(team, now, now + LOCK_LEASE.as_millis() as i64)
            .await?;
        if !locked {
            // Another instance is refreshing: wait for its new token (the old one stops
            // working once Slack issued the new one), up to the lock's lease.
            tracing::info!(team = %team, "token refresh under way elsewhere; waiting for it");
            let waited = Instant::now();
            while waited.elapsed() < LOCK_LEASE {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(Some(t)) = connections.read_token(secret_arn).await {
                    if !near_expiry(t.expires_at_ms) {
                        return Ok(t);
                    }
                }
            }
            return Ok(current);
        }
        // Someone may have refreshed between our read and the lock: read again.
        let latest = connections
            .read_token(secret_arn)
            .await?
            .ok_or_else(no_bot_token)?;
        if !near_expiry(latest.expires_at_ms) {
            let _ = connections.refreshed(team, latest.expires_at_ms).await;
            return Ok(latest);
        }
        let refresh_token = latest.refresh_token.clone().unwrap_or(refresh_token);
        let app = match app.get().await {
            Ok(app) => app,
            Err(e) => {
                let _ = connections.refreshed(team, latest.expires_at_ms).await;
                return Err(e);
            }
        };
        match client.refresh(&app, &refresh_token).await {
            Ok(access) => {
                let token = WorkspaceToken::from_access(&access, now_ms());
                if let Err(e) =
                    with_retries(&MUST_STORE, || connections.put_token(team, &token)).await
                {
                    // The old refresh token is spent: this instance uses the new token from
                    // its cache, and says loudly what happened.
                    tracing::error!(team = %team, error = %e, action = "reconnect Slack from the destinations page if deliveries stop", "the refreshed bot token could not be stored");
                    return Ok(token);
                }
                let _ = connections.refreshed(team, token.expires_at_ms).await;
                tracing::info!(team = %team, "bot token refreshed");
                Ok(token)
            }
            Err(e) => {
                let _ = connections.refreshed(team, latest.expires_at_ms).await;
                tracing::error!(team = %team, error = %e, "bot token refresh failed");
                Err(e)
            }
        }
    }
}

fn not_connected(team: &str, revoked: bool) -> Error {
    Error::NotConnected {
        team: team.to_owned(),
        revoked,
    }
}

fn near_expiry(expires_at_ms: Option<i64>) -> bool {
    expires_at_ms.is_some_and(|t| t - now_ms() < REFRESH_BEFORE.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn token_secrets_are_json_or_bare() {
        assert_eq!(
            parse_secret(r#"{"bot_token":"xoxb-1"}"#)
                .unwrap()
                .expose_secret(),
            "xoxb-1"
        );
        assert_eq!(parse_secret("xoxb-2\n").unwrap().expose_secret(), "xoxb-2");
        assert!(matches!(
            parse_secret(r#"{"bot_token":""}"#),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn storing_a_refreshed_token_is_retried_well_inside_the_refresh_locks_lease() {
        // The refresh token is spent once Slack answered: every retry of the store must
        // finish while this instance still holds the lock.
        let worst: Duration = MUST_STORE.delays.iter().map(|d| *d * 3 / 2).sum();
        assert!(worst < LOCK_LEASE, "{worst:?}");
    }
}
