//! `ingestlayer secrets`: the destination secrets pipelines name (`secret: ops-discord`): a
//! Discord webhook's URL, a Telegram bot token, a Notion integration token, a webhook's
//! signing secret. Each is stored as `<DestinationSecretPrefix>/<name>` in Secrets Manager,
//! encrypted with the stack's key, never in a pipeline; the destination-delivery function
//! picks a new value up within five minutes.

use std::io::{Read, Write};

use ingestlayer::dispatch::secrets::put_secret;
use ingestlayer::ingress::webhooks::verify::{generate_secret, Provider};

use crate::error::CliError;
use crate::stack::Stack;

/// `secrets set NAME [--value V | --generate-webhook-secret]`; without either the value is
/// read from standard input (so it stays out of the shell's history).
pub async fn set(
    stack: &Stack,
    name: &str,
    value: Option<String>,
    generate: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (value, generated) = match (value, generate) {
        (Some(v), false) => (v, false),
        (None, true) => (generate_secret(Provider::StandardWebhooks), true),
        (Some(_), true) => {
            return Err(CliError::Usage(
                "give --value or --generate-webhook-secret, not both".into(),
            ))
        }
        (None, false) => {
            let mut v = String::new();
            std::io::stdin().read_to_string(&mut v).map_err(|e| {
                CliError::Usage(format!("reading the secret from standard input: {e}"))
            })?;
            (v.trim().to_owned(), false)
        }
    };
    put_secret(
        &stack.secrets(),
        stack.output("DestinationSecretPrefix")?,
        name,
        &value,
        Some(stack.output("StackKeyId")?),
    )
    .await
    .map_err(|e| stack.explain(e))?;
    if generated {
        writeln!(out, "{value}").ok();
        writeln!(
            out,
            "secret {name}: the signing secret above is shown once; give it to the receiver, which verifies with it"
        )
        .ok();
    } else {
        writeln!(
            out,
            "secret {name} stored; deliveries use it within five minutes"
        )
        .ok();
    }
    Ok(())
}
