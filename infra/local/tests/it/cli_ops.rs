//! The operator's side of the `ingestlayer` command line, as its binary, against a local
//! stack registered in the emulator's CloudFormation exactly as `make dev` registers its own:
//! `status`, `dlq list|redrive` on both DLQs, `keys`, `webhooks send`, and what they say when
//! the stack is not there.

use std::time::Duration;

use ingestlayer_local::resources::LocalUrls;
use serde_json::{json, Value};

use crate::harness::{
    endpoint, feature_used, posted_client_ids, registered, run, run_on, run_with, Run, Stack,
};

fn json_of(r: &Run) -> Value {
    assert_eq!(
        r.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    r.json()
}

fn queue<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {status}"))
}

/// A stack whose `#secret` channel the bot is not in, with one event for it parked and the
/// channel paused.
async fn paused_secret() -> Stack {
    let s = registered().await;
    s.standin.create_channel("secret", true, false);
    let mut p = ingestlayer_local::seed::example_pipeline("#secret");
    p["id"] = json!("to-secret");
    s.put_pipeline(&p).await;
    let event = json!({"name": "feature.used", "id": "sec-0", "data": {"user_id": "u_42", "feature": "api", "count": 1, "plan": "pro"}});
    let (status, body) = s.post("/v1/events", &event.to_string()).await;
    assert_eq!(status, 202, "{body}");
    s.pump().await;
    assert_eq!(s.channels().paused().await.unwrap().len(), 1, "paused");
    s
}

#[tokio::test]
async fn status_and_dlq_show_a_paused_channel_with_its_hint_and_backlog_and_a_redrive_lifts_it() {
    let s = paused_secret().await;

    let status = json_of(&run(&s, &["status", "--json"]));
    let paused = status["paused"].as_array().unwrap();
    assert_eq!(paused.len(), 1, "{status}");
    assert_eq!(paused[0]["name"], "#secret");
    assert_eq!(paused[0]["key"], "chan#default:#secret");
    assert_eq!(paused[0]["error"], "not_in_channel");
    assert!(
        paused[0]["hint"]
            .as_str()
            .unwrap()
            .contains("invite the app to #secret"),
        "{status}"
    );
    assert_eq!(
        paused[0]["fix"],
        format!(
            "ingestlayer --local --stack {} dlq redrive --channel '#secret'",
            s.res.prefix
        )
    );
    let errors = status["last_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{status}");
    assert_eq!(errors[0]["channel"], "#secret");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("not_in_channel"),
        "{status}"
    );
    let slack_dlq = queue(&status, "slack DLQ");
    assert_eq!(slack_dlq["depth"], 1, "{status}");
    assert_eq!(slack_dlq["oldest"]["state"], "unavailable");
    assert!(
        slack_dlq["oldest"]["why"]
            .as_str()
            .unwrap()
            .contains("not available from this emulator"),
        "{status}"
    );
    assert_eq!(queue(&status, "events")["oldest"]["state"], "empty");
    assert_eq!(queue(&status, "slack drains")["depth"], 0, "{status}");
    assert_eq!(status["queues"].as_array().unwrap().len(), 7);
    assert_eq!(status["missing"], json!([]), "{status}");

    let text = run(&s, &["status"]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(
        text.stdout
            .contains("age: not available from this emulator"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("then: ingestlayer --local"),
        "{}",
        text.stdout
    );

    let listed = json_of(&run(&s, &["dlq", "list", "--json"]));
    let parked = listed["slack"].as_array().unwrap();
    assert_eq!(parked.len(), 1, "{listed}");
    assert_eq!(parked[0]["event_id"], "tests:sec-0");
    assert_eq!(parked[0]["pipeline_id"], "to-secret");
    assert!(
        parked[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not_in_channel"),
        "{listed}"
    );
    assert_eq!(listed["events"], json!([]));

    // The fix, then the redrive the status named.
    s.standin.create_channel("secret", true, true);
    let redriven = run(&s, &["dlq", "redrive", "--channel", "#secret", "--json"]);
    let r = json_of(&redriven);
    assert_eq!(r["moved"], 1, "{r}");
    assert_eq!(r["resumed"], json!(["#secret"]));
    assert!(
        redriven.stderr.contains("moved: 1/1 messages"),
        "plain progress lines when stderr is not a terminal: {}",
        redriven.stderr
    );
    assert!(!redriven.stderr.contains('\u{1b}'), "{}", redriven.stderr);

    let after = json_of(&run(&s, &["status", "--json"]));
    assert_eq!(after["paused"], json!([]), "{after}");
    assert_eq!(queue(&after, "slack DLQ")["depth"], 0);
    assert_eq!(
        after["last_errors"][0]["channel"], "#secret",
        "the last error stays for the record"
    );
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s
            .standin
            .messages_in("#secret")
            .is_empty())
            .await,
        "the redriven message was not posted"
    );
    assert_eq!(
        posted_client_ids(&s.standin.messages_in("#secret")),
        ["sec-0"]
    );
    assert_eq!(
        json_of(&run(&s, &["dlq", "list", "--queue", "slack", "--json"])),
        json!({"slack": []})
    );
}

/// Receives the events queue's messages without settling them (visibility 0), as a pipeline
/// that keeps failing would, until SQS's redrive policy has moved them to the events DLQ.
async fn fail_until_dead(s: &Stack) {
    for _ in 0..30 {
        s.sqs
            .receive_message()
            .queue_url(&s.res.events_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        if s.depth(&s.res.events_dlq_url).await > 0 && s.depth(&s.res.events_queue_url).await == 0 {
            return;
        }
    }
    panic!("the emulator never moved the event to the events DLQ");
}

#[tokio::test]
async fn the_events_dlq_lists_event_ids_and_names_and_a_redrive_sends_them_back_to_the_pipeline() {
    let s = registered().await;
    let (status, body) = s.post("/v1/events", &feature_used("u_42", "api")).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    fail_until_dead(&s).await;

    let listed = json_of(&run(&s, &["dlq", "list", "--queue", "events", "--json"]));
    let dead = listed["events"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{listed}");
    assert_eq!(dead[0]["event_id"], id.as_str());
    assert_eq!(dead[0]["name"], "feature.used");
    assert!(dead[0]["receive_count"].as_u64().is_some(), "{listed}");
    assert!(listed.get("slack").is_none(), "only the queue asked for");
    let text = run(&s, &["dlq", "list"]);
    assert!(
        text.stdout
            .contains(&format!("event {id}  feature.used  received")),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("slack DLQ: nothing parked"));

    let status = json_of(&run(&s, &["status", "--json"]));
    assert_eq!(queue(&status, "events DLQ")["depth"], 1, "{status}");

    let refused = run(
        &s,
        &["dlq", "redrive", "--queue", "events", "--channel", "#x"],
    );
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("redriven whole"),
        "{}",
        refused.stderr
    );

    let r = json_of(&run(&s, &["dlq", "redrive", "--queue", "events", "--json"]));
    assert_eq!(r["queue"], "events");
    assert_eq!(r["moved"], 1, "{r}");
    assert_eq!(s.depth(&s.res.events_dlq_url).await, 0);
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s.alerts().is_empty())
            .await,
        "the redriven event never reached #alerts"
    );
}

#[tokio::test]
async fn keys_are_listed_as_json_without_the_key_itself() {
    let s = registered().await;
    let created = run(&s, &["keys", "create", "--source", "web-app"]);
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let key = created.stdout.trim().to_owned();
    assert!(created.stderr.contains("shown once"), "{}", created.stderr);
    let list = run(&s, &["keys", "list", "--json"]);
    assert!(!list.stdout.contains(&key), "the key is never shown again");
    let list = json_of(&list);
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["source"] == "web-app")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(mine["id"], ingestlayer::ingress::api_keys::key_id(&key));
    assert_eq!(mine["state"], "active");
    let bad = run(&s, &["keys", "create", "--source", "Not Valid"]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("letters, digits"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_send_posts_to_the_api_url_the_stack_registered() {
    let s = Stack::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(ingestlayer_local::runner::serve_ingest(
        listener,
        s.ingest.clone(),
        None,
    ));
    s.res
        .register_stack(
            &s.sdk,
            &LocalUrls {
                api_url,
                ..s.local().urls
            },
        )
        .await
        .unwrap();
    let stack = s.res.prefix.clone();
    let payload = format!(
        "{}/../examples/webhooks/demo-user-signed-up.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (added, sent) = tokio::task::spawn_blocking(move || {
        let added = run_on(
            &stack,
            &[
                "webhooks",
                "add",
                "--source",
                "demo",
                "--provider",
                "standard-webhooks",
            ],
        );
        let sent = run_on(
            &stack,
            &["webhooks", "send", "--source", "demo", "--file", &payload],
        );
        (added, sent)
    })
    .await
    .unwrap();
    server.abort();
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    assert_eq!(sent.code, Some(0), "{}", sent.stderr);
    assert!(sent.stdout.starts_with("202 "), "{}", sent.stdout);
    assert!(
        sent.stdout.contains(r#""name":"user.signed_up""#),
        "{}",
        sent.stdout
    );
}

#[tokio::test]
async fn every_operator_command_names_the_stack_and_what_to_start_when_it_is_not_there() {
    for args in [
        &["--local", "status"][..],
        &["--local", "dlq", "list"][..],
        &["--local", "dlq", "redrive"][..],
        &["--local", "keys", "list"][..],
        &["--local", "webhooks", "list"][..],
    ] {
        let dead = run_with(args, "http://127.0.0.1:9");
        assert_eq!(dead.code, Some(1), "{args:?}");
        assert!(
            dead.stderr.contains(
                "could not reach the local stack ingestlayer-dev in the emulator at http://127.0.0.1:9"
            ) && dead.stderr.contains("make dev"),
            "{args:?}: {}",
            dead.stderr
        );
        assert!(!dead.stderr.contains("dispatch failure"), "{}", dead.stderr);
    }
    let missing = run_with(
        &["--local", "--stack", "no-such-stack", "status"],
        &endpoint(),
    );
    assert!(
        missing.stderr.contains("local stack no-such-stack")
            && missing.stderr.contains("was not found"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn status_of_a_stack_deployed_before_the_drain_queue_reports_its_queues_and_names_the_missing_one(
) {
    let s = Stack::new().await;
    let mut outputs = s
        .res
        .register_stack(&s.sdk, &s.local().urls)
        .await
        .expect("register the stack's outputs");
    // The same stack, as a template from before the drain queue deployed it.
    outputs.remove("SlackDrainQueueUrl");
    let old = format!("{}-old", s.res.prefix);
    ingestlayer_local::resources::register_outputs(&s.sdk, &old, &outputs)
        .await
        .unwrap();

    let status = json_of(&run_on(&old, &["status", "--json"]));
    let names: Vec<&str> = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "events",
            "events DLQ",
            "slack",
            "slack DLQ",
            "warehouse",
            "warehouse DLQ"
        ],
        "{status}"
    );
    assert_eq!(
        status["missing"],
        json!([{"queue": "slack drains", "output": "SlackDrainQueueUrl"}])
    );
    assert_eq!(
        status["paused"],
        json!([]),
        "the rest of the status is read"
    );

    let text = run_on(&old, &["status"]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(
        text.stdout.contains(
            "slack drains  not in this stack (no output SlackDrainQueueUrl): deploy this version's template.yaml"
        ),
        "{}",
        text.stdout
    );
}
