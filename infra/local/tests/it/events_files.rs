//! The invocation payloads in events/ (for `sam local invoke -e` and `cargo lambda invoke
//! --data-file`) drive the handlers here too, so they stay true.

use aws_lambda_events::event::sqs::SqsEvent;
use secrecy::SecretString;

use crate::harness::Stack;

fn read(name: &str) -> String {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn the_http_api_request_file_is_accepted_by_ingest() {
    let s = Stack::new().await;
    ingestlayer::ingress::api_keys::ApiKeys::new(s.dynamo.clone(), s.res.api_keys_table.clone())
        .create(
            &SecretString::from("il_example_local_invoke_key".to_owned()),
            "web-app",
        )
        .await
        .unwrap();
    let req = lambda_http::request::from_str(&read("ingest-feature-used.json")).unwrap();
    let resp = ingestlayer::ingress::handle(req, &s.ingest).await.unwrap();
    assert_eq!(resp.status(), 202, "{:?}", resp.body());
    s.pump().await;
    assert_eq!(s.alerts().len(), 1);
}

/// GitHub signs no timestamp, so a signed delivery can be a file: signed with the secret of
/// GitHub's documentation example.
#[tokio::test]
async fn the_github_webhook_file_is_accepted_and_posts_to_deploys() {
    let s = Stack::new().await;
    s.add_webhook_source(
        "github",
        ingestlayer::ingress::webhooks::sources::Provider::Github,
        &["It's a Secret to Everybody"],
    )
    .await;
    for p in ingestlayer_local::seed::webhook_pipelines() {
        s.put_pipeline(&p).await;
    }
    let req = lambda_http::request::from_str(&read("ingest-webhook-github.json")).unwrap();
    let resp = ingestlayer::ingress::handle(req, &s.ingest).await.unwrap();
    assert_eq!(resp.status(), 202, "{:?}", resp.body());
    assert!(
        s.pump_until(std::time::Duration::from_secs(10), |s| s
            .standin
            .messages_in("#deploys")
            .len()
            == 1)
            .await
    );
}

#[tokio::test]
async fn the_sqs_batch_file_routes_to_the_slack_queue() {
    let s = Stack::new().await;
    let event: SqsEvent = serde_json::from_str(&read("pipeline-sqs.json")).unwrap();
    let resp = ingestlayer::routing::handle(event, &s.pipeline).await;
    assert!(resp.batch_item_failures.is_empty());
    let queued = s.peek(&s.res.slack_queue_url).await;
    assert_eq!(queued.len(), 1);
    let d: ingestlayer::delivery::message::Delivery =
        serde_json::from_str(queued[0].body().unwrap()).unwrap();
    assert_eq!(
        (d.event_id.as_str(), d.channel.as_str()),
        ("01JEXAMPLE0000000000000001", "#alerts")
    );
}

/// The file's records as if SQS had just delivered them: SentTimestamp is what the
/// delivery handler's age limit reads, so a fixed one would park the message once the
/// file is older than `MAX_MESSAGE_AGE_HOURS`.
fn sent_now(mut event: SqsEvent) -> SqsEvent {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    for r in &mut event.records {
        for attr in ["SentTimestamp", "ApproximateFirstReceiveTimestamp"] {
            if r.attributes.contains_key(attr) {
                r.attributes.insert(attr.to_owned(), now_ms.to_string());
            }
        }
    }
    event
}

#[tokio::test]
async fn the_fifo_batch_file_posts_to_slack() {
    let s = Stack::new().await;
    let event = sent_now(serde_json::from_str(&read("slack-delivery-fifo.json")).unwrap());
    let resp = ingestlayer::delivery::handle(event, &s.delivery).await;
    assert!(resp.batch_item_failures.is_empty());
    let posted = s.alerts();
    assert_eq!(posted.len(), 1);
    assert_eq!(
        posted[0].blocks.as_ref().unwrap()[0]["text"]["text"],
        "feature.used"
    );
}

/// What `sam local invoke -e events/slack-delivery-fifo.json` does as the file stands (the
/// README says so): its SentTimestamp is days old, so the message is parked with the reason,
/// not posted.
#[tokio::test]
async fn the_fifo_batch_file_as_written_is_parked_as_too_old() {
    let s = Stack::new().await;
    let event: SqsEvent = serde_json::from_str(&read("slack-delivery-fifo.json")).unwrap();
    let resp = ingestlayer::delivery::handle(event, &s.delivery).await;
    assert!(resp.batch_item_failures.is_empty());
    assert!(s.alerts().is_empty());
    let parked = s.peek(&s.res.slack_dlq_url).await;
    assert_eq!(parked.len(), 1);
    let reason = parked[0]
        .message_attributes()
        .and_then(|a| a.get(ingestlayer::delivery::park_attr::REASON))
        .and_then(|v| v.string_value())
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("not delivered within 24 h"), "{reason}");
}

#[tokio::test]
async fn a_bad_record_in_a_pipeline_batch_fails_only_itself() {
    let s = Stack::new().await;
    let mut event: SqsEvent = serde_json::from_str(&read("pipeline-sqs.json")).unwrap();
    let mut bad = event.records[0].clone();
    bad.message_id = Some("bad-one".into());
    bad.body = Some("{not json".into());
    event.records.insert(0, bad);
    let resp = ingestlayer::routing::handle(event, &s.pipeline).await;
    let failed: Vec<_> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["bad-one"]);
    assert_eq!(s.peek(&s.res.slack_queue_url).await.len(), 1);
}
