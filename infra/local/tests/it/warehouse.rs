//! The warehouse against a real Postgres (`make test` starts one, DATABASE_URL): every
//! routed event lands once with its account, a redelivered batch adds nothing, an outage
//! loses nothing, migrations run from empty and from the previous version, the views answer
//! known questions, a bad event never blocks the others, and TLS is verified.
//!
//! Each test has its own database on the shared server; the outage and TLS tests start a
//! server of their own (infra/postgres.sh), as they stop it or need its CA.

use std::path::Path;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use ingestlayer::config::WarehouseConfig;
use ingestlayer::routing::handoff::{Handoff, HandoffBatch};
use ingestlayer::warehouse::postgres::{self, Target, Warehouse};
use ingestlayer::warehouse::{self as wh, WarehouseDeps};
use ingestlayer_local::functions::WAREHOUSE_BATCHING;
use ingestlayer_local::runner::{pump_function_batched, pump_warehouse, Batching, QueueFeed};
use serde_json::{json, Value};

use crate::harness::{registered, run, Stack};

/// The server `make test` started.
fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name a Postgres; `make test` starts one (infra/postgres.sh)")
}

/// A fresh database on the server at `url`: its URL and its target.
async fn fresh_database(url: &str) -> (String, Target) {
    let server = Target::from_secret(url).unwrap();
    let name = format!("it_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = server.connect().await.expect("connect to the test server");
    admin
        .execute(&format!("CREATE DATABASE {name}"), &[])
        .await
        .unwrap();
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_path(&format!("/{name}"));
    (parsed.to_string(), server.with_dbname(&name))
}

/// A Postgres server of the test's own (infra/postgres.sh), removed when dropped.
struct OwnServer {
    url: String,
    data: String,
}

impl OwnServer {
    fn start() -> Self {
        let name = format!("it-{}", ulid::Ulid::new().to_string().to_lowercase());
        let out = script(&["start", "0", &name]);
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("postgres.sh start printed no {k}: {out}"))
                .to_owned()
        };
        Self {
            url: field("DATABASE_URL="),
            data: field("PGDATA="),
        }
    }
    fn stop(&self) {
        script(&["stop", &self.data]);
    }
    fn resume(&self) {
        script(&["resume", &self.data]);
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(repo().join("infra/postgres.sh"))
            .args(["remove", &self.data])
            .output();
    }
}

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script(args: &[&str]) -> String {
    let out = std::process::Command::new("bash")
        .arg(repo().join("infra/postgres.sh"))
        .args(args)
        .output()
        .expect("run infra/postgres.sh");
    assert!(
        out.status.success(),
        "postgres.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A stack whose pipeline hands every event to the warehouse in `database_url`, and the
/// warehouse function's dependencies, built as its main.rs builds them (from the secret).
async fn warehouse_stack(database_url: &str) -> (Stack, WarehouseDeps, QueueFeed) {
    let mut s = Stack::new().await;
    s.res.connect_warehouse(&s.sdk, database_url).await.unwrap();
    s.pipeline.warehouse_queue_url = Some(s.res.warehouse_queue_url.clone());
    let deps = WarehouseDeps::load(&s.sdk, &warehouse_config(&s))
        .await
        .unwrap();
    let feed = QueueFeed {
        sqs: s.sqs.clone(),
        url: s.res.warehouse_queue_url.clone(),
        wait_seconds: 0,
    };
    (s, deps, feed)
}

fn warehouse_config(s: &Stack) -> WarehouseConfig {
    WarehouseConfig {
        secret_arn: s.res.warehouse_secret_arn.clone(),
        entities_table: s.res.entities_table.clone(),
        queue_url: s.res.warehouse_queue_url.clone(),
        dlq_url: s.res.warehouse_dlq_url.clone(),
    }
}

/// Runs the pipeline (four invocations at a time) until the events queue is empty.
async fn route_all(s: &Stack) {
    loop {
        let n: usize = futures_util::future::join_all(
            (0..4).map(|_| ingestlayer_local::runner::pump_pipeline(&s.events, &s.pipeline)),
        )
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
        if n == 0 {
            break;
        }
    }
}

/// Posts `events` in batches of 500.
async fn post_all(s: &Stack, events: &[Value]) {
    for chunk in events.chunks(500) {
        let (status, body) = s
            .post("/v1/events/batch", &json!({ "events": chunk }).to_string())
            .await;
        let body = body.to_string();
        assert_eq!(status, 202, "{}", &body[..body.len().min(400)]);
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_thousand_events_half_filtered_land_once_with_their_accounts() {
    let (url, target) = fresh_database(&server_url()).await;
    let (mut s, _deps, feed) = warehouse_stack(&url).await;
    // The journey is not what is measured here, and costs the emulator 40 writes.
    s.pipeline.journey = None;
    // Half pass the example pipeline's filter (export, api, webhook) and are posted; half
    // (search, dashboards) are filtered out of Slack.
    let users = ["u_42", "u_7", "u_99", "u_nobody"];
    let features = ["export", "search", "api", "dashboards"];
    let events: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"name": "feature.used", "data": {
                "user_id": users[i % 4], "feature": features[(i / 4) % 4], "count": 1, "plan": "free"
            }})
        })
        .collect();
    // Routed 100 at a time, as traffic arrives: the emulator's ReceiveMessage costs time in
    // proportion to the square of the queue's depth (moto counts the queue's messages for
    // every message it considers), so 1,000 queued at once take minutes to drain.
    for chunk in events.chunks(100) {
        post_all(&s, chunk).await;
        route_all(&s).await;
    }
    // The shipped binary writes them, batched as the event source batches.
    let functions = s.binaries();
    let warehouse = functions.warehouse.as_ref().expect("the warehouse is on");
    let mut invocations = 0;
    while pump_function_batched(&feed, warehouse, WAREHOUSE_BATCHING)
        .await
        .unwrap()
        > 0
    {
        invocations += 1;
    }
    assert!(invocations >= 1);
    let db = target.connect().await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 1000);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT id) FROM events").await,
        1000
    );
    let rows = db
        .query(
            "SELECT user_id, account_id, count(*) FROM events GROUP BY 1, 2 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, Option<String>, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("u_42".into(), Some("acme".into()), 250),
            ("u_7".into(), Some("globex".into()), 250),
            ("u_99".into(), Some("initech".into()), 250),
            ("u_nobody".into(), None, 250),
        ]
    );
    let outcome = |o: &str| {
        format!(
            "SELECT count(*) FROM events WHERE pipelines @> '[{{\"pipeline\": \"feature-usage-to-alerts\", \"outcome\": \"{o}\"}}]'"
        )
    };
    assert_eq!(count(&db, &outcome("routed")).await, 500);
    assert_eq!(count(&db, &outcome("filtered")).await, 500);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE entities -> 'user' ->> 'owner' = 'maria@yourco.com'"
        )
        .await,
        250
    );
    assert_eq!(s.depth(&s.res.warehouse_dlq_url).await, 0);
    assert_eq!(s.depth(&s.res.warehouse_queue_url).await, 0);
}

#[tokio::test]
async fn a_batch_delivered_twice_adds_nothing() {
    let (url, target) = fresh_database(&server_url()).await;
    let (s, deps, feed) = warehouse_stack(&url).await;
    let events: Vec<Value> = (0..30)
        .map(|i| json!({"name": "feature.used", "data": {"user_id": "u_42", "feature": "api", "count": i, "plan": "pro"}}))
        .collect();
    post_all(&s, &events).await;
    route_all(&s).await;
    let messages = feed.receive().await.unwrap();
    assert!(!messages.is_empty());
    let event: SqsEvent = feed.event(&messages);
    let first = wh::handle(event.clone(), &deps).await;
    assert!(first.batch_item_failures.is_empty());
    let db = target.connect().await.unwrap();
    let after_first = count(&db, "SELECT count(*) FROM events").await;
    assert!(after_first > 0);
    let second = wh::handle(event, &deps).await;
    assert!(second.batch_item_failures.is_empty());
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, after_first);
    // The rest, and everything once more: still each event once.
    while pump_warehouse(&feed, &deps, WAREHOUSE_BATCHING)
        .await
        .unwrap()
        > 0
    {}
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 30);
}

#[tokio::test]
async fn postgres_stopped_mid_run_then_started_loses_and_duplicates_nothing() {
    let server = OwnServer::start();
    let (s, deps, feed) = warehouse_stack(&server.url).await;
    let target = Target::from_secret(&server.url).unwrap();
    let batch = |from: usize| -> Vec<Value> {
        (from..from + 60)
            .map(|i| json!({"name": "feature.used", "id": format!("o{i}"), "data": {"user_id": "u_7", "feature": "export", "count": 1, "plan": "free"}}))
            .collect()
    };
    post_all(&s, &batch(0)).await;
    route_all(&s).await;
    while pump_warehouse(&feed, &deps, WAREHOUSE_BATCHING)
        .await
        .unwrap()
        > 0
    {}
    assert_eq!(
        count(
            &target.connect().await.unwrap(),
            "SELECT count(*) FROM events"
        )
        .await,
        60
    );

    server.stop();
    post_all(&s, &batch(60)).await;
    route_all(&s).await;
    // The database is down: the batch fails whole, is handed back for later, and nothing
    // reaches the DLQ.
    let handled = pump_warehouse(&feed, &deps, WAREHOUSE_BATCHING)
        .await
        .unwrap();
    assert!(handled > 0);
    assert_eq!(s.depth(&s.res.warehouse_dlq_url).await, 0);
    assert!(
        s.depth(&s.res.warehouse_queue_url).await > 0,
        "the failed batch is still queued"
    );

    server.resume();
    let start = std::time::Instant::now();
    let db = loop {
        pump_warehouse(
            &feed,
            &deps,
            Batching {
                size: 100,
                window: Duration::ZERO,
            },
        )
        .await
        .unwrap();
        let db = target.connect().await.unwrap();
        if count(&db, "SELECT count(*) FROM events").await == 120
            || start.elapsed() > Duration::from_secs(60)
        {
            break db;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 120);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT id) FROM events").await,
        120
    );
    assert_eq!(s.depth(&s.res.warehouse_dlq_url).await, 0);
    assert_eq!(s.depth(&s.res.warehouse_queue_url).await, 0);
}

#[tokio::test]
async fn migrations_run_from_an_empty_database_and_from_the_previous_version() {
    let (_, empty) = fresh_database(&server_url()).await;
    let mut client = empty.connect().await.unwrap();
    assert_eq!(postgres::schema_version(&client).await.unwrap(), 0);
    let latest = postgres::migrate(&mut client, None).await.unwrap();
    assert_eq!(latest, postgres::latest_version());
    // Again: nothing to do.
    assert_eq!(postgres::migrate(&mut client, None).await.unwrap(), latest);
    for view in [
        "daily_feature_usage",
        "paid_feature_growth",
        "free_accounts_on_paid_features",
    ] {
        assert_eq!(
            count(&client, &format!("SELECT count(*) FROM {view}")).await,
            0
        );
    }

    let (_, old) = fresh_database(&server_url()).await;
    let mut client = old.connect().await.unwrap();
    assert_eq!(
        postgres::migrate(&mut client, Some(latest - 1))
            .await
            .unwrap(),
        latest - 1
    );
    // A row written under the previous version…
    client
        .batch_execute(
            "SELECT ingestlayer_ensure_partition('2026-11-03T10:00:00Z');
             INSERT INTO events (id, name, source, received_at, user_id, account_id, plan, data)
             VALUES ('old-1', 'feature.used', 'web', '2026-11-03T10:00:00Z', 'u_7', 'globex', 'free',
                     '{\"feature\": \"export\", \"count\": 2}')",
        )
        .await
        .unwrap();
    assert!(client
        .query_one("SELECT count(*) FROM daily_feature_usage", &[])
        .await
        .is_err());
    // …is there after the upgrade, and the new views read it.
    assert_eq!(postgres::migrate(&mut client, None).await.unwrap(), latest);
    let row = client
        .query_one(
            "SELECT account_id, feature, uses::bigint FROM daily_feature_usage",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2)
        ),
        ("globex".into(), "export".into(), 2)
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM free_accounts_on_paid_features WHERE account_id = 'globex'"
        )
        .await,
        1
    );
}

/// A row on known data.
fn known(id: &str, at: &str, account: &str, plan: &str, feature: &str) -> postgres::Row {
    postgres::Row {
        id: id.into(),
        name: "feature.used".into(),
        source: "web".into(),
        received_at: time::OffsetDateTime::parse(
            at,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap(),
        occurred_at: None,
        user_id: Some(format!("{account}-user")),
        account_id: Some(account.into()),
        plan: Some(plan.into()),
        data: json!({"feature": feature, "count": 1}),
        entities: json!({}),
        pipelines: json!([]),
    }
}

/// A batch's first delivery is one COPY straight into `events`; a batch holding rows that
/// are there already takes the staging path, which writes only the new ones, whether the
/// old rows are some of the batch, all of it, or rows of another month's partition.
#[tokio::test]
async fn a_batch_partly_written_before_adds_only_its_new_rows() {
    let (_, target) = fresh_database(&server_url()).await;
    let warehouse = Warehouse::new(target.clone());
    warehouse.ready().await.unwrap();
    let row = |i: usize| {
        let month = if i.is_multiple_of(2) { "05" } else { "06" };
        known(
            &format!("evt_{i:03}"),
            &format!("2026-{month}-1{}T10:00:00Z", i % 10),
            "acme",
            "pro",
            "api",
        )
    };
    let first: Vec<_> = (0..5).map(row).collect();
    let written = warehouse.write(&first).await.unwrap();
    assert_eq!((written.inserted, written.refused.len()), (5, 0));

    // Five old rows among twelve, and one of the new ones twice in the same batch.
    let mut second: Vec<_> = (0..12).map(row).collect();
    second.push(row(11));
    let written = warehouse.write(&second).await.unwrap();
    assert_eq!((written.inserted, written.refused.len()), (7, 0));
    let again = warehouse.write(&second).await.unwrap();
    assert_eq!((again.inserted, again.refused.len()), (0, 0));

    let db = target.connect().await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 12);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT id) FROM events").await,
        12
    );
}

#[tokio::test]
async fn the_views_answer_the_product_pages_questions_on_known_data() {
    let (_, target) = fresh_database(&server_url()).await;
    let warehouse = Warehouse::new(target.clone());
    // Week of Monday 2026-11-16: acme on the API on Monday, Tuesday (twice) and Thursday;
    // the week before, once. globex (free) exports; initech (pro) uses search only.
    let rows = vec![
        known("a0", "2026-11-11T09:00:00Z", "acme", "pro", "api"),
        known("a1", "2026-11-16T09:00:00Z", "acme", "pro", "api"),
        known("a2", "2026-11-17T09:00:00Z", "acme", "pro", "api"),
        known("a3", "2026-11-17T15:00:00Z", "acme", "pro", "api"),
        known("a4", "2026-11-19T23:59:00Z", "acme", "pro", "api"),
        known("g1", "2026-11-18T10:00:00Z", "globex", "free", "export"),
        known("g2", "2026-11-10T10:00:00Z", "globex", "free", "export"),
        known("g3", "2026-11-11T10:00:00Z", "globex", "free", "export"),
        known("i1", "2026-11-18T10:00:00Z", "initech", "pro", "search"),
        // December: another partition.
        known("d1", "2026-12-01T10:00:00Z", "acme", "pro", "api"),
    ];
    let written = warehouse.write(&rows).await.unwrap();
    assert_eq!(written.inserted, 10);
    let db = target.connect().await.unwrap();
    // "acme used the API on 3 days this week".
    assert_eq!(
        count(&db, "SELECT count(DISTINCT day) FROM daily_feature_usage WHERE account_id = 'acme' AND feature = 'api' AND day >= '2026-11-16' AND day < '2026-11-23'").await,
        3
    );
    // Whose paid-feature use grew week over week, in the week of the 16th: acme (1 → 4),
    // not globex (2 → 1).
    let grew = db
        .query(
            "SELECT account_id, uses::bigint, previous_week_uses::bigint FROM paid_feature_growth WHERE week = '2026-11-16' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let grew: Vec<(String, i64, i64)> = grew
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(grew, vec![("acme".into(), 4, 1)]);
    // Free-plan accounts on paid features: globex, on export, 3 times.
    let free = db
        .query(
            "SELECT account_id, feature, events FROM free_accounts_on_paid_features ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let free: Vec<(String, String, i64)> = free
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(free, vec![("globex".into(), "export".into(), 3)]);
    // Monthly partitions: November and December.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
        )
        .await,
        2
    );
    // An old month goes with one DROP TABLE.
    db.batch_execute("DROP TABLE events_2026_11").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 1);
}

#[tokio::test]
async fn a_malformed_or_oversized_event_never_blocks_the_others() {
    let (url, target) = fresh_database(&server_url()).await;
    let (s, deps, feed) = warehouse_stack(&url).await;
    let events: Vec<Value> = (0..20)
        .map(|i| json!({"name": "feature.used", "data": {"user_id": "u_42", "feature": "api", "count": i, "plan": "pro", "note": "nul \u{0} inside"}}))
        .collect();
    post_all(&s, &events).await;
    // An account id no index can hold (random text does not compress under Postgres's
    // 2,704-byte index entry limit).
    let huge: String = {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), 12_000)
    };
    post_all(
        &s,
        &[json!({"name": "feature.used", "id": "too-big", "data": {"user_id": "u_7", "account_id": huge, "feature": "api", "count": 1, "plan": "free"}})],
    )
    .await;
    route_all(&s).await;
    // And a message that is no warehouse message at all.
    s.sqs
        .send_message()
        .queue_url(&s.res.warehouse_queue_url)
        .message_body("{\"not\": \"a warehouse message\"")
        .send()
        .await
        .unwrap();
    let mut failures = 0;
    loop {
        let messages = feed.receive().await.unwrap();
        if messages.is_empty() {
            break;
        }
        let response = wh::handle(feed.event(&messages), &deps).await;
        failures += response.batch_item_failures.len();
        feed.settle(&messages, &response).await.unwrap();
    }
    assert_eq!(failures, 0, "nothing is left failing in the queue");
    let db = target.connect().await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 20);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE data ->> 'note' = 'nul \u{FFFD} inside'"
        )
        .await,
        20
    );
    // Both wait in the DLQ, each with its reason.
    let parked = s.peek(&s.res.warehouse_dlq_url).await;
    let mut reasons: Vec<String> = parked
        .iter()
        .map(|m| {
            m.message_attributes()
                .and_then(|a| a.get(wh::park_attr::REASON))
                .and_then(|v| v.string_value())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("Postgres refused the event"),
        "{reasons:?}"
    );
    assert!(reasons[0].contains("index row"), "{reasons:?}");
    assert!(
        reasons[1].starts_with("not a warehouse message"),
        "{reasons:?}"
    );
    let refused: HandoffBatch = serde_json::from_str(
        parked
            .iter()
            .find_map(|m| m.body().filter(|b| b.contains("too-big")))
            .expect("the refused event's message"),
    )
    .unwrap();
    let only: &Handoff = &refused.events[0];
    assert!(only.event.id.as_str().ends_with(":too-big"));
}

#[tokio::test]
async fn tls_is_verified_against_the_ca_and_refused_without_it() {
    let server = OwnServer::start();
    let verified = Target::from_secret(&server.url).unwrap();
    let db = verified.connect().await.unwrap();
    let ssl: bool = db
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the connection is encrypted");
    // Without the CA, the server's certificate is checked against the public roots, and
    // refused.
    let public_roots = server.url.split('?').next().unwrap().to_owned();
    let e = Target::from_secret(&public_roots)
        .unwrap()
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid peer certificate"), "{e}");
    // The same CA given in the secret's JSON works; a host name the certificate does not
    // name is refused.
    let ca = std::fs::read_to_string(format!("{}/tls/ca.pem", server.data)).unwrap();
    let secret = json!({"url": public_roots, "ca_pem": ca}).to_string();
    Target::from_secret(&secret)
        .unwrap()
        .connect()
        .await
        .unwrap();
    // The same server under a name its certificate does not hold (`hostaddr` connects to
    // 127.0.0.1, TLS checks the host name).
    let other_name = format!(
        "{}?hostaddr=127.0.0.1",
        public_roots.replace("@127.0.0.1:", "@db.example.com:")
    );
    let secret = json!({"url": other_name, "ca_pem": ca}).to_string();
    let e = Target::from_secret(&secret)
        .unwrap()
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not valid for name"), "{e}");
}

#[tokio::test]
async fn the_cli_backfills_once_shows_status_and_migrates() {
    let (url, target) = fresh_database(&server_url()).await;
    let mut s = registered().await;
    // Events stored before the warehouse was on: the pipeline hands nothing on.
    let events: Vec<Value> = (0..40)
        .map(|i| json!({"name": "feature.used", "data": {"user_id": "u_99", "feature": "webhook", "count": i, "plan": "team"}}))
        .collect();
    post_all(&s, &events).await;
    route_all(&s).await;
    s.res.connect_warehouse(&s.sdk, &url).await.unwrap();

    let first = run(&s, &["--json", "warehouse", "backfill", "--since", "1d"]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let first = first.json();
    assert_eq!(
        (first["in_window"].as_u64(), first["inserted"].as_u64()),
        (Some(40), Some(40))
    );
    // Again: nothing twice.
    let again = run(&s, &["--json", "warehouse", "backfill", "--since", "1d"]).json();
    assert_eq!(
        (again["inserted"].as_u64(), again["already_there"].as_u64()),
        (Some(0), Some(40))
    );
    let db = target.connect().await.unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE account_id = 'initech' AND plan = 'team'"
        )
        .await,
        40
    );

    let status = run(&s, &["--json", "warehouse", "status"]);
    assert_eq!(status.code, Some(0), "{}", status.stderr);
    let status = status.json();
    assert_eq!(
        status["schema_version"].as_i64(),
        Some(i64::from(postgres::latest_version()))
    );
    assert_eq!(status["rows_per_day"][0]["rows"].as_i64(), Some(40));
    assert_eq!(status["dlq"]["depth"].as_u64(), Some(0));
    let text = run(&s, &["warehouse", "status"]).stdout;
    assert!(
        text.contains("lag         none: every event is written"),
        "{text}"
    );

    let migrate = run(&s, &["--json", "warehouse", "migrate"]).json();
    assert_eq!(migrate["from"], migrate["to"]);
    let listed = run(&s, &["dlq", "list", "--queue", "warehouse"]);
    assert!(
        listed.stdout.contains("warehouse DLQ: nothing parked"),
        "{}",
        listed.stdout
    );
    // A connection string that is not one is refused before it is stored.
    let bad = run(&s, &["warehouse", "connect", "--url", "mysql://h/d"]);
    assert_ne!(bad.code, Some(0));
    assert!(bad.stderr.contains("scheme is mysql"), "{}", bad.stderr);
}

/// events/warehouse-sqs.json (for `sam local invoke WarehouseFunction -e …`) is what the
/// pipeline hands on, and the warehouse writes it.
#[tokio::test]
async fn the_warehouse_sqs_file_is_written() {
    let (url, target) = fresh_database(&server_url()).await;
    let (_s, deps, _feed) = warehouse_stack(&url).await;
    let path = repo().join("events/warehouse-sqs.json");
    let event: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let response = wh::handle(event, &deps).await;
    assert!(response.batch_item_failures.is_empty());
    let db = target.connect().await.unwrap();
    let rows = db
        .query(
            "SELECT account_id, pipelines -> 0 ->> 'outcome' FROM events ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(Option<String>, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (Some("acme".into()), Some("filtered".into())),
            (Some("globex".into()), Some("routed".into())),
        ]
    );
}
