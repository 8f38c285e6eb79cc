//! lnsync's adapters: one module per outside system, each behind the core port it serves.
//!
//! - [`ews`]: Exchange Web Services (on-premises Exchange) behind `Mailbox`: a sans-IO codec and
//!   `EwsMailbox` over an injected HTTP transport.
//! - [`ln`]: the LN OData v4 API behind the ION API gateway (`.ionapi` auth) behind `LnGateway`.
//! - [`sqlite`]: the embedded `StateStore` for the single-process runner.
//! - [`memqueue`]: the in-process `JobQueue`, FIFO per message group like SQS FIFO.

pub mod ews;
pub mod ln;
pub mod memqueue;
pub mod sqlite;
