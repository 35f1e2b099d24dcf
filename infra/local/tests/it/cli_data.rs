//! `ingestlayer entities …` and `ingestlayer events …` as the binary, against a local stack
//! registered in the emulator's CloudFormation (see `cli.rs`), with the ingest handler served
//! over HTTP at the stack's `ApiUrl` where an event is sent.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;
use ingestlayer_local::resources::LocalUrls;
use serde_json::{json, Value};

use crate::harness::{binary, endpoint, registered, run, Run, Stack, API_KEY};

/// Every item of a table, by key, as JSON.
async fn scan(s: &Stack, table: &str, key: &str) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    let mut start = None;
    loop {
        let page = s
            .dynamo
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let Some(AttributeValue::S(k)) = item.get(key).cloned() else {
                panic!("an item without {key}")
            };
            all.insert(k, serde_dynamo::from_item(item).unwrap());
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return all,
        }
    }
}

fn users_csv(dir: &Path, n: usize) -> String {
    let plans = ["free", "pro", "team"];
    let mut text = String::from("id,account,plan,owner\n");
    for i in 0..n {
        text.push_str(&format!(
            "c_{i},acct_{},{},owner{}@example.com\n",
            i % 97,
            plans[i % 3],
            i % 13
        ));
    }
    let p = dir.join("users.csv");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn an_import_of_10000_rows_is_all_readable_and_importing_it_again_changes_nothing() {
    let s = registered().await;
    let dir = tempfile::tempdir().unwrap();
    let file = users_csv(dir.path(), 10_000);

    let first = run(
        &s,
        &[
            "entities", "import", &file, "--entity", "user", "--key", "id", "--json",
        ],
    );
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let report = first.json();
    assert_eq!(report["read"], 10_000);
    assert_eq!(report["written"], 10_000);
    assert_eq!(report["unchanged"], 0);
    assert_eq!(report["rejected"], json!([]));
    assert!(report["rows_per_second"].as_f64().unwrap() > 0.0);

    let table = &s.res.entities_table;
    let stored = scan(&s, table, "pk").await;
    assert_eq!(
        stored.len(),
        10_000 + 3,
        "the import and the three seeded users"
    );
    for i in 0..10_000 {
        let item = &stored[&format!("user#c_{i}")];
        assert_eq!(
            *item,
            json!({
                "pk": format!("user#c_{i}"),
                "account": format!("acct_{}", i % 97),
                "plan": (["free", "pro", "team"][i % 3]),
                "owner": format!("owner{}@example.com", i % 13),
            }),
            "row {i}"
        );
    }

    let again = run(&s, &["entities", "import", &file, "--entity", "user"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again
            .stdout
            .contains("10000 rows read, 0 written, 10000 unchanged, 0 rejected"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("rows/s"), "{}", again.stdout);
    assert!(
        !again.stderr.contains('\u{1b}'),
        "not a terminal: plain lines, no redraw codes: {}",
        again.stderr
    );
    assert_eq!(scan(&s, table, "pk").await, stored, "nothing changed");

    let got = run(&s, &["entities", "get", "user", "c_4242", "--json"]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert_eq!(
        got.json()["attributes"],
        json!({"account": "acct_71", "plan": "free", "owner": "owner4@example.com"})
    );
}

#[tokio::test]
async fn rejected_rows_are_named_by_line_and_the_good_rows_are_still_imported() {
    let s = registered().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "id,plan,account\nb_1,pro,acme\n,free,nobody\nb_2,team\nb_1,free,again\nb_3,free,initech\n",
    )
    .unwrap();
    let r = run(
        &s,
        &[
            "entities",
            "import",
            csv.to_str().unwrap(),
            "--entity",
            "user",
        ],
    );
    assert_eq!(r.code, Some(2), "rows were rejected: {}", r.stderr);
    let name = csv.display().to_string();
    for (line, why) in [
        (3, "no id"),
        (4, "2 cells where the header has 3"),
        (5, "duplicate id \"b_1\" (first on line 2)"),
    ] {
        assert!(
            r.stdout
                .contains(&format!("{name}:{line}: rejected: {why}")),
            "line {line}: {}",
            r.stdout
        );
    }
    assert!(
        r.stdout
            .contains("5 rows read, 2 written, 0 unchanged, 3 rejected"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("3 rows of") && r.stderr.contains("fix them and import"),
        "{}",
        r.stderr
    );

    let jsonl = dir.path().join("bad.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": \"j_1\", \"plan\": \"pro\", \"seats\": 12, \"tags\": [\"beta\"]}\n\
         {\"id\": \"j_2\", \"plan\": \n\
         {\"plan\": \"free\"}\n\
         {\"id\": \"j_3\", \"n\": 1e300}\n",
    )
    .unwrap();
    let r = run(
        &s,
        &[
            "entities",
            "import",
            jsonl.to_str().unwrap(),
            "--entity",
            "user",
            "--json",
        ],
    );
    assert_eq!(r.code, Some(2));
    let report = r.json();
    let lines: Vec<u64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 4]);
    assert_eq!(report["written"], 1);

    for (id, plan) in [("b_1", "pro"), ("b_3", "free"), ("j_1", "pro")] {
        let got = run(&s, &["entities", "get", "user", id, "--json"]);
        assert_eq!(got.code, Some(0), "{id}: {}", got.stderr);
        assert_eq!(got.json()["attributes"]["plan"], plan, "{id}");
    }
    let typed = run(&s, &["entities", "get", "user", "j_1", "--json"]).json();
    assert_eq!(typed["attributes"]["seats"], 12, "JSON Lines keep types");
    assert_eq!(typed["attributes"]["tags"], json!(["beta"]));
}

#[tokio::test]
async fn entities_get_prints_the_seeded_user_and_names_the_import_for_a_missing_one() {
    let s = registered().await;
    let got = run(&s, &["entities", "get", "user", "u_42"]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.stdout.starts_with("user#u_42\n"), "{}", got.stdout);
    assert!(got.stdout.contains("  plan     pro\n"), "{}", got.stdout);
    assert!(got.stdout.contains("  account  acme\n"), "{}", got.stdout);

    let missing = run(&s, &["entities", "get", "user", "u_404"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("no user \"u_404\"")
            && missing.stderr.contains("ingestlayer entities import"),
        "{}",
        missing.stderr
    );
    let bad = run(&s, &["entities", "get", "us#er", "u_42"]);
    assert_eq!(bad.code, Some(2));
}

/// The stack registered with its `ApiUrl` at `api_url`.
async fn register_with_api(s: &Stack, api_url: String) {
    let urls = LocalUrls {
        api_url,
        ..s.local().urls
    };
    s.res.register_stack(&s.sdk, &urls).await.unwrap();
}

/// The ingest handler over HTTP; its base URL.
async fn serve_api(s: &Stack) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ingestlayer_local::runner::serve_ingest(
        listener,
        s.ingest.clone(),
        None,
    ));
    format!("http://{addr}")
}

/// `ingestlayer --local --stack <stack> ARGS…` with `INGESTLAYER_API_KEY` as given.
async fn run_keyed(s: &Stack, key: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.args(["--local", "--stack", s.res.prefix.as_str()])
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("INGESTLAYER_STACK")
        .env_remove("INGESTLAYER_API_KEY");
    if let Some(k) = key {
        cmd.env("INGESTLAYER_API_KEY", k);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn an_event_sent_with_the_cli_is_stored_whole_and_read_back_by_its_id() {
    let s = registered().await;
    let api = serve_api(&s).await;
    register_with_api(&s, api).await;
    let data = r#"{"user_id": "u_42", "feature": "csv.export", "count": 3, "plan": "free"}"#;

    let sent = run_keyed(
        &s,
        Some(API_KEY),
        &["events", "send", "feature.used", "--data", data, "--json"],
    )
    .await;
    assert_eq!(sent.code, Some(0), "{}", sent.stderr);
    let answer = sent.json();
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["duplicate"], false);
    let id = answer["id"].as_str().unwrap().to_owned();

    let got = run_keyed(&s, None, &["events", "get", &id, "--json"]).await;
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let stored = got.json();
    assert_eq!(stored["id"], id.as_str());
    assert_eq!(stored["name"], "feature.used");
    assert_eq!(stored["source"], "tests");
    assert_eq!(stored["envelope"]["name"], "feature.used");
    assert_eq!(
        stored["envelope"]["data"],
        serde_json::from_str::<Value>(data).unwrap()
    );
    let text = run_keyed(&s, None, &["events", "get", &id]).await;
    assert!(
        text.stdout.contains("name         feature.used") && text.stdout.contains("\"count\": 3"),
        "{}",
        text.stdout
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.json");
    std::fs::write(
        &file,
        r#"{"user_id": "u_7", "feature": "csv.export", "count": 1, "plan": "pro"}"#,
    )
    .unwrap();
    let at_file = format!("@{}", file.display());
    let args = [
        "events",
        "send",
        "feature.used",
        "--data",
        &at_file,
        "--id",
        "order-1",
        "--key",
        API_KEY,
    ];
    let once = run_keyed(&s, None, &args).await;
    assert_eq!(once.code, Some(0), "{}", once.stderr);
    assert_eq!(once.stdout, "tests:order-1  accepted\n");
    let twice = run_keyed(&s, None, &args).await;
    assert!(
        twice.stdout.starts_with("tests:order-1  duplicate"),
        "{}",
        twice.stdout
    );

    let refused = run_keyed(
        &s,
        Some("il_not_a_key_of_this_stack"),
        &["events", "send", "feature.used"],
    )
    .await;
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("refused the key (401")
            && refused.stderr.contains("INGESTLAYER_API_KEY"),
        "{}",
        refused.stderr
    );
    let invalid = run_keyed(&s, Some(API_KEY), &["events", "send", "no spaces allowed"]).await;
    assert_eq!(invalid.code, Some(2));
    assert!(
        invalid.stderr.contains("the API refused the event (400)")
            && invalid.stderr.contains("/name"),
        "{}",
        invalid.stderr
    );

    let missing = run_keyed(&s, None, &["events", "get", "01NOSUCHEVENT"]).await;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("no event \"01NOSUCHEVENT\""),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn a_missing_key_or_a_stopped_api_says_what_to_set_or_start() {
    let s = registered().await;
    let no_key = run_keyed(&s, None, &["events", "send", "feature.used"]).await;
    assert_eq!(no_key.code, Some(2));
    assert!(
        no_key
            .stderr
            .contains("give --key KEY or set INGESTLAYER_API_KEY")
            && no_key.stderr.contains(".ingestlayer/dev.env"),
        "{}",
        no_key.stderr
    );

    register_with_api(&s, "http://127.0.0.1:9".to_owned()).await;
    let stopped = run_keyed(&s, Some(API_KEY), &["events", "send", "feature.used"]).await;
    assert_eq!(stopped.code, Some(1));
    assert!(
        stopped
            .stderr
            .contains("could not reach the ingest API at http://127.0.0.1:9/v1/events")
            && stopped.stderr.contains("make dev"),
        "{}",
        stopped.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let file = users_csv(dir.path(), 3);
    let mut cmd = Command::new(binary());
    let dead = cmd
        .args(["--local", "entities", "import", &file, "--entity", "user"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&dead.stderr);
    assert_eq!(dead.status.code(), Some(1));
    assert!(
        stderr.contains("could not reach the local stack") && stderr.contains("make dev"),
        "{stderr}"
    );
}
