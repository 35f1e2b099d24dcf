//! The slack-delivery Lambda: messages from the Slack FIFO queue to Slack, in order per
//! channel, with partial batch failures.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ingestlayer::config::{aws, init_tracing, DeliveryConfig};
use ingestlayer::delivery::{handle, DeliveryDeps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use metrics_cloudwatch_embedded::lambda::service::run;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let metrics = ingestlayer::journey::metrics::install()?;
    let cfg = DeliveryConfig::from_env()?;
    let sdk = aws().await;
    let deps = DeliveryDeps::load(&sdk, &cfg).await?;
    let deps = &deps;
    run(
        metrics,
        service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            // Boxed: the handler's future is deep, and the runtime's layers nest it further.
            let handled: Pin<Box<dyn Future<Output = SqsBatchResponse> + Send + '_>> =
                Box::pin(handle(event.payload, deps));
            Ok::<SqsBatchResponse, Error>(handled.await)
        }),
    )
    .await
}
