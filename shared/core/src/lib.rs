//! lnsync's core: everything about synchronizing Infor LN CRM with Exchange that does not do I/O.
//!
//! - [`ids`]: identifier newtypes and the `CrmId` stamp.
//! - [`calendar`]: the Exchange side of calendar sync (events, keys, times, writes).
//! - [`model`]: the domain model (environments, settings, users, employees, contacts,
//!   activities, attendees, links, cursors, jobs, runs, problems).
//! - [`normalize`]: LN → Exchange field mapping and content hashes (contacts; the calendar's
//!   event mapping lives with its planner in `plan::calendar`).
//! - [`plan`]: the pure planners: contacts (one way) and calendar (both ways, with the
//!   ownership rule, the mapping of R20 and the conflict policy of R28).
//! - [`ports`]: the traits adapters implement (`LnGateway`, `Mailbox`, `StateStore`,
//!   `JobQueue`, `Clock`).
//! - [`service`]: runs plans over the ports, persisting each pair's link right after its write
//!   (`ContactSync`, `CalendarSync`).
//! - [`error`]: port errors and their classes.
//! - [`secret`]: the redacted `Secret` type.
//! - `testing` (feature `testing`): in-memory port implementations for tests, with a calendar
//!   model close to Exchange's (meeting copies, responses, series) in `testing::calendar`.

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
