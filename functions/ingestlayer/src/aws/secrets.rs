//! Secrets Manager: a secret's string, read once where it is used and never logged.

use crate::error::{Error, Result};

/// Reads a secret's string from Secrets Manager; the error names `what` was being read
/// (never the value).
pub async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    what: &str,
) -> Result<String> {
    read_secret_if_exists(client, id, what)
        .await?
        .ok_or_else(|| Error::NotFound(format!("reading {what}: the secret {id} does not exist")))
}

/// [`read_secret`], with `None` when no such secret exists.
pub async fn read_secret_if_exists(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    what: &str,
) -> Result<Option<String>> {
    match client.get_secret_value().secret_id(id).send().await {
        Ok(out) => Ok(Some(out.secret_string().unwrap_or_default().to_owned())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::aws(format!("reading {what}"), e)),
    }
}
