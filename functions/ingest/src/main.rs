//! The ingest Lambda: HTTPS events from API Gateway, validated, stored, enqueued.

use ingestlayer::config::{aws, init_tracing, IngestConfig};
use ingestlayer::ingress::{handle, IngestDeps};
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = IngestConfig::from_env()?;
    let sdk = aws().await;
    let deps = IngestDeps::load(&sdk, &cfg).await?;
    let deps = &deps;
    run(service_fn(move |req: Request| handle(req, deps))).await
}
