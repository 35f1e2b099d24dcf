//! `ingestlayer`: the operator's command line. Wiring only: parse the command line, find
//! the stack, call the command in the library half of this crate, print its error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ingestlayer_cli::error::CliError;
use ingestlayer_cli::rows::EntityName;
use ingestlayer_cli::stack::{Stack, Target};
use ingestlayer_cli::{entities, events, pipeline_table, pipelines, progress};

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
    /// The entities enrich.entity attaches (user → account, plan, owner): import, get.
    #[command(subcommand)]
    Entities(EntitiesCommand),
    /// Send an event through the stack's API; read a stored event.
    #[command(subcommand)]
    Events(EventsCommand),
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
        Command::Pipelines(PipelinesCommand::List) => {
            let s = stack(cli.target).await?;
            pipelines::list(&s, out, json).await
        }
        Command::Pipelines(PipelinesCommand::Export { dir }) => {
            let s = stack(cli.target).await?;
            pipelines::export(&s, &dir, out).await
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
        Command::Events(EventsCommand::Get { id }) => {
            let s = stack(cli.target).await?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            events::get(&s, &id, now, out, json).await
        }
    }
}
