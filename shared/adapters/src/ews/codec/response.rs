//! Response parsing: SOAP faults, and every `…ResponseMessage` in order with its class, code,
//! MessageXml and the ids / stamps / paging / sync changes it carries.
//!
//! EWS answers a batch with HTTP 200 and one response message per input item; each must be checked
//! on its own (architecture.md, "Errors"). Server-level failures (throttling, bad impersonation)
//! arrive as SOAP faults instead, usually with HTTP 500.

use std::time::Duration;

use super::calendar::{self, CalendarData};
use super::types::{ExtendedField, FolderId, ItemId};
use super::xml::{self, Element, XmlError};

/// `ResponseClass` of one response message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    Success,
    Warning,
    Error,
}

/// The `t:Value Name="…"` pairs of a `MessageXml` (e.g. `BackOffMilliseconds`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageXml(pub Vec<(String, String)>);

impl MessageXml {
    fn parse(el: Option<&Element>) -> Self {
        Self(
            el.map(|el| {
                el.children_named("Value")
                    .filter_map(|v| Some((v.attr("Name")?.to_owned(), v.text.trim().to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The server's throttling hint, when it gave one.
    pub fn back_off(&self) -> Option<Duration> {
        self.value("BackOffMilliseconds")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
    }
}

/// An extended property value as returned by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedValue {
    /// The attributes of its `ExtendedFieldURI`, as sent by the server.
    pub uri: Vec<(String, String)>,
    pub value: String,
}

/// An item in a response: its id and whatever extended properties were requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInfo {
    /// The item element's local name (`Contact`, `Item`, `CalendarItem`, …).
    pub kind: String,
    pub id: ItemId,
    pub extended: Vec<ExtendedValue>,
    /// The calendar fields of a `CalendarItem`, as far as the request's shape asked for them.
    pub calendar: Option<Box<CalendarData>>,
}

impl ItemInfo {
    pub fn extended(&self, field: ExtendedField) -> Option<&str> {
        self.extended
            .iter()
            .find(|e| {
                field.matches(&|k: &str| e.uri.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            })
            .map(|e| e.value.as_str())
    }

    /// The R10 stamp, when the item carries one.
    pub fn crm_id(&self) -> Option<&str> {
        self.extended(ExtendedField::CRM_ID)
    }
}

/// A folder in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    pub id: FolderId,
    pub display_name: Option<String>,
}

/// Paging attributes of a FindItem/FindFolder `RootFolder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Offset to ask for next (`IndexedPagingOffset`).
    pub next_offset: Option<u32>,
    pub total_items_in_view: Option<u32>,
    pub includes_last_item_in_range: bool,
}

/// One change reported by SyncFolderItems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncChange {
    Create(ItemInfo),
    Update(ItemInfo),
    Delete(ItemId),
    ReadFlagChange { id: ItemId, is_read: bool },
}

/// The SyncFolderItems payload of a response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncChanges {
    pub sync_state: String,
    /// `false` → more changes are waiting: call again with the new state.
    pub includes_last_item_in_range: bool,
    pub changes: Vec<SyncChange>,
}

/// The subscription a `SubscribeResponseMessage` created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub id: String,
    /// Where the subscription's event stream starts.
    pub watermark: Option<String>,
}

/// One `…ResponseMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMessage {
    /// The message element's name without `ResponseMessage` (`CreateItem`, `FindFolder`, …).
    pub operation: String,
    pub class: ResponseClass,
    /// `NoError` when the server omitted it.
    pub code: String,
    pub message_text: Option<String>,
    pub message_xml: MessageXml,
    pub items: Vec<ItemInfo>,
    pub folders: Vec<FolderInfo>,
    pub paging: Option<Paging>,
    pub sync: Option<SyncChanges>,
    /// Subscribe: the new subscription, when the message names one.
    pub subscription: Option<SubscriptionInfo>,
}

impl ResponseMessage {
    /// Success, or a Warning that still says NoError. A Warning with an error code (e.g.
    /// ErrorBatchProcessingStopped) means the item was not processed.
    pub fn is_success(&self) -> bool {
        self.class == ResponseClass::Success || self.code == "NoError"
    }

    pub fn back_off(&self) -> Option<Duration> {
        self.message_xml.back_off()
    }
}

/// A SOAP fault (exchange.md §2.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// `faultcode` without its prefix (`ErrorServerBusy`, `Client`, …).
    pub fault_code: String,
    pub fault_string: String,
    /// `detail/ResponseCode`, falling back to the fault code when the detail is missing.
    pub response_code: String,
    pub message_xml: MessageXml,
}

impl SoapFault {
    pub fn back_off(&self) -> Option<Duration> {
        self.message_xml.back_off()
    }
}

impl std::fmt::Display for SoapFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SOAP fault {}: {}",
            self.response_code, self.fault_string
        )
    }
}

/// Why a response body could not be turned into response messages.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("{0}")]
    Fault(SoapFault),
    #[error("malformed EWS response")]
    Xml(#[from] XmlError),
    /// Parsed, but not the shape we expect (e.g. an HTML error page from a proxy).
    #[error("unexpected EWS response shape: {0}")]
    Shape(&'static str),
}

fn item_id(el: &Element) -> Option<ItemId> {
    Some(ItemId {
        id: el.attr("Id")?.to_owned(),
        change_key: el.attr("ChangeKey").map(str::to_owned),
    })
}

fn item_info(el: &Element) -> Option<ItemInfo> {
    Some(ItemInfo {
        kind: el.name.clone(),
        id: item_id(el.child("ItemId")?)?,
        extended: el
            .children_named("ExtendedProperty")
            .filter_map(|p| {
                Some(ExtendedValue {
                    uri: p.child("ExtendedFieldURI")?.attrs.clone(),
                    // Multi-valued properties are not ours; take the single value.
                    value: p.child_text("Value")?.to_owned(),
                })
            })
            .collect(),
        calendar: (el.name == "CalendarItem").then(|| Box::new(calendar::parse_calendar_item(el))),
    })
}

fn items_of(container: Option<&Element>) -> Vec<ItemInfo> {
    container
        .map(|items| items.children.iter().filter_map(item_info).collect())
        .unwrap_or_default()
}

fn folders_of(container: Option<&Element>) -> Vec<FolderInfo> {
    container
        .map(|folders| {
            folders
                .children
                .iter()
                .filter_map(|f| {
                    let id = f.child("FolderId")?;
                    Some(FolderInfo {
                        id: FolderId {
                            id: id.attr("Id")?.to_owned(),
                            change_key: id.attr("ChangeKey").map(str::to_owned),
                        },
                        display_name: f.child_text("DisplayName").map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse_bool(s: Option<&str>) -> Option<bool> {
    match s.map(str::trim) {
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        _ => None,
    }
}

fn parse_sync(msg: &Element) -> Option<SyncChanges> {
    let sync_state = msg.child_text("SyncState")?.to_owned();
    let changes = msg
        .child("Changes")
        .map(|c| {
            c.children
                .iter()
                .filter_map(|ch| match ch.name.as_str() {
                    "Create" => ch
                        .children
                        .iter()
                        .find_map(item_info)
                        .map(SyncChange::Create),
                    "Update" => ch
                        .children
                        .iter()
                        .find_map(item_info)
                        .map(SyncChange::Update),
                    "Delete" => ch.child("ItemId").and_then(item_id).map(SyncChange::Delete),
                    "ReadFlagChange" => Some(SyncChange::ReadFlagChange {
                        id: ch.child("ItemId").and_then(item_id)?,
                        is_read: parse_bool(ch.child_text("IsRead")).unwrap_or(false),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(SyncChanges {
        sync_state,
        // Absent means the server had nothing more to say; treat as the last page so a
        // caller never loops forever on a terse server.
        includes_last_item_in_range: parse_bool(msg.child_text("IncludesLastItemInRange"))
            .unwrap_or(true),
        changes,
    })
}

fn parse_subscription(msg: &Element) -> Option<SubscriptionInfo> {
    let id = msg
        .child_text("SubscriptionId")
        .filter(|id| !id.is_empty())?;
    Some(SubscriptionInfo {
        id: id.to_owned(),
        watermark: msg
            .child_text("Watermark")
            .filter(|w| !w.is_empty())
            .map(str::to_owned),
    })
}

fn parse_message(el: &Element) -> Result<ResponseMessage, ResponseError> {
    let class = match el.attr("ResponseClass") {
        Some("Success") => ResponseClass::Success,
        Some("Warning") => ResponseClass::Warning,
        Some("Error") => ResponseClass::Error,
        _ => {
            return Err(ResponseError::Shape(
                "response message without a valid ResponseClass",
            ));
        }
    };
    let root = el.child("RootFolder");
    let paging = root.map(|r| Paging {
        next_offset: r.attr("IndexedPagingOffset").and_then(|v| v.parse().ok()),
        total_items_in_view: r.attr("TotalItemsInView").and_then(|v| v.parse().ok()),
        includes_last_item_in_range: parse_bool(r.attr("IncludesLastItemInRange")).unwrap_or(true),
    });
    let mut items = items_of(el.child("Items"));
    items.extend(items_of(root.and_then(|r| r.child("Items"))));
    let mut folders = folders_of(el.child("Folders"));
    folders.extend(folders_of(root.and_then(|r| r.child("Folders"))));
    Ok(ResponseMessage {
        operation: el.name.trim_end_matches("ResponseMessage").to_owned(),
        class,
        code: el
            .child_text("ResponseCode")
            .unwrap_or("NoError")
            .to_owned(),
        message_text: el.child_text("MessageText").map(str::to_owned),
        message_xml: MessageXml::parse(el.child("MessageXml")),
        items,
        folders,
        paging,
        sync: parse_sync(el),
        subscription: parse_subscription(el),
    })
}

fn parse_fault(fault: &Element) -> SoapFault {
    let fault_code = fault
        .child_text("faultcode")
        .map(|c| c.rsplit_once(':').map(|(_, l)| l).unwrap_or(c).to_owned())
        .unwrap_or_default();
    let detail = fault.child("detail");
    SoapFault {
        response_code: detail
            .and_then(|d| d.child_text("ResponseCode"))
            .map(str::to_owned)
            .unwrap_or_else(|| fault_code.clone()),
        fault_code,
        fault_string: fault
            .child_text("faultstring")
            .unwrap_or_default()
            .to_owned(),
        message_xml: MessageXml::parse(detail.and_then(|d| d.child("MessageXml"))),
    }
}

/// Parses a response body: a fault becomes [`ResponseError::Fault`], otherwise every response
/// message of the body's single operation response, in document order.
pub fn parse_response(body: &[u8]) -> Result<Vec<ResponseMessage>, ResponseError> {
    let root = xml::parse(body)?;
    if root.name != "Envelope" {
        return Err(ResponseError::Shape("not a SOAP envelope"));
    }
    let body = root
        .child("Body")
        .ok_or(ResponseError::Shape("SOAP envelope without a Body"))?;
    if let Some(fault) = body.child("Fault") {
        return Err(ResponseError::Fault(parse_fault(fault)));
    }
    let messages = body
        .children
        .first()
        .and_then(|op| op.child("ResponseMessages"))
        .ok_or(ResponseError::Shape("no ResponseMessages in the body"))?;
    messages.children.iter().map(parse_message).collect()
}

/// Parses only a SOAP fault, for error bodies (HTTP 500) that might carry one.
pub fn parse_fault_body(body: &[u8]) -> Option<SoapFault> {
    let root = xml::parse(body).ok()?;
    root.find("Fault").map(parse_fault)
}
