//! `telegram-standin`: the Telegram Bot API stand-in for the local stack (`make dev`).
//! Set `TELEGRAM_API_URL` to the URL it logs at start-up.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use telegram_standin::{ChatKind, Standin, StandinConfig, DEFAULT_TOKEN};
use tracing_subscriber::EnvFilter;

/// The private chat and the group the binary creates, for a sender to write to at once.
const DEFAULT_PRIVATE_CHAT: i64 = 1001;
const DEFAULT_GROUP: i64 = -1002;

/// A local Telegram Bot API (sendMessage, getMe) that behaves like Telegram: HTML parse mode,
/// the 4096-character limit, flood limits with 429 + retry_after, Telegram's error
/// descriptions. Sent messages are printed on stdout; logs go to stderr.
#[derive(Debug, Parser)]
#[command(name = "telegram-standin", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "TELEGRAM_STANDIN_ADDR", default_value = "127.0.0.1:3003")]
    addr: SocketAddr,
    /// Do not print sent messages.
    #[arg(long)]
    quiet: bool,
    /// Register another bot token, <bot id>:<secret> (repeatable). The default token is
    /// always registered.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// Messages per second in one chat (Telegram: about 1). 0 disables the limit.
    #[arg(long, env = "TELEGRAM_STANDIN_PER_CHAT_PER_SEC", default_value_t = 1.0)]
    per_chat_per_sec: f64,
    /// Messages a chat may take back to back before the per-chat rate applies.
    #[arg(long, env = "TELEGRAM_STANDIN_PER_CHAT_BURST", default_value_t = 3)]
    per_chat_burst: u32,
    /// Messages per minute in one group (Telegram: 20). 0 disables the limit.
    #[arg(
        long,
        env = "TELEGRAM_STANDIN_PER_GROUP_PER_MINUTE",
        default_value_t = 20
    )]
    per_group_per_minute: u32,
    /// Messages per second across all chats (Telegram: about 30). 0 disables the limit.
    #[arg(long, env = "TELEGRAM_STANDIN_PER_BOT_PER_SEC", default_value_t = 30.0)]
    per_bot_per_sec: f64,
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
    let mut tokens = vec![DEFAULT_TOKEN.to_owned()];
    tokens.extend(cli.tokens);
    let config = StandinConfig {
        per_chat_per_sec: cli.per_chat_per_sec,
        per_chat_burst: cli.per_chat_burst,
        per_group_per_minute: cli.per_group_per_minute,
        per_bot_per_sec: cli.per_bot_per_sec,
        bot_tokens: tokens,
        print_messages: !cli.quiet,
        ..StandinConfig::default()
    };
    let started = async {
        let standin = Standin::start_on(cli.addr, config).await?;
        standin.add_chat(DEFAULT_PRIVATE_CHAT, ChatKind::Private)?;
        standin.add_chat(DEFAULT_GROUP, ChatKind::Group)?;
        Ok::<_, telegram_standin::Error>(standin)
    };
    let standin = match started.await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("telegram-standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The default token is a published test value; other tokens are never logged.
    tracing::info!(
        telegram_api_url = %standin.api_url(),
        default_token = DEFAULT_TOKEN,
        private_chat_id = DEFAULT_PRIVATE_CHAT,
        group_chat_id = DEFAULT_GROUP,
        "telegram stand-in listening"
    );

    standin_server::shutdown_signal().await;
    tracing::info!("shutting down");
    standin.shutdown().await;
    ExitCode::SUCCESS
}
