//! The documented examples in infra/examples/ (what the README tells users to
//! `aws dynamodb put-item`) load as pipelines and route as documented; the outbound webhook sender
//! against a real receiver (`outbound_webhook`).

mod outbound_discord;
mod outbound_email;
mod outbound_notion;
mod outbound_telegram;
mod outbound_webhook;

use ingestlayer::routing::state::MemoryState;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use ingestlayer::event::incoming::parse_incoming;
use ingestlayer::event::{Envelope, EventName};
use ingestlayer::routing::pipelines::{Pipeline, PipelineSet};
use serde_json::{json, Value};

/// DynamoDB's JSON wire format (what `aws dynamodb put-item --item file://…` reads).
fn attribute(v: &Value) -> AttributeValue {
    let (tag, inner) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("a typed attribute");
    match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str().expect("S").to_owned()),
        "N" => AttributeValue::N(inner.as_str().expect("N").to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().expect("BOOL")),
        "SS" => AttributeValue::Ss(
            inner
                .as_array()
                .expect("SS")
                .iter()
                .map(|s| s.as_str().expect("S").to_owned())
                .collect(),
        ),
        "L" => AttributeValue::L(inner.as_array().expect("L").iter().map(attribute).collect()),
        "M" => AttributeValue::M(item(inner)),
        other => panic!("unexpected attribute type {other}"),
    }
}

fn item(v: &Value) -> HashMap<String, AttributeValue> {
    v.as_object()
        .expect("an item")
        .iter()
        .map(|(k, v)| (k.clone(), attribute(v)))
        .collect()
}

fn example(name: &str) -> HashMap<String, AttributeValue> {
    let path = format!("{}/../../infra/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    item(&serde_json::from_str(&text).expect("JSON"))
}

#[test]
fn the_documented_pipeline_items_load() {
    for file in [
        "feature-usage-pipeline.json",
        "free-plan-on-paid-features.json",
        "stripe-failed-payments-pipeline.json",
    ] {
        let p = Pipeline::from_item(&example(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(p.is_some(), "{file} is enabled");
    }
}

#[test]
fn a_string_set_of_event_names_is_accepted() {
    let mut i = example("feature-usage-pipeline.json");
    i.insert(
        "events".into(),
        AttributeValue::Ss(vec!["feature.used".into(), "api.called".into()]),
    );
    let p = Pipeline::from_item(&i).expect("loads").expect("enabled");
    assert_eq!(p.events.len(), 2);
}

#[tokio::test]
async fn free_users_on_paid_features_reach_growth_and_paid_users_do_not() {
    struct NoEntities;
    impl ingestlayer::routing::enrich::EntityStore for NoEntities {
        async fn get_many(
            &self,
            _: &[String],
        ) -> Result<HashMap<String, serde_json::Map<String, Value>>, ingestlayer::error::Error>
        {
            Ok(HashMap::new())
        }
    }
    let (set, errors) = PipelineSet::from_items(&[example("free-plan-on-paid-features.json")]);
    assert!(errors.is_empty(), "{errors:?}");
    let event = |plan: &str| {
        let e = parse_incoming(&json!({"name": "feature.used", "data": {"user_id": "u1", "feature": "csv.export", "count": 3, "plan": plan}}), "").unwrap();
        Envelope::accept(e, "t", time::OffsetDateTime::now_utc())
    };
    let out = ingestlayer::routing::route::route(
        &[event("free"), event("pro")],
        &set,
        &NoEntities,
        &no_state(&MemoryState::default()),
        None,
    )
    .await;
    assert!(
        matches!(&out[0].as_ref().unwrap()[0], ingestlayer::routing::route::PairOutcome::Routed { slack: d, .. } if d[0].channel == "#growth")
    );
    assert!(matches!(
        &out[1].as_ref().unwrap()[0],
        ingestlayer::routing::route::PairOutcome::Filtered { .. }
    ));
    assert_eq!(
        set.for_event(&EventName::parse("feature.used").unwrap())
            .count(),
        1
    );
}

#[tokio::test]
async fn the_stripe_example_takes_only_what_stripe_signed() {
    struct NoEntities;
    impl ingestlayer::routing::enrich::EntityStore for NoEntities {
        async fn get_many(
            &self,
            _: &[String],
        ) -> Result<HashMap<String, serde_json::Map<String, Value>>, ingestlayer::error::Error>
        {
            Ok(HashMap::new())
        }
    }
    let (set, errors) = PipelineSet::from_items(&[example("stripe-failed-payments-pipeline.json")]);
    assert!(errors.is_empty(), "{errors:?}");
    let event = |source: &str| {
        let e = parse_incoming(
            &json!({"name": "invoice.payment_failed", "id": "evt_1", "data": {
            "customer_email": "a@b.example", "number": "N-1", "amount_due": 4900, "currency": "usd",
            "attempt_count": 1, "hosted_invoice_url": "https://invoice.example/i/1?x=1&y=2"}}),
            "",
        )
        .unwrap();
        let mut env = Envelope::accept(e, source, time::OffsetDateTime::now_utc());
        if source.starts_with("webhook:") {
            env.webhook = json!({"provider": "stripe", "source": "stripe", "livemode": false})
                .as_object()
                .cloned();
        }
        env
    };
    let out = ingestlayer::routing::route::route(
        &[event("webhook:stripe"), event("web-app")],
        &set,
        &NoEntities,
        &no_state(&MemoryState::default()),
        None,
    )
    .await;
    let ingestlayer::routing::route::PairOutcome::Routed { slack: d, .. } =
        &out[0].as_ref().unwrap()[0]
    else {
        panic!("{out:?}")
    };
    let text = d[0].message.blocks[1]["text"]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "*a@b.example*: invoice <https://invoice.example/i/1?x=1&amp;y=2|N-1> for 4900 usd, attempt 1 (via stripe)"
    );
    assert!(matches!(
        &out[1].as_ref().unwrap()[0],
        ingestlayer::routing::route::PairOutcome::Filtered { reason, .. } if reason.contains("web-app")
    ));
}

/// Stateful steps in memory, at a fixed time (these examples have none).
fn no_state(state: &MemoryState) -> ingestlayer::routing::route::Steps<'_, MemoryState> {
    ingestlayer::routing::route::Steps {
        state,
        now_ms: 1_700_000_000_000,
    }
}
