//! ingestlayer: product events in, the moments that matter out to Slack.
//!
//! The domain lives here; the three Lambda functions (`ingest`, `pipeline`,
//! `slack-delivery`) are thin wrappers around the handlers in [`handlers`].

pub mod admin_session;
pub mod channels;
pub mod config;
pub mod connections;
pub mod enrich;
pub mod event;
pub mod filter;
pub mod handlers;
pub mod keys;
pub mod ledger;
pub mod links;
pub mod oauth;
pub mod pipeline;
pub mod purpose;
pub mod queue;
pub mod redrive;
pub mod render;
pub mod routing;
pub mod schema;
pub mod signing;
pub mod slack;
pub mod store;
pub mod tokens;
pub mod webhooks;
