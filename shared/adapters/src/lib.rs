//! lnsync's adapters: one module per outside system, each behind the core port it serves.
//!
//! - [`ews`]: Exchange Web Services (on-premises Exchange) behind `Mailbox`: a sans-IO codec and
//!   `EwsMailbox` over an injected HTTP transport.
//! - [`graph`]: Microsoft Graph (Exchange Online) behind `Mailbox`: `GraphMailbox` with
//!   client-credentials auth, a per-mailbox gate, `$batch` and delta cursors.
//! - [`ln`]: the LN OData v4 API behind the ION API gateway (`.ionapi` auth) behind `LnGateway`.
//! - [`sqlite`]: the embedded `StateStore` for the single-process runner.
//! - [`dynamo`]: the serverless `StateStore`: one DynamoDB table (`DynamoStateStore`,
//!   `create_table`; design in `docs/dynamodb.md`).
//! - [`memqueue`]: the in-process `JobQueue`, FIFO per message group like SQS FIFO.
//! - [`sqs`]: the serverless `JobQueue`: an SQS FIFO queue with a dead-letter queue
//!   (`SqsJobQueue`, `create_queues`; semantics in `docs/serverless.md`).
//! - `exchange`: what the EWS and Graph adapters share in mapping calendar items.
//! - `odata`: OData URL helpers (literals, percent-encoding) for LN and Graph.
//! - [`tz`]: Windows ↔ IANA time zones (CLDR) for the Exchange calendar adapters.

pub mod dynamo;
pub mod ews;
mod exchange;
pub mod graph;
pub mod ln;
pub mod memqueue;
mod odata;
pub mod sqlite;
pub mod sqs;
#[cfg(test)]
mod test_fixtures;
pub mod tz;
