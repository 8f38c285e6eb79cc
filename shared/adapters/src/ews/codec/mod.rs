//! The sans-IO EWS codec: builds SOAP requests and parses SOAP responses, nothing else.
//!
//! - [`request`]: the envelope (version + impersonation headers) and one builder per operation.
//! - [`calendar`]: the calendar operations (CalendarView, full GetItem, Create/Update/Delete of
//!   calendar items) and the EWS-shaped calendar item.
//! - [`contact`]: the R13 contact field table behind CreateItem and UpdateItem.
//! - [`subscribe`]: `Subscribe` with a push subscription request (the notifications themselves
//!   are parsed by `ews::notify`).
//! - [`response`]: response messages (per-item ResponseClass), SOAP faults, sync changes, paging.
//! - [`types`]: ids, folder references, extended properties and property paths.
//! - `xml`: the escaping builder and the small element tree the two sides are built on.
//!
//! Every request builder's output is validated against Microsoft's EWS schemas in the tests.

pub mod calendar;
pub(crate) mod contact;
pub mod request;
pub mod response;
pub mod subscribe;
pub mod types;
pub mod xml;

#[cfg(test)]
pub(crate) mod calendar_tests;
#[cfg(test)]
pub(crate) mod schema_check;
#[cfg(test)]
mod tests;

pub use calendar::{
    AttendeeInfo, AttendeeLists, CalendarChange, CalendarData, CalendarWrite, CancelCalendarItems,
    CreateCalendarItems, FindCalendarView, GetCalendarItems, GetRecurringMasters,
    MAX_CALENDAR_VIEW_DAYS, MeetingMessages, Recipient, UpdateCalendarItems,
};
pub use request::{
    CreateContacts, CreateContactsFolder, DeleteItems, Envelope, FindFolder, FindItems, GetItems,
    MAX_SYNC_CHANGES, Operation, Page, Restriction, SERVER_VERSION, SyncFolderItems,
    UpdateContacts,
};
pub use response::{
    ExtendedValue, FolderInfo, ItemInfo, MessageXml, Paging, ResponseClass, ResponseError,
    ResponseMessage, SoapFault, SubscriptionInfo, SyncChange, SyncChanges, parse_fault_body,
    parse_response,
};
pub use subscribe::{CALENDAR_EVENTS, MAX_STATUS_FREQUENCY_MINUTES, PushSubscribe};
pub use types::{DistinguishedFolder, ExtendedField, FolderId, FolderRef, ItemId, PropertyPath};
pub use xml::{XmlBuilder, XmlError};
