//! `ingestlayer-dlq`: see what is parked in the Slack DLQ and why, see paused channels and
//! workspaces, and redrive after a fix. Works against AWS (the stack's outputs give the
//! names) and against the local emulator (`AWS_ENDPOINT_URL`, `make dlq`).

use clap::{Parser, Subcommand};
use ingestlayer::delivery::channel_state::Channels;
use ingestlayer_local::dlq::{self, Filter};

#[derive(Parser)]
#[command(
    name = "ingestlayer-dlq",
    about = "Parked Slack messages: list them with their reasons, redrive them after a fix"
)]
struct Cli {
    /// The Slack FIFO DLQ's URL (stack output SlackDLQUrl).
    #[arg(long, env = "SLACK_DLQ_URL", required_unless_present = "prefix")]
    dlq_url: Option<String>,
    /// The Slack FIFO queue's URL (stack output SlackQueueUrl).
    #[arg(long, env = "SLACK_QUEUE_URL", required_unless_present = "prefix")]
    queue_url: Option<String>,
    /// The channel state table (stack output ChannelsTableName).
    #[arg(long, env = "CHANNELS_TABLE", required_unless_present = "prefix")]
    channels_table: Option<String>,
    /// Instead of the three above: a local stack's name prefix (`make dev` uses ingestlayer-dev).
    #[arg(long)]
    prefix: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parked messages with their reasons, in each channel's order.
    List,
    /// Paused channels and workspaces, with what to do.
    Paused,
    /// Lift the pause and move the parked messages back, in order (all, or one channel/workspace).
    Redrive {
        /// Only this channel, e.g. '#alerts'.
        #[arg(long)]
        channel: Option<String>,
        /// Only this workspace (team id, or `default`).
        #[arg(long)]
        team: Option<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingestlayer-dlq: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url_of = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map(|o| o.queue_url.unwrap_or_default())
                .map_err(|e| {
                    use aws_sdk_sqs::error::ProvideErrorMetadata;
                    format!(
                        "queue {name}: {} (is the stack running?)",
                        e.message().unwrap_or("not reachable")
                    )
                })
        }
    };
    let (dlq_url, queue_url, table) =
        match (&cli.prefix, cli.dlq_url, cli.queue_url, cli.channels_table) {
            (_, Some(d), Some(q), Some(t)) => (d, q, t),
            (Some(p), ..) => (
                url_of(format!("{p}-slack-dlq.fifo")).await?,
                url_of(format!("{p}-slack.fifo")).await?,
                format!("{p}-channels"),
            ),
            _ => {
                return Err("give --dlq-url, --queue-url and --channels-table, or --prefix".into())
            }
        };
    let channels = Channels {
        client: aws_sdk_dynamodb::Client::new(&sdk),
        table,
    };
    match cli.command {
        Command::List => {
            let parked = dlq::list(&sqs, &dlq_url).await?;
            if parked.is_empty() {
                println!("nothing parked");
            }
            for p in &parked {
                println!(
                    "{}  event {}  pipeline {}  {}",
                    p.group, p.event_id, p.pipeline_id, p.reason
                );
            }
        }
        Command::Paused => {
            let paused = channels.paused().await?;
            if paused.is_empty() {
                println!("nothing paused");
            }
            for p in paused {
                println!(
                    "{}  since {}  {}: {}",
                    p.name(),
                    p.since,
                    p.pause.error,
                    p.pause.hint
                );
            }
        }
        Command::Redrive { channel, team } => {
            let r = dlq::redrive(
                &sqs,
                &channels,
                &dlq_url,
                &queue_url,
                &Filter { channel, team },
            )
            .await?;
            for pk in &r.resumed {
                println!(
                    "resumed {}",
                    ingestlayer::delivery::channel_state::display_name(pk)
                );
            }
            if r.move_task {
                println!("started a message move task from the DLQ to the queue");
            } else {
                println!("moved {} message(s) back to the queue", r.moved);
            }
        }
    }
    Ok(())
}
