//! ews-sim: an Exchange Web Services simulator (SOAP 1.1 over HTTP) for lnsync's tests.
//!
//! A real EWS client works against it unchanged: it keeps mailboxes with folders and items,
//! enforces ChangeKeys, answers in the response shapes of Microsoft's messages.xsd/types.xsd,
//! can throttle and inject faults, logs every request with its raw body, and calls push
//! subscribers back with SendNotification as Exchange does.
//!
//! Module map:
//! - [`sim`]: the Rust API. [`EwsSim`] runs a server on a local port; [`SimHandle`] arranges
//!   mailboxes, acts as "the user in Outlook", injects faults and reads the request log.
//! - [`server`]: the HTTP endpoint `POST /EWS/Exchange.asmx`: auth, impersonation,
//!   X-AnchorMailbox, back-off enforcement, fault injection, dispatch, logging.
//! - [`sim_calendar`]: `SimHandle` calendar actions (the user in Outlook) and the clock.
//! - [`sim_push`]: `SimHandle` push controls (subscriptions, drop, expire watermarks, time
//!   scale, outgoing notifications).
//! - [`sim_graph`]: `SimHandle` Graph change-notification controls (subscriptions, lifecycle
//!   events, drop/expire, pausing delivery, time scale, outgoing notifications).
//! - [`graph`]: the Microsoft Graph v1.0 front-end (token endpoint, `/v1.0/users/{u}/…` events,
//!   calendarView and delta, contacts, `$batch`, throttling) over the same store.
//! - [`admin`]: the `/_sim/` admin HTTP API (health, reset, seed, state, faults, requests,
//!   push…).
//! - [`soap`]: request envelope reading, response envelopes and SOAP faults.
//! - [`ops`]: the operations (CreateFolder, FindFolder, GetFolder, DeleteFolder, CreateItem,
//!   GetItem, UpdateItem, DeleteItem, FindItem, SyncFolderItems; Subscribe in [`push`]).
//! - [`events`]: each mailbox's event table with per-event watermarks (what notifications
//!   carry), retention and expiry.
//! - [`push`]: push subscriptions: the Subscribe operation, routing events to subscriptions,
//!   SendNotification XML, reading subscribers' replies.
//! - [`push_delivery`]: the per-subscription delivery task (batching, status events, retries
//!   with doubling gaps, dropping), logging each POST as an outgoing request record.
//! - [`restriction`]: FindItem/FindFolder search expressions.
//! - [`render`]: property paths, response shapes and schema-ordered XML for items and folders.
//! - [`model`]: ids (incl. occurrence ids), ChangeKeys, extended-property keys,
//!   `Item`/`ItemKind` (contacts, calendar items), folders.
//! - [`calendar`]: the calendar item model, Windows→IANA zones, recurrence expansion.
//! - [`calendar_xml`]: reading/writing `t:CalendarItem` and applying calendar updates.
//! - [`meetings`]: what crosses mailboxes: invitations, updates, cancellations, responses.
//! - [`store`]: mailboxes and their folders/items with a global change sequence.
//! - [`state`]: everything behind the lock, incl. SyncStates, back-off windows and push
//!   subscriptions.
//! - [`faults`], [`log`], [`config`], [`seed`]: fault rules, request records, configuration,
//!   JSON seed documents.
//! - [`schema`]: validates request (or response) envelopes against the EWS XSDs via xmllint.
//! - [`xml`]: a namespace-resolved DOM over quick-xml and output escaping.

pub mod admin;
pub mod calendar;
pub mod calendar_xml;
pub mod config;
pub mod error;
pub mod events;
pub mod faults;
pub mod graph;
pub mod log;
pub mod meetings;
pub mod model;
pub mod ops;
pub mod push;
pub mod push_delivery;
pub mod render;
pub mod restriction;
pub mod schema;
pub mod schema_order;
pub mod seed;
pub mod server;
pub mod sim;
pub mod sim_calendar;
pub mod sim_graph;
pub mod sim_push;
pub mod soap;
pub mod state;
pub mod store;
pub mod xml;

pub use calendar::{
    Attendee, CalendarItem, ModifiedOccurrence, Pattern, Range, Recipient, Recurrence,
};
pub use config::GraphPushConfig;
pub use config::{Credential, GraphClient, GraphConfig, PushConfig, SimConfig};
pub use error::{SchemaError, SchemaViolation, SimError};
pub use events::{EventKind, EventObject, MailboxEvent, ParentRef};
pub use faults::{FaultAction, FaultRule};
pub use graph::delivery::{ChangeType, GraphSubscriptionInfo, LifecycleEvent};
pub use log::{AuthKind, Direction, Protocol, PushDelivery, RequestRecord};
pub use meetings::Response;
pub use model::{
    Body, ChangeKey, Contact, DistinguishedFolder, ExtendedPropertyKey, ExtendedValue, Folder,
    FolderId, Item, ItemId, ItemKind, PhysicalAddress, PropertyRef, StoredItem,
};
pub use model::{make_occurrence_id, parse_occurrence_id};
pub use push::{SEND_NOTIFICATION_ACTION, SubscriberAnswer, SubscriptionInfo, SubscriptionState};
pub use seed::{Seed, SeedContact, SeedReport};
pub use server::EWS_PATH;
pub use sim::{EwsSim, SimHandle};
pub use sim_calendar::{CreatedEvent, EventEdit, EventInstance, NewEvent};
pub use store::FolderRef;
