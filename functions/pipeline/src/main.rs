//! The pipeline Lambda: events from the events queue through their pipelines to the
//! Slack FIFO queue, with partial batch failures; and, on the schedule's tick, the
//! heartbeat check.

use std::future::Future;
use std::pin::Pin;

use ingestlayer::config::{aws, init_tracing, PipelineConfig};
use ingestlayer::routing::{handle_input, PipelineDeps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use metrics_cloudwatch_embedded::lambda::service::run;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let metrics = ingestlayer::journey::metrics::install()?;
    let cfg = PipelineConfig::from_env()?;
    let sdk = aws().await;
    let deps = PipelineDeps::load(&sdk, &cfg).await?;
    let deps = &deps;
    run(
        metrics,
        service_fn(move |event: LambdaEvent<Value>| async move {
            // Boxed: the handler's future is deep, and the runtime's layers nest it further.
            let handled: Pin<Box<dyn Future<Output = _> + Send + '_>> =
                Box::pin(handle_input(event.payload, deps));
            handled.await.map_err(Error::from)
        }),
    )
    .await
}
