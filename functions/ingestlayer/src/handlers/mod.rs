//! The three Lambda handlers: they translate between the outside world (HTTP requests,
//! SQS batches) and the library, and hold the clients built once per cold start.

pub mod connect;
pub mod delivery;
pub mod destinations;
pub mod ingest;
pub mod pipeline;
pub mod webhooks;
