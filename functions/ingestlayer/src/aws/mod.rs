//! What talks to AWS beyond a single table: SQS batches, the DLQ redrive and secrets.

pub mod redrive;
pub mod retry;
pub mod secrets;
pub mod sqs;
