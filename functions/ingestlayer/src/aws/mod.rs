//! What talks to AWS beyond a single table: DynamoDB items as typed structs, SQS batches,
//! the DLQ redrive and secrets.

pub mod dynamo;
pub mod redrive;
pub mod retry;
pub mod secrets;
pub mod sqs;
