//! The Microsoft Graph v1.0 front-end over the same mailbox store as the EWS endpoint, as
//! Exchange Online serves both protocols from one store: an item created through either (or
//! by a `SimHandle` "user in Outlook" action) is visible through the other, with the same
//! ChangeKeys, meeting delivery and event journal.
//!
//! Module map:
//! - [`endpoint`]: HTTP entry points (token, `/v1.0/…`), routing, the request pipeline
//!   (auth → mailbox access → back-off → concurrency → faults → handler) and logging.
//! - [`events`]: events, calendarView, instances, mailboxSettings.
//! - [`contacts`]: contact folders and contacts.
//! - [`batch`]: `$batch` (≤ 20 inner requests through the same pipeline).
//! - [`throttle`]: mailbox concurrency, Retry-After windows, injected Graph faults.
//! - [`handle`]: `SimHandle` Graph controls (tokens, mailbox zones, throttling answers,
//!   delta-token invalidation, Graph request log).
//! - [`ids`]: Graph ids (`AAkALg…`, URL-safe) ⇄ store ids; EWS ids are malformed here.
//! - [`error`]: `GraphError`, the `{"error":{"code","message"}}` answer (+ `Retry-After`).
//! - [`auth`]: the Entra token endpoint, bearer checks, the application access policy.
//! - [`state`]: tokens, in-flight counts, Retry-After windows, transactionIds, delta state.
//! - [`delta`]: delta tokens (server-side snapshots) and page sessions.
//! - [`filter`]: the OData `$filter`/`$expand` subset and extended-property ids.
//! - [`json`]: events, contacts and contact folders as Graph JSON, and back.
//! - [`subscriptions`]: `/v1.0/subscriptions` (create with the validation handshake, get,
//!   list, renew, delete, reauthorize).
//! - [`delivery`]: change and lifecycle notifications: routing journalled changes to
//!   subscriptions, batching, retries with doubling gaps, expiry.

pub mod auth;
pub mod batch;
pub mod contacts;
pub mod delivery;
pub mod delta;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod filter;
pub mod handle;
pub mod ids;
pub mod json;
pub mod state;
pub mod subscriptions;
pub mod throttle;

use axum::Router;
use axum::routing::{any, post};

use crate::sim::SimHandle;

pub use error::GraphError;
pub use ids::{graph_folder_id, graph_item_id, parse_graph_folder_id, parse_graph_item_id};

/// The Graph routes: the Entra token endpoint, `/v1.0/…` resources and subscriptions.
pub fn router() -> Router<SimHandle> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(endpoint::token_entry))
        .route("/v1.0/{*rest}", any(endpoint::graph_entry))
        .merge(subscriptions::router())
}
