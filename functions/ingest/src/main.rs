//! The ingest Lambda: HTTPS events from API Gateway, validated, stored, enqueued. Wiring
//! only: the routes are [`ingestlayer::ingress::router`], served through `lambda_http`.

use std::sync::Arc;

use ingestlayer::config::{aws, init_tracing, IngestConfig};
use ingestlayer::ingress::{router, IngestDeps};
use lambda_http::Error;
use metrics_cloudwatch_embedded::lambda::service::run_http;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let metrics = ingestlayer::journey::metrics::install()?;
    let cfg = IngestConfig::from_env()?;
    let sdk = aws().await;
    let deps = IngestDeps::load(&sdk, &cfg).await?;
    run_http(metrics, router(Arc::new(deps))).await
}
