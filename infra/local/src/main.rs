//! `ingestlayer-local dev`: the whole system on this machine (what `make dev` runs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ingestlayer::config::{
    ConnectConfig, DeliveryConfig, IngestConfig, PipelineConfig, TokenConfig,
};
use ingestlayer::handlers::connect::ConnectDeps;
use ingestlayer::handlers::delivery::DeliveryDeps;
use ingestlayer::handlers::ingest::IngestDeps;
use ingestlayer::handlers::pipeline::PipelineDeps;
use ingestlayer::keys::{generate_key, ApiKeys};
use ingestlayer_local::resources::Resources;
use ingestlayer_local::runner::{pump_delivery, pump_pipeline, serve_ingest, QueueFeed};
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
        /// The example pipeline's channel.
        #[arg(long, default_value = "#alerts")]
        channel: String,
        /// The AWS emulator (moto server).
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint: String,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
    });
    tracing_subscriber::fmt()
        .compact()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let Command::Dev {
        port,
        standin_port,
        prefix,
        channel,
        endpoint,
    } = Cli::parse().command;
    let sdk = emulator_sdk(&endpoint).await;

    let real_slack = match (
        std::env::var("SLACK_BOT_TOKEN"),
        std::env::var("SLACK_API_URL"),
    ) {
        (Ok(t), Ok(u)) if !t.is_empty() && !u.is_empty() => Some((SecretString::from(t), u)),
        _ => None,
    };
    let (token, api_url, standin) = match real_slack {
        Some((t, u)) => (t, u, None),
        None => {
            let s = Standin::start_on(
                SocketAddr::from(([127, 0, 0, 1], standin_port)),
                StandinConfig {
                    print_messages: true,
                    ..StandinConfig::default()
                },
            )
            .await?;
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
    let res = Resources::create(&sdk, &prefix, token.expose_secret(), &app_secret).await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    seed::put_json(
        &dynamo,
        &res.pipelines_table,
        &seed::example_pipeline(&channel),
    )
    .await?;
    for e in seed::example_entities() {
        seed::put_json(&dynamo, &res.entities_table, &e).await?;
    }
    for p in seed::webhook_pipelines() {
        seed::put_json(&dynamo, &res.pipelines_table, &p).await?;
    }
    let webhook_lines = seed_webhook_sources(&sdk, &res, port).await?;
    let (api_key, generated) = match std::env::var("INGESTLAYER_API_KEY") {
        Ok(k) if !k.is_empty() => (SecretString::from(k), false),
        _ => (generate_key(), true),
    };
    ApiKeys::new(dynamo.clone(), res.api_keys_table.clone())
        .create(&api_key, "local")
        .await?;

    let ingest = Arc::new(
        IngestDeps::load(
            &sdk,
            &IngestConfig {
                events_table: res.events_table.clone(),
                api_keys_table: res.api_keys_table.clone(),
                events_queue_url: res.events_queue_url.clone(),
                schemas_required: std::env::var("SCHEMAS_REQUIRED").is_ok_and(|v| v == "true"),
                event_ttl_days: 30,
                link_secret_arn: Some(res.link_secret_arn.clone()),
                webhook_secret_prefix: Some(res.webhook_secret_prefix.clone()),
            },
        )
        .await?,
    );
    let pipeline = PipelineDeps::load(
        &sdk,
        &PipelineConfig {
            pipelines_table: res.pipelines_table.clone(),
            entities_table: res.entities_table.clone(),
            slack_queue_url: res.slack_queue_url.clone(),
            cache_ttl: Duration::from_secs(5),
            public_api_url: Some(format!("http://127.0.0.1:{port}")),
            link_secret_arn: Some(res.link_secret_arn.clone()),
            link_ttl: ingestlayer::links::DEFAULT_TTL,
        },
    )
    .await?;
    let delivery = DeliveryDeps::load(
        &sdk,
        &DeliveryConfig {
            slack_queue_url: res.slack_queue_url.clone(),
            slack_dlq_url: res.slack_dlq_url.clone(),
            channels_table: res.channels_table.clone(),
            deliveries_table: res.deliveries_table.clone(),
            max_age: Duration::from_secs(24 * 3600),
            connections_table: Some(res.connections_table.clone()),
            slack_app_secret_arn: Some(res.slack_app_secret_arn.clone()),
            token_secret_prefix: res.token_secret_prefix.clone(),
            kms_key_id: Some(res.kms_key_id.clone()),
            slack_api_url: api_url.clone(),
            token: TokenConfig::Secret(res.slack_token_secret_arn.clone()),
            slack_timeout: Duration::from_secs(10),
        },
    )
    .await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let events_feed = QueueFeed {
        sqs: sqs.clone(),
        url: res.events_queue_url.clone(),
        wait_seconds: 1,
    };
    let slack_feed = QueueFeed {
        sqs,
        url: res.slack_queue_url.clone(),
        wait_seconds: 1,
    };

    let (admin_token, admin_generated) = match std::env::var("INGESTLAYER_ADMIN_TOKEN") {
        Ok(t) if t.len() >= 16 => (SecretString::from(t), false),
        _ => (generate_key(), true),
    };
    let authorize_base = match &standin {
        Some(s) => format!("http://{}", s.addr()),
        None => "https://slack.com".to_owned(),
    };
    let connect = Arc::new(
        ConnectDeps::load(
            &sdk,
            &ConnectConfig {
                slack_app_secret_arn: res.slack_app_secret_arn.clone(),
                connections_table: res.connections_table.clone(),
                channels_table: res.channels_table.clone(),
                pipelines_table: res.pipelines_table.clone(),
                public_api_url: Some(format!("http://127.0.0.1:{port}")),
                slack_api_url: api_url.clone(),
                slack_authorize_url: authorize_base,
                link_secret_arn: res.link_secret_arn.clone(),
                token_secret_prefix: res.token_secret_prefix.clone(),
                kms_key_id: res.kms_key_id.clone(),
                slack_token_secret_arn: Some(res.slack_token_secret_arn.clone()),
                default_token: Some(token.clone()),
                admin_token_secret_arn: None,
                admin_token: Some(admin_token.clone()),
                slack_queue_url: res.slack_queue_url.clone(),
                slack_dlq_url: res.slack_dlq_url.clone(),
            },
        )
        .await?,
    );

    let listener =
        ingestlayer_local::runner::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    tokio::spawn(async move {
        if let Err(e) = serve_ingest(listener, ingest, Some(connect)).await {
            tracing::error!(error = %e, "ingest server stopped");
        }
    });
    tokio::spawn(async move {
        loop {
            if let Err(e) = pump_pipeline(&events_feed, &pipeline).await {
                tracing::error!(error = %e, "pipeline consumer: receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            if let Err(e) = pump_delivery(&slack_feed, &delivery).await {
                tracing::error!(error = %e, "delivery consumer: receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });

    let admin_line = if admin_generated {
        format!(
            "{} — set INGESTLAYER_ADMIN_TOKEN to keep one",
            admin_token.expose_secret()
        )
    } else {
        "the one in INGESTLAYER_ADMIN_TOKEN".to_owned()
    };
    let slack_line = match &standin {
        Some(s) => format!("Slack stand-in at {} (messages print below)", s.api_url()),
        None => format!("posting to {api_url} with SLACK_BOT_TOKEN"),
    };
    let key_line = if generated {
        format!(
            "API key (created now; set INGESTLAYER_API_KEY to keep one): {}",
            api_key.expose_secret()
        )
    } else {
        "API key: the one in INGESTLAYER_API_KEY".to_owned()
    };
    println!(
        "\ningestlayer is running\n  ingest API  http://127.0.0.1:{port}\n  {slack_line}\n  {key_line}\n  connect     http://127.0.0.1:{port}/destinations (admin token: {admin_line})\n  pipeline    feature.used → filter.match feature in {{export, api, webhook}} → enrich.entity user → {channel}\n{webhook_lines}\nTry:\n  curl -sS http://127.0.0.1:{port}/v1/events -H \"Authorization: Bearer {}\" -H 'Content-Type: application/json' \\\n    -d '{{\"name\":\"feature.used\",\"data\":{{\"user_id\":\"u_42\",\"feature\":\"csv.export\",\"count\":1,\"plan\":\"free\"}}}}'\n",
        if generated { api_key.expose_secret().to_owned() } else { "$INGESTLAYER_API_KEY".to_owned() }
    );
    println!(
        "  make webhook ARGS=\"send --source stripe --file infra/examples/webhooks/stripe-invoice-payment-failed.json\"\n"
    );
    tokio::signal::ctrl_c().await?;
    if let Some(s) = standin {
        s.shutdown().await;
    }
    Ok(())
}

/// The three webhook doors of `make dev`, each with its secret from the environment or a
/// generated one; returns the lines that tell how to use them.
async fn seed_webhook_sources(
    sdk: &aws_config::SdkConfig,
    res: &Resources,
    port: u16,
) -> Result<String, String> {
    use ingestlayer::webhooks::{generate_secret, put_source, Provider, SourceConfig};
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
        let (secret, note) = match std::env::var(var) {
            Ok(s) if !s.trim().is_empty() => (s, format!("the one in {var}")),
            _ => {
                let s = generate_secret(provider);
                let note = format!("{s} (set {var} to keep one)");
                (s, note)
            }
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
