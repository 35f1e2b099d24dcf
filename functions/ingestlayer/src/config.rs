//! Typed configuration per function, read from the environment template.yaml sets (and
//! the local stack sets the same way). A missing variable fails at cold start, named.

use std::time::Duration;

use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Slack's Web API, unless `SLACK_API_URL` points elsewhere (the stand-in, in `make dev` and tests).
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// The ingest function.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub events_table: String,
    pub api_keys_table: String,
    pub events_queue_url: String,
    /// Refuse events whose name has no registered schema.
    pub schemas_required: bool,
    /// Stored events expire after this many days (DynamoDB TTL).
    pub event_ttl_days: u32,
    /// The event-link signing key's secret; without it `GET /v1/events/{id}` answers 404.
    pub link_secret_arn: Option<String>,
    /// Webhook sources are the secrets named `<prefix><source>`; without a prefix
    /// `POST /v1/webhooks/{source}` answers 404.
    pub webhook_secret_prefix: Option<String>,
}

impl IngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            events_table: required("EVENTS_TABLE")?,
            api_keys_table: required("API_KEYS_TABLE")?,
            events_queue_url: required("EVENTS_QUEUE_URL")?,
            schemas_required: parsed("SCHEMAS_REQUIRED", false)?,
            event_ttl_days: parsed("EVENT_TTL_DAYS", 30)?,
            link_secret_arn: optional("LINK_SIGNING_SECRET_ARN"),
            webhook_secret_prefix: optional("WEBHOOK_SECRET_PREFIX"),
        })
    }
}

/// The journey table (`JOURNEY_TABLE`) and how long its records stay (`EVENT_TTL_DAYS`, as
/// the events they are about): set for the pipeline and delivery functions; unset, no
/// journey is recorded.
#[derive(Debug, Clone)]
pub struct JourneyConfig {
    pub table: String,
    pub ttl_days: u32,
}

impl JourneyConfig {
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Ok(match optional("JOURNEY_TABLE") {
            Some(table) => Some(Self {
                table,
                ttl_days: parsed("EVENT_TTL_DAYS", 30)?,
            }),
            None => None,
        })
    }
}

/// The pipeline function.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub pipelines_table: String,
    pub entities_table: String,
    pub slack_queue_url: String,
    /// The destinations queue (`DESTINATIONS_QUEUE_URL`): messages for destinations beyond
    /// Slack. Without it, an event routed to one fails with that reason and is retried.
    pub destinations_queue_url: Option<String>,
    /// How long loaded pipelines are reused before the table is read again.
    pub cache_ttl: Duration,
    /// Signed links to stored events: the ingest API's public URL and the key's secret.
    /// Without both, truncated messages name the event id instead of linking.
    pub public_api_url: Option<String>,
    pub link_secret_arn: Option<String>,
    pub link_ttl: Duration,
    /// Where each pipeline's decision about each event is recorded.
    pub journey: Option<JourneyConfig>,
    /// What stateful steps remember (`STATE_TABLE`): throttle, threshold, rollup,
    /// heartbeat, mutes. A pipeline with such a step fails its events without it.
    pub state_table: Option<String>,
    /// The warehouse queue, when the warehouse is on (`WAREHOUSE=on` and
    /// `WAREHOUSE_QUEUE_URL`): every event is handed on to it after routing.
    pub warehouse_queue_url: Option<String>,
}

impl PipelineConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            pipelines_table: required("PIPELINES_TABLE")?,
            entities_table: required("ENTITIES_TABLE")?,
            slack_queue_url: required("SLACK_QUEUE_URL")?,
            destinations_queue_url: optional("DESTINATIONS_QUEUE_URL"),
            cache_ttl: Duration::from_secs(parsed("PIPELINE_CACHE_TTL_SECONDS", 30)?),
            public_api_url: optional("PUBLIC_API_URL"),
            link_secret_arn: optional("LINK_SIGNING_SECRET_ARN"),
            link_ttl: Duration::from_secs(parsed("EVENT_LINK_TTL_DAYS", 7u64)? * 86_400),
            journey: JourneyConfig::from_env()?,
            state_table: optional("STATE_TABLE"),
            warehouse_queue_url: match optional("WAREHOUSE").as_deref() {
                Some("on") => Some(required("WAREHOUSE_QUEUE_URL")?),
                None | Some("off") => None,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "WAREHOUSE",
                        reason: format!("{other} is neither on nor off"),
                    })
                }
            },
        })
    }
}

/// The warehouse function.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    /// The secret holding the database's connection string (`WAREHOUSE_SECRET_ARN`).
    pub secret_arn: String,
    pub entities_table: String,
    /// The warehouse queue (`WAREHOUSE_QUEUE_URL`): a batch the database could not take is
    /// handed back to it, later each time.
    pub queue_url: String,
    /// Where an event Postgres refused waits for a fix (`WAREHOUSE_DLQ_URL`).
    pub dlq_url: String,
}

impl WarehouseConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            secret_arn: required("WAREHOUSE_SECRET_ARN")?,
            entities_table: required("ENTITIES_TABLE")?,
            queue_url: required("WAREHOUSE_QUEUE_URL")?,
            dlq_url: required("WAREHOUSE_DLQ_URL")?,
        })
    }
}

/// Where the bot token comes from.
#[derive(Debug, Clone)]
pub enum TokenConfig {
    /// Secrets Manager (production): the secret's ARN or name.
    Secret(String),
    /// `SLACK_BOT_TOKEN`, for `make dev` against a real workspace or the stand-in only.
    Env(SecretString),
}

/// The slack-delivery function.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub slack_queue_url: String,
    /// Busy channels' drain tickets (`SLACK_DRAIN_QUEUE_URL`), a queue of their own so a
    /// ticket never waits behind other channels' messages; unset, they share the Slack queue.
    pub slack_drain_queue_url: Option<String>,
    pub slack_dlq_url: String,
    /// Shared channel state: pacing slots and pauses.
    pub channels_table: String,
    /// The delivery ledger.
    pub deliveries_table: String,
    /// A message still undelivered this long after it was queued is parked.
    pub max_age: Duration,
    /// Workspaces connected with OAuth (`CONNECTIONS_TABLE`); without it only the
    /// `default` workspace's token exists.
    pub connections_table: Option<String>,
    /// The Slack app's credentials, for refreshing rotating tokens (`SLACK_APP_SECRET_ARN`).
    pub slack_app_secret_arn: Option<String>,
    /// Workspace token secrets are named `<prefix>/<team id>` (`SLACK_TOKEN_SECRET_PREFIX`).
    pub token_secret_prefix: String,
    /// The stack's KMS key for new secrets (`KMS_KEY_ID`).
    pub kms_key_id: Option<String>,
    pub slack_api_url: String,
    pub token: TokenConfig,
    pub slack_timeout: Duration,
    /// The operations channel (`OPS_CHANNEL`: `#name` or an id; empty or unset, no notices).
    pub ops_channel: Option<String>,
    /// Where each delivery attempt is recorded.
    pub journey: Option<JourneyConfig>,
    /// Each key's thread of the day (`STATE_TABLE`); without it `thread_by` posts unthreaded.
    pub state_table: Option<String>,
    /// Busy channels' backlogs (`BUFFER_TABLE`), so one post can carry more than a queue
    /// batch; without it a channel's messages wait in the queue, 10 to a post at most.
    pub buffer_table: Option<String>,
}

impl DeliveryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let token = match (
            optional("SLACK_TOKEN_SECRET_ARN"),
            optional("SLACK_BOT_TOKEN"),
        ) {
            (Some(arn), _) => TokenConfig::Secret(arn),
            (None, Some(t)) => TokenConfig::Env(SecretString::from(t)),
            (None, None) => return Err(ConfigError::Missing("SLACK_TOKEN_SECRET_ARN")),
        };
        Ok(Self {
            slack_queue_url: required("SLACK_QUEUE_URL")?,
            slack_drain_queue_url: optional("SLACK_DRAIN_QUEUE_URL"),
            slack_dlq_url: required("SLACK_DLQ_URL")?,
            channels_table: required("CHANNELS_TABLE")?,
            deliveries_table: required("DELIVERIES_TABLE")?,
            max_age: Duration::from_secs(parsed("MAX_MESSAGE_AGE_HOURS", 24u64)? * 3600),
            connections_table: optional("CONNECTIONS_TABLE"),
            slack_app_secret_arn: optional("SLACK_APP_SECRET_ARN"),
            token_secret_prefix: optional("SLACK_TOKEN_SECRET_PREFIX")
                .unwrap_or_else(|| "ingestlayer/slack".into()),
            kms_key_id: optional("KMS_KEY_ID"),
            slack_api_url: optional("SLACK_API_URL")
                .unwrap_or_else(|| DEFAULT_SLACK_API_URL.to_owned()),
            token,
            slack_timeout: Duration::from_secs(parsed("SLACK_TIMEOUT_SECONDS", 10)?),
            ops_channel: optional("OPS_CHANNEL"),
            journey: JourneyConfig::from_env()?,
            state_table: optional("STATE_TABLE"),
            buffer_table: optional("BUFFER_TABLE"),
        })
    }
}

/// The destination-delivery function: webhooks, Discord, Telegram, email and Notion.
#[derive(Debug, Clone)]
pub struct DestinationsConfig {
    pub queue_url: String,
    pub dlq_url: String,
    /// Pacing slots and pauses, shared with Slack delivery (`CHANNELS_TABLE`).
    pub channels_table: String,
    /// The delivery ledger (`DELIVERIES_TABLE`).
    pub deliveries_table: String,
    /// A message still undelivered this long after it was queued is parked.
    pub max_age: Duration,
    /// Destination secrets are `<prefix>/<name>` (`DESTINATION_SECRET_PREFIX`).
    pub secret_prefix: String,
    pub discord_api_url: String,
    pub telegram_api_url: String,
    pub notion_api_url: String,
    /// How long one request to a destination may take.
    pub timeout: Duration,
    /// `WEBHOOK_ALLOW_LOCAL=true`: the webhook destination may post to loopback and private
    /// addresses. For `make dev` only; never set in template.yaml.
    pub webhook_allow_local: bool,
    /// `WEBHOOK_RETRY_SCHEDULE`: the webhook destination's waits between attempts, after
    /// which a message is parked, as written (`5s, 5m, 2h`); unset, svix's. Read (and a
    /// wrong one refused, naming it) when the destinations' clients are built.
    pub webhook_retry_schedule: Option<String>,
    pub journey: Option<JourneyConfig>,
}

pub const DEFAULT_DISCORD_API_URL: &str = "https://discord.com/api/v10";
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
pub const DEFAULT_NOTION_API_URL: &str = "https://api.notion.com";

impl DestinationsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: required("DESTINATIONS_QUEUE_URL")?,
            dlq_url: required("DESTINATIONS_DLQ_URL")?,
            channels_table: required("CHANNELS_TABLE")?,
            deliveries_table: required("DELIVERIES_TABLE")?,
            max_age: Duration::from_secs(parsed("MAX_MESSAGE_AGE_HOURS", 24u64)? * 3600),
            secret_prefix: optional("DESTINATION_SECRET_PREFIX")
                .unwrap_or_else(|| "ingestlayer/destinations".into()),
            discord_api_url: optional("DISCORD_API_URL")
                .unwrap_or_else(|| DEFAULT_DISCORD_API_URL.to_owned()),
            telegram_api_url: optional("TELEGRAM_API_URL")
                .unwrap_or_else(|| DEFAULT_TELEGRAM_API_URL.to_owned()),
            notion_api_url: optional("NOTION_API_URL")
                .unwrap_or_else(|| DEFAULT_NOTION_API_URL.to_owned()),
            timeout: Duration::from_secs(parsed("DESTINATION_TIMEOUT_SECONDS", 10)?),
            webhook_allow_local: match optional("WEBHOOK_ALLOW_LOCAL").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "WEBHOOK_ALLOW_LOCAL",
                        reason: format!("{other} is neither true nor false"),
                    })
                }
            },
            webhook_retry_schedule: optional("WEBHOOK_RETRY_SCHEDULE"),
            journey: JourneyConfig::from_env()?,
        })
    }
}

/// The slack-connect function (OAuth install, Events API, destinations page).
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub slack_app_secret_arn: String,
    pub connections_table: String,
    pub channels_table: String,
    pub pipelines_table: String,
    /// This API's public base URL (the OAuth redirect URI is `<it>/slack/oauth/callback`);
    /// unset, it is taken from each request's host.
    pub public_api_url: Option<String>,
    pub slack_api_url: String,
    /// Slack's consent page host (`https://slack.com`).
    pub slack_authorize_url: String,
    /// Signs OAuth states (and event links).
    pub link_secret_arn: String,
    pub token_secret_prefix: String,
    pub kms_key_id: String,
    /// The deployment's single-workspace token (team `default`), to list its channels.
    pub slack_token_secret_arn: Option<String>,
    /// `make dev` only: the default workspace's token itself.
    pub default_token: Option<SecretString>,
    /// The destinations page's admin credential: its secret (`ADMIN_TOKEN_SECRET_ARN`)…
    pub admin_token_secret_arn: Option<String>,
    /// …or, for `make dev`, the token itself (`INGESTLAYER_ADMIN_TOKEN`).
    pub admin_token: Option<SecretString>,
    /// The Slack queue and its DLQ: when the bot joins a paused channel, that channel's
    /// parked messages move back (`SLACK_QUEUE_URL`, `SLACK_DLQ_URL`).
    pub slack_queue_url: String,
    pub slack_dlq_url: String,
    /// The page's latest events per pipeline and its "Send test" button: the journey
    /// (`JOURNEY_TABLE`), the stored events (`EVENTS_TABLE`) and the entities enrichment
    /// reads (`ENTITIES_TABLE`). Without the journey the page shows no events.
    pub journey_table: Option<String>,
    /// Mutes set with Slack's "Mute" button (`STATE_TABLE`).
    pub state_table: Option<String>,
    pub events_table: Option<String>,
    pub entities_table: Option<String>,
    /// Destination secrets (`DESTINATION_SECRET_PREFIX`): the page stores a Discord webhook
    /// URL, a bot or integration token, a signing secret under `<prefix>/<name>`, with the
    /// stack's KMS key; `None`, the page cannot store them.
    pub destination_secret_prefix: Option<String>,
}

impl ConnectConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            slack_app_secret_arn: required("SLACK_APP_SECRET_ARN")?,
            connections_table: required("CONNECTIONS_TABLE")?,
            channels_table: required("CHANNELS_TABLE")?,
            pipelines_table: required("PIPELINES_TABLE")?,
            public_api_url: optional("PUBLIC_API_URL"),
            slack_api_url: optional("SLACK_API_URL")
                .unwrap_or_else(|| DEFAULT_SLACK_API_URL.to_owned()),
            slack_authorize_url: optional("SLACK_AUTHORIZE_URL")
                .unwrap_or_else(|| "https://slack.com".to_owned()),
            link_secret_arn: required("LINK_SIGNING_SECRET_ARN")?,
            token_secret_prefix: optional("SLACK_TOKEN_SECRET_PREFIX")
                .unwrap_or_else(|| "ingestlayer/slack".into()),
            kms_key_id: required("KMS_KEY_ID")?,
            slack_token_secret_arn: optional("SLACK_TOKEN_SECRET_ARN"),
            default_token: None,
            admin_token_secret_arn: optional("ADMIN_TOKEN_SECRET_ARN"),
            admin_token: None,
            slack_queue_url: required("SLACK_QUEUE_URL")?,
            slack_dlq_url: required("SLACK_DLQ_URL")?,
            journey_table: optional("JOURNEY_TABLE"),
            state_table: optional("STATE_TABLE"),
            events_table: optional("EVENTS_TABLE"),
            entities_table: optional("ENTITIES_TABLE"),
            destination_secret_prefix: optional("DESTINATION_SECRET_PREFIX"),
        })
    }
}

/// The AWS SDK configuration from the environment (`AWS_ENDPOINT_URL` included).
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// Libraries that log raw invocations, requests or responses below `info`:
/// lambda_runtime's trace level prints every event it receives (Authorization headers,
/// cookies, OAuth codes, webhook bodies), and the HTTP and AWS clients print what they send
/// and receive (Secrets Manager answers hold secrets). They stay at `info` whatever
/// `RUST_LOG` (the stack's LogLevel) says. (aws_sigv4's canonical requests carry the session
/// token of the function's credentials.)
pub const CAPPED_LOG_TARGETS: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_config",
    "aws_runtime",
    "aws_sigv4",
    "aws_credential_types",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_http",
    "aws_smithy_async",
    "aws_smithy_json",
    "aws_smithy_query",
    "aws_smithy_observability",
    "aws_smithy_types",
    "aws_sdk_secretsmanager",
    "aws_sdk_dynamodb",
    "aws_sdk_sqs",
    "aws_sdk_kms",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower",
];

/// The log filter for a `RUST_LOG` value (`None` or invalid: `info`), with
/// [`CAPPED_LOG_TARGETS`] held at `info`.
pub fn log_filter(
    spec: Option<&str>,
) -> impl tracing_subscriber::layer::Filter<tracing_subscriber::Registry> {
    use tracing_subscriber::filter::FilterExt;
    let env = spec
        .and_then(|s| tracing_subscriber::EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let caps = CAPPED_LOG_TARGETS.iter().fold(
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::TRACE),
        |t, target| t.with_target(*target, tracing::Level::INFO),
    );
    env.and(caps)
}

/// Logging: JSON lines with structured fields to `writer`, filtered by [`log_filter`].
pub fn log_layer<W>(
    spec: Option<&str>,
    writer: W,
) -> impl tracing_subscriber::Layer<tracing_subscriber::Registry>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_writer(writer)
        .with_filter(log_filter(spec))
}

/// Logging for the Lambda functions: [`log_layer`] on stdout, level from `RUST_LOG`
/// (default info).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let spec = std::env::var("RUST_LOG").ok();
    let _ = tracing_subscriber::registry()
        .with(log_layer(spec.as_deref(), std::io::stdout))
        .try_init();
}

#[cfg(test)]
mod log_tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged_at(spec: &str, emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            tracing_subscriber::registry().with(log_layer(Some(spec), move || writer.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn trace_level_never_lets_the_runtime_log_raw_invocations() {
        for spec in [
            "trace",
            "info,lambda_runtime=trace",
            "info,lambda_runtime::layers::api_response=trace",
            "info,aws_smithy_runtime=trace,hyper=trace",
        ] {
            let logs = logged_at(spec, || {
                tracing::trace!(target: "lambda_runtime::layers::api_response", body = "Authorization: Bearer il_SECRET", "raw JSON event received from Lambda");
                tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", body = "SecretString il_SECRET", "response");
                tracing::trace!(target: "hyper::proto", "il_SECRET");
                tracing::info!(target: "lambda_runtime", "runtime started");
            });
            assert!(!logs.contains("il_SECRET"), "{spec}: {logs}");
            assert!(logs.contains("runtime started"), "{spec}: {logs}");
        }
        let ours = logged_at("trace", || {
            tracing::trace!(target: "ingestlayer::delivery", "our own trace line");
        });
        assert!(ours.contains("our own trace line"), "{ours}");
    }

    #[test]
    fn an_invalid_filter_falls_back_to_info() {
        let logs = logged_at("not a [valid filter", || {
            tracing::debug!(target: "ingestlayer", "hidden");
            tracing::info!(target: "ingestlayer", "shown");
        });
        assert!(logs.contains("shown") && !logs.contains("hidden"), "{logs}");
    }
}
