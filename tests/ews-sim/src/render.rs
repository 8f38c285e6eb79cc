//! Property paths, response shapes and XML rendering of items and folders in schema order.

use std::collections::HashSet;

use crate::model::{
    ADDRESS_PARTS, CONTACT_STRING_FIELDS, ExtendedPropertyKey, ExtendedValue, Folder, Item,
    ItemKind, StoredItem,
};
use crate::store::Mailbox;
use crate::xml::{Element, esc, text_el};

/// `t:FieldURI`, `t:IndexedFieldURI` or `t:ExtendedFieldURI`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldPath {
    Field(String),
    Indexed { uri: String, index: String },
    Extended(ExtendedPropertyKey),
}

impl FieldPath {
    /// Reads a path element; `Ok(None)` when `el` is not a path element at all.
    pub fn parse(el: &Element) -> Result<Option<FieldPath>, String> {
        match el.name.as_str() {
            "FieldURI" => el
                .attr("FieldURI")
                .map(|u| Some(FieldPath::Field(u.to_string())))
                .ok_or_else(|| "FieldURI without FieldURI attribute".to_string()),
            "IndexedFieldURI" => match (el.attr("FieldURI"), el.attr("FieldIndex")) {
                (Some(u), Some(i)) => Ok(Some(FieldPath::Indexed {
                    uri: u.to_string(),
                    index: i.to_string(),
                })),
                _ => Err("IndexedFieldURI needs FieldURI and FieldIndex".into()),
            },
            "ExtendedFieldURI" => ExtendedPropertyKey::from_attrs(
                el.attr("DistinguishedPropertySetId"),
                el.attr("PropertySetId"),
                el.attr("PropertyTag"),
                el.attr("PropertyName"),
                el.attr("PropertyId"),
                el.attr("PropertyType"),
            )
            .map(|k| Some(FieldPath::Extended(k)))
            .ok_or_else(|| "invalid ExtendedFieldURI attribute combination".to_string()),
            _ => Ok(None),
        }
    }

    /// The first path element among `el`'s children.
    pub fn first_in(el: &Element) -> Result<Option<FieldPath>, String> {
        for c in &el.children {
            if let Some(p) = FieldPath::parse(c)? {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseShape {
    IdOnly,
    Default,
    AllProperties,
}

/// ItemShape / FolderShape: a base shape plus additional properties.
#[derive(Clone, Debug)]
pub struct Shape {
    pub base: BaseShape,
    pub fields: HashSet<String>,
    pub indexed: Vec<(String, String)>,
    pub extended: Vec<ExtendedPropertyKey>,
    /// The request's RequestServerVersion is Exchange2013 or later (`IsOrganizer` exists).
    pub exchange2013: bool,
}

impl Shape {
    pub fn id_only() -> Self {
        Shape {
            base: BaseShape::IdOnly,
            fields: HashSet::new(),
            indexed: Vec::new(),
            extended: Vec::new(),
            exchange2013: false,
        }
    }

    pub fn parse(el: &Element) -> Result<Shape, String> {
        let base = match el.child_text("BaseShape").map(str::trim) {
            Some("IdOnly") => BaseShape::IdOnly,
            Some("Default") => BaseShape::Default,
            Some("AllProperties") => BaseShape::AllProperties,
            Some(other) => return Err(format!("invalid BaseShape '{other}'")),
            None => return Err("BaseShape is required".into()),
        };
        let mut shape = Shape {
            base,
            ..Shape::id_only()
        };
        if let Some(ap) = el.child("AdditionalProperties") {
            for c in &ap.children {
                match FieldPath::parse(c)? {
                    Some(FieldPath::Field(u)) => {
                        shape.fields.insert(u);
                    }
                    Some(FieldPath::Indexed { uri, index }) => shape.indexed.push((uri, index)),
                    Some(FieldPath::Extended(k)) => shape.extended.push(k),
                    None => return Err(format!("unexpected {} in AdditionalProperties", c.name)),
                }
            }
        }
        Ok(shape)
    }

    /// Properties in the Default shape (and AllProperties), or asked for explicitly.
    pub(crate) fn default_or(&self, uri: &str) -> bool {
        self.base != BaseShape::IdOnly || self.fields.contains(uri)
    }

    /// Properties only in AllProperties, or asked for explicitly.
    pub(crate) fn all_or(&self, uri: &str) -> bool {
        self.base == BaseShape::AllProperties || self.fields.contains(uri)
    }

    fn indexed_keys(&self, uri: &str) -> Vec<&str> {
        self.indexed
            .iter()
            .filter(|(u, _)| u == uri)
            .map(|(_, i)| i.as_str())
            .collect()
    }
}

fn attrs_str(attrs: &[(&str, String)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!(" {k}=\"{}\"", esc(v)))
        .collect()
}

pub fn item_id_el(out: &mut String, tag: &str, id: &str, change_key: Option<&str>) {
    out.push_str(&format!("<t:{tag} Id=\"{}\"", esc(id)));
    if let Some(ck) = change_key {
        out.push_str(&format!(" ChangeKey=\"{}\"", esc(ck)));
    }
    out.push_str("/>");
}

pub fn extended_property_el(out: &mut String, key: &ExtendedPropertyKey, value: &ExtendedValue) {
    out.push_str("<t:ExtendedProperty>");
    out.push_str(&format!(
        "<t:ExtendedFieldURI{}/>",
        attrs_str(&key.to_attrs())
    ));
    match value {
        ExtendedValue::Single(v) => text_el(out, "t:Value", v),
        ExtendedValue::Multi(vs) => {
            out.push_str("<t:Values>");
            for v in vs {
                text_el(out, "t:Value", v);
            }
            out.push_str("</t:Values>");
        }
    }
    out.push_str("</t:ExtendedProperty>");
}

/// Renders `<t:Contact>` or `<t:CalendarItem>` in schema order.
pub fn render_item(out: &mut String, st: &StoredItem, shape: &Shape) {
    let tag = st.item.kind.element_name();
    out.push_str(&format!("<t:{tag}>"));
    item_id_el(out, "ItemId", st.id.as_str(), Some(st.change_key.as_str()));
    if shape.all_or("item:ParentFolderId") {
        item_id_el(out, "ParentFolderId", st.folder.as_str(), None);
    }
    if shape.default_or("item:ItemClass") {
        text_el(out, "t:ItemClass", st.item.kind.item_class());
    }
    let item: &Item = &st.item;
    let cal = item.as_calendar();
    if shape.default_or("item:Subject")
        && let Some(s) = &item.subject
    {
        text_el(out, "t:Subject", s);
    }
    if let Some(c) = cal
        && shape.all_or("item:Sensitivity")
    {
        text_el(out, "t:Sensitivity", &c.sensitivity);
    }
    if shape.all_or("item:Body")
        && let Some(b) = &item.body
    {
        out.push_str(&format!("<t:Body BodyType=\"{}\">", esc(&b.body_type)));
        out.push_str(&esc(&b.text));
        out.push_str("</t:Body>");
    }
    if let Some(c) = cal
        && shape.all_or("item:Categories")
        && !c.categories.is_empty()
    {
        out.push_str("<t:Categories>");
        for cat in &c.categories {
            text_el(out, "t:String", cat);
        }
        out.push_str("</t:Categories>");
    }
    if shape.all_or("item:DateTimeCreated") {
        text_el(out, "t:DateTimeCreated", &rfc3339(st.created));
    }
    if let Some(c) = cal {
        if shape.all_or("item:ReminderIsSet") {
            text_el(
                out,
                "t:ReminderIsSet",
                if c.reminder_is_set { "true" } else { "false" },
            );
        }
        if shape.all_or("item:ReminderMinutesBeforeStart") {
            text_el(
                out,
                "t:ReminderMinutesBeforeStart",
                &c.reminder_minutes_before_start.to_string(),
            );
        }
    }
    // Extended properties never come with a base shape, only when named (as in Exchange).
    for key in &shape.extended {
        if let Some(v) = item.extended_properties.get(key) {
            extended_property_el(out, key, v);
        }
    }
    if shape.all_or("item:LastModifiedTime") {
        text_el(out, "t:LastModifiedTime", &rfc3339(st.modified));
    }
    match &item.kind {
        ItemKind::Contact(c) => render_contact_fields(out, c, shape),
        ItemKind::Calendar(c) => {
            let master = c.instance.as_ref().map_or(&st.id, |i| &i.master_id);
            crate::calendar_xml::render_calendar_fields(out, master, c, shape)
        }
    }
    out.push_str(&format!("</t:{tag}>"));
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn render_contact_fields(out: &mut String, c: &crate::model::Contact, shape: &Shape) {
    // Walk the XSD order; dictionaries sit between CompanyName and AssistantName.
    for name in crate::schema_order::CONTACT_ORDER {
        match *name {
            "EmailAddresses" => {
                let whole = shape.default_or("contacts:EmailAddresses");
                let keys = shape.indexed_keys("contacts:EmailAddress");
                let entries: Vec<(&String, &String)> = c
                    .email_addresses
                    .iter()
                    .filter(|(k, _)| whole || keys.contains(&k.as_str()))
                    .collect();
                if !entries.is_empty() {
                    out.push_str("<t:EmailAddresses>");
                    for (k, v) in entries {
                        out.push_str(&format!("<t:Entry Key=\"{}\">{}</t:Entry>", esc(k), esc(v)));
                    }
                    out.push_str("</t:EmailAddresses>");
                }
            }
            "PhysicalAddresses" => {
                let whole = shape.default_or("contacts:PhysicalAddresses");
                let mut body = String::new();
                for (key, addr) in &c.physical_addresses {
                    let mut entry = String::new();
                    for part in ADDRESS_PARTS {
                        let uri = format!("contacts:PhysicalAddress:{part}");
                        let wanted =
                            whole || shape.indexed.iter().any(|(u, i)| *u == uri && i == key);
                        if let (true, Some(v)) = (wanted, addr.part(part)) {
                            text_el(&mut entry, &format!("t:{part}"), v);
                        }
                    }
                    if !entry.is_empty() {
                        body.push_str(&format!("<t:Entry Key=\"{}\">{entry}</t:Entry>", esc(key)));
                    }
                }
                if !body.is_empty() {
                    out.push_str(&format!(
                        "<t:PhysicalAddresses>{body}</t:PhysicalAddresses>"
                    ));
                }
            }
            "PhoneNumbers" => {
                let whole = shape.default_or("contacts:PhoneNumbers");
                let keys = shape.indexed_keys("contacts:PhoneNumber");
                let entries: Vec<(&String, &String)> = c
                    .phone_numbers
                    .iter()
                    .filter(|(k, _)| whole || keys.contains(&k.as_str()))
                    .collect();
                if !entries.is_empty() {
                    out.push_str("<t:PhoneNumbers>");
                    for (k, v) in entries {
                        out.push_str(&format!("<t:Entry Key=\"{}\">{}</t:Entry>", esc(k), esc(v)));
                    }
                    out.push_str("</t:PhoneNumbers>");
                }
            }
            n if CONTACT_STRING_FIELDS.contains(&n) => {
                if shape.default_or(&format!("contacts:{n}"))
                    && let Some(v) = c.get(n)
                {
                    text_el(out, &format!("t:{n}"), v);
                }
            }
            _ => {}
        }
    }
}

/// Renders a folder element (`t:ContactsFolder`, `t:CalendarFolder` or `t:Folder`).
pub fn render_folder(out: &mut String, f: &Folder, mb: &Mailbox, shape: &Shape) {
    let tag = f.element_name();
    out.push_str(&format!("<t:{tag}>"));
    item_id_el(out, "FolderId", f.id.as_str(), Some(f.change_key.as_str()));
    if shape.all_or("folder:ParentFolderId")
        && let Some(p) = &f.parent
    {
        item_id_el(out, "ParentFolderId", p.as_str(), None);
    }
    if shape.all_or("folder:FolderClass") {
        text_el(out, "t:FolderClass", &f.folder_class);
    }
    if shape.default_or("folder:DisplayName") {
        text_el(out, "t:DisplayName", &f.display_name);
    }
    if shape.default_or("folder:TotalCount") {
        text_el(out, "t:TotalCount", &mb.items_in(&f.id).len().to_string());
    }
    if shape.default_or("folder:ChildFolderCount") {
        text_el(
            out,
            "t:ChildFolderCount",
            &mb.child_folders(&f.id).len().to_string(),
        );
    }
    // Only FolderType has UnreadCount; contacts never count as unread.
    if tag == "Folder" && shape.default_or("folder:UnreadCount") {
        text_el(out, "t:UnreadCount", "0");
    }
    out.push_str(&format!("</t:{tag}>"));
}

/// Values a path has on an item, for restrictions (empty = property absent).
pub fn item_values(item: &StoredItem, path: &FieldPath) -> Vec<String> {
    let contact = item.item.as_contact();
    match path {
        FieldPath::Field(uri) => match uri.as_str() {
            "item:Subject" => item.item.subject.iter().cloned().collect(),
            "item:Body" => item.item.body.iter().map(|b| b.text.clone()).collect(),
            "item:ItemClass" => vec![item.item.kind.item_class().to_string()],
            "item:ItemId" => vec![item.id.0.clone()],
            "item:ParentFolderId" => vec![item.folder.0.clone()],
            "item:DateTimeCreated" => vec![rfc3339(item.created)],
            "item:LastModifiedTime" => vec![rfc3339(item.modified)],
            "item:Sensitivity" => item
                .item
                .as_calendar()
                .map(|c| vec![c.sensitivity.clone()])
                .unwrap_or_default(),
            "item:Categories" => item
                .item
                .as_calendar()
                .map(|c| c.categories.clone())
                .unwrap_or_default(),
            u if u.starts_with("calendar:") => match item.item.as_calendar() {
                Some(c) => crate::calendar_xml::calendar_values(c, &u["calendar:".len()..]),
                None => Vec::new(),
            },
            u => match (u.strip_prefix("contacts:"), contact) {
                (Some(name), Some(c)) => {
                    c.get(name).map(|s| vec![s.to_string()]).unwrap_or_default()
                }
                _ => Vec::new(),
            },
        },
        FieldPath::Indexed { uri, index } => {
            let Some(c) = contact else { return Vec::new() };
            match uri.as_str() {
                "contacts:EmailAddress" => {
                    c.email_addresses.get(index).cloned().into_iter().collect()
                }
                "contacts:PhoneNumber" => c.phone_numbers.get(index).cloned().into_iter().collect(),
                u => match u.strip_prefix("contacts:PhysicalAddress:") {
                    Some(part) => c
                        .physical_addresses
                        .get(index)
                        .and_then(|a| a.part(part).cloned())
                        .into_iter()
                        .collect(),
                    None => Vec::new(),
                },
            }
        }
        FieldPath::Extended(key) => item
            .item
            .extended_properties
            .get(key)
            .map(|v| v.values().into_iter().map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

/// Values a path has on a folder, for FindFolder restrictions.
pub fn folder_values(f: &Folder, path: &FieldPath) -> Vec<String> {
    match path {
        FieldPath::Field(uri) => match uri.as_str() {
            "folder:DisplayName" => vec![f.display_name.clone()],
            "folder:FolderClass" => vec![f.folder_class.clone()],
            "folder:FolderId" => vec![f.id.0.clone()],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
