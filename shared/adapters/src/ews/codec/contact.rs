//! The contact field mapping (R13) as one table, used both to create a contact and to update one.
//!
//! One table means create and update cannot drift apart: a field that is written on create is
//! also set on update, and cleared on update when LN no longer fills it (R13: "fields LN does not
//! fill are cleared in Exchange, not left stale"). The table is in XSD sequence order
//! (ItemType's `ExtendedProperty` first, then ContactItemType's FileAs … Surname), which the
//! create writer relies on: Exchange rejects out-of-order elements with ErrorSchemaValidation.

use std::borrow::Cow;

use lnsync_core::normalize::{ContactFields, PostalAddress};

use super::types::{ExtendedField, ItemId, PropertyPath};
use super::xml::XmlBuilder;

/// What a contact write needs: our stamp plus the mapped fields (the core's [`ContactFields`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContactData<'a> {
    /// The R10 stamp value, `ln:<env>:contact:<code>`.
    pub stamp: &'a str,
    pub fields: &'a ContactFields,
}

/// Where a field lives inside `t:Contact`, which decides the wrapper elements around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Extended(ExtendedField),
    /// A plain child element of `t:Contact`.
    Plain(&'static str),
    /// `EmailAddresses/Entry Key=…`
    Email(&'static str),
    /// `PhysicalAddresses/Entry Key="Business"/<element>`
    BusinessAddress(&'static str),
    /// `PhoneNumbers/Entry Key=…`
    Phone(&'static str),
}

impl Slot {
    /// The dictionary wrapper a slot sits in; consecutive slots with the same group share it.
    fn group(self) -> Option<&'static str> {
        match self {
            Slot::Extended(_) | Slot::Plain(_) => None,
            Slot::Email(_) => Some("t:EmailAddresses"),
            Slot::BusinessAddress(_) => Some("t:PhysicalAddresses"),
            Slot::Phone(_) => Some("t:PhoneNumbers"),
        }
    }
}

struct FieldSpec {
    path: PropertyPath,
    slot: Slot,
    value: for<'a> fn(&ContactData<'a>) -> Option<Cow<'a, str>>,
}

fn text(v: &Option<String>) -> Option<Cow<'_, str>> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Cow::Borrowed)
}

fn address_part<'a>(
    c: &ContactData<'a>,
    part: fn(&PostalAddress) -> &Option<String>,
) -> Option<Cow<'a, str>> {
    c.fields
        .business_address
        .as_ref()
        .and_then(|a| text(part(a)))
}

/// Birthday is an xs:dateTime. Exchange clients show it in their own zone, so UTC midnight would
/// display as the previous day west of Greenwich; noon UTC shows the right date from UTC-11 to
/// UTC+11, which covers every office we sync.
fn birthday<'a>(c: &ContactData<'a>) -> Option<Cow<'a, str>> {
    c.fields
        .birthday
        .map(|d| Cow::Owned(format!("{}T12:00:00Z", d.format("%Y-%m-%d"))))
}

const fn field(
    uri: &'static str,
    element: &'static str,
    value: for<'a> fn(&ContactData<'a>) -> Option<Cow<'a, str>>,
) -> FieldSpec {
    FieldSpec {
        path: PropertyPath::Field(uri),
        slot: Slot::Plain(element),
        value,
    }
}

const fn extended(
    f: ExtendedField,
    value: for<'a> fn(&ContactData<'a>) -> Option<Cow<'a, str>>,
) -> FieldSpec {
    FieldSpec {
        path: PropertyPath::Extended(f),
        slot: Slot::Extended(f),
        value,
    }
}

const fn address(
    uri: &'static str,
    element: &'static str,
    value: for<'a> fn(&ContactData<'a>) -> Option<Cow<'a, str>>,
) -> FieldSpec {
    FieldSpec {
        path: PropertyPath::Indexed {
            uri,
            index: "Business",
        },
        slot: Slot::BusinessAddress(element),
        value,
    }
}

const fn phone(
    key: &'static str,
    value: for<'a> fn(&ContactData<'a>) -> Option<Cow<'a, str>>,
) -> FieldSpec {
    FieldSpec {
        path: PropertyPath::Indexed {
            uri: "contacts:PhoneNumber",
            index: key,
        },
        slot: Slot::Phone(key),
        value,
    }
}

/// Every mapped field, in XSD order (types.xsd ItemType, then ContactItemType).
static FIELDS: &[FieldSpec] = &[
    extended(ExtendedField::CRM_ID, |c| Some(Cow::Borrowed(c.stamp))),
    extended(ExtendedField::DISPLAY_NAME_PREFIX, |c| {
        text(&c.fields.title)
    }),
    extended(ExtendedField::LANGUAGE, |c| text(&c.fields.language)),
    field("contacts:FileAs", "t:FileAs", |c| text(&c.fields.file_as)),
    field("contacts:DisplayName", "t:DisplayName", |c| {
        text(&c.fields.display_name)
    }),
    field("contacts:GivenName", "t:GivenName", |c| {
        text(&c.fields.given_name)
    }),
    field("contacts:Initials", "t:Initials", |c| {
        text(&c.fields.initials)
    }),
    field("contacts:MiddleName", "t:MiddleName", |c| {
        text(&c.fields.middle_name)
    }),
    field("contacts:CompanyName", "t:CompanyName", |c| {
        text(&c.fields.company_name)
    }),
    FieldSpec {
        path: PropertyPath::Indexed {
            uri: "contacts:EmailAddress",
            index: "EmailAddress1",
        },
        slot: Slot::Email("EmailAddress1"),
        value: |c| text(&c.fields.email),
    },
    address("contacts:PhysicalAddress:Street", "t:Street", |c| {
        address_part(c, |a| &a.street)
    }),
    address("contacts:PhysicalAddress:City", "t:City", |c| {
        address_part(c, |a| &a.city)
    }),
    address("contacts:PhysicalAddress:State", "t:State", |c| {
        address_part(c, |a| &a.state)
    }),
    address(
        "contacts:PhysicalAddress:CountryOrRegion",
        "t:CountryOrRegion",
        |c| address_part(c, |a| &a.country),
    ),
    address("contacts:PhysicalAddress:PostalCode", "t:PostalCode", |c| {
        address_part(c, |a| &a.postal_code)
    }),
    phone("BusinessPhone", |c| text(&c.fields.business_phone)),
    phone("MobilePhone", |c| text(&c.fields.mobile_phone)),
    phone("BusinessFax", |c| text(&c.fields.business_fax)),
    field("contacts:AssistantName", "t:AssistantName", |c| {
        text(&c.fields.assistant_name)
    }),
    field("contacts:Birthday", "t:Birthday", birthday),
    field("contacts:Department", "t:Department", |c| {
        text(&c.fields.department)
    }),
    field("contacts:Generation", "t:Generation", |c| {
        text(&c.fields.generation)
    }),
    field("contacts:JobTitle", "t:JobTitle", |c| {
        text(&c.fields.job_title)
    }),
    field("contacts:Surname", "t:Surname", |c| text(&c.fields.surname)),
];

/// Writes the field's own element(s), without its dictionary wrapper.
fn write_slot(b: &mut XmlBuilder, slot: Slot, value: &str) {
    match slot {
        Slot::Extended(f) => b.element("t:ExtendedProperty", &[], |b| {
            f.write(b);
            b.text_element("t:Value", &[], value);
        }),
        Slot::Plain(element) => b.text_element(element, &[], value),
        Slot::Email(key) | Slot::Phone(key) => b.text_element("t:Entry", &[("Key", key)], value),
        Slot::BusinessAddress(element) => b.text_element(element, &[], value),
    }
}

fn open_group(b: &mut XmlBuilder, group: &str) {
    b.open(group, &[]);
    if group == "t:PhysicalAddresses" {
        b.open("t:Entry", &[("Key", "Business")]);
    }
}

fn close_group(b: &mut XmlBuilder, group: &str) {
    if group == "t:PhysicalAddresses" {
        b.close("t:Entry");
    }
    b.close(group);
}

/// `<t:Contact>` with every filled field, for CreateItem.
pub(crate) fn write_contact(b: &mut XmlBuilder, contact: &ContactData<'_>) {
    b.element("t:Contact", &[], |b| {
        let mut open: Option<&'static str> = None;
        for spec in FIELDS {
            let Some(value) = (spec.value)(contact) else {
                continue;
            };
            let group = spec.slot.group();
            if open != group {
                if let Some(g) = open {
                    close_group(b, g);
                }
                if let Some(g) = group {
                    open_group(b, g);
                }
                open = group;
            }
            write_slot(b, spec.slot, &value);
        }
        if let Some(g) = open {
            close_group(b, g);
        }
    });
}

/// `<t:ItemChange>` that makes the stored contact equal to `contact`: a SetItemField per filled
/// field and a DeleteItemField per empty one.
pub(crate) fn write_item_change(b: &mut XmlBuilder, id: &ItemId, contact: &ContactData<'_>) {
    b.element("t:ItemChange", &[], |b| {
        id.write(b, "t:ItemId");
        b.element("t:Updates", &[], |b| {
            for spec in FIELDS {
                match (spec.value)(contact) {
                    Some(value) => b.element("t:SetItemField", &[], |b| {
                        spec.path.write(b);
                        b.element("t:Contact", &[], |b| match spec.slot.group() {
                            Some(g) => {
                                open_group(b, g);
                                write_slot(b, spec.slot, &value);
                                close_group(b, g);
                            }
                            None => write_slot(b, spec.slot, &value),
                        });
                    }),
                    None => b.element("t:DeleteItemField", &[], |b| spec.path.write(b)),
                }
            }
        });
    });
}

/// The extended properties a contact read should return, so the adapter can see our stamp.
pub(crate) const STAMP_PATH: PropertyPath = PropertyPath::Extended(ExtendedField::CRM_ID);
