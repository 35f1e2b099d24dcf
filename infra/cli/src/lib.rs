//! `ingestlayer`: the operator's command line. The binary (`main.rs`) is wiring; the commands
//! live here so the local stack (`make dev` applies `pipelines/` at start) and the tests call
//! the same code.

pub mod entities;
pub mod error;
pub mod events;
pub mod pipeline_files;
pub mod pipeline_table;
pub mod pipelines;
pub mod progress;
pub mod rows;
pub mod stack;
