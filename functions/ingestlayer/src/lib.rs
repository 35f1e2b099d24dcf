//! ingestlayer: product events in, the moments that matter out to Slack.
//!
//! The library reads like an event's journey. Each stage is a folder whose `mod.rs` holds
//! the stage's `Deps` (built by one async constructor that the function's `main.rs`, `make
//! dev` and the tests all call) and its `handle`:
//!
//! - [`ingress`]: the ingest function. API keys, validation, the events table, signed
//!   webhooks.
//! - [`routing`]: the pipeline function. Pipelines, filter, enrich, render.
//! - [`delivery`]: the slack-delivery function. Pacing, ledger, retries, parking.
//! - [`connect`]: the slack-connect function. OAuth install, Events API, destinations page.
//! - [`warehouse`]: the warehouse function. Every routed event, enriched, into Postgres.
//!
//! Below the stages sit the adapters, [`slack`] and [`aws`], and what every stage shares:
//! [`event`], [`ids`], [`config`], [`error`], [`purpose`], [`event_links`] and [`journey`]
//! (what each stage decided about each event). Arrows point
//! down: a stage uses the adapters and the shared modules; routing hands its output to
//! delivery as a [`delivery::message`]; connect, the operator's side, reads pipeline
//! definitions and channel state.

pub mod aws;
pub mod config;
pub mod connect;
pub mod delivery;
pub mod dispatch;
pub mod error;
pub mod event;
pub mod event_links;
pub mod ids;
pub mod ingress;
pub mod journey;
pub mod outbound;
pub mod purpose;
pub mod routing;
pub mod slack;
pub mod warehouse;
pub mod webhook_signature;
