//! The slack-connect Lambda: connect Slack with OAuth (`/slack/install`,
//! `/slack/oauth/callback`), receive Slack's Events API (`/slack/events`) and serve the
//! destinations page. Wiring only: the routes are [`ingestlayer::connect::router`], served
//! through `lambda_http`.

use ingestlayer::config::{aws, init_tracing, ConnectConfig};
use ingestlayer::connect::{router, ConnectDeps};
use lambda_http::Error;
use metrics_cloudwatch_embedded::lambda::service::run_http;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let metrics = ingestlayer::journey::metrics::install()?;
    let cfg = ConnectConfig::from_env()?;
    let sdk = aws().await;
    let deps = ConnectDeps::load(&sdk, &cfg).await?;
    run_http(metrics, router(deps)).await
}
