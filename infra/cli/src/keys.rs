//! `ingestlayer keys …`: API keys per source, in the stack's API keys table (output
//! `ApiKeysTableName`). `create` shows the key once and stores only its SHA-256 hash; `list`
//! shows public ids and sources; `revoke` stops a key (within a minute: each ingest instance
//! caches a checked key for 60 s).

use std::io::Write;

use ingestlayer::ids::{valid_key_source, MAX_KEY_SOURCE_LEN};
use ingestlayer::ingress::api_keys::{generate_key, key_id, ApiKeys, KeyInfo};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::error::CliError;
use crate::stack::Stack;

fn table(stack: &Stack) -> Result<ApiKeys, CliError> {
    Ok(ApiKeys::new(
        stack.dynamo(),
        stack.output("ApiKeysTableName")?.to_owned(),
    ))
}

/// `keys create --source S`: the key on stdout (once), what it is on stderr.
pub async fn create(stack: &Stack, source: &str, out: &mut dyn Write) -> Result<(), CliError> {
    if !valid_key_source(source) {
        return Err(CliError::Usage(format!(
            "source {source:?} must be 1-{MAX_KEY_SOURCE_LEN} letters, digits, - _ . (and not `webhook`)"
        )));
    }
    let key = generate_key();
    table(stack)?
        .create(&key, source)
        .await
        .map_err(|e| stack.explain(e))?;
    writeln!(out, "{}", key.expose_secret()).ok();
    eprintln!(
        "key {} for source {source}: shown once, stored only as a hash",
        key_id(key.expose_secret())
    );
    Ok(())
}

/// `keys list`: public id, source, created, state.
pub async fn list(stack: &Stack, out: &mut dyn Write, as_json: bool) -> Result<(), CliError> {
    let keys = table(stack)?.list().await.map_err(|e| stack.explain(e))?;
    if as_json {
        let list: Vec<Value> = keys.iter().map(key_json).collect();
        writeln!(out, "{}", Value::Array(list)).ok();
        return Ok(());
    }
    if keys.is_empty() {
        writeln!(
            out,
            "no API keys: `ingestlayer {} keys create --source NAME`",
            stack.target.flags()
        )
        .ok();
    }
    for k in &keys {
        writeln!(out, "{}", key_line(k)).ok();
    }
    Ok(())
}

fn key_json(k: &KeyInfo) -> Value {
    json!({
        "id": k.key_id,
        "source": k.source,
        "created_at": k.created_at,
        "revoked_at": k.revoked_at,
        "state": if k.revoked_at.is_some() { "revoked" } else { "active" },
    })
}

fn key_line(k: &KeyInfo) -> String {
    let state = k
        .revoked_at
        .as_ref()
        .map(|t| format!("revoked {t}"))
        .unwrap_or_else(|| "active".into());
    format!(
        "{}  {}  created {}  {state}",
        k.key_id, k.source, k.created_at
    )
}

/// `keys revoke --id ID`.
pub async fn revoke(stack: &Stack, id: &str, out: &mut dyn Write) -> Result<(), CliError> {
    if table(stack)?
        .revoke(id)
        .await
        .map_err(|e| stack.explain(e))?
    {
        writeln!(out, "revoked {id}; it stops working within a minute").ok();
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "no key with id {id}: `ingestlayer {} keys list` shows the ids",
            stack.target.flags()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_as_id_source_created_and_state() {
        let mut k = KeyInfo {
            key_id: "il_AbCdEfGh".into(),
            source: "web-app".into(),
            created_at: "2025-01-02T03:04:05Z".into(),
            revoked_at: None,
        };
        assert_eq!(
            key_line(&k),
            "il_AbCdEfGh  web-app  created 2025-01-02T03:04:05Z  active"
        );
        k.revoked_at = Some("2025-02-01T00:00:00Z".into());
        assert!(key_line(&k).ends_with("revoked 2025-02-01T00:00:00Z"));
        assert_eq!(key_json(&k)["state"], "revoked");
    }
}
