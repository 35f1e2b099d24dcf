//! The warehouse Lambda: batches of the warehouse queue into the user's Postgres, with
//! partial batch failures.

use aws_lambda_events::event::sqs::SqsEvent;
use ingestlayer::config::{aws, init_tracing, WarehouseConfig};
use ingestlayer::warehouse::{handle, WarehouseDeps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use metrics_cloudwatch_embedded::lambda::service::run;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let metrics = ingestlayer::journey::metrics::install()?;
    let cfg = WarehouseConfig::from_env()?;
    let sdk = aws().await;
    let deps = WarehouseDeps::load(&sdk, &cfg).await?;
    let deps = &deps;
    run(
        metrics,
        service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            Ok::<_, Error>(handle(event.payload, deps).await)
        }),
    )
    .await
}
