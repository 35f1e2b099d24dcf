//! The shipped bootstraps under test: each function's own binary (its `main.rs`, as
//! `cargo lambda build` ships it) runs as its own process against a local Lambda Runtime
//! API, with the environment template.yaml gives it and nothing else.
//!
//! `make test` builds the binaries before `cargo test`; run alone, build them first with
//! `cargo build -p ingest -p pipeline -p slack-delivery -p slack-connect`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ingestlayer::slack::workspaces::WorkspaceToken;
use ingestlayer_local::error::Error;
use ingestlayer_local::functions::{self, DESTINATION_DELIVERY, FUNCTIONS, INGEST, SLACK_DELIVERY};
use ingestlayer_local::lambda_api::LambdaFunction;
use ingestlayer_local::runner::serve_functions;
use ingestlayer_local::template::Template;
use secrecy::ExposeSecret;
use serde_json::json;
use slack_standin::StandinConfig;

use crate::harness::{feature_used, Stack, API_KEY, PUBLIC_API_URL};

const TEAM: &str = "T0STANDIN";

/// Fails the test when a function's binary is missing, or older than a source file of the
/// crates it is built from (a stale binary would test yesterday's code).
pub fn assert_built() {
    let functions_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../functions");
    let library = newest_mtime(&functions_dir.join("ingestlayer"));
    for f in FUNCTIONS {
        let path = functions::binary(&f).unwrap_or_else(|e| panic!("{e}"));
        let built = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let sources = library.max(newest_mtime(&functions_dir.join(f.binary)));
        assert!(
            built >= sources,
            "{} is older than its sources under functions/: rebuild with {}",
            path.display(),
            functions::BUILD_HINT
        );
    }
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "tests" && name != "target" {
            newest = newest.max(newest_mtime(&path));
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "toml" || e == "sql")
        {
            if let Ok(m) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(m);
            }
        }
    }
    newest
}

/// Serves the HTTP API through the ingest and slack-connect binaries on a free port.
async fn serve(f: &functions::Functions) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve_functions(
        listener,
        f.ingest.clone(),
        f.connect.clone(),
    ));
    url
}

async fn post_event(api: &str, body: String) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{api}/v1/events"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn every_binary_cold_starts_with_the_environment_template_yaml_gives_it() {
    let s = Stack::new().await;
    let f = s.binaries();
    if let Err(e) = f.start().await {
        panic!("a function failed its cold start: {e}");
    }
}

#[tokio::test]
async fn an_event_goes_from_ingest_through_pipeline_and_slack_delivery_binaries_to_slack() {
    let s = Stack::new().await;
    let f = s.binaries();
    let api = serve(&f).await;

    let (status, body) = post_event(&api, feature_used("u_42", "csv.export")).await;
    assert_eq!(status, 202, "{body}");
    let event_id = body["id"].as_str().expect("the event's id").to_owned();
    // Refused with a 4xx that names the problem, through the binary too.
    let (status, body) = post_event(&api, "{not json".to_owned()).await;
    assert_eq!(status, 400, "{body}");

    let start = std::time::Instant::now();
    while s.alerts().is_empty() && start.elapsed() < Duration::from_secs(30) {
        s.pump_binaries(&f).await;
    }
    let alerts = s.alerts();
    assert_eq!(alerts.len(), 1, "one post in #alerts");
    let text = serde_json::to_string(&alerts[0].blocks).unwrap();
    assert!(
        text.contains("acme"),
        "enriched with u_42's account: {text}"
    );

    // Each binary flushed its CloudWatch metrics (embedded metric format) to stdout after
    // the invocation, with the dimensions the dashboard reads.
    let metric = |lines: &[String], name: &str, dimension: &str, value: &str| {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|doc| {
                let declared = &doc["_aws"]["CloudWatchMetrics"][0];
                declared["Namespace"] == "ingestlayer"
                    && declared["Metrics"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["Name"] == name))
                    && doc[dimension] == value
            })
            .unwrap_or_else(|| panic!("no {name} with {dimension}={value} in {lines:#?}"))
    };
    let prefix = &s.res.prefix;
    let (ingest, _) = f.ingest.output().await;
    let doc = metric(
        &ingest,
        "events_accepted",
        "function",
        &format!("{prefix}-ingest"),
    );
    assert_eq!(doc["events_accepted"], 1, "{doc}");
    metric(&ingest, "events_refused", "code", "malformed_json");
    let (pipeline, _) = f.pipeline.output().await;
    metric(
        &pipeline,
        "events_matched",
        "pipeline",
        "feature-usage-to-alerts",
    );
    let (delivery, _) = f.delivery.output().await;
    let doc = metric(&delivery, "messages_posted", "channel", "#alerts");
    assert_eq!(doc["messages_posted"], 1, "{doc}");
    let function = format!("{prefix}-slack-delivery");
    let doc = metric(&delivery, "end_to_end_ms", "function", &function);
    assert!(
        doc["end_to_end_ms"][0].as_f64().is_some_and(|ms| ms > 0.0),
        "{doc}"
    );
    metric(&delivery, "slack_latency_ms", "function", &function);

    // Every line an invocation logged about the event carries its id (in its fields or in
    // its spans' `event_ids`).
    for (name, lines) in [
        ("ingest", &ingest),
        ("pipeline", &pipeline),
        ("delivery", &delivery),
    ] {
        let about_it: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("Lambda runtime invoke") && !l.contains("\"_aws\""))
            .filter(|l| name != "ingest" || l.contains("events accepted"))
            .collect();
        assert!(!about_it.is_empty(), "{name} logged nothing: {lines:#?}");
        for l in about_it {
            assert!(
                l.contains(&event_id),
                "{name} logged a line without {event_id}: {l}"
            );
        }
    }
}

#[tokio::test]
async fn the_slack_delivery_binary_refreshes_an_expired_rotating_token_and_posts() {
    let s = Stack::with_standin(StandinConfig {
        rate_per_channel_per_sec: f64::INFINITY,
        token_rotation: true,
        ..StandinConfig::default()
    })
    .await;
    install(&s).await;
    let conn = s.connect.connections.get(TEAM).await.unwrap().unwrap();
    let issued = s
        .connect
        .connections
        .read_token(&conn.secret_arn)
        .await
        .unwrap()
        .unwrap();
    assert!(issued.refresh_token.is_some(), "a rotating token");
    // Twelve hours later: the access token has expired, at Slack and in our record.
    s.standin.expire_token(issued.bot_token.expose_secret());
    let expired = WorkspaceToken {
        expires_at_ms: Some(now_ms() - 60_000),
        ..issued.clone()
    };
    s.connect
        .connections
        .put_token(TEAM, &expired)
        .await
        .unwrap();
    s.put_pipeline(&json!({"id": "to-sales", "events": ["feature.used"],
        "destinations": [{"type": "slack", "team": TEAM, "channel": "#sales"}]}))
        .await;

    let f = s.binaries();
    let api = serve(&f).await;
    let (status, body) = post_event(&api, feature_used("u_42", "api")).await;
    assert_eq!(status, 202, "{body}");
    let start = std::time::Instant::now();
    while s.standin.messages_in("#sales").is_empty() && start.elapsed() < Duration::from_secs(30) {
        s.pump_binaries(&f).await;
    }
    assert_eq!(
        s.standin.messages_in("#sales").len(),
        1,
        "posted with a refreshed token"
    );
    assert_eq!(s.standin.refresh_count(), 1, "refreshed once");
    let stored = s
        .connect
        .connections
        .read_token(&conn.secret_arn)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        stored.bot_token.expose_secret(),
        issued.bot_token.expose_secret(),
        "the new token is stored"
    );
    assert!(stored.expires_at_ms.unwrap_or(0) > now_ms());
}

#[tokio::test]
async fn a_variable_missing_from_template_yaml_fails_the_binary_at_cold_start_naming_it() {
    let s = Stack::new().await;
    crate::binaries::assert_built();
    let template = Template::load().unwrap();
    for (function, variable) in [(INGEST, "EVENTS_TABLE"), (SLACK_DELIVERY, "SLACK_DLQ_URL")] {
        let mut spec = functions::spec(&template, &function, &s.local()).unwrap();
        assert!(
            spec.env.remove(variable).is_some(),
            "template.yaml gives {} {variable}",
            function.logical_id
        );
        let err = LambdaFunction::new(spec)
            .invoke(&json!({}))
            .await
            .expect_err("a cold start without the variable fails");
        assert!(
            matches!(err, Error::Exited { .. } | Error::Init { .. }),
            "{err}"
        );
        assert!(
            err.tail().contains(variable),
            "the failure names {variable}: {err}"
        );
    }
}

#[tokio::test]
async fn a_wrong_webhook_retry_schedule_fails_destination_delivery_at_cold_start_naming_it() {
    let s = Stack::new().await;
    crate::binaries::assert_built();
    let template = Template::load().unwrap();
    let mut spec = functions::spec(&template, &DESTINATION_DELIVERY, &s.local()).unwrap();
    assert!(
        spec.env.contains_key("WEBHOOK_RETRY_SCHEDULE"),
        "template.yaml gives it the schedule"
    );
    spec.env
        .insert("WEBHOOK_RETRY_SCHEDULE".into(), "5s, soon".into());
    let err = LambdaFunction::new(spec)
        .invoke(&json!({"Records": []}))
        .await
        .expect_err("a cold start with a wrong schedule fails");
    let tail = err.tail();
    assert!(tail.contains("WEBHOOK_RETRY_SCHEDULE"), "{err}");
    assert!(
        tail.contains("soon"),
        "the failure shows the wrong wait: {err}"
    );
}

/// Add to Slack → consent (Allow) → callback, through the slack-connect handler.
async fn install(s: &Stack) {
    let admin = vec![(
        "authorization",
        format!("Bearer {}", crate::harness::ADMIN_TOKEN),
    )];
    let (status, headers, _) = s.connect_request("GET", "/slack/install", &admin, "").await;
    assert_eq!(status, 302);
    let location = headers["location"].to_str().unwrap().to_owned();
    let back = s.standin.approve(&location).unwrap();
    let path = back.strip_prefix(PUBLIC_API_URL).unwrap().to_owned();
    let (status, _, page) = s.connect_request("GET", &path, &[], "").await;
    assert_eq!(status, 200, "{page}");
}

fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    now.unix_timestamp() * 1000 + i64::from(now.millisecond())
}

/// The stack's most verbose LogLevel: lambda_runtime would print each raw invocation
/// (the Authorization header among it) at trace; the shipped bootstrap caps it.
#[tokio::test]
async fn at_log_level_trace_the_ingest_binary_never_logs_the_api_key_or_the_payload() {
    let s = Stack::new().await;
    assert_built();
    let extra = std::collections::BTreeMap::from([(
        INGEST.logical_id,
        vec![("RUST_LOG", "trace".to_owned())],
    )]);
    let f = functions::Functions::new(&s.local(), &extra).unwrap();
    let api = serve(&f).await;
    let marker = "payload-marker-7f3a";
    let (status, body) = post_event(
        &api,
        json!({"name": "marker.seen", "data": {"user_id": "u_42", "note": marker}}).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (lines, complete) = f.ingest.output().await;
    assert!(
        complete,
        "more output than is kept; the check would miss lines"
    );
    let logs = lines.join("\n");
    assert!(
        logs.contains("\"level\":\"DEBUG\"") && logs.contains("\"path\":\"/v1/events\""),
        "trace is on for our own code: {logs}"
    );
    assert!(!logs.contains(API_KEY), "the API key was logged: {logs}");
    assert!(!logs.contains(marker), "the payload was logged: {logs}");
}

/// The `Root=…` of an X-Ray trace header.
fn trace_root(header: &str) -> &str {
    header
        .split(';')
        .find(|p| p.starts_with("Root="))
        .unwrap_or_else(|| panic!("no Root in {header:?}"))
}

#[tokio::test]
async fn one_event_is_one_trace_from_the_ingest_binary_through_the_pipeline_binary_to_the_slack_queue(
) {
    use aws_sdk_sqs::types::{MessageSystemAttributeNameForSends, MessageSystemAttributeValue};
    use ingestlayer_local::requests::{body, Recorder};

    let s = Stack::new().await;
    let f = s.binaries();
    let api = serve(&f).await;
    // The emulator keeps system attributes on SendMessage but drops them from
    // SendMessageBatch, which both functions use; so each hop is read from the request the
    // binary made (the emulator's recorder), as AWS would take it.
    let sent_to = |recording: &[serde_json::Value], queue: &str| -> String {
        let sent: Vec<serde_json::Value> = recording
            .iter()
            .map(body)
            .filter(|b| b.contains(queue))
            .filter_map(|b| serde_json::from_str(&b).ok())
            .filter(|b: &serde_json::Value| b["Entries"].is_array())
            .collect();
        assert_eq!(sent.len(), 1, "one SendMessageBatch to {queue}: {sent:#?}");
        sent[0]["Entries"][0]["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
            .as_str()
            .unwrap_or_else(|| panic!("no AWSTraceHeader sent: {}", sent[0]))
            .to_owned()
    };
    let recorder = Recorder::new(&crate::harness::endpoint());

    // Hop 1: the ingest binary sends the event with its invocation's trace.
    recorder.start().await.unwrap();
    let (status, answer) = post_event(&api, feature_used("u_42", "api")).await;
    let recording = recorder.stop().await.unwrap();
    assert_eq!(status, 202, "{answer}");
    let (ingest, _) = f.ingest.output().await;
    let traced = ingest
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|l| l["spans"][0]["xrayTraceId"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no trace id in {ingest:#?}"));
    let first = sent_to(&recording, &s.res.events_queue_url);
    assert_eq!(
        first, traced,
        "the event carries the ingest invocation's trace"
    );

    // What AWS then delivers: the event with that AWSTraceHeader.
    let queued = s.peek(&s.res.events_queue_url).await;
    assert_eq!(queued.len(), 1);
    s.sqs
        .delete_message()
        .queue_url(&s.res.events_queue_url)
        .receipt_handle(queued[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    s.sqs
        .send_message()
        .queue_url(&s.res.events_queue_url)
        .message_body(queued[0].body().unwrap())
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(&first)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // Hop 2: the pipeline binary, invoked within the message's trace (as Lambda's SQS event
    // source does), sends the Slack message on in the same trace.
    recorder.start().await.unwrap();
    let routed = ingestlayer_local::runner::pump_function(&s.events, &f.pipeline).await;
    let recording = recorder.stop().await.unwrap();
    assert_eq!(routed.unwrap(), 1);
    let second = sent_to(&recording, &s.res.slack_queue_url);
    assert_eq!(trace_root(&second), trace_root(&traced), "one trace");
    assert_ne!(second, traced, "the pipeline's own segment is the parent");
}
