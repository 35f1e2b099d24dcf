use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use ingestlayer::config::{
    ConnectConfig, DeliveryConfig, IngestConfig, PipelineConfig, TokenConfig,
};
use ingestlayer::connect::ConnectDeps;
use ingestlayer::delivery::DeliveryDeps;
use ingestlayer::ingress::api_keys::ApiKeys;
use ingestlayer::ingress::IngestDeps;
use ingestlayer::routing::PipelineDeps;
use ingestlayer_local::functions::{Functions, Local};
use ingestlayer_local::resources::{LocalUrls, Resources};
use ingestlayer_local::runner::{
    call_ingest, pump_delivery, pump_delivery_function, pump_function, pump_pipeline,
    DeliveryFeeds, QueueFeed,
};
use ingestlayer_local::{emulator_sdk, seed};
use secrecy::SecretString;
use serde_json::Value;
use slack_standin::{PostedMessage, Standin, StandinConfig};

pub const API_KEY: &str = "il_test_key_0123456789";
pub const BOT_TOKEN: &str = "xoxb-test-token";
/// The destinations page's admin credential.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123";
/// The Slack app's credentials: the stand-in's default OAuth client.
pub const APP_SECRET: &str = r#"{"client_id":"standin-client-id","client_secret":"standin-client-secret","signing_secret":"test-signing-secret"}"#;
/// The ingest API's public URL in signed links (tests call the handler directly).
pub const PUBLIC_API_URL: &str = "https://api.example";
/// The Slack client's timeout in a test that makes a post uncertain: short, so the test
/// waits little for it, and still far above a round trip to the in-process stand-in on a
/// loaded machine (a call that times out anyway is retried, as in production).
pub const UNCERTAIN_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the stand-in holds back its answer to the post it took: far beyond
/// [`UNCERTAIN_TIMEOUT`], so the answer never arrives in time. Nothing waits for it.
pub const HELD_ANSWER: Duration = Duration::from_secs(10);

/// The operations a client sent (`UpdateItem`, `GetItem`…), in order, as its interceptor
/// saw them leave.
#[derive(Debug, Clone, Default)]
pub struct Requests(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Requests {
    /// How many were sent since the last take.
    pub fn take(&self) -> usize {
        self.take_operations().len()
    }

    /// The operations sent since the last take.
    pub fn take_operations(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl aws_sdk_dynamodb::config::Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(operation);
        Ok(())
    }
}

pub struct Stack {
    pub res: Resources,
    pub standin: Standin,
    pub ingest: std::sync::Arc<IngestDeps>,
    pub pipeline: PipelineDeps,
    pub delivery: DeliveryDeps,
    pub connect: ConnectDeps,
    pub events: QueueFeed,
    pub slack: DeliveryFeeds,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sdk: aws_config::SdkConfig,
}

/// The stack's journey table, kept as long as its events.
pub fn journey_config(res: &Resources) -> ingestlayer::config::JourneyConfig {
    ingestlayer::config::JourneyConfig {
        table: res.journey_table.clone(),
        ttl_days: 30,
    }
}

pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at a running moto server; `make test` starts one")
}

impl Stack {
    /// A fresh stack with the product's example pipeline, its users and an API key.
    pub async fn new() -> Self {
        Self::with_standin(StandinConfig {
            rate_per_channel_per_sec: f64::INFINITY,
            ..StandinConfig::default()
        })
        .await
    }

    pub async fn with_standin(config: StandinConfig) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .try_init();
        let sdk = emulator_sdk(&endpoint()).await;
        let prefix = format!("it-{}", ulid::Ulid::new().to_string().to_lowercase());
        let res = Resources::create(&sdk, &prefix, BOT_TOKEN, APP_SECRET)
            .await
            .expect("create resources in the emulator");
        let standin = Standin::start(config)
            .await
            .expect("start the Slack stand-in");
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        seed::put_json(
            &dynamo,
            &res.pipelines_table,
            &seed::example_pipeline("#alerts"),
        )
        .await
        .unwrap();
        for e in seed::example_entities() {
            seed::put_json(&dynamo, &res.entities_table, &e)
                .await
                .unwrap();
        }
        ApiKeys::new(dynamo.clone(), res.api_keys_table.clone())
            .create(&SecretString::from(API_KEY.to_owned()), "tests")
            .await
            .unwrap();
        let ingest = IngestDeps::load(
            &sdk,
            &IngestConfig {
                events_table: res.events_table.clone(),
                api_keys_table: res.api_keys_table.clone(),
                events_queue_url: res.events_queue_url.clone(),
                schemas_required: false,
                event_ttl_days: 30,
                link_secret_arn: Some(res.link_secret_arn.clone()),
                webhook_secret_prefix: Some(res.webhook_secret_prefix.clone()),
            },
        )
        .await
        .unwrap();
        let pipeline = PipelineDeps::load(
            &sdk,
            &PipelineConfig {
                pipelines_table: res.pipelines_table.clone(),
                entities_table: res.entities_table.clone(),
                slack_queue_url: res.slack_queue_url.clone(),
                destinations_queue_url: Some(res.destinations_queue_url.clone()),
                cache_ttl: Duration::from_secs(30),
                public_api_url: Some(PUBLIC_API_URL.to_owned()),
                link_secret_arn: Some(res.link_secret_arn.clone()),
                link_ttl: ingestlayer::event_links::DEFAULT_TTL,
                journey: Some(journey_config(&res)),
                state_table: Some(res.state_table.clone()),
                warehouse_queue_url: None,
            },
        )
        .await
        .unwrap();
        let delivery = DeliveryDeps::load(
            &sdk,
            &DeliveryConfig {
                slack_queue_url: res.slack_queue_url.clone(),
                slack_drain_queue_url: Some(res.slack_drain_queue_url.clone()),
                slack_dlq_url: res.slack_dlq_url.clone(),
                channels_table: res.channels_table.clone(),
                deliveries_table: res.deliveries_table.clone(),
                max_age: Duration::from_secs(24 * 3600),
                connections_table: Some(res.connections_table.clone()),
                slack_app_secret_arn: Some(res.slack_app_secret_arn.clone()),
                token_secret_prefix: res.token_secret_prefix.clone(),
                kms_key_id: Some(res.kms_key_id.clone()),
                slack_api_url: standin.api_url(),
                token: TokenConfig::Secret(res.slack_token_secret_arn.clone()),
                slack_timeout: Duration::from_secs(2),
                ops_channel: None,
                journey: Some(journey_config(&res)),
                state_table: Some(res.state_table.clone()),
                buffer_table: Some(res.buffer_table.clone()),
            },
        )
        .await
        .unwrap();
        let connect = ConnectDeps::load(
            &sdk,
            &ConnectConfig {
                slack_app_secret_arn: res.slack_app_secret_arn.clone(),
                connections_table: res.connections_table.clone(),
                channels_table: res.channels_table.clone(),
                pipelines_table: res.pipelines_table.clone(),
                public_api_url: Some(PUBLIC_API_URL.to_owned()),
                slack_api_url: standin.api_url(),
                slack_authorize_url: format!("http://{}", standin.addr()),
                link_secret_arn: res.link_secret_arn.clone(),
                token_secret_prefix: res.token_secret_prefix.clone(),
                kms_key_id: res.kms_key_id.clone(),
                slack_token_secret_arn: Some(res.slack_token_secret_arn.clone()),
                default_token: None,
                admin_token_secret_arn: None,
                admin_token: Some(SecretString::from(ADMIN_TOKEN.to_owned())),
                slack_queue_url: res.slack_queue_url.clone(),
                slack_dlq_url: res.slack_dlq_url.clone(),
                journey_table: Some(res.journey_table.clone()),
                state_table: Some(res.state_table.clone()),
                events_table: Some(res.events_table.clone()),
                entities_table: Some(res.entities_table.clone()),
                destination_secret_prefix: Some(res.destination_secret_prefix.clone()),
            },
        )
        .await
        .unwrap();
        let events = QueueFeed {
            sqs: sqs.clone(),
            url: res.events_queue_url.clone(),
            wait_seconds: 0,
        };
        let slack = DeliveryFeeds::new(&sqs, &res, 0);
        Self {
            res,
            standin,
            ingest: std::sync::Arc::new(ingest),
            pipeline,
            delivery,
            connect,
            events,
            slack,
            dynamo,
            sqs,
            sdk,
        }
    }

    /// POSTs `body` to `path` through the ingest handler with the stack's API key.
    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.post_with(path, body, Some(API_KEY)).await
    }

    /// A request through the slack-connect handler: (status, headers, body text).
    pub async fn connect_request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> (u16, http::HeaderMap, String) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://api.example{path_and_query}"));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = ingestlayer_local::runner::call_connect(
            req.body(axum::body::Body::from(body.to_owned())).unwrap(),
            &self.connect,
        )
        .await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// GETs `path_and_query` through the ingest handler, without an API key.
    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let (status, _, body) = self.request("GET", path_and_query, &[], b"").await;
        (status, body)
    }

    pub async fn post_with(&self, path: &str, body: &str, key: Option<&str>) -> (u16, Value) {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_bytes()));
        }
        let (status, _, body) = self.request("POST", path, &headers, body.as_bytes()).await;
        (status, body)
    }

    /// Any request through the ingest handler: (status, headers, JSON body).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> (u16, http::HeaderMap, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://api.example{path}"));
        for (k, v) in headers {
            req = req.header(*k, http::HeaderValue::from_bytes(v).unwrap());
        }
        let req = req.body(axum::body::Body::from(body.to_vec())).unwrap();
        let resp = call_ingest(req, &self.ingest).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// POSTs a webhook delivery to `/v1/webhooks/{source}` with `headers` (no API key).
    pub async fn webhook(
        &self,
        source: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, Value) {
        let mut all: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
        all.extend(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
        let path = format!("/v1/webhooks/{source}");
        let (status, _, body) = self.request("POST", &path, &all, body).await;
        (status, body)
    }

    /// Creates the webhook source `name`.
    pub async fn add_webhook_source(
        &self,
        name: &str,
        provider: ingestlayer::ingress::webhooks::sources::Provider,
        secrets: &[&str],
    ) {
        ingestlayer::ingress::webhooks::sources::put_source(
            &aws_sdk_secretsmanager::Client::new(&self.sdk),
            &self.res.webhook_secret_prefix,
            name,
            &ingestlayer::ingress::webhooks::sources::SourceConfig {
                provider,
                secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            },
            Some(&self.res.kms_key_id),
        )
        .await
        .unwrap();
    }

    /// The delivery ledger's items (the deliveries table), as JSON.
    pub async fn ledger(&self) -> Vec<Value> {
        let out = self
            .dynamo
            .scan()
            .table_name(&self.res.deliveries_table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).unwrap())
            .collect()
    }

    /// The id and source of every stored event.
    pub async fn stored_events(&self) -> Vec<(String, String)> {
        let out = self
            .dynamo
            .scan()
            .table_name(&self.res.events_table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let text =
            |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
             k: &str| {
                item.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
        let mut all: Vec<(String, String)> = out
            .items()
            .iter()
            .map(|item| (text(item, "id"), text(item, "source")))
            .collect();
        all.sort();
        all
    }

    /// Runs both consumers until neither queue gives anything.
    pub async fn pump(&self) {
        loop {
            let a = pump_pipeline(&self.events, &self.pipeline).await.unwrap();
            let b = pump_delivery(&self.slack, &self.delivery).await.unwrap();
            if a == 0 && b == 0 {
                break;
            }
        }
    }

    /// What the functions' binaries need to run against this stack.
    pub fn local(&self) -> Local {
        Local {
            res: self.res.clone(),
            endpoint: endpoint(),
            urls: LocalUrls {
                api_url: PUBLIC_API_URL.to_owned(),
                slack_api_url: self.standin.api_url(),
                slack_authorize_url: format!("http://{}", self.standin.addr()),
                discord_api_url: None,
                telegram_api_url: None,
                notion_api_url: None,
            },
            echo_output: false,
        }
    }

    /// The four functions' binaries against this stack, with the environment template.yaml
    /// gives them. Fails the test, saying how to build them, when a binary is missing or
    /// older than the sources it is built from.
    pub fn binaries(&self) -> Functions {
        crate::binaries::assert_built();
        Functions::new(&self.local(), &Default::default()).expect("the functions' specs")
    }

    /// Runs both consumers through the binaries until neither queue gives anything.
    pub async fn pump_binaries(&self, f: &Functions) {
        loop {
            let a = pump_function(&self.events, &f.pipeline).await.unwrap();
            let b = pump_delivery_function(&self.slack, &f.delivery)
                .await
                .unwrap();
            if a == 0 && b == 0 {
                break;
            }
        }
    }

    /// Pumps until `done` holds or `timeout` passes; returns whether it held.
    pub async fn pump_until(&self, timeout: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            self.pump().await;
            if done(self) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// A DynamoDB client of this stack's emulator whose requests are counted.
    pub fn counted_dynamo(&self) -> (aws_sdk_dynamodb::Client, Requests) {
        let requests = Requests::default();
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .interceptor(requests.clone())
                .build(),
        );
        (client, requests)
    }

    /// The channel state and DLQ tooling over this stack.
    pub fn channels(&self) -> ingestlayer::delivery::channel_state::Channels {
        ingestlayer::delivery::channel_state::Channels {
            client: self.dynamo.clone(),
            table: self.res.channels_table.clone(),
        }
    }

    pub fn alerts(&self) -> Vec<PostedMessage> {
        self.standin.messages_in("#alerts")
    }

    /// Every message in a queue, read without deleting (they come back after the visibility timeout).
    pub async fn peek(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        for _ in 0..3 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            all.extend(out.messages.unwrap_or_default());
        }
        all
    }

    /// The messages slack-delivery still holds, visible or in flight: the Slack queue's
    /// and the drain queue's (busy channels' tickets, whose backlogs are not yet posted).
    pub async fn delivery_depth(&self) -> usize {
        self.depth(&self.res.slack_queue_url).await
            + self.depth(&self.res.slack_drain_queue_url).await
    }

    /// Messages in a queue, visible or in flight.
    pub async fn depth(&self, url: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes.unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attrs
                .get(a)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    pub async fn put_pipeline(&self, doc: &Value) {
        seed::put_json(&self.dynamo, &self.res.pipelines_table, doc)
            .await
            .unwrap();
    }
}

pub fn feature_used(user: &str, feature: &str) -> String {
    serde_json::json!({"name": "feature.used", "data": {"user_id": user, "feature": feature, "count": 1, "plan": "free"}}).to_string()
}

/// The mrkdwn texts of the first section-with-fields block.
pub fn field_texts(m: &PostedMessage) -> Vec<String> {
    let blocks = m
        .blocks
        .as_ref()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    blocks
        .iter()
        .find_map(|b| b.get("fields").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|f| f["text"].as_str().map(str::to_owned))
        .collect()
}

/// The event ids of posted messages, in posting order, digests flattened.
/// The ids of posted events that were sent with the stack's API key, as the client gave
/// them: a client id must come back scoped to its source (`tests:<client id>`); an id the
/// server assigned (a ULID, never holding `:`) is kept as is.
pub fn posted_client_ids(messages: &[PostedMessage]) -> Vec<String> {
    posted_event_ids(messages)
        .into_iter()
        .map(|id| match id.strip_prefix("tests:") {
            Some(client) => client.to_owned(),
            None if !id.contains(':') => id,
            None => panic!("posted event id {id:?} is not scoped to the source `tests`"),
        })
        .collect()
}

pub fn posted_event_ids(messages: &[PostedMessage]) -> Vec<String> {
    let mut ids = Vec::new();
    for m in messages {
        let payload = &m.metadata.as_ref().expect("every post carries metadata")["event_payload"];
        match payload["event_ids"].as_array() {
            Some(list) => ids.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned))),
            None => ids.push(payload["event_id"].as_str().unwrap_or_default().to_owned()),
        }
    }
    ids
}

// The `ingestlayer` command line, as its binary, against a stack registered in the
// emulator's CloudFormation exactly as `make dev` registers its own (the cli* tests, and
// the ingest and webhooks tests that send with it).

/// The `ingestlayer` binary (cargo's, or the one `INGESTLAYER_CLI_BIN` names, such as an
/// installed copy), failing the test when it is missing or older than its sources.
pub fn binary() -> PathBuf {
    let path = match std::env::var_os("INGESTLAYER_CLI_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => ingestlayer_local::functions::binary_dir()
            .unwrap()
            .join("ingestlayer"),
    };
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sources =
        newest(&root.join("infra/cli/src")).max(newest(&root.join("functions/ingestlayer/src")));
    assert!(
        built >= sources,
        "{} is missing or older than its sources: build it with cargo build -p ingestlayer-cli",
        path.display()
    );
    path
}

fn newest(dir: &Path) -> SystemTime {
    let mut t = SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            t = t.max(newest(&p));
        } else if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
            t = t.max(m);
        }
    }
    t
}

/// What a run of the `ingestlayer` binary printed, and how it exited.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Its stdout as JSON, whatever the exit code.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

pub fn run_with(args: &[&str], endpoint: &str) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(binary())
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("INGESTLAYER_STACK")
        .env_remove("WEBHOOK_SECRET")
        // The warehouse commands read the stack's secret unless told otherwise.
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `ingestlayer --local --stack <this stack> ARGS…`.
pub fn run(s: &Stack, args: &[&str]) -> Run {
    run_on(&s.res.prefix, args)
}

/// `ingestlayer --local --stack <stack> ARGS…` (for a thread that does not hold the stack).
pub fn run_on(stack: &str, args: &[&str]) -> Run {
    let mut all = vec!["--local", "--stack", stack];
    all.extend_from_slice(args);
    run_with(&all, &endpoint())
}

/// A fresh stack, registered in the emulator's CloudFormation as `make dev` registers its own.
pub async fn registered() -> Stack {
    let s = Stack::new().await;
    s.res
        .register_stack(&s.sdk, &s.local().urls)
        .await
        .expect("register the stack's outputs");
    s
}
