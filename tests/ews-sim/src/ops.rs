//! The EWS operations. Each handler first parses the whole request (schema-level problems
//! become a SOAP fault for the request, as Exchange validates before it processes), then
//! processes the items one by one, writing one `…ResponseMessage` per input item in order.
//! `Subscribe` lives with the rest of push in `push`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::calendar::{Recipient, new_uid};
use crate::calendar_xml::{
    CalError, apply_calendar_field, apply_item_field_on_calendar, exception_from,
    finish_calendar_update, parse_calendar_item,
};
use crate::meetings::{
    Notify, Response, cancel_meeting, delete_occurrence, deliver, expand_calendar, instance_item,
    mark_sent, resolve_occurrence, respond,
};
use crate::model::{
    ADDRESS_KEYS, ADDRESS_PARTS, Body, CONTACT_STRING_FIELDS, ChangeKey, Contact, EMAIL_KEYS,
    ExtendedPropertyKey, ExtendedValue, Item, ItemId, ItemKind, KIND_ITEM, PHONE_KEYS,
    PhysicalAddress, StoredItem, is_well_formed_id, parse_occurrence_id,
};
use crate::render::{
    FieldPath, Shape, folder_values, item_id_el, item_values, render_folder, render_item,
};
use crate::restriction::Restriction;
use crate::schema_order::{CONTACT_ORDER, ITEM_ORDER};
use crate::state::{SimState, SyncSnapshot};
use crate::store::{DeleteType, FolderRef, Mailbox, Store};
use crate::xml::{Element, esc, text_el};

/// Per-request context.
pub struct OpCtx<'a> {
    /// Target mailbox (as addressed; lookups are case-insensitive).
    pub mailbox: &'a str,
    /// Injected per-item errors: input index → (ResponseCode, MessageText).
    pub item_faults: &'a BTreeMap<usize, (String, String)>,
    /// `RequestServerVersion/@Version` (which elements the answer may carry).
    pub server_version: Option<&'a str>,
    /// `TimeZoneContext` zone id: how un-offset times in the request are read.
    pub time_zone_context: Option<&'a str>,
}

/// The `m:…Response` element and the per-item ResponseCodes, for the log.
#[derive(Debug)]
pub struct OpOutput {
    pub xml: String,
    pub codes: Vec<String>,
}

/// A request-level failure, answered as a SOAP fault with HTTP 500.
#[derive(Debug, Clone)]
pub struct OpFault {
    pub code: &'static str,
    pub message: String,
}

impl OpFault {
    pub fn schema(msg: impl Into<String>) -> Self {
        OpFault {
            code: "ErrorSchemaValidation",
            message: format!("The request failed schema validation: {}", msg.into()),
        }
    }

    pub fn invalid_request(msg: impl Into<String>) -> Self {
        OpFault {
            code: "ErrorInvalidRequest",
            message: msg.into(),
        }
    }
}

/// Operations the simulator implements.
pub const OPERATIONS: &[&str] = &[
    "CreateFolder",
    "FindFolder",
    "GetFolder",
    "DeleteFolder",
    "CreateItem",
    "GetItem",
    "UpdateItem",
    "DeleteItem",
    "FindItem",
    "SyncFolderItems",
    "Subscribe",
];

/// How many items a request carries (for the log), by operation.
pub fn item_count(op: &Element) -> usize {
    let list = match op.name.as_str() {
        "CreateItem" => "Items",
        "GetItem" | "DeleteItem" => "ItemIds",
        "UpdateItem" => "ItemChanges",
        "CreateFolder" => "Folders",
        "GetFolder" | "DeleteFolder" => "FolderIds",
        "FindItem" | "FindFolder" => "ParentFolderIds",
        "SyncFolderItems" | "Subscribe" => return 1,
        _ => return 0,
    };
    op.child(list).map(|l| l.children.len()).unwrap_or(0)
}

pub fn dispatch(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    match op.name.as_str() {
        "CreateFolder" => create_folder(state, ctx, op),
        "FindFolder" => find_folder(state, ctx, op),
        "GetFolder" => get_folder(state, ctx, op),
        "DeleteFolder" => delete_folder(state, ctx, op),
        "CreateItem" => create_item(state, ctx, op),
        "GetItem" => get_item(state, ctx, op),
        "UpdateItem" => update_item(state, ctx, op),
        "DeleteItem" => delete_item(state, ctx, op),
        "FindItem" => find_item(state, ctx, op),
        "SyncFolderItems" => sync_folder_items(state, ctx, op),
        "Subscribe" => crate::push::subscribe(state, ctx, op),
        other => Err(OpFault::invalid_request(format!(
            "The request is invalid: operation '{other}' is not supported by the simulator."
        ))),
    }
}

/// Writes `m:ResponseMessages` one message at a time.
pub(crate) struct Responses {
    op: &'static str,
    msg: &'static str,
    xml: String,
    codes: Vec<String>,
}

impl Responses {
    pub(crate) fn new(op: &'static str, msg: &'static str) -> Self {
        Responses {
            op,
            msg,
            xml: format!("<m:{op}Response><m:ResponseMessages>"),
            codes: Vec::new(),
        }
    }

    pub(crate) fn success(&mut self, payload: &str) {
        self.xml.push_str(&format!(
            "<m:{m} ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode>{payload}</m:{m}>",
            m = self.msg
        ));
        self.codes.push("NoError".into());
    }

    /// `empty` is the payload the schema requires even on errors (`<m:Items/>` for item info).
    pub(crate) fn error(&mut self, code: &str, text: &str, empty: &str) {
        self.xml.push_str(&format!(
            "<m:{m} ResponseClass=\"Error\"><m:MessageText>{t}</m:MessageText><m:ResponseCode>{c}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{empty}</m:{m}>",
            m = self.msg,
            t = esc(text),
            c = esc(code)
        ));
        self.codes.push(code.to_string());
    }

    pub(crate) fn finish(mut self) -> OpOutput {
        self.xml
            .push_str(&format!("</m:ResponseMessages></m:{}Response>", self.op));
        OpOutput {
            xml: self.xml,
            codes: self.codes,
        }
    }
}

fn message_for(code: &str) -> &'static str {
    match code {
        "ErrorItemNotFound" => "The specified object was not found in the store.",
        "ErrorFolderNotFound" => "The specified folder could not be found in the store.",
        "ErrorInvalidIdMalformed" => "Id is malformed.",
        "ErrorIrresolvableConflict" => {
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item."
        }
        "ErrorChangeKeyRequiredForWriteOperations" => {
            "When making a request that changes an item, the change key must be supplied."
        }
        "ErrorFolderExists" => "A folder with the specified name already exists.",
        "ErrorInvalidSyncStateData" => {
            "Synchronization state data is corrupt or otherwise invalid."
        }
        "ErrorSyncFolderNotFound" => "The specified folder could not be found in the store.",
        "ErrorCalendarViewRangeTooBig" => {
            "The calendar view range exceeds the maximum of two years."
        }
        "ErrorCalendarEndDateIsEarlierThanStartDate" => "EndDate is earlier than StartDate",
        "ErrorCalendarFolderIsInvalidForCalendarView" => {
            "A calendar view can only be used on a calendar folder."
        }
        "ErrorInvalidRestriction" => "Restrictions are not supported with a calendar view.",
        "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange" => {
            "The occurrence index is out of the recurrence range."
        }
        "ErrorCalendarOccurrenceIsDeletedFromRecurrence" => {
            "The occurrence was deleted from the recurrence."
        }
        "ErrorCalendarCannotUseIdForRecurringMasterId" => {
            "The Id is not the id of a recurring master."
        }
        "ErrorCalendarCannotUseIdForOccurrenceId" => "The Id is not the id of an occurrence.",
        "ErrorInternalServerTransientError" => {
            "An internal server error occurred. Try again later."
        }
        _ => "The operation failed.",
    }
}

pub(crate) fn mailbox<'s>(state: &'s SimState, ctx: &OpCtx<'_>) -> Result<&'s Mailbox, OpFault> {
    state.store.mailbox(ctx.mailbox).map_err(|_| OpFault {
        code: "ErrorNonExistentMailbox",
        message: format!(
            "The SMTP address has no mailbox associated with it: {}",
            ctx.mailbox
        ),
    })
}

/// Reads a `t:FolderId` / `t:DistinguishedFolderId` element.
pub(crate) fn folder_ref(el: &Element) -> Result<FolderRef, OpFault> {
    let id = el
        .attr("Id")
        .ok_or_else(|| OpFault::schema(format!("{} requires an Id attribute", el.name)))?;
    match el.name.as_str() {
        "DistinguishedFolderId" => Ok(FolderRef::Distinguished(id.to_string())),
        "FolderId" => Ok(FolderRef::Id(id.to_string())),
        other => Err(OpFault::schema(format!(
            "unexpected folder id element '{other}'"
        ))),
    }
}

/// The single folder id inside a TargetFolderIdType container (ParentFolderId, SyncFolderId…).
fn target_folder(op: &Element, name: &str) -> Result<Option<FolderRef>, OpFault> {
    match op.child(name) {
        None => Ok(None),
        Some(c) => match c.children.first() {
            Some(f) => folder_ref(f).map(Some),
            None => Err(OpFault::schema(format!("{name} is empty"))),
        },
    }
}

fn folder_list(op: &Element, name: &str) -> Result<Vec<FolderRef>, OpFault> {
    let list = op
        .child(name)
        .ok_or_else(|| OpFault::schema(format!("{} requires {name}", op.name)))?;
    if list.children.is_empty() {
        return Err(OpFault::schema(format!("{name} must not be empty")));
    }
    list.children.iter().map(folder_ref).collect()
}

fn shape(op: &Element, name: &str) -> Result<Shape, OpFault> {
    let el = op
        .child(name)
        .ok_or_else(|| OpFault::schema(format!("{} requires {name}", op.name)))?;
    Shape::parse(el).map_err(OpFault::schema)
}

pub(crate) fn injected<'a>(ctx: &'a OpCtx<'_>, index: usize) -> Option<&'a (String, String)> {
    ctx.item_faults.get(&index)
}

// ---------------------------------------------------------------- folders

fn create_folder(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    let parent = target_folder(op, "ParentFolderId")?
        .ok_or_else(|| OpFault::schema("CreateFolder requires ParentFolderId"))?;
    let folders = op
        .child("Folders")
        .ok_or_else(|| OpFault::schema("CreateFolder requires Folders"))?;
    let mut requests = Vec::new();
    for f in &folders.children {
        let default_class = match f.name.as_str() {
            "Folder" => "IPF.Note",
            "ContactsFolder" => "IPF.Contact",
            "CalendarFolder" => "IPF.Appointment",
            "TasksFolder" => "IPF.Task",
            "SearchFolder" => "IPF.Note",
            other => {
                return Err(OpFault::schema(format!(
                    "unexpected folder element '{other}'"
                )));
            }
        };
        let class = f
            .child_text("FolderClass")
            .unwrap_or(default_class)
            .to_string();
        requests.push((
            f.child_text("DisplayName").map(str::to_string),
            class,
            f.name.clone(),
        ));
    }
    mailbox(state, ctx)?;
    let mut r = Responses::new("CreateFolder", "CreateFolderResponseMessage");
    let Ok((mb, seq)) = state.store.mailbox_mut(ctx.mailbox) else {
        return Err(OpFault::invalid_request("mailbox vanished"));
    };
    let parent_id = mb.resolve(&parent);
    for (i, (name, class, _)) in requests.into_iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "");
            continue;
        }
        let parent_id = match &parent_id {
            Ok(p) => p.clone(),
            Err(code) => {
                r.error(code, message_for(code), "");
                continue;
            }
        };
        let Some(name) = name else {
            r.error(
                "ErrorInvalidPropertySet",
                "A folder needs a DisplayName.",
                "",
            );
            continue;
        };
        match mb.create_folder(seq, &parent_id, &name, &class) {
            Ok(id) => {
                let folder = &mb.folders[&id];
                let mut payload = format!("<m:Folders><t:{}>", folder.element_name());
                item_id_el(
                    &mut payload,
                    "FolderId",
                    id.as_str(),
                    Some(folder.change_key.as_str()),
                );
                payload.push_str(&format!("</t:{}></m:Folders>", folder.element_name()));
                r.success(&payload);
            }
            Err(crate::error::SimError::FolderExists(_)) => {
                r.error("ErrorFolderExists", message_for("ErrorFolderExists"), "")
            }
            Err(_) => r.error(
                "ErrorFolderNotFound",
                message_for("ErrorFolderNotFound"),
                "",
            ),
        }
    }
    Ok(r.finish())
}

fn find_folder(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    let shape = shape(op, "FolderShape")?;
    let traversal = op
        .attr("Traversal")
        .ok_or_else(|| OpFault::schema("FindFolder requires the Traversal attribute"))?
        .to_string();
    if !matches!(traversal.as_str(), "Shallow" | "Deep" | "SoftDeleted") {
        return Err(OpFault::schema(format!("invalid Traversal '{traversal}'")));
    }
    let restriction = match op.child("Restriction") {
        Some(r) => Some(Restriction::parse_container(r).map_err(OpFault::schema)?),
        None => None,
    };
    let view = op
        .child("IndexedPageFolderView")
        .map(parse_view)
        .transpose()?;
    let parents = folder_list(op, "ParentFolderIds")?;
    let mb = mailbox(state, ctx)?;
    let mut r = Responses::new("FindFolder", "FindFolderResponseMessage");
    for (i, p) in parents.iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "");
            continue;
        }
        let pid = match mb.resolve(p) {
            Ok(id) => id,
            Err(code) => {
                r.error(code, message_for(code), "");
                continue;
            }
        };
        let candidates = match traversal.as_str() {
            "Shallow" => mb.child_folders(&pid),
            "Deep" => mb.descendant_folders(&pid),
            _ => Vec::new(),
        };
        let matching: Vec<_> = candidates
            .into_iter()
            .filter(|f| {
                restriction
                    .as_ref()
                    .is_none_or(|res| res.eval(&|path| folder_values(f, path)))
            })
            .collect();
        let (page, attrs) = paginate(&matching, view.as_ref());
        let mut payload = format!("<m:RootFolder{attrs}><t:Folders>");
        for f in page {
            render_folder(&mut payload, f, mb, &shape);
        }
        payload.push_str("</t:Folders></m:RootFolder>");
        r.success(&payload);
    }
    Ok(r.finish())
}

fn get_folder(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    let shape = shape(op, "FolderShape")?;
    let ids = folder_list(op, "FolderIds")?;
    let mb = mailbox(state, ctx)?;
    let mut r = Responses::new("GetFolder", "GetFolderResponseMessage");
    for (i, f) in ids.iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "");
            continue;
        }
        match mb.resolve(f) {
            Ok(id) => {
                let mut payload = "<m:Folders>".to_string();
                render_folder(&mut payload, &mb.folders[&id], mb, &shape);
                payload.push_str("</m:Folders>");
                r.success(&payload);
            }
            Err(code) => r.error(code, message_for(code), ""),
        }
    }
    Ok(r.finish())
}

fn delete_folder(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    op.attr("DeleteType")
        .and_then(DeleteType::parse)
        .ok_or_else(|| OpFault::schema("DeleteFolder requires a valid DeleteType"))?;
    let ids = folder_list(op, "FolderIds")?;
    mailbox(state, ctx)?;
    let Ok((mb, seq)) = state.store.mailbox_mut(ctx.mailbox) else {
        return Err(OpFault::invalid_request("mailbox vanished"));
    };
    let mut r = Responses::new("DeleteFolder", "DeleteFolderResponseMessage");
    for (i, f) in ids.iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "");
            continue;
        }
        match mb.resolve(f) {
            Ok(id) if mb.folders[&id].distinguished.is_some() => r.error(
                "ErrorDeleteDistinguishedFolder",
                "Distinguished folders cannot be deleted.",
                "",
            ),
            Ok(id) => match mb.delete_folder(seq, &id) {
                Ok(()) => r.success(""),
                Err(_) => r.error(
                    "ErrorFolderNotFound",
                    message_for("ErrorFolderNotFound"),
                    "",
                ),
            },
            Err(code) => r.error(code, message_for(code), ""),
        }
    }
    Ok(r.finish())
}

// ---------------------------------------------------------------- paging

#[derive(Clone, Copy, Debug)]
struct View {
    max: Option<usize>,
    offset: usize,
    from_end: bool,
}

fn parse_view(el: &Element) -> Result<View, OpFault> {
    let num = |name: &str| -> Result<Option<usize>, OpFault> {
        el.attr(name)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| OpFault::schema(format!("{name}='{v}' is not a valid number")))
            })
            .transpose()
    };
    let max = num("MaxEntriesReturned")?;
    if max == Some(0) {
        return Err(OpFault::schema("MaxEntriesReturned must be at least 1"));
    }
    let offset = num("Offset")?.ok_or_else(|| OpFault::schema("Offset is required"))?;
    let from_end = match el.attr("BasePoint") {
        Some("Beginning") => false,
        Some("End") => true,
        _ => return Err(OpFault::schema("BasePoint must be Beginning or End")),
    };
    Ok(View {
        max,
        offset,
        from_end,
    })
}

/// Applies an indexed view; returns the page and the RootFolder paging attributes.
fn paginate<'a, T>(all: &'a [T], view: Option<&View>) -> (&'a [T], String) {
    let total = all.len();
    let (start, end, next, last) = match view {
        None => (0, total, total, true),
        Some(v) if !v.from_end => {
            let start = v.offset.min(total);
            let end = v.max.map_or(total, |m| (start + m).min(total));
            (start, end, end, end >= total)
        }
        Some(v) => {
            let end = total.saturating_sub(v.offset);
            let start = v.max.map_or(0, |m| end.saturating_sub(m));
            (start, end, v.offset + (end - start), start == 0)
        }
    };
    let attrs = format!(
        " IndexedPagingOffset=\"{next}\" TotalItemsInView=\"{total}\" IncludesLastItemInRange=\"{last}\""
    );
    (&all[start..end], attrs)
}

// ---------------------------------------------------------------- items: parsing

/// Reads a `t:ExtendedProperty` element into key and value.
pub(crate) fn parse_extended_property(
    el: &Element,
) -> Result<(ExtendedPropertyKey, ExtendedValue), String> {
    let uri = el
        .child("ExtendedFieldURI")
        .ok_or("ExtendedProperty requires ExtendedFieldURI")?;
    let key = match FieldPath::parse(uri)? {
        Some(FieldPath::Extended(k)) => k,
        _ => return Err("ExtendedProperty requires ExtendedFieldURI".into()),
    };
    let value = if let Some(v) = el.child("Value") {
        ExtendedValue::Single(v.text.clone())
    } else if let Some(vs) = el.child("Values") {
        ExtendedValue::Multi(vs.children_named("Value").map(|v| v.text.clone()).collect())
    } else {
        return Err("ExtendedProperty requires Value or Values".into());
    };
    Ok((key, value))
}

fn entry_key<'a>(entry: &'a Element, allowed: &[&str], dict: &str) -> Result<&'a str, String> {
    let key = entry
        .attr("Key")
        .ok_or_else(|| format!("{dict}/Entry requires a Key attribute"))?;
    if !allowed.contains(&key) {
        return Err(format!("'{key}' is not a valid key for {dict}"));
    }
    Ok(key)
}

/// `EmailAddresses` and `PhoneNumbers`: `Entry` elements with a `Key` from `allowed` and text.
fn parse_text_entries(
    el: &Element,
    allowed: &[&str],
    dict: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for e in el.children_named("Entry") {
        m.insert(entry_key(e, allowed, dict)?.to_string(), e.text.clone());
    }
    Ok(m)
}

fn parse_email_entries(el: &Element) -> Result<BTreeMap<String, String>, String> {
    parse_text_entries(el, &EMAIL_KEYS, "EmailAddresses")
}

fn parse_phone_entries(el: &Element) -> Result<BTreeMap<String, String>, String> {
    parse_text_entries(el, &PHONE_KEYS, "PhoneNumbers")
}

fn parse_address_entries(el: &Element) -> Result<BTreeMap<String, PhysicalAddress>, String> {
    let mut m = BTreeMap::new();
    for e in el.children_named("Entry") {
        let key = entry_key(e, &ADDRESS_KEYS, "PhysicalAddresses")?;
        let mut addr = PhysicalAddress::default();
        let mut last = 0;
        for part in &e.children {
            let pos = ADDRESS_PARTS
                .iter()
                .position(|p| *p == part.name)
                .ok_or_else(|| format!("unexpected '{}' in PhysicalAddresses/Entry", part.name))?;
            if pos < last {
                return Err(format!(
                    "'{}' is out of order in PhysicalAddresses/Entry (expected Street, City, State, CountryOrRegion, PostalCode)",
                    part.name
                ));
            }
            last = pos + 1;
            if let Some(slot) = addr.part_mut(&part.name) {
                *slot = Some(part.text.clone());
            }
        }
        m.insert(key.to_string(), addr);
    }
    Ok(m)
}

/// Why an item in a CreateItem could not be taken.
enum ItemParseError {
    /// Request-level schema violation (SOAP fault).
    Schema(String),
    /// Per-item error with its ResponseCode (unsupported type, invalid calendar data…).
    Item(&'static str, String),
}

/// What one element of `m:Items` asks for (short-lived, one per request item: size is moot).
#[allow(clippy::large_enum_variant)]
enum Creation {
    Item(Item),
    /// `t:AcceptItem` / `t:TentativelyAcceptItem` / `t:DeclineItem` with its ReferenceItemId.
    Respond(Response, IdRef),
}

fn parse_creation(el: &Element, tz_context: Option<&str>) -> Result<Creation, ItemParseError> {
    let response = match el.name.as_str() {
        "AcceptItem" => Some(Response::Accept),
        "TentativelyAcceptItem" => Some(Response::Tentative),
        "DeclineItem" => Some(Response::Decline),
        _ => None,
    };
    if let Some(response) = response {
        let reference = el.child("ReferenceItemId").ok_or_else(|| {
            ItemParseError::Schema(format!("{} requires ReferenceItemId", el.name))
        })?;
        let r = id_ref(reference).map_err(|f| ItemParseError::Schema(f.message))?;
        return Ok(Creation::Respond(response, r));
    }
    if el.name == "CalendarItem" {
        return parse_calendar_item(el, tz_context)
            .map(Creation::Item)
            .map_err(|e| match e {
                CalError::Schema(m) => ItemParseError::Schema(m),
                CalError::Item(c, m) => ItemParseError::Item(c, m),
            });
    }
    parse_item(el).map(Creation::Item)
}

/// Parses `t:Contact`, checking XSD element order.
fn parse_item(el: &Element) -> Result<Item, ItemParseError> {
    if el.name != "Contact" {
        return Err(ItemParseError::Item(
            "ErrorInvalidItemForOperationCreateItem",
            format!(
                "The simulator does not support creating {} items yet.",
                el.name
            ),
        ));
    }
    let order: Vec<&str> = ITEM_ORDER
        .iter()
        .chain(CONTACT_ORDER.iter())
        .copied()
        .collect();
    let mut last: Option<usize> = None;
    let mut contact = Contact::default();
    let mut item = Item::contact(Contact::default());
    for c in &el.children {
        let pos = order.iter().position(|n| *n == c.name).ok_or_else(|| {
            ItemParseError::Schema(format!(
                "line {}: The element '{}' is not allowed in Contact.",
                c.line, c.name
            ))
        })?;
        if let Some(prev) = last {
            // Only ExtendedProperty may repeat; anything else must move strictly forward.
            if pos < prev || (pos == prev && c.name != "ExtendedProperty") {
                return Err(ItemParseError::Schema(format!(
                    "line {}: The element '{}' is out of order in Contact (after '{}').",
                    c.line, c.name, order[prev]
                )));
            }
        }
        last = Some(pos);
        let schema = ItemParseError::Schema;
        match c.name.as_str() {
            "Subject" => item.subject = Some(c.text.clone()),
            "Body" => {
                item.body = Some(Body {
                    body_type: c.attr("BodyType").unwrap_or("Text").to_string(),
                    text: c.text.clone(),
                })
            }
            "ExtendedProperty" => {
                let (k, v) = parse_extended_property(c).map_err(schema)?;
                item.extended_properties.insert(k, v);
            }
            "EmailAddresses" => contact.email_addresses = parse_email_entries(c).map_err(schema)?,
            "PhoneNumbers" => contact.phone_numbers = parse_phone_entries(c).map_err(schema)?,
            "PhysicalAddresses" => {
                contact.physical_addresses = parse_address_entries(c).map_err(schema)?
            }
            n if CONTACT_STRING_FIELDS.contains(&n) => {
                contact.set(n, Some(c.text.clone()));
            }
            // Read-only or unmodelled properties are accepted and dropped.
            _ => {}
        }
    }
    item.kind = ItemKind::Contact(contact);
    Ok(item)
}

/// An `t:ItemId`, `t:OccurrenceItemId` or `t:RecurringMasterItemId` from a request.
struct IdRef {
    element: String,
    /// `Id`, `RecurringMasterId` (occurrence by index) or `OccurrenceId` (its master).
    id: String,
    change_key: Option<String>,
    /// `InstanceIndex` of an OccurrenceItemId.
    index: Option<String>,
}

fn id_ref(el: &Element) -> Result<IdRef, OpFault> {
    let id = match el.name.as_str() {
        "OccurrenceItemId" => el.attr("RecurringMasterId"),
        "RecurringMasterItemId" => el.attr("OccurrenceId"),
        _ => el.attr("Id"),
    };
    let index = el.attr("InstanceIndex").map(str::to_string);
    if el.name == "OccurrenceItemId" && index.is_none() {
        return Err(OpFault::schema("OccurrenceItemId requires InstanceIndex"));
    }
    Ok(IdRef {
        element: el.name.clone(),
        id: id
            .ok_or_else(|| OpFault::schema(format!("{} requires its id attribute", el.name)))?
            .to_string(),
        change_key: el.attr("ChangeKey").map(str::to_string),
        index,
    })
}

/// What an id names: a stored item, or one occurrence/exception of a stored series.
enum Target<'m> {
    Item(&'m StoredItem),
    Occurrence {
        master: &'m StoredItem,
        original: DateTime<Utc>,
        index: u32,
    },
}

impl<'m> Target<'m> {
    /// The stored item a write goes to (the master for an occurrence).
    fn stored(&self) -> &'m StoredItem {
        match self {
            Target::Item(st) => st,
            Target::Occurrence { master, .. } => master,
        }
    }

    /// The item as EWS shows it (an occurrence synthesised from its master).
    fn view(&self) -> Option<StoredItem> {
        match self {
            Target::Item(st) => Some((*st).clone()),
            Target::Occurrence {
                master,
                original,
                index,
            } => instance_item(master, *original, *index),
        }
    }
}

fn plain_item<'m>(mb: &'m Mailbox, id: &str) -> Result<&'m StoredItem, &'static str> {
    if id.is_empty() {
        return Err("ErrorInvalidIdEmpty");
    }
    if !is_well_formed_id(id, KIND_ITEM) {
        return Err("ErrorInvalidIdMalformed");
    }
    mb.items
        .get(&ItemId(id.to_string()))
        .ok_or("ErrorItemNotFound")
}

/// Finds what an id names, with the response code Exchange uses when it cannot.
fn resolve<'m>(mb: &'m Mailbox, r: &IdRef) -> Result<Target<'m>, &'static str> {
    match r.element.as_str() {
        "ItemId" | "ReferenceItemId" => match resolve_occurrence(mb, &r.id) {
            Some(found) => found.map(|(master, original, index)| Target::Occurrence {
                master,
                original,
                index,
            }),
            None => plain_item(mb, &r.id).map(Target::Item),
        },
        "OccurrenceItemId" => {
            if parse_occurrence_id(&r.id).is_some() {
                return Err("ErrorCalendarCannotUseIdForRecurringMasterId");
            }
            let master = plain_item(mb, &r.id)?;
            let cal = master
                .item
                .as_calendar()
                .filter(|c| c.recurrence.is_some())
                .ok_or("ErrorCalendarCannotUseIdForRecurringMasterId")?;
            let index: u32 = r
                .index
                .as_deref()
                .and_then(|i| i.trim().parse().ok())
                .filter(|i| *i >= 1)
                .ok_or("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange")?;
            let original = cal
                .original_at(index)
                .ok_or("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange")?;
            if cal.is_deleted(original) {
                return Err("ErrorCalendarOccurrenceIsDeletedFromRecurrence");
            }
            Ok(Target::Occurrence {
                master,
                original,
                index,
            })
        }
        "RecurringMasterItemId" => match parse_occurrence_id(&r.id) {
            Some((master, _)) => mb
                .items
                .get(&master)
                .map(Target::Item)
                .ok_or("ErrorItemNotFound"),
            None if is_well_formed_id(&r.id, KIND_ITEM) => {
                Err("ErrorCalendarCannotUseIdForOccurrenceId")
            }
            None => Err("ErrorInvalidIdMalformed"),
        },
        _ => Err("ErrorInvalidIdMalformed"),
    }
}

fn item_payload(tag: &str, id: &ItemId, ck: &ChangeKey) -> String {
    let mut p = format!("<m:Items><t:{tag}>");
    item_id_el(&mut p, "ItemId", id.as_str(), Some(ck.as_str()));
    p.push_str(&format!("</t:{tag}></m:Items>"));
    p
}

fn notify_attr(op: &Element, name: &str) -> Result<Option<Notify>, OpFault> {
    match op.attr(name) {
        None => Ok(None),
        Some(v) => Notify::parse(v)
            .map(Some)
            .ok_or_else(|| OpFault::schema(format!("invalid {name} '{v}'"))),
    }
}

fn at_least_2013(version: Option<&str>) -> bool {
    !matches!(
        version,
        None | Some(
            "Exchange2007"
                | "Exchange2007_SP1"
                | "Exchange2009"
                | "Exchange2010"
                | "Exchange2010_SP1"
                | "Exchange2010_SP2"
                | "Exchange2012"
        )
    )
}

fn item_shape(ctx: &OpCtx<'_>, op: &Element) -> Result<Shape, OpFault> {
    let mut s = shape(op, "ItemShape")?;
    s.exchange2013 = at_least_2013(ctx.server_version);
    Ok(s)
}

// ---------------------------------------------------------------- items: operations

fn create_item(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    let disposition = op.attr("MessageDisposition");
    if let Some(d) = disposition
        && !matches!(d, "SaveOnly" | "SendOnly" | "SendAndSaveCopy")
    {
        return Err(OpFault::schema(format!("invalid MessageDisposition '{d}'")));
    }
    let invitations = notify_attr(op, "SendMeetingInvitations")?;
    if matches!(op.attr("SendMeetingInvitations"), Some(s) if s.contains("Changed")) {
        return Err(OpFault::schema("invalid SendMeetingInvitations value"));
    }
    let target = target_folder(op, "SavedItemFolderId")?;
    let items_el = op
        .child("Items")
        .ok_or_else(|| OpFault::schema("CreateItem requires Items"))?;
    if items_el.children.is_empty() {
        return Err(OpFault::schema("Items must not be empty"));
    }
    let mut parsed = Vec::new();
    for el in &items_el.children {
        match parse_creation(el, ctx.time_zone_context) {
            Ok(c) => parsed.push(Ok(c)),
            Err(ItemParseError::Schema(m)) => return Err(OpFault::schema(m)),
            Err(ItemParseError::Item(code, m)) => parsed.push(Err((code, m))),
        }
    }
    mailbox(state, ctx)?;
    let mut r = Responses::new("CreateItem", "CreateItemResponseMessage");
    for (i, creation) in parsed.into_iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "<m:Items/>");
            continue;
        }
        let mut item = match creation {
            Ok(Creation::Item(item)) => item,
            Ok(Creation::Respond(response, reference)) => {
                let target = match state.store.mailbox(ctx.mailbox) {
                    Ok(mb) => resolve(mb, &reference).map(|t| t.stored().id.clone()),
                    Err(_) => Err("ErrorNonExistentMailbox"),
                };
                let notify = disposition != Some("SaveOnly");
                match target
                    .map_err(|c| (c, message_for(c).to_string()))
                    .and_then(|id| respond(&mut state.store, ctx.mailbox, &id, response, notify))
                {
                    Ok(()) => r.success("<m:Items/>"),
                    Err((code, text)) => r.error(code, &text, "<m:Items/>"),
                }
                continue;
            }
            Err((code, m)) => {
                r.error(code, &m, "<m:Items/>");
                continue;
            }
        };
        let is_calendar = item.as_calendar().is_some();
        let notify = match (is_calendar, invitations) {
            (true, None) => {
                let code = "ErrorSendMeetingInvitationsRequired";
                r.error(
                    code,
                    "SendMeetingInvitations is required for calendar items.",
                    "<m:Items/>",
                );
                continue;
            }
            (_, n) => n.unwrap_or(Notify::None),
        };
        let Ok((mb, seq)) = state.store.mailbox_mut(ctx.mailbox) else {
            return Err(OpFault::invalid_request("mailbox vanished"));
        };
        // Without SavedItemFolderId, Exchange files each item in its type's default folder.
        let folder = target.clone().unwrap_or(FolderRef::Distinguished(
            if is_calendar { "calendar" } else { "contacts" }.into(),
        ));
        let fid = match mb.resolve(&folder) {
            Ok(f) => f,
            Err(code) => {
                r.error(code, message_for(code), "<m:Items/>");
                continue;
            }
        };
        let smtp = mb.smtp.clone();
        if let Some(cal) = item.as_calendar_mut() {
            if !mb.folders[&fid].folder_class.starts_with("IPF.Appointment") {
                let code = "ErrorCannotCreateCalendarItemInNonCalendarFolder";
                r.error(
                    code,
                    "Calendar items can only be created in calendar folders.",
                    "<m:Items/>",
                );
                continue;
            }
            // The creating mailbox organizes; the server assigns UID and responses.
            cal.organizer = Some(Recipient {
                name: None,
                email: smtp.clone(),
            });
            cal.is_organizer = true;
            cal.my_response_type = "Organizer".into();
            if cal.uid.is_empty() {
                cal.uid = new_uid();
            }
            if notify != Notify::None && !cal.attendee_emails().is_empty() {
                mark_sent(cal, true);
            }
        }
        let tag = item.kind.element_name();
        let (id, ck) = mb.create_item(seq, &fid, item);
        if is_calendar {
            deliver(&mut state.store, &smtp, &id, &[], notify);
        }
        r.success(&item_payload(tag, &id, &ck));
    }
    Ok(r.finish())
}

fn get_item(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    let shape = item_shape(ctx, op)?;
    let ids_el = op
        .child("ItemIds")
        .ok_or_else(|| OpFault::schema("GetItem requires ItemIds"))?;
    let ids = ids_el
        .children
        .iter()
        .map(id_ref)
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(OpFault::schema("ItemIds must not be empty"));
    }
    let mb = mailbox(state, ctx)?;
    let mut r = Responses::new("GetItem", "GetItemResponseMessage");
    for (i, id) in ids.iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "<m:Items/>");
            continue;
        }
        match resolve(mb, id).map(|t| t.view()) {
            Ok(Some(st)) => {
                let mut payload = "<m:Items>".to_string();
                render_item(&mut payload, &st, &shape);
                payload.push_str("</m:Items>");
                r.success(&payload);
            }
            Ok(None) => r.error(
                "ErrorItemNotFound",
                message_for("ErrorItemNotFound"),
                "<m:Items/>",
            ),
            Err(code) => r.error(code, message_for(code), "<m:Items/>"),
        }
    }
    Ok(r.finish())
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UpdateKind {
    Set,
    Append,
    Delete,
}

struct Update {
    kind: UpdateKind,
    path: FieldPath,
    /// The item element (`t:Contact`/`t:Item`) carrying the new value, for Set/Append.
    value: Option<Element>,
}

struct Change {
    id: IdRef,
    updates: Vec<Update>,
}

fn parse_changes(op: &Element) -> Result<Vec<Change>, OpFault> {
    let list = op
        .child("ItemChanges")
        .ok_or_else(|| OpFault::schema("UpdateItem requires ItemChanges"))?;
    let mut out = Vec::new();
    for ch in &list.children {
        if ch.name != "ItemChange" {
            return Err(OpFault::schema(format!(
                "unexpected '{}' in ItemChanges",
                ch.name
            )));
        }
        let id_el = ch
            .children
            .first()
            .filter(|c| c.name.ends_with("ItemId"))
            .ok_or_else(|| OpFault::schema("ItemChange must start with an item id"))?;
        let updates_el = ch
            .child("Updates")
            .ok_or_else(|| OpFault::schema("ItemChange requires Updates"))?;
        let mut updates = Vec::new();
        for u in &updates_el.children {
            let kind = match u.name.as_str() {
                "SetItemField" => UpdateKind::Set,
                "AppendToItemField" => UpdateKind::Append,
                "DeleteItemField" => UpdateKind::Delete,
                other => return Err(OpFault::schema(format!("unexpected '{other}' in Updates"))),
            };
            let path = FieldPath::first_in(u)
                .map_err(OpFault::schema)?
                .ok_or_else(|| OpFault::schema(format!("{} requires a property path", u.name)))?;
            if let FieldPath::Indexed { uri, index } = &path {
                let allowed: &[&str] = match uri.as_str() {
                    "contacts:EmailAddress" => &EMAIL_KEYS,
                    "contacts:PhoneNumber" => &PHONE_KEYS,
                    u if u.starts_with("contacts:PhysicalAddress:") => &ADDRESS_KEYS,
                    _ => &[],
                };
                if !allowed.is_empty() && !allowed.contains(&index.as_str()) {
                    return Err(OpFault::schema(format!(
                        "FieldIndex '{index}' is not valid for {uri}"
                    )));
                }
            }
            let value = match kind {
                UpdateKind::Delete => None,
                _ => Some(
                    u.children
                        .iter()
                        .find(|c| FieldPath::parse(c).ok().flatten().is_none())
                        .cloned()
                        .ok_or_else(|| {
                            OpFault::schema(format!("{} requires an item element", u.name))
                        })?,
                ),
            };
            updates.push(Update { kind, path, value });
        }
        out.push(Change {
            id: id_ref(id_el)?,
            updates,
        });
    }
    if out.is_empty() {
        return Err(OpFault::schema("ItemChanges must not be empty"));
    }
    Ok(out)
}

pub(crate) type UpdateError = (&'static str, String);

fn single_child(value: &Element) -> Result<&Element, UpdateError> {
    if !matches!(value.name.as_str(), "Contact" | "Item" | "CalendarItem") {
        return Err((
            "ErrorObjectTypeChanged",
            format!("A {} cannot update this item.", value.name),
        ));
    }
    match value.children.as_slice() {
        [one] => Ok(one),
        _ => Err((
            "ErrorIncorrectUpdatePropertyCount",
            "An object within a change description must contain one and only one property to modify."
                .into(),
        )),
    }
}

fn expect_name<'a>(el: &'a Element, name: &str) -> Result<&'a Element, UpdateError> {
    if el.name == name {
        Ok(el)
    } else {
        Err((
            "ErrorUpdatePropertyMismatch",
            format!(
                "The property in the change ('{}') does not match the path ({name}).",
                el.name
            ),
        ))
    }
}

fn entry_text<'a>(dict: &'a Element, key: &str) -> Result<&'a str, UpdateError> {
    dict.children_named("Entry")
        .find(|e| e.attr("Key") == Some(key))
        .map(|e| e.text.as_str())
        .ok_or((
            "ErrorUpdatePropertyMismatch",
            format!("No Entry with Key '{key}' in {}.", dict.name),
        ))
}

/// Applies one update to an item; errors carry the per-item ResponseCode.
fn apply_update(item: &mut Item, u: &Update, tz: chrono_tz::Tz) -> Result<(), UpdateError> {
    let unsupported = |what: &str| -> UpdateError {
        (
            "ErrorInvalidPropertySet",
            format!("The simulator cannot update {what}."),
        )
    };
    match (&u.path, u.kind) {
        (FieldPath::Extended(key), UpdateKind::Delete) => {
            item.extended_properties.remove(key);
        }
        (FieldPath::Extended(key), _) => {
            let v = single_child(u.value.as_ref().ok_or(unsupported("nothing"))?)?;
            let v = expect_name(v, "ExtendedProperty")?;
            let (k, value) =
                parse_extended_property(v).map_err(|m| ("ErrorInvalidExtendedPropertyValue", m))?;
            if &k != key {
                return Err((
                    "ErrorUpdatePropertyMismatch",
                    format!("{k} does not match {key}"),
                ));
            }
            item.extended_properties.insert(k, value);
        }
        (FieldPath::Field(uri), kind) => {
            let (prefix, name) = uri.split_once(':').unwrap_or(("", uri.as_str()));
            let new_el = match kind {
                UpdateKind::Delete => None,
                _ => Some(expect_name(
                    single_child(u.value.as_ref().ok_or(unsupported("nothing"))?)?,
                    name,
                )?),
            };
            if kind == UpdateKind::Append && uri != "item:Body" {
                return Err((
                    "ErrorInvalidPropertyAppend",
                    format!("{uri} does not support append."),
                ));
            }
            if let (true, Some(cal)) = (prefix == "item", item.as_calendar_mut())
                && apply_item_field_on_calendar(cal, name, new_el)?
            {
                return Ok(());
            }
            match (prefix, name) {
                ("calendar", _) => apply_calendar_field(item, name, new_el, tz)?,
                ("item", "Subject") => item.subject = new_el.map(|e| e.text.clone()),
                ("item", "Body") => {
                    item.body = match (kind, new_el) {
                        (UpdateKind::Append, Some(e)) => {
                            let mut b = item.body.clone().unwrap_or(Body {
                                body_type: e.attr("BodyType").unwrap_or("Text").to_string(),
                                text: String::new(),
                            });
                            b.text.push_str(&e.text);
                            Some(b)
                        }
                        (_, Some(e)) => Some(Body {
                            body_type: e.attr("BodyType").unwrap_or("Text").to_string(),
                            text: e.text.clone(),
                        }),
                        (_, None) => None,
                    }
                }
                ("contacts", _) => {
                    let contact = item.as_contact_mut().ok_or(unsupported(uri))?;
                    match name {
                        "EmailAddresses" => {
                            contact.email_addresses = match new_el {
                                Some(e) => parse_email_entries(e)
                                    .map_err(|m| ("ErrorInvalidPropertySet", m))?,
                                None => BTreeMap::new(),
                            }
                        }
                        "PhoneNumbers" => {
                            contact.phone_numbers = match new_el {
                                Some(e) => parse_phone_entries(e)
                                    .map_err(|m| ("ErrorInvalidPropertySet", m))?,
                                None => BTreeMap::new(),
                            }
                        }
                        "PhysicalAddresses" => {
                            contact.physical_addresses = match new_el {
                                Some(e) => parse_address_entries(e)
                                    .map_err(|m| ("ErrorInvalidPropertySet", m))?,
                                None => BTreeMap::new(),
                            }
                        }
                        n if CONTACT_STRING_FIELDS.contains(&n) => {
                            contact.set(n, new_el.map(|e| e.text.clone()));
                        }
                        _ => return Err(unsupported(uri)),
                    }
                }
                _ => return Err(unsupported(uri)),
            }
        }
        (FieldPath::Indexed { uri, index }, kind) => {
            if kind == UpdateKind::Append {
                return Err((
                    "ErrorInvalidPropertyAppend",
                    format!("{uri} does not support append."),
                ));
            }
            let contact = item.as_contact_mut().ok_or(unsupported(uri))?;
            let dict_name = match uri.as_str() {
                "contacts:EmailAddress" => "EmailAddresses",
                "contacts:PhoneNumber" => "PhoneNumbers",
                u if u.starts_with("contacts:PhysicalAddress:") => "PhysicalAddresses",
                _ => return Err(unsupported(uri)),
            };
            let dict = match kind {
                UpdateKind::Delete => None,
                _ => Some(expect_name(
                    single_child(u.value.as_ref().ok_or(unsupported("nothing"))?)?,
                    dict_name,
                )?),
            };
            match uri.as_str() {
                "contacts:EmailAddress" => match dict {
                    Some(d) => {
                        contact
                            .email_addresses
                            .insert(index.clone(), entry_text(d, index)?.to_string());
                    }
                    None => {
                        contact.email_addresses.remove(index);
                    }
                },
                "contacts:PhoneNumber" => match dict {
                    Some(d) => {
                        contact
                            .phone_numbers
                            .insert(index.clone(), entry_text(d, index)?.to_string());
                    }
                    None => {
                        contact.phone_numbers.remove(index);
                    }
                },
                u => {
                    let part = u.trim_start_matches("contacts:PhysicalAddress:");
                    if !ADDRESS_PARTS.contains(&part) {
                        return Err(unsupported(uri));
                    }
                    let value = match dict {
                        Some(d) => {
                            let entry = d
                                .children_named("Entry")
                                .find(|e| e.attr("Key") == Some(index.as_str()))
                                .ok_or((
                                    "ErrorUpdatePropertyMismatch",
                                    format!("No Entry with Key '{index}' in PhysicalAddresses."),
                                ))?;
                            let text = match entry.children.as_slice() {
                                [one] if one.name == part => one.text.clone(),
                                _ => {
                                    return Err((
                                        "ErrorIncorrectUpdatePropertyCount",
                                        format!("The Entry must contain exactly one {part}."),
                                    ));
                                }
                            };
                            Some(text)
                        }
                        None => None,
                    };
                    let addr = contact.physical_addresses.entry(index.clone()).or_default();
                    if let Some(slot) = addr.part_mut(part) {
                        *slot = value;
                    }
                    if addr.is_empty() {
                        contact.physical_addresses.remove(index);
                    }
                }
            }
        }
    }
    Ok(())
}

fn update_item(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    match op.attr("ConflictResolution") {
        Some("NeverOverwrite" | "AutoResolve" | "AlwaysOverwrite") => {}
        Some(other) => {
            return Err(OpFault::schema(format!(
                "invalid ConflictResolution '{other}'"
            )));
        }
        None => {
            return Err(OpFault::schema(
                "UpdateItem requires the ConflictResolution attribute",
            ));
        }
    }
    let send = notify_attr(op, "SendMeetingInvitationsOrCancellations")?;
    let changes = parse_changes(op)?;
    mailbox(state, ctx)?;
    let context_tz = ctx
        .time_zone_context
        .and_then(crate::calendar::zone)
        .unwrap_or(chrono_tz::Tz::UTC);
    let mut r = Responses::new("UpdateItem", "UpdateItemResponseMessage");
    for (i, ch) in changes.iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "<m:Items/>");
            continue;
        }
        let Ok((mb, seq)) = state.store.mailbox_mut(ctx.mailbox) else {
            return Err(OpFault::invalid_request("mailbox vanished"));
        };
        let target = match resolve(mb, &ch.id) {
            Ok(t) => t,
            Err(code) => {
                r.error(code, message_for(code), "<m:Items/>");
                continue;
            }
        };
        let stored = target.stored();
        // Exchange insists on the current ChangeKey whatever ConflictResolution says.
        let Some(ck) = &ch.id.change_key else {
            let code = "ErrorChangeKeyRequiredForWriteOperations";
            r.error(code, message_for(code), "<m:Items/>");
            continue;
        };
        if ck != stored.change_key.as_str() {
            let code = "ErrorIrresolvableConflict";
            r.error(code, message_for(code), "<m:Items/>");
            continue;
        }
        let master_id = stored.id.clone();
        let before = stored.item.as_calendar().cloned();
        if before.is_some() && send.is_none() {
            let code = "ErrorSendMeetingInvitationsOrCancellationsRequired";
            r.error(
                code,
                "SendMeetingInvitationsOrCancellations is required for calendar items.",
                "<m:Items/>",
            );
            continue;
        }
        let occurrence = match &target {
            Target::Occurrence { original, .. } => Some(*original),
            Target::Item(_) => None,
        };
        let Some(view) = target.view() else {
            let code = "ErrorItemNotFound";
            r.error(code, message_for(code), "<m:Items/>");
            continue;
        };
        let response_id = view.id.clone();
        let mut item = view.item.clone();
        let tag = item.kind.element_name();
        // Un-offset times are read in a StartTimeZone set by the same change, else the
        // request's TimeZoneContext, else UTC.
        let tz = ch
            .updates
            .iter()
            .find_map(|u| match (&u.path, &u.value) {
                (FieldPath::Field(p), Some(v)) if p == "calendar:StartTimeZone" => v
                    .children
                    .first()
                    .and_then(|z| z.attr("Id"))
                    .and_then(crate::calendar::zone),
                _ => None,
            })
            .unwrap_or(context_tz);
        let applied = ch
            .updates
            .iter()
            .try_for_each(|u| apply_update(&mut item, u, tz))
            .and_then(|()| {
                let view_before = view.item.as_calendar();
                match (view_before, item.as_calendar_mut()) {
                    (Some(b), Some(a)) => finish_calendar_update(b, a),
                    _ => Ok(()),
                }
            });
        if let Err((code, text)) = applied {
            r.error(code, &text, "<m:Items/>");
            continue;
        }
        // An occurrence becomes an exception of its master.
        let mut new_item = match occurrence {
            Some(original) => {
                let mut master = stored.item.clone();
                if let (Some(ex), Some(cal)) =
                    (exception_from(&item, original), master.as_calendar_mut())
                {
                    cal.modified_occurrences
                        .retain(|m| m.original_start != original);
                    cal.modified_occurrences.push(ex);
                }
                master
            }
            None => item,
        };
        let notify = send.unwrap_or(Notify::None);
        let attendees_before = before
            .as_ref()
            .map(|c| c.attendee_emails())
            .unwrap_or_default();
        let organizer_meeting = new_item.as_calendar().is_some_and(|c| {
            c.is_organizer && (!c.attendee_emails().is_empty() || !attendees_before.is_empty())
        });
        if organizer_meeting
            && notify != Notify::None
            && let Some(cal) = new_item.as_calendar_mut()
        {
            let first = !cal.meeting_request_was_sent;
            mark_sent(cal, first);
        }
        let Some(new_ck) = mb.commit_update(seq, &master_id, new_item) else {
            let code = "ErrorItemNotFound";
            r.error(code, message_for(code), "<m:Items/>");
            continue;
        };
        if organizer_meeting {
            let smtp = mb.smtp.clone();
            deliver(
                &mut state.store,
                &smtp,
                &master_id,
                &attendees_before,
                notify,
            );
        }
        let mut payload = item_payload(tag, &response_id, &new_ck);
        payload.push_str("<m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>");
        r.success(&payload);
    }
    Ok(r.finish())
}

fn delete_item(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    let how = match op.attr("DeleteType") {
        Some(d) => DeleteType::parse(d)
            .ok_or_else(|| OpFault::schema(format!("invalid DeleteType '{d}'")))?,
        None => {
            return Err(OpFault::schema(
                "DeleteItem requires the DeleteType attribute",
            ));
        }
    };
    let cancellations = notify_attr(op, "SendMeetingCancellations")?;
    if matches!(op.attr("SendMeetingCancellations"), Some(s) if s.contains("Changed")) {
        return Err(OpFault::schema("invalid SendMeetingCancellations value"));
    }
    let ids_el = op
        .child("ItemIds")
        .ok_or_else(|| OpFault::schema("DeleteItem requires ItemIds"))?;
    let ids = ids_el
        .children
        .iter()
        .map(id_ref)
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(OpFault::schema("ItemIds must not be empty"));
    }
    mailbox(state, ctx)?;
    let mut r = Responses::new("DeleteItem", "DeleteItemResponseMessage");
    for (i, id) in ids.iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "");
            continue;
        }
        let Ok(mb) = state.store.mailbox(ctx.mailbox) else {
            return Err(OpFault::invalid_request("mailbox vanished"));
        };
        let target = match resolve(mb, id) {
            Ok(t) => t,
            Err(code) => {
                r.error(code, message_for(code), "");
                continue;
            }
        };
        let stored = target.stored();
        if let Some(ck) = &id.change_key
            && ck != stored.change_key.as_str()
        {
            let code = "ErrorIrresolvableConflict";
            r.error(code, message_for(code), "");
            continue;
        }
        let calendar = stored.item.as_calendar().cloned();
        if calendar.is_some() && cancellations.is_none() {
            let code = "ErrorSendMeetingCancellationsRequired";
            r.error(
                code,
                "SendMeetingCancellations is required for calendar items.",
                "",
            );
            continue;
        }
        let notify = cancellations.unwrap_or(Notify::None);
        let item_id = stored.id.clone();
        let smtp = mb.smtp.clone();
        let occurrence = match &target {
            Target::Occurrence { original, .. } => Some(*original),
            Target::Item(_) => None,
        };
        if let Some(original) = occurrence {
            match delete_occurrence(&mut state.store, &smtp, &item_id, original) {
                Ok(()) => {
                    if notify != Notify::None {
                        let before = calendar.map(|c| c.attendee_emails()).unwrap_or_default();
                        deliver(&mut state.store, &smtp, &item_id, &before, Notify::All);
                    }
                    r.success("");
                }
                Err(_) => r.error("ErrorItemNotFound", message_for("ErrorItemNotFound"), ""),
            }
            continue;
        }
        cancel_meeting(&mut state.store, &smtp, &item_id, notify);
        let Ok((mb, seq)) = state.store.mailbox_mut(ctx.mailbox) else {
            return Err(OpFault::invalid_request("mailbox vanished"));
        };
        match mb.delete_item(seq, &item_id, how) {
            Ok(_) => r.success(""),
            Err(_) => r.error("ErrorItemNotFound", message_for("ErrorItemNotFound"), ""),
        }
    }
    Ok(r.finish())
}

/// `m:CalendarView`: the window and an optional page size.
struct CalendarView {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max: Option<usize>,
}

fn parse_calendar_view(el: &Element) -> Result<CalendarView, OpFault> {
    let time = |name: &str| -> Result<DateTime<Utc>, OpFault> {
        let v = el
            .attr(name)
            .ok_or_else(|| OpFault::schema(format!("CalendarView requires {name}")))?;
        crate::calendar::parse_request_time(v, chrono_tz::Tz::UTC).map_err(OpFault::schema)
    };
    let max = match el.attr("MaxEntriesReturned") {
        None => None,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(OpFault::schema(format!(
                    "MaxEntriesReturned='{v}' is not valid"
                )));
            }
        },
    };
    Ok(CalendarView {
        start: time("StartDate")?,
        end: time("EndDate")?,
        max,
    })
}

fn find_item(state: &mut SimState, ctx: &OpCtx<'_>, op: &Element) -> Result<OpOutput, OpFault> {
    let shape = item_shape(ctx, op)?;
    let traversal = op
        .attr("Traversal")
        .ok_or_else(|| OpFault::schema("FindItem requires the Traversal attribute"))?
        .to_string();
    if !matches!(traversal.as_str(), "Shallow" | "SoftDeleted" | "Associated") {
        return Err(OpFault::schema(format!("invalid Traversal '{traversal}'")));
    }
    let view = op
        .child("IndexedPageItemView")
        .map(parse_view)
        .transpose()?;
    let calendar_view = op
        .child("CalendarView")
        .map(parse_calendar_view)
        .transpose()?;
    let restriction = match op.child("Restriction") {
        Some(r) => Some(Restriction::parse_container(r).map_err(OpFault::schema)?),
        None => None,
    };
    let mut sort: Vec<(FieldPath, bool)> = Vec::new();
    if let Some(so) = op.child("SortOrder") {
        for fo in so.children_named("FieldOrder") {
            let path = FieldPath::first_in(fo)
                .map_err(OpFault::schema)?
                .ok_or_else(|| OpFault::schema("FieldOrder requires a property path"))?;
            sort.push((path, fo.attr("Order") == Some("Descending")));
        }
    }
    let parents = folder_list(op, "ParentFolderIds")?;
    let mb = mailbox(state, ctx)?;
    let mut r = Responses::new("FindItem", "FindItemResponseMessage");
    for (i, p) in parents.iter().enumerate() {
        if let Some((code, text)) = injected(ctx, i) {
            r.error(code, text, "");
            continue;
        }
        let fid = match mb.resolve(p) {
            Ok(f) => f,
            Err(code) => {
                r.error(code, message_for(code), "");
                continue;
            }
        };
        if let Some(cv) = &calendar_view {
            let code = if cv.end < cv.start {
                Some("ErrorCalendarEndDateIsEarlierThanStartDate")
            } else if cv.end - cv.start > chrono::Duration::days(731) {
                Some("ErrorCalendarViewRangeTooBig")
            } else if !mb.folders[&fid].folder_class.starts_with("IPF.Appointment") {
                Some("ErrorCalendarFolderIsInvalidForCalendarView")
            } else if restriction.is_some() {
                // A calendar view is a fixed expansion; it takes no search filter.
                Some("ErrorInvalidRestriction")
            } else {
                None
            };
            if let Some(code) = code {
                r.error(code, message_for(code), "");
                continue;
            }
            let all = if traversal == "Shallow" {
                expand_calendar(mb, &fid, cv.start, cv.end)
            } else {
                Vec::new()
            };
            let total = all.len();
            let n = cv.max.map_or(total, |m| m.min(total));
            let mut payload = format!(
                "<m:RootFolder TotalItemsInView=\"{total}\" IncludesLastItemInRange=\"{}\"><t:Items>",
                n == total
            );
            for st in &all[..n] {
                render_item(&mut payload, st, &shape);
            }
            payload.push_str("</t:Items></m:RootFolder>");
            r.success(&payload);
            continue;
        }
        // Soft-deleted and associated items are not modelled: those traversals see nothing.
        let mut items: Vec<_> = if traversal == "Shallow" {
            mb.items_in(&fid)
                .into_iter()
                .filter(|st| {
                    restriction
                        .as_ref()
                        .is_none_or(|res| res.eval(&|path| item_values(st, path)))
                })
                .collect()
        } else {
            Vec::new()
        };
        for (path, desc) in sort.iter().rev() {
            items.sort_by(|a, b| {
                let o = item_values(a, path).cmp(&item_values(b, path));
                if *desc { o.reverse() } else { o }
            });
        }
        let (page, attrs) = paginate(&items, view.as_ref());
        let mut payload = format!("<m:RootFolder{attrs}><t:Items>");
        for st in page {
            render_item(&mut payload, st, &shape);
        }
        payload.push_str("</t:Items></m:RootFolder>");
        r.success(&payload);
    }
    Ok(r.finish())
}
// ---------------------------------------------------------------- sync

fn sync_folder_items(
    state: &mut SimState,
    ctx: &OpCtx<'_>,
    op: &Element,
) -> Result<OpOutput, OpFault> {
    let shape = item_shape(ctx, op)?;
    let folder = target_folder(op, "SyncFolderId")?
        .ok_or_else(|| OpFault::schema("SyncFolderItems requires SyncFolderId"))?;
    let token = op
        .child_text("SyncState")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let ignore: HashSet<String> = op
        .child("Ignore")
        .map(|ig| {
            ig.children
                .iter()
                .filter_map(|c| c.attr("Id").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let max_text = op
        .child_text("MaxChangesReturned")
        .ok_or_else(|| OpFault::schema("SyncFolderItems requires MaxChangesReturned"))?;
    let max: usize = match max_text.trim().parse::<i64>() {
        Ok(n) if (1..=512).contains(&n) => n as usize,
        _ => {
            return Err(OpFault::schema(format!(
                "The value '{}' of MaxChangesReturned is invalid according to its datatype (1..512).",
                max_text.trim()
            )));
        }
    };
    if let Some(scope) = op.child_text("SyncScope")
        && !matches!(scope.trim(), "NormalItems" | "NormalAndAssociatedItems")
    {
        return Err(OpFault::schema(format!("invalid SyncScope '{scope}'")));
    }
    let mb_key = Store::key(ctx.mailbox);
    let max_states = state.config.max_sync_states_per_folder;
    let mb = mailbox(state, ctx)?;
    let mut r = Responses::new("SyncFolderItems", "SyncFolderItemsResponseMessage");
    if let Some((code, text)) = injected(ctx, 0) {
        r.error(code, text, "");
        return Ok(r.finish());
    }
    let fid = match mb.resolve(&folder) {
        Ok(f) => f,
        Err("ErrorInvalidIdMalformed") => {
            r.error(
                "ErrorInvalidIdMalformed",
                message_for("ErrorInvalidIdMalformed"),
                "",
            );
            return Ok(r.finish());
        }
        Err(_) => {
            let code = "ErrorSyncFolderNotFound";
            r.error(code, message_for(code), "");
            return Ok(r.finish());
        }
    };
    let known: HashMap<ItemId, ChangeKey> = match &token {
        None => HashMap::new(),
        Some(t) => match state.sync.get(t) {
            Some(snap) if snap.mailbox == mb_key && snap.folder == fid => snap.known.clone(),
            _ => {
                let code = "ErrorInvalidSyncStateData";
                r.error(code, message_for(code), "");
                return Ok(r.finish());
            }
        },
    };

    enum Kind {
        Create,
        Update,
        Delete,
    }
    let live = mb.items_in(&fid);
    let live_ids: HashSet<&ItemId> = live.iter().map(|st| &st.id).collect();
    let mut new_known = known.clone();
    let mut changes: Vec<(u64, Kind, ItemId)> = Vec::new();
    for st in &live {
        if ignore.contains(st.id.as_str()) {
            // The client asked not to hear about these (its own writes): treat as seen.
            new_known.insert(st.id.clone(), st.change_key.clone());
            continue;
        }
        match known.get(&st.id) {
            None => changes.push((st.last_seq, Kind::Create, st.id.clone())),
            Some(ck) if ck != &st.change_key => {
                changes.push((st.last_seq, Kind::Update, st.id.clone()))
            }
            Some(_) => {}
        }
    }
    for id in known.keys() {
        if !live_ids.contains(id) {
            let at = mb.deleted_seq.get(id).copied().unwrap_or(0);
            changes.push((at, Kind::Delete, id.clone()));
        }
    }
    changes.sort_by_key(|(s, _, id)| (*s, id.clone()));
    let includes_last = changes.len() <= max;
    let mut body = String::new();
    for (_, kind, id) in changes.into_iter().take(max) {
        match kind {
            Kind::Create | Kind::Update => {
                let Some(st) = mb.items.get(&id) else {
                    continue;
                };
                let tag = if matches!(kind, Kind::Create) {
                    "Create"
                } else {
                    "Update"
                };
                body.push_str(&format!("<t:{tag}>"));
                render_item(&mut body, st, &shape);
                body.push_str(&format!("</t:{tag}>"));
                new_known.insert(id, st.change_key.clone());
            }
            Kind::Delete => {
                body.push_str("<t:Delete>");
                item_id_el(&mut body, "ItemId", id.as_str(), None);
                body.push_str("</t:Delete>");
                new_known.remove(&id);
            }
        }
    }
    let new_token = state.sync.issue(
        SyncSnapshot {
            mailbox: mb_key,
            folder: fid,
            known: new_known,
        },
        max_states,
    );
    let mut payload = String::new();
    text_el(&mut payload, "m:SyncState", &new_token);
    text_el(
        &mut payload,
        "m:IncludesLastItemInRange",
        if includes_last { "true" } else { "false" },
    );
    payload.push_str(&format!("<m:Changes>{body}</m:Changes>"));
    r.success(&payload);
    Ok(r.finish())
}
