//! End-to-end tests: the real handlers (in process, and the functions' own binaries behind
//! a local Lambda Runtime API in [`binaries`]), a local AWS emulator (moto server at
//! `AWS_ENDPOINT_URL`, started by `make test`) and the Slack stand-in over HTTP.
//!
//! Each test builds its own stack under a unique name prefix, so tests run in parallel
//! against one emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support code: a failed setup step should stop the test

mod harness;

mod admin;
mod backlog;
mod binaries;
mod catalog;
mod channels;
mod cli;
mod cli_data;
mod cli_ops;
mod connect;
mod delivery;
mod destinations;
mod destinations_beyond_slack;
mod emulator;
mod events_files;
mod explain;
mod ingest;
mod ledger;
mod local_tools;
mod messages;
mod outbound;
mod outbound_matrix;
mod path;
mod promises;
mod slots;
mod steps;
mod template_ops;
mod warehouse;
mod webhooks;
