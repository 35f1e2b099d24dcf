//! Slack workspaces connected with OAuth: one item per workspace in the connections table
//! (`pk = team#<team id>`: team name, bot user, scopes, the ARN of the workspace's token
//! secret, who installed it and when, `status` active or revoked, the token's expiry and
//! the refresh lock), plus consumed OAuth states (`pk = state#<nonce>`, with a TTL).
//!
//! Bot tokens never live here: each workspace's token is its own secret in Secrets Manager,
//! encrypted with the stack's KMS key (`{"bot_token", "refresh_token"?, "expires_at_ms"?}`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::slack::oauth::{Access, StateError};

/// Whether a workspace's bot token is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    #[default]
    Active,
    /// The app was uninstalled or its tokens revoked: deliveries pause until a reinstall.
    Revoked,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::Revoked => "revoked",
        }
    }
}

/// A connected workspace, as its item in the connections table (with `pk` = `team#<id>`,
/// see [`ConnectionItem`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Connection {
    pub team_id: String,
    #[serde(default)]
    pub team_name: String,
    #[serde(default)]
    pub bot_user_id: String,
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub secret_arn: String,
    #[serde(default)]
    pub installed_by: String,
    #[serde(default)]
    pub installed_at: String,
    #[serde(default)]
    pub status: ConnectionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
    /// When the bot token expires (token rotation), epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at_ms: Option<i64>,
}

/// A connection as it is written: the item's key beside the connection's fields.
#[derive(serde::Serialize)]
struct ConnectionItem<'a> {
    pk: String,
    #[serde(flatten)]
    connection: &'a Connection,
}

/// An OAuth state's one-time mark: written once, so a replayed state is refused; DynamoDB's
/// TTL removes it after `expires_at`.
#[derive(serde::Serialize)]
struct StateItem {
    pk: String,
    expires_at: i64,
}

/// A workspace's token secret.
#[derive(Clone)]
pub struct WorkspaceToken {
    pub bot_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_at_ms: Option<i64>,
}

impl WorkspaceToken {
    pub fn from_access(a: &Access, now_ms: i64) -> Self {
        Self {
            bot_token: a.access_token.clone(),
            refresh_token: a.refresh_token.clone(),
            expires_at_ms: a.expires_in.map(|s| now_ms + s as i64 * 1000),
        }
    }

    fn to_json(&self) -> String {
        serde_json::json!({
            "bot_token": self.bot_token.expose_secret(),
            "refresh_token": self.refresh_token.as_ref().map(|t| t.expose_secret().to_owned()),
            "expires_at_ms": self.expires_at_ms,
        })
        .to_string()
    }

    /// Parses a token secret: `{"bot_token", …}` or a bare token.
    pub fn parse(s: &str) -> Option<Self> {
        let v: serde_json::Value = match serde_json::from_str(s) {
            Ok(v) => v,
            Err(_) if !s.trim().is_empty() => {
                return Some(Self {
                    bot_token: SecretString::from(s.trim().to_owned()),
                    refresh_token: None,
                    expires_at_ms: None,
                })
            }
            Err(_) => return None,
        };
        let token = v["bot_token"].as_str().filter(|t| !t.is_empty())?;
        Some(Self {
            bot_token: SecretString::from(token.to_owned()),
            refresh_token: v["refresh_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(|t| SecretString::from(t.to_owned())),
            expires_at_ms: v["expires_at_ms"].as_i64(),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Connections {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub table: String,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Workspace token secrets are named `<secret_prefix>/<team id>`.
    pub secret_prefix: String,
    /// The stack's KMS key for those secrets.
    pub kms_key_id: String,
}

impl Connections {
    /// Marks an OAuth state's nonce used; a second use is [`StateError::Replayed`].
    pub async fn consume_state(
        &self,
        nonce: &str,
        expires_unix: i64,
    ) -> Result<Result<(), StateError>> {
        let r = self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(crate::aws::dynamo::to_item(
                &StateItem {
                    pk: format!("state#{nonce}"),
                    expires_at: expires_unix,
                },
                "an OAuth state",
            )?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(Ok(())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Err(StateError::Replayed))
            }
            Err(e) => Err(Error::aws("the connections table", e)),
        }
    }

    /// Stores (or replaces, on re-install) the workspace's token secret and records the
    /// connection as active.
    pub async fn save_install(
        &self,
        access: &Access,
        now_ms: i64,
        now_text: &str,
    ) -> Result<Connection> {
        let token = WorkspaceToken::from_access(access, now_ms);
        let secret_arn = self.put_token(&access.team_id, &token).await?;
        let c = Connection {
            team_id: access.team_id.clone(),
            team_name: access.team_name.clone(),
            bot_user_id: access.bot_user_id.clone(),
            scopes: access.scope.clone(),
            secret_arn,
            installed_by: access.installer.clone(),
            installed_at: now_text.to_owned(),
            status: ConnectionStatus::Active,
            revoked_reason: None,
            token_expires_at_ms: token.expires_at_ms,
        };
        let item = crate::aws::dynamo::to_item(
            &ConnectionItem {
                pk: format!("team#{}", c.team_id),
                connection: &c,
            },
            "a connection",
        )?;
        let put = self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        put.send()
            .await
            .map_err(|e| Error::aws("the connections table", e))?;
        Ok(c)
    }

    /// Writes a workspace's token secret under the stack key; returns its ARN.
    pub async fn put_token(&self, team_id: &str, token: &WorkspaceToken) -> Result<String> {
        let name = format!("{}/{team_id}", self.secret_prefix);
        let created = self
            .secrets
            .create_secret()
            .name(&name)
            .kms_key_id(&self.kms_key_id)
            .description(format!(
                "Slack bot token for workspace {team_id} (ingestlayer)"
            ))
            .secret_string(token.to_json())
            .send()
            .await;
        match created {
            Ok(out) => Ok(out.arn.unwrap_or_default()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                let out = self
                    .secrets
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(token.to_json())
                    .send()
                    .await
                    .map_err(|e| Error::aws("the workspace token secret", e))?;
                Ok(out.arn.unwrap_or_default())
            }
            Err(e) => Err(Error::aws("the workspace token secret", e)),
        }
    }

    /// Reads a workspace's token secret.
    pub async fn read_token(&self, secret_arn: &str) -> Result<Option<WorkspaceToken>> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(secret_arn)
            .send()
            .await
            .map_err(|e| Error::aws("the workspace token secret", e))?;
        Ok(WorkspaceToken::parse(
            out.secret_string().unwrap_or_default(),
        ))
    }

    pub async fn get(&self, team_id: &str) -> Result<Option<Connection>> {
        let item = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("team#{team_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("the connections table", e))?
            .item;
        Ok(item.as_ref().and_then(connection_of))
    }

    /// Every connected workspace, by name.
    pub async fn list(&self) -> Result<Vec<Connection>> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .dynamo
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :t)")
            .expression_attribute_values(":t", AttributeValue::S("team#".into()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::aws("the connections table", e))?;
        let mut out: Vec<Connection> = items.iter().filter_map(connection_of).collect();
        out.sort_by(|a, b| a.team_name.cmp(&b.team_name));
        Ok(out)
    }

    /// Marks a workspace revoked (app uninstalled, tokens revoked).
    pub async fn mark_revoked(&self, team_id: &str, reason: &str) -> Result<()> {
        self.dynamo
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("team#{team_id}")))
            .update_expression(
                "SET #s = :r, revoked_reason = :why, team_id = if_not_exists(team_id, :t)",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":r", AttributeValue::S("revoked".into()))
            .expression_attribute_values(":why", AttributeValue::S(reason.to_owned()))
            .expression_attribute_values(":t", AttributeValue::S(team_id.to_owned()))
            .send()
            .await
            .map_err(|e| Error::aws("the connections table", e))?;
        Ok(())
    }

    /// Takes the workspace's refresh lock until `until_ms`; `false` when another
    /// instance holds it. Each refresh token works once, so only the holder refreshes.
    pub async fn lock_refresh(&self, team_id: &str, now_ms: i64, until_ms: i64) -> Result<bool> {
        let r = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("team#{team_id}")))
            .update_expression("SET refresh_lock_until_ms = :until")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(refresh_lock_until_ms) OR refresh_lock_until_ms < :now)")
            .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::aws("the connections table", e)),
        }
    }

    /// Records a refreshed token's expiry and releases the lock.
    pub async fn refreshed(&self, team_id: &str, expires_at_ms: Option<i64>) -> Result<()> {
        let mut u = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("team#{team_id}")));
        u = match expires_at_ms {
            Some(ms) => u
                .update_expression("SET token_expires_at_ms = :e REMOVE refresh_lock_until_ms")
                .expression_attribute_values(":e", AttributeValue::N(ms.to_string())),
            None => u.update_expression("REMOVE refresh_lock_until_ms"),
        };
        u.send()
            .await
            .map_err(|e| Error::aws("the connections table", e))?;
        Ok(())
    }
}

/// A workspace item; `None` for other items (consumed states) and unreadable ones.
fn connection_of(item: &HashMap<String, AttributeValue>) -> Option<Connection> {
    let c: Connection = serde_dynamo::from_item(item.clone()).ok()?;
    let c = Connection {
        revoked_reason: c.revoked_reason.filter(|r| !r.is_empty()),
        ..c
    };
    (!c.team_id.is_empty()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_written_in_its_documented_shape_and_reads_back() {
        let c = Connection {
            team_id: "T01".into(),
            team_name: "Acme".into(),
            bot_user_id: "U01".into(),
            scopes: "chat:write".into(),
            secret_arn: "arn:secret".into(),
            installed_by: "U02".into(),
            installed_at: "2026-11-30T10:00:00Z".into(),
            status: ConnectionStatus::Active,
            revoked_reason: None,
            token_expires_at_ms: Some(42),
        };
        let item = crate::aws::dynamo::to_item(
            &ConnectionItem {
                pk: "team#T01".into(),
                connection: &c,
            },
            "test",
        )
        .unwrap();
        assert_eq!(item["pk"], AttributeValue::S("team#T01".into()));
        assert_eq!(item["status"], AttributeValue::S("active".into()));
        assert_eq!(item["token_expires_at_ms"], AttributeValue::N("42".into()));
        assert!(
            !item.contains_key("revoked_reason"),
            "nothing written for what is not"
        );
        assert_eq!(item.len(), 10);
        let back: Connection = crate::aws::dynamo::from_item(item, "test").unwrap();
        assert_eq!(back, c);
        let state = crate::aws::dynamo::to_item(
            &StateItem {
                pk: "state#n".into(),
                expires_at: 7,
            },
            "test",
        )
        .unwrap();
        assert_eq!(state["expires_at"], AttributeValue::N("7".into()));
    }

    #[test]
    fn token_secrets_round_trip_and_accept_a_bare_token() {
        let t = WorkspaceToken {
            bot_token: SecretString::from("xoxe.xoxb-1".to_owned()),
            refresh_token: Some(SecretString::from("xoxe-1-r".to_owned())),
            expires_at_ms: Some(42),
        };
        let back = WorkspaceToken::parse(&t.to_json()).unwrap();
        assert_eq!(back.bot_token.expose_secret(), "xoxe.xoxb-1");
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "xoxe-1-r");
        assert_eq!(back.expires_at_ms, Some(42));
        assert_eq!(
            WorkspaceToken::parse("xoxb-bare")
                .unwrap()
                .bot_token
                .expose_secret(),
            "xoxb-bare"
        );
        assert!(WorkspaceToken::parse(r#"{"bot_token":""}"#).is_none());
    }
}
