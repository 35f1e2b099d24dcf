//! The destination-delivery Lambda: messages from the destinations FIFO queue to webhooks,
//! Discord, Telegram, email (SES) and Notion, in order per target, with partial batch
//! failures.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ingestlayer::config::{aws, init_tracing, DestinationsConfig};
use ingestlayer::dispatch::{handle, DispatchDeps};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use metrics_cloudwatch_embedded::lambda::service::run;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let metrics = ingestlayer::journey::metrics::install()?;
    let cfg = DestinationsConfig::from_env()?;
    let sdk = aws().await;
    let deps = DispatchDeps::load(&sdk, &cfg).await?;
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
