//! `discord-standin`: Discord's Execute Webhook stand-in for the local stack (`make dev`).
//! Set `DISCORD_API_URL` to the URL it logs at start-up; the default webhook's URL is logged
//! with it.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use discord_standin::{RateLimit, Standin, StandinConfig};
use tracing_subscriber::EnvFilter;

/// A local Discord API for webhooks that behaves like Discord: embed limits, allowed_mentions,
/// per-webhook and global rate limits, Invalid Form Body errors. Accepted messages are printed
/// on stdout; logs go to stderr.
#[derive(Debug, Parser)]
#[command(name = "discord-standin", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "DISCORD_STANDIN_ADDR", default_value = "127.0.0.1:3002")]
    addr: SocketAddr,
    /// Requests per webhook per window (Discord: commonly 5 per 2 s). 0 disables the limit.
    #[arg(long, env = "DISCORD_STANDIN_WEBHOOK_LIMIT", default_value_t = 5)]
    webhook_limit: u32,
    /// The per-webhook window, in seconds.
    #[arg(
        long,
        env = "DISCORD_STANDIN_WEBHOOK_WINDOW_SECS",
        default_value_t = 2.0
    )]
    webhook_window_secs: f64,
    /// Requests per second over all webhooks (Discord: 50). 0 disables the limit.
    #[arg(long, env = "DISCORD_STANDIN_GLOBAL_LIMIT", default_value_t = 50)]
    global_limit: u32,
    /// Do not print accepted messages.
    #[arg(long)]
    quiet: bool,
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
    let window = if cli.webhook_window_secs.is_finite() && cli.webhook_window_secs > 0.0 {
        Duration::from_secs_f64(cli.webhook_window_secs.min(86_400.0))
    } else {
        eprintln!("discord-standin: --webhook-window-secs must be a positive number of seconds");
        return ExitCode::FAILURE;
    };
    let config = StandinConfig {
        webhook_rate_limit: (cli.webhook_limit > 0)
            .then(|| RateLimit::new(cli.webhook_limit, window)),
        global_rate_limit: (cli.global_limit > 0)
            .then(|| RateLimit::new(cli.global_limit, Duration::from_secs(1))),
        print_messages: !cli.quiet,
        ..StandinConfig::default()
    };
    let standin = match Standin::start_on(cli.addr, config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("discord-standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The default webhook's token is a fixed, public test value, so its URL is logged whole.
    let default_webhook_url = standin.default_webhook().map(|w| w.url).unwrap_or_default();
    tracing::info!(
        discord_api_url = %standin.api_url(),
        default_webhook_url = %default_webhook_url,
        "discord stand-in listening"
    );

    standin_server::shutdown_signal().await;
    tracing::info!("shutting down");
    standin.shutdown().await;
    ExitCode::SUCCESS
}
