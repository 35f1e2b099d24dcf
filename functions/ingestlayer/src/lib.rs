//! ingestlayer: product events in, the moments that matter out to Slack.
//!
//! The domain lives here; the three Lambda functions (`ingest`, `pipeline`,
//! `slack-delivery`) are thin wrappers around the handlers in [`handlers`].

pub mod enrich;
pub mod event;
pub mod filter;
pub mod pipeline;
pub mod render;
pub mod routing;
pub mod schema;
pub mod config;
pub mod handlers;
pub mod keys;
pub mod queue;
pub mod slack;
pub mod store;
