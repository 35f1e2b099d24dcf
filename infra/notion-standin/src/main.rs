//! `notion-standin`: the Notion API stand-in for the local stack (`make dev`). Set
//! `NOTION_API_URL` to the URL it logs at start-up, and use the token, database ID and data
//! source ID it logs with it.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use notion_standin::{Standin, StandinConfig, DEFAULT_TOKEN};
use tracing_subscriber::EnvFilter;

/// A local Notion API (version 2025-09-03: databases with data sources) that behaves like
/// Notion: size limits, validation errors, 3 requests/s with 429 + Retry-After. Created pages
/// are printed on stdout; logs go to stderr.
#[derive(Debug, Parser)]
#[command(name = "notion-standin", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "NOTION_STANDIN_ADDR", default_value = "127.0.0.1:3004")]
    addr: SocketAddr,
    /// Average requests per second per integration (Notion: 3). 0 disables the limit.
    #[arg(long, env = "NOTION_STANDIN_RATE_PER_SEC", default_value_t = 3.0)]
    rate_per_sec: f64,
    /// Requests an integration may make back to back before the average applies.
    #[arg(long, env = "NOTION_STANDIN_BURST", default_value_t = 10)]
    burst: u32,
    /// Accept this integration token (repeatable). Without it, ntn_standin_token.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// Accept pages without their title property, as Notion does.
    #[arg(long)]
    allow_untitled: bool,
    /// Do not print created pages.
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
    let default_token = cli.tokens.is_empty();
    let config = StandinConfig {
        tokens: if default_token {
            vec![DEFAULT_TOKEN.to_owned()]
        } else {
            cli.tokens
        },
        rate_per_sec: cli.rate_per_sec,
        burst: cli.burst,
        require_title: !cli.allow_untitled,
        print_pages: !cli.quiet,
    };
    let standin = match Standin::start_on(cli.addr, config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("notion-standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let events = match standin.create_events_database() {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("notion-standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The default token is a well-known development value, so it is shown; tokens given on
    // the command line are the caller's and are not.
    tracing::info!(
        notion_api_url = %standin.api_url(),
        database_id = %events.database_id,
        data_source_id = %events.data_source_id,
        token = if default_token { DEFAULT_TOKEN } else { "(as given)" },
        "notion stand-in listening"
    );

    standin_server::shutdown_signal().await;
    tracing::info!("shutting down");
    standin.shutdown().await;
    ExitCode::SUCCESS
}
