//! Pure planners: given what each side reported and the stored links, decide what to write.
//! No clock, no I/O, no randomness: the same input always gives the same plan.
//!
//! - [`contacts`]: LN → Exchange, one way (R8–R13), with the deletion safety gate (R30).

pub mod calendar;
pub mod contacts;

pub use contacts::{ContactPlan, ContactPlanInput, DeletionGate, PlannedContact, plan_contacts};
