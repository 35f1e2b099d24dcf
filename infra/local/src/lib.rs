//! The local stack: the functions' own binaries, run against a local Lambda Runtime API
//! and wired to a local AWS emulator (moto server, through `AWS_ENDPOINT_URL`) and a Slack
//! stand-in.
//!
//! [`resources`] creates what template.yaml declares; [`template`] derives each function's
//! environment from template.yaml; [`lambda_api`] runs a function's binary as its own
//! process behind a Runtime API and invokes it; [`functions`] names the four functions and
//! their binaries; [`runner`] serves the HTTP API through the ingest and slack-connect
//! functions and feeds the pipeline and slack-delivery functions from the emulator's queues
//! the way Lambda's event source mappings do (batches of up to 10, partial batch failures,
//! FIFO groups in order), either through the binaries or, for the fast handler tests, the
//! handlers in process; [`seed`] puts in the product's example pipeline and entities;
//! [`requests`] counts the AWS requests an event costs end to end (the bench's `--requests`).
//! [`error`] is the crate's one error type.

pub mod burst;
pub mod destinations;
pub mod error;
pub mod functions;
pub mod lambda_api;
pub mod remember;
pub mod requests;
pub mod resources;
pub mod runner;
pub mod seed;
pub mod template;
pub mod webhook_receiver;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};

/// SDK config for the emulator at `endpoint`: fixed test credentials, one attempt per call
/// (an emulator 500 must not cost seconds of retries).
pub async fn emulator_sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(
            std::env::var("AWS_DEFAULT_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "ingestlayer-local",
        ))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}
