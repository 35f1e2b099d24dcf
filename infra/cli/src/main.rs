//! `ingestlayer`: the operator's command line. Wiring only: parse the command line, find
//! the stack, call the command in the library half of this crate, print its error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ingestlayer::ingress::webhooks::sources::Provider;
use ingestlayer_cli::dlq::{self, Filter, Queue};
use ingestlayer_cli::error::CliError;
use ingestlayer_cli::progress::Progress;
use ingestlayer_cli::rows::EntityName;
use ingestlayer_cli::stack::{Stack, Target};
use ingestlayer_cli::{
    catalog, entities, events, explain, keys, mutes, pipeline_table, pipeline_test, pipelines,
    progress, status, warehouse, webhooks,
};

#[derive(Parser)]
#[command(
    name = "ingestlayer",
    version,
    about = "Operate an ingestlayer stack: pipelines as code, status, explain, DLQs, keys, webhooks"
)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct TargetArgs {
    /// The deployed CloudFormation stack (default: INGESTLAYER_STACK).
    #[arg(long, global = true)]
    stack: Option<String>,
    /// The stack's region (default: the AWS configuration's).
    #[arg(long, global = true)]
    region: Option<String>,
    /// The local stack of `make dev` (implied when AWS_ENDPOINT_URL is set).
    #[arg(long, global = true)]
    local: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Pipelines as files: validate, diff, apply, list, export.
    #[command(subcommand)]
    Pipelines(PipelinesCommand),
    /// Why an event posted (or not): its journey from ingest through every pipeline that
    /// listened to each Slack delivery, as a timeline (--json: the same record).
    Explain {
        /// The event's id, as the API answered it.
        id: String,
    },
    /// The queues (depth, oldest message), paused channels and workspaces with their
    /// fix, and each channel's last error.
    Status,
    /// The dead-letter queues: what is parked and why; redrive after a fix.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// API keys per source: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Webhook sources: add, rotate, list, send.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Destination secrets pipelines name (a Discord webhook URL, a Telegram bot token, a
    /// Notion token, a webhook signing secret): set one, kept in Secrets Manager.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// The entities enrich.entity attaches (user → account, plan, owner): import, get.
    #[command(subcommand)]
    Entities(EntitiesCommand),
    /// Send an event through the stack's API; read a stored event.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Mutes set with Slack's Mute button: list those in force, remove one.
    #[command(subcommand)]
    Mutes(MutesCommand),
    /// The Postgres every routed event lands in: connect, migrate, status, backfill.
    #[command(subcommand)]
    Warehouse(WarehouseCommand),
}

#[derive(Subcommand)]
enum MutesCommand {
    /// The mutes in force: pipeline, key, who muted it, until when.
    List,
    /// Lift a pipeline's mute for a key now (says whether there was one).
    Remove {
        /// The pipeline's id.
        pipeline: String,
        /// The muted key's value, as `mutes list` shows it.
        key: String,
    },
}

#[derive(Subcommand)]
enum EntitiesCommand {
    /// Import a CSV (header row) or JSON Lines file; idempotent, rejected rows named by line.
    Import {
        /// FILE.csv or FILE.jsonl
        file: PathBuf,
        /// The entity type, as enrich.entity steps name it: items are `<entity>#<id>`.
        #[arg(long)]
        entity: String,
        /// The column (CSV) or field (JSON Lines) that holds the id.
        #[arg(long, default_value = "id")]
        key: String,
    },
    /// One entity, e.g. `entities get user u_42`.
    Get { entity: String, key: String },
}

#[derive(Subcommand)]
enum WarehouseCommand {
    /// Check a connection string and put it in the stack's warehouse secret.
    Connect {
        /// postgres://user:password@host:5432/db (TLS is verified; ?sslmode=disable turns it off)
        #[arg(long)]
        url: String,
        /// A PEM file of the CA that signed the database's certificate (RDS: Amazon's RDS CA bundle).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Bring the schema to this version's migrations.
    Migrate(DatabaseArg),
    /// Lag (the oldest unwritten event), parked events, rows per day, schema version.
    Status(DatabaseArg),
    /// Write the stored events received within --since that the warehouse lacks.
    Backfill {
        /// How far back: 7d, 36h… (the events table keeps events EventTtlDays).
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Args)]
struct DatabaseArg {
    /// The database (default: the stack's warehouse secret).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// POST one event to the stack's API (ApiUrl), as any client would.
    Send {
        /// The event's name, e.g. feature.used.
        name: String,
        /// The event's data: a JSON object, or @FILE.
        #[arg(long, default_value = "{}")]
        data: String,
        /// Your own event id (a duplicate within 24 h is answered with the original).
        #[arg(long)]
        id: Option<String>,
        /// The API key (default: INGESTLAYER_API_KEY).
        #[arg(long, env = "INGESTLAYER_API_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// A stored event, whole, from the events table.
    Get { id: String },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Parked messages with their reasons (both DLQs unless --queue names one).
    List {
        #[arg(long)]
        queue: Option<Queue>,
    },
    /// Lift the matching pauses and move the parked messages back, in each channel's order.
    Redrive {
        /// slack (the default) or events.
        #[arg(long, default_value = "slack")]
        queue: Queue,
        /// Only this channel, e.g. '#alerts' (Slack DLQ).
        #[arg(long)]
        channel: Option<String>,
        /// Only this workspace: team id, or `default` (Slack DLQ).
        #[arg(long)]
        team: Option<String>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Store (or replace) the secret NAME; its value from --value, or standard input.
    Set {
        /// The name a pipeline's destination gives in `secret:`.
        name: String,
        /// The value (else read from standard input, out of the shell's history).
        #[arg(long)]
        value: Option<String>,
        /// Generate a webhook signing secret (whsec_…), store it and print it once.
        #[arg(long)]
        generate_webhook_secret: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
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

#[derive(Subcommand)]
enum WebhooksCommand {
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
    /// Sign a payload file as the source's provider would and POST it to the stack's API.
    Send {
        #[arg(long)]
        source: String,
        /// The payload (e.g. infra/examples/webhooks/stripe-invoice-payment-failed.json).
        #[arg(long)]
        file: PathBuf,
        /// The API's base URL (default: the stack's ApiUrl output).
        #[arg(long)]
        url: Option<String>,
        /// GitHub's X-GitHub-Event.
        #[arg(long, default_value = "workflow_run")]
        github_event: String,
    },
}

#[derive(Subcommand)]
enum PipelinesCommand {
    /// Check pipeline files (YAML) with the pipeline function's own parser; no stack needed.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// What `apply` would change, as a diff per pipeline.
    Diff {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also disable stored pipelines that are in no file.
        #[arg(long)]
        prune: bool,
        /// Save the plan, for `apply --plan`: it writes exactly this, or refuses a pipeline
        /// someone changed since.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create, update (and with --prune disable) pipelines so the table matches the files.
    Apply {
        #[arg(required_unless_present = "plan", conflicts_with = "plan")]
        paths: Vec<PathBuf>,
        #[arg(long)]
        prune: bool,
        /// A plan saved by `diff --out`.
        #[arg(long)]
        plan: Option<PathBuf>,
    },
    /// Run a pipeline file against the stack's entities without posting: the filter's
    /// verdict and deciding part, enrichment hits and misses, the rendered message.
    Test {
        file: PathBuf,
        /// The event: a `POST /v1/events` body, or a stored event (`events get --json`).
        #[arg(long, required_unless_present = "replay", conflicts_with = "replay")]
        event: Option<PathBuf>,
        /// The source the event is taken as coming from (`$source`).
        #[arg(long, default_value = "cli-test")]
        source: String,
        /// Post the message once to its channel, marked as a test.
        #[arg(long, requires = "event")]
        send: bool,
        /// Instead: run over the stored events of this window (`24h`, `7d`, `90m`) and count
        /// what would have posted, per channel and hour.
        #[arg(long, value_parser = humantime::parse_duration)]
        replay: Option<std::time::Duration>,
    },
    /// Copy a catalog entry (catalog/NAME) into a pipeline file with your channel; prints
    /// the command that applies it.
    New {
        /// The entry's folder, e.g. catalog/failed-logins.
        #[arg(long)]
        from: PathBuf,
        /// '#x' replaces the main channel (the first destination's); '#old=#new' renames
        /// another. Channels not named keep the catalog's defaults.
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// Where the file goes, as <entry name>.yaml.
        #[arg(long, default_value = "pipelines")]
        dir: PathBuf,
        /// Replace the file when it exists.
        #[arg(long)]
        force: bool,
    },
    /// The stored pipelines: id, state, version, events, channels.
    List,
    /// Write every stored pipeline as DIR/<id>.yaml.
    Export { dir: PathBuf },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match run(cli, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.flush().ok();
            eprintln!("ingestlayer: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn stack(t: TargetArgs) -> Result<Stack, CliError> {
    let env = |k: &str| std::env::var(k).ok();
    Stack::resolve(Target::choose(t.stack, t.region, t.local, &env)?).await
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let json = cli.json;
    match cli.command {
        Command::Pipelines(PipelinesCommand::Validate { paths }) => {
            pipelines::validate(&paths, out, json)
        }
        Command::Pipelines(PipelinesCommand::Diff {
            paths,
            prune,
            out: plan_out,
        }) => {
            let s = stack(cli.target).await?;
            let changes = pipelines::plan(&s, &paths, prune).await?;
            pipelines::print_plan(&changes, out, json);
            if let Some(p) = plan_out {
                pipelines::save_plan(&p, &changes)?;
                if !json {
                    writeln!(
                        out,
                        "plan saved to {}: `ingestlayer pipelines apply --plan {}`",
                        p.display(),
                        p.display()
                    )
                    .ok();
                }
            }
            Ok(())
        }
        Command::Pipelines(PipelinesCommand::Apply { paths, prune, plan }) => {
            let s = stack(cli.target).await?;
            let changes = match plan {
                Some(p) => pipelines::read_plan(&p)?,
                None => pipelines::plan(&s, &paths, prune).await?,
            };
            let applied = pipeline_table::apply(&s, &changes, &now()).await?;
            pipelines::report_applied(&applied, out, json)
        }
        Command::Pipelines(PipelinesCommand::Test {
            file,
            event,
            source,
            send,
            replay,
        }) => {
            let files = pipelines::load(std::slice::from_ref(&file))?;
            let Some(file) = files.first() else {
                return Err(CliError::Usage("no pipeline in the file".into()));
            };
            let s = stack(cli.target).await?;
            if let Some(window) = replay {
                let progress = Progress::new("replayed", 0, "events");
                let r = pipeline_test::replay(&s, file, window, &progress).await?;
                if json {
                    writeln!(out, "{}", serde_json::to_string(&r).unwrap_or_default()).ok();
                } else {
                    pipeline_test::print_replay(&r, out);
                }
                return Ok(());
            }
            let Some(event) = event else {
                return Err(CliError::Usage(
                    "give --event EVENT.json or --replay 24h".into(),
                ));
            };
            let envelope = pipeline_test::read_event(&event, &source)?;
            let report = pipeline_test::test_event(&s, file, &envelope).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&report).unwrap_or_default()
                )
                .ok();
            } else {
                pipeline_test::print_report(&report, out);
            }
            if send {
                if report.messages.is_empty() {
                    return Err(CliError::Usage(
                        "--send: the pipeline would not post this event, so nothing was sent"
                            .into(),
                    ));
                }
                let channels = pipeline_test::send(&s, &report).await?;
                if !json {
                    writeln!(
                        out,
                        "sent once, marked as a test, to {}",
                        channels.join(", ")
                    )
                    .ok();
                }
            }
            Ok(())
        }
        Command::Pipelines(PipelinesCommand::New {
            from,
            channels,
            dir,
            force,
        }) => {
            let channels = channels
                .iter()
                .map(|c| catalog::ChannelArg::parse(c))
                .collect::<Result<Vec<_>, _>>()?;
            let created = catalog::new_from(&from, &channels, &dir, force)?;
            catalog::print_created(&created, &dir, out, json);
            Ok(())
        }
        Command::Pipelines(PipelinesCommand::List) => {
            let s = stack(cli.target).await?;
            pipelines::list(&s, out, json).await
        }
        Command::Pipelines(PipelinesCommand::Export { dir }) => {
            let s = stack(cli.target).await?;
            pipelines::export(&s, &dir, out).await
        }
        Command::Explain { id } => {
            explain::cmd_explain(&stack(cli.target).await?, &id, out, json).await
        }
        Command::Status => status::cmd_status(&stack(cli.target).await?, out, json).await,
        Command::Dlq(DlqCommand::List { queue }) => {
            dlq::cmd_list(&stack(cli.target).await?, queue, out, json).await
        }
        Command::Dlq(DlqCommand::Redrive {
            queue,
            channel,
            team,
        }) => {
            let filter = Filter { channel, team };
            dlq::cmd_redrive(&stack(cli.target).await?, queue, &filter, out, json).await
        }
        Command::Keys(KeysCommand::Create { source }) => {
            keys::create(&stack(cli.target).await?, &source, out).await
        }
        Command::Keys(KeysCommand::List) => keys::list(&stack(cli.target).await?, out, json).await,
        Command::Keys(KeysCommand::Revoke { id }) => {
            keys::revoke(&stack(cli.target).await?, &id, out).await
        }
        Command::Webhooks(WebhooksCommand::Add {
            source,
            provider,
            secret,
        }) => webhooks::add(&stack(cli.target).await?, &source, provider, secret, out).await,
        Command::Webhooks(WebhooksCommand::Rotate {
            source,
            secret,
            drop_previous,
        }) => {
            let s = stack(cli.target).await?;
            webhooks::rotate(&s, &source, secret, drop_previous, out).await
        }
        Command::Secrets(SecretsCommand::Set {
            name,
            value,
            generate_webhook_secret,
        }) => {
            let s = stack(cli.target).await?;
            ingestlayer_cli::secrets::set(&s, &name, value, generate_webhook_secret, out).await
        }
        Command::Webhooks(WebhooksCommand::List) => {
            webhooks::list(&stack(cli.target).await?, out, json).await
        }
        Command::Webhooks(WebhooksCommand::Send {
            source,
            file,
            url,
            github_event,
        }) => {
            let s = stack(cli.target).await?;
            webhooks::send(&s, &source, &file, url, &github_event, out).await
        }
        Command::Entities(EntitiesCommand::Import { file, entity, key }) => {
            let entity = EntityName::parse(&entity)?;
            let s = stack(cli.target).await?;
            let label = format!("import {}", file.display());
            let report = entities::import(&s, &file, &entity, &key, |n| {
                progress::Progress::new(&label, n, "rows")
            })
            .await?;
            entities::print_report(&report, out, json);
            entities::verdict(&report)
        }
        Command::Entities(EntitiesCommand::Get { entity, key }) => {
            let entity = EntityName::parse(&entity)?;
            let s = stack(cli.target).await?;
            entities::get(&s, &entity, &key, out, json).await
        }
        Command::Events(EventsCommand::Send {
            name,
            data,
            id,
            key,
        }) => {
            let key = events::api_key(key)?;
            let body = events::body(&name, events::read_data(&data)?, id.as_deref());
            let s = stack(cli.target).await?;
            let answer = events::send(&s, &body, &key).await?;
            events::print_sent(&answer, out, json);
            Ok(())
        }
        Command::Mutes(MutesCommand::List) => {
            let s = stack(cli.target).await?;
            let now_ms =
                (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            mutes::list(&s, now_ms, out, json).await
        }
        Command::Mutes(MutesCommand::Remove { pipeline, key }) => {
            mutes::remove(&stack(cli.target).await?, &pipeline, &key, out, json).await
        }
        Command::Warehouse(WarehouseCommand::Connect { url, ca }) => {
            let ca_pem = match ca {
                Some(path) => {
                    Some(
                        std::fs::read_to_string(&path).map_err(|source| CliError::Io {
                            what: "reading the CA file",
                            path,
                            source,
                        })?,
                    )
                }
                None => None,
            };
            warehouse::connect(&stack(cli.target).await?, &url, ca_pem, out, json).await
        }
        Command::Warehouse(WarehouseCommand::Migrate(db)) => {
            warehouse::migrate(
                &stack(cli.target).await?,
                db.database_url.as_deref(),
                out,
                json,
            )
            .await
        }
        Command::Warehouse(WarehouseCommand::Status(db)) => {
            warehouse::status(
                &stack(cli.target).await?,
                db.database_url.as_deref(),
                out,
                json,
            )
            .await
        }
        Command::Warehouse(WarehouseCommand::Backfill { since, database }) => {
            let s = stack(cli.target).await?;
            let progress = Progress::new("read", warehouse::stored_count(&s).await?, "events");
            let done = warehouse::backfill(
                &s,
                database.database_url.as_deref(),
                since,
                time::OffsetDateTime::now_utc(),
                &progress,
            )
            .await?;
            warehouse::print_backfilled(&done, out, json);
            Ok(())
        }
        Command::Events(EventsCommand::Get { id }) => {
            let s = stack(cli.target).await?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            events::get(&s, &id, now, out, json).await
        }
    }
}
