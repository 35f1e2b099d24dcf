//! `ingestlayer-local dev`: the whole system on this machine (what `make dev` runs): the
//! four functions' own binaries, each as its own process behind a local Lambda Runtime
//! API, with the environment template.yaml gives them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ingestlayer::ingress::api_keys::{generate_key, ApiKeys};
use ingestlayer_local::error::{Error, Result};
use ingestlayer_local::functions::{
    Functions, Local, DESTINATION_DELIVERY, PIPELINE, SLACK_CONNECT, WAREHOUSE_BATCHING,
};
use ingestlayer_local::remember::{Origin, Remembered};
use ingestlayer_local::resources::{LocalUrls, Resources};
use ingestlayer_local::runner::{
    pump_function_batched, serve_functions, Batching, DeliveryFeeds, QueueFeed,
};
use ingestlayer_local::{emulator_sdk, seed};
use secrecy::{ExposeSecret, SecretString};
use slack_standin::{Standin, StandinConfig};

#[derive(Parser)]
#[command(
    name = "ingestlayer-local",
    about = "The ingestlayer system on this machine, against a local AWS emulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the resources, seed the example, serve ingest and run the queue consumers.
    Dev {
        /// Port of the ingest API on 127.0.0.1.
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        /// Port of the local Slack stand-in (used unless SLACK_BOT_TOKEN and SLACK_API_URL are set).
        #[arg(long, env = "SLACK_STANDIN_PORT", default_value_t = 3001)]
        standin_port: u16,
        /// Prefix of every resource name in the emulator.
        #[arg(long, default_value = "ingestlayer-dev")]
        prefix: String,
        /// The pipeline files applied at start (edits there survive a restart).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines"))]
        pipelines: std::path::PathBuf,
        /// Where generated keys and secrets are remembered across restarts.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ingestlayer/dev.env"))]
        remember: std::path::PathBuf,
        /// The AWS emulator (moto server).
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match dev().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingestlayer-local: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dev() -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
    });
    // Logs go to stdout; colour codes only when that is a terminal, never into a log file.
    tracing_subscriber::fmt()
        .compact()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let env_admin = match std::env::var("INGESTLAYER_ADMIN_TOKEN") {
        Ok(t) if !t.is_empty() && t.chars().count() < MIN_ADMIN_TOKEN_CHARS => refuse(&format!(
            "INGESTLAYER_ADMIN_TOKEN has {} characters; the destinations page's admin token needs at \
             least {MIN_ADMIN_TOKEN_CHARS} so it cannot be guessed. Set a longer one, or unset it to \
             have one generated.",
            t.chars().count()
        )),
        other => other.ok(),
    };
    let Command::Dev {
        port,
        standin_port,
        prefix,
        pipelines,
        remember,
        endpoint,
    } = Cli::parse().command;
    let mut remembered = Remembered::load(&remember);
    let sdk = emulator_sdk(&endpoint).await;

    let real_slack = match (
        std::env::var("SLACK_BOT_TOKEN"),
        std::env::var("SLACK_API_URL"),
    ) {
        (Ok(t), Ok(u)) if !t.is_empty() && !u.is_empty() => Some((SecretString::from(t), u)),
        _ => None,
    };
    let (token, slack_api_url, standin) = match real_slack {
        Some((t, u)) => (t, u, None),
        None => {
            let s = Standin::start_on(
                SocketAddr::from(([127, 0, 0, 1], standin_port)),
                StandinConfig {
                    print_messages: true,
                    ..StandinConfig::default()
                },
            )
            .await
            .unwrap_or_else(|e| match e {
                slack_standin::Error::Listen { source, .. } => {
                    refuse(&port_refusal(standin_port, "SLACK_STANDIN_PORT", &source))
                }
                other => refuse(&other.to_string()),
            });
            (
                SecretString::from("xoxb-local-standin".to_owned()),
                s.api_url(),
                Some(s),
            )
        }
    };

    let app_secret = serde_json::json!({
        "client_id": std::env::var("SLACK_CLIENT_ID").unwrap_or_else(|_| "standin-client-id".into()),
        "client_secret": std::env::var("SLACK_CLIENT_SECRET").unwrap_or_else(|_| "standin-client-secret".into()),
        "signing_secret": std::env::var("SLACK_SIGNING_SECRET").unwrap_or_else(|_| "standin-signing-secret".into()),
    })
    .to_string();
    let mut res = Resources::create(&sdk, &prefix, token.expose_secret(), &app_secret).await?;
    // infra/dev.sh starts a local Postgres and sets DATABASE_URL (or keeps the one given).
    let warehouse_line = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let target = ingestlayer::warehouse::postgres::Target::from_secret(&url)?;
            res.connect_warehouse(&sdk, &url).await?;
            format!(
                "  warehouse   every routed event into Postgres at {} (DATABASE_URL); ingestlayer --local warehouse status\n",
                target.describe
            )
        }
        _ => "  warehouse   off (no DATABASE_URL)\n".to_owned(),
    };
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    for e in seed::example_entities() {
        seed::put_json(&dynamo, &res.entities_table, &e).await?;
    }
    let webhook_lines = seed_webhook_sources(&sdk, &res, port, &mut remembered).await?;
    let (api_key, key_origin) = remembered.value(
        "INGESTLAYER_API_KEY",
        std::env::var("INGESTLAYER_API_KEY").ok(),
        || generate_key().expose_secret().to_owned(),
    )?;
    let api_key = SecretString::from(api_key);
    ApiKeys::new(dynamo.clone(), res.api_keys_table.clone())
        .create(&api_key, "local")
        .await?;
    let (admin_token, admin_origin) =
        remembered.value("INGESTLAYER_ADMIN_TOKEN", env_admin, || {
            generate_key().expose_secret().to_owned()
        })?;
    let admin_token = SecretString::from(admin_token);
    res.put_admin_token(&sdk, admin_token.expose_secret())
        .await?;
    // Discord, Telegram and Notion stand-ins, a signature-checking webhook receiver, SES
    // on the emulator, and an example pipeline for each.
    let others = ingestlayer_local::destinations::Running::start(&sdk, &res)
        .await
        .unwrap_or_else(|e| refuse(&e.to_string()));
    for doc in &others.pipelines {
        ingestlayer_local::seed::put_json(&dynamo, &res.pipelines_table, doc).await?;
    }
    let authorize_base = match &standin {
        Some(s) => format!("http://{}", s.addr()),
        None => "https://slack.com".to_owned(),
    };
    let api_url = format!("http://127.0.0.1:{port}");
    let local = Local {
        res: res.clone(),
        endpoint: endpoint.clone(),
        urls: LocalUrls {
            api_url: api_url.clone(),
            slack_api_url: slack_api_url.clone(),
            slack_authorize_url: authorize_base,
            discord_api_url: Some(others.discord.api_url()),
            telegram_api_url: Some(others.telegram.api_url()),
            notion_api_url: Some(others.notion.api_url()),
        },
        echo_output: true,
    };
    // On top of template.yaml's environment: on AWS the connect function takes its public
    // URL from the request's Host over https, and the local API is plain http, so the OAuth
    // redirect URI must be told; pipeline edits apply within 5 s instead of 30.
    let extra = BTreeMap::from([
        (
            SLACK_CONNECT.logical_id,
            vec![("PUBLIC_API_URL", api_url.clone())],
        ),
        (
            PIPELINE.logical_id,
            vec![("PIPELINE_CACHE_TTL_SECONDS", "5".to_owned())],
        ),
        // The local-development switch: the example webhook posts to a receiver on
        // 127.0.0.1, which the address guard refuses everywhere else.
        (
            DESTINATION_DELIVERY.logical_id,
            vec![("WEBHOOK_ALLOW_LOCAL", "true".to_owned())],
        ),
    ]);
    let outputs = res.register_stack(&sdk, &local.urls).await?;
    let stack = ingestlayer_cli::stack::Stack::from_outputs(
        ingestlayer_cli::stack::Target::Local {
            name: prefix.clone(),
            endpoint: endpoint.clone(),
        },
        sdk.clone(),
        outputs,
    );
    let pipeline_lines = apply_pipelines(&stack, &pipelines).await?;
    let functions = Functions::new(&local, &extra)?;
    functions.start().await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let events_feed = QueueFeed {
        sqs: sqs.clone(),
        url: res.events_queue_url.clone(),
        wait_seconds: 1,
    };
    let slack_feeds = DeliveryFeeds::new(&sqs, &res, 1);
    let destinations_feed = QueueFeed {
        sqs: sqs.clone(),
        url: res.destinations_queue_url.clone(),
        wait_seconds: 1,
    };
    if let Some(warehouse) = functions.warehouse.clone() {
        let feed = QueueFeed {
            sqs,
            url: res.warehouse_queue_url.clone(),
            wait_seconds: 1,
        };
        consume("warehouse", feed, warehouse, WAREHOUSE_BATCHING);
    }

    let listener = ingestlayer_local::runner::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap_or_else(|e| refuse(&port_refusal(port, "PORT", &e)));
    let (ingest, connect) = (functions.ingest.clone(), functions.connect.clone());
    tokio::spawn(async move {
        if let Err(e) = serve_functions(listener, ingest, connect).await {
            tracing::error!(error = %e, "HTTP API server stopped");
        }
    });
    consume(
        "pipeline",
        events_feed,
        functions.pipeline.clone(),
        Batching::default(),
    );
    // The stack's schedule ticks every minute; locally a timer does (HEARTBEAT_CHECK_SECONDS).
    let heartbeat_every = std::env::var("HEARTBEAT_CHECK_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(60);
    let ticked = functions.pipeline.clone();
    tokio::spawn(async move {
        // The first check one period after start, as the schedule's first tick comes.
        let period = Duration::from_secs(heartbeat_every);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            every.tick().await;
            let tick = ingestlayer::routing::scheduled_event(time::OffsetDateTime::now_utc());
            match ticked.invoke(&tick).await {
                Ok(answer) => tracing::debug!(%answer, "heartbeat check"),
                Err(e) => tracing::error!(error = %e, "heartbeat check: invocation failed"),
            }
        }
    });
    // slack-delivery's two event sources, each its own consumer as on AWS: a channel's
    // drain never waits for another channel's batch, nor a batch for a drain.
    for feed in [slack_feeds.messages, slack_feeds.drains] {
        consume(
            "delivery",
            feed,
            functions.delivery.clone(),
            Batching::default(),
        );
    }
    consume(
        "destinations",
        destinations_feed,
        functions.destinations.clone(),
        Batching::default(),
    );

    let kept = |origin: Origin, var: &str| match origin {
        Origin::Environment => format!("from {var}"),
        Origin::Remembered => format!("remembered in {}", remembered.path().display()),
        Origin::Generated => format!(
            "generated now, remembered in {}",
            remembered.path().display()
        ),
    };
    let slack_line = match &standin {
        Some(s) => format!("Slack stand-in at {} (messages print below)", s.api_url()),
        None => format!("posting to {slack_api_url} with SLACK_BOT_TOKEN"),
    };
    println!(
        "\ningestlayer is running\n  ingest API  http://127.0.0.1:{port}\n  {slack_line}\n{}  API key     {} ({})\n  connect     http://127.0.0.1:{port}/destinations (admin token {}, {})\n  pipelines   from {}/ (edit, then `ingestlayer pipelines apply {}` or restart)\n{pipeline_lines}{webhook_lines}{warehouse_line}  heartbeats  checked every {heartbeat_every} s (HEARTBEAT_CHECK_SECONDS), as the stack's schedule does every minute\n  operate     ingestlayer --local status | explain EVENT_ID | pipelines list | dlq list (make cli installs it)\n  not kept    the emulator is in memory: entities you import and Slack connections are gone after a restart; pipelines/ and .ingestlayer/dev.env are re-applied\n\nTry:\n  curl -sS http://127.0.0.1:{port}/v1/events -H \"Authorization: Bearer {}\" -H 'Content-Type: application/json' \\\n    -d '{{\"name\":\"feature.used\",\"data\":{{\"user_id\":\"u_42\",\"feature\":\"csv.export\",\"count\":1,\"plan\":\"free\"}}}}'\n  then, with the id it answers: ingestlayer --local explain ID\n",
        others.lines,
        api_key.expose_secret(),
        kept(key_origin, "INGESTLAYER_API_KEY"),
        admin_token.expose_secret(),
        kept(admin_origin, "INGESTLAYER_ADMIN_TOKEN"),
        pipelines.display(),
        pipelines.display(),
        api_key.expose_secret(),
    );
    println!(
        "  make webhook ARGS=\"send --source stripe --file infra/examples/webhooks/stripe-invoice-payment-failed.json\"\n"
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(Error::io("waiting for Ctrl-C"))?;
    if let Some(s) = standin {
        s.shutdown().await;
    }
    others.shutdown().await;
    Ok(())
}

/// The shortest admin token `make dev` accepts (a deployment generates 40 characters).
const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Stops `make dev` with a message for the person running it.
fn refuse(message: &str) -> ! {
    eprintln!("ingestlayer-local: {message}");
    std::process::exit(2)
}

/// Why a local port could not be listened on, and the variable that moves it.
fn port_refusal(port: u16, variable: &str, e: &std::io::Error) -> String {
    format!(
        "cannot listen on 127.0.0.1:{port} ({e}); set {variable} to a free port, e.g. \
         {variable}={} make dev",
        port.wrapping_add(100).max(1024)
    )
}

/// The three webhook doors of `make dev`, each with its secret from the environment or a
/// generated one; returns the lines that tell how to use them.
async fn seed_webhook_sources(
    sdk: &aws_config::SdkConfig,
    res: &Resources,
    port: u16,
    remembered: &mut Remembered,
) -> Result<String> {
    use ingestlayer::ingress::webhooks::sources::{
        generate_secret, put_source, Provider, SourceConfig,
    };
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let doors = [
        (
            "demo",
            Provider::StandardWebhooks,
            "INGESTLAYER_WEBHOOK_SECRET",
            "Standard Webhooks: type user.signed_up → #signups",
        ),
        (
            "stripe",
            Provider::Stripe,
            "STRIPE_WEBHOOK_SECRET",
            "Stripe: invoice.payment_failed → #billing",
        ),
        (
            "github",
            Provider::Github,
            "GITHUB_WEBHOOK_SECRET",
            "GitHub: workflow_run failures → #deploys",
        ),
    ];
    let mut lines = String::from("  webhooks\n");
    for (source, provider, var, what) in doors {
        let (secret, origin) =
            remembered.value(var, std::env::var(var).ok(), || generate_secret(provider))?;
        let note = match origin {
            Origin::Environment => format!("the one in {var}"),
            Origin::Remembered => format!("{secret} (remembered)"),
            Origin::Generated => format!("{secret} (generated, remembered)"),
        };
        put_source(
            &sm,
            &res.webhook_secret_prefix,
            source,
            &SourceConfig {
                provider,
                secrets: vec![secret],
            },
            Some(&res.kms_key_id),
        )
        .await?;
        lines.push_str(&format!(
            "    POST http://127.0.0.1:{port}/v1/webhooks/{source}  {what}\n      secret {note}\n"
        ));
    }
    Ok(lines)
}

/// Applies the pipeline files at start, each on its own: a file that does not validate is
/// reported with its line and skipped, never keeping the others out. Returns the lines that
/// say what was applied.
async fn apply_pipelines(
    stack: &ingestlayer_cli::stack::Stack,
    dir: &std::path::Path,
) -> Result<String> {
    use ingestlayer_cli::pipeline_files::{expand, load_all};
    if !dir.is_dir() {
        return Err(Error::NoPipelinesFolder(dir.to_owned()));
    }
    let mut files = Vec::new();
    for path in expand(&[dir.to_owned()])? {
        match load_all(&[path]) {
            Ok(f) => files.extend(f),
            Err(e) => eprintln!("make dev: skipped a pipeline file:\n{e}"),
        }
    }
    let stored = ingestlayer_cli::pipeline_table::read_all(stack).await?;
    let changes = ingestlayer_cli::pipeline_table::plan(&files, &stored, false);
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    ingestlayer_cli::pipeline_table::apply(stack, &changes, &now).await?;
    let mut lines = String::new();
    for f in &files {
        let routes = ingestlayer::routing::pipelines::summary(&f.doc);
        lines.push_str(&format!(
            "    {:<28} {} → {}\n",
            f.id,
            routes.events.join(", "),
            routes.channels.join(", ")
        ));
    }
    Ok(lines)
}

/// One event source mapping: invokes `function` with batches from `feed` for as long as
/// `make dev` runs; a failed invocation is logged and the next tried a second later.
fn consume(
    name: &'static str,
    feed: QueueFeed,
    function: std::sync::Arc<ingestlayer_local::lambda_api::LambdaFunction>,
    batching: Batching,
) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = pump_function_batched(&feed, &function, batching).await {
                tracing::error!(error = %e, consumer = name, "invocation failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
}
