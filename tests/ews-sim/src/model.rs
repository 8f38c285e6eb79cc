//! The mailbox data model: ids (incl. occurrence ids), extended-property keys, items (contacts
//! and calendar items) and folders.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::CalendarItem;

/// Opaque item id, shaped like Exchange's (base64 of a binary entry id, starting `AAMk`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub String);

/// Opaque folder id (same shape as item ids, different kind byte).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FolderId(pub String);

/// Version stamp of an item; changes on every modification.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangeKey(pub String);

macro_rules! display_newtype {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
        }
        impl $t { pub fn as_str(&self) -> &str { &self.0 } }
    )*};
}
display_newtype!(ItemId, FolderId, ChangeKey);

// Prefix bytes decode from "AAMk" like real EWS ids; "sim" + a kind byte lets us tell a
// malformed id (ErrorInvalidIdMalformed) from a well-formed unknown one (ErrorItemNotFound).
const ID_MAGIC: &[u8] = &[0x00, 0x03, 0x24, b's', b'i', b'm'];
pub(crate) const KIND_ITEM: u8 = 1;
pub(crate) const KIND_FOLDER: u8 = 2;
/// Occurrence ids: the master's id bytes plus the original start, so an occurrence id stays
/// valid as long as its series has that occurrence (as Exchange's do).
pub(crate) const KIND_OCCURRENCE: u8 = 3;
const ID_LEN: usize = ID_MAGIC.len() + 1 + 8 + 8;
const OCC_LEN: usize = ID_LEN + 8;

/// The id of one occurrence (or exception) of a recurring master.
pub fn make_occurrence_id(master: &ItemId, original_start: DateTime<Utc>) -> ItemId {
    let mut bytes = B64.decode(master.as_str()).unwrap_or_default();
    if bytes.len() != ID_LEN {
        bytes.resize(ID_LEN, 0);
    }
    bytes[ID_MAGIC.len()] = KIND_OCCURRENCE;
    bytes.extend_from_slice(&original_start.timestamp().to_be_bytes());
    ItemId(B64.encode(bytes))
}

/// Splits an occurrence id into its master id and original start.
pub fn parse_occurrence_id(id: &str) -> Option<(ItemId, DateTime<Utc>)> {
    let mut bytes = B64.decode(id).ok()?;
    if bytes.len() != OCC_LEN
        || !bytes.starts_with(ID_MAGIC)
        || bytes[ID_MAGIC.len()] != KIND_OCCURRENCE
    {
        return None;
    }
    let mut secs = [0u8; 8];
    secs.copy_from_slice(&bytes[ID_LEN..]);
    let start = DateTime::<Utc>::from_timestamp(i64::from_be_bytes(secs), 0)?;
    bytes.truncate(ID_LEN);
    bytes[ID_MAGIC.len()] = KIND_ITEM;
    Some((ItemId(B64.encode(bytes)), start))
}

pub(crate) fn make_id(kind: u8, counter: u64) -> String {
    let mut bytes = Vec::with_capacity(ID_LEN);
    bytes.extend_from_slice(ID_MAGIC);
    bytes.push(kind);
    bytes.extend_from_slice(&counter.to_be_bytes());
    bytes.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    B64.encode(bytes)
}

/// True when `id` is one of ours of the given kind (else the sim answers ErrorInvalidIdMalformed).
pub(crate) fn is_well_formed_id(id: &str, kind: u8) -> bool {
    match B64.decode(id) {
        Ok(b) => b.len() == ID_LEN && b.starts_with(ID_MAGIC) && b[ID_MAGIC.len()] == kind,
        Err(_) => false,
    }
}

pub(crate) fn make_change_key(seq: u64) -> ChangeKey {
    // Real change keys start with CQAAABYAAAA (a PCL header); the seq makes each one unique.
    let mut bytes = vec![0x09, 0, 0, 0, 0x16, 0, 0, 0];
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..4]);
    ChangeKey(B64.encode(bytes))
}

/// The distinguished folders every simulated mailbox has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistinguishedFolder {
    MsgFolderRoot,
    Contacts,
    Calendar,
    DeletedItems,
}

impl DistinguishedFolder {
    pub const ALL: [DistinguishedFolder; 4] = [
        DistinguishedFolder::MsgFolderRoot,
        DistinguishedFolder::Contacts,
        DistinguishedFolder::Calendar,
        DistinguishedFolder::DeletedItems,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DistinguishedFolder::MsgFolderRoot => "msgfolderroot",
            DistinguishedFolder::Contacts => "contacts",
            DistinguishedFolder::Calendar => "calendar",
            DistinguishedFolder::DeletedItems => "deleteditems",
        }
    }

    /// `root` is accepted as an alias of the top of the IPM tree (the sim has only one tree).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "msgfolderroot" | "root" => Some(DistinguishedFolder::MsgFolderRoot),
            "contacts" => Some(DistinguishedFolder::Contacts),
            "calendar" => Some(DistinguishedFolder::Calendar),
            "deleteditems" => Some(DistinguishedFolder::DeletedItems),
            _ => None,
        }
    }

    pub(crate) fn display_name(self) -> &'static str {
        match self {
            DistinguishedFolder::MsgFolderRoot => "Top of Information Store",
            DistinguishedFolder::Contacts => "Contacts",
            DistinguishedFolder::Calendar => "Calendar",
            DistinguishedFolder::DeletedItems => "Deleted Items",
        }
    }

    pub(crate) fn folder_class(self) -> &'static str {
        match self {
            DistinguishedFolder::MsgFolderRoot => "IPF.Note",
            DistinguishedFolder::Contacts => "IPF.Contact",
            DistinguishedFolder::Calendar => "IPF.Appointment",
            DistinguishedFolder::DeletedItems => "IPF.Note",
        }
    }
}

/// Known distinguished property sets and their MAPI GUIDs. Keys are normalised to the GUID,
/// so `DistinguishedPropertySetId="PublicStrings"` and `PropertySetId="00020329-…"` address the
/// same property, as they do in Exchange.
const DISTINGUISHED_SETS: &[(&str, &str)] = &[
    ("PublicStrings", "00020329-0000-0000-c000-000000000046"),
    ("Common", "00062008-0000-0000-c000-000000000046"),
    ("Address", "00062004-0000-0000-c000-000000000046"),
    ("Appointment", "00062002-0000-0000-c000-000000000046"),
    ("Meeting", "6ed8da90-450b-101b-98da-00aa003f1305"),
    ("Task", "00062003-0000-0000-c000-000000000046"),
    ("InternetHeaders", "00020386-0000-0000-c000-000000000046"),
    ("CalendarAssistant", "11000e07-b51b-40d6-af21-caa85edab1d0"),
    ("UnifiedMessaging", "4442858e-a9e3-4e80-b900-317a210cc15b"),
    ("Sharing", "00062040-0000-0000-c000-000000000046"),
];

/// Which property an `ExtendedFieldURI` names, normalised so equal MAPI properties compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtendedPropertyKey {
    /// Lower-case GUID without braces, or `None` for a bare `PropertyTag`.
    pub property_set: Option<String>,
    pub property: PropertyRef,
    /// MAPI type name as in the request (`String`, `Integer`, `StringArray`, …).
    pub property_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyRef {
    Name(String),
    Id(i32),
    Tag(u16),
}

impl ExtendedPropertyKey {
    /// PS_PUBLIC_STRINGS named property, e.g. `public_string("CrmId", "String")`.
    pub fn public_string(name: &str, property_type: &str) -> Self {
        Self {
            property_set: Some(DISTINGUISHED_SETS[0].1.to_string()),
            property: PropertyRef::Name(name.to_string()),
            property_type: property_type.to_string(),
        }
    }

    /// The lnsync idempotency stamp (exchange.md §2.8).
    pub fn crm_id() -> Self {
        Self::public_string("CrmId", "String")
    }

    /// Builds a key from `ExtendedFieldURI` attributes; `None` when the combination is invalid.
    pub fn from_attrs(
        distinguished: Option<&str>,
        set_id: Option<&str>,
        tag: Option<&str>,
        name: Option<&str>,
        id: Option<&str>,
        property_type: Option<&str>,
    ) -> Option<Self> {
        let property_type = property_type?.to_string();
        if let Some(tag) = tag {
            if distinguished.is_some() || set_id.is_some() || name.is_some() || id.is_some() {
                return None;
            }
            let t = tag.trim();
            let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => u16::from_str_radix(hex, 16).ok()?,
                None => t.parse::<u16>().ok()?,
            };
            return Some(Self {
                property_set: None,
                property: PropertyRef::Tag(parsed),
                property_type,
            });
        }
        let set = match (distinguished, set_id) {
            (Some(d), None) => DISTINGUISHED_SETS
                .iter()
                .find(|(n, _)| *n == d)
                .map(|(_, g)| (*g).to_string())?,
            (None, Some(g)) => g
                .trim()
                .trim_start_matches('{')
                .trim_end_matches('}')
                .to_ascii_lowercase(),
            _ => return None,
        };
        let property = match (name, id) {
            (Some(n), None) => PropertyRef::Name(n.to_string()),
            (None, Some(i)) => PropertyRef::Id(parse_int(i)?),
            _ => return None,
        };
        Some(Self {
            property_set: Some(set),
            property,
            property_type,
        })
    }

    /// Attributes for an `ExtendedFieldURI` element, in the form Exchange echoes back.
    pub fn to_attrs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(set) = &self.property_set {
            match DISTINGUISHED_SETS.iter().find(|(_, g)| g == set) {
                Some((n, _)) => out.push(("DistinguishedPropertySetId", (*n).to_string())),
                None => out.push(("PropertySetId", set.clone())),
            }
        }
        match &self.property {
            PropertyRef::Name(n) => out.push(("PropertyName", n.clone())),
            PropertyRef::Id(i) => out.push(("PropertyId", i.to_string())),
            PropertyRef::Tag(t) => out.push(("PropertyTag", format!("0x{t:x}"))),
        }
        out.push(("PropertyType", self.property_type.clone()));
        out
    }

    /// Array types carry `Values`, the others a single `Value`.
    pub fn is_array(&self) -> bool {
        self.property_type.ends_with("Array")
    }
}

impl std::fmt::Display for ExtendedPropertyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attrs = self.to_attrs();
        let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(" "))
    }
}

fn parse_int(s: &str) -> Option<i32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => i64::from_str_radix(h, 16).ok().map(|v| v as i32),
        None => s.parse().ok(),
    }
}

/// Value of an extended property: `Value` or `Values`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtendedValue {
    Single(String),
    Multi(Vec<String>),
}

impl ExtendedValue {
    pub fn as_single(&self) -> Option<&str> {
        match self {
            ExtendedValue::Single(s) => Some(s),
            ExtendedValue::Multi(_) => None,
        }
    }

    pub(crate) fn values(&self) -> Vec<&str> {
        match self {
            ExtendedValue::Single(s) => vec![s.as_str()],
            ExtendedValue::Multi(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// `t:Body`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// `Text` or `HTML`.
    pub body_type: String,
    pub text: String,
}

/// One entry of `PhysicalAddresses`, fields in schema order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhysicalAddress {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country_or_region: Option<String>,
    pub postal_code: Option<String>,
}

/// Sub-fields of a physical address, in schema order.
pub const ADDRESS_PARTS: [&str; 5] = ["Street", "City", "State", "CountryOrRegion", "PostalCode"];

impl PhysicalAddress {
    pub fn part(&self, name: &str) -> Option<&String> {
        match name {
            "Street" => self.street.as_ref(),
            "City" => self.city.as_ref(),
            "State" => self.state.as_ref(),
            "CountryOrRegion" => self.country_or_region.as_ref(),
            "PostalCode" => self.postal_code.as_ref(),
            _ => None,
        }
    }

    pub fn part_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "Street" => Some(&mut self.street),
            "City" => Some(&mut self.city),
            "State" => Some(&mut self.state),
            "CountryOrRegion" => Some(&mut self.country_or_region),
            "PostalCode" => Some(&mut self.postal_code),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        ADDRESS_PARTS.iter().all(|p| self.part(p).is_none())
    }
}

pub const EMAIL_KEYS: [&str; 3] = ["EmailAddress1", "EmailAddress2", "EmailAddress3"];
pub const ADDRESS_KEYS: [&str; 3] = ["Business", "Home", "Other"];
/// types.xsd `PhoneNumberKeyType`, all 23 keys.
pub const PHONE_KEYS: [&str; 23] = [
    "AssistantPhone",
    "BusinessFax",
    "BusinessPhone",
    "BusinessPhone2",
    "Callback",
    "CarPhone",
    "CompanyMainPhone",
    "HomeFax",
    "HomePhone",
    "HomePhone2",
    "Isdn",
    "MobilePhone",
    "OtherFax",
    "OtherTelephone",
    "Pager",
    "PrimaryPhone",
    "RadioPhone",
    "Telex",
    "TtyTddPhone",
    "BusinessMobile",
    "IPPhone",
    "Mms",
    "Msn",
];

/// Contact fields the sim stores as plain strings (xs:string, xs:dateTime or simple enums),
/// in ContactItemType order. Anything not here and not a dictionary is accepted and dropped.
pub const CONTACT_STRING_FIELDS: &[&str] = &[
    "FileAs",
    "FileAsMapping",
    "DisplayName",
    "GivenName",
    "Initials",
    "MiddleName",
    "Nickname",
    "CompanyName",
    "AssistantName",
    "Birthday",
    "BusinessHomePage",
    "ContactSource",
    "Department",
    "Generation",
    "JobTitle",
    "Manager",
    "Mileage",
    "OfficeLocation",
    "PostalAddressIndex",
    "Profession",
    "SpouseName",
    "Surname",
    "WeddingAnniversary",
];

/// `t:Contact` (ContactItemType). Typed fields cover what lnsync maps; other simple string
/// fields live in `other`, keyed by element name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Contact {
    pub file_as: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub initials: Option<String>,
    pub middle_name: Option<String>,
    pub company_name: Option<String>,
    /// Key (`EmailAddress1..3`) → address.
    pub email_addresses: BTreeMap<String, String>,
    /// Key (`Business|Home|Other`) → address.
    pub physical_addresses: BTreeMap<String, PhysicalAddress>,
    /// Key (one of the 23 `PhoneNumberKeyType` values) → number.
    pub phone_numbers: BTreeMap<String, String>,
    pub assistant_name: Option<String>,
    /// xs:dateTime as sent.
    pub birthday: Option<String>,
    pub department: Option<String>,
    pub generation: Option<String>,
    pub job_title: Option<String>,
    pub surname: Option<String>,
    pub other: BTreeMap<String, String>,
}

impl Contact {
    /// Value of a simple string field by its element name.
    pub fn get(&self, name: &str) -> Option<&str> {
        let typed = match name {
            "FileAs" => &self.file_as,
            "DisplayName" => &self.display_name,
            "GivenName" => &self.given_name,
            "Initials" => &self.initials,
            "MiddleName" => &self.middle_name,
            "CompanyName" => &self.company_name,
            "AssistantName" => &self.assistant_name,
            "Birthday" => &self.birthday,
            "Department" => &self.department,
            "Generation" => &self.generation,
            "JobTitle" => &self.job_title,
            "Surname" => &self.surname,
            other => return self.other.get(other).map(String::as_str),
        };
        typed.as_deref()
    }

    /// Sets (or clears, with `None`) a simple string field. False if `name` is not one.
    pub fn set(&mut self, name: &str, value: Option<String>) -> bool {
        let slot = match name {
            "FileAs" => &mut self.file_as,
            "DisplayName" => &mut self.display_name,
            "GivenName" => &mut self.given_name,
            "Initials" => &mut self.initials,
            "MiddleName" => &mut self.middle_name,
            "CompanyName" => &mut self.company_name,
            "AssistantName" => &mut self.assistant_name,
            "Birthday" => &mut self.birthday,
            "Department" => &mut self.department,
            "Generation" => &mut self.generation,
            "JobTitle" => &mut self.job_title,
            "Surname" => &mut self.surname,
            other if CONTACT_STRING_FIELDS.contains(&other) => {
                match value {
                    Some(v) => self.other.insert(other.to_string(), v),
                    None => self.other.remove(other),
                };
                return true;
            }
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// What kind of item this is: a contact or a calendar item (appointments, meetings, series).
// The calendar variant is boxed (it is the larger one); boxing Contact as well would only
// churn every contact code path for a test simulator's memory, hence the allow.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemKind {
    Contact(Contact),
    Calendar(Box<CalendarItem>),
}

impl ItemKind {
    /// Element name in `t:Items` (`Contact`, `CalendarItem`).
    pub fn element_name(&self) -> &'static str {
        match self {
            ItemKind::Contact(_) => "Contact",
            ItemKind::Calendar(_) => "CalendarItem",
        }
    }

    pub fn item_class(&self) -> &'static str {
        match self {
            ItemKind::Contact(_) => "IPM.Contact",
            ItemKind::Calendar(_) => "IPM.Appointment",
        }
    }
}

/// An item: fields common to every ItemType plus the kind-specific part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub subject: Option<String>,
    pub body: Option<Body>,
    #[serde(with = "ext_props_serde")]
    pub extended_properties: BTreeMap<ExtendedPropertyKey, ExtendedValue>,
    pub kind: ItemKind,
}

impl Item {
    pub fn contact(contact: Contact) -> Self {
        Item {
            subject: None,
            body: None,
            extended_properties: BTreeMap::new(),
            kind: ItemKind::Contact(contact),
        }
    }

    /// Builder-style stamp, e.g. `Item::contact(c).with_extended(ExtendedPropertyKey::crm_id(), "crm:contact:1")`.
    pub fn with_extended(mut self, key: ExtendedPropertyKey, value: &str) -> Self {
        self.extended_properties
            .insert(key, ExtendedValue::Single(value.to_string()));
        self
    }

    pub fn extended(&self, key: &ExtendedPropertyKey) -> Option<&ExtendedValue> {
        self.extended_properties.get(key)
    }

    pub fn calendar(cal: CalendarItem) -> Self {
        Item {
            subject: None,
            body: None,
            extended_properties: BTreeMap::new(),
            kind: ItemKind::Calendar(Box::new(cal)),
        }
    }

    pub fn as_contact(&self) -> Option<&Contact> {
        match &self.kind {
            ItemKind::Contact(c) => Some(c),
            ItemKind::Calendar(_) => None,
        }
    }

    pub fn as_contact_mut(&mut self) -> Option<&mut Contact> {
        match &mut self.kind {
            ItemKind::Contact(c) => Some(c),
            ItemKind::Calendar(_) => None,
        }
    }

    pub fn as_calendar(&self) -> Option<&CalendarItem> {
        match &self.kind {
            ItemKind::Calendar(c) => Some(c),
            ItemKind::Contact(_) => None,
        }
    }

    pub fn as_calendar_mut(&mut self) -> Option<&mut CalendarItem> {
        match &mut self.kind {
            ItemKind::Calendar(c) => Some(c),
            ItemKind::Contact(_) => None,
        }
    }
}

/// JSON maps need string keys, so extended properties serialise as a list of key+value.
mod ext_props_serde {
    use super::{ExtendedPropertyKey, ExtendedValue};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize)]
    struct Entry {
        key: ExtendedPropertyKey,
        value: ExtendedValue,
    }

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<ExtendedPropertyKey, ExtendedValue>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let list: Vec<Entry> = map
            .iter()
            .map(|(k, v)| Entry {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<ExtendedPropertyKey, ExtendedValue>, D::Error> {
        let list = Vec::<Entry>::deserialize(d)?;
        Ok(list.into_iter().map(|e| (e.key, e.value)).collect())
    }
}

/// An item as stored in a mailbox.
#[derive(Clone, Debug, Serialize)]
pub struct StoredItem {
    pub id: ItemId,
    pub change_key: ChangeKey,
    pub folder: FolderId,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// Global sequence number of the creation (stable listing order).
    pub created_seq: u64,
    /// Global sequence number of the last change (orders sync changes).
    pub last_seq: u64,
    pub item: Item,
}

/// A folder as stored in a mailbox.
#[derive(Clone, Debug, Serialize)]
pub struct Folder {
    pub id: FolderId,
    pub change_key: ChangeKey,
    pub parent: Option<FolderId>,
    pub display_name: String,
    pub folder_class: String,
    pub distinguished: Option<DistinguishedFolder>,
    pub created_seq: u64,
}

impl Folder {
    /// `t:ContactsFolder`, `t:CalendarFolder` or `t:Folder`, as Exchange picks by class.
    pub fn element_name(&self) -> &'static str {
        if self.folder_class.starts_with("IPF.Contact") {
            "ContactsFolder"
        } else if self.folder_class.starts_with("IPF.Appointment") {
            "CalendarFolder"
        } else {
            "Folder"
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_recognised() {
        let id = make_id(KIND_ITEM, 7);
        assert!(id.starts_with("AAMk"));
        assert!(is_well_formed_id(&id, KIND_ITEM));
        assert!(!is_well_formed_id(&id, KIND_FOLDER));
        assert!(!is_well_formed_id("AAMkAGI2ItemA", KIND_ITEM));
        assert!(make_change_key(1).0.starts_with("CQAAABYAAAA"));
    }

    #[test]
    fn public_strings_equals_its_guid() {
        let a = ExtendedPropertyKey::from_attrs(
            Some("PublicStrings"),
            None,
            None,
            Some("CrmId"),
            None,
            Some("String"),
        );
        let b = ExtendedPropertyKey::from_attrs(
            None,
            Some("{00020329-0000-0000-C000-000000000046}"),
            None,
            Some("CrmId"),
            None,
            Some("String"),
        );
        assert_eq!(a, b);
        assert_eq!(a, Some(ExtendedPropertyKey::crm_id()));
        let tag =
            ExtendedPropertyKey::from_attrs(None, None, Some("0x3A45"), None, None, Some("String"));
        assert_eq!(tag.map(|k| k.property), Some(PropertyRef::Tag(0x3a45)));
    }
}
