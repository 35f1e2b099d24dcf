//! The catalog (catalog/, one folder per use case), end to end: every entry's samples go
//! through the whole local path (POST /v1/events with an API key, or a delivery signed as
//! Stripe or GitHub sign it; the pipeline; delivery; the Slack stand-in). Each `post.*`
//! sample must produce exactly the messages of its snapshot (`expected/<sample>.json`), each
//! `quiet.*` sample nothing. The sample format is catalog/README.md's.
//!
//! Snapshots are written by `UPDATE_SNAPSHOTS=1 cargo test -p ingestlayer-local --test it
//! catalog`; without it a missing or different snapshot fails the test. And
//! `ingestlayer pipelines new --from` is tested through the binary, like the other commands.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ingestlayer::event::EventName;
use ingestlayer::ingress::schema::SchemaRegistry;
use ingestlayer::ingress::webhooks::sources::{sign, Provider};
use ingestlayer_local::seed;
use serde_json::{json, Value};
use slack_standin::PostedMessage;

use crate::harness::{run_with, Stack};

const STRIPE_SECRET: &str = "whsec_catalog_stripe_0123456789abcdef";
const GITHUB_SECRET: &str = "catalog-github-secret";
/// Owners of the demo entities that the stand-in's workspace knows, so their mentions
/// resolve; any other owner (sam@yourco.com) is not a member and stays plain text.
const SLACK_USERS: &[(&str, &str)] = &[
    ("maria@yourco.com", "U0MARIA01"),
    ("lee@yourco.com", "U0LEE0001"),
];

/// Every entry of the catalog: a test each, below, and `the_catalog_is_exactly_these_entries`.
const ENTRIES: &[&str] = &[
    "canceled-subscriptions",
    "churn-risk-signals",
    "ci-cd-build-status",
    "cron-job-health",
    "error-spikes",
    "failed-logins",
    "failed-payments",
    "feature-usage",
    "file-uploads",
    "form-submissions",
    "high-value-leads",
    "new-subscriptions",
    "one-off-purchases",
    "successful-payments",
    "support-escalations",
    "trial-conversions",
    "usage-limit-hits",
    "user-signups",
    "waitlist-signups",
];

fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog")
}

fn updating() -> bool {
    std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// How an entry's samples reach the stack, from the pipeline's `sources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Api,
    Stripe,
    /// GitHub, with the X-GitHub-Event the pipeline's `github.<event>` names.
    Github,
}

/// One line of a sample.
#[derive(Debug, Clone)]
enum Line {
    Event(Value),
    /// `{"$check_heartbeats": "1h11m"}`: run the heartbeat check as if that much time had
    /// passed since the sample started.
    CheckHeartbeats(Duration),
}

struct Sample {
    /// The file name without its extension, e.g. `post.signup`.
    name: String,
    post: bool,
    lines: Vec<Line>,
}

struct Entry {
    name: String,
    dir: PathBuf,
    pipeline: Value,
    door: Door,
    github_event: String,
    samples: Vec<Sample>,
}

fn read_entry(name: &str) -> Entry {
    let dir = catalog_dir().join(name);
    let path = dir.join("pipeline.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pipeline = ingestlayer_cli::pipeline_files::parse(&path, &text)
        .unwrap_or_else(|e| panic!("the catalog entry does not validate: {e}"))
        .doc;
    let sources: Vec<&str> = pipeline["sources"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let door = if sources.contains(&"webhook:stripe") {
        Door::Stripe
    } else if sources.contains(&"webhook:github") {
        Door::Github
    } else {
        Door::Api
    };
    let github_event = pipeline["events"][0]
        .as_str()
        .and_then(|e| e.strip_prefix("github."))
        .unwrap_or_default()
        .to_owned();
    let mut samples = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("samples"))
        .unwrap_or_else(|e| panic!("{name}/samples: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        let (stem, lines) = if let Some(stem) = file.strip_suffix(".jsonl") {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, l)| {
                    let v: Value = serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("{name}/samples/{file}:{}: {e}", i + 1));
                    line(v, &format!("{name}/samples/{file}:{}", i + 1))
                })
                .collect();
            (stem.to_owned(), lines)
        } else if let Some(stem) = file.strip_suffix(".json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap())
                .unwrap_or_else(|e| panic!("{name}/samples/{file}: {e}"));
            (stem.to_owned(), vec![Line::Event(v)])
        } else {
            panic!("{name}/samples/{file}: a sample is .json (one event) or .jsonl (a sequence)");
        };
        let post = if stem.starts_with("post.") {
            true
        } else if stem.starts_with("quiet.") {
            false
        } else {
            panic!("{name}/samples/{file}: a sample's name starts with post. or quiet.");
        };
        samples.push(Sample {
            name: stem,
            post,
            lines,
        });
    }
    Entry {
        name: name.to_owned(),
        dir,
        pipeline,
        door,
        github_event,
        samples,
    }
}

fn line(v: Value, at: &str) -> Line {
    match v.get("$check_heartbeats") {
        Some(d) => {
            let d = d
                .as_str()
                .unwrap_or_else(|| panic!("{at}: a duration such as \"1h11m\""));
            Line::CheckHeartbeats(
                duration(d)
                    .unwrap_or_else(|| panic!("{at}: {d:?} is not a duration such as 1h11m")),
            )
        }
        None => Line::Event(v),
    }
}

/// `1h11m`, `30m`, `90s`, `1d`: the pipeline's own duration units.
fn duration(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total += number.parse::<u64>().ok()? * unit;
        number.clear();
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

/// A stack holding only `entry`'s pipeline, the demo entities, the webhook sources and the
/// workspace members the mentions look up.
async fn stack_for(entry: &Entry) -> Stack {
    let s = Stack::new().await;
    // The stack comes with the product's example pipeline: this test wants only the entry's.
    s.dynamo
        .delete_item()
        .table_name(&s.res.pipelines_table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(
                seed::example_pipeline("#alerts")["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
        )
        .send()
        .await
        .unwrap();
    s.put_pipeline(&entry.pipeline).await;
    let entities = std::fs::read_to_string(catalog_dir().join("entities.jsonl")).unwrap();
    for l in entities.lines().filter(|l| !l.trim().is_empty()) {
        let mut e: Value = serde_json::from_str(l).unwrap();
        let id = e["id"].as_str().unwrap().to_owned();
        let obj = e.as_object_mut().unwrap();
        obj.remove("id");
        obj.insert("pk".into(), json!(format!("user#{id}")));
        seed::put_json(&s.dynamo, &s.res.entities_table, &e)
            .await
            .unwrap();
    }
    match entry.door {
        Door::Stripe => {
            s.add_webhook_source("stripe", Provider::Stripe, &[STRIPE_SECRET])
                .await
        }
        Door::Github => {
            s.add_webhook_source("github", Provider::Github, &[GITHUB_SECRET])
                .await
        }
        Door::Api => {}
    }
    for (email, id) in SLACK_USERS {
        s.standin.add_user(email, id);
    }
    s
}

/// Sends one event through the entry's door; returns the event id the stack answered.
async fn send(s: &Stack, entry: &Entry, event: &Value, at: &str) -> String {
    let body = serde_json::to_vec(event).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (status, answer) = match entry.door {
        Door::Api => {
            s.post("/v1/events", &String::from_utf8(body).unwrap())
                .await
        }
        Door::Stripe => {
            let header = sign::stripe(STRIPE_SECRET, now, &body);
            s.webhook("stripe", &[("stripe-signature", header)], &body)
                .await
        }
        Door::Github => {
            let headers = vec![
                ("x-github-event", entry.github_event.clone()),
                ("x-github-delivery", ulid::Ulid::new().to_string()),
                ("x-hub-signature-256", sign::github(GITHUB_SECRET, &body)),
            ];
            s.webhook("github", &headers, &body).await
        }
    };
    assert_eq!(status, 202, "{at}: the stack refused the sample: {answer}");
    assert_eq!(answer["duplicate"], json!(false), "{at}: {answer}");
    answer["id"].as_str().unwrap_or_default().to_owned()
}

/// Runs the consumers until both queues are empty, in flight included (a message that
/// delivery paces comes back later), so everything a line causes has happened.
async fn drain(s: &Stack, at: &str) {
    let start = Instant::now();
    loop {
        s.pump().await;
        if s.depth(&s.res.events_queue_url).await == 0 && s.delivery_depth().await == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{at}: the queues did not drain within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the heartbeat check as the schedule would, `after` from now.
async fn check_heartbeats(s: &Stack, after: Duration, at: &str) {
    let now = time::OffsetDateTime::now_utc() + after;
    heartbeat_check(s, now, at).await;
}

async fn heartbeat_check(s: &Stack, now: time::OffsetDateTime, at: &str) {
    if let Err(e) = ingestlayer::routing::check_heartbeats(&s.pipeline, now).await {
        panic!("{at}: the heartbeat check failed: {e}");
    }
}

/// What a snapshot holds of a posted message: where it went and what it showed, with what
/// changes from run to run (event ids, link expiries and signatures, times) normalised.
fn snapshot(m: &PostedMessage, ids: &[String]) -> Value {
    let mut ids: Vec<String> = ids.to_vec();
    if let Some(payload) = m.metadata.as_ref().map(|md| &md["event_payload"]) {
        ids.extend(payload["event_id"].as_str().map(str::to_owned));
        if let Some(list) = payload["event_ids"].as_array() {
            ids.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
    }
    ids.retain(|i| !i.is_empty());
    ids.sort_by_key(|i| std::cmp::Reverse(i.len()));
    ids.dedup();
    let mut v = json!({
        "channel": format!("#{}", m.channel),
        "text": m.text,
        "blocks": m.blocks,
    });
    normalise(&mut v, &ids);
    v
}

fn normalise(v: &mut Value, ids: &[String]) {
    match v {
        Value::String(s) => *s = normalise_text(s, ids),
        Value::Array(a) => a.iter_mut().for_each(|x| normalise(x, ids)),
        Value::Object(o) => o.values_mut().for_each(|x| normalise(x, ids)),
        _ => {}
    }
}

fn normalise_text(s: &str, ids: &[String]) -> String {
    let mut out = s.to_owned();
    for id in ids {
        out = out.replace(id.as_str(), "<event-id>");
        // In a link's target the id is percent-encoded.
        let encoded = id.replace(':', "%3A");
        if encoded != *id {
            out = out.replace(&encoded, "<event-id>");
        }
    }
    out = replace_after(&out, "exp=", |c| c.is_ascii_digit(), "<exp>");
    out = replace_after(&out, "sig=", |c| !"&|>\" ".contains(c), "<sig>");
    slack_dates(&out)
}

/// Replaces the run of characters that `keep` accepts after each `marker`.
fn replace_after(s: &str, marker: &str, keep: impl Fn(char) -> bool, with: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        rest = &rest[i + marker.len()..];
        let end = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        if end > 0 {
            out.push_str(with);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `<!date^1796000000^{date_short} at {time}|Nov 27, 2026 10:00 UTC>` keeps its format and
/// loses its time: `<!date^<time>^{date_short} at {time}|<time>>`.
fn slack_dates(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("<!date^") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find('>') else {
            break;
        };
        let token = &tail[..end];
        let parts: Vec<&str> = token.splitn(3, '^').collect();
        let format = parts.get(2).map(|f| f.split('|').next().unwrap_or(f));
        out.push_str("<!date^<time>");
        if let Some(f) = format {
            out.push('^');
            out.push_str(f);
        }
        if token.contains('|') {
            out.push_str("|<time>");
        }
        out.push('>');
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Runs every sample of `name` through its own fresh stack and compares with the snapshots.
async fn check_entry(name: &str) {
    let entry = read_entry(name);
    assert!(
        entry.samples.iter().any(|s| s.post) && entry.samples.iter().any(|s| !s.post),
        "{name}: an entry needs at least one post.* and one quiet.* sample"
    );
    check_schema(&entry);
    let expected_dir = entry.dir.join("expected");
    let mut failures = Vec::new();
    for sample in &entry.samples {
        let at = format!("{name}/samples/{}", sample.name);
        let s = stack_for(&entry).await;
        let mut ids = Vec::new();
        for (i, l) in sample.lines.iter().enumerate() {
            let at = format!("{at}:{}", i + 1);
            match l {
                Line::Event(e) => ids.push(send(&s, &entry, e, &at).await),
                Line::CheckHeartbeats(after) => check_heartbeats(&s, *after, &at).await,
            }
            drain(&s, &at).await;
        }
        let got: Vec<Value> = s
            .standin
            .messages()
            .iter()
            .map(|m| snapshot(m, &ids))
            .collect();
        let file = expected_dir.join(format!("{}.json", sample.name));
        if !sample.post {
            if !got.is_empty() {
                failures.push(format!(
                    "{at}: a quiet sample posted {} message(s):\n{}",
                    got.len(),
                    serde_json::to_string_pretty(&got).unwrap()
                ));
            }
            if file.exists() {
                failures.push(format!(
                    "{}: a quiet sample has no snapshot; remove it",
                    file.display()
                ));
            }
            continue;
        }
        if got.is_empty() {
            failures.push(format!("{at}: a post sample posted nothing"));
            continue;
        }
        let text = serde_json::to_string_pretty(&Value::Array(got.clone())).unwrap() + "\n";
        if updating() {
            std::fs::create_dir_all(&expected_dir).unwrap();
            std::fs::write(&file, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&file) {
            Err(_) => failures.push(format!(
                "{}: missing snapshot; write it with UPDATE_SNAPSHOTS=1 and review it",
                file.display()
            )),
            Ok(want) => {
                let want: Value = serde_json::from_str(&want)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                if want != Value::Array(got) {
                    failures.push(format!(
                        "{at}: the messages differ from {}\n--- expected\n{}\n--- got\n{text}",
                        file.display(),
                        serde_json::to_string_pretty(&want).unwrap()
                    ));
                }
            }
        }
    }
    // A snapshot whose sample is gone is stale.
    if let Ok(dir) = std::fs::read_dir(&expected_dir) {
        for f in dir.flatten() {
            let file = f.file_name().to_string_lossy().into_owned();
            let stem = file.strip_suffix(".json").unwrap_or(&file);
            if !entry.samples.iter().any(|s| s.post && s.name == stem) {
                failures.push(format!(
                    "{name}/expected/{file}: no post sample of that name"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Our own events' samples (not a provider's) validate against the entry's schema.json, with
/// the validator ingest uses.
fn check_schema(entry: &Entry) {
    let path = entry.dir.join("schema.json");
    if entry.door != Door::Api {
        assert!(
            !path.exists(),
            "{}: a provider's event has no schema of ours",
            path.display()
        );
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: our own event needs its schema: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).unwrap();
    let name = entry.pipeline["events"][0].as_str().unwrap();
    assert_eq!(
        schema["title"],
        name,
        "{}: the schema's title names its event",
        path.display()
    );
    let mut registry = SchemaRegistry::builtin(false).unwrap();
    let builtin = EventName::parse(name).unwrap();
    if registry.has_schema(&builtin) {
        let shipped: Value = serde_json::from_str(
            ingestlayer::ingress::schema::BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(
            schema,
            shipped,
            "{}: ingest ships its own schema for {name}; the catalog's must be the same",
            path.display()
        );
    }
    registry.register(name, &schema).unwrap();
    for sample in &entry.samples {
        for l in &sample.lines {
            let Line::Event(e) = l else { continue };
            let ev_name = EventName::parse(e["name"].as_str().unwrap()).unwrap();
            assert_eq!(ev_name.as_str(), name, "{}/{}", entry.name, sample.name);
            if let Err(errors) = registry.validate(&ev_name, &e["data"], "/data") {
                panic!(
                    "{}/samples/{}: does not match schema.json: {errors:?}",
                    entry.name, sample.name
                );
            }
        }
    }
}

macro_rules! entry_tests {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                check_entry($name).await;
            }
        )*
        const TESTED: &[&str] = &[$($name),*];
    };
}

entry_tests! {
    catalog_canceled_subscriptions => "canceled-subscriptions",
    catalog_churn_risk_signals => "churn-risk-signals",
    catalog_ci_cd_build_status => "ci-cd-build-status",
    catalog_cron_job_health => "cron-job-health",
    catalog_error_spikes => "error-spikes",
    catalog_failed_logins => "failed-logins",
    catalog_failed_payments => "failed-payments",
    catalog_feature_usage => "feature-usage",
    catalog_file_uploads => "file-uploads",
    catalog_form_submissions => "form-submissions",
    catalog_high_value_leads => "high-value-leads",
    catalog_new_subscriptions => "new-subscriptions",
    catalog_one_off_purchases => "one-off-purchases",
    catalog_successful_payments => "successful-payments",
    catalog_support_escalations => "support-escalations",
    catalog_trial_conversions => "trial-conversions",
    catalog_usage_limit_hits => "usage-limit-hits",
    catalog_user_signups => "user-signups",
    catalog_waitlist_signups => "waitlist-signups",
}

#[test]
fn the_catalog_is_exactly_these_entries_each_with_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(catalog_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, ENTRIES);
    assert_eq!(TESTED, ENTRIES);
}

#[test]
fn sample_durations_read_like_the_pipelines() {
    assert_eq!(duration("1h11m"), Some(Duration::from_secs(4260)));
    assert_eq!(duration("30m"), Some(Duration::from_secs(1800)));
    assert_eq!(duration("1d"), Some(Duration::from_secs(86_400)));
    assert_eq!(duration("1h1"), None);
    assert_eq!(duration("soon"), None);
}

#[test]
fn snapshots_normalise_what_changes_between_runs_and_nothing_else() {
    let ids = vec!["tests:01JEXAMPLE".to_owned()];
    let text = "`tests:01JEXAMPLE` · <https://api.example/v1/events/tests%3A01JEXAMPLE?exp=1796000000&sig=AbC-_d|view> · \
                <!date^1796000000^{date_short} at {time}|Nov 27, 2026> · <!date^1796000000^{ago}> · sig=  · 10:02";
    assert_eq!(
        normalise_text(text, &ids),
        "`<event-id>` · <https://api.example/v1/events/<event-id>?exp=<exp>&sig=<sig>|view> · \
         <!date^<time>^{date_short} at {time}|<time>> · <!date^<time>^{ago}> · sig=  · 10:02"
    );
}

// `ingestlayer pipelines new --from`, through the binary.

fn new_from(args: &[&str]) -> crate::harness::Run {
    let mut all = vec!["pipelines", "new"];
    all.extend_from_slice(args);
    run_with(&all, "http://127.0.0.1:9")
}

#[test]
fn pipelines_new_copies_an_entry_with_its_channel_and_prints_the_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pipelines");
    let from = catalog_dir().join("user-signups");
    let (from, out_s) = (from.display().to_string(), out.display().to_string());
    let r = new_from(&["--from", &from, "--channel", "#new-users", "--dir", &out_s]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let file = out.join("user-signups.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("channel: \"#new-users\""), "{text}");
    let original =
        std::fs::read_to_string(catalog_dir().join("user-signups/pipeline.yaml")).unwrap();
    assert_eq!(
        text,
        original.replace("\"#signups\"", "\"#new-users\""),
        "only the channel changes; comments and the rest stay"
    );
    assert!(
        r.stdout.contains(&format!("wrote {}", file.display())),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("next: ingestlayer pipelines apply {out_s}/")),
        "{}",
        r.stdout
    );
    let v = run_with(
        &["pipelines", "validate", &file.display().to_string()],
        "http://127.0.0.1:9",
    );
    assert_eq!(v.code, Some(0), "{}", v.stderr);

    // Once there, the file is kept unless --force.
    let again = new_from(&["--from", &from, "--channel", "#other", "--dir", &out_s]);
    assert_eq!(again.code, Some(2), "{}", again.stdout);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let forced = new_from(&[
        "--from",
        &from,
        "--channel",
        "#other",
        "--dir",
        &out_s,
        "--force",
    ]);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("\"#other\""));
}

#[test]
fn pipelines_new_keeps_a_second_channel_and_says_how_to_rename_it() {
    let dir = tempfile::tempdir().unwrap();
    let out_s = dir.path().display().to_string();
    let from = catalog_dir()
        .join("support-escalations")
        .display()
        .to_string();
    let r = new_from(&[
        "--from",
        &from,
        "--channel",
        "#help",
        "--dir",
        &out_s,
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["channels"], json!(["#help", "#support-urgent"]));
    assert_eq!(j["kept"], json!(["#support-urgent"]));
    let text = std::fs::read_to_string(dir.path().join("support-escalations.yaml")).unwrap();
    // The route follows the renamed channel.
    assert!(text.contains("default: [\"#help\"]"), "{text}");

    let renamed = new_from(&[
        "--from",
        &from,
        "--channel",
        "#help",
        "--channel",
        "#support-urgent=#help-urgent",
        "--dir",
        &out_s,
        "--force",
    ]);
    assert_eq!(renamed.code, Some(0), "{}", renamed.stderr);
    let text = std::fs::read_to_string(dir.path().join("support-escalations.yaml")).unwrap();
    assert!(text.contains("to: [\"#help-urgent\"]"), "{text}");
    // Every channel the pipeline posts to is renamed (the entry's comments keep its story).
    let yaml: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!yaml.contains("#support"), "{text}");

    let bad = new_from(&[
        "--from",
        &from,
        "--channel",
        "#Not A Channel",
        "--dir",
        &out_s,
    ]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("--channel"), "{}", bad.stderr);
    let missing = new_from(&["--from", "catalog/no-such-entry", "--dir", &out_s]);
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains("pipeline.yaml"),
        "{}",
        missing.stderr
    );
}
