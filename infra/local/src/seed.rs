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
