//! EWS push notifications (exchange.md §2.9): the parser for the `SendNotification` requests
//! Exchange POSTs to our endpoint, and the `SendNotificationResult` reply.
//!
//! The endpoint is reachable from the internet, so the parser treats its input as hostile:
//!
//! - DTD markup (`<!DOCTYPE`, `<!ENTITY`, …) anywhere is refused before anything is parsed: no
//!   entity is ever declared, so none can be expanded (XXE, billion laughs).
//! - Only the five predefined entities and numeric character references are resolved; any other
//!   `&name;` is an error, never passed through or expanded.
//! - The input must be UTF-8 with only characters XML 1.0 allows; element nesting is capped at
//!   [`MAX_DEPTH`]; it is read as one stream without building a tree, so memory stays within a
//!   small multiple of the input size (the HTTP layer bounds the body size).
//! - Structure is checked by namespace URI, never by prefix: a SOAP 1.1 `Envelope`/`Body`
//!   holding one `m:SendNotification` with at least one response message, each with exactly one
//!   `Notification` whose `SubscriptionId` is non-empty. Unknown elements inside messages,
//!   notifications and events are skipped, so a newer Exchange adding fields does not break us.
//!
//! Notifications are only hints (R32): the caller triggers a pull for the subscription's mailbox,
//! so `ResponseClass`/`ResponseCode` of a message are not interpreted.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use lnsync_core::ids::{ExchangeItemId, FolderId, SubscriptionId};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::codec::calendar::parse_date_time;
use super::codec::request::{NS_MESSAGES, NS_SOAP, NS_TYPES};
use super::codec::xml::XmlBuilder;

/// Deepest element nesting accepted. A real notification is 8 levels deep; the margin leaves
/// room for unknown extensions while refusing inputs built to exhaust a parser.
pub const MAX_DEPTH: usize = 64;

/// One `SendNotificationResponseMessage` of a `SendNotification` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub subscription: SubscriptionId,
    pub previous_watermark: Option<String>,
    pub more_events: bool,
    pub events: Vec<NotificationEvent>,
}

/// What happened to an item or folder (the `…Event` element names of types.xsd, and the
/// `EventType` values of a subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Modified,
    Deleted,
    Moved,
    Copied,
    NewMail,
    FreeBusyChanged,
}

impl EventKind {
    /// The event's element name in a notification, which is also its `t:EventType` value in a
    /// subscription request (`CreatedEvent`, …).
    pub fn element_name(self) -> &'static str {
        match self {
            Self::Created => "CreatedEvent",
            Self::Modified => "ModifiedEvent",
            Self::Deleted => "DeletedEvent",
            Self::Moved => "MovedEvent",
            Self::Copied => "CopiedEvent",
            Self::NewMail => "NewMailEvent",
            Self::FreeBusyChanged => "FreeBusyChangedEvent",
        }
    }

    fn from_element_name(name: &str) -> Option<Self> {
        Some(match name {
            "CreatedEvent" => Self::Created,
            "ModifiedEvent" => Self::Modified,
            "DeletedEvent" => Self::Deleted,
            "MovedEvent" => Self::Moved,
            "CopiedEvent" => Self::Copied,
            "NewMailEvent" => Self::NewMail,
            "FreeBusyChangedEvent" => Self::FreeBusyChanged,
            _ => return None,
        })
    }
}

/// One event of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationEvent {
    /// Keep-alive sent after StatusFrequency idle minutes.
    Status { watermark: Option<String> },
    Item {
        kind: EventKind,
        watermark: Option<String>,
        timestamp: Option<DateTime<Utc>>,
        item_id: ExchangeItemId,
        parent_folder: Option<FolderId>,
        old_item_id: Option<ExchangeItemId>,
        old_parent_folder: Option<FolderId>,
    },
    Folder {
        kind: EventKind,
        watermark: Option<String>,
        folder_id: FolderId,
        parent_folder: Option<FolderId>,
    },
}

impl NotificationEvent {
    /// The watermark to resume from once this event has been handled.
    pub fn watermark(&self) -> Option<&str> {
        match self {
            Self::Status { watermark }
            | Self::Item { watermark, .. }
            | Self::Folder { watermark, .. } => watermark.as_deref(),
        }
    }
}

/// Why a `SendNotification` request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotificationError {
    /// A DOCTYPE, DTD or entity declaration: refused before anything is parsed (XXE, billion laughs).
    #[error("the request contains a DOCTYPE or entity declaration")]
    DocType,
    #[error("malformed SendNotification request: {0}")]
    Malformed(String),
}

/// The answer to a notification: keep the subscription, or end it (push subscriptions have no
/// Unsubscribe call; this reply is the only way to stop one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Ok,
    Unsubscribe,
}

impl SubscriptionStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Unsubscribe => "Unsubscribe",
        }
    }
}

/// The SOAP 1.1 envelope of the `SendNotificationResult` reply (HTTP 200, text/xml).
pub fn send_notification_result(status: SubscriptionStatus) -> String {
    let mut b = XmlBuilder::new();
    b.element(
        "soap:Envelope",
        &[("xmlns:soap", NS_SOAP), ("xmlns:m", NS_MESSAGES)],
        |b| {
            b.element("soap:Body", &[], |b| {
                b.element("m:SendNotificationResult", &[], |b| {
                    b.text_element("m:SubscriptionStatus", &[], status.as_str());
                });
            });
        },
    );
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    out.push_str(&b.finish());
    out
}

/// Parses a SOAP 1.1 `SendNotification` request body (one or more notifications).
pub fn parse_send_notification(body: &[u8]) -> Result<Vec<Notification>, NotificationError> {
    if contains_dtd_markup(body) {
        return Err(NotificationError::DocType);
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        malformed(format!(
            "not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    // A UTF-8 byte order mark is allowed before the XML declaration.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if let Some(at) = text.find(|c: char| !is_xml_char(c)) {
        return Err(malformed(format!(
            "character not allowed in XML at offset {at}"
        )));
    }
    Parser::new(text).document()
}

// ---------------------------------------------------------------------------------------------
// Input screening
// ---------------------------------------------------------------------------------------------

/// The markup declarations of a DTD. Only a DTD can declare entities, so refusing all of them
/// (wherever they appear, even inside comments or CDATA, and in any letter case, as quick-xml
/// accepts `<!doctype`) leaves no way to define an entity at all.
const DTD_KEYWORDS: [&[u8]; 5] = [b"DOCTYPE", b"ENTITY", b"ELEMENT", b"ATTLIST", b"NOTATION"];

fn contains_dtd_markup(body: &[u8]) -> bool {
    body.windows(2)
        .enumerate()
        .filter(|(_, w)| w == b"<!")
        .any(|(i, _)| {
            let rest = &body[i + 2..];
            DTD_KEYWORDS.iter().any(|k| {
                rest.get(..k.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(k))
            })
        })
}

/// XML 1.0 `Char`: no C0 controls but tab, LF and CR, and no U+FFFE/U+FFFF (Rust strings never
/// hold surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn is_xml_whitespace(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

fn trim_xml(text: &str) -> &str {
    text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

fn malformed(message: impl Into<String>) -> NotificationError {
    NotificationError::Malformed(message.into())
}

/// Names and parser messages can carry attacker-chosen text of any length; cut them so an
/// error stays one readable log line.
fn clip(text: &str) -> Cow<'_, str> {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

// ---------------------------------------------------------------------------------------------
// Token stream
// ---------------------------------------------------------------------------------------------

/// The namespaces the structure is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Soap,
    Messages,
    Types,
    /// Any other namespace, or none.
    Other,
}

impl Ns {
    fn of(resolved: &ResolveResult<'_>) -> Result<Self, NotificationError> {
        match resolved {
            ResolveResult::Bound(ns) => Ok(match ns.as_ref() {
                uri if uri == NS_SOAP => Self::Soap,
                uri if uri == NS_MESSAGES => Self::Messages,
                uri if uri == NS_TYPES => Self::Types,
                _ => Self::Other,
            }),
            ResolveResult::Unbound => Ok(Self::Other),
            ResolveResult::Unknown(prefix) => Err(malformed(format!(
                "undeclared namespace prefix \"{}\"",
                clip(prefix)
            ))),
        }
    }
}

/// A start tag: namespace, local name and the attributes without a prefix (the only ones EWS
/// puts data in: `Id`, `ChangeKey`, `ResponseClass`).
#[derive(Debug)]
struct Open {
    ns: Ns,
    local: String,
    attrs: Vec<(String, String)>,
}

impl Open {
    fn is(&self, ns: Ns, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn shown(&self) -> Cow<'_, str> {
        clip(&self.local)
    }
}

enum Tok<'i> {
    Open(Open),
    Close,
    Text(Cow<'i, str>),
    Eof,
}

struct Parser<'i> {
    reader: NsReader<&'i [u8]>,
    depth: usize,
    /// An empty element was returned as `Open`; its `Close` comes next.
    pending_close: bool,
    /// Something was read already, so an XML declaration is no longer allowed.
    started: bool,
}

impl<'i> Parser<'i> {
    fn new(text: &'i str) -> Self {
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        // Spelled out although they are quick-xml's defaults: the structure checks below rely
        // on every end tag matching its start tag and on stray end tags being errors.
        config.check_end_names = true;
        config.allow_unmatched_ends = false;
        config.allow_dangling_amp = false;
        config.check_comments = true;
        Self {
            reader,
            depth: 0,
            pending_close: false,
            started: false,
        }
    }

    fn syntax(&self, e: &quick_xml::Error) -> NotificationError {
        malformed(format!(
            "not well-formed XML at byte {}: {}",
            self.reader.error_position(),
            clip(&e.to_string())
        ))
    }

    fn open(&mut self, ns: Ns, start: &BytesStart<'_>) -> Result<Open, NotificationError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(malformed(format!(
                "elements nested deeper than {MAX_DEPTH}"
            )));
        }
        let local = start.local_name().into_inner().to_owned();
        let mut attrs = Vec::new();
        for attr in start.attributes() {
            let attr = attr.map_err(|e| self.syntax(&e.into()))?;
            // Every value is unescaped, even of attributes we ignore, so an unknown entity
            // reference is an error wherever it hides.
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| self.syntax(&e))?;
            if let Some(at) = value.find(|c: char| !is_xml_char(c)) {
                return Err(malformed(format!(
                    "character reference to a character XML forbids in an attribute at {at}"
                )));
            }
            let key: &str = attr.key.as_ref();
            if key != "xmlns" && !key.contains(':') {
                attrs.push((key.to_owned(), value.into_owned()));
            }
        }
        Ok(Open { ns, local, attrs })
    }

    fn next(&mut self) -> Result<Tok<'i>, NotificationError> {
        if self.pending_close {
            self.pending_close = false;
            self.depth -= 1;
            return Ok(Tok::Close);
        }
        loop {
            let (resolved, event) = match self.reader.read_resolved_event() {
                Ok((resolved, event)) => (Ns::of(&resolved), event),
                Err(e) => return Err(self.syntax(&e)),
            };
            let first = !self.started;
            self.started = true;
            match event {
                Event::Start(start) => return Ok(Tok::Open(self.open(resolved?, &start)?)),
                Event::Empty(start) => {
                    let open = self.open(resolved?, &start)?;
                    self.pending_close = true;
                    return Ok(Tok::Open(open));
                }
                Event::End(_) => {
                    resolved?;
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Tok::Close);
                }
                Event::Text(text) => return Ok(Tok::Text(text.xml10_content())),
                Event::CData(data) => return Ok(Tok::Text(data.xml10_content())),
                Event::GeneralRef(reference) => {
                    let resolved =
                        match reference.resolve_char_ref().map_err(|e| self.syntax(&e))? {
                            Some(c) if is_xml_char(c) => c.to_string(),
                            Some(_) => {
                                return Err(malformed(
                                    "character reference to a character XML forbids",
                                ));
                            }
                            None => {
                                let name = reference.into_inner();
                                resolve_predefined_entity(&name)
                                    .ok_or_else(|| {
                                        malformed(format!(
                                            "undeclared entity reference &{};",
                                            clip(&name)
                                        ))
                                    })?
                                    .to_owned()
                            }
                        };
                    return Ok(Tok::Text(Cow::Owned(resolved)));
                }
                // Screened out before parsing; kept as a second line of defence.
                Event::DocType(_) => return Err(NotificationError::DocType),
                Event::Decl(_) if !first => {
                    return Err(malformed("XML declaration after the start of the document"));
                }
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Ok(Tok::Eof),
            }
        }
    }

    /// The next child element of the element being read, or `None` at its end tag. Between
    /// children only whitespace is allowed (every container here has element-only content).
    fn next_child(&mut self) -> Result<Option<Open>, NotificationError> {
        loop {
            match self.next()? {
                Tok::Open(open) => return Ok(Some(open)),
                Tok::Close => return Ok(None),
                Tok::Text(text) if is_xml_whitespace(&text) => {}
                Tok::Text(_) => return Err(malformed("text where only elements are allowed")),
                Tok::Eof => {
                    return Err(malformed("truncated: the document ends inside an element"));
                }
            }
        }
    }

    /// Skips the rest of the element just opened, whatever it contains.
    fn skip(&mut self) -> Result<(), NotificationError> {
        let mut open = 1usize;
        while open > 0 {
            match self.next()? {
                Tok::Open(_) => open += 1,
                Tok::Close => open -= 1,
                Tok::Text(_) => {}
                Tok::Eof => {
                    return Err(malformed("truncated: the document ends inside an element"));
                }
            }
        }
        Ok(())
    }

    /// The text of a simple-content element just opened, up to its end tag.
    fn text(&mut self, open: &Open) -> Result<String, NotificationError> {
        let mut text = String::new();
        loop {
            match self.next()? {
                Tok::Text(piece) => text.push_str(&piece),
                Tok::Close => return Ok(text),
                Tok::Open(_) => {
                    return Err(malformed(format!(
                        "element inside the text field <{}>",
                        open.shown()
                    )));
                }
                Tok::Eof => {
                    return Err(malformed("truncated: the document ends inside an element"));
                }
            }
        }
    }

    /// The `Id` attribute of an id element just opened (`t:ItemId`, `t:FolderId`, …); its
    /// content, if any, is skipped.
    fn id(&mut self, open: &Open) -> Result<String, NotificationError> {
        let id = open
            .attr("Id")
            .map(trim_xml)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| malformed(format!("<{}> without an Id", open.shown())))?;
        self.skip()?;
        Ok(id)
    }

    // --- The document -------------------------------------------------------------------------

    fn document(mut self) -> Result<Vec<Notification>, NotificationError> {
        let root = loop {
            match self.next()? {
                Tok::Open(open) => break open,
                Tok::Text(text) if is_xml_whitespace(&text) => {}
                Tok::Text(_) => return Err(malformed("text before the root element")),
                Tok::Close => return Err(malformed("end tag before the root element")),
                Tok::Eof => return Err(malformed("empty document")),
            }
        };
        if !root.is(Ns::Soap, "Envelope") {
            return Err(malformed(format!(
                "the root element <{}> is not a SOAP 1.1 Envelope",
                root.shown()
            )));
        }
        let notifications = self.envelope()?;
        loop {
            match self.next()? {
                Tok::Eof => return Ok(notifications),
                Tok::Text(text) if is_xml_whitespace(&text) => {}
                _ => return Err(malformed("content after the SOAP Envelope")),
            }
        }
    }

    fn envelope(&mut self) -> Result<Vec<Notification>, NotificationError> {
        let mut header = false;
        let mut body = None;
        while let Some(child) = self.next_child()? {
            if child.is(Ns::Soap, "Header") && !header && body.is_none() {
                // Exchange sends RequestServerVersion here; nothing in it changes how a
                // notification is read.
                header = true;
                self.skip()?;
            } else if child.is(Ns::Soap, "Body") && body.is_none() {
                body = Some(self.body()?);
            } else {
                return Err(malformed(format!(
                    "unexpected <{}> in the SOAP Envelope",
                    child.shown()
                )));
            }
        }
        body.ok_or_else(|| malformed("SOAP Envelope without a Body"))
    }

    fn body(&mut self) -> Result<Vec<Notification>, NotificationError> {
        let op = self
            .next_child()?
            .ok_or_else(|| malformed("empty SOAP Body"))?;
        if !op.is(Ns::Messages, "SendNotification") {
            return Err(malformed(format!(
                "the SOAP Body holds <{}>, not m:SendNotification",
                op.shown()
            )));
        }
        let notifications = self.send_notification()?;
        if self.next_child()?.is_some() {
            return Err(malformed("more than one element in the SOAP Body"));
        }
        Ok(notifications)
    }

    fn send_notification(&mut self) -> Result<Vec<Notification>, NotificationError> {
        let mut notifications = None;
        while let Some(child) = self.next_child()? {
            if child.is(Ns::Messages, "ResponseMessages") && notifications.is_none() {
                notifications = Some(self.response_messages()?);
            } else {
                return Err(malformed(format!(
                    "unexpected <{}> in SendNotification",
                    child.shown()
                )));
            }
        }
        notifications.ok_or_else(|| malformed("SendNotification without ResponseMessages"))
    }

    fn response_messages(&mut self) -> Result<Vec<Notification>, NotificationError> {
        let mut notifications = Vec::new();
        while let Some(child) = self.next_child()? {
            if child.is(Ns::Messages, "SendNotificationResponseMessage") {
                notifications.push(self.response_message()?);
            } else {
                return Err(malformed(format!(
                    "unexpected <{}> in ResponseMessages",
                    child.shown()
                )));
            }
        }
        if notifications.is_empty() {
            return Err(malformed("ResponseMessages without a response message"));
        }
        Ok(notifications)
    }

    fn response_message(&mut self) -> Result<Notification, NotificationError> {
        let mut notification = None;
        while let Some(child) = self.next_child()? {
            if child.is(Ns::Messages, "Notification") {
                if notification.is_some() {
                    return Err(malformed("a response message with two Notifications"));
                }
                notification = Some(self.notification()?);
            } else {
                // ResponseCode, MessageText, MessageXml, …: see the module doc.
                self.skip()?;
            }
        }
        notification.ok_or_else(|| malformed("a response message without a Notification"))
    }

    fn notification(&mut self) -> Result<Notification, NotificationError> {
        let mut subscription = None;
        let mut previous_watermark = None;
        let mut more_events = None;
        let mut events = Vec::new();
        while let Some(child) = self.next_child()? {
            if child.ns != Ns::Types {
                self.skip()?;
                continue;
            }
            match child.local.as_str() {
                "SubscriptionId" => {
                    let id = self.text(&child)?;
                    set_once(&mut subscription, trim_xml(&id).to_owned(), &child)?;
                }
                "PreviousWatermark" => {
                    let mark = self.text(&child)?;
                    set_once(&mut previous_watermark, trim_xml(&mark).to_owned(), &child)?;
                }
                "MoreEvents" => {
                    let text = self.text(&child)?;
                    set_once(&mut more_events, parse_boolean(&text)?, &child)?;
                }
                "StatusEvent" => events.push(self.event(None)?),
                name => match EventKind::from_element_name(name) {
                    Some(kind) => events.push(self.event(Some(kind))?),
                    None => self.skip()?,
                },
            }
        }
        let subscription = subscription
            .filter(|id| !id.is_empty())
            .ok_or_else(|| malformed("a Notification without a SubscriptionId"))?;
        Ok(Notification {
            subscription: SubscriptionId::new(subscription),
            previous_watermark: previous_watermark.filter(|w| !w.is_empty()),
            more_events: more_events.unwrap_or(false),
            events,
        })
    }

    /// One event element; `kind` is `None` for a StatusEvent.
    fn event(&mut self, kind: Option<EventKind>) -> Result<NotificationEvent, NotificationError> {
        let mut fields = EventFields::default();
        while let Some(child) = self.next_child()? {
            if child.ns != Ns::Types {
                self.skip()?;
                continue;
            }
            match child.local.as_str() {
                "Watermark" => {
                    let mark = self.text(&child)?;
                    set_once(&mut fields.watermark, trim_xml(&mark).to_owned(), &child)?;
                }
                "TimeStamp" => {
                    let text = self.text(&child)?;
                    let at = parse_date_time(trim_xml(&text)).ok_or_else(|| {
                        malformed(format!("TimeStamp \"{}\" is not a dateTime", clip(&text)))
                    })?;
                    set_once(&mut fields.timestamp, at, &child)?;
                }
                "ItemId" => set_once(&mut fields.item_id, self.id(&child)?, &child)?,
                "FolderId" => set_once(&mut fields.folder_id, self.id(&child)?, &child)?,
                "ParentFolderId" => set_once(&mut fields.parent, self.id(&child)?, &child)?,
                "OldItemId" => set_once(&mut fields.old_item_id, self.id(&child)?, &child)?,
                "OldParentFolderId" => set_once(&mut fields.old_parent, self.id(&child)?, &child)?,
                // OldFolderId (a moved folder's previous id), UnreadCount and anything newer:
                // nothing the sync acts on.
                _ => self.skip()?,
            }
        }
        fields.into_event(kind)
    }
}

#[derive(Default)]
struct EventFields {
    watermark: Option<String>,
    timestamp: Option<DateTime<Utc>>,
    item_id: Option<String>,
    folder_id: Option<String>,
    parent: Option<String>,
    old_item_id: Option<String>,
    old_parent: Option<String>,
}

impl EventFields {
    fn into_event(self, kind: Option<EventKind>) -> Result<NotificationEvent, NotificationError> {
        let watermark = self.watermark.filter(|w| !w.is_empty());
        let Some(kind) = kind else {
            return Ok(NotificationEvent::Status { watermark });
        };
        match (self.item_id, self.folder_id) {
            (Some(item_id), None) => Ok(NotificationEvent::Item {
                kind,
                watermark,
                timestamp: self.timestamp,
                item_id: ExchangeItemId::new(item_id),
                parent_folder: self.parent.map(FolderId::new),
                old_item_id: self.old_item_id.map(ExchangeItemId::new),
                old_parent_folder: self.old_parent.map(FolderId::new),
            }),
            (None, Some(folder_id)) => Ok(NotificationEvent::Folder {
                kind,
                watermark,
                folder_id: FolderId::new(folder_id),
                parent_folder: self.parent.map(FolderId::new),
            }),
            (Some(_), Some(_)) => Err(malformed(format!(
                "{} with both an ItemId and a FolderId",
                kind.element_name()
            ))),
            (None, None) => Err(malformed(format!(
                "{} without an ItemId or FolderId",
                kind.element_name()
            ))),
        }
    }
}

/// Stores a field's value, refusing a second occurrence: two SubscriptionIds or ItemIds in one
/// element leave no right answer to pick.
fn set_once<T>(slot: &mut Option<T>, value: T, open: &Open) -> Result<(), NotificationError> {
    if slot.is_some() {
        return Err(malformed(format!("<{}> appears twice", open.shown())));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_boolean(text: &str) -> Result<bool, NotificationError> {
    match trim_xml(text) {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(malformed(format!(
            "MoreEvents \"{}\" is not a boolean",
            clip(other)
        ))),
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
