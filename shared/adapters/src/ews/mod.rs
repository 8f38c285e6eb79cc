//! The EWS adapter (on-premises Exchange): the core's `Mailbox` port over SOAP/XML.
//!
//! - [`codec`]: sans-IO request builders and response parsers on quick-xml.
//! - [`mailbox`]: [`EwsMailbox`], the `Mailbox` implementation: impersonation, batching,
//!   per-item results, per-mailbox throttling.
//! - [`transport`]: the injected [`HttpTransport`] and its reqwest + rustls implementation.
//! - [`auth`]: Basic or Bearer credentials with redacted [`Secret`]s.
//! - `calendar`: the calendar methods of [`EwsMailbox`] and the mapping between EWS calendar items
//!   and the core's calendar model (R15–R30).
//! - `classify`: what each EWS response code means (item error, configuration, retry).
//! - `subscribe`: the push subscription method of [`EwsMailbox`] (R31–R33).
//! - [`notify`]: the parser of the `SendNotification` requests Exchange pushes to us, and the
//!   `SendNotificationResult` reply.

pub mod auth;
mod calendar;
mod classify;
pub mod codec;
pub mod mailbox;
pub mod notify;
mod subscribe;
pub mod transport;

#[cfg(test)]
mod calendar_mailbox_tests;
#[cfg(test)]
mod calendar_sim_tests;
#[cfg(test)]
mod mailbox_tests;
#[cfg(test)]
mod sim_tests;

pub use auth::{EwsAuth, Secret};
pub use mailbox::{EwsConfig, EwsMailbox};
pub use transport::{HttpRequest, HttpResponse, HttpTransport, ReqwestTransport, TransportError};
