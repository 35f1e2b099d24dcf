//! `ingestlayer`: the operator's command line. The binary (`main.rs`) is wiring; the commands
//! live here so the local stack (`make dev` applies `pipelines/` at start) and the tests call
//! the same code.

pub mod catalog;
pub mod dlq;
pub mod entities;
pub mod error;
pub mod events;
pub mod explain;
pub mod keys;
pub mod mutes;
pub mod pipeline_files;
pub mod pipeline_table;
pub mod pipeline_test;
pub mod pipelines;
pub mod progress;
pub mod rows;
pub mod secrets;
pub mod stack;
pub mod status;
pub mod warehouse;
pub mod webhooks;
