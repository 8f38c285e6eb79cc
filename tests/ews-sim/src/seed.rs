//! Seed documents (JSON): credentials, mailboxes, folders and contacts to start from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Credential;
use crate::error::SimError;
use crate::model::{
    Body, Contact, DistinguishedFolder, ExtendedPropertyKey, ExtendedValue, FolderId, Item, ItemId,
};
use crate::state::SimState;
use crate::store::Mailbox;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    /// Replaces the Basic-auth accounts when given.
    pub credentials: Option<Vec<Credential>>,
    pub bearer_tokens: Option<Vec<String>>,
    pub allowed_impersonation: Option<Vec<String>>,
    pub strict_anchor: Option<bool>,
    pub enforce_backoff: Option<bool>,
    pub mailboxes: Vec<SeedMailbox>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedMailbox {
    pub smtp: String,
    #[serde(default)]
    pub folders: Vec<SeedFolder>,
    #[serde(default)]
    pub contacts: Vec<SeedContact>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFolder {
    pub name: String,
    /// Distinguished name (`contacts`, `msgfolderroot`…) or the display name of a folder.
    #[serde(default = "default_parent")]
    pub parent: String,
    #[serde(default = "default_class")]
    pub class: String,
}

fn default_parent() -> String {
    "contacts".into()
}

fn default_class() -> String {
    "IPF.Contact".into()
}

/// A contact plus the item-level fields; contact fields use snake_case names
/// (`given_name`, `email_addresses: {"EmailAddress1": …}`, …).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedContact {
    /// Distinguished name or folder display name; default `contacts`.
    #[serde(default = "default_parent")]
    pub folder: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub extended_properties: Vec<SeedExtendedProperty>,
    #[serde(flatten)]
    pub contact: Contact,
}

/// An extended property in the attribute vocabulary of `t:ExtendedFieldURI`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedExtendedProperty {
    pub distinguished_property_set_id: Option<String>,
    pub property_set_id: Option<String>,
    pub property_tag: Option<String>,
    pub property_name: Option<String>,
    pub property_id: Option<String>,
    pub property_type: String,
    pub value: Option<String>,
    pub values: Option<Vec<String>>,
}

impl SeedContact {
    pub fn to_item(&self) -> Result<Item, SimError> {
        let mut item = Item::contact(self.contact.clone());
        item.subject = self.subject.clone();
        item.body = self.body.as_ref().map(|b| Body {
            body_type: "Text".into(),
            text: b.clone(),
        });
        for p in &self.extended_properties {
            let key = ExtendedPropertyKey::from_attrs(
                p.distinguished_property_set_id.as_deref(),
                p.property_set_id.as_deref(),
                p.property_tag.as_deref(),
                p.property_name.as_deref(),
                p.property_id.as_deref(),
                Some(&p.property_type),
            )
            .ok_or_else(|| SimError::InvalidSeed(format!("invalid extended property {p:?}")))?;
            let value = match (&p.value, &p.values) {
                (Some(v), None) => ExtendedValue::Single(v.clone()),
                (None, Some(vs)) => ExtendedValue::Multi(vs.clone()),
                _ => {
                    return Err(SimError::InvalidSeed(
                        "extended property needs value or values".into(),
                    ));
                }
            };
            item.extended_properties.insert(key, value);
        }
        Ok(item)
    }
}

/// Ids of what a seed created, per mailbox.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SeedReport {
    pub mailboxes: BTreeMap<String, SeededMailbox>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SeededMailbox {
    /// Folder display name → id, for the folders in the seed.
    pub folders: BTreeMap<String, FolderId>,
    /// Created contact ids, in seed order.
    pub contacts: Vec<ItemId>,
}

pub(crate) fn resolve_named(mb: &Mailbox, name: &str) -> Option<FolderId> {
    match DistinguishedFolder::parse(name) {
        Some(d) => mb.folder_id(d).cloned(),
        None => mb.find_folder_by_name(name).map(|f| f.id.clone()),
    }
}

/// Applies a seed: configuration first, then mailboxes (existing ones and folders are reused).
pub fn apply(st: &mut SimState, seed: &Seed) -> Result<SeedReport, SimError> {
    if let Some(c) = &seed.credentials {
        st.config.credentials = c.clone();
    }
    if let Some(t) = &seed.bearer_tokens {
        st.config.bearer_tokens = t.clone();
    }
    if seed.allowed_impersonation.is_some() {
        st.config.allowed_impersonation = seed.allowed_impersonation.clone();
    }
    if let Some(s) = seed.strict_anchor {
        st.config.strict_anchor = s;
    }
    if let Some(e) = seed.enforce_backoff {
        st.config.enforce_backoff = e;
    }
    let mut report = SeedReport::default();
    for m in &seed.mailboxes {
        if !st.store.has_mailbox(&m.smtp) {
            st.store.add_mailbox(&m.smtp)?;
        }
        let (mb, seq) = st.store.mailbox_mut(&m.smtp)?;
        let mut out = SeededMailbox::default();
        for f in &m.folders {
            let parent = resolve_named(mb, &f.parent).ok_or_else(|| {
                SimError::InvalidSeed(format!("unknown parent folder {:?}", f.parent))
            })?;
            let existing = mb
                .child_folders(&parent)
                .into_iter()
                .find(|c| c.display_name.eq_ignore_ascii_case(&f.name))
                .map(|c| c.id.clone());
            let id = match existing {
                Some(id) => id,
                None => mb.create_folder(seq, &parent, &f.name, &f.class)?,
            };
            out.folders.insert(f.name.clone(), id);
        }
        for c in &m.contacts {
            let folder = resolve_named(mb, &c.folder)
                .ok_or_else(|| SimError::InvalidSeed(format!("unknown folder {:?}", c.folder)))?;
            let (id, _) = mb.create_item(seq, &folder, c.to_item()?);
            out.contacts.push(id);
        }
        report.mailboxes.insert(m.smtp.clone(), out);
    }
    Ok(report)
}
