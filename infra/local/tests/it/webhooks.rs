//! Signed webhook ingress, end to end: deliveries signed as Standard Webhooks, Stripe and
//! GitHub sign them become events and reach Slack once; every refusal is a 401 with its
//! reason and stores nothing. (Signatures made by the providers' own libraries are tested
//! against the running server in infra/webhooks.)

use std::time::Duration;

use ingestlayer::ingress::webhooks::sources::{sign, Provider};
use ingestlayer_local::seed;
use serde_json::{json, Value};
use sha2::Digest;

use slack_standin::PostedMessage;

use crate::harness::Stack;

const DEMO_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STRIPE_SECRET: &str = "whsec_stripe_test_0123456789abcdef";
const GITHUB_SECRET: &str = "It's a Secret to Everybody";

/// Everything a message shows: its blocks and fallback text.
fn shown(m: &PostedMessage) -> String {
    format!(
        "{}\n{}",
        m.text.clone().unwrap_or_default(),
        m.blocks.as_ref().map(Value::to_string).unwrap_or_default()
    )
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn example(name: &str) -> Vec<u8> {
    let path = format!("{}/../examples/webhooks/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A stack with the three doors of `make dev` and their pipelines.
async fn stack() -> Stack {
    let s = Stack::new().await;
    s.add_webhook_source("demo", Provider::StandardWebhooks, &[DEMO_SECRET])
        .await;
    s.add_webhook_source("stripe", Provider::Stripe, &[STRIPE_SECRET])
        .await;
    s.add_webhook_source("github", Provider::Github, &[GITHUB_SECRET])
        .await;
    for p in seed::webhook_pipelines() {
        s.put_pipeline(&p).await;
    }
    s
}

fn standard_headers(id: &str, ts: i64, signature: String) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", signature),
    ]
}

fn github_headers(event: &str, delivery: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", event.to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-hub-signature-256", sign::github(GITHUB_SECRET, body)),
    ]
}

#[tokio::test]
async fn a_webhook_delivered_three_times_is_one_event_and_one_slack_message() {
    let s = stack().await;
    let body = example("demo-user-signed-up.json");
    let mut answers = Vec::new();
    for attempt in 0..3 {
        // Senders re-sign each retry with a fresh timestamp; the webhook-id stays.
        let ts = now() - attempt;
        let sig = sign::standard(DEMO_SECRET, "msg_retry_1", ts, &body).unwrap();
        let (status, answer) = s
            .webhook("demo", &standard_headers("msg_retry_1", ts, sig), &body)
            .await;
        assert_eq!(status, 202, "{answer}");
        answers.push(answer);
    }
    assert_eq!(answers[0]["id"], "webhook:demo:msg_retry_1");
    assert_eq!(answers[0]["name"], "user.signed_up");
    let duplicates: Vec<&Value> = answers.iter().map(|a| &a["duplicate"]).collect();
    assert_eq!(duplicates, [&json!(false), &json!(true), &json!(true)]);
    assert_eq!(
        s.stored_events().await,
        [(
            "webhook:demo:msg_retry_1".to_owned(),
            "webhook:demo".to_owned()
        )]
    );
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s
            .standin
            .messages_in("#signups")
            .is_empty())
            .await
    );
    s.pump().await;
    let posted = s.standin.messages_in("#signups");
    assert_eq!(posted.len(), 1, "{posted:?}");
    let texts = shown(&posted[0]);
    assert!(texts.contains("sam@globex.example"), "{texts}");
}

/// What is wrong, the headers, the body, and what the 401 must say.
type Refusal<'a> = (&'a str, Vec<(&'a str, String)>, &'a [u8], &'a str);

#[tokio::test]
async fn refused_deliveries_get_401_with_the_reason_and_nothing_is_stored() {
    let s = stack().await;
    let body = example("demo-user-signed-up.json");
    let t = now();
    let good = sign::standard(DEMO_SECRET, "msg_1", t, &body).unwrap();
    let wrong_secret = sign::standard(
        "whsec_b3RoZXItc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY=",
        "msg_1",
        t,
        &body,
    )
    .unwrap();
    let tampered: Vec<u8> = String::from_utf8(body.clone())
        .unwrap()
        .replace("free", "enterprise")
        .into_bytes();
    // Ahead by more than the window plus the seconds a loaded machine may take to answer:
    // the verifier reads its clock after this one, which shrinks a signature's lead.
    let stale_late = sign::standard(DEMO_SECRET, "msg_1", t - 301, &body).unwrap();
    let stale_early = sign::standard(DEMO_SECRET, "msg_1", t + 330, &body).unwrap();
    let cases: Vec<Refusal> = vec![
        (
            "tampered body",
            standard_headers("msg_1", t, good.clone()),
            &tampered,
            "no signature matches",
        ),
        (
            "wrong secret",
            standard_headers("msg_1", t, wrong_secret),
            &body,
            "no signature matches",
        ),
        (
            "empty signature",
            standard_headers("msg_1", t, "v1,".into()),
            &body,
            "no v1 signature",
        ),
        (
            "301 s old",
            standard_headers("msg_1", t - 301, stale_late),
            &body,
            "±300 s",
        ),
        (
            "330 s ahead",
            standard_headers("msg_1", t + 330, stale_early),
            &body,
            "±300 s",
        ),
        (
            "other id than signed",
            standard_headers("msg_2", t, good.clone()),
            &body,
            "no signature matches",
        ),
        (
            "no signature header",
            standard_headers("msg_1", t, good.clone())[..2].to_vec(),
            &body,
            "webhook-signature header is missing",
        ),
    ];
    for (what, headers, payload, reason) in &cases {
        let (status, answer) = s.webhook("demo", headers, payload).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_signature", "{what}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{what}: {message}");
    }

    // Stripe and GitHub refuse the same ways.
    let stripe_body = example("stripe-invoice-payment-failed.json");
    for (what, header) in [
        (
            "stripe tampered",
            sign::stripe(STRIPE_SECRET, t, b"{\"id\":\"evt_other\"}"),
        ),
        (
            "stripe wrong secret",
            sign::stripe("whsec_other", t, &stripe_body),
        ),
        (
            "stripe stale",
            sign::stripe(STRIPE_SECRET, t - 301, &stripe_body),
        ),
        ("stripe empty v1", format!("t={t},v1=")),
    ] {
        let (status, answer) = s
            .webhook("stripe", &[("stripe-signature", header)], &stripe_body)
            .await;
        assert_eq!(status, 401, "{what}: {answer}");
    }
    let gh_body = example("github-workflow-run-failed.json");
    let mut wrong = github_headers("workflow_run", "d-1", b"{}");
    let (status, _) = s.webhook("github", &wrong, &gh_body).await;
    assert_eq!(status, 401, "github tampered");
    wrong[2].1 = "sha256=".into();
    let (status, _) = s.webhook("github", &wrong, &gh_body).await;
    assert_eq!(status, 401, "github empty signature");

    assert!(s.stored_events().await.is_empty());
    assert!(s.peek(&s.res.events_queue_url).await.is_empty());
}

#[tokio::test]
async fn stripe_invoice_payment_failed_lands_in_billing() {
    let s = stack().await;
    let body = example("stripe-invoice-payment-failed.json");
    let header = sign::stripe(STRIPE_SECRET, now(), &body);
    for expected_duplicate in [false, true] {
        let (status, answer) = s
            .webhook("stripe", &[("stripe-signature", header.clone())], &body)
            .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["id"], "webhook:stripe:evt_1QexampleFailedPayment01");
        assert_eq!(answer["name"], "invoice.payment_failed");
        assert_eq!(answer["duplicate"], expected_duplicate);
    }
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s
            .standin
            .messages_in("#billing")
            .is_empty())
            .await
    );
    let posted = s.standin.messages_in("#billing");
    assert_eq!(posted.len(), 1);
    let texts = shown(&posted[0]);
    assert!(texts.contains("Payment failed"), "{texts}");
    assert!(texts.contains("billing@acme.example"), "{texts}");
    assert!(texts.contains("ACME-0042"), "{texts}");
    let (_, stored) = s.stored_events().await.into_iter().next().unwrap();
    assert_eq!(stored, "webhook:stripe");
}

#[tokio::test]
async fn github_failed_runs_land_in_deploys_and_the_rest_is_filtered() {
    let s = stack().await;
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let (status, answer) = s
        .webhook("github", &github_headers("ping", "d-ping", ping), ping)
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));

    let failed = example("github-workflow-run-failed.json");
    let passed = String::from_utf8(failed.clone())
        .unwrap()
        .replace("\"conclusion\": \"failure\"", "\"conclusion\": \"success\"")
        .into_bytes();
    let (status, answer) = s
        .webhook(
            "github",
            &github_headers("workflow_run", "d-ok", &passed),
            &passed,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["name"], "github.workflow_run");
    let (status, answer) = s
        .webhook(
            "github",
            &github_headers("workflow_run", "d-fail", &failed),
            &failed,
        )
        .await;
    let digest = hex::encode(sha2::Sha256::digest(&failed));
    assert_eq!(
        (status, answer["id"].as_str()),
        (
            202,
            Some(format!("webhook:github:sha256-{digest}").as_str())
        )
    );
    // GitHub signs only the body: the same body replayed under another delivery id or
    // event type is the same event.
    for (event, delivery) in [
        ("workflow_run", "d-replayed"),
        ("check_run", "d-relabelled"),
    ] {
        let (status, answer) = s
            .webhook("github", &github_headers(event, delivery, &failed), &failed)
            .await;
        assert_eq!(
            (status, &answer["duplicate"]),
            (202, &json!(true)),
            "{answer}"
        );
    }
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s
            .standin
            .messages_in("#deploys")
            .is_empty())
            .await
    );
    s.pump().await;
    let posted = s.standin.messages_in("#deploys");
    assert_eq!(posted.len(), 1, "only the failed run: {posted:?}");
    let texts = shown(&posted[0]);
    assert!(texts.contains("Build failed: CI"), "{texts}");
    assert!(texts.contains("acme/app"), "{texts}");
    assert_eq!(s.stored_events().await.len(), 2, "ping is not stored");
}

#[tokio::test]
async fn unknown_sources_methods_and_sizes_get_their_answers() {
    let s = stack().await;
    let (status, answer) = s.webhook("nobody", &[], b"{}").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = s.webhook("Bad%20Name", &[], b"{}").await;
    assert_eq!(status, 404);
    let (status, _) = s.get("/v1/webhooks/demo").await;
    assert_eq!(status, 405);
    let big = vec![b' '; 256 * 1024 + 1];
    let (status, answer) = s.webhook("demo", &[], &big).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // A verified payload that is not an event is a 400 naming what it lacks.
    let body = br#"{"data":{"user_id":"u_1"}}"#;
    let t = now();
    let sig = sign::standard(DEMO_SECRET, "msg_notype", t, body).unwrap();
    let (status, answer) = s
        .webhook("demo", &standard_headers("msg_notype", t, sig), body)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`type`"));
    assert!(s.stored_events().await.is_empty());
}

#[tokio::test]
async fn events_with_too_many_fields_get_400_and_the_rest_of_a_batch_is_kept() {
    let s = Stack::new().await;
    let mut data = serde_json::Map::new();
    for i in 0..1001 {
        data.insert(format!("f{i}"), json!(i));
    }
    let wide = json!({"name": "wide.event", "data": data});
    let (status, answer) = s.post("/v1/events", &wide.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_fields");
    assert_eq!(answer["error"]["details"][0]["pointer"], "/data");

    let fine = json!({"name": "narrow.event", "data": {"a": 1}});
    let (status, answer) = s
        .post(
            "/v1/events/batch",
            &json!({"events": [wide, fine]}).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["results"][0]["code"], "too_many_fields");
    assert_eq!(
        answer["results"][0]["errors"][0]["pointer"],
        "/events/0/data"
    );
    assert_eq!(answer["results"][1]["status"], "accepted");
}

/// `ingestlayer webhooks ARGS…` against the (registered) stack named `stack`.
fn run_webhooks_cli(stack: &str, args: &[String]) -> (bool, String, String) {
    let mut all = vec!["webhooks"];
    all.extend(args.iter().map(String::as_str));
    let r = crate::harness::run_on(stack, &all);
    (r.code == Some(0), r.stdout, r.stderr)
}

fn webhooks_cli(s: &Stack, args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run_webhooks_cli(&s.res.prefix, &args)
}

/// [`webhooks_cli`] off the test's runtime thread, for commands that call back into a server
/// the test serves.
async fn webhooks_cli_async(s: &Stack, args: &[&str]) -> (bool, String, String) {
    let stack = s.res.prefix.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || run_webhooks_cli(&stack, &args))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhooks_command_adds_rotates_sends_and_lists_sources() {
    let s = crate::harness::registered().await;
    let (ok, secret, err) = webhooks_cli(
        &s,
        &["add", "--source", "acme", "--provider", "standard-webhooks"],
    );
    assert!(ok, "{err}");
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");

    let body = br#"{"type":"user.signed_up","data":{"user_id":"u_1"}}"#;
    let post = |secret: String, id: &'static str| {
        let t = now();
        let sig = sign::standard(&secret, id, t, body).unwrap();
        (standard_headers(id, t, sig), body)
    };
    let (headers, body) = post(secret.clone(), "msg_a");
    assert_eq!(s.webhook("acme", &headers, body).await.0, 202);

    let (ok, rotated, err) = webhooks_cli(&s, &["rotate", "--source", "acme"]);
    assert!(ok, "{err}");
    let rotated = rotated.trim().to_owned();
    assert_ne!(rotated, secret);
    // A fresh instance (the running one re-reads within a minute) takes both secrets.
    let sources = ingestlayer::ingress::webhooks::sources::WebhookSources::new(
        aws_sdk_secretsmanager::Client::new(&s.sdk),
        s.res.webhook_secret_prefix.clone(),
    );
    let acme = sources.get("acme").await.unwrap().unwrap();
    for (secret, id) in [(secret.clone(), "msg_b"), (rotated.clone(), "msg_c")] {
        let (headers, body) = post(secret, id);
        let map: http::HeaderMap = headers
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect();
        assert!(acme.verify(&map, body, now()).is_ok(), "{id}");
    }

    // `send` signs a payload file as the provider would (with the newest secret) and posts it
    // to the API, whose cached copy of the source predates the rotation: a signature no cached
    // secret matches re-reads the source (at most once a second), so the rotated secret works
    // at once.
    tokio::time::sleep(ingestlayer::ingress::webhooks::sources::RELOAD_AFTER).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(ingestlayer_local::runner::serve_ingest(
        listener,
        s.ingest.clone(),
        None,
    ));
    let payload = format!(
        "{}/../examples/webhooks/demo-user-signed-up.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, sent, err) = webhooks_cli_async(
        &s,
        &[
            "send", "--source", "acme", "--file", &payload, "--url", &url,
        ],
    )
    .await;
    server.abort();
    assert!(ok, "{err}");
    assert!(sent.starts_with("202 "), "{sent}");
    assert!(sent.contains(r#""name":"user.signed_up""#), "{sent}");

    let (ok, _, err) = webhooks_cli(
        &s,
        &[
            "add",
            "--source",
            "Not Valid",
            "--provider",
            "stripe",
            "--secret",
            "x",
        ],
    );
    assert!(!ok);
    assert!(err.contains("source name"), "{err}");
    let (ok, listed, _) = webhooks_cli(&s, &["list"]);
    assert!(ok);
    assert_eq!(listed.trim(), "acme  standard-webhooks");
}

#[tokio::test]
async fn a_misconfigured_source_gets_503_until_it_is_fixed() {
    let s = Stack::new().await;
    let sm = aws_sdk_secretsmanager::Client::new(&s.sdk);
    let secret_id = format!("{}broken", s.res.webhook_secret_prefix);
    sm.create_secret()
        .name(&secret_id)
        .secret_string(r#"{"provider":"stripe","secrets":[]}"#)
        .send()
        .await
        .unwrap();
    let body = example("stripe-invoice-payment-failed.json");
    let header = sign::stripe(STRIPE_SECRET, now(), &body);
    let (status, answer) = s
        .webhook("broken", &[("stripe-signature", header.clone())], &body)
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "source_misconfigured");
    // Fixed: the next delivery uses it (a misconfigured source is not cached).
    s.add_webhook_source("broken", Provider::Stripe, &[STRIPE_SECRET])
        .await;
    let (status, answer) = s
        .webhook("broken", &[("stripe-signature", header)], &body)
        .await;
    assert_eq!(status, 202, "{answer}");
}

/// Stripe's example delivery as an API key would send it, under `id`.
fn forged_stripe_event(id: &str) -> String {
    json!({"name": "invoice.payment_failed", "id": id,
        "data": {"customer_email": "attacker@evil.example", "number": "FORGED", "amount_due": 1,
                 "currency": "usd", "attempt_count": 1}})
    .to_string()
}

#[tokio::test]
async fn an_api_key_cannot_pre_empt_or_overwrite_a_webhook_event() {
    let s = stack().await;
    let body = example("stripe-invoice-payment-failed.json");
    const STRIPE_ID: &str = "webhook:stripe:evt_1QexampleFailedPayment01";
    // Before the delivery, an API key claims its id in every form it might take.
    for forged in [
        "evt_1QexampleFailedPayment01",
        "stripe:evt_1QexampleFailedPayment01",
        STRIPE_ID,
    ] {
        let (status, answer) = s.post("/v1/events", &forged_stripe_event(forged)).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["id"], format!("tests:{forged}"));
    }
    let header = sign::stripe(STRIPE_SECRET, now(), &body);
    let (status, answer) = s
        .webhook("stripe", &[("stripe-signature", header)], &body)
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (answer["id"].as_str(), &answer["duplicate"]),
        (Some(STRIPE_ID), &json!(false)),
        "the delivery is a new event, not a duplicate of the key's"
    );

    // A stored delivery older than the idempotency window is not replaceable by a key either.
    let old_id = "evt_old_delivery";
    let incoming = ingestlayer::event::incoming::parse_incoming(
        &json!({"name": "invoice.payment_failed", "id": old_id, "data": {"number": "GENUINE"}}),
        "",
    )
    .unwrap();
    let old = ingestlayer::event::Envelope::accept(
        incoming,
        "webhook:stripe",
        time::OffsetDateTime::now_utc() - time::Duration::hours(25),
    );
    let store = ingestlayer::ingress::event_store::EventStore {
        client: s.dynamo.clone(),
        table: s.res.events_table.clone(),
        ttl_days: 30,
    };
    store
        .put_new(&old, &serde_json::to_string(&old).unwrap(), None)
        .await
        .unwrap();
    for forged in [old_id.to_owned(), format!("webhook:stripe:{old_id}")] {
        let (status, _) = s.post("/v1/events", &forged_stripe_event(&forged)).await;
        assert_eq!(status, 202);
    }
    for (id, number) in [
        (STRIPE_ID.to_owned(), "ACME-0042"),
        (format!("webhook:stripe:{old_id}"), "GENUINE"),
    ] {
        let stored = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            (stored.source.as_str(), stored.data["number"].as_str()),
            ("webhook:stripe", Some(number)),
            "{id}"
        );
    }

    // #billing takes only what Stripe signed: the keys' invoice.payment_failed events are
    // filtered out by the pipeline's sources.
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s
            .standin
            .messages_in("#billing")
            .is_empty())
            .await
    );
    s.pump().await;
    let posted = s.standin.messages_in("#billing");
    assert_eq!(posted.len(), 1, "{posted:?}");
    let texts = shown(&posted[0]);
    assert!(
        texts.contains("ACME-0042") && !texts.contains("FORGED"),
        "{texts}"
    );
    assert!(
        texts.contains("from webhook:stripe"),
        "the message names its source: {texts}"
    );
}

#[tokio::test]
async fn a_pipeline_bound_to_stripe_ignores_the_same_event_name_from_an_api_key() {
    let s = stack().await;
    let (status, _) = s.post("/v1/events", &forged_stripe_event("inv-1")).await;
    assert_eq!(status, 202);
    // The same pipeline bound to the key's source posts it: the binding is what keeps it out.
    let mut unbound = seed::webhook_pipelines()
        .into_iter()
        .find(|p| p["id"] == "failed-payments-to-billing")
        .unwrap();
    unbound["id"] = json!("billing-from-tests");
    unbound["sources"] = json!(["tests"]);
    unbound["destinations"][0]["channel"] = json!("#billing-from-tests");
    s.put_pipeline(&unbound).await;
    let (status, _) = s.post("/v1/events", &forged_stripe_event("inv-2")).await;
    assert_eq!(status, 202);
    assert!(
        s.pump_until(Duration::from_secs(10), |s| s
            .standin
            .messages_in("#billing-from-tests")
            .len()
            == 2)
            .await
    );
    assert!(s.standin.messages_in("#billing").is_empty());
    let texts = shown(&s.standin.messages_in("#billing-from-tests")[0]);
    assert!(texts.contains("from tests"), "{texts}");
}

/// GitHub's failed-run example with a field nested so the body is `depth` levels deep.
fn github_body_nested(depth: usize) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&example("github-workflow-run-failed.json")).unwrap();
    // The body object is level 1; `deep` adds depth - 1 levels of arrays.
    let inner = "[".repeat(depth - 1) + &"]".repeat(depth - 1);
    v["deep"] = Value::Null;
    let text = v
        .to_string()
        .replace(r#""deep":null"#, &format!(r#""deep":{inner}"#));
    assert_eq!(ingestlayer::event::incoming::nesting_depth(&text), depth);
    text.into_bytes()
}

#[tokio::test]
async fn a_webhook_nested_deeper_than_the_pipeline_reads_is_refused_and_one_level_less_posts() {
    let s = stack().await;
    let limit = ingestlayer::event::incoming::MAX_STORED_DEPTH;
    // Stored, GitHub's body sits one level deeper (under `data`): at the limit it would be
    // accepted by the parser here and unreadable in the pipeline.
    let too_deep = github_body_nested(limit);
    let (status, answer) = s
        .webhook(
            "github",
            &github_headers("workflow_run", "d-deep", &too_deep),
            &too_deep,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "too_deeply_nested");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("the limit is {limit}")),
        "{message}"
    );
    assert!(s.stored_events().await.is_empty());

    let fits = github_body_nested(limit - 1);
    let (status, answer) = s
        .webhook(
            "github",
            &github_headers("workflow_run", "d-fits", &fits),
            &fits,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s
            .standin
            .messages_in("#deploys")
            .is_empty())
            .await,
        "the event one level under the limit reaches Slack"
    );
    assert!(s.peek(&s.res.events_queue_url).await.is_empty());
}
