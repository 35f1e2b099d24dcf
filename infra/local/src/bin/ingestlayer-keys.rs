//! `ingestlayer-keys`: API keys per source. `create` shows the key once and stores only its
//! SHA-256 hash; `list` shows public ids and sources; `revoke` stops a key (within a minute:
//! each ingest instance caches a checked key for 60 s).

use clap::{Parser, Subcommand};
use ingestlayer::ingress::api_keys::{generate_key, key_id, ApiKeys};
use secrecy::ExposeSecret;

#[derive(Parser)]
#[command(
    name = "ingestlayer-keys",
    about = "API keys: create (shown once), list, revoke"
)]
struct Cli {
    /// The API keys table (stack output ApiKeysTableName).
    #[arg(long, env = "API_KEYS_TABLE", required_unless_present = "prefix")]
    table: Option<String>,
    /// Instead: a local stack's name prefix (`make dev` uses ingestlayer-dev).
    #[arg(long)]
    prefix: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a key for a source (e.g. web-app); the key is printed once.
    Create {
        #[arg(long)]
        source: String,
    },
    /// Keys by public id, source and state.
    List,
    /// Revoke a key by its public id (`il_` and 8 characters).
    Revoke {
        #[arg(long)]
        id: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingestlayer-keys: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let table = match (cli.table, cli.prefix) {
        (Some(t), _) => t,
        (None, Some(p)) => format!("{p}-api-keys"),
        (None, None) => return Err("give --table or --prefix".into()),
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let keys = ApiKeys::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    match cli.command {
        Command::Create { source } => {
            let valid = !source.is_empty()
                && source.len() <= 64
                && source
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(
                    format!("source {source:?} must be 1-64 letters, digits, - _ .").into(),
                );
            }
            let key = generate_key();
            keys.create(&key, &source).await?;
            println!("{}", key.expose_secret());
            eprintln!(
                "key {} for source {source}: shown once, stored only as a hash",
                key_id(key.expose_secret())
            );
        }
        Command::List => {
            for k in keys.list().await? {
                let state = k
                    .revoked_at
                    .map(|t| format!("revoked {t}"))
                    .unwrap_or_else(|| "active".into());
                println!(
                    "{}  {}  created {}  {}",
                    k.key_id, k.source, k.created_at, state
                );
            }
        }
        Command::Revoke { id } => {
            if keys.revoke(&id).await? {
                println!("revoked {id}; it stops working within a minute");
            } else {
                return Err(format!("no key with id {id}").into());
            }
        }
    }
    Ok(())
}
