//! `ingestlayer webhooks …`: the sources of `POST /v1/webhooks/{source}`. Each is a Secrets
//! Manager secret `<WebhookSecretPrefix><source>` holding its provider and signing secrets,
//! encrypted with the stack's key (`StackKeyId`).
//!
//! `add` creates or replaces a source (a Standard Webhooks secret is generated and printed
//! once when none is given; Stripe and GitHub issue theirs), `rotate` adds a newer secret
//! and keeps the previous one valid, `list` names the sources, and `send` signs a payload
//! file the way the provider would and posts it to the stack's API (`ApiUrl`), to try a door
//! by hand.

use std::io::Write;
use std::path::Path;

use ingestlayer::ingress::webhooks::sources::{
    generate_secret, list_sources, put_source, sign, Provider, SourceConfig,
};
use serde_json::{json, Value};

use crate::error::CliError;
use crate::stack::Stack;

fn prefix(stack: &Stack) -> Result<&str, CliError> {
    stack.output("WebhookSecretPrefix")
}

/// `webhooks add --source S --provider P [--secret …]`.
pub async fn add(
    stack: &Stack,
    source: &str,
    provider: Provider,
    secret: Option<String>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = SourceConfig {
        provider,
        secrets: Vec::new(),
    };
    let (_, generated) = store(stack, source, config, secret, 1).await?;
    if let Some(secret) = generated {
        writeln!(out, "{secret}").ok();
        eprintln!(
            "source {source} ({}): the secret above is shown once; give it to the sender",
            provider.as_str()
        );
    } else {
        eprintln!("source {source} ({}) stored", provider.as_str());
    }
    Ok(())
}

/// `webhooks rotate --source S [--secret …] [--drop-previous]`.
pub async fn rotate(
    stack: &Stack,
    source: &str,
    secret: Option<String>,
    drop_previous: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = read(stack, source).await?;
    let keep = if drop_previous { 1 } else { 2 };
    let (config, generated) = store(stack, source, config, secret, keep).await?;
    if let Some(secret) = generated {
        writeln!(out, "{secret}").ok();
    }
    eprintln!(
        "source {source}: {} secret(s) valid; ingest picks this up within a minute",
        config.secrets.len()
    );
    Ok(())
}

/// Puts `secret` (or, when none is given, a new one for the provider) first in the source's
/// `config`, keeps the newest `keep` secrets and stores it, encrypted with the stack's key.
/// Returns what was stored and the secret when it was generated (to be shown once).
async fn store(
    stack: &Stack,
    source: &str,
    mut config: SourceConfig,
    secret: Option<String>,
    keep: usize,
) -> Result<(SourceConfig, Option<String>), CliError> {
    let (secret, generated) = match secret.filter(|s| !s.is_empty()) {
        Some(s) => (s, false),
        None => (generate_secret(config.provider), true),
    };
    config.secrets.insert(0, secret.clone());
    config.secrets.truncate(keep);
    put_source(
        &stack.secrets(),
        prefix(stack)?,
        source,
        &config,
        Some(stack.output("StackKeyId")?),
    )
    .await
    .map_err(|e| stack.explain(e))?;
    Ok((config, generated.then_some(secret)))
}

/// `webhooks list`: each source and its provider (or what is wrong with it).
pub async fn list(stack: &Stack, out: &mut dyn Write, as_json: bool) -> Result<(), CliError> {
    let sources = list_sources(&stack.secrets(), prefix(stack)?)
        .await
        .map_err(|e| stack.explain(e))?;
    if as_json {
        let list: Vec<Value> = sources
            .iter()
            .map(|(name, provider)| match provider {
                Ok(p) => json!({"source": name, "provider": p.as_str()}),
                Err(e) => json!({"source": name, "provider": null, "problem": e.to_string()}),
            })
            .collect();
        writeln!(out, "{}", Value::Array(list)).ok();
        return Ok(());
    }
    for (name, provider) in sources {
        match provider {
            Ok(p) => writeln!(out, "{name}  {}", p.as_str()).ok(),
            Err(e) => writeln!(out, "{name}  misconfigured: {e}").ok(),
        };
    }
    Ok(())
}

/// `webhooks send --source S --file F`: signs the file as the source's provider would, with
/// its newest secret, and posts it to `url` (default: the stack's `ApiUrl`).
pub async fn send(
    stack: &Stack,
    source: &str,
    file: &Path,
    url: Option<String>,
    github_event: &str,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = read(stack, source).await?;
    let body = std::fs::read(file).map_err(|source| CliError::Io {
        what: "reading the payload",
        path: file.to_owned(),
        source,
    })?;
    let secret = config.secrets.first().ok_or_else(|| {
        CliError::Stack(format!(
            "webhook source {source} has no secret: `ingestlayer {} webhooks rotate --source {source}`",
            stack.target.flags()
        ))
    })?;
    let base = match url {
        Some(u) => u,
        None => stack.output("ApiUrl")?.to_owned(),
    };
    let endpoint = format!("{}/v1/webhooks/{source}", base.trim_end_matches('/'));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut req = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", "application/json");
    req = match config.provider {
        Provider::StandardWebhooks => {
            let id = format!("msg_{}", ulid::Ulid::new());
            let signature = sign::standard(secret, &id, now, &body)
                .map_err(|e| CliError::Stack(format!("webhook source {source}'s secret: {e}")))?;
            req.header("webhook-id", &id)
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", signature)
        }
        Provider::Stripe => req.header("stripe-signature", sign::stripe(secret, now, &body)),
        Provider::Github => req
            .header("x-hub-signature-256", sign::github(secret, &body))
            .header("x-github-event", github_event)
            .header("x-github-delivery", ulid::Ulid::new().to_string()),
    };
    let response = req.body(body).send().await.map_err(|e| {
        CliError::Stack(format!(
            "posting to {endpoint}: the API did not answer ({}): {}",
            e.without_url(),
            if stack.target.is_local() {
                "is `make dev` running? It serves the API on PORT (default 3000); --url names another"
            } else {
                "check the network, or give the API with --url"
            }
        ))
    })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    writeln!(out, "{status} {text}").ok();
    if status.is_success() {
        Ok(())
    } else {
        Err(CliError::Stack(format!("the API answered {status}")))
    }
}

async fn read(stack: &Stack, source: &str) -> Result<SourceConfig, CliError> {
    let raw = ingestlayer::aws::secrets::read_secret_if_exists(
        &stack.secrets(),
        &format!("{}{source}", prefix(stack)?),
        "the webhook source",
    )
    .await
    .map_err(|e| stack.explain(e))?
    .ok_or_else(|| {
        CliError::Usage(format!(
            "no webhook source {source}: `ingestlayer {} webhooks add --source {source} --provider …`",
            stack.target.flags()
        ))
    })?;
    ingestlayer::ingress::webhooks::sources::parse_source_config(&raw)
        .map_err(|e| CliError::Stack(format!("webhook source {source}: {e}")))
}
