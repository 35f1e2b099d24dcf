//! The slack-connect Lambda: connect Slack with OAuth (`/slack/install`,
//! `/slack/oauth/callback`) and receive Slack's Events API (`/slack/events`).

use ingestlayer::config::{aws, init_tracing, ConnectConfig};
use ingestlayer::connect::{handle, ConnectDeps};
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = ConnectConfig::from_env()?;
    let sdk = aws().await;
    let deps = ConnectDeps::load(&sdk, &cfg).await?;
    let deps = &deps;
    run(service_fn(move |req: Request| handle(req, deps))).await
}
