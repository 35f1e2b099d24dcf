//! Bot tokens per workspace, as delivery needs them: the workspace's own secret (recorded
//! by the OAuth install), cached per instance and refreshed before it expires when Slack
//! rotates tokens, with exactly one refresher at a time across instances.
//!
//! The team `default` is the deployment's single workspace: its token comes from
//! `SLACK_TOKEN_SECRET_ARN` (or `SLACK_BOT_TOKEN` for `make dev`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::Mutex;

use crate::connections::{Connections, WorkspaceToken};
use crate::handlers::delivery::{TokenError, TokenSource};
use crate::oauth::{AppCredentials, OAuthClient};
use crate::pipeline::DEFAULT_TEAM;

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
    refresher: Option<(OAuthClient, AppCredentials)>,
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
            refresher,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Refreshes rotating tokens with these app credentials.
    pub fn set_refresher(&mut self, client: OAuthClient, app: AppCredentials) {
        self.refresher = Some((client, app));
    }

    /// The bot token for `team`.
    pub async fn token(&self, team: &str) -> Result<SecretString, TokenError> {
        if team == DEFAULT_TEAM {
            return self.default.token().await.cloned();
        }
        let Some(connections) = &self.connections else {
            return Err(TokenError::NotConnected(team.to_owned()));
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
            .await
            .map_err(|e| TokenError::Fetch(e.to_string()))?
            .ok_or_else(|| TokenError::NotConnected(team.to_owned()))?;
        if conn.status == "revoked" {
            return Err(TokenError::Revoked(team.to_owned()));
        }
        let mut token = connections
            .read_token(&conn.secret_arn)
            .await
            .map_err(|e| TokenError::Fetch(e.to_string()))?
            .ok_or(TokenError::Empty)?;
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
    ) -> Result<WorkspaceToken, TokenError> {
        let (Some((client, app)), Some(refresh_token)) =
            (&self.refresher, current.refresh_token.clone())
        else {
            return Ok(current);
        };
        let now = now_ms();
        let locked = connections
            .lock_refresh(team, now, now + LOCK_LEASE.as_millis() as i64)
            .await
            .map_err(|e| TokenError::Fetch(e.to_string()))?;
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
            .await
            .map_err(|e| TokenError::Fetch(e.to_string()))?
            .ok_or(TokenError::Empty)?;
        if !near_expiry(latest.expires_at_ms) {
            let _ = connections.refreshed(team, latest.expires_at_ms).await;
            return Ok(latest);
        }
        let refresh_token = latest.refresh_token.clone().unwrap_or(refresh_token);
        match client.refresh(app, &refresh_token).await {
            Ok(access) => {
                let token = WorkspaceToken::from_access(&access, now_ms());
                connections
                    .put_token(team, &token)
                    .await
                    .map_err(|e| TokenError::Fetch(e.to_string()))?;
                let _ = connections.refreshed(team, token.expires_at_ms).await;
                tracing::info!(team = %team, "bot token refreshed");
                Ok(token)
            }
            Err(e) => {
                let _ = connections.refreshed(team, latest.expires_at_ms).await;
                tracing::error!(team = %team, error = %e, "bot token refresh failed");
                Err(TokenError::Fetch(format!("token refresh failed: {e}")))
            }
        }
    }
}

fn near_expiry(expires_at_ms: Option<i64>) -> bool {
    expires_at_ms.is_some_and(|t| t - now_ms() < REFRESH_BEFORE.as_millis() as i64)
}
