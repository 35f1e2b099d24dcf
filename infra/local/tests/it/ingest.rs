//! Bad input of every kind gets its clear 4xx and is never enqueued.

use serde_json::json;

use crate::harness::{feature_used, Stack};

#[tokio::test]
async fn a_schema_violation_gets_400_with_every_field_and_nothing_is_enqueued() {
    let s = Stack::new().await;
    let bad = json!({"name": "feature.used", "data": {"user_id": 42, "feature": "csv.export", "count": "three"}});
    let (status, body) = s.post("/v1/events", &bad.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "schema_violation");
    let mut pointers: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pointer"].as_str().unwrap())
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/data/count", "/data/plan", "/data/user_id"]);
    assert!(s.peek(&s.res.events_queue_url).await.is_empty());
    s.pump().await;
    assert!(s.standin.messages().is_empty());
}

#[tokio::test]
async fn malformed_json_gets_400_naming_the_problem() {
    let s = Stack::new().await;
    let (status, body) = s.post("/v1/events", "{\"name\": \"feature.used\", ").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "malformed_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{body}"
    );
    let (status, body) = s.post("/v1/events", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, body) = s.post("/v1/events", "[1,2]").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_event"))
    );
    assert!(s.peek(&s.res.events_queue_url).await.is_empty());
}

#[tokio::test]
async fn a_missing_unknown_or_malformed_key_gets_401() {
    let s = Stack::new().await;
    let event = feature_used("u_42", "api");
    assert_eq!(s.post_with("/v1/events", &event, None).await.0, 401);
    assert_eq!(
        s.post_with("/v1/events", &event, Some("il_not_a_key"))
            .await
            .0,
        401
    );
    let (status, body) = s.post_with("/v1/events", &event, Some("")).await;
    assert_eq!(status, 401);
    let (_, headers, _) = s.request("POST", "/v1/events", &[], event.as_bytes()).await;
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"ingestlayer\"");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Bearer"));
    assert!(s.peek(&s.res.events_queue_url).await.is_empty());
}

#[tokio::test]
async fn a_revoked_key_gets_401() {
    let s = Stack::new().await;
    let key = "il_soon_revoked_key";
    let keys = ingestlayer::ingress::api_keys::ApiKeys::new(
        s.dynamo.clone(),
        s.res.api_keys_table.clone(),
    );
    keys.create(&secrecy::SecretString::from(key.to_owned()), "old")
        .await
        .unwrap();
    s.dynamo
        .update_item()
        .table_name(&s.res.api_keys_table)
        .key(
            "key_hash",
            aws_sdk_dynamodb::types::AttributeValue::S(ingestlayer::ingress::api_keys::hash_key(
                key,
            )),
        )
        .update_expression("SET revoked_at = :t")
        .expression_attribute_values(
            ":t",
            aws_sdk_dynamodb::types::AttributeValue::S("2026-11-27T00:00:00Z".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.post_with("/v1/events", &feature_used("u_42", "api"), Some(key))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn bodies_above_the_limit_get_413() {
    let s = Stack::new().await;
    let big = json!({"name": "blob.uploaded", "data": {"blob": "x".repeat(300 * 1024)}});
    let (status, body) = s.post("/v1/events", &big.to_string()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");

    let events: Vec<_> = (0..501).map(|_| json!({"name": "a", "data": {}})).collect();
    let (status, body) = s
        .post("/v1/events/batch", &json!({"events": events}).to_string())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("batch_too_large"))
    );

    // An event too large to store, inside a batch whose body is within its limit.
    let batch = json!({"events": [{"name": "blob.uploaded", "data": {"blob": "y".repeat(300 * 1024)}}, {"name": "small", "data": {}}]});
    let (status, body) = s.post("/v1/events/batch", &batch.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["results"][0]["code"], "event_too_large");
    assert_eq!(body["results"][1]["status"], "accepted");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_named() {
    let s = Stack::new().await;
    let (status, body) = s.post("/v1/event", "{}").await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/events"));
}

#[tokio::test]
async fn a_batch_of_only_invalid_events_gets_400() {
    let s = Stack::new().await;
    let (status, body) = s
        .post(
            "/v1/events/batch",
            &json!({"events": [{"nme": "x"}]}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["rejected"], 1);
    assert!(s.peek(&s.res.events_queue_url).await.is_empty());
}

#[tokio::test]
async fn a_repeated_id_in_one_batch_is_a_duplicate_stored_and_queued_once() {
    let s = Stack::new().await;
    let batch = json!([
        {"name": "a", "id": "same", "data": {"n": 1}},
        {"name": "a", "id": "other", "data": {}},
        {"name": "a", "id": "same", "data": {"n": 2}}
    ]);
    let (status, body) = s.post("/v1/events/batch", &batch.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 3, "{body}");
    assert_eq!(
        body["results"][2],
        json!({"index": 2, "status": "accepted", "id": "tests:same", "duplicate": true})
    );
    assert_eq!(body["results"][0]["duplicate"], false);
    assert_eq!(s.peek(&s.res.events_queue_url).await.len(), 2);
}

/// Runs `ingestlayer keys ARGS…` against this (registered) stack.
fn keys_cli(s: &Stack, args: &[&str]) -> (bool, String) {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    let r = crate::harness::run(s, &all);
    (r.code == Some(0), r.stdout)
}

#[tokio::test]
async fn a_key_created_for_a_source_works_records_the_source_and_stops_when_revoked() {
    let s = crate::harness::registered().await;
    let (ok, stdout) = keys_cli(&s, &["create", "--source", "web-app"]);
    assert!(ok);
    let key = stdout.trim().to_owned();
    assert!(key.starts_with("il_") && key.len() == 43, "{key}");
    let stored: Vec<_> = s
        .dynamo
        .scan()
        .table_name(&s.res.api_keys_table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(
        !format!("{stored:?}").contains(&key),
        "only the hash is stored"
    );

    let (status, body) = s
        .post_with("/v1/events", &feature_used("u_42", "api"), Some(&key))
        .await;
    assert_eq!(status, 202);
    let store = ingestlayer::ingress::event_store::EventStore {
        client: s.dynamo.clone(),
        table: s.res.events_table.clone(),
        ttl_days: 30,
    };
    assert_eq!(
        store
            .get(body["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap()
            .source,
        "web-app"
    );

    let (_, list) = keys_cli(&s, &["list"]);
    let id = ingestlayer::ingress::api_keys::key_id(&key);
    assert!(list.contains(&format!("{id}  web-app")), "{list}");
    assert!(keys_cli(&s, &["revoke", "--id", &id]).0);
    assert!(
        !keys_cli(&s, &["revoke", "--id", "il_nothere"]).0,
        "an unknown id is an error"
    );
    // A fresh instance (no cached check) refuses it at once; warm ones within the 60 s cache.
    let fresh = ingestlayer::ingress::api_keys::ApiKeys::new(
        s.dynamo.clone(),
        s.res.api_keys_table.clone(),
    );
    assert_eq!(
        fresh
            .source_of(&secrecy::SecretString::from(key.clone()))
            .await
            .unwrap(),
        None
    );
    assert!(keys_cli(&s, &["list"]).1.contains("revoked"));
}

#[tokio::test]
async fn the_same_event_id_three_times_is_one_event_for_24_hours() {
    let s = Stack::new().await;
    let body = json!({"name": "feature.used", "id": "retry-me", "data": {"user_id": "u_42", "feature": "api", "count": 1, "plan": "pro"}}).to_string();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (status, b) = s.post("/v1/events", &body).await;
        answers.push((
            status,
            b["id"].as_str().unwrap().to_owned(),
            b["duplicate"].as_bool().unwrap(),
        ));
    }
    assert_eq!(answers[0], (202, "tests:retry-me".to_owned(), false));
    assert_eq!(answers[1], (202, "tests:retry-me".to_owned(), true));
    assert_eq!(answers[2], (202, "tests:retry-me".to_owned(), true));
    assert_eq!(s.depth(&s.res.events_queue_url).await, 1, "queued once");
    s.pump().await;
    assert_eq!(s.alerts().len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_header_names_the_event_and_deduplicates_it() {
    let s = Stack::new().await;
    let post = |key: &'static str| {
        let s = &s;
        async move {
            let req = http::Request::builder()
                .method("POST")
                .uri("https://api.example/v1/events")
                .header(
                    "authorization",
                    format!("Bearer {}", crate::harness::API_KEY),
                )
                .header("idempotency-key", key)
                .body(axum::body::Body::from(feature_used("u_42", "api")))
                .unwrap();
            let resp = ingestlayer_local::runner::call_ingest(req, &s.ingest).await;
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            )
        }
    };
    let (status, first) = post("order-7-export").await;
    assert_eq!(
        (status, first["id"].as_str(), first["duplicate"].as_bool()),
        (202, Some("tests:order-7-export"), Some(false))
    );
    let (_, again) = post("order-7-export").await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(s.depth(&s.res.events_queue_url).await, 1);
    let (status, bad) = post("has space").await;
    assert_eq!(status, 400);
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
}

#[tokio::test]
async fn a_retry_after_the_queue_failed_queues_the_stored_event() {
    let s = Stack::new().await;
    // The first attempt stored the event but never reached the queue (the client saw 503).
    let incoming = ingestlayer::event::incoming::parse_incoming(
        &json!({"name": "feature.used", "id": "half-done", "data": {"user_id": "u_42", "feature": "api", "count": 1, "plan": "pro"}}),
        "",
    )
    .unwrap();
    let env =
        ingestlayer::event::Envelope::accept(incoming, "tests", time::OffsetDateTime::now_utc());
    let store = ingestlayer::ingress::event_store::EventStore {
        client: s.dynamo.clone(),
        table: s.res.events_table.clone(),
        ttl_days: 30,
    };
    assert!(matches!(
        store
            .put_new(&env, &serde_json::to_string(&env).unwrap(), None)
            .await
            .unwrap(),
        ingestlayer::ingress::event_store::Stored::New
    ));
    assert_eq!(s.depth(&s.res.events_queue_url).await, 0);

    let body = json!({"name": "feature.used", "id": "half-done", "data": {"user_id": "u_42", "feature": "api", "count": 1, "plan": "pro"}}).to_string();
    let (status, b) = s.post("/v1/events", &body).await;
    assert_eq!((status, b["duplicate"].as_bool()), (202, Some(true)));
    assert_eq!(s.depth(&s.res.events_queue_url).await, 1, "queued now");
    let (_, b) = s.post("/v1/events", &body).await;
    assert_eq!(b["duplicate"], true);
    assert_eq!(s.depth(&s.res.events_queue_url).await, 1, "and only once");
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow() {
    let s = Stack::new().await;
    for (method, path, allow) in [
        ("GET", "/v1/events", "POST"),
        ("PUT", "/v1/events/batch", "POST"),
        ("DELETE", "/v1/events/evt-1", "GET"),
        ("GET", "/v1/webhooks/demo", "POST"),
    ] {
        let (status, headers, body) = s.request(method, path, &[], b"").await;
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert_eq!(headers["allow"], allow, "{method} {path}");
    }
}

#[tokio::test]
async fn an_idempotency_key_that_is_not_ascii_gets_400_not_ignored() {
    let s = Stack::new().await;
    let auth = format!("Bearer {}", crate::harness::API_KEY);
    let (status, _, body) = s
        .request(
            "POST",
            "/v1/events",
            &[
                ("authorization", auth.as_bytes()),
                ("idempotency-key", "clé-42".as_bytes()),
            ],
            br#"{"name":"order.paid","data":{}}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    assert!(s.peek(&s.res.events_queue_url).await.is_empty());
}

/// A second API key of the stack, for another source.
async fn second_key(s: &Stack, key: &str, source: &str) {
    ingestlayer::ingress::api_keys::ApiKeys::new(s.dynamo.clone(), s.res.api_keys_table.clone())
        .create(&secrecy::SecretString::from(key.to_owned()), source)
        .await
        .unwrap();
}

#[tokio::test]
async fn two_api_keys_with_the_same_client_id_make_two_events() {
    let s = Stack::new().await;
    const OTHER: &str = "il_other_key_0123456789";
    second_key(&s, OTHER, "other-app").await;
    let body = json!({"name": "feature.used", "id": "order-1", "data": {"user_id": "u_42", "feature": "api", "count": 1, "plan": "pro"}}).to_string();
    let mut answers = Vec::new();
    for key in [
        crate::harness::API_KEY,
        OTHER,
        crate::harness::API_KEY,
        OTHER,
    ] {
        let (status, b) = s.post_with("/v1/events", &body, Some(key)).await;
        assert_eq!(status, 202, "{b}");
        answers.push((b["id"].as_str().unwrap().to_owned(), b["duplicate"].clone()));
    }
    assert_eq!(
        answers,
        [
            ("tests:order-1".to_owned(), json!(false)),
            ("other-app:order-1".to_owned(), json!(false)),
            ("tests:order-1".to_owned(), json!(true)),
            ("other-app:order-1".to_owned(), json!(true)),
        ]
    );
    // The Idempotency-Key header is scoped the same way.
    let headers = |key: &str| {
        vec![
            ("authorization", format!("Bearer {key}")),
            ("idempotency-key", "signup-9".to_owned()),
        ]
    };
    let no_id = feature_used("u_42", "api");
    for (key, id, duplicate) in [
        (OTHER, "other-app:signup-9", false),
        (crate::harness::API_KEY, "tests:signup-9", false),
        (OTHER, "other-app:signup-9", true),
    ] {
        let h = headers(key);
        let h: Vec<(&str, &[u8])> = h.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let (status, _, b) = s.request("POST", "/v1/events", &h, no_id.as_bytes()).await;
        assert_eq!(
            (status, b["id"].as_str(), b["duplicate"].as_bool()),
            (202, Some(id), Some(duplicate)),
            "{b}"
        );
    }
    assert_eq!(
        s.stored_events().await,
        [
            ("other-app:order-1".to_owned(), "other-app".to_owned()),
            ("other-app:signup-9".to_owned(), "other-app".to_owned()),
            ("tests:order-1".to_owned(), "tests".to_owned()),
            ("tests:signup-9".to_owned(), "tests".to_owned()),
        ]
    );
    s.pump().await;
    let mut posted = crate::harness::posted_event_ids(&s.alerts());
    posted.sort();
    assert_eq!(
        posted,
        [
            "other-app:order-1",
            "other-app:signup-9",
            "tests:order-1",
            "tests:signup-9"
        ],
        "each source's event posts once"
    );
}

#[tokio::test]
async fn an_api_key_source_named_webhook_can_neither_be_created_nor_send() {
    let s = Stack::new().await;
    let (ok, _) = keys_cli(&s, &["create", "--source", "webhook"]);
    assert!(!ok, "`webhook` names webhook sources");
    let keys = ingestlayer::ingress::api_keys::ApiKeys::new(
        s.dynamo.clone(),
        s.res.api_keys_table.clone(),
    );
    let err = keys
        .create(&secrecy::SecretString::from("il_x".to_owned()), "webhook")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("webhook"), "{err}");
    // A key stored before the rule (or by hand) under that name cannot send.
    const OLD: &str = "il_old_webhook_named_key";
    s.dynamo
        .put_item()
        .table_name(&s.res.api_keys_table)
        .item(
            "key_hash",
            aws_sdk_dynamodb::types::AttributeValue::S(ingestlayer::ingress::api_keys::hash_key(
                OLD,
            )),
        )
        .item(
            "source",
            aws_sdk_dynamodb::types::AttributeValue::S("webhook".into()),
        )
        .send()
        .await
        .unwrap();
    let body = json!({"name": "invoice.payment_failed", "id": "stripe:evt_1", "data": {}});
    let (status, b) = s
        .post_with("/v1/events", &body.to_string(), Some(OLD))
        .await;
    assert_eq!(status, 403, "{b}");
    assert_eq!(b["error"]["code"], "key_source_invalid");
    assert!(s.stored_events().await.is_empty());
}
