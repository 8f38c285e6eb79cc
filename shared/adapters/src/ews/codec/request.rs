//! Request builders: the SOAP envelope and one struct per operation.
//!
//! Each operation knows how to write its `m:…` body element; [`Envelope`] wraps it with the
//! version and impersonation headers Exchange needs on every call. Element order follows
//! messages.xsd/types.xsd; the tests validate every builder's output against those schemas.

use lnsync_core::ports::{ContactUpdate, NewContact};

use super::contact::{self, ContactData};
use super::types::{ExtendedField, FolderRef, ItemId, PropertyPath};
use super::xml::XmlBuilder;

pub(crate) const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const NS_TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub(crate) const NS_MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

/// Largest `MaxChangesReturned` the schema allows (MaxSyncChangesReturnedType).
pub const MAX_SYNC_CHANGES: u16 = 512;

/// The EWS schema version we speak. `Exchange2013_SP1` is the newest documented value and
/// everything we use exists since 2010 (exchange.md §1.2).
pub const SERVER_VERSION: &str = "Exchange2013_SP1";

/// One EWS operation: writes its body element (`m:FindItem`, …). Sealed: the builders below are
/// the only operations, so every body we send is one the schema tests cover.
pub trait Operation: sealed::WriteBody {
    /// The operation's name (`"FindItem"`), used in logs and errors.
    fn name(&self) -> &'static str;
}

pub(super) mod sealed {
    pub trait WriteBody {
        fn write_body(&self, b: &mut super::XmlBuilder);
    }
}
pub(super) use sealed::WriteBody;

/// The SOAP 1.1 envelope around one operation, impersonating one mailbox.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Primary SMTP address of the impersonated mailbox (only the primary address works,
    /// exchange.md §2.2).
    pub mailbox: &'a str,
}

impl<'a> Envelope<'a> {
    pub fn new(mailbox: &'a str) -> Self {
        Self { mailbox }
    }

    pub fn build(&self, op: &dyn Operation) -> String {
        let mut b = XmlBuilder::new();
        b.element(
            "soap:Envelope",
            &[
                ("xmlns:soap", NS_SOAP),
                ("xmlns:t", NS_TYPES),
                ("xmlns:m", NS_MESSAGES),
            ],
            |b| {
                b.element("soap:Header", &[], |b| {
                    b.empty("t:RequestServerVersion", &[("Version", SERVER_VERSION)]);
                    b.element("t:ExchangeImpersonation", &[], |b| {
                        b.element("t:ConnectingSID", &[], |b| {
                            b.text_element("t:PrimarySmtpAddress", &[], self.mailbox);
                        });
                    });
                });
                b.element("soap:Body", &[], |b| op.write_body(b));
            },
        );
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        out.push_str(&b.finish());
        out
    }
}

/// `t:ItemShape` / `t:FolderShape`: IdOnly plus the given extra properties.
pub(super) fn write_shape(b: &mut XmlBuilder, element: &str, extra: &[PropertyPath]) {
    b.element(element, &[], |b| {
        b.text_element("t:BaseShape", &[], "IdOnly");
        if !extra.is_empty() {
            b.element("t:AdditionalProperties", &[], |b| {
                for p in extra {
                    p.write(b);
                }
            });
        }
    });
}

pub(super) fn write_item_ids(b: &mut XmlBuilder, ids: &[ItemId]) {
    b.element("m:ItemIds", &[], |b| {
        for id in ids {
            id.write(b, "t:ItemId");
        }
    });
}

/// A search condition (`t:SearchExpression`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    IsEqualTo { path: PropertyPath, value: String },
    Or(Vec<Restriction>),
}

impl Restriction {
    /// Items whose CrmId stamp is any of `stamps`. One stamp → a plain IsEqualTo, because the
    /// schema's `Or` needs at least one operand but a one-armed Or is pointless work for the server.
    /// `None` for no stamps: an empty `Or` is invalid and would match nothing anyway.
    pub fn crm_id_in<S: AsRef<str>>(stamps: &[S]) -> Option<Self> {
        let eq = |s: &S| Restriction::IsEqualTo {
            path: PropertyPath::Extended(ExtendedField::CRM_ID),
            value: s.as_ref().to_owned(),
        };
        match stamps {
            [] => None,
            [one] => Some(eq(one)),
            many => Some(Restriction::Or(many.iter().map(eq).collect())),
        }
    }

    pub(super) fn write(&self, b: &mut XmlBuilder) {
        match self {
            Self::IsEqualTo { path, value } => b.element("t:IsEqualTo", &[], |b| {
                path.write(b);
                b.element("t:FieldURIOrConstant", &[], |b| {
                    b.empty("t:Constant", &[("Value", value)])
                });
            }),
            Self::Or(parts) => b.element("t:Or", &[], |b| {
                for p in parts {
                    p.write(b);
                }
            }),
        }
    }
}

/// Offset paging (`IndexedPageItemView` / `IndexedPageFolderView`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u32,
    pub max_entries: u32,
}

impl Page {
    pub fn first(max_entries: u32) -> Self {
        Self {
            offset: 0,
            max_entries,
        }
    }

    pub(super) fn write(&self, b: &mut XmlBuilder, element: &str) {
        let max = self.max_entries.to_string();
        let offset = self.offset.to_string();
        b.empty(
            element,
            &[
                ("MaxEntriesReturned", &max),
                ("Offset", &offset),
                ("BasePoint", "Beginning"),
            ],
        );
    }
}

/// Finds a folder by display name directly under `parent` (e.g. "CRM Contacts" under contacts).
#[derive(Debug, Clone)]
pub struct FindFolder {
    pub parent: FolderRef,
    pub display_name: String,
}

impl Operation for FindFolder {
    fn name(&self) -> &'static str {
        "FindFolder"
    }
}

impl WriteBody for FindFolder {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:FindFolder", &[("Traversal", "Shallow")], |b| {
            write_shape(
                b,
                "m:FolderShape",
                &[PropertyPath::Field("folder:DisplayName")],
            );
            b.element("m:Restriction", &[], |b| {
                Restriction::IsEqualTo {
                    path: PropertyPath::Field("folder:DisplayName"),
                    value: self.display_name.clone(),
                }
                .write(b)
            });
            b.element("m:ParentFolderIds", &[], |b| self.parent.write(b));
        });
    }
}

/// Creates a contacts folder under `parent`.
#[derive(Debug, Clone)]
pub struct CreateContactsFolder {
    pub parent: FolderRef,
    pub display_name: String,
}

impl Operation for CreateContactsFolder {
    fn name(&self) -> &'static str {
        "CreateFolder"
    }
}

impl WriteBody for CreateContactsFolder {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:CreateFolder", &[], |b| {
            b.element("m:ParentFolderId", &[], |b| self.parent.write(b));
            b.element("m:Folders", &[], |b| {
                b.element("t:ContactsFolder", &[], |b| {
                    b.text_element("t:DisplayName", &[], &self.display_name);
                });
            });
        });
    }
}

/// Creates contacts in a folder; one response message per contact, in order.
#[derive(Debug, Clone, Copy)]
pub struct CreateContacts<'a> {
    pub folder: &'a FolderRef,
    pub contacts: &'a [NewContact],
}

impl Operation for CreateContacts<'_> {
    fn name(&self) -> &'static str {
        "CreateItem"
    }
}

impl WriteBody for CreateContacts<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:CreateItem", &[], |b| {
            b.element("m:SavedItemFolderId", &[], |b| self.folder.write(b));
            b.element("m:Items", &[], |b| {
                for c in self.contacts {
                    contact::write_contact(
                        b,
                        &ContactData {
                            stamp: c.stamp.as_str(),
                            fields: &c.fields,
                        },
                    );
                }
            });
        });
    }
}

/// Overwrites contacts with LN's values (one way, LN wins: AlwaysOverwrite). The ChangeKey is
/// still sent because Exchange demands it even with AlwaysOverwrite (exchange.md §2.6).
#[derive(Debug, Clone, Copy)]
pub struct UpdateContacts<'a> {
    pub updates: &'a [ContactUpdate],
}

impl Operation for UpdateContacts<'_> {
    fn name(&self) -> &'static str {
        "UpdateItem"
    }
}

impl WriteBody for UpdateContacts<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element(
            "m:UpdateItem",
            &[("ConflictResolution", "AlwaysOverwrite")],
            |b| {
                b.element("m:ItemChanges", &[], |b| {
                    for u in self.updates {
                        let id = ItemId::new(
                            u.item.id.as_str(),
                            Some(u.item.version.as_str().to_owned()),
                        );
                        let data = ContactData {
                            stamp: u.stamp.as_str(),
                            fields: &u.fields,
                        };
                        contact::write_item_change(b, &id, &data);
                    }
                });
            },
        );
    }
}

/// Hard-deletes items (contacts we own; nothing to recover in Deleted Items).
#[derive(Debug, Clone, Copy)]
pub struct DeleteItems<'a> {
    pub ids: &'a [ItemId],
}

impl Operation for DeleteItems<'_> {
    fn name(&self) -> &'static str {
        "DeleteItem"
    }
}

impl WriteBody for DeleteItems<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:DeleteItem", &[("DeleteType", "HardDelete")], |b| {
            write_item_ids(b, self.ids)
        });
    }
}

/// Reads items IdOnly plus extra properties (the CrmId stamp by default).
#[derive(Debug, Clone, Copy)]
pub struct GetItems<'a> {
    pub ids: &'a [ItemId],
    pub properties: &'a [PropertyPath],
}

impl<'a> GetItems<'a> {
    /// Ids, ChangeKeys and the stamp.
    pub fn stamps(ids: &'a [ItemId]) -> Self {
        Self {
            ids,
            properties: &[contact::STAMP_PATH],
        }
    }
}

impl Operation for GetItems<'_> {
    fn name(&self) -> &'static str {
        "GetItem"
    }
}

impl WriteBody for GetItems<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:GetItem", &[], |b| {
            write_shape(b, "m:ItemShape", self.properties);
            write_item_ids(b, self.ids);
        });
    }
}

/// Lists a folder page by page, oldest first, optionally restricted, reading the stamp of each
/// item.
#[derive(Debug, Clone)]
pub struct FindItems<'a> {
    pub folder: &'a FolderRef,
    pub restriction: Option<Restriction>,
    pub page: Page,
}

impl Operation for FindItems<'_> {
    fn name(&self) -> &'static str {
        "FindItem"
    }
}

impl WriteBody for FindItems<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:FindItem", &[("Traversal", "Shallow")], |b| {
            write_shape(b, "m:ItemShape", &[contact::STAMP_PATH]);
            self.page.write(b, "m:IndexedPageItemView");
            if let Some(r) = &self.restriction {
                b.element("m:Restriction", &[], |b| r.write(b));
            }
            // Oldest first: offset paging needs a stable order, and of duplicate stamps the
            // core keeps the first one returned, which R10 wants to be the oldest.
            b.element("m:SortOrder", &[], |b| {
                b.element("t:FieldOrder", &[("Order", "Ascending")], |b| {
                    PropertyPath::Field("item:DateTimeCreated").write(b)
                })
            });
            b.element("m:ParentFolderIds", &[], |b| self.folder.write(b));
        });
    }
}

/// Incremental changes of a folder since `sync_state` (all items as creates when `None`).
#[derive(Debug, Clone, Copy)]
pub struct SyncFolderItems<'a> {
    pub folder: &'a FolderRef,
    pub sync_state: Option<&'a str>,
    /// Clamped to 1..=512 when written (MaxSyncChangesReturnedType).
    pub max_changes: u16,
}

impl Operation for SyncFolderItems<'_> {
    fn name(&self) -> &'static str {
        "SyncFolderItems"
    }
}

impl WriteBody for SyncFolderItems<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:SyncFolderItems", &[], |b| {
            write_shape(b, "m:ItemShape", &[contact::STAMP_PATH]);
            b.element("m:SyncFolderId", &[], |b| self.folder.write(b));
            if let Some(state) = self.sync_state.filter(|s| !s.is_empty()) {
                b.text_element("m:SyncState", &[], state);
            }
            let max = self.max_changes.clamp(1, MAX_SYNC_CHANGES).to_string();
            b.text_element("m:MaxChangesReturned", &[], &max);
        });
    }
}
