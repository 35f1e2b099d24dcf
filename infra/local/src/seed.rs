//! The product's example, seeded into a local stack: the `feature.used` pipeline to
//! `#alerts`, a few users, an API key.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// A pipeline file of the repository's `pipelines/` folder (what `make dev` applies), as
/// its stored JSON form, read by the command line's own parser.
fn pipeline_file(name: &str, text: &str) -> Value {
    ingestlayer_cli::pipeline_files::parse(std::path::Path::new(name), text)
        .unwrap_or_else(|e| panic!("the repository's {e}"))
        .doc
}

/// The product's example pipeline (`pipelines/feature-usage-to-alerts.yaml`), posting to
/// `channel`.
pub fn example_pipeline(channel: &str) -> Value {
    let mut p = pipeline_file(
        "pipelines/feature-usage-to-alerts.yaml",
        include_str!("../../../pipelines/feature-usage-to-alerts.yaml"),
    );
    p["destinations"][0]["channel"] = json!(channel);
    p
}

/// One pipeline per webhook door of `make dev` (`pipelines/`): Standard Webhooks sign-ups to
/// `#signups`, Stripe's failed invoices to `#billing`, GitHub's failed workflow runs to
/// `#deploys`. Each takes only its own webhook source's events (`sources`), so an API key
/// sending `invoice.payment_failed` never lands in `#billing`.
pub fn webhook_pipelines() -> Vec<Value> {
    vec![
        pipeline_file(
            "pipelines/signups-to-signups.yaml",
            include_str!("../../../pipelines/signups-to-signups.yaml"),
        ),
        pipeline_file(
            "pipelines/failed-payments-to-billing.yaml",
            include_str!("../../../pipelines/failed-payments-to-billing.yaml"),
        ),
        pipeline_file(
            "pipelines/failed-builds-to-deploys.yaml",
            include_str!("../../../pipelines/failed-builds-to-deploys.yaml"),
        ),
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
pub async fn put_json(dynamo: &aws_sdk_dynamodb::Client, table: &str, doc: &Value) -> Result<()> {
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(doc)
        .map_err(|e| Error::invalid("the document is not a DynamoDB item", Some(e.into())))?;
    dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| Error::aws(format!("putting an item into {table}"), e))?;
    Ok(())
}
