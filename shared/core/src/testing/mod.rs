//! In-memory port implementations (feature `testing`), small models of LN, Exchange and the
//! store with the behaviour the service relies on: versions that move on every write, stale
//! versions rejected, stamps, and (with [`CrashingStore`]) crashes between a write and its link. Used by the property tests here and by
//! other crates' unit tests.

use crate::calendar as calendar_types;
use crate::error::{ItemError, LnError, MailboxError, StoreError};
use crate::ids::*;
use crate::model::*;
use crate::normalize::ContactFields;
use crate::ports::*;
use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

mod calendar;

pub use calendar::{Exception, MemoryEvent, Recurrence, UserEvent};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread poisons the lock; the data is still fine for assertions.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(AtomicI64::new(at.timestamp_millis()))
    }
    pub fn advance(&self, by: ChronoDuration) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------

/// LN with contacts and a deletion audit. Every write moves `lastModified` by one second and the
/// etag, like the real service.
#[derive(Debug, Default)]
pub struct MemoryLn {
    inner: Mutex<LnData>,
    /// Count of `contacts_changed_since` + `deleted_since` + `activities_in_window` calls.
    pub feed_reads: AtomicU64,
    /// `activities_in_window` calls.
    pub activity_feed_reads: AtomicU64,
    /// `activity` (single read) calls.
    pub activity_reads: AtomicU64,
    /// Activity creates, updates and deletes.
    pub activity_writes: AtomicU64,
    /// Attendee line updates, adds and deletes.
    pub attendee_writes: AtomicU64,
}

#[derive(Debug, Default)]
struct LnData {
    contacts: BTreeMap<ContactCode, Contact>,
    deleted: Vec<DeletedObject>,
    tick: i64,
    users: Vec<SyncUser>,
    employees: Vec<Employee>,
    activities: BTreeMap<ActivityKey, Activity>,
    next_activity: u64,
}

/// One logical clock for every fake, so "newer" means "happened later" across LN and Exchange
/// (the newest-wins policy of R28 compares the two sides' modification times).
static FAKE_TIME: AtomicI64 = AtomicI64::new(0);

/// The next instant of the fakes' shared logical clock (one second per event).
pub fn fake_now() -> DateTime<Utc> {
    let t = FAKE_TIME.fetch_add(1, Ordering::SeqCst) + 1;
    DateTime::from_timestamp(1_800_000_000 + t, 0).unwrap_or_default()
}

impl MemoryLn {
    fn stamp(data: &mut LnData) -> DateTime<Utc> {
        let at = fake_now();
        data.tick = at.timestamp() - 1_800_000_000;
        at
    }

    pub fn set_users(&self, users: Vec<SyncUser>) {
        lock(&self.inner).users = users;
    }

    /// Inserts or replaces a contact; `lastModified` and version are assigned here.
    pub fn upsert(&self, mut contact: Contact) {
        let mut data = lock(&self.inner);
        let at = Self::stamp(&mut data);
        contact.last_modified = at;
        contact.version = LnVersion::new(format!("W/\"{}\"", data.tick));
        data.contacts.insert(contact.contact.clone(), contact);
    }

    pub fn delete(&self, code: &ContactCode) {
        let mut data = lock(&self.inner);
        if data.contacts.remove(code).is_some() {
            let at = Self::stamp(&mut data);
            data.deleted.push(DeletedObject {
                entity: DeletedEntity::Contact,
                key: code.to_string(),
                deleted_at: at,
            });
        }
    }

    pub fn contact(&self, code: &ContactCode) -> Option<Contact> {
        lock(&self.inner).contacts.get(code).cloned()
    }

    pub fn contacts(&self) -> Vec<Contact> {
        lock(&self.inner).contacts.values().cloned().collect()
    }

    pub fn set_employees(&self, employees: Vec<Employee>) {
        lock(&self.inner).employees = employees;
    }

    /// Writes an activity as an LN user would: `lastModified`, etag and attendee versions are
    /// assigned here, a missing key is allocated, and lines are numbered when 0.
    pub fn upsert_activity(&self, mut activity: Activity) -> ActivityKey {
        let mut data = lock(&self.inner);
        if activity.activity.as_str().is_empty() {
            data.next_activity += 1;
            activity.activity = ActivityKey::new(format!("ACT{:06}", data.next_activity));
        }
        let key = activity.activity.clone();
        let mut next_line = activity.attendees.iter().map(|l| l.line).max().unwrap_or(0);
        for l in &mut activity.attendees {
            l.activity = key.clone();
            if l.line == 0 {
                next_line += 10;
                l.line = next_line;
            }
        }
        Self::write_activity(&mut data, activity);
        key
    }

    /// Edits an activity in place as an LN user would.
    pub fn edit_activity(&self, key: &ActivityKey, edit: impl FnOnce(&mut Activity)) {
        let mut data = lock(&self.inner);
        if let Some(mut a) = data.activities.get(key).cloned() {
            edit(&mut a);
            Self::write_activity(&mut data, a);
        }
    }

    /// An LN user deletes an activity (it appears in `DeletedObjects`).
    pub fn delete_activity_now(&self, key: &ActivityKey) {
        let mut data = lock(&self.inner);
        if data.activities.remove(key).is_some() {
            let at = Self::stamp(&mut data);
            data.deleted.push(DeletedObject {
                entity: DeletedEntity::Activity,
                key: key.to_string(),
                deleted_at: at,
            });
        }
    }

    pub fn activity_now(&self, key: &ActivityKey) -> Option<Activity> {
        lock(&self.inner).activities.get(key).cloned()
    }

    pub fn activities(&self) -> Vec<Activity> {
        lock(&self.inner).activities.values().cloned().collect()
    }

    /// Content writes (activities) plus attendee-line writes so far.
    pub fn calendar_writes(&self) -> u64 {
        self.activity_writes.load(Ordering::SeqCst) + self.attendee_writes.load(Ordering::SeqCst)
    }

    fn write_activity(data: &mut LnData, mut a: Activity) {
        let at = Self::stamp(data);
        a.last_modified = at;
        a.version = LnVersion::new(format!("W/\"{}\"", data.tick));
        // As in LN, a line's etag moves only when that line changes; the activity's always.
        let before = data.activities.get(&a.activity);
        for l in &mut a.attendees {
            let unchanged = before
                .and_then(|b| b.attendees.iter().find(|o| o.line == l.line))
                .filter(|o| {
                    Attendee {
                        version: None,
                        ..(*o).clone()
                    } == Attendee {
                        version: None,
                        ..l.clone()
                    }
                });
            l.version = match unchanged {
                Some(o) => o.version.clone(),
                None => Some(LnVersion::new(format!("W/\"{}-{}\"", data.tick, l.line))),
            };
        }
        data.activities.insert(a.activity.clone(), a);
    }

    fn current(
        data: &LnData,
        key: &ActivityKey,
        version: Option<&LnVersion>,
    ) -> Result<Activity, LnError> {
        let a = data.activities.get(key).ok_or_else(|| LnError::NotFound {
            entity: "Activity".into(),
            key: key.to_string(),
        })?;
        if version.is_some_and(|v| v != &a.version) {
            return Err(LnError::PreconditionFailed {
                entity: "Activity".into(),
                key: key.to_string(),
            });
        }
        Ok(a.clone())
    }
}

#[async_trait]
impl LnGateway for MemoryLn {
    async fn settings(&self) -> Result<Settings, LnError> {
        Ok(Settings {
            exchange_backend: ExchangeBackend::Ews,
            exchange_url: None,
            azure_tenant: None,
            client_id: None,
            contact_pull_interval: PullInterval {
                value: 15,
                unit: IntervalUnit::Minutes,
            },
            calendar_pull_interval: PullInterval {
                value: 15,
                unit: IntervalUnit::Minutes,
            },
            push_enabled: false,
            synchronize_contacts: true,
            synchronize_activities: false,
        })
    }
    async fn sync_users(&self) -> Result<Vec<SyncUser>, LnError> {
        Ok(lock(&self.inner).users.clone())
    }
    async fn employees(&self) -> Result<Vec<Employee>, LnError> {
        Ok(lock(&self.inner).employees.clone())
    }
    async fn contacts_changed_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Contact>, LnError> {
        self.feed_reads.fetch_add(1, Ordering::SeqCst);
        let data = lock(&self.inner);
        let mut out: Vec<Contact> = data
            .contacts
            .values()
            .filter(|c| since.is_none_or(|s| c.last_modified >= s))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.last_modified, &a.contact).cmp(&(b.last_modified, &b.contact)));
        Ok(out)
    }
    async fn contacts_by_key(&self, keys: &[ContactCode]) -> Result<Vec<Contact>, LnError> {
        let data = lock(&self.inner);
        Ok(keys
            .iter()
            .filter_map(|k| data.contacts.get(k).cloned())
            .collect())
    }
    async fn deleted_since(
        &self,
        entity: DeletedEntity,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedObject>, LnError> {
        self.feed_reads.fetch_add(1, Ordering::SeqCst);
        let data = lock(&self.inner);
        Ok(data
            .deleted
            .iter()
            .filter(|d| d.entity == entity && since.is_none_or(|s| d.deleted_at >= s))
            .cloned()
            .collect())
    }
    async fn activities_in_window(
        &self,
        window: Window,
        changed_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Activity>, LnError> {
        self.feed_reads.fetch_add(1, Ordering::SeqCst);
        self.activity_feed_reads.fetch_add(1, Ordering::SeqCst);
        let data = lock(&self.inner);
        let mut out: Vec<Activity> = data
            .activities
            .values()
            .filter(|a| match changed_since {
                // The port's contract: changes of any type and end, up to the window's end.
                Some(s) => a.last_modified >= s && a.start < window.end,
                None => {
                    matches!(
                        a.activity_type,
                        ActivityType::Appointment | ActivityType::Call
                    ) && a.end >= window.start
                        && a.start < window.end
                }
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.last_modified, &a.activity).cmp(&(b.last_modified, &b.activity)));
        Ok(out)
    }
    async fn activity(&self, key: &ActivityKey) -> Result<Option<Activity>, LnError> {
        self.activity_reads.fetch_add(1, Ordering::SeqCst);
        Ok(lock(&self.inner).activities.get(key).cloned())
    }
    async fn create_activity(&self, new: &NewActivity) -> Result<Activity, LnError> {
        self.activity_writes.fetch_add(1, Ordering::SeqCst);
        let mut data = lock(&self.inner);
        if let Some(r) = new.activity.external_reference.as_deref()
            && let Some(existing) = data
                .activities
                .values()
                .find(|a| a.external_reference.as_deref() == Some(r))
        {
            return Err(LnError::AlreadyExists {
                entity: "Activity".into(),
                existing_key: existing.activity.to_string(),
            });
        }
        data.next_activity += 1;
        let key = ActivityKey::new(format!("ACT{:06}", data.next_activity));
        let mut a = new.activity.clone();
        a.activity = key.clone();
        for (i, line) in a.attendees.iter_mut().enumerate() {
            line.activity = key.clone();
            line.line = u32::try_from(i + 1).unwrap_or(u32::MAX) * 10;
        }
        Self::write_activity(&mut data, a.clone());
        Ok(data.activities.get(&key).cloned().unwrap_or(a))
    }
    async fn update_activity(
        &self,
        key: &ActivityKey,
        version: &LnVersion,
        patch: &ActivityPatch,
    ) -> Result<Activity, LnError> {
        self.activity_writes.fetch_add(1, Ordering::SeqCst);
        let mut data = lock(&self.inner);
        let mut a = Self::current(&data, key, Some(version))?;
        apply_patch(&mut a, patch);
        Self::write_activity(&mut data, a);
        Self::current(&data, key, None)
    }
    async fn update_attendee(
        &self,
        activity: &ActivityKey,
        line: u32,
        version: Option<&LnVersion>,
        patch: &AttendeePatch,
    ) -> Result<(Attendee, Option<LnVersion>), LnError> {
        self.attendee_writes.fetch_add(1, Ordering::SeqCst);
        let mut data = lock(&self.inner);
        let mut a = Self::current(&data, activity, None)?;
        let Some(l) = a.attendees.iter_mut().find(|l| l.line == line) else {
            return Err(LnError::NotFound {
                entity: "Attendee".into(),
                key: format!("{activity}/{line}"),
            });
        };
        if let (Some(v), Some(cur)) = (version, l.version.as_ref())
            && v != cur
        {
            return Err(LnError::PreconditionFailed {
                entity: "Attendee".into(),
                key: format!("{activity}/{line}"),
            });
        }
        if let Some(s) = patch.attendance_status {
            l.attendance_status = s;
        }
        if let Some(s) = patch.sent_to_synchronizer {
            l.sent_to_synchronizer = s;
        }
        if let Some(s) = patch.synchronized {
            l.synchronized = s;
        }
        Self::write_activity(&mut data, a);
        let a = Self::current(&data, activity, None)?;
        let version = a.version.clone();
        a.attendees
            .into_iter()
            .find(|l| l.line == line)
            .map(|l| (l, Some(version)))
            .ok_or_else(|| LnError::NotFound {
                entity: "Attendee".into(),
                key: format!("{activity}/{line}"),
            })
    }
    async fn add_attendee(
        &self,
        activity: &ActivityKey,
        attendee: &Attendee,
    ) -> Result<Attendee, LnError> {
        self.attendee_writes.fetch_add(1, Ordering::SeqCst);
        let mut data = lock(&self.inner);
        let mut a = Self::current(&data, activity, None)?;
        let line = a.attendees.iter().map(|l| l.line).max().unwrap_or(0) + 10;
        let mut new = attendee.clone();
        new.activity = activity.clone();
        new.line = line;
        a.attendees.push(new);
        Self::write_activity(&mut data, a);
        let a = Self::current(&data, activity, None)?;
        a.attendees
            .into_iter()
            .find(|l| l.line == line)
            .ok_or_else(|| LnError::NotFound {
                entity: "Attendee".into(),
                key: format!("{activity}/{line}"),
            })
    }
    async fn delete_attendee(
        &self,
        activity: &ActivityKey,
        line: u32,
        _version: Option<&LnVersion>,
    ) -> Result<(), LnError> {
        self.attendee_writes.fetch_add(1, Ordering::SeqCst);
        let mut data = lock(&self.inner);
        let mut a = Self::current(&data, activity, None)?;
        let before = a.attendees.len();
        a.attendees.retain(|l| l.line != line);
        if a.attendees.len() == before {
            return Err(LnError::NotFound {
                entity: "Attendee".into(),
                key: format!("{activity}/{line}"),
            });
        }
        Self::write_activity(&mut data, a);
        let at = fake_now();
        data.deleted.push(DeletedObject {
            entity: DeletedEntity::Attendee,
            key: format!("{activity}/{line}"),
            deleted_at: at,
        });
        Ok(())
    }
    async fn delete_activity(&self, key: &ActivityKey, version: &LnVersion) -> Result<(), LnError> {
        self.activity_writes.fetch_add(1, Ordering::SeqCst);
        let mut data = lock(&self.inner);
        Self::current(&data, key, Some(version))?;
        data.activities.remove(key);
        let at = Self::stamp(&mut data);
        data.deleted.push(DeletedObject {
            entity: DeletedEntity::Activity,
            key: key.to_string(),
            deleted_at: at,
        });
        Ok(())
    }
}

/// Applies an OData PATCH body: only the fields it names change.
fn apply_patch(a: &mut Activity, p: &ActivityPatch) {
    if let Some(v) = &p.subject {
        a.subject.clone_from(v);
    }
    if let Some(v) = &p.location {
        a.location.clone_from(v);
    }
    if let Some(v) = &p.information {
        a.information.clone_from(v);
    }
    if let Some(v) = p.all_day {
        a.all_day = v;
    }
    if let Some(v) = p.start {
        a.start = v;
    }
    if let Some(v) = p.end {
        a.end = v;
    }
    if let Some(v) = p.reminder_set {
        a.reminder_set = v;
    }
    if let Some(v) = p.reminder_value {
        a.reminder_value = v;
    }
    if let Some(v) = p.reminder_unit {
        a.reminder_unit = v;
    }
    if let Some(v) = p.show_time_as {
        a.show_time_as = v;
    }
    if let Some(v) = p.status {
        a.status = v;
    }
    if let Some(v) = p.synchronize {
        a.synchronize = v;
    }
    if let Some(v) = p.activity_type {
        a.activity_type = v;
    }
}

// ---------------------------------------------------------------------------------------------

/// A contact as the in-memory Exchange holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryContact {
    pub id: ExchangeItemId,
    pub version: ExchangeVersion,
    pub folder: FolderId,
    pub stamp: Option<CrmStamp>,
    pub fields: ContactFields,
    /// Creation order, so "the oldest" of duplicates is well defined.
    pub seq: u64,
}

/// Exchange mailboxes with contact folders, change keys, stamps, a change journal and a call
/// log. Stale change keys are rejected like EWS does.
#[derive(Debug, Default)]
pub struct MemoryMailbox {
    inner: Mutex<MailboxData>,
}

#[derive(Debug, Default)]
struct MailboxData {
    seq: u64,
    folders: HashMap<(MailboxAddress, String), FolderId>,
    items: BTreeMap<(MailboxAddress, ExchangeItemId), MemoryContact>,
    journal: Vec<(MailboxAddress, u64, ExchangeItemId)>,
    calls: Vec<(MailboxAddress, &'static str)>,
    /// Fail the next call of this mailbox with an unreachable error.
    down: Vec<MailboxAddress>,
    /// What [`Mailbox::max_batch`] answers (`None`: the trait's default).
    max_batch: Option<usize>,
    cal: calendar::CalendarData,
}

impl MailboxData {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
    fn touch(&mut self, mailbox: &MailboxAddress, id: &ExchangeItemId) -> ExchangeVersion {
        let seq = self.next();
        self.journal.push((mailbox.clone(), seq, id.clone()));
        ExchangeVersion::new(format!("ck{seq}"))
    }
    /// Exchange answers a folder id it doesn't know (deleted, or from before a move) with
    /// `ErrorFolderNotFound` / Graph 404.
    fn check_folder(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
    ) -> Result<(), MailboxError> {
        if self
            .folders
            .iter()
            .any(|((m, _), f)| m == mailbox && f == folder)
        {
            Ok(())
        } else {
            Err(MailboxError::FolderNotFound {
                mailbox: mailbox.clone(),
            })
        }
    }
    fn call(&mut self, mailbox: &MailboxAddress, op: &'static str) -> Result<(), MailboxError> {
        self.calls.push((mailbox.clone(), op));
        if let Some(pos) = self.down.iter().position(|m| m == mailbox) {
            self.down.remove(pos);
            return Err(MailboxError::Unreachable {
                url: "memory://exchange".into(),
                source: "injected".into(),
            });
        }
        Ok(())
    }
}

impl MemoryMailbox {
    pub fn contacts(&self, mailbox: &MailboxAddress) -> Vec<MemoryContact> {
        let data = lock(&self.inner);
        let mut v: Vec<MemoryContact> = data
            .items
            .iter()
            .filter(|((m, _), _)| m == mailbox)
            .map(|(_, c)| c.clone())
            .collect();
        v.sort_by_key(|c| c.seq);
        v
    }

    pub fn calls(&self, mailbox: &MailboxAddress) -> Vec<&'static str> {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|(m, _)| m == mailbox)
            .map(|(_, op)| *op)
            .collect()
    }

    pub fn total_calls(&self) -> usize {
        lock(&self.inner).calls.len()
    }

    /// The user edits a contact in Outlook: content and change key move.
    pub fn user_edit(
        &self,
        mailbox: &MailboxAddress,
        id: &ExchangeItemId,
        edit: impl FnOnce(&mut ContactFields),
    ) {
        let mut data = lock(&self.inner);
        let key = (mailbox.clone(), id.clone());
        if data.items.contains_key(&key) {
            let version = data.touch(mailbox, id);
            if let Some(item) = data.items.get_mut(&key) {
                edit(&mut item.fields);
                item.version = version;
            }
        }
    }

    /// The user deletes a contact in Outlook.
    pub fn user_delete(&self, mailbox: &MailboxAddress, id: &ExchangeItemId) {
        let mut data = lock(&self.inner);
        if data.items.remove(&(mailbox.clone(), id.clone())).is_some() {
            let seq = data.next();
            data.journal.push((mailbox.clone(), seq, id.clone()));
        }
    }

    /// The user creates a contact by hand in a folder (no stamp).
    pub fn user_create(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        fields: ContactFields,
    ) -> ExchangeItemId {
        let mut data = lock(&self.inner);
        let seq = data.next();
        let id = ExchangeItemId::new(format!("item-{seq}"));
        let version = data.touch(mailbox, &id);
        data.items.insert(
            (mailbox.clone(), id.clone()),
            MemoryContact {
                id: id.clone(),
                version,
                folder: folder.clone(),
                stamp: None,
                fields,
                seq,
            },
        );
        id
    }

    /// The mailbox moves (or its environment switches from EWS to Graph): every folder and
    /// contact keeps its content, stamp and version under a new id, and the old ids are gone.
    pub fn move_mailbox(&self, mailbox: &MailboxAddress) {
        let mut data = lock(&self.inner);
        let folders: Vec<(MailboxAddress, String)> = data
            .folders
            .keys()
            .filter(|(m, _)| m == mailbox)
            .cloned()
            .collect();
        let mut renamed: HashMap<FolderId, FolderId> = HashMap::new();
        for key in folders {
            if let Some(old) = data.folders.get(&key).cloned() {
                let new = FolderId::new(format!("moved-{}", old.as_str()));
                renamed.insert(old, new.clone());
                data.folders.insert(key, new);
            }
        }
        let keys: Vec<(MailboxAddress, ExchangeItemId)> = data
            .items
            .keys()
            .filter(|(m, _)| m == mailbox)
            .cloned()
            .collect();
        for key in keys {
            if let Some(mut item) = data.items.remove(&key) {
                item.id = ExchangeItemId::new(format!("moved-{}", item.id.as_str()));
                if let Some(folder) = renamed.get(&item.folder) {
                    item.folder = folder.clone();
                }
                data.items.insert((mailbox.clone(), item.id.clone()), item);
            }
        }
    }

    /// The next call for `mailbox` fails as if Exchange were unreachable.
    pub fn fail_next_call(&self, mailbox: &MailboxAddress) {
        lock(&self.inner).down.push(mailbox.clone());
    }

    /// Makes [`Mailbox::max_batch`] answer `n` (default 100); `create_events` panics when
    /// given more.
    pub fn set_max_batch(&self, n: usize) {
        lock(&self.inner).max_batch = Some(n);
    }
}

#[async_trait]
impl Mailbox for MemoryMailbox {
    fn max_batch(&self) -> usize {
        lock(&self.inner).max_batch.unwrap_or(100)
    }

    async fn ensure_contact_folder(
        &self,
        mailbox: &MailboxAddress,
    ) -> Result<ContactFolder, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "ensure_folder")?;
        let key = (mailbox.clone(), "CRM Contacts".to_owned());
        if let Some(f) = data.folders.get(&key) {
            return Ok(ContactFolder {
                id: f.clone(),
                created: false,
            });
        }
        let seq = data.next();
        let folder = FolderId::new(format!("folder-{seq}"));
        data.folders.insert(key, folder.clone());
        Ok(ContactFolder {
            id: folder,
            created: true,
        })
    }

    async fn find_stamped_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "find")?;
        data.check_folder(mailbox, folder)?;
        let mut found: Vec<&MemoryContact> = data
            .items
            .iter()
            .filter(|((m, _), c)| m == mailbox && &c.folder == folder)
            .map(|(_, c)| c)
            .filter(|c| c.stamp.as_ref().is_some_and(|s| stamps.contains(s)))
            .collect();
        found.sort_by_key(|c| c.seq);
        Ok(found
            .into_iter()
            .filter_map(|c| {
                c.stamp.clone().map(|stamp| StampedItem {
                    stamp,
                    item: ItemRef {
                        id: c.id.clone(),
                        version: c.version.clone(),
                    },
                })
            })
            .collect())
    }

    async fn create_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        contacts: &[NewContact],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "create")?;
        data.check_folder(mailbox, folder)?;
        let mut out = Vec::new();
        for c in contacts {
            let seq = data.next();
            let id = ExchangeItemId::new(format!("item-{seq}"));
            let version = data.touch(mailbox, &id);
            data.items.insert(
                (mailbox.clone(), id.clone()),
                MemoryContact {
                    id: id.clone(),
                    version: version.clone(),
                    folder: folder.clone(),
                    stamp: Some(c.stamp.clone()),
                    fields: c.fields.clone(),
                    seq,
                },
            );
            out.push(Ok(ItemRef { id, version }));
        }
        Ok(out)
    }

    async fn update_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        updates: &[ContactUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "update")?;
        let mut out = Vec::new();
        for u in updates {
            let key = (mailbox.clone(), u.item.id.clone());
            // An item outside the folder is not one of ours any more (see the port).
            let current = data
                .items
                .get(&key)
                .filter(|c| &c.folder == folder)
                .map(|c| c.version.clone());
            match current {
                None => out.push(Err(ItemError::NotFound(u.item.id.clone()))),
                Some(v) if v != u.item.version => {
                    out.push(Err(ItemError::Conflict(u.item.id.clone())))
                }
                Some(_) => {
                    let version = data.touch(mailbox, &u.item.id);
                    if let Some(item) = data.items.get_mut(&key) {
                        item.fields = u.fields.clone();
                        item.version = version.clone();
                    }
                    out.push(Ok(ItemRef {
                        id: u.item.id.clone(),
                        version,
                    }));
                }
            }
        }
        Ok(out)
    }

    async fn delete_items(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "delete")?;
        let mut out = Vec::new();
        for id in ids {
            let key = (mailbox.clone(), id.clone());
            let in_folder = data.items.get(&key).is_some_and(|c| &c.folder == folder);
            if in_folder && data.items.remove(&key).is_some() {
                let seq = data.next();
                data.journal.push((mailbox.clone(), seq, id.clone()));
                out.push(Ok(()));
            } else {
                out.push(Err(ItemError::NotFound(id.clone())));
            }
        }
        Ok(out)
    }

    async fn current_versions(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "get")?;
        Ok(ids
            .iter()
            .map(|id| {
                match data
                    .items
                    .get(&(mailbox.clone(), id.clone()))
                    .filter(|c| &c.folder == folder)
                {
                    Some(c) => Ok(ItemRef {
                        id: id.clone(),
                        version: c.version.clone(),
                    }),
                    None => Err(ItemError::NotFound(id.clone())),
                }
            })
            .collect())
    }

    async fn sync_contact_folder(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        cursor: Option<&FolderCursor>,
    ) -> Result<FolderChanges, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "sync")?;
        let since: u64 = match cursor {
            None => 0,
            Some(c) => c.0.parse().map_err(|_| MailboxError::InvalidCursor {
                mailbox: mailbox.clone(),
            })?,
        };
        let head = data.seq;
        let mut changed: Vec<ExchangeItemId> = data
            .journal
            .iter()
            .filter(|(m, s, _)| m == mailbox && *s > since)
            .map(|(_, _, id)| id.clone())
            .collect();
        changed.sort();
        changed.dedup();
        let changes = changed
            .into_iter()
            .filter_map(|id| match data.items.get(&(mailbox.clone(), id.clone())) {
                Some(c) if &c.folder == folder => Some(FolderChange::Upsert {
                    item: ItemRef {
                        id: c.id.clone(),
                        version: c.version.clone(),
                    },
                    stamp: c.stamp.clone(),
                }),
                Some(_) => None,
                None => Some(FolderChange::Deleted { id }),
            })
            .collect();
        Ok(FolderChanges {
            changes,
            cursor: FolderCursor(head.to_string()),
            more: false,
        })
    }

    async fn calendar_view(
        &self,
        mailbox: &MailboxAddress,
        window: Window,
    ) -> Result<Vec<calendar_types::CalendarEvent>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "calendar_view")?;
        Ok(data.cal_view(mailbox, &window))
    }

    async fn sync_calendar(
        &self,
        mailbox: &MailboxAddress,
        cursor: Option<&FolderCursor>,
        _window: Window,
    ) -> Result<FolderChanges, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "sync_calendar")?;
        data.cal_sync(mailbox, cursor)
    }

    async fn get_events(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
        window: Window,
    ) -> Result<Vec<ItemOutcome<calendar_types::EventRead>>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "get_events")?;
        Ok(data.cal_get(mailbox, ids, &window))
    }

    async fn find_stamped_events(
        &self,
        mailbox: &MailboxAddress,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "find_stamped_events")?;
        Ok(data.cal_find_stamped(mailbox, stamps))
    }

    async fn create_events(
        &self,
        mailbox: &MailboxAddress,
        events: &[calendar_types::NewEvent],
    ) -> Result<Vec<ItemOutcome<calendar_types::CreatedEvent>>, MailboxError> {
        let mut data = lock(&self.inner);
        let max = data.max_batch.unwrap_or(100);
        assert!(
            events.len() <= max,
            "create_events got {} events, more than max_batch {max}",
            events.len()
        );
        data.call(mailbox, "create_events")?;
        Ok(data.cal_create(mailbox, events))
    }

    async fn update_events(
        &self,
        mailbox: &MailboxAddress,
        updates: &[calendar_types::EventUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "update_events")?;
        Ok(data.cal_update(mailbox, updates))
    }

    async fn cancel_events(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        let mut data = lock(&self.inner);
        data.call(mailbox, "cancel_events")?;
        Ok(data.cal_cancel(mailbox, ids))
    }
}

// ---------------------------------------------------------------------------------------------

/// A `StateStore` in memory. Wrap it in [`CrashingStore`] to make link writes fail.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<StoreData>,
}

#[derive(Debug, Default)]
struct StoreData {
    envs: BTreeMap<EnvironmentId, EnvironmentState>,
    users: BTreeMap<(EnvironmentId, UserId), UserState>,
    links: BTreeMap<(EnvironmentId, UserId, LinkKind, LnKey), Link>,
    cursors: HashMap<(EnvironmentId, UserId, CursorKind), Cursor>,
    /// Last revision of deleted cursors: re-creating one continues the count.
    cursor_tombstones: HashMap<(EnvironmentId, UserId, CursorKind), u64>,
    leases: HashMap<(EnvironmentId, UserId, String), (String, DateTime<Utc>)>,
    jobs: HashMap<JobId, DateTime<Utc>>,
    runs: BTreeMap<(EnvironmentId, UserId, LinkKind), RunRecord>,
    problems: BTreeMap<(EnvironmentId, UserId, LinkKind, LnKey), ItemProblem>,
    push_tokens: BTreeMap<EnvironmentId, String>,
    subscriptions: BTreeMap<(EnvironmentId, SubscriptionId), PushSubscription>,
}

impl MemoryStore {
    pub fn all_links(&self, env: &EnvironmentId, user: &UserId) -> Vec<Link> {
        lock(&self.inner)
            .links
            .iter()
            .filter(|((e, u, _, _), _)| e == env && u == user)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn environment(
        &self,
        env: &EnvironmentId,
    ) -> Result<Option<EnvironmentState>, StoreError> {
        Ok(lock(&self.inner).envs.get(env).cloned())
    }
    async fn environments(&self) -> Result<Vec<EnvironmentState>, StoreError> {
        Ok(lock(&self.inner).envs.values().cloned().collect())
    }
    async fn put_environment(&self, state: &EnvironmentState) -> Result<(), StoreError> {
        lock(&self.inner)
            .envs
            .insert(state.env.clone(), state.clone());
        Ok(())
    }
    async fn user_state(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Option<UserState>, StoreError> {
        Ok(lock(&self.inner)
            .users
            .get(&(env.clone(), user.clone()))
            .cloned())
    }
    async fn user_states(&self, env: &EnvironmentId) -> Result<Vec<UserState>, StoreError> {
        Ok(lock(&self.inner)
            .users
            .values()
            .filter(|s| &s.env == env)
            .cloned()
            .collect())
    }
    async fn put_user_state(&self, state: &UserState) -> Result<(), StoreError> {
        lock(&self.inner)
            .users
            .insert((state.env.clone(), state.user.clone()), state.clone());
        Ok(())
    }
    async fn links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<Vec<Link>, StoreError> {
        let data = lock(&self.inner);
        Ok(keys
            .iter()
            .filter_map(|k| {
                data.links
                    .get(&(env.clone(), user.clone(), kind, k.clone()))
                    .cloned()
            })
            .collect())
    }
    async fn link_by_exchange_id(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        id: &ExchangeItemId,
    ) -> Result<Option<Link>, StoreError> {
        Ok(lock(&self.inner)
            .links
            .values()
            .find(|l| &l.env == env && &l.user == user && l.kind == kind && &l.exchange_id == id)
            .cloned())
    }
    async fn all_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<Vec<Link>, StoreError> {
        Ok(lock(&self.inner)
            .links
            .values()
            .filter(|l| &l.env == env && &l.user == user && l.kind == kind)
            .cloned()
            .collect())
    }
    async fn links_by_ical_uid(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        uid: &IcalUid,
    ) -> Result<Vec<Link>, StoreError> {
        Ok(lock(&self.inner)
            .links
            .values()
            .filter(|l| {
                &l.env == env
                    && &l.user == user
                    && l.kind == kind
                    && l.ical_uid.as_ref() == Some(uid)
            })
            .cloned()
            .collect())
    }
    async fn links_by_series(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        series: &ExchangeItemId,
    ) -> Result<Vec<Link>, StoreError> {
        Ok(lock(&self.inner)
            .links
            .values()
            .filter(|l| {
                &l.env == env
                    && &l.user == user
                    && l.kind == kind
                    && l.event.as_ref().and_then(|e| e.series_id.as_ref()) == Some(series)
            })
            .cloned()
            .collect())
    }
    async fn link_count(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<u64, StoreError> {
        let n = lock(&self.inner)
            .links
            .keys()
            .filter(|(e, u, k, _)| e == env && u == user && *k == kind)
            .count();
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }
    async fn put_links(&self, links: &[Link]) -> Result<(), StoreError> {
        let mut data = lock(&self.inner);
        for l in links {
            data.links.insert(
                (l.env.clone(), l.user.clone(), l.kind, l.ln_key.clone()),
                l.clone(),
            );
        }
        Ok(())
    }
    async fn delete_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError> {
        let mut data = lock(&self.inner);
        for k in keys {
            data.links
                .remove(&(env.clone(), user.clone(), kind, k.clone()));
        }
        Ok(())
    }
    async fn cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<Option<Cursor>, StoreError> {
        Ok(lock(&self.inner)
            .cursors
            .get(&(env.clone(), user.clone(), kind))
            .cloned())
    }
    async fn put_cursor(&self, cursor: &Cursor) -> Result<u64, StoreError> {
        let mut data = lock(&self.inner);
        let key = (cursor.env.clone(), cursor.user.clone(), cursor.kind);
        let stored = data.cursors.get(&key).map_or(0, |c| c.revision);
        if stored != cursor.revision {
            return Err(StoreError::Conflict {
                what: format!("cursor {} of {}", cursor.kind.as_str(), cursor.user),
            });
        }
        let base = if stored == 0 {
            data.cursor_tombstones.remove(&key).unwrap_or(0)
        } else {
            stored
        };
        let mut next = cursor.clone();
        next.revision = base + 1;
        data.cursors.insert(key, next);
        Ok(base + 1)
    }
    async fn delete_cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<(), StoreError> {
        let mut data = lock(&self.inner);
        let key = (env.clone(), user.clone(), kind);
        if let Some(gone) = data.cursors.remove(&key) {
            data.cursor_tombstones.insert(key, gone.revision);
        }
        Ok(())
    }
    async fn acquire_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut data = lock(&self.inner);
        let key = (env.clone(), user.clone(), kind.to_owned());
        let free = data
            .leases
            .get(&key)
            .is_none_or(|(h, until)| h == holder || *until <= now);
        if free {
            let until = now + ChronoDuration::from_std(ttl).unwrap_or_default();
            data.leases.insert(key, (holder.to_owned(), until));
        }
        Ok(free)
    }
    async fn release_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        let mut data = lock(&self.inner);
        let key = (env.clone(), user.clone(), kind.to_owned());
        if data.leases.get(&key).is_some_and(|(h, _)| h == holder) {
            data.leases.remove(&key);
        }
        Ok(())
    }
    async fn mark_job_done(
        &self,
        job: &JobId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut data = lock(&self.inner);
        if data.jobs.get(job).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        data.jobs.insert(
            job.clone(),
            now + ChronoDuration::from_std(ttl).unwrap_or_default(),
        );
        Ok(true)
    }
    async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        lock(&self.inner)
            .runs
            .insert((run.env.clone(), run.user.clone(), run.kind), run.clone());
        Ok(())
    }
    async fn last_runs(&self, env: &EnvironmentId) -> Result<Vec<RunRecord>, StoreError> {
        Ok(lock(&self.inner)
            .runs
            .values()
            .filter(|r| &r.env == env)
            .cloned()
            .collect())
    }
    async fn put_problem(&self, problem: &ItemProblem) -> Result<(), StoreError> {
        lock(&self.inner).problems.insert(
            (
                problem.env.clone(),
                problem.user.clone(),
                problem.kind,
                problem.ln_key.clone(),
            ),
            problem.clone(),
        );
        Ok(())
    }
    async fn clear_problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError> {
        let mut data = lock(&self.inner);
        for k in keys {
            data.problems
                .remove(&(env.clone(), user.clone(), kind, k.clone()));
        }
        Ok(())
    }
    async fn problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Vec<ItemProblem>, StoreError> {
        Ok(lock(&self.inner)
            .problems
            .values()
            .filter(|p| &p.env == env && &p.user == user)
            .cloned()
            .collect())
    }
    async fn ensure_push_token(
        &self,
        env: &EnvironmentId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        Ok(lock(&self.inner)
            .push_tokens
            .entry(env.clone())
            .or_insert_with(|| candidate.to_owned())
            .clone())
    }
    async fn push_token(&self, env: &EnvironmentId) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.inner).push_tokens.get(env).cloned())
    }
    async fn put_subscription(&self, sub: &PushSubscription) -> Result<(), StoreError> {
        lock(&self.inner)
            .subscriptions
            .insert((sub.env.clone(), sub.id.clone()), sub.clone());
        Ok(())
    }
    async fn subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<Option<PushSubscription>, StoreError> {
        Ok(lock(&self.inner)
            .subscriptions
            .get(&(env.clone(), id.clone()))
            .cloned())
    }
    async fn subscriptions(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<PushSubscription>, StoreError> {
        Ok(lock(&self.inner)
            .subscriptions
            .values()
            .filter(|s| &s.env == env)
            .cloned()
            .collect())
    }
    async fn touch_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
        seen: DateTime<Utc>,
        watermark: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut data = lock(&self.inner);
        let Some(sub) = data.subscriptions.get_mut(&(env.clone(), id.clone())) else {
            return Ok(false);
        };
        if seen < sub.last_seen {
            return Ok(false);
        }
        sub.last_seen = seen;
        if let Some(w) = watermark {
            sub.watermark = Some(w.to_owned());
        }
        Ok(true)
    }
    async fn delete_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<(), StoreError> {
        lock(&self.inner)
            .subscriptions
            .remove(&(env.clone(), id.clone()));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

/// Any `StateStore` whose link writes can be made to fail, the way a process dies between an
/// Exchange write and saving its result (R34). Everything else is passed through.
#[derive(Debug, Default)]
pub struct CrashingStore<S> {
    pub inner: S,
    /// (link writes left before the crash, count only links to items Exchange holds).
    armed: Mutex<Option<(u32, bool)>>,
    crashes: AtomicU64,
}

impl<S> CrashingStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            armed: Mutex::new(None),
            crashes: AtomicU64::new(0),
        }
    }

    /// Makes the `n`-th `put_links` from now fail (1 = the next). With `written_only`, only
    /// writes of links to items Exchange already holds count, not the create intents saved
    /// before a write: "died after Exchange wrote".
    pub fn crash_on_put_links(&self, n: u32, written_only: bool) {
        *lock(&self.armed) = Some((n.max(1), written_only));
    }

    /// Cancels a crash that has not happened yet.
    pub fn disarm(&self) {
        *lock(&self.armed) = None;
    }

    /// How many link writes failed on purpose.
    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::SeqCst)
    }

    fn crash_now(&self, links: &[Link]) -> bool {
        let mut armed = lock(&self.armed);
        let Some((left, written_only)) = *armed else {
            return false;
        };
        if links.is_empty() || (written_only && links.iter().any(Link::is_intent)) {
            return false;
        }
        if left > 1 {
            *armed = Some((left - 1, written_only));
            return false;
        }
        *armed = None;
        self.crashes.fetch_add(1, Ordering::SeqCst);
        true
    }
}

#[async_trait]
impl<S: StateStore> StateStore for CrashingStore<S> {
    async fn environment(
        &self,
        env: &EnvironmentId,
    ) -> Result<Option<EnvironmentState>, StoreError> {
        self.inner.environment(env).await
    }
    async fn environments(&self) -> Result<Vec<EnvironmentState>, StoreError> {
        self.inner.environments().await
    }
    async fn put_environment(&self, state: &EnvironmentState) -> Result<(), StoreError> {
        self.inner.put_environment(state).await
    }
    async fn user_state(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Option<UserState>, StoreError> {
        self.inner.user_state(env, user).await
    }
    async fn user_states(&self, env: &EnvironmentId) -> Result<Vec<UserState>, StoreError> {
        self.inner.user_states(env).await
    }
    async fn put_user_state(&self, state: &UserState) -> Result<(), StoreError> {
        self.inner.put_user_state(state).await
    }
    async fn links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<Vec<Link>, StoreError> {
        self.inner.links(env, user, kind, keys).await
    }
    async fn link_by_exchange_id(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        id: &ExchangeItemId,
    ) -> Result<Option<Link>, StoreError> {
        self.inner.link_by_exchange_id(env, user, kind, id).await
    }
    async fn all_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<Vec<Link>, StoreError> {
        self.inner.all_links(env, user, kind).await
    }
    async fn links_by_ical_uid(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        uid: &IcalUid,
    ) -> Result<Vec<Link>, StoreError> {
        self.inner.links_by_ical_uid(env, user, kind, uid).await
    }
    async fn links_by_series(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        series: &ExchangeItemId,
    ) -> Result<Vec<Link>, StoreError> {
        self.inner.links_by_series(env, user, kind, series).await
    }
    async fn link_count(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<u64, StoreError> {
        self.inner.link_count(env, user, kind).await
    }
    async fn put_links(&self, links: &[Link]) -> Result<(), StoreError> {
        if self.crash_now(links) {
            return Err(StoreError::Unavailable {
                source: "injected crash before the link was saved".into(),
            });
        }
        self.inner.put_links(links).await
    }
    async fn delete_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError> {
        self.inner.delete_links(env, user, kind, keys).await
    }
    async fn cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<Option<Cursor>, StoreError> {
        self.inner.cursor(env, user, kind).await
    }
    async fn put_cursor(&self, cursor: &Cursor) -> Result<u64, StoreError> {
        self.inner.put_cursor(cursor).await
    }
    async fn delete_cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<(), StoreError> {
        self.inner.delete_cursor(env, user, kind).await
    }
    async fn acquire_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner
            .acquire_lease(env, user, kind, holder, now, ttl)
            .await
    }
    async fn release_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        self.inner.release_lease(env, user, kind, holder).await
    }
    async fn mark_job_done(
        &self,
        job: &JobId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.mark_job_done(job, now, ttl).await
    }
    async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.inner.record_run(run).await
    }
    async fn last_runs(&self, env: &EnvironmentId) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.last_runs(env).await
    }
    async fn put_problem(&self, problem: &ItemProblem) -> Result<(), StoreError> {
        self.inner.put_problem(problem).await
    }
    async fn clear_problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError> {
        self.inner.clear_problems(env, user, kind, keys).await
    }
    async fn problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Vec<ItemProblem>, StoreError> {
        self.inner.problems(env, user).await
    }
    async fn ensure_push_token(
        &self,
        env: &EnvironmentId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        self.inner.ensure_push_token(env, candidate).await
    }
    async fn push_token(&self, env: &EnvironmentId) -> Result<Option<String>, StoreError> {
        self.inner.push_token(env).await
    }
    async fn put_subscription(&self, sub: &PushSubscription) -> Result<(), StoreError> {
        self.inner.put_subscription(sub).await
    }
    async fn subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<Option<PushSubscription>, StoreError> {
        self.inner.subscription(env, id).await
    }
    async fn subscriptions(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<PushSubscription>, StoreError> {
        self.inner.subscriptions(env).await
    }
    async fn touch_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
        seen: DateTime<Utc>,
        watermark: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.inner
            .touch_subscription(env, id, seen, watermark)
            .await
    }
    async fn delete_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<(), StoreError> {
        self.inner.delete_subscription(env, id).await
    }
}
