//! The `ingestlayer` command line, as its binary, against a local stack registered in the
//! emulator's CloudFormation exactly as `make dev` registers its own.
//!
//! `make test` builds the binary before `cargo test`; run alone, build it first with
//! `cargo build -p ingestlayer-cli` (or name one with `INGESTLAYER_CLI_BIN`).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{endpoint, feature_used, registered, run, run_with};

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

const FREE_ON_PAID: &str = "\
id: free-on-paid
events: [feature.used]
steps:
  - type: enrich.entity
    entity: user
    key: user_id
    attributes: [account, plan]
  - type: filter.match
    expr: \"user.plan == 'free' && feature in {export, api}\"
destinations:
  - type: slack
    channel: \"#growth\"
";

#[tokio::test]
async fn pipelines_test_shows_the_deciding_part_the_enrichment_and_the_message_and_sends_once() {
    let s = registered().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.yaml", FREE_ON_PAID);
    // u_7 is on the free plan, u_42 on pro (the seeded users).
    let free = write(dir.path(), "free.json", &feature_used("u_7", "csv.export"));
    let pro = write(dir.path(), "pro.json", &feature_used("u_42", "csv.export"));
    let nobody = write(dir.path(), "nobody.json", &feature_used("nobody", "api"));

    let posted = run(&s, &["pipelines", "test", &file, "--event", &free]);
    assert_eq!(posted.code, Some(0), "{}", posted.stderr);
    assert!(
        posted.stdout.contains("found user#u_7: account, plan"),
        "{}",
        posted.stdout
    );
    assert!(posted.stdout.contains("    passed"), "{}", posted.stdout);
    assert!(posted.stdout.contains("┌─ #growth"), "{}", posted.stdout);
    assert!(posted.stdout.contains("Block Kit:"), "{}", posted.stdout);
    assert!(posted.stdout.contains("\"blocks\""), "{}", posted.stdout);

    let filtered = run(&s, &["pipelines", "test", &file, "--event", &pro]);
    assert!(
        filtered
            .stdout
            .contains("    failed\n    decided by: user.plan == 'free'"),
        "{}",
        filtered.stdout
    );
    assert!(
        filtered.stdout.contains("would not post"),
        "{}",
        filtered.stdout
    );

    let missed = run(
        &s,
        &["pipelines", "test", &file, "--event", &nobody, "--json"],
    );
    let report: Value = serde_json::from_str(&missed.stdout).unwrap();
    assert_eq!(report["steps"][0]["found"], false);
    assert_eq!(report["steps"][0]["key"], "user#nobody");
    assert_eq!(report["outcome"], "filtered");

    assert!(
        s.standin.messages_in("#growth").is_empty(),
        "testing posts nothing"
    );
    let sent = run(
        &s,
        &["pipelines", "test", &file, "--event", &free, "--send"],
    );
    assert_eq!(sent.code, Some(0), "{}", sent.stderr);
    assert!(
        s.pump_until(Duration::from_secs(15), |s| !s
            .standin
            .messages_in("#growth")
            .is_empty())
            .await
    );
    s.pump().await;
    let growth = s.standin.messages_in("#growth");
    assert_eq!(growth.len(), 1, "sent once");
    let blocks = growth[0].blocks.clone().unwrap_or_default().to_string();
    assert!(
        blocks.contains("not a real event"),
        "marked as a test: {blocks}"
    );
}

#[tokio::test]
async fn a_replay_counts_what_would_have_posted_per_channel_and_hour() {
    let s = registered().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.yaml", FREE_ON_PAID);
    for (user, feature) in [
        ("u_7", "csv.export"),
        ("u_7", "api"),
        ("u_42", "api"),
        ("u_7", "profile.view"),
    ] {
        let (status, _) = s.post("/v1/events", &feature_used(user, feature)).await;
        assert_eq!(status, 202);
    }
    let r = run(
        &s,
        &["pipelines", "test", &file, "--replay", "24h", "--json"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let replay: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(replay["events"], 4);
    assert_eq!(replay["listened"], 4);
    assert_eq!(replay["posted"], 2, "{replay}");
    assert_eq!(replay["filtered"], 2);
    let hours = replay["per_channel_hour"]["#growth"].as_object().unwrap();
    assert_eq!(hours.values().filter_map(Value::as_u64).sum::<u64>(), 2);
    let none = run(
        &s,
        &["pipelines", "test", &file, "--replay", "1ms", "--json"],
    );
    let none: Value = serde_json::from_str(&none.stdout).unwrap();
    assert_eq!(none["posted"], 0, "the window bounds what is read");
}
