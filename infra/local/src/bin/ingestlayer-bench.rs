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
//!
//! `--warehouse N` measures the warehouse against a real Postgres (`DATABASE_URL`; a fresh
//! database per measurement, all dropped at the end): one batch of 1,000 rows through
//! `Warehouse::write` against the same rows inserted one statement each, the AWS requests per
//! event the warehouse path adds (N events through the pipeline without and with it, then the
//! warehouse function), and a backfill (`--backfill` rows in batches of 1,000); `--scan` also
//! times scanning that many items from the emulator's events table.

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
    #[arg(long, alias = "runs", default_value_t = 3)]
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
    /// Measure the warehouse instead: a batch of 1,000 rows against row-by-row INSERTs
    /// (--rounds times), the AWS requests per event the warehouse path adds (this many
    /// events, 1000 when no number is given) and a backfill of --backfill rows.
    #[arg(long, num_args = 0..=1, default_missing_value = "1000")]
    warehouse: Option<usize>,
    /// With --warehouse: the rows the backfill writes, in batches of 1,000.
    #[arg(long, default_value_t = 100_000)]
    backfill: usize,
    /// With --warehouse: also put --backfill stored events in the emulator's events table and
    /// time scanning them as the backfill command does (slow against moto).
    #[arg(long)]
    scan: bool,
    /// Send a burst of this many feature.used events to one Slack channel instead (in
    /// --batches batches) and measure how soon the last is readable in Slack, in how many
    /// posts, at what rate, and its AWS requests.
    #[arg(long)]
    burst: Option<usize>,
    /// With --burst: the POST /v1/events/batch requests the burst is sent in.
    #[arg(long, default_value_t = 2)]
    batches: usize,
    /// Give this many channels a burst of --each messages at once instead, and the same
    /// burst to one channel alone, and compare how long each takes.
    #[arg(long)]
    channels: Option<usize>,
    /// With --channels: the messages each channel is given.
    #[arg(long, default_value_t = 20)]
    each: usize,
    /// With --burst or --channels: without busy channels' backlogs (BUFFER_TABLE unset), as
    /// before them, for comparison.
    #[arg(long)]
    no_backlog: bool,
    /// With --burst: also list every post, when it went out (from the last event accepted)
    /// and how many events it carried.
    #[arg(long)]
    timeline: bool,
    /// With --warehouse: the Postgres server to create the bench's databases on (the user
    /// must be allowed to CREATE DATABASE; they are dropped at the end).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

const KEY: &str = "il_bench_key_0123456789";
const STRIPE_SECRET: &str = "whsec_bench_0123456789abcdef";

#[tokio::main]
async fn main() -> ExitCode {
    // The in-process handlers' logs, as the functions write them, on stderr when asked
    // (`RUST_LOG=info`): what a run did, message by message, beside the report on stdout.
    if let Ok(spec) = std::env::var("RUST_LOG") {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let _ = tracing_subscriber::registry()
            .with(ingestlayer::config::log_layer(Some(&spec), std::io::stderr))
            .try_init();
    }
    match bench(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingestlayer-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(cli: Cli) -> Result<()> {
    if let Some(events) = cli.warehouse {
        return warehouse_bench(&cli, events).await;
    }
    if let Some(events) = cli.requests {
        return requests_bench(&cli.endpoint, events).await;
    }
    if let Some(events) = cli.steps {
        return steps_bench(&cli.endpoint, events).await;
    }
    if let Some(events) = cli.burst {
        return burst_bench(
            &cli.endpoint,
            events,
            cli.batches,
            !cli.no_backlog,
            cli.timeline,
        )
        .await;
    }
    if let Some(channels) = cli.channels {
        return channels_bench(&cli.endpoint, channels, cli.each, !cli.no_backlog).await;
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
    let deps = PipelineDeps::load(&sdk, &bench_pipeline_config(&res, false)).await?;
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

/// `--burst N`: N events to one channel at Slack's pace.
async fn burst_bench(
    endpoint: &str,
    events: usize,
    batches: usize,
    backlog: bool,
    timeline: bool,
) -> Result<()> {
    let r = ingestlayer_local::burst::one_channel(endpoint, events, batches, backlog).await?;
    println!(
        "burst of {events} feature.used events in {batches} batches, all to #alerts (the stand-in allows 1 post/s){}:",
        if backlog { "" } else { ", without backlogs" }
    );
    println!(
        "  last event readable           {:>8.1} s after the last was accepted",
        r.readable_after.as_secs_f64()
    );
    println!(
        "  posts                         {:>8}   ({:.1} events a post; {} of {} events readable, {} posted twice)",
        r.posts,
        r.readable as f64 / r.posts.max(1) as f64,
        r.readable,
        r.events,
        r.duplicates
    );
    if !r.duplicated.is_empty() {
        println!(
            "  posted twice, among others     {}",
            r.duplicated.join(", ")
        );
    }
    println!(
        "  rate while the backlog lasted {:>8.3} posts/s (most in any second: {}; 429s: {})",
        r.posts_per_second(),
        r.most_in_a_second,
        r.rate_limited
    );
    println!(
        "  time between posts            {:>8} ms shortest, {} ms median, {} ms at the 90th percentile, {} ms longest",
        r.gap_at(0.0).as_millis(),
        r.gap_at(0.5).as_millis(),
        r.gap_at(0.9).as_millis(),
        r.gap_at(1.0).as_millis()
    );
    let total = r.total_requests();
    println!(
        "  AWS requests                  {total:>8}   ({:.2} per event, {:.1} per post)",
        total as f64 / events as f64,
        total as f64 / r.posts.max(1) as f64
    );
    for (op, n) in &r.requests {
        println!("    {op:<36} {:>8.3} per event", *n as f64 / events as f64);
    }
    if timeline {
        println!("  posts, from the last event accepted:");
        let mut before: Option<f64> = None;
        for &(at, carried) in &r.timeline {
            let gap = before
                .map(|b| format!("  ({:.0} ms after the one before)", (at - b) * 1000.0))
                .unwrap_or_default();
            println!("    {at:>+7.2} s  {carried:>3} events{gap}");
            before = Some(at);
        }
    }
    Ok(())
}

/// `--channels C`: C channels given a burst of `each` at once, against one channel alone.
async fn channels_bench(endpoint: &str, channels: usize, each: usize, backlog: bool) -> Result<()> {
    let alone = ingestlayer_local::burst::many_channels(endpoint, 1, each, backlog).await?;
    let many = ingestlayer_local::burst::many_channels(endpoint, channels, each, backlog).await?;
    println!(
        "bursts of {each} messages straight into the Slack queue ({} deliveries and {} drains at once, template.yaml's SlackDeliveryConcurrency and SlackDrainConcurrency):",
        many.concurrency, many.drain_concurrency
    );
    for (label, r) in [
        ("1 channel", &alone),
        (&*format!("{channels} channels"), &many),
    ] {
        println!(
            "  {label:<14} all posted after {:>6.1} s in {} posts ({} twice, most in any second per channel {}, 429s {})",
            r.readable_after.as_secs_f64(),
            r.posts,
            r.duplicates,
            r.most_in_a_second,
            r.rate_limited
        );
        println!(
            "  {:<14} a channel waited for a delivery {:.1} s (median; longest {:.1} s), then had all of its own posted within {:.1} s (median; longest {:.1} s)",
            "",
            r.waited_at(0.5).as_secs_f64(),
            r.waited_at(1.0).as_secs_f64(),
            r.served_at(0.5).as_secs_f64(),
            r.served_at(1.0).as_secs_f64(),
        );
    }
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
        discord_api_url: None,
        telegram_api_url: None,
        notion_api_url: None,
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

/// The rows of one batch in figure 1 and of each write of a backfill.
const WAREHOUSE_BATCH: usize = 1000;

/// The naive write figure 1 compares with: one statement per row, prepared once.
const INSERT_ONE: &str = "INSERT INTO events \
     (id, name, source, received_at, occurred_at, user_id, account_id, plan, data, entities, pipelines) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (id, received_at) DO NOTHING";

/// `--warehouse N`: the three figures of the warehouse (see the file's opening comment), on
/// databases created for the run and dropped after it, whatever happened.
async fn warehouse_bench(cli: &Cli, events: usize) -> Result<()> {
    if events == 0 || cli.backfill == 0 {
        return Err(Error::invalid(
            "--warehouse and --backfill take a number of events above 0",
            None,
        ));
    }
    let mut dbs = Databases::new(cli.database_url.as_deref())?;
    let outcome = warehouse_figures(cli, events, &mut dbs).await;
    dbs.drop_all().await;
    outcome
}

async fn warehouse_figures(cli: &Cli, events: usize, dbs: &mut Databases) -> Result<()> {
    println!(
        "the warehouse against Postgres at {} ({}) and the emulator at {}",
        dbs.server.describe,
        dbs.settings().await?,
        cli.endpoint
    );

    let batch = batch_against_rows(dbs, cli.rounds).await?;
    let rate = |d: Duration| WAREHOUSE_BATCH as f64 / d.as_secs_f64();
    let (ours, ours_each) = middle(&batch.ours);
    let (naive, naive_each) = middle(&batch.naive);
    let (one_transaction, one_transaction_each) = middle(&batch.one_transaction);
    let ratio = rate(ours) / rate(naive);
    println!(
        "\n1. {WAREHOUSE_BATCH} rows into a fresh database (median of {} rounds)",
        cli.rounds.max(1)
    );
    println!(
        "  {:<52} {:>10} {:>10}   each round, ms",
        "write", "time", "rows/s"
    );
    for (label, median, each) in [
        (
            "Warehouse::write: one COPY … FROM STDIN BINARY",
            ours,
            ours_each,
        ),
        (
            "one INSERT … VALUES per row (prepared, autocommit)",
            naive,
            naive_each,
        ),
        (
            "the same in one transaction (for reference)",
            one_transaction,
            one_transaction_each,
        ),
    ] {
        println!(
            "  {label:<52} {:>7.1} ms {:>10.0}   {each}",
            ms(median),
            rate(median)
        );
    }
    println!(
        "  {:<52} {:>20.1}×",
        "ratio (one batch against autocommit rows)", ratio
    );

    let requests = warehouse_requests(&cli.endpoint, events, dbs).await?;
    let per = |n: usize| n as f64 / events as f64;
    println!(
        "\n2. AWS requests per event for {events} events (the example pipeline, half filtered \
         out; pipeline batches of 10, warehouse batches of up to 100 messages)"
    );
    println!(
        "  {:<46} {:>12} {:>12} {:>8}",
        "operation", "no warehouse", "warehouse", "added"
    );
    let mut ops: Vec<&String> = requests
        .without
        .keys()
        .chain(requests.with.keys())
        .collect();
    ops.sort();
    ops.dedup();
    for op in ops {
        let off = requests.without.get(op).copied().unwrap_or(0);
        let on = requests.with.get(op).copied().unwrap_or(0);
        println!(
            "  {:<46} {:>12.3} {:>12.3} {:>8.3}",
            format!("pipeline function: {op}"),
            per(off),
            per(on),
            per(on) - per(off)
        );
    }
    for (op, n) in &requests.warehouse {
        println!(
            "  {:<46} {:>12.3} {:>12.3} {:>8.3}",
            format!("warehouse function: {op}"),
            0.0,
            per(*n),
            per(*n)
        );
    }
    let off: usize = requests.without.values().sum();
    let on: usize =
        requests.with.values().sum::<usize>() + requests.warehouse.values().sum::<usize>();
    let added = per(on) - per(off);
    println!(
        "  {:<46} {:>12.3} {:>12.3} {:>8.3}",
        "all",
        per(off),
        per(on),
        added
    );
    println!(
        "  (the warehouse's event source gathers up to 100 messages for up to 5 s, receiving \
         every 100 ms: when N is not a multiple of 1,000, the last batch's wait adds its empty \
         receives)"
    );

    let backfill = backfill_bench(dbs, cli.backfill).await?;
    let backfill_rate = cli.backfill as f64 / backfill.took.as_secs_f64();
    println!(
        "\n3. backfill: {} rows through Warehouse::write in batches of {WAREHOUSE_BATCH} into a \
         fresh database (received over the last 30 days: {} monthly partitions)",
        cli.backfill, backfill.partitions
    );
    println!(
        "  {:>10.1} s in Warehouse::write  {:>8.0} rows/s  {} batches  {:.0} MB on disk afterwards",
        backfill.took.as_secs_f64(),
        backfill_rate,
        cli.backfill.div_ceil(WAREHOUSE_BATCH),
        backfill.bytes as f64 / 1e6
    );
    let scan = if cli.scan {
        let scan = scan_bench(&cli.endpoint, cli.backfill).await?;
        println!(
            "  scanning {} items of the emulator's events table (envelope, received_ms, \
             expires_at; parsed): {:.1} s, {:.0} items/s ({:.1} s to put them there)",
            scan.items,
            scan.took.as_secs_f64(),
            scan.items as f64 / scan.took.as_secs_f64(),
            scan.fill.as_secs_f64()
        );
        Some(scan)
    } else {
        None
    };

    println!("\nsummary");
    println!("  {:<52} {:>24} {:>8}", "figure", "measured", "goal");
    println!(
        "  {:<52} {:>24} {:>8}",
        format!("1. {WAREHOUSE_BATCH} rows: one batch against one per row"),
        format!(
            "{:.0} / {:.0} rows/s = {ratio:.1}×",
            rate(ours),
            rate(naive)
        ),
        "≥ 20×"
    );
    println!(
        "  {:<52} {:>24} {:>8}",
        "2. AWS requests per event the warehouse adds",
        format!("{added:.3}"),
        "≤ 0.2"
    );
    println!(
        "  {:<52} {:>24} {:>8}",
        format!("3. backfill of {} rows", cli.backfill),
        format!(
            "{:.1} s, {backfill_rate:.0} rows/s",
            backfill.took.as_secs_f64()
        ),
        ""
    );
    if let Some(scan) = scan {
        println!(
            "  {:<52} {:>24} {:>8}",
            format!("   scanning {} stored events (emulator)", scan.items),
            format!(
                "{:.1} s, {:.0} items/s",
                scan.took.as_secs_f64(),
                scan.items as f64 / scan.took.as_secs_f64()
            ),
            ""
        );
    }
    Ok(())
}

/// The Postgres server the warehouse figures use, and the databases made on it.
struct Databases {
    url: String,
    server: ingestlayer::warehouse::postgres::Target,
    created: Vec<String>,
}

impl Databases {
    fn new(url: Option<&str>) -> Result<Self> {
        let url = url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
            Error::invalid(
                "--warehouse needs a Postgres server: set DATABASE_URL (or --database-url) to \
                 the postgres:// URL of one where it may CREATE DATABASE (`make test` starts \
                 one with infra/postgres.sh)",
                None,
            )
        })?;
        Ok(Self {
            url: url.to_owned(),
            server: ingestlayer::warehouse::postgres::Target::from_secret(url)?,
            created: Vec::new(),
        })
    }

    /// The server's version and the settings that decide what a commit costs.
    async fn settings(&self) -> Result<String> {
        let admin = self.server.connect().await?;
        let mut shown = Vec::new();
        for setting in ["server_version", "fsync", "synchronous_commit"] {
            let row = admin
                .query_one(&format!("SHOW {setting}"), &[])
                .await
                .map_err(pg("reading the server's settings"))?;
            shown.push(format!("{setting} {}", row.get::<_, String>(0)));
        }
        Ok(shown.join(", "))
    }

    /// A new, empty database: its URL (for the warehouse secret) and its target.
    async fn fresh(&mut self) -> Result<(String, ingestlayer::warehouse::postgres::Target)> {
        let name = format!("bench_{}", ulid::Ulid::new().to_string().to_lowercase());
        let admin = self.server.connect().await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(pg("creating a database for the bench"))?;
        self.created.push(name.clone());
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::invalid("DATABASE_URL", Some(e.into())))?;
        url.set_path(&format!("/{name}"));
        Ok((url.to_string(), self.server.with_dbname(&name)))
    }

    /// Drops every database [`Databases::fresh`] made (closing what is still connected).
    async fn drop_all(&self) {
        if self.created.is_empty() {
            return;
        }
        let admin = match self.server.connect().await {
            Ok(admin) => admin,
            Err(e) => {
                eprintln!(
                    "ingestlayer-bench: could not connect to drop {}: {e}",
                    self.created.join(", ")
                );
                return;
            }
        };
        for name in &self.created {
            if let Err(e) = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
            {
                eprintln!(
                    "ingestlayer-bench: could not drop the database {name}: {}",
                    ingestlayer::warehouse::postgres::error_chain(&e)
                );
            }
        }
    }
}

/// A Postgres error as the bench's, with its causes.
fn pg<E: std::error::Error + 'static>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |e| {
        Error::invalid(
            format!(
                "{what}: {}",
                ingestlayer::warehouse::postgres::error_chain(&e)
            ),
            None,
        )
    }
}

/// The `i`th row of a run, as the warehouse function makes it from the example pipeline's
/// events: four users (three with an account in the entities table), half the features
/// routed to Slack and half filtered out.
fn sample_row(
    i: usize,
    received_at: time::OffsetDateTime,
) -> ingestlayer::warehouse::postgres::Row {
    let users = [
        ("u_42", Some(("acme", "pro", "maria@yourco.com"))),
        ("u_7", Some(("globex", "free", "sam@yourco.com"))),
        ("u_99", Some(("initech", "team", "lee@yourco.com"))),
        ("u_nobody", None),
    ];
    let features = ["export", "search", "api", "dashboards"];
    let (user, account) = users[i % 4];
    let feature = features[(i / 4) % 4];
    let entities = match account {
        Some((account, plan, owner)) => json!({"user": {
            "pk": format!("user#{user}"), "account": account, "plan": plan, "owner": owner}}),
        None => json!({}),
    };
    let pipelines = if matches!(feature, "export" | "api") {
        json!([{"pipeline": "feature-usage-to-alerts", "outcome": "routed", "channels": ["#alerts"]}])
    } else {
        json!([{"pipeline": "feature-usage-to-alerts", "outcome": "filtered",
            "reason": "filter.match: feature in {export, api, webhook} is false"}])
    };
    ingestlayer::warehouse::postgres::Row {
        id: ulid::Ulid::new().to_string(),
        name: "feature.used".into(),
        source: "bench".into(),
        received_at,
        occurred_at: None,
        user_id: Some(user.into()),
        account_id: account.map(|(a, _, _)| a.to_owned()),
        plan: Some("free".into()),
        data: json!({"user_id": user, "feature": feature, "count": i % 7 + 1, "plan": "free"}),
        entities,
        pipelines,
    }
}

/// Figure 1's times, each round's in the order run.
struct BatchFigure {
    ours: Vec<Duration>,
    /// One INSERT per row, each its own transaction.
    naive: Vec<Duration>,
    /// One INSERT per row, all in one transaction (for reference: what the round trips cost
    /// without a commit each).
    one_transaction: Vec<Duration>,
}

/// The median of some times, and each of them in milliseconds (`61 / 78 / 80`).
fn middle(times: &[Duration]) -> (Duration, String) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let each: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
    (
        sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
        each.join(" / "),
    )
}

/// Figure 1: per round, the same 1,000 rows into three fresh databases: as one
/// `Warehouse::write`, as one INSERT per row on one connection (autocommit), and the same
/// inside one transaction. Each database is migrated and holds the month's partition (and
/// one row) first, as a running instance's database does after its first batch: what is
/// timed is the batch alone.
async fn batch_against_rows(dbs: &mut Databases, rounds: usize) -> Result<BatchFigure> {
    use ingestlayer::warehouse::postgres::{migrate, Warehouse};
    let at = time::OffsetDateTime::now_utc();
    let mut ours = Vec::new();
    let mut naive = Vec::new();
    let mut one_transaction = Vec::new();
    for _ in 0..rounds.max(1) {
        let warm = sample_row(WAREHOUSE_BATCH, at);
        let rows: Vec<_> = (0..WAREHOUSE_BATCH).map(|i| sample_row(i, at)).collect();

        let (_, target) = dbs.fresh().await?;
        let warehouse = Warehouse::new(target.clone());
        warehouse.ready().await?;
        warehouse.write(std::slice::from_ref(&warm)).await?;
        let start = Instant::now();
        let written = warehouse.write(&rows).await?;
        ours.push(start.elapsed());
        expect_rows("Warehouse::write", written.inserted, &target).await?;

        // Row by row: autocommit (a commit per row), then the same in one transaction (the
        // round trips without the commits).
        for in_transaction in [false, true] {
            let (_, target) = dbs.fresh().await?;
            let mut client = target.connect().await?;
            migrate(&mut client, None).await?;
            let insert = client
                .prepare(INSERT_ONE)
                .await
                .map_err(pg("preparing the one-row INSERT"))?;
            client
                .execute("SELECT ingestlayer_ensure_partition($1)", &[&at])
                .await
                .map_err(pg("creating the month's partition"))?;
            // The first row is the warm-up; the clock starts at the second.
            let mut inserted = 0;
            let mut start = Instant::now();
            for (i, r) in std::iter::once(&warm).chain(&rows).enumerate() {
                if i == 1 {
                    start = Instant::now();
                    if in_transaction {
                        client
                            .batch_execute("BEGIN")
                            .await
                            .map_err(pg("beginning a transaction"))?;
                    }
                }
                inserted += client
                    .execute(
                        &insert,
                        &[
                            &r.id,
                            &r.name,
                            &r.source,
                            &r.received_at,
                            &r.occurred_at,
                            &r.user_id,
                            &r.account_id,
                            &r.plan,
                            &r.data,
                            &r.entities,
                            &r.pipelines,
                        ],
                    )
                    .await
                    .map_err(pg("inserting one row"))?;
            }
            if in_transaction {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(pg("committing"))?;
                one_transaction.push(start.elapsed());
            } else {
                naive.push(start.elapsed());
            }
            expect_rows("the one-row INSERTs", inserted - 1, &target).await?;
        }
    }
    Ok(BatchFigure {
        ours,
        naive,
        one_transaction,
    })
}

/// Checks that a write of figure 1 inserted the batch and that the table holds it (and the
/// warm-up row).
async fn expect_rows(
    what: &str,
    inserted: u64,
    target: &ingestlayer::warehouse::postgres::Target,
) -> Result<()> {
    let stored: i64 = target
        .connect()
        .await?
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .map_err(pg("counting the rows"))?
        .get(0);
    if inserted != WAREHOUSE_BATCH as u64 || stored != WAREHOUSE_BATCH as i64 + 1 {
        return Err(Error::invalid(
            format!("{what} inserted {inserted} rows and the table holds {stored}, not {WAREHOUSE_BATCH} and one more"),
            None,
        ));
    }
    Ok(())
}

/// Figure 2's counts by operation: the pipeline function without and with the warehouse
/// queue, and the warehouse function's side (its event source's receives and deletes
/// included).
struct RequestsFigure {
    without: std::collections::BTreeMap<String, usize>,
    with: std::collections::BTreeMap<String, usize>,
    warehouse: std::collections::BTreeMap<String, usize>,
}

/// Figure 2: `events` events through the pipeline handler (in process, batches of 10 as the
/// events queue hands them over) with the example pipeline and entities, counted by the
/// emulator's recorder; then again with the warehouse queue set, and the warehouse handler
/// fed from that queue as its event source does (up to 100 messages, a 5-second window).
async fn warehouse_requests(
    endpoint: &str,
    events: usize,
    dbs: &mut Databases,
) -> Result<RequestsFigure> {
    use ingestlayer::config::WarehouseConfig;
    use ingestlayer::routing::PipelineDeps;
    use ingestlayer::warehouse::WarehouseDeps;
    use ingestlayer_local::functions::WAREHOUSE_BATCHING;
    use ingestlayer_local::requests::Recorder;
    use ingestlayer_local::runner::{pump_warehouse, QueueFeed};
    use ingestlayer_local::seed;

    let sdk = emulator_sdk(endpoint).await;
    let prefix = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut res = Resources::create(&sdk, &prefix, "xoxb-bench", "{}").await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    seed::put_json(
        &dynamo,
        &res.pipelines_table,
        &seed::example_pipeline("#alerts"),
    )
    .await?;
    for e in seed::example_entities() {
        seed::put_json(&dynamo, &res.entities_table, &e).await?;
    }
    let (url, target) = dbs.fresh().await?;
    res.connect_warehouse(&sdk, &url).await?;
    let mut pipeline = PipelineDeps::load(&sdk, &bench_pipeline_config(&res, true)).await?;
    let warehouse = WarehouseDeps::load(
        &sdk,
        &WarehouseConfig {
            secret_arn: res.warehouse_secret_arn.clone(),
            entities_table: res.entities_table.clone(),
            queue_url: res.warehouse_queue_url.clone(),
            dlq_url: res.warehouse_dlq_url.clone(),
        },
    )
    .await?;
    let feed = QueueFeed {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        url: res.warehouse_queue_url.clone(),
        wait_seconds: 0,
    };
    let drain = || async {
        while pump_warehouse(&feed, &warehouse, WAREHOUSE_BATCHING).await? > 0 {}
        Ok::<(), Error>(())
    };
    // Warm both as running functions are: the pipeline cache, the database connection, the
    // month's partition.
    route_batch(&pipeline, 0, 10).await?;
    drain().await?;
    let warm = 10;

    let mut figure = RequestsFigure {
        without: Default::default(),
        with: Default::default(),
        warehouse: Default::default(),
    };
    for on in [false, true] {
        pipeline.warehouse_queue_url = on.then(|| res.warehouse_queue_url.clone());
        let recorder = Recorder::new(endpoint);
        recorder.start().await?;
        for from in (0..events).step_by(10) {
            route_batch(&pipeline, from, 10.min(events - from)).await?;
        }
        let routed = by_operation(&recorder.stop().await?);
        if on {
            figure.with = routed;
            recorder.start().await?;
            drain().await?;
            figure.warehouse = by_operation(&recorder.stop().await?);
        } else {
            figure.without = routed;
        }
    }
    // Every event of the run with the warehouse is there, once.
    let stored: i64 = target
        .connect()
        .await?
        .query_one("SELECT count(DISTINCT id) FROM events", &[])
        .await
        .map_err(pg("counting the rows"))?
        .get(0);
    if stored != (events + warm) as i64 {
        return Err(Error::invalid(
            format!(
                "the warehouse holds {stored} events, not the {} routed",
                events + warm
            ),
            None,
        ));
    }
    Ok(figure)
}

/// One pipeline invocation of `n` events (the example pipeline's users and features, as in
/// [`sample_row`]); an error when it failed any.
async fn route_batch(
    deps: &ingestlayer::routing::PipelineDeps,
    from: usize,
    n: usize,
) -> Result<()> {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use ingestlayer::event::incoming::parse_incoming;
    use ingestlayer::event::Envelope;
    let users = ["u_42", "u_7", "u_99", "u_nobody"];
    let features = ["export", "search", "api", "dashboards"];
    let mut event = SqsEvent::default();
    for i in from..from + n {
        let data = json!({"name": "feature.used", "data": {
            "user_id": users[i % 4], "feature": features[(i / 4) % 4], "count": 1, "plan": "free"}});
        let incoming = parse_incoming(&data, "")
            .map_err(|e| Error::invalid(format!("the bench's event {data}: {e:?}"), None))?;
        let envelope = Envelope::accept(incoming, "bench", time::OffsetDateTime::now_utc());
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.body = Some(
            serde_json::to_string(&envelope)
                .map_err(|e| Error::invalid("an envelope", Some(e.into())))?,
        );
        event.records.push(m);
    }
    let answer = ingestlayer::routing::handle(event, deps).await;
    if answer.batch_item_failures.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            format!(
                "the pipeline failed {} of {n} events",
                answer.batch_item_failures.len()
            ),
            None,
        ))
    }
}

/// Recorded requests by operation (`SQS.SendMessageBatch`, `DynamoDB.BatchGetItem`…), from
/// the JSON protocols' `X-Amz-Target` (every call the handlers make).
fn by_operation(recording: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut ops = std::collections::BTreeMap::new();
    for entry in recording {
        let target = entry["headers"].as_object().and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                .and_then(|(_, v)| v.as_str())
        });
        let op = match target.and_then(|t| t.split_once('.')) {
            Some((service, op)) if service.starts_with("DynamoDB") => format!("DynamoDB.{op}"),
            Some(("AmazonSQS", op)) => format!("SQS.{op}"),
            Some((service, op)) => format!("{service}.{op}"),
            None => "other".to_owned(),
        };
        *ops.entry(op).or_insert(0) += 1;
    }
    ops
}

/// Figure 3's result.
struct Backfill {
    /// Time spent in `Warehouse::write` (not making the rows).
    took: Duration,
    bytes: i64,
    partitions: i64,
}

/// Figure 3: `rows` rows received over the last 30 days, in an order unrelated to when (as a
/// scan of the events table returns them), through `Warehouse::write` 1,000 at a time into a
/// fresh, migrated database.
async fn backfill_bench(dbs: &mut Databases, rows: usize) -> Result<Backfill> {
    let (_, target) = dbs.fresh().await?;
    let warehouse = ingestlayer::warehouse::postgres::Warehouse::new(target.clone());
    warehouse.ready().await?;
    let now = time::OffsetDateTime::now_utc();
    let month = 30 * 86_400u64;
    let progress = ingestlayer_cli::progress::Progress::new("backfill", rows as u64, "rows");
    let mut took = Duration::ZERO;
    let mut inserted = 0;
    for from in (0..rows).step_by(WAREHOUSE_BATCH) {
        let batch: Vec<_> = (from..(from + WAREHOUSE_BATCH).min(rows))
            .map(|i| {
                let ago = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % month;
                sample_row(i, now - Duration::from_secs(ago))
            })
            .collect();
        let start = Instant::now();
        inserted += warehouse.write(&batch).await?.inserted;
        took += start.elapsed();
        progress.inc(batch.len() as u64);
    }
    progress.finish();
    let db = target.connect().await?;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .map_err(pg("counting the rows"))?
        .get(0);
    if inserted != rows as u64 || stored != rows as i64 {
        return Err(Error::invalid(
            format!(
                "the backfill inserted {inserted} rows and the table holds {stored}, not {rows}"
            ),
            None,
        ));
    }
    let bytes: i64 = db
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .map_err(pg("reading the database's size"))?
        .get(0);
    let partitions: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass",
            &[],
        )
        .await
        .map_err(pg("counting the partitions"))?
        .get(0);
    Ok(Backfill {
        took,
        bytes,
        partitions,
    })
}

/// `--scan`'s result.
struct Scan {
    items: usize,
    fill: Duration,
    took: Duration,
}

/// `--scan`: `items` stored events put in a fresh stack's events table as ingest stores
/// them (BatchWriteItem, 4 requests of 25 at a time), then one paged scan of it with the
/// backfill command's projection, each envelope parsed.
async fn scan_bench(endpoint: &str, items: usize) -> Result<Scan> {
    use ingestlayer::event::incoming::parse_incoming;
    use ingestlayer::event::Envelope;
    use ingestlayer::ingress::event_store::EventStore;

    let sdk = emulator_sdk(endpoint).await;
    let prefix = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let res = Resources::create(&sdk, &prefix, "xoxb-bench", "{}").await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let store = EventStore {
        client: dynamo.clone(),
        table: res.events_table.clone(),
        ttl_days: 30,
    };
    let progress = ingestlayer_cli::progress::Progress::new("events table", items as u64, "items");
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for from in (0..items).step_by(100) {
        let mut envelopes = Vec::new();
        for i in from..(from + 100).min(items) {
            let data = json!({"name": "feature.used", "data": {
                "user_id": format!("u_{}", i % 60), "feature": "api", "count": 1, "plan": "free"}});
            let incoming = parse_incoming(&data, "")
                .map_err(|e| Error::invalid(format!("the bench's event {data}: {e:?}"), None))?;
            let envelope = Envelope::accept(incoming, "bench", time::OffsetDateTime::now_utc());
            let json = serde_json::to_string(&envelope)
                .map_err(|e| Error::invalid("an envelope", Some(e.into())))?;
            envelopes.push((envelope, json));
        }
        if tasks.len() >= 4 {
            stored_all(tasks.join_next().await, &progress)?;
        }
        let store = store.clone();
        tasks.spawn(async move {
            let pairs: Vec<(&Envelope, &str)> =
                envelopes.iter().map(|(e, j)| (e, j.as_str())).collect();
            let failed = store
                .put_all(&pairs, None)
                .await
                .into_iter()
                .filter(Result::is_err)
                .count();
            (pairs.len(), failed)
        });
    }
    while let Some(done) = tasks.join_next().await {
        stored_all(Some(done), &progress)?;
    }
    progress.finish();
    let fill = start.elapsed();

    let start = Instant::now();
    let mut scanned = 0;
    let mut pages = dynamo
        .scan()
        .table_name(&res.events_table)
        .projection_expression("envelope, received_ms, expires_at")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("scanning the events table", e))?;
        for item in page.items() {
            let envelope = item.get("envelope").and_then(|v| v.as_s().ok());
            if envelope.is_some_and(|e| serde_json::from_str::<Envelope>(e).is_ok()) {
                scanned += 1;
            }
        }
    }
    let took = start.elapsed();
    if scanned != items {
        return Err(Error::invalid(
            format!("the scan read {scanned} stored events, not {items}"),
            None,
        ));
    }
    Ok(Scan {
        items: scanned,
        fill,
        took,
    })
}

/// One `put_all` task's end: an error when it panicked or any event was not stored.
fn stored_all(
    done: Option<std::result::Result<(usize, usize), tokio::task::JoinError>>,
    progress: &ingestlayer_cli::progress::Progress,
) -> Result<()> {
    match done {
        Some(Ok((n, 0))) => {
            progress.inc(n as u64);
            Ok(())
        }
        Some(Ok((n, failed))) => Err(Error::invalid(
            format!("{failed} of {n} events were not stored"),
            None,
        )),
        Some(Err(e)) => Err(Error::invalid("storing events", Some(e.into()))),
        None => Ok(()),
    }
}

/// The pipeline function's configuration in the bench: the stack's tables, no links, no
/// journey, pipelines loaded once; with or without the warehouse's handoff.
fn bench_pipeline_config(res: &Resources, warehouse: bool) -> ingestlayer::config::PipelineConfig {
    ingestlayer::config::PipelineConfig {
        pipelines_table: res.pipelines_table.clone(),
        entities_table: res.entities_table.clone(),
        slack_queue_url: res.slack_queue_url.clone(),
        destinations_queue_url: Some(res.destinations_queue_url.clone()),
        cache_ttl: Duration::from_secs(3600),
        public_api_url: None,
        link_secret_arn: None,
        link_ttl: ingestlayer::event_links::DEFAULT_TTL,
        journey: None,
        state_table: Some(res.state_table.clone()),
        warehouse_queue_url: warehouse.then(|| res.warehouse_queue_url.clone()),
    }
}
