//! The ingest Lambda: HTTPS events from API Gateway, validated, stored, enqueued. Wiring
//! only: the routes are [`ingestlayer::ingress::router`], served through `lambda_http`.

use std::sync::Arc;

use ingestlayer::config::{aws, init_tracing, IngestConfig};
use ingestlayer::ingress::{router, IngestDeps};
use lambda_http::{run, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = IngestConfig::from_env()?;
    let sdk = aws().await;
    let deps = IngestDeps::load(&sdk, &cfg).await?;
    run(router(Arc::new(deps))).await
}
