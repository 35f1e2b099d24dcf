//! The `ingestlayer` command line, as its binary, against a local stack registered in the
//! emulator's CloudFormation exactly as `make dev` registers its own.
//!
//! `make test` builds the binary before `cargo test`; run alone, build it first with
//! `cargo build -p ingestlayer-cli`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::harness::{endpoint, feature_used, Stack};

/// The `ingestlayer` binary, failing the test when it is missing or older than its sources.
pub(crate) fn binary() -> PathBuf {
    let path = ingestlayer_local::functions::binary_dir()
        .unwrap()
        .join("ingestlayer");
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

pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) fn run_with(args: &[&str], endpoint: &str) -> Run {
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
        .output()
        .unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `ingestlayer --local --stack <this stack> ARGS…`.
pub(crate) fn run(s: &Stack, args: &[&str]) -> Run {
    let mut all = vec!["--local", "--stack", s.res.prefix.as_str()];
    all.extend_from_slice(args);
    run_with(&all, &endpoint())
}

pub(crate) async fn registered() -> Stack {
    let s = Stack::new().await;
    s.res
        .register_stack(&s.sdk, &s.local().urls)
        .await
        .expect("register the stack's outputs");
    s
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const BETA: &str = "\
id: beta-usage
description: Beta features to #beta
events: [feature.used]
steps:
  - type: filter.match
    expr: \"feature == 'beta.export'\"
destinations:
  - type: slack
    channel: \"#beta\"
    template:
      header: \"Beta: $event.feature\"
";

#[tokio::test]
async fn a_pipeline_applied_from_a_file_routes_the_next_event_to_its_channel() {
    let s = registered().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "beta.yaml", BETA);

    let v = run(&s, &["pipelines", "validate", &file]);
    assert_eq!(v.code, Some(0), "{}", v.stderr);
    let d = run(&s, &["pipelines", "diff", &file]);
    assert!(d.stdout.contains("create     beta-usage"), "{}", d.stdout);
    assert!(d.stdout.contains("+  channel: '#beta'"), "{}", d.stdout);
    let a = run(&s, &["pipelines", "apply", &file]);
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert!(
        a.stdout.contains("created    beta-usage  (version 1)"),
        "{}",
        a.stdout
    );
    let again = run(&s, &["pipelines", "apply", &file]);
    assert!(
        again.stdout.contains("unchanged  beta-usage"),
        "{}",
        again.stdout
    );

    let (status, _) = s
        .post("/v1/events", &feature_used("u_42", "beta.export"))
        .await;
    assert_eq!(status, 202);
    assert!(
        s.pump_until(Duration::from_secs(15), |s| !s
            .standin
            .messages_in("#beta")
            .is_empty())
            .await,
        "the applied pipeline posted nothing to #beta"
    );
    let posted = s.standin.messages_in("#beta");
    assert_eq!(posted.len(), 1);
    let blocks = posted[0].blocks.clone().unwrap_or_default().to_string();
    assert!(blocks.contains("Beta: beta.export"), "{blocks}");

    let list = run(&s, &["pipelines", "list", "--json"]);
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    let beta = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "beta-usage")
        .expect("listed");
    assert_eq!(beta["version"], 1);
    assert_eq!(beta["state"], "enabled");
    assert_eq!(beta["channels"], serde_json::json!(["#beta"]));
}

#[tokio::test]
async fn an_export_diffs_clean_and_prune_disables_what_no_file_holds() {
    let s = registered().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exported");
    let e = run(&s, &["pipelines", "export", out.to_str().unwrap()]);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let d = run(&s, &["pipelines", "diff", out.to_str().unwrap(), "--prune"]);
    assert!(d.stdout.contains("0 to change"), "{}", d.stdout);

    let only_beta = dir.path().join("only-beta");
    std::fs::create_dir(&only_beta).unwrap();
    write(&only_beta, "beta.yaml", BETA);
    let a = run(
        &s,
        &["pipelines", "apply", only_beta.to_str().unwrap(), "--prune"],
    );
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert!(
        a.stdout.contains("disabled   feature-usage-to-alerts"),
        "{}",
        a.stdout
    );
    let list = run(&s, &["pipelines", "list", "--json"]);
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    let example = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "feature-usage-to-alerts")
        .unwrap();
    assert_eq!(example["state"], "disabled", "kept, not deleted");
}

#[tokio::test]
async fn a_plan_made_before_another_operators_apply_is_refused_and_their_change_kept() {
    let s = registered().await;
    let dir = tempfile::tempdir().unwrap();
    let example = include_str!("../../../../pipelines/feature-usage-to-alerts.yaml");
    let mine = write(
        dir.path(),
        "mine.yaml",
        &example.replace("#alerts", "#mine"),
    );
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let theirs_file = write(&theirs, "p.yaml", &example.replace("#alerts", "#theirs"));
    let plan = dir.path().join("plan.json");

    let d = run(
        &s,
        &["pipelines", "diff", &mine, "--out", plan.to_str().unwrap()],
    );
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    let theirs_applied = run(&s, &["pipelines", "apply", &theirs_file]);
    assert_eq!(theirs_applied.code, Some(0), "{}", theirs_applied.stderr);

    let refused = run(
        &s,
        &["pipelines", "apply", "--plan", plan.to_str().unwrap()],
    );
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("feature-usage-to-alerts changed since it was read"),
        "{}",
        refused.stderr
    );
    let list = run(&s, &["pipelines", "list", "--json"]);
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    let stored = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "feature-usage-to-alerts")
        .unwrap();
    assert_eq!(stored["channels"], serde_json::json!(["#theirs"]));
}

#[tokio::test]
async fn errors_name_the_file_line_and_field_or_the_stack_and_what_to_start() {
    let s = registered().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        &BETA.replace("feature == 'beta.export'", "feature == (("),
    );
    let v = run(&s, &["pipelines", "validate", &bad]);
    assert_eq!(v.code, Some(2));
    assert!(
        v.stderr.contains("bad.yaml:6: steps[0].expr:"),
        "{}",
        v.stderr
    );
    let refused = run(&s, &["pipelines", "apply", &bad]);
    assert_eq!(refused.code, Some(2), "nothing is written from a bad file");

    let dead = run_with(&["--local", "pipelines", "list"], "http://127.0.0.1:9");
    assert_eq!(dead.code, Some(1));
    assert!(
        dead.stderr.contains(
            "could not reach the local stack ingestlayer-dev in the emulator at http://127.0.0.1:9"
        ) && dead.stderr.contains("make dev"),
        "{}",
        dead.stderr
    );
    assert!(!dead.stderr.contains("dispatch failure"), "{}", dead.stderr);
    let missing = run_with(
        &["--local", "--stack", "no-such-stack", "pipelines", "list"],
        &endpoint(),
    );
    assert!(
        missing.stderr.contains("local stack no-such-stack")
            && missing.stderr.contains("was not found"),
        "{}",
        missing.stderr
    );
}
