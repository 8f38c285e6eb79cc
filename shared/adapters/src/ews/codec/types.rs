//! EWS-shaped value types shared by the request builders and the response parsers.
//!
//! These are the codec's own types, deliberately independent of the core's domain model: the
//! mailbox adapter maps between the two, so the codec stays a faithful, testable picture of the
//! wire format.

use super::xml::XmlBuilder;

/// An item id with its optional ChangeKey (`t:ItemId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemId {
    pub id: String,
    pub change_key: Option<String>,
}

impl ItemId {
    pub fn new(id: impl Into<String>, change_key: Option<String>) -> Self {
        Self {
            id: id.into(),
            change_key,
        }
    }

    pub(crate) fn write(&self, b: &mut XmlBuilder, element: &str) {
        match &self.change_key {
            Some(ck) => b.empty(element, &[("Id", &self.id), ("ChangeKey", ck)]),
            None => b.empty(element, &[("Id", &self.id)]),
        }
    }
}

/// A folder id with its optional ChangeKey (`t:FolderId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FolderId {
    pub id: String,
    pub change_key: Option<String>,
}

impl FolderId {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            change_key: None,
        }
    }
}

/// The distinguished folders the contact sync touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistinguishedFolder {
    Contacts,
    Calendar,
}

impl DistinguishedFolder {
    fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Calendar => "calendar",
        }
    }
}

/// Either kind of folder reference EWS accepts wherever a folder id is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderRef {
    Distinguished(DistinguishedFolder),
    Id(FolderId),
}

impl FolderRef {
    pub(crate) fn write(&self, b: &mut XmlBuilder) {
        match self {
            Self::Distinguished(d) => b.empty("t:DistinguishedFolderId", &[("Id", d.as_str())]),
            Self::Id(FolderId {
                id,
                change_key: Some(ck),
            }) => b.empty("t:FolderId", &[("Id", id), ("ChangeKey", ck)]),
            Self::Id(FolderId {
                id,
                change_key: None,
            }) => b.empty("t:FolderId", &[("Id", id)]),
        }
    }
}

impl From<FolderId> for FolderRef {
    fn from(id: FolderId) -> Self {
        Self::Id(id)
    }
}

/// A MAPI extended property we read or write (`t:ExtendedFieldURI`). All ours are strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendedField {
    /// A named property in PS_PUBLIC_STRINGS. Named, not tagged, so Graph sees the same property
    /// (`String {00020329-0000-0000-C000-000000000046} Name CrmId`).
    PublicString(&'static str),
    /// A tagged property (tag without the type half, e.g. 0x3A45).
    Tag(u16),
}

impl ExtendedField {
    /// R10 stamp: `ln:<env>:contact:<code>` on every item we create.
    pub const CRM_ID: Self = Self::PublicString("CrmId");
    /// PidTagDisplayNamePrefix: the person title ("Dr."). EWS has no writable element for it
    /// (`CompleteName/Title` is read-only), so it goes in as the MAPI property Outlook shows.
    pub const DISPLAY_NAME_PREFIX: Self = Self::Tag(0x3A45);
    /// PidTagLanguage: R13 puts the contact's language ISO code here.
    pub const LANGUAGE: Self = Self::Tag(0x3A0C);

    pub(crate) fn write(&self, b: &mut XmlBuilder) {
        match self {
            Self::PublicString(name) => b.empty(
                "t:ExtendedFieldURI",
                &[
                    ("DistinguishedPropertySetId", "PublicStrings"),
                    ("PropertyName", name),
                    ("PropertyType", "String"),
                ],
            ),
            Self::Tag(tag) => {
                let tag = format!("0x{tag:04X}");
                b.empty(
                    "t:ExtendedFieldURI",
                    &[("PropertyTag", &tag), ("PropertyType", "String")],
                )
            }
        }
    }

    /// Recognises the field from a response's `ExtendedFieldURI` attributes. Servers echo tags in
    /// lower-case hex (`0x3a45`) and may echo the set by GUID, so compare by meaning, not text.
    pub(crate) fn matches(&self, attr: &dyn Fn(&str) -> Option<String>) -> bool {
        const PS_PUBLIC_STRINGS: &str = "00020329-0000-0000-c000-000000000046";
        match self {
            Self::PublicString(name) => {
                let set_ok = attr("DistinguishedPropertySetId").as_deref() == Some("PublicStrings")
                    || attr("PropertySetId")
                        .map(|g| {
                            g.trim_matches(|c| c == '{' || c == '}')
                                .eq_ignore_ascii_case(PS_PUBLIC_STRINGS)
                        })
                        .unwrap_or(false);
                set_ok && attr("PropertyName").as_deref() == Some(name)
            }
            Self::Tag(tag) => attr("PropertyTag").and_then(|t| parse_tag(&t)) == Some(*tag),
        }
    }
}

fn parse_tag(text: &str) -> Option<u16> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// A property path as used in shapes, restrictions and updates (`t:Path` substitution group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyPath {
    /// `t:FieldURI FieldURI="…"`, e.g. `contacts:GivenName`, `folder:DisplayName`.
    Field(&'static str),
    /// `t:IndexedFieldURI FieldURI="…" FieldIndex="…"`.
    Indexed {
        uri: &'static str,
        index: &'static str,
    },
    /// `t:ExtendedFieldURI …`.
    Extended(ExtendedField),
}

impl PropertyPath {
    pub(crate) fn write(&self, b: &mut XmlBuilder) {
        match self {
            Self::Field(uri) => b.empty("t:FieldURI", &[("FieldURI", uri)]),
            Self::Indexed { uri, index } => b.empty(
                "t:IndexedFieldURI",
                &[("FieldURI", uri), ("FieldIndex", index)],
            ),
            Self::Extended(field) => field.write(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_fields_match_server_echo_variants() {
        let attrs = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(ExtendedField::LANGUAGE.matches(&attrs(&[("PropertyTag", "0x3a0c")])));
        assert!(ExtendedField::LANGUAGE.matches(&attrs(&[("PropertyTag", "14860")])));
        assert!(!ExtendedField::LANGUAGE.matches(&attrs(&[("PropertyTag", "0x3a45")])));
        assert!(ExtendedField::CRM_ID.matches(&attrs(&[
            ("PropertySetId", "{00020329-0000-0000-C000-000000000046}"),
            ("PropertyName", "CrmId")
        ])));
        assert!(!ExtendedField::CRM_ID.matches(&attrs(&[
            ("DistinguishedPropertySetId", "PublicStrings"),
            ("PropertyName", "Other")
        ])));
    }
}
