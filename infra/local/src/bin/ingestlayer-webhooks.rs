//! `ingestlayer-webhooks`: the sources of `POST /v1/webhooks/{source}`. Each is a Secrets
//! Manager secret `<stack>/webhooks/<source>` holding its provider and signing secrets.
//!
//! `add` creates or replaces a source (a Standard Webhooks secret is generated and printed
//! once when none is given; Stripe and GitHub issue theirs), `rotate` adds a newer secret
//! and keeps the previous one valid, `list` names the sources, and `send` signs a payload
//! file the way the provider would and posts it (to try a door by hand).

use clap::{Parser, Subcommand};
use ingestlayer::ingress::webhooks::sources::{
    generate_secret, list_sources, put_source, sign, Provider, SourceConfig,
};

#[derive(Parser)]
#[command(
    name = "ingestlayer-webhooks",
    about = "Webhook sources: add, rotate, list, send"
)]
struct Cli {
    /// The secret name prefix (stack output WebhookSecretPrefix, e.g. `my-stack/webhooks/`).
    #[arg(
        long,
        env = "WEBHOOK_SECRET_PREFIX",
        required_unless_present = "prefix"
    )]
    secret_prefix: Option<String>,
    /// Instead: a local stack's name prefix (`make dev` uses ingestlayer-dev).
    #[arg(long)]
    prefix: Option<String>,
    /// KMS key for new secrets (stack output StackKeyArn); the account's default otherwise.
    #[arg(long, env = "KMS_KEY_ID")]
    kms_key_id: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or replace a source.
    Add {
        #[arg(long)]
        source: String,
        /// standard-webhooks, stripe or github.
        #[arg(long)]
        provider: Provider,
        /// The signing secret (Stripe's `whsec_…`, the one you gave GitHub); generated and
        /// printed once when absent.
        #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Add a newer secret; deliveries signed with it or the previous one verify.
    Rotate {
        #[arg(long)]
        source: String,
        #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Keep only the newest secret (once the sender signs with it).
        #[arg(long)]
        drop_previous: bool,
    },
    /// Sources and their providers.
    List,
    /// Sign a payload file as the source's provider would and POST it.
    Send {
        #[arg(long)]
        source: String,
        /// The payload (e.g. infra/examples/webhooks/stripe-invoice-payment-failed.json).
        #[arg(long)]
        file: std::path::PathBuf,
        /// The ingest API.
        #[arg(
            long,
            env = "INGESTLAYER_API_URL",
            default_value = "http://127.0.0.1:3000"
        )]
        url: String,
        /// GitHub's X-GitHub-Event.
        #[arg(long, default_value = "workflow_run")]
        github_event: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingestlayer-webhooks: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let prefix = match (cli.secret_prefix, cli.prefix) {
        (Some(p), _) => p,
        (None, Some(p)) => format!("{p}/webhooks/"),
        (None, None) => return Err("give --secret-prefix or --prefix".into()),
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let kms = cli.kms_key_id.as_deref();
    match cli.command {
        Command::Add {
            source,
            provider,
            secret,
        } => {
            let (secret, generated) = match secret.filter(|s| !s.is_empty()) {
                Some(s) => (s, false),
                None => (generate_secret(provider), true),
            };
            let config = SourceConfig {
                provider,
                secrets: vec![secret.clone()],
            };
            put_source(&sm, &prefix, &source, &config, kms).await?;
            if generated {
                println!("{secret}");
                eprintln!(
                    "source {source} ({}): the secret above is shown once; give it to the sender",
                    provider.as_str()
                );
            } else {
                eprintln!("source {source} ({}) stored", provider.as_str());
            }
        }
        Command::Rotate {
            source,
            secret,
            drop_previous,
        } => {
            let mut config = read(&sm, &prefix, &source).await?;
            let (secret, generated) = match secret.filter(|s| !s.is_empty()) {
                Some(s) => (s, false),
                None => (generate_secret(config.provider), true),
            };
            config.secrets.insert(0, secret.clone());
            config.secrets.truncate(if drop_previous { 1 } else { 2 });
            put_source(&sm, &prefix, &source, &config, kms).await?;
            if generated {
                println!("{secret}");
            }
            eprintln!(
                "source {source}: {} secret(s) valid; ingest picks this up within a minute",
                config.secrets.len()
            );
        }
        Command::List => {
            for (name, provider) in list_sources(&sm, &prefix).await? {
                match provider {
                    Ok(p) => println!("{name}  {}", p.as_str()),
                    Err(e) => println!("{name}  misconfigured: {e}"),
                }
            }
        }
        Command::Send {
            source,
            file,
            url,
            github_event,
        } => {
            let config = read(&sm, &prefix, &source).await?;
            let body = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let secret = config.secrets.first().ok_or("the source has no secret")?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let client = reqwest::Client::new();
            let mut req = client
                .post(format!(
                    "{}/v1/webhooks/{source}",
                    url.trim_end_matches('/')
                ))
                .header("content-type", "application/json");
            req = match config.provider {
                Provider::StandardWebhooks => {
                    let id = format!("msg_{}", ulid::Ulid::new());
                    req.header("webhook-id", &id)
                        .header("webhook-timestamp", now.to_string())
                        .header(
                            "webhook-signature",
                            sign::standard(secret, &id, now, &body)?,
                        )
                }
                Provider::Stripe => {
                    req.header("stripe-signature", sign::stripe(secret, now, &body))
                }
                Provider::Github => req
                    .header("x-hub-signature-256", sign::github(secret, &body))
                    .header("x-github-event", github_event)
                    .header("x-github-delivery", ulid::Ulid::new().to_string()),
            };
            let response = req.body(body).send().await?;
            let status = response.status();
            println!("{status} {}", response.text().await?);
            if !status.is_success() {
                return Err(format!("the API answered {status}").into());
            }
        }
    }
    Ok(())
}

async fn read(
    sm: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    source: &str,
) -> Result<SourceConfig, String> {
    let raw = ingestlayer::aws::secrets::read_secret_if_exists(
        sm,
        &format!("{prefix}{source}"),
        "the webhook source",
    )
    .await
    .map_err(|e| e.to_string())?
    .ok_or_else(|| format!("no webhook source {source}"))?;
    serde_json::from_str(&raw).map_err(|e| format!("webhook source {source}: {e}"))
}
