//! lnsync's core: everything about synchronizing Infor LN CRM with Exchange that does not do I/O.
//!
//! - [`ids`]: identifier newtypes and the `CrmId` stamp.
//! - [`calendar`]: the Exchange side of calendar sync (events, keys, times, writes).
//! - [`model`]: the domain model (environments, settings, users, employees, contacts,
//!   activities, attendees, links, cursors, jobs, runs, problems).
//! - [`normalize`]: LN → Exchange field mapping and content hashes.
//! - [`plan`]: the pure planners (contacts now; calendar next).
//! - [`ports`]: the traits adapters implement (`LnGateway`, `Mailbox`, `StateStore`,
//!   `JobQueue`, `Clock`).
//! - [`service`]: runs plans over the ports, persisting each pair's link right after its write.
//! - [`error`]: port errors and their classes.
//! - [`secret`]: the redacted `Secret` type.
//! - `testing` (feature `testing`): in-memory port implementations for tests.

pub mod calendar;
pub mod error;
pub mod ids;
pub mod model;
pub mod normalize;
pub mod plan;
pub mod ports;
pub mod secret;
pub mod service;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Classify, ErrorClass};
