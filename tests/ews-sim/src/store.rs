//! Mailboxes, folders and items, with a global change sequence.
//!
//! Every mutation takes a fresh sequence number; `StoredItem::last_seq` and `deleted_seq`
//! order the changes that SyncFolderItems reports, and ChangeKeys are derived from it, so a
//! ChangeKey is unique per modification by construction. Every mutation also journals its
//! notification event (`events`) in the mailbox method that performs it, so EWS operations,
//! meeting traffic and user actions cannot differ in what push subscribers hear.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Timelike, Utc};

use crate::error::SimError;
use crate::events::{EventJournal, EventKind, EventObject, ParentRef};
use crate::model::{
    ChangeKey, DistinguishedFolder, Folder, FolderId, Item, ItemId, KIND_FOLDER, KIND_ITEM,
    StoredItem, is_well_formed_id, make_change_key, make_id,
};

/// A reference to a folder as a request names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderRef {
    Distinguished(String),
    Id(String),
}

impl From<DistinguishedFolder> for FolderRef {
    fn from(d: DistinguishedFolder) -> Self {
        FolderRef::Distinguished(d.as_str().to_string())
    }
}

impl From<&FolderId> for FolderRef {
    fn from(f: &FolderId) -> Self {
        FolderRef::Id(f.0.clone())
    }
}

/// How DeleteItem disposes of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteType {
    HardDelete,
    SoftDelete,
    MoveToDeletedItems,
}

impl DeleteType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HardDelete" => Some(DeleteType::HardDelete),
            "SoftDelete" => Some(DeleteType::SoftDelete),
            "MoveToDeletedItems" => Some(DeleteType::MoveToDeletedItems),
            _ => None,
        }
    }
}

/// Monotonic counter shared by all mailboxes (sequence numbers and id counters), plus the
/// simulator clock: it travels with every mutation, so timestamps (created, modified,
/// response times) follow a clock tests can move.
#[derive(Debug, Default)]
pub struct Seq {
    counter: u64,
    /// Added to the wall clock (`SimHandle::advance_clock`).
    pub clock_offset: chrono::TimeDelta,
}

impl Seq {
    pub fn bump(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub fn current(&self) -> u64 {
        self.counter
    }

    /// The simulator's "now": whole seconds, as Exchange stores times.
    pub fn now(&self) -> chrono::DateTime<Utc> {
        let t = Utc::now() + self.clock_offset;
        t.with_nanosecond(0).unwrap_or(t)
    }

    /// The simulator's "now" to the sub-second (for delivery bookkeeping, where retries are
    /// milliseconds apart under a scaled push time).
    pub fn now_precise(&self) -> chrono::DateTime<Utc> {
        Utc::now() + self.clock_offset
    }
}

#[derive(Debug)]
pub struct Mailbox {
    pub smtp: String,
    pub folders: BTreeMap<FolderId, Folder>,
    pub distinguished: HashMap<DistinguishedFolder, FolderId>,
    pub items: HashMap<ItemId, StoredItem>,
    /// When each item left its folder (delete or move), for ordering sync Delete changes.
    pub deleted_seq: HashMap<ItemId, u64>,
    /// Folders that existed and were deleted: SyncFolderItems on them → ErrorSyncFolderNotFound.
    pub deleted_folders: HashSet<FolderId>,
    /// Every change, with its watermark: what push subscriptions deliver (`events`).
    pub events: EventJournal,
}

impl Mailbox {
    pub fn new(smtp: &str, seq: &mut Seq) -> Self {
        let mut mb = Mailbox {
            smtp: smtp.to_string(),
            folders: BTreeMap::new(),
            distinguished: HashMap::new(),
            items: HashMap::new(),
            deleted_seq: HashMap::new(),
            deleted_folders: HashSet::new(),
            events: EventJournal::default(),
        };
        let mut root = None;
        for d in DistinguishedFolder::ALL {
            let s = seq.bump();
            let id = FolderId(make_id(KIND_FOLDER, s));
            mb.folders.insert(
                id.clone(),
                Folder {
                    id: id.clone(),
                    change_key: make_change_key(s),
                    parent: root.clone(),
                    display_name: d.display_name().to_string(),
                    folder_class: d.folder_class().to_string(),
                    distinguished: Some(d),
                    created_seq: s,
                },
            );
            if d == DistinguishedFolder::MsgFolderRoot {
                root = Some(id.clone());
            }
            mb.distinguished.insert(d, id);
        }
        mb
    }

    /// Resolves a folder reference; the error is the EWS response code.
    pub fn resolve(&self, r: &FolderRef) -> Result<FolderId, &'static str> {
        match r {
            FolderRef::Distinguished(name) => DistinguishedFolder::parse(name)
                .and_then(|d| self.distinguished.get(&d).cloned())
                .ok_or("ErrorFolderNotFound"),
            FolderRef::Id(id) => {
                if !is_well_formed_id(id, KIND_FOLDER) {
                    return Err("ErrorInvalidIdMalformed");
                }
                let fid = FolderId(id.clone());
                if self.folders.contains_key(&fid) {
                    Ok(fid)
                } else {
                    Err("ErrorFolderNotFound")
                }
            }
        }
    }

    pub fn folder_id(&self, d: DistinguishedFolder) -> Option<&FolderId> {
        self.distinguished.get(&d)
    }

    pub fn child_folders(&self, parent: &FolderId) -> Vec<&Folder> {
        let mut v: Vec<&Folder> = self
            .folders
            .values()
            .filter(|f| f.parent.as_ref() == Some(parent))
            .collect();
        v.sort_by_key(|f| f.created_seq);
        v
    }

    /// Descendants in depth-first order (for Deep traversal).
    pub fn descendant_folders(&self, parent: &FolderId) -> Vec<&Folder> {
        let mut out = Vec::new();
        for f in self.child_folders(parent) {
            out.push(f);
            out.extend(self.descendant_folders(&f.id));
        }
        out
    }

    pub fn items_in(&self, folder: &FolderId) -> Vec<&StoredItem> {
        let mut v: Vec<&StoredItem> = self
            .items
            .values()
            .filter(|i| &i.folder == folder)
            .collect();
        v.sort_by_key(|i| i.created_seq);
        v
    }

    pub fn find_folder_by_name(&self, name: &str) -> Option<&Folder> {
        let mut v: Vec<&Folder> = self
            .folders
            .values()
            .filter(|f| f.display_name.eq_ignore_ascii_case(name))
            .collect();
        v.sort_by_key(|f| f.created_seq);
        v.into_iter().next()
    }

    pub fn create_folder(
        &mut self,
        seq: &mut Seq,
        parent: &FolderId,
        name: &str,
        class: &str,
    ) -> Result<FolderId, SimError> {
        if !self.folders.contains_key(parent) {
            return Err(SimError::NoSuchFolder(parent.0.clone()));
        }
        // Exchange compares folder names case-insensitively.
        if self
            .child_folders(parent)
            .iter()
            .any(|f| f.display_name.eq_ignore_ascii_case(name))
        {
            return Err(SimError::FolderExists(name.to_string()));
        }
        let s = seq.bump();
        let id = FolderId(make_id(KIND_FOLDER, s));
        let change_key = make_change_key(s);
        self.folders.insert(
            id.clone(),
            Folder {
                id: id.clone(),
                change_key: change_key.clone(),
                parent: Some(parent.clone()),
                display_name: name.to_string(),
                folder_class: class.to_string(),
                distinguished: None,
                created_seq: s,
            },
        );
        let object = EventObject::Folder {
            id: id.clone(),
            change_key,
        };
        self.journal(seq, EventKind::CreatedEvent, object, parent, None);
        Ok(id)
    }

    /// Deletes a user folder and everything below it (distinguished folders cannot go).
    pub fn delete_folder(&mut self, seq: &mut Seq, id: &FolderId) -> Result<(), SimError> {
        let folder = self
            .folders
            .get(id)
            .ok_or_else(|| SimError::NoSuchFolder(id.0.clone()))?;
        if folder.distinguished.is_some() {
            return Err(SimError::NoSuchFolder(format!(
                "{} is distinguished and cannot be deleted",
                id.0
            )));
        }
        let object = EventObject::Folder {
            id: id.clone(),
            change_key: folder.change_key.clone(),
        };
        let parent = folder.parent.clone();
        let mut doomed: Vec<FolderId> = vec![id.clone()];
        doomed.extend(
            self.descendant_folders(id)
                .into_iter()
                .map(|f| f.id.clone()),
        );
        for f in &doomed {
            self.folders.remove(f);
            self.deleted_folders.insert(f.clone());
            let items: Vec<ItemId> = self
                .items
                .values()
                .filter(|i| &i.folder == f)
                .map(|i| i.id.clone())
                .collect();
            for i in items {
                self.items.remove(&i);
                self.deleted_seq.insert(i, seq.bump());
            }
        }
        // One event for the folder: Exchange does not report the items that went with it.
        if let Some(parent) = parent {
            self.journal(seq, EventKind::DeletedEvent, object, &parent, None);
        }
        Ok(())
    }

    pub fn create_item(
        &mut self,
        seq: &mut Seq,
        folder: &FolderId,
        item: Item,
    ) -> (ItemId, ChangeKey) {
        let (id, ck) = self.insert_item(seq, folder, item);
        let object = EventObject::Item {
            id: id.clone(),
            change_key: ck.clone(),
        };
        self.journal(seq, EventKind::CreatedEvent, object, folder, None);
        self.journal_folder_modified(seq, folder);
        (id, ck)
    }

    /// Stores a new item without journalling (callers journal what it means: create or move).
    fn insert_item(&mut self, seq: &mut Seq, folder: &FolderId, item: Item) -> (ItemId, ChangeKey) {
        let s = seq.bump();
        let id = ItemId(make_id(KIND_ITEM, s));
        let ck = make_change_key(s);
        let now = seq.now();
        self.items.insert(
            id.clone(),
            StoredItem {
                id: id.clone(),
                change_key: ck.clone(),
                folder: folder.clone(),
                created: now,
                modified: now,
                created_seq: s,
                last_seq: s,
                item,
            },
        );
        (id, ck)
    }

    /// Replaces an item's content, bumping its ChangeKey and journal position.
    pub fn commit_update(&mut self, seq: &mut Seq, id: &ItemId, item: Item) -> Option<ChangeKey> {
        let stored = self.items.get_mut(id)?;
        let s = seq.bump();
        stored.item = item;
        stored.last_seq = s;
        stored.change_key = make_change_key(s);
        stored.modified = seq.now();
        let change_key = stored.change_key.clone();
        let folder = stored.folder.clone();
        let object = EventObject::Item {
            id: id.clone(),
            change_key: change_key.clone(),
        };
        self.journal(seq, EventKind::ModifiedEvent, object, &folder, None);
        Some(change_key)
    }

    /// Deletes or moves an item. A move gives the item a new id, as EWS does.
    pub fn delete_item(
        &mut self,
        seq: &mut Seq,
        id: &ItemId,
        how: DeleteType,
    ) -> Result<Option<ItemId>, SimError> {
        let stored = self
            .items
            .remove(id)
            .ok_or_else(|| SimError::NoSuchItem(id.0.clone()))?;
        self.deleted_seq.insert(id.clone(), seq.bump());
        let deleted_items = self
            .distinguished
            .get(&DistinguishedFolder::DeletedItems)
            .cloned();
        let old = EventObject::Item {
            id: stored.id.clone(),
            change_key: stored.change_key.clone(),
        };
        match (how, deleted_items) {
            (DeleteType::MoveToDeletedItems, Some(target)) if stored.folder != target => {
                // A move, not a delete: the item reappears under a new id, and a subscription
                // on either folder hears one MovedEvent carrying both ids.
                let (new_id, new_ck) = self.insert_item(seq, &target, stored.item);
                let object = EventObject::Item {
                    id: new_id.clone(),
                    change_key: new_ck,
                };
                let from = self.parent_ref(&stored.folder);
                self.journal(
                    seq,
                    EventKind::MovedEvent,
                    object,
                    &target,
                    Some((old, from)),
                );
                self.journal_folder_modified(seq, &stored.folder);
                self.journal_folder_modified(seq, &target);
                Ok(Some(new_id))
            }
            _ => {
                self.journal(seq, EventKind::DeletedEvent, old, &stored.folder, None);
                self.journal_folder_modified(seq, &stored.folder);
                Ok(None)
            }
        }
    }

    fn parent_ref(&self, folder: &FolderId) -> ParentRef {
        ParentRef {
            id: folder.clone(),
            change_key: self.folders.get(folder).map(|f| f.change_key.clone()),
        }
    }

    /// Appends to the event table, stamped with the simulator clock.
    fn journal(
        &mut self,
        seq: &Seq,
        kind: EventKind,
        object: EventObject,
        parent: &FolderId,
        old: Option<(EventObject, ParentRef)>,
    ) {
        let parent = self.parent_ref(parent);
        self.events.record(seq.now(), kind, object, parent, old);
    }

    /// Exchange also reports the folder whose content count changed (a ModifiedEvent with a
    /// FolderId, in the folder's parent). Journalled always; delivered only when
    /// `SimConfig::push_folder_events` is on.
    fn journal_folder_modified(&mut self, seq: &Seq, folder: &FolderId) {
        let Some(f) = self.folders.get(folder) else {
            return;
        };
        let Some(parent) = f.parent.clone() else {
            return;
        };
        let object = EventObject::Folder {
            id: f.id.clone(),
            change_key: f.change_key.clone(),
        };
        self.journal(seq, EventKind::ModifiedEvent, object, &parent, None);
    }
}

/// All mailboxes, keyed by lower-cased primary SMTP address.
#[derive(Debug, Default)]
pub struct Store {
    pub mailboxes: BTreeMap<String, Mailbox>,
    pub seq: Seq,
}

impl Store {
    pub fn key(smtp: &str) -> String {
        smtp.trim().to_ascii_lowercase()
    }

    pub fn add_mailbox(&mut self, smtp: &str) -> Result<(), SimError> {
        let key = Self::key(smtp);
        if self.mailboxes.contains_key(&key) {
            return Err(SimError::MailboxExists(smtp.to_string()));
        }
        let mb = Mailbox::new(smtp.trim(), &mut self.seq);
        self.mailboxes.insert(key, mb);
        Ok(())
    }

    pub fn has_mailbox(&self, smtp: &str) -> bool {
        self.mailboxes.contains_key(&Self::key(smtp))
    }

    pub fn mailbox(&self, smtp: &str) -> Result<&Mailbox, SimError> {
        self.mailboxes
            .get(&Self::key(smtp))
            .ok_or_else(|| SimError::NoSuchMailbox(smtp.to_string()))
    }

    /// Mutable mailbox plus the sequence, borrowed together so mutations can journal.
    pub fn mailbox_mut(&mut self, smtp: &str) -> Result<(&mut Mailbox, &mut Seq), SimError> {
        let Store { mailboxes, seq } = self;
        let mb = mailboxes
            .get_mut(&Self::key(smtp))
            .ok_or_else(|| SimError::NoSuchMailbox(smtp.to_string()))?;
        Ok((mb, seq))
    }
}
