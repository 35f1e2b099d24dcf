//! The product's example, seeded into a local stack: the `feature.used` pipeline to
//! `#alerts`, a few users, an API key.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

/// The product's example pipeline, as its DynamoDB item's JSON form.
pub fn example_pipeline(channel: &str) -> Value {
    json!({
        "id": "feature-usage-to-alerts",
        "description": "Features that predict expansion, with the account behind the user",
        "enabled": true,
        "events": ["feature.used"],
        "steps": [
            {"type": "filter.match", "expr": "feature in {export, api, webhook}"},
            {"type": "enrich.entity", "entity": "user", "key": "user_id", "attributes": ["account", "plan", "owner"]}
        ],
        "destinations": [{"type": "slack", "channel": channel}]
    })
}

/// One pipeline per webhook door of `make dev`: Standard Webhooks sign-ups to `#signups`,
/// Stripe's failed invoices to `#billing`, GitHub's failed workflow runs to `#deploys`. Each
/// takes only its own webhook source's events (`sources`), so an API key sending
/// `invoice.payment_failed` never lands in `#billing`.
pub fn webhook_pipelines() -> Vec<Value> {
    vec![
        json!({
            "id": "signups-to-signups",
            "description": "Sign-ups sent by a Standard Webhooks sender (POST /v1/webhooks/demo)",
            "enabled": true,
            "events": ["user.signed_up"],
            "sources": ["webhook:demo"],
            "steps": [],
            "destinations": [{"type": "slack", "channel": "#signups"}]
        }),
        json!({
            "id": "failed-payments-to-billing",
            "description": "Stripe's invoice.payment_failed (POST /v1/webhooks/stripe)",
            "enabled": true,
            "events": ["invoice.payment_failed"],
            "sources": ["webhook:stripe"],
            "steps": [],
            "destinations": [{"type": "slack", "channel": "#billing", "template": {
                "header": "Payment failed",
                "text": "*$event.customer_email*: invoice $event.number for $event.amount_due $event.currency, attempt $event.attempt_count",
                "fields": ["customer", "billing_reason", "hosted_invoice_url"]
            }}]
        }),
        json!({
            "id": "failed-builds-to-deploys",
            "description": "GitHub workflow runs that failed (POST /v1/webhooks/github)",
            "enabled": true,
            "events": ["github.workflow_run"],
            "sources": ["webhook:github"],
            "steps": [
                {"type": "filter.match", "expr": "action == 'completed' && workflow_run.conclusion in ['failure', 'timed_out']"}
            ],
            "destinations": [{"type": "slack", "channel": "#deploys", "template": {
                "header": "Build failed: $event.workflow_run.name",
                "text": "*$event.repository.full_name* `$event.workflow_run.head_branch`: $event.workflow_run.conclusion",
                "fields": ["workflow_run.html_url", "workflow_run.head_sha", "sender.login"]
            }}]
        }),
    ]
}

/// A few users for `enrich.entity`.
pub fn example_entities() -> Vec<Value> {
    vec![
        json!({"pk": "user#u_42", "account": "acme", "plan": "pro", "owner": "maria@yourco.com"}),
        json!({"pk": "user#u_7", "account": "globex", "plan": "free", "owner": "sam@yourco.com"}),
        json!({"pk": "user#u_99", "account": "initech", "plan": "team", "owner": "lee@yourco.com"}),
    ]
}

/// Puts a JSON document as a DynamoDB item.
pub async fn put_json(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    doc: &Value,
) -> Result<(), String> {
    let item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(doc).map_err(|e| e.to_string())?;
    dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
    Ok(())
}
