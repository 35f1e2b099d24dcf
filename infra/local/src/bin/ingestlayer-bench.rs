//! `ingestlayer-bench`: how long the ingest doors take, through the real ingest handler
//! against the local AWS emulator (`AWS_ENDPOINT_URL`), and what signature checks cost alone.
//!
//! The emulator is in the loop, so the HTTP numbers are the emulator's as much as ours; they
//! are for comparing changes on one machine, not for predicting AWS latency. Run with
//! `cargo run --release -p ingestlayer-local --bin ingestlayer-bench` (numbers in README.md).
//!
//! `--entities N` times `ingestlayer entities import` instead: N generated CSV rows into a
//! fresh stack's entities table through the command line's own import (the same code, progress
//! bar and rate), then the same file again (every row unchanged).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ingestlayer::config::IngestConfig;
use ingestlayer::ingress::api_keys::ApiKeys;
use ingestlayer::ingress::webhooks::sources::{put_source, sign, Provider, Source, SourceConfig};
use ingestlayer::ingress::IngestDeps;
use ingestlayer_local::emulator_sdk;
use ingestlayer_local::error::{Error, Result};
use ingestlayer_local::resources::Resources;
use ingestlayer_local::runner::call_ingest;
use secrecy::SecretString;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "ingestlayer-bench",
    about = "Times the ingest doors against the emulator"
)]
struct Cli {
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: String,
    /// Repetitions of each batch measurement (the median is printed).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Time `ingestlayer entities import` of this many generated rows instead.
    #[arg(long)]
    entities: Option<usize>,
    /// Count the AWS requests this many events cost end to end instead, without and with
    /// the journey (the emulator's recorder sees every request: run nothing else on it).
    #[arg(long)]
    requests: Option<usize>,
    /// Measure the pipeline's cost per event with stateful steps (throttle, threshold,
    /// rollup) instead: this many events per case, in CPU and in AWS requests.
    #[arg(long)]
    steps: Option<usize>,
}

const KEY: &str = "il_bench_key_0123456789";
const STRIPE_SECRET: &str = "whsec_bench_0123456789abcdef";

#[tokio::main]
async fn main() -> ExitCode {
    match bench(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingestlayer-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(cli: Cli) -> Result<()> {
    if let Some(events) = cli.requests {
        return requests_bench(&cli.endpoint, events).await;
    }
    if let Some(events) = cli.steps {
        return steps_bench(&cli.endpoint, events).await;
    }
    let sdk = emulator_sdk(&cli.endpoint).await;
    let prefix = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let res = Resources::create(&sdk, &prefix, "xoxb-bench", "{}").await?;
    if let Some(rows) = cli.entities {
        return import_bench(&sdk, &res, &cli.endpoint, rows).await;
    }
    ApiKeys::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        res.api_keys_table.clone(),
    )
    .create(&SecretString::from(KEY.to_owned()), "bench")
    .await?;
    let stripe = SourceConfig {
        provider: Provider::Stripe,
        secrets: vec![STRIPE_SECRET.to_owned()],
    };
    put_source(
        &aws_sdk_secretsmanager::Client::new(&sdk),
        &res.webhook_secret_prefix,
        "stripe",
        &stripe,
        Some(&res.kms_key_id),
    )
    .await?;
    let deps = IngestDeps::load(
        &sdk,
        &IngestConfig {
            events_table: res.events_table.clone(),
            api_keys_table: res.api_keys_table.clone(),
            events_queue_url: res.events_queue_url.clone(),
            schemas_required: false,
            event_ttl_days: 1,
            link_secret_arn: None,
            webhook_secret_prefix: Some(res.webhook_secret_prefix.clone()),
        },
    )
    .await?;
    let deps = std::sync::Arc::new(deps);

    println!(
        "ingest against the emulator at {} (median of {} rounds)",
        cli.endpoint, cli.rounds
    );
    let round = std::sync::atomic::AtomicUsize::new(0);
    let cases: [(&str, IdScheme); 3] = [
        ("batch of 500, server ids          ", IdScheme::Server),
        ("batch of 500, client ids          ", IdScheme::FreshClient),
        ("batch of 500, all duplicates      ", IdScheme::Repeated),
    ];
    for (label, ids) in cases {
        let took = median(cli.rounds, || async {
            let r = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let events: Vec<Value> = (0..500).map(|i| event(i, ids.id(r, i))).collect();
            let body = json!({"events": events}).to_string().into_bytes();
            post(&deps, "/v1/events/batch", &[], body).await
        })
        .await?;
        println!("  {label}  {}", per(took, 500));
    }
    let single = median(cli.rounds * 10, || async {
        post(
            &deps,
            "/v1/events",
            &[],
            event(1, None).to_string().into_bytes(),
        )
        .await
    })
    .await?;
    println!(
        "  one event                           {:>8.1} ms",
        ms(single)
    );

    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/webhooks/stripe-invoice-payment-failed.json"
    );
    let payload = std::fs::read(example).map_err(Error::io(format!("reading {example}")))?;
    let n = std::sync::atomic::AtomicUsize::new(0);
    let webhook = median(cli.rounds * 10, || async {
        // A distinct event id each time, so each delivery is stored and queued.
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = String::from_utf8_lossy(&payload)
            .replace("evt_1QexampleFailedPayment01", &format!("evt_bench_{i}"))
            .into_bytes();
        let header = sign::stripe(
            STRIPE_SECRET,
            time::OffsetDateTime::now_utc().unix_timestamp(),
            &body,
        );
        post(
            &deps,
            "/v1/webhooks/stripe",
            &[("stripe-signature", header)],
            body,
        )
        .await
    })
    .await?;
    println!(
        "  one Stripe webhook delivery         {:>8.1} ms",
        ms(webhook)
    );

    // Signature checks alone: CPU only.
    let source = Source::new("stripe", &stripe)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "stripe-signature",
        sign::stripe(STRIPE_SECRET, now, &payload)
            .parse::<http::HeaderValue>()
            .map_err(|e| Error::invalid("the Stripe signature header", Some(e.into())))?,
    );
    let checks = 100_000u32;
    let start = Instant::now();
    for _ in 0..checks {
        source
            .verify(&headers, &payload, now)
            .map_err(|e| Error::invalid("the Stripe signature check", Some(e.into())))?;
    }
    let each = start.elapsed() / checks;
    println!(
        "  verify a Stripe signature ({} B)   {:>8.2} µs",
        payload.len(),
        each.as_secs_f64() * 1e6
    );
    Ok(())
}

/// `--steps N`: the pipeline function's cost per event for each kind of stateful step, N
/// events per case (from 20 accounts, in batches of 10 as the events queue hands them over):
/// the AWS requests it makes (the emulator's recorder) and the CPU time of this process (the
/// handler's own work; the emulator runs in another process).
async fn steps_bench(endpoint: &str, events: usize) -> Result<()> {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use ingestlayer::config::PipelineConfig;
    use ingestlayer::event::incoming::parse_incoming;
    use ingestlayer::event::Envelope;
    use ingestlayer::routing::PipelineDeps;
    use ingestlayer_local::requests::Recorder;

    let sdk = emulator_sdk(endpoint).await;
    let prefix = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let res = Resources::create(&sdk, &prefix, "xoxb-bench", "{}").await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let cases: [(&str, Value); 5] = [
        ("filter only", json!([])),
        (
            "throttle (account, 1h)",
            json!([{"type": "throttle", "key": "account", "window": "1h"}]),
        ),
        (
            "threshold (account, 5 in 10m)",
            json!([{"type": "threshold", "key": "account", "count": 5, "window": "10m"}]),
        ),
        (
            "rollup (account, 7d, distinct users)",
            json!([{"type": "rollup", "key": "account", "window": "7d", "distinct": "user_id"}]),
        ),
        (
            "all three",
            json!([
            {"type": "rollup", "key": "account", "window": "7d", "distinct": "user_id"},
            {"type": "threshold", "key": "account", "count": 5, "window": "10m"},
            {"type": "throttle", "key": "account", "window": "1h"}]),
        ),
    ];
    for (i, (_, steps)) in cases.iter().enumerate() {
        let mut all = vec![json!({"type": "filter.match", "expr": "feature in {export, api}"})];
        all.extend(steps.as_array().cloned().unwrap_or_default());
        ingestlayer_local::seed::put_json(
            &dynamo,
            &res.pipelines_table,
            &json!({"id": format!("case-{i}"), "events": [format!("bench.case{i}")],
                "steps": all, "destinations": [{"type": "slack", "channel": "#bench"}]}),
        )
        .await?;
    }
    let deps = PipelineDeps::load(
        &sdk,
        &PipelineConfig {
            pipelines_table: res.pipelines_table.clone(),
            entities_table: res.entities_table.clone(),
            slack_queue_url: res.slack_queue_url.clone(),
            cache_ttl: Duration::from_secs(3600),
            public_api_url: None,
            link_secret_arn: None,
            link_ttl: ingestlayer::event_links::DEFAULT_TTL,
            journey: None,
            state_table: Some(res.state_table.clone()),
            warehouse_queue_url: None,
        },
    )
    .await?;
    let batch = |case: usize, from: usize, n: usize| {
        let mut event = SqsEvent::default();
        event.records = (from..from + n)
            .filter_map(|i| {
                let data = json!({"name": format!("bench.case{case}"), "data": {
                    "feature": "api", "account": format!("acct-{}", i % 20), "user_id": format!("u{}", i % 60)}});
                let e = parse_incoming(&data, "").ok()?;
                let env = Envelope::accept(e, "bench", time::OffsetDateTime::now_utc());
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("m{i}"));
                m.body = serde_json::to_string(&env).ok();
                Some(m)
            })
            .collect();
        event
    };
    // Warm the pipeline cache as a running function has it.
    ingestlayer::routing::handle(batch(0, 0, 1), &deps).await;
    println!("the pipeline function's cost per event with stateful steps ({events} events per case, 20 accounts, batches of 10)");
    println!(
        "  {:<38} {:>14} {:>16} {:>14}",
        "steps after the filter", "AWS requests", "of which state", "CPU µs"
    );
    for (case, (label, _)) in cases.iter().enumerate() {
        let recorder = Recorder::new(endpoint);
        recorder.start().await?;
        let cpu = cpu_time();
        for from in (0..events).step_by(10) {
            let answer =
                ingestlayer::routing::handle(batch(case, from, 10.min(events - from)), &deps).await;
            if !answer.batch_item_failures.is_empty() {
                return Err(Error::invalid(
                    format!("{label}: the pipeline failed events"),
                    None,
                ));
            }
        }
        let cpu = cpu_time().saturating_sub(cpu);
        let recording = recorder.stop().await?;
        let state = recording
            .iter()
            .filter(|e| {
                ingestlayer_local::requests::body(e).contains(&format!("\"{}\"", res.state_table))
            })
            .count();
        let per = |n: usize| n as f64 / events as f64;
        println!(
            "  {label:<38} {:>14.2} {:>16.2} {:>14.0}",
            per(recording.len()),
            per(state),
            cpu.as_secs_f64() * 1e6 / events as f64
        );
    }
    Ok(())
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`; zero where there
/// is no such file.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// `--requests N`: the AWS requests per event, journey off then on.
async fn requests_bench(endpoint: &str, events: usize) -> Result<()> {
    use ingestlayer_local::requests::count;
    let off = count(endpoint, events, false).await?;
    let on = count(endpoint, events, true).await?;
    println!(
        "AWS requests for {events} events (half filtered out, half posted: {} and {} Slack posts), per event",
        off.posts, on.posts
    );
    println!(
        "  {:<40} {:>12} {:>12}",
        "operation", "no journey", "journey"
    );
    let mut ops: Vec<&String> = off
        .by_operation
        .keys()
        .chain(on.by_operation.keys())
        .collect();
    ops.sort();
    ops.dedup();
    let per = |n: usize| n as f64 / events as f64;
    for op in ops {
        println!(
            "  {op:<40} {:>12.2} {:>12.2}",
            per(off.by_operation.get(op).copied().unwrap_or(0)),
            per(on.by_operation.get(op).copied().unwrap_or(0))
        );
    }
    println!(
        "  {:<40} {:>12.2} {:>12.2}",
        "all",
        per(off.total()),
        per(on.total())
    );
    println!(
        "  journey writes (BatchWriteItem)          {:>12.2} {:>12.2}",
        per(off.journey_writes),
        per(on.journey_writes)
    );
    Ok(())
}

/// The event ids a batch measurement sends.
#[derive(Clone, Copy)]
enum IdScheme {
    /// None: the server assigns ULIDs.
    Server,
    /// New client ids each round: conditional writes that succeed.
    FreshClient,
    /// The same ids every round: stored by the first, duplicates after (the median of three
    /// or more rounds is a duplicates round).
    Repeated,
}

impl IdScheme {
    fn id(self, round: usize, i: usize) -> Option<String> {
        match self {
            Self::Server => None,
            Self::FreshClient => Some(format!("bench-{round}-{i}")),
            Self::Repeated => Some(format!("bench-repeated-{i}")),
        }
    }
}

fn event(i: usize, id: Option<String>) -> Value {
    let mut e = json!({"name": "feature.used", "data": {"user_id": format!("u_{i}"), "feature": "csv.export", "count": i, "plan": "free"}});
    if let Some(id) = id {
        e["id"] = json!(id);
    }
    e
}

async fn post(
    deps: &std::sync::Arc<IngestDeps>,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<()> {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("https://bench.local{path}"))
        .header("authorization", format!("Bearer {KEY}"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(axum::body::Body::from(body))
        .map_err(|e| Error::invalid(format!("the request to {path}"), Some(e.into())))?;
    let status = call_ingest(req, deps).await.status();
    if status.as_u16() == 202 {
        Ok(())
    } else {
        Err(Error::invalid(format!("{path} answered {status}"), None))
    }
}

/// The median duration of `rounds` runs of `f`.
async fn median<F, Fut>(rounds: usize, f: F) -> Result<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        f().await?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn per(d: Duration, n: u32) -> String {
    format!(
        "{:>8.1} ms  ({:.0} events/s)",
        ms(d),
        f64::from(n) / d.as_secs_f64()
    )
}

/// `--entities N`: N rows (`id,account,plan,owner`) imported twice through the command
/// line's import into a fresh stack registered as `make dev` registers its own.
async fn import_bench(
    sdk: &aws_config::SdkConfig,
    res: &Resources,
    endpoint: &str,
    rows: usize,
) -> Result<()> {
    use ingestlayer_cli::stack::{Stack, Target};

    let unused = "http://127.0.0.1:9".to_owned();
    let urls = ingestlayer_local::resources::LocalUrls {
        api_url: unused.clone(),
        slack_api_url: unused.clone(),
        slack_authorize_url: unused,
    };
    let outputs = res.register_stack(sdk, &urls).await?;
    let stack = Stack::from_outputs(
        Target::Local {
            name: res.prefix.clone(),
            endpoint: endpoint.to_owned(),
        },
        sdk.clone(),
        outputs,
    );
    let path = std::env::temp_dir().join(format!("{}-users.csv", res.prefix));
    let mut text = String::from("id,account,plan,owner\n");
    let plans = ["free", "pro", "team"];
    for i in 0..rows {
        text.push_str(&format!(
            "u_{i},acct_{},{},owner{}@yourco.com\n",
            i % 997,
            plans[i % 3],
            i % 31
        ));
    }
    std::fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))?;
    let entity = ingestlayer_cli::rows::EntityName::parse("user")?;
    println!("entities import of {rows} CSV rows against the emulator at {endpoint}");
    for pass in ["first import   ", "same file again"] {
        let r = ingestlayer_cli::entities::import(&stack, &path, &entity, "id", |n| {
            ingestlayer_cli::progress::Progress::new(pass.trim(), n, "rows")
        })
        .await?;
        println!(
            "  {pass}  {} read, {} written, {} unchanged, {} rejected  {:>7.1} s  {:>6.0} rows/s",
            r.read,
            r.written,
            r.unchanged,
            r.rejected.len() + r.failed.len(),
            r.seconds,
            r.rows_per_second
        );
    }
    std::fs::remove_file(&path).ok();
    Ok(())
}
