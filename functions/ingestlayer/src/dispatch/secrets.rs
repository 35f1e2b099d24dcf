//! Destination secrets: a Discord webhook's URL, a Telegram bot token, a Notion integration
//! token, a webhook's signing secret. A pipeline names each (`secret: alerts-hook`); the
//! value lives in Secrets Manager as `<prefix>/<name>` (encrypted with the stack's KMS key,
//! written by `ingestlayer secrets set` or the destinations page), never in the pipeline
//! item, and is read here once per few minutes per instance, never logged.

use std::time::Duration;

use secrecy::SecretString;

use crate::outbound::Verdict;

/// How long a secret read is reused, so a rotated secret is picked up within this.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// When Secrets Manager cannot be read, the target's messages come back after this.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct DestinationSecrets {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    cache: moka::sync::Cache<String, SecretString>,
}

/// The secret's id in Secrets Manager: `<prefix>/<name>`.
pub fn secret_id(prefix: &str, name: &str) -> String {
    format!("{}/{name}", prefix.trim_end_matches('/'))
}

impl DestinationSecrets {
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: &str) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            cache: moka::sync::Cache::builder()
                .max_capacity(1000)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }

    /// Forgets the cached value of `name`: the next use reads Secrets Manager.
    pub fn forget(&self, name: &str) {
        self.cache.invalidate(name);
    }

    /// The secret named `name`; a missing one pauses the target with how to store it, an
    /// unreadable one is retried.
    pub async fn get(&self, name: &str) -> Result<SecretString, Verdict> {
        if let Some(s) = self.cache.get(name) {
            return Ok(s);
        }
        let id = secret_id(&self.prefix, name);
        let what = format!("the destination secret {name}");
        match crate::aws::secrets::read_secret_if_exists(&self.client, &id, &what).await {
            Ok(Some(value)) if !value.trim().is_empty() => {
                let secret = SecretString::from(value.trim().to_owned());
                self.cache.insert(name.to_owned(), secret.clone());
                Ok(secret)
            }
            Ok(_) => Err(Verdict::PauseTarget {
                reason: format!("the secret {name} is missing or empty"),
                hint: format!(
                    "store it with `ingestlayer secrets set {name}` (or on the destinations page), then resume the target and redrive its parked messages"
                ),
            }),
            Err(e) => Err(Verdict::RetryAfter {
                wait: UNAVAILABLE_RETRY,
                reason: format!("could not read the secret {name}: {e}"),
            }),
        }
    }
}

/// Creates or replaces the destination secret `name` (`<prefix>/<name>`, under the stack's
/// `kms_key_id`): what `ingestlayer secrets set` and `make dev` store.
pub async fn put_secret(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    name: &str,
    value: &str,
    kms_key_id: Option<&str>,
) -> crate::error::Result<()> {
    if !crate::outbound::message::valid_secret_name(name) {
        return Err(crate::error::Error::reason(format!(
            "secret name {name:?}: use 1 to 64 letters, digits or /_+=.@-"
        )));
    }
    if value.trim().is_empty() {
        return Err(crate::error::Error::reason(format!(
            "the secret {name} would be empty"
        )));
    }
    let id = secret_id(prefix, name);
    let created = client
        .create_secret()
        .name(&id)
        .description(format!("ingestlayer destination secret {name}"))
        .set_kms_key_id(kms_key_id.map(str::to_owned))
        .secret_string(value)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            client
                .put_secret_value()
                .secret_id(&id)
                .secret_string(value)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::error::Error::aws(format!("storing the secret {name}"), e))
        }
        Err(e) => Err(crate::error::Error::aws(
            format!("storing the secret {name}"),
            e,
        )),
    }
}
