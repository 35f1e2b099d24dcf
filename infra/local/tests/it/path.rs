//! The product path end to end: HTTPS ingest → pipeline → Slack.

use std::time::Duration;

use serde_json::json;

use crate::harness::{feature_used, field_texts, Stack};

#[tokio::test]
async fn the_example_event_posts_a_rendered_message_to_alerts() {
    let s = Stack::new().await;
    let (status, body) = s
        .post("/v1/events", &feature_used("u_42", "csv.export"))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    s.pump().await;

    let posted = s.alerts();
    assert_eq!(posted.len(), 1);
    let m = &posted[0];
    assert_eq!(
        m.token,
        crate::harness::BOT_TOKEN,
        "the token comes from Secrets Manager"
    );
    let blocks = m.blocks.as_ref().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "feature.used");
    let fields = field_texts(m);
    for expected in [
        "*feature*\ncsv.export",
        "*plan*\nfree",
        "*user.account*\nacme",
        "*user.plan*\npro",
        "*user.owner*\nmaria@yourco.com",
    ] {
        assert!(
            fields.contains(&expected.to_owned()),
            "{expected:?} missing from {fields:?}"
        );
    }
    assert!(
        m.text.as_deref().unwrap().starts_with("feature.used: "),
        "fallback text is set"
    );
    let meta = m.metadata.as_ref().unwrap();
    assert_eq!(meta["event_payload"]["event_id"], id.as_str());
    assert_eq!(
        meta["event_payload"]["pipeline_id"],
        "feature-usage-to-alerts"
    );
}

#[tokio::test]
async fn a_filtered_event_posts_nothing() {
    let s = Stack::new().await;
    let (status, _) = s
        .post("/v1/events", &feature_used("u_42", "profile.view"))
        .await;
    assert_eq!(status, 202);
    s.pump().await;
    assert!(s.standin.messages().is_empty());
    assert!(
        s.peek(&s.res.slack_queue_url).await.is_empty(),
        "nothing was queued for Slack"
    );
}

#[tokio::test]
async fn an_unknown_user_still_posts() {
    let s = Stack::new().await;
    s.post("/v1/events", &feature_used("nobody", "api")).await;
    s.pump().await;
    let posted = s.alerts();
    assert_eq!(posted.len(), 1);
    let fields = field_texts(&posted[0]);
    assert!(fields.contains(&"*user_id*\nnobody".to_owned()));
    assert!(
        !fields.iter().any(|f| f.contains("user.account")),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_malformed_pipeline_item_does_not_stop_the_others() {
    let s = Stack::new().await;
    let mut broken = ingestlayer_local::seed::example_pipeline("#alerts");
    broken["id"] = json!("broken-one");
    broken["steps"][0]["expr"] = json!("feature in {");
    s.put_pipeline(&broken).await;
    let mut also_broken = ingestlayer_local::seed::example_pipeline("#alerts");
    also_broken["id"] = json!("no-destinations");
    also_broken["destinations"] = json!([]);
    s.put_pipeline(&also_broken).await;

    s.post("/v1/events", &feature_used("u_42", "api")).await;
    s.pump().await;
    let posted = s.alerts();
    assert_eq!(posted.len(), 1);
    assert_eq!(
        posted[0].metadata.as_ref().unwrap()["event_payload"]["pipeline_id"],
        "feature-usage-to-alerts"
    );
}

#[tokio::test]
async fn a_second_pipeline_with_its_own_template_posts_to_its_own_channel() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": "free-on-paid",
        "events": ["feature.used"],
        "steps": [{"type": "filter.match", "expr": "plan == 'free' && feature in {export, api}"},
                  {"type": "enrich.entity", "entity": "user", "key": "user_id"}],
        "destinations": [{"type": "slack", "channel": "#growth",
            "template": {"header": "Free plan on a paid feature", "text": "*$event.user.account* used `$event.feature` <@U0SALES>", "fields": ["plan", "user.owner"]}}]
    }))
    .await;
    s.post("/v1/events", &feature_used("u_7", "csv.export"))
        .await;
    s.pump().await;
    let growth = s.standin.messages_in("#growth");
    assert_eq!(growth.len(), 1);
    let blocks = growth[0].blocks.as_ref().unwrap();
    assert_eq!(blocks[0]["text"]["text"], "Free plan on a paid feature");
    assert_eq!(
        blocks[1]["text"]["text"],
        "*globex* used `csv.export` <@U0SALES>"
    );
    assert_eq!(s.alerts().len(), 1, "the example pipeline still posts too");
}

#[tokio::test]
async fn event_values_cannot_ping_the_channel() {
    let s = Stack::new().await;
    let body = json!({"name": "feature.used", "data": {"user_id": "<!channel>", "feature": "api", "count": 1, "plan": "<@U123> <https://evil.example|free>"}});
    s.post("/v1/events", &body.to_string()).await;
    s.pump().await;
    let posted = s.alerts();
    assert_eq!(posted.len(), 1);
    let all =
        serde_json::to_string(&posted[0].blocks).unwrap() + posted[0].text.as_deref().unwrap();
    assert!(
        !all.contains("<!channel>") && !all.contains("<@U123>") && !all.contains("<https://"),
        "{all}"
    );
    assert!(all.contains("&lt;!channel&gt;"), "{all}");
}

#[tokio::test]
async fn a_cloudevent_takes_the_same_path() {
    let s = Stack::new().await;
    let ce = json!({"specversion": "1.0", "type": "feature.used", "id": "ce-123", "source": "/billing",
        "data": {"user_id": "u_42", "feature": "api.call", "count": 3, "plan": "pro"}});
    let (status, body) = s.post("/v1/events", &ce.to_string()).await;
    assert_eq!((status, body["id"].as_str()), (202, Some("tests:ce-123")));
    s.pump().await;
    assert_eq!(s.alerts().len(), 1);
}

#[tokio::test]
async fn a_batch_accepts_the_valid_events_and_reports_each_item() {
    let s = Stack::new().await;
    let batch = json!({"events": [
        {"name": "feature.used", "data": {"user_id": "u_42", "feature": "csv.export", "count": 1, "plan": "free"}},
        {"name": "feature.used", "data": {"user_id": "u_42", "feature": "csv.export", "count": "many", "plan": "free"}},
        {"name": "", "data": {}},
        {"name": "feature.used", "data": {"user_id": "u_7", "feature": "webhook", "count": 2, "plan": "free"}}
    ]});
    let (status, body) = s.post("/v1/events/batch", &batch.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(2))
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["errors"][0]["pointer"], "/events/1/data/count");
    assert_eq!(results[2]["errors"][0]["pointer"], "/events/2/name");
    assert_eq!(results[3]["status"], "accepted");
    assert!(
        s.pump_until(Duration::from_secs(10), |s| s.alerts().len() == 2)
            .await
    );
}

#[tokio::test]
async fn the_whole_event_is_stored() {
    let s = Stack::new().await;
    let body = json!({"name": "user.signed_up", "id": "client-id-1", "time": "2026-11-27T09:30:00Z",
        "data": {"email": "ada@acme.com", "plan": "pro", "source": "marketing-site", "nested": {"deep": [1, 2.5, "x"]}}});
    let (status, resp) = s.post("/v1/events", &body.to_string()).await;
    assert_eq!(status, 202, "{resp}");
    let store = ingestlayer::ingress::event_store::EventStore {
        client: s.dynamo.clone(),
        table: s.res.events_table.clone(),
        ttl_days: 30,
    };
    let stored = store.get("tests:client-id-1").await.unwrap().unwrap();
    assert_eq!(stored.data, body["data"]);
    assert_eq!(stored.source, "tests");
    assert_eq!(stored.name.as_str(), "user.signed_up");
}

#[tokio::test]
async fn filters_and_templates_see_the_source_the_key_recorded_not_the_events_own() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": "from-tests-only",
        "events": ["deploy.finished"],
        "steps": [{"type": "filter.match", "expr": "$source == 'tests' && !has($webhook.provider)"}],
        "destinations": [{"type": "slack", "channel": "#deploys",
            "template": {"text": "$event.service by $source (claims $event.source)"}}]
    }))
    .await;
    s.put_pipeline(&json!({
        "id": "from-stripe-only",
        "events": ["deploy.finished"],
        "steps": [{"type": "filter.match", "expr": "$source == 'webhook:stripe'"}],
        "destinations": [{"type": "slack", "channel": "#forged"}]
    }))
    .await;
    let body = json!({"name": "deploy.finished", "data": {"service": "api", "source": "webhook:stripe",
        "webhook": {"provider": "stripe"}}});
    let (status, _) = s.post("/v1/events", &body.to_string()).await;
    assert_eq!(status, 202);
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s
            .standin
            .messages_in("#deploys")
            .is_empty())
            .await
    );
    let posted = s.standin.messages_in("#deploys");
    let blocks = posted[0].blocks.as_ref().unwrap();
    assert_eq!(
        blocks[1]["text"]["text"],
        "api by tests (claims webhook:stripe)"
    );
    let context = blocks.as_array().unwrap().last().unwrap()["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        context.starts_with("ingestlayer · from tests · "),
        "{context}"
    );
    assert!(s.standin.messages_in("#forged").is_empty());
}

/// Every mrkdwn text object in a posted message.
fn mrkdwn_objects(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("type") == Some(&json!("mrkdwn")) {
                out.push(v.clone());
            }
            m.values().for_each(|x| mrkdwn_objects(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| mrkdwn_objects(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn posted_text_is_taken_literally_and_link_targets_are_encoded() {
    let s = Stack::new().await;
    s.put_pipeline(&json!({
        "id": "literal",
        "events": ["feature.used"],
        "steps": [],
        "destinations": [{"type": "slack", "channel": "#literal",
            "template": {"text": "<https://app.example/users/$event.user_id|profile of $event.user_id>"}}]
    }))
    .await;
    let body = json!({"name": "feature.used", "data": {"user_id": "u_1|see https://evil.example in #general",
        "feature": "api", "count": 1, "plan": "free"}});
    s.post("/v1/events", &body.to_string()).await;
    assert!(
        s.pump_until(Duration::from_secs(10), |s| !s
            .standin
            .messages_in("#literal")
            .is_empty())
            .await
    );
    let posted = s.standin.messages_in("#literal");
    let blocks = posted[0].blocks.clone().unwrap();
    let mut found = Vec::new();
    mrkdwn_objects(&blocks, &mut found);
    assert!(found.len() >= 3, "{blocks}");
    for o in &found {
        assert_eq!(o["verbatim"], true, "{o}");
    }
    assert_eq!(
        blocks[1]["text"]["text"],
        "<https://app.example/users/u_1%7Csee%20https%3A%2F%2Fevil.example%20in%20%23general|profile of u_1|see https://evil.example in #general>"
    );
}
