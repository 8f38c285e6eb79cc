//! lnsync's port contract suites: every implementation of a port runs the very same tests, so
//! "the SQLite store and the DynamoDB store behave alike" is checked, not hoped.
//!
//! - [`contract::store`]: the `StateStore` suite; `run_all(|| async { store })`.
//! - [`contract::queue`]: the `JobQueue` suite; `run_all(|config| async { queue })`.
//! - [`contract::mailbox`]: the `Mailbox` suite, `EwsMailbox` and `GraphMailbox` on the same
//!   Exchange simulator; `run_all(Backend::Graph)`.
//! - [`harness`]: the end-to-end world (LN and Exchange simulators, configuration, store,
//!   the real runner) on either Exchange [`harness::Backend`], backend-neutral request counts
//!   ([`harness::Op`]), and [`both_backends!`] to run one scenario on EWS and on Graph.
//! - [`calendar_world`]: the calendar end-to-end world on top of `harness`: `CalendarSync`
//!   over the real adapters, one simulated time for lnsync and both simulators.
//! - [`push_world`]: a calendar world with `lnsync serve` (push endpoint and worker) over it.
//! - [`moto`]: a local AWS emulator (DynamoDB, SQS) and SDK clients for the AWS adapters' runs.
//! - [`iac`]: the deployment template translated and deployed into moto, and its drift checks
//!   against the code's names.
//!
//! Each suite is a set of public async test functions plus a `CASES` table and a `run_all`
//! that runs every case on a fresh instance and reports all failures at once. An adapter's
//! test file wires its implementation with one line per backend.

pub mod calendar_world;
pub mod contract;
pub mod harness;
pub mod iac;
pub mod moto;
pub mod push_world;
