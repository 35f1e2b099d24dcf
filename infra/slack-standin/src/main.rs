//! `slack-standin`: the Slack Web API stand-in for the local stack (`make dev`).
//! Set `SLACK_API_URL` to the URL it logs at start-up.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use slack_standin::{Error, Standin, StandinConfig};
use tracing_subscriber::EnvFilter;

/// A local Slack Web API that behaves like Slack: Block Kit limits, per-channel rate limits,
/// ok:false errors. Accepted messages are printed as boxes on stdout; logs go to stderr.
#[derive(Debug, Parser)]
#[command(name = "slack-standin", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "SLACK_STANDIN_ADDR", default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
    /// chat.postMessage rate per channel, per second (Slack: about 1). 0 disables the limit.
    #[arg(long, env = "SLACK_STANDIN_RATE_PER_SEC", default_value_t = 1.0)]
    rate_per_sec: f64,
    /// Posts a channel may make back to back before the rate applies.
    #[arg(long, env = "SLACK_STANDIN_BURST", default_value_t = 1)]
    burst: u32,
    /// Do not print accepted messages.
    #[arg(long)]
    quiet: bool,
    /// Accept only this bot token (repeatable). Without it, any token starting with "xox".
    /// Tokens issued by oauth.v2.access are accepted either way.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// The workspace's team ID.
    #[arg(long, env = "SLACK_STANDIN_TEAM_ID", default_value = "T0STANDIN")]
    team_id: String,
    /// The workspace's name.
    #[arg(long, env = "SLACK_STANDIN_TEAM_NAME", default_value = "Stand-in")]
    team_name: String,
    /// Register an app for the OAuth install flow as CLIENT_ID:CLIENT_SECRET (repeatable).
    /// Without it, standin-client-id:standin-client-secret.
    #[arg(long = "oauth-client", value_name = "ID:SECRET", value_parser = parse_client)]
    oauth_clients: Vec<(String, String)>,
    /// Issue expiring tokens with refresh tokens (Slack's token rotation).
    #[arg(long, env = "SLACK_STANDIN_TOKEN_ROTATION")]
    token_rotation: bool,
}

fn parse_client(value: &str) -> Result<(String, String), Error> {
    match value.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok((id.to_owned(), secret.to_owned()))
        }
        _ => Err(Error::BadClient),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Colour codes only when stderr is a terminal, never into a log file.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let cli = Cli::parse();
    let defaults = StandinConfig::default();
    let config = StandinConfig {
        rate_per_channel_per_sec: cli.rate_per_sec,
        burst: cli.burst,
        print_messages: !cli.quiet,
        accepted_tokens: (!cli.tokens.is_empty()).then_some(cli.tokens),
        team_id: cli.team_id,
        team_name: cli.team_name,
        oauth_clients: if cli.oauth_clients.is_empty() {
            defaults.oauth_clients
        } else {
            cli.oauth_clients
        },
        token_rotation: cli.token_rotation,
    };
    let standin = match Standin::start_on(cli.addr, config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("slack-standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        slack_api_url = %standin.api_url(),
        authorize_url = %standin.authorize_url(),
        "slack stand-in listening"
    );

    standin_server::shutdown_signal().await;
    tracing::info!("shutting down");
    standin.shutdown().await;
    ExitCode::SUCCESS
}
