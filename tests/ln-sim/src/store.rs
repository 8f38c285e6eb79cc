//! The in-memory LN database: one [`CompanyData`] per LN company, with server-maintained etags,
//! `lastModified` stamps, the `DeletedObjects` audit trail and a change-event stream.
//!
//! Both the OData handlers and the Rust/admin API go through the same operations here, so a test
//! edit behaves exactly like an edit made in LN (etag and `lastModified` move, deletions are
//! audited, attendee changes touch their activity). Every write to a contact, activity or
//! attendee is also published as a [`ChangeEvent`]. A company's push webhook endpoint lives here
//! too, next to its settings: whether a change is pushed is decided inside the write's lock (a
//! [`PushJob`] for [`crate::webhook`]), so enabling, disabling and writes happen in one order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::clock::{SimClock, truncate_ms};
use crate::model::{
    Activity, ActivityType, Attendance, Attendee, AttendeeType, Contact, DeletedObject, Employee,
    EntityKind, Settings, SyncUser, attendee_key,
};
use crate::query::Row;
use crate::schema::{self, EntitySet, Field, FieldType};
use crate::seed::{CompanySeed, Seed};

/// Why a store operation failed; the HTTP layer maps each variant to an OData error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("company '{0}' does not exist")]
    UnknownCompany(String),
    #[error("{entity_set}({key}) does not exist")]
    NotFound {
        entity_set: &'static str,
        key: String,
    },
    #[error(
        "{entity_set}({key}) was modified: If-Match {given} does not match the current {current}"
    )]
    PreconditionFailed {
        entity_set: &'static str,
        key: String,
        given: String,
        current: String,
    },
    /// A create collided with an existing row; `existing_key` identifies it.
    #[error("{message}")]
    Conflict {
        message: String,
        target: &'static str,
        existing_key: String,
    },
    #[error("invalid value for '{field}': {message}")]
    Validation { field: String, message: String },
}

fn validation(field: impl Into<String>, message: impl Into<String>) -> StoreError {
    StoreError::Validation {
        field: field.into(),
        message: message.into(),
    }
}

/// A stored row with its server-maintained metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<T> {
    pub data: T,
    /// Version number; rendered as `W/"<n>"`. Unique across the simulator's lifetime, so an etag
    /// from before a reset never matches again.
    pub version: u64,
    pub last_modified: DateTime<Utc>,
}

impl<T> Record<T> {
    pub fn etag(&self) -> String {
        format_etag(self.version)
    }
}

/// Render a version as a weak etag.
pub fn format_etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// An activity with its attendees (keyed by line).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRecord {
    pub record: Record<Activity>,
    pub attendees: BTreeMap<u32, Record<Attendee>>,
}

/// All data of one LN company.
#[derive(Debug, Clone)]
pub struct CompanyData {
    pub settings: Record<Settings>,
    pub sync_users: BTreeMap<String, Record<SyncUser>>,
    pub employees: BTreeMap<String, Record<Employee>>,
    pub contacts: BTreeMap<String, Record<Contact>>,
    pub activities: BTreeMap<String, ActivityRecord>,
    /// Audit trail with an insertion sequence, which keeps paging stable even when two rows share
    /// entity, key and `deletedAt`.
    pub deleted: Vec<(u64, DeletedObject)>,
    /// Where LN posts this company's push webhooks; pushes also need `settings.pushEnabled`.
    /// Part of the company, so seeding the company anew drops it along with the settings.
    pub webhook: Option<WebhookEndpoint>,
    next_activity: u64,
    next_contact: u64,
}

/// A company's push webhook endpoint (`docs/ln-api.md`, "LN push webhook").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// The full endpoint, e.g. `http://127.0.0.1:8787/ln/prod`.
    pub url: String,
    /// The HMAC-SHA256 key of the signature header.
    pub secret: String,
    /// New on every (re)configuration; deliveries queued under an older one are cancelled.
    pub generation: u64,
}

/// A change LN pushes, with the endpoint it goes to as configured at the time of the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushJob {
    pub event: ChangeEvent,
    pub endpoint: WebhookEndpoint,
}

/// The `If-Match` precondition of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header: LN accepts the write (lenient), the request log notes it.
    Absent,
    /// `*`, or an internal edit that must not be blocked.
    Any,
    /// One or more etags; the write succeeds when any matches.
    Tags(Vec<String>),
}

impl IfMatch {
    /// Parse an `If-Match` header value.
    pub fn from_header(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("") => IfMatch::Absent,
            Some("*") => IfMatch::Any,
            Some(list) => IfMatch::Tags(list.split(',').map(|t| t.trim().to_string()).collect()),
        }
    }

    fn check(&self, entity_set: &'static str, key: &str, version: u64) -> Result<(), StoreError> {
        let IfMatch::Tags(tags) = self else {
            return Ok(());
        };
        // Clients echo the etag in its weak form; compare on the opaque part so `"3"` and `W/"3"`
        // are the same version.
        let current = version.to_string();
        if tags
            .iter()
            .any(|t| t.trim_start_matches("W/").trim_matches('"') == current)
        {
            Ok(())
        } else {
            Err(StoreError::PreconditionFailed {
                entity_set,
                key: key.to_string(),
                given: tags.join(", "),
                current: format_etag(version),
            })
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
}

/// One write to a contact, activity or attendee, in the shape of the LN push webhook body plus
/// the company it happened in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    pub company: String,
    pub entity: EntityKind,
    pub key: String,
    pub change: ChangeKind,
    pub last_modified: DateTime<Utc>,
    pub id: String,
}

/// An attendee write together with the etag its parent activity moved to in the same step.
///
/// Any attendee change moves the parent's etag; a client that only learnt the attendee's new
/// etag would hold a stale activity version and get a 412 on its next activity write. Reading
/// the activity afterwards would be racy (another edit could slip in between), so the write
/// reports the parent's etag itself (the OData layer serves it as `X-Lnsync-Activity-ETag`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttendeeChange {
    pub attendee: Record<Attendee>,
    pub activity_etag: String,
}

/// A new activity and its inline attendees (deep insert).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewActivity {
    pub activity: Activity,
    pub attendees: Vec<Attendee>,
}

#[derive(Debug, Default)]
struct Inner {
    companies: BTreeMap<String, CompanyData>,
    last_version: u64,
    next_deleted_seq: u64,
    /// The push webhook's queue, once something delivers from it.
    push: Option<mpsc::UnboundedSender<PushJob>>,
}

impl Inner {
    fn bump(&mut self) -> u64 {
        self.last_version += 1;
        self.last_version
    }

    fn company(&mut self, company: &str) -> Result<&mut CompanyData, StoreError> {
        self.companies
            .get_mut(company)
            .ok_or_else(|| StoreError::UnknownCompany(company.to_string()))
    }
}

/// Shared handle to the simulator's data. Cloning shares the data.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    clock: SimClock,
    events: broadcast::Sender<ChangeEvent>,
}

/// Collects what a write did; its events are published once the write succeeded.
struct Tx<'a> {
    inner: MutexGuard<'a, Inner>,
    company: String,
    now: DateTime<Utc>,
    events: Vec<ChangeEvent>,
}

impl Tx<'_> {
    /// `data` as a new version written now.
    fn record<T>(&mut self, data: T) -> Record<T> {
        Record {
            data,
            version: self.inner.bump(),
            last_modified: self.now,
        }
    }

    fn data(&mut self) -> Result<&mut CompanyData, StoreError> {
        let company = self.company.clone();
        self.inner.company(&company)
    }

    fn event(&mut self, entity: EntityKind, key: String, change: ChangeKind) {
        self.events.push(ChangeEvent {
            company: self.company.clone(),
            entity,
            key,
            change,
            last_modified: self.now,
            id: uuid::Uuid::new_v4().to_string(),
        });
    }

    fn audit(&mut self, entity: EntityKind, key: String) -> Result<(), StoreError> {
        let now = self.now;
        self.inner.next_deleted_seq += 1;
        let seq = self.inner.next_deleted_seq;
        self.data()?.deleted.push((
            seq,
            DeletedObject {
                entity,
                key: key.clone(),
                deleted_at: now,
            },
        ));
        self.event(entity, key, ChangeKind::Deleted);
        Ok(())
    }

    /// Give an activity a new version and `lastModified` (after any change to it or its
    /// attendees); returns the new etag.
    fn touch_activity(&mut self, key: &str) -> Result<String, StoreError> {
        let version = self.inner.bump();
        let now = self.now;
        let activity = activity_mut(self.data()?, key)?;
        activity.record.version = version;
        activity.record.last_modified = now;
        Ok(format_etag(version))
    }
}

/// The delivery LN makes for `event`: activities and attendees only (contacts are pulled), while
/// the company has an endpoint and `pushEnabled`.
fn push_job(inner: &Inner, event: &ChangeEvent) -> Option<PushJob> {
    if event.entity == EntityKind::Contact {
        return None;
    }
    let data = inner.companies.get(&event.company)?;
    if !data.settings.data.push_enabled {
        return None;
    }
    Some(PushJob {
        event: event.clone(),
        endpoint: data.webhook.clone()?,
    })
}

fn activity_mut<'a>(
    data: &'a mut CompanyData,
    key: &str,
) -> Result<&'a mut ActivityRecord, StoreError> {
    data.activities
        .get_mut(key)
        .ok_or_else(|| StoreError::NotFound {
            entity_set: "Activities",
            key: format!("'{key}'"),
        })
}

fn attendee_not_found(activity: &str, line: u32) -> StoreError {
    StoreError::NotFound {
        entity_set: "Attendees",
        key: format!("activity='{activity}',line={line}"),
    }
}

impl Store {
    pub fn new(clock: SimClock) -> Self {
        // Capacity bounds memory if nobody listens; lagging subscribers are told how much they
        // missed, which is acceptable for hints like webhooks.
        let (events, _) = broadcast::channel(1024);
        Self {
            inner: Arc::default(),
            clock,
            events,
        }
    }

    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// Receive every subsequent change to contacts, activities and attendees.
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.events.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every write validates before mutating, so a panic mid-operation (a bug) leaves at worst
        // one partially applied change; continuing beats wedging every later test request.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write<R>(
        &self,
        company: &str,
        op: impl FnOnce(&mut Tx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut tx = Tx {
            inner: self.lock(),
            company: company.to_string(),
            now: self.clock.now(),
            events: Vec::new(),
        };
        tx.data()?;
        let result = op(&mut tx)?;
        // Publish before unlocking: two writers releasing the lock and then racing to publish
        // could reorder their events, and the push webhook promises per-company order. Neither
        // send waits for receivers, so holding the lock for them costs nothing.
        for event in std::mem::take(&mut tx.events) {
            if let Some(job) = push_job(&tx.inner, &event)
                && let Some(push) = &tx.inner.push
            {
                // A closed queue means the simulator is shutting down.
                let _ = push.send(job);
            }
            // Nobody listening is normal.
            let _ = self.events.send(event);
        }
        drop(tx);
        Ok(result)
    }

    /// Read a company's data under the lock.
    pub fn read<R>(
        &self,
        company: &str,
        f: impl FnOnce(&CompanyData) -> R,
    ) -> Result<R, StoreError> {
        let inner = self.lock();
        inner
            .companies
            .get(company)
            .map(f)
            .ok_or_else(|| StoreError::UnknownCompany(company.to_string()))
    }

    /// Queue of the changes LN pushes from now on (replacing any earlier queue). The LN push
    /// webhook's dispatcher is the one consumer.
    pub(crate) fn push_queue(&self) -> mpsc::UnboundedReceiver<PushJob> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().push = Some(tx);
        rx
    }

    /// Push `company`'s activity and attendee changes to `url`, signed with `secret`, and set
    /// its `pushEnabled`: from the next write on, as one step.
    pub fn enable_webhook(&self, company: &str, url: &str, secret: &str) -> Result<(), StoreError> {
        let parsed =
            url::Url::parse(url).map_err(|e| validation("url", format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(validation("url", "must be an http or https URL"));
        }
        if secret.is_empty() {
            // An empty HMAC key lets anyone sign; the receiver refuses it, so refuse it here.
            return Err(validation("secret", "must not be empty"));
        }
        self.write(company, |tx| {
            let generation = tx.inner.bump();
            let mut settings = tx.data()?.settings.data.clone();
            settings.push_enabled = true;
            let record = tx.record(settings);
            let data = tx.data()?;
            data.settings = record;
            data.webhook = Some(WebhookEndpoint {
                url: url.to_string(),
                secret: secret.to_string(),
                generation,
            });
            Ok(())
        })
    }

    /// Stop pushing `company`'s changes: drop its endpoint (cancelling deliveries not yet made)
    /// and clear its `pushEnabled`.
    pub fn disable_webhook(&self, company: &str) -> Result<(), StoreError> {
        self.write(company, |tx| {
            let mut settings = tx.data()?.settings.data.clone();
            settings.push_enabled = false;
            let record = tx.record(settings);
            let data = tx.data()?;
            data.settings = record;
            data.webhook = None;
            Ok(())
        })
    }

    /// Drop all companies.
    pub fn reset(&self) {
        self.lock().companies.clear();
    }

    pub fn companies(&self) -> Vec<String> {
        self.lock().companies.keys().cloned().collect()
    }

    pub fn has_company(&self, company: &str) -> bool {
        self.lock().companies.contains_key(company)
    }

    /// Load a seed; each company in it replaces any existing company of that name.
    pub fn seed(&self, seed: &Seed) -> Result<(), StoreError> {
        // Build every company first so an invalid seed changes nothing.
        let mut inner = self.lock();
        let mut built = Vec::new();
        for company in &seed.companies {
            built.push((
                company.company.clone(),
                self.build_company(&mut inner, company)?,
            ));
        }
        for (name, data) in built {
            inner.companies.insert(name, data);
        }
        Ok(())
    }

    fn build_company(
        &self,
        inner: &mut Inner,
        seed: &CompanySeed,
    ) -> Result<CompanyData, StoreError> {
        if seed.company.trim().is_empty() {
            return Err(validation("company", "must not be empty"));
        }
        let now = self.clock.now();
        fn stamp<T>(
            inner: &mut Inner,
            now: DateTime<Utc>,
            data: T,
            at: Option<DateTime<Utc>>,
        ) -> Record<T> {
            Record {
                data,
                version: inner.bump(),
                last_modified: at.map_or(now, truncate_ms),
            }
        }
        let mut data = CompanyData {
            settings: stamp(inner, now, seed.settings.clone(), None),
            sync_users: BTreeMap::new(),
            employees: BTreeMap::new(),
            contacts: BTreeMap::new(),
            activities: BTreeMap::new(),
            deleted: Vec::new(),
            webhook: None,
            next_activity: 1,
            next_contact: 1,
        };
        for user in &seed.sync_users {
            data.sync_users
                .insert(user.user.clone(), stamp(inner, now, user.clone(), None));
        }
        for employee in &seed.employees {
            data.employees.insert(
                employee.employee.clone(),
                stamp(inner, now, employee.clone(), None),
            );
        }
        for contact in &seed.contacts {
            let mut c = contact.contact.clone();
            if c.contact.is_empty() {
                c.contact = next_key("CON", &mut data.next_contact, &data.contacts);
            }
            validate_contact(&c)?;
            data.contacts.insert(
                c.contact.clone(),
                stamp(inner, now, c, contact.last_modified),
            );
        }
        // Explicit keys first so that generated keys never collide with them.
        for activity in &seed.activities {
            bump_counter(&mut data.next_activity, &activity.activity.activity, "ACT");
        }
        for contact in data.contacts.keys() {
            bump_counter(&mut data.next_contact, contact, "CON");
        }
        for activity in &seed.activities {
            let mut a = activity.activity.clone();
            if a.activity.is_empty() {
                a.activity = next_key("ACT", &mut data.next_activity, &data.activities);
            }
            validate_activity(&a)?;
            let mut attendees = BTreeMap::new();
            for attendee in &activity.attendees {
                let mut at = attendee.clone();
                at.activity = a.activity.clone();
                if at.line == 0 {
                    at.line = attendees.keys().next_back().map_or(1, |l| l + 1);
                }
                attendees.insert(at.line, stamp(inner, now, at, None));
            }
            let key = a.activity.clone();
            data.activities.insert(
                key,
                ActivityRecord {
                    record: stamp(inner, now, a, activity.last_modified),
                    attendees,
                },
            );
        }
        Ok(data)
    }

    /// The company's data in seed shape (plus etags, `lastModified` and `deletedObjects`).
    pub fn snapshot(&self, company: &str) -> Result<Value, StoreError> {
        self.read(company, |data| {
            json!({
                "company": company,
                "settings": render_settings(&data.settings),
                "syncUsers": data.sync_users.values().map(render_plain).collect::<Vec<_>>(),
                "employees": data.employees.values().map(render_plain).collect::<Vec<_>>(),
                "contacts": data.contacts.values().map(render_contact).collect::<Vec<_>>(),
                "activities": data.activities.values().map(|a| render_activity(a, true)).collect::<Vec<_>>(),
                "deletedObjects": data.deleted.iter().map(|(seq, d)| render_deleted(*seq, d)).collect::<Vec<_>>(),
            })
        })
    }

    /// Candidate rows of an entity set for the query engine.
    pub fn rows(
        &self,
        company: &str,
        set: EntitySet,
        expand: bool,
    ) -> Result<Vec<Row>, StoreError> {
        self.read(company, |data| match set {
            EntitySet::Settings => vec![Row {
                value: render_settings(&data.settings),
                tiebreak: Vec::new(),
            }],
            EntitySet::SyncUsers => data
                .sync_users
                .iter()
                .map(|(k, r)| keyed_row(render_plain(r), k))
                .collect(),
            EntitySet::Employees => data
                .employees
                .iter()
                .map(|(k, r)| keyed_row(render_plain(r), k))
                .collect(),
            EntitySet::Contacts => data
                .contacts
                .iter()
                .map(|(k, r)| keyed_row(render_contact(r), k))
                .collect(),
            EntitySet::Activities => data
                .activities
                .iter()
                .map(|(k, a)| keyed_row(render_activity(a, expand), k))
                .collect(),
            EntitySet::Attendees => data
                .activities
                .iter()
                .flat_map(|(k, a)| {
                    a.attendees.iter().map(move |(line, r)| Row {
                        value: render_plain(r),
                        tiebreak: vec![json!(k), json!(line)],
                    })
                })
                .collect(),
            EntitySet::DeletedObjects => data
                .deleted
                .iter()
                .map(|(seq, d)| Row {
                    value: render_deleted(*seq, d),
                    tiebreak: vec![json!(seq)],
                })
                .collect(),
        })
    }

    // ----- settings, users, employees (maintained in LN sessions, not by the synchronizer) -----

    pub fn set_settings(&self, company: &str, settings: Settings) -> Result<(), StoreError> {
        self.write(company, |tx| {
            let record = tx.record(settings);
            tx.data()?.settings = record;
            Ok(())
        })
    }

    /// Set the settings' `pushEnabled`, keeping the rest: LN's push switch, which pauses and
    /// resumes the push webhook without touching its endpoint.
    pub fn set_push_enabled(&self, company: &str, enabled: bool) -> Result<(), StoreError> {
        self.write(company, |tx| {
            let mut settings = tx.data()?.settings.data.clone();
            settings.push_enabled = enabled;
            let record = tx.record(settings);
            tx.data()?.settings = record;
            Ok(())
        })
    }

    pub fn upsert_sync_user(&self, company: &str, user: SyncUser) -> Result<(), StoreError> {
        self.write(company, |tx| {
            let record = tx.record(user);
            tx.data()?
                .sync_users
                .insert(record.data.user.clone(), record);
            Ok(())
        })
    }

    pub fn upsert_employee(&self, company: &str, employee: Employee) -> Result<(), StoreError> {
        self.write(company, |tx| {
            let record = tx.record(employee);
            tx.data()?
                .employees
                .insert(record.data.employee.clone(), record);
            Ok(())
        })
    }

    // ----- contacts -----

    pub fn contact(&self, company: &str, key: &str) -> Result<Option<Record<Contact>>, StoreError> {
        self.read(company, |d| d.contacts.get(key).cloned())
    }

    /// Create a contact (the OData POST). An empty key is assigned; an existing key is a 409.
    pub fn create_contact(
        &self,
        company: &str,
        mut contact: Contact,
    ) -> Result<Record<Contact>, StoreError> {
        validate_contact_fields(&contact)?;
        self.write(company, |tx| {
            let version = tx.inner.bump();
            let now = tx.now;
            let data = tx.data()?;
            if contact.contact.is_empty() {
                contact.contact = next_key("CON", &mut data.next_contact, &data.contacts);
            } else if data.contacts.contains_key(&contact.contact) {
                return Err(StoreError::Conflict {
                    message: format!("Contact '{}' already exists", contact.contact),
                    target: "contact",
                    existing_key: contact.contact.clone(),
                });
            }
            let record = Record {
                data: contact,
                version,
                last_modified: now,
            };
            data.contacts
                .insert(record.data.contact.clone(), record.clone());
            tx.event(
                EntityKind::Contact,
                record.data.contact.clone(),
                ChangeKind::Created,
            );
            Ok(record)
        })
    }

    /// Insert or replace a contact as an LN user would (test/demo edit; always bumps the etag).
    pub fn upsert_contact(
        &self,
        company: &str,
        contact: Contact,
    ) -> Result<Record<Contact>, StoreError> {
        validate_contact(&contact)?;
        self.write(company, |tx| {
            let version = tx.inner.bump();
            let now = tx.now;
            let data = tx.data()?;
            let change = if data.contacts.contains_key(&contact.contact) {
                ChangeKind::Modified
            } else {
                ChangeKind::Created
            };
            let record = Record {
                data: contact,
                version,
                last_modified: now,
            };
            data.contacts
                .insert(record.data.contact.clone(), record.clone());
            tx.event(EntityKind::Contact, record.data.contact.clone(), change);
            Ok(record)
        })
    }

    /// Merge `patch` (JSON with the OData names) into a contact.
    pub fn patch_contact(
        &self,
        company: &str,
        key: &str,
        patch: &Value,
        if_match: &IfMatch,
    ) -> Result<Record<Contact>, StoreError> {
        self.write(company, |tx| {
            let version = tx.inner.bump();
            let now = tx.now;
            let data = tx.data()?;
            let current = data.contacts.get(key).ok_or_else(|| StoreError::NotFound {
                entity_set: "Contacts",
                key: format!("'{key}'"),
            })?;
            if_match.check("Contacts", &format!("'{key}'"), current.version)?;
            let updated: Contact = apply_patch(&current.data, patch, schema::CONTACTS, "contact")?;
            validate_contact(&updated)?;
            let record = Record {
                data: updated,
                version,
                last_modified: now,
            };
            data.contacts.insert(key.to_string(), record.clone());
            tx.event(EntityKind::Contact, key.to_string(), ChangeKind::Modified);
            Ok(record)
        })
    }

    /// Delete a contact and record it in `DeletedObjects`.
    pub fn delete_contact(
        &self,
        company: &str,
        key: &str,
        if_match: &IfMatch,
    ) -> Result<(), StoreError> {
        self.write(company, |tx| {
            let data = tx.data()?;
            let current = data.contacts.get(key).ok_or_else(|| StoreError::NotFound {
                entity_set: "Contacts",
                key: format!("'{key}'"),
            })?;
            if_match.check("Contacts", &format!("'{key}'"), current.version)?;
            data.contacts.remove(key);
            tx.audit(EntityKind::Contact, key.to_string())
        })
    }

    // ----- activities and attendees -----

    pub fn activity(&self, company: &str, key: &str) -> Result<Option<ActivityRecord>, StoreError> {
        self.read(company, |d| d.activities.get(key).cloned())
    }

    /// Find an activity by `externalReference`.
    pub fn activity_by_external_reference(
        &self,
        company: &str,
        reference: &str,
    ) -> Result<Option<ActivityRecord>, StoreError> {
        self.read(company, |d| {
            d.activities
                .values()
                .find(|a| a.record.data.external_reference.as_deref() == Some(reference))
                .cloned()
        })
    }

    /// Create an activity with its attendees in one step (the OData deep insert).
    pub fn create_activity(
        &self,
        company: &str,
        new: NewActivity,
    ) -> Result<ActivityRecord, StoreError> {
        let NewActivity {
            mut activity,
            attendees,
        } = new;
        if !activity.activity.is_empty() {
            return Err(validation(
                "activity",
                "the key is assigned by LN and must not be sent",
            ));
        }
        validate_activity(&activity)?;
        self.write(company, |tx| {
            let now = tx.now;
            let data = tx.data()?;
            if let Some(reference) = activity
                .external_reference
                .as_deref()
                .filter(|r| !r.is_empty())
                && let Some(existing) = find_by_reference(data, reference, None)
            {
                return Err(duplicate_reference(reference, existing));
            }
            for (i, attendee) in attendees.iter().enumerate() {
                validate_attendee(data, attendee)
                    .map_err(|e| prefix_field(e, &format!("attendees[{i}]")))?;
            }
            check_single_organizer(attendees.iter())?;
            activity.activity = next_key("ACT", &mut data.next_activity, &data.activities);
            let key = activity.activity.clone();
            let mut lines = BTreeMap::new();
            for (i, mut attendee) in attendees.into_iter().enumerate() {
                attendee.activity = key.clone();
                attendee.line = u32::try_from(i + 1).unwrap_or(u32::MAX);
                lines.insert(attendee.line, attendee);
            }
            let mut record = ActivityRecord {
                record: Record {
                    data: activity,
                    version: 0,
                    last_modified: now,
                },
                attendees: BTreeMap::new(),
            };
            for (line, attendee) in lines {
                let version = tx.inner.bump();
                record.attendees.insert(
                    line,
                    Record {
                        data: attendee,
                        version,
                        last_modified: now,
                    },
                );
            }
            record.record.version = tx.inner.bump();
            tx.data()?.activities.insert(key.clone(), record.clone());
            tx.event(EntityKind::Activity, key.clone(), ChangeKind::Created);
            for line in record.attendees.keys() {
                tx.event(
                    EntityKind::Attendee,
                    attendee_key(&key, *line),
                    ChangeKind::Created,
                );
            }
            Ok(record)
        })
    }

    /// Merge `patch` into an activity. Attendees are changed through their own entity set.
    pub fn patch_activity(
        &self,
        company: &str,
        key: &str,
        patch: &Value,
        if_match: &IfMatch,
    ) -> Result<ActivityRecord, StoreError> {
        if patch.get("attendees").is_some() {
            return Err(validation(
                "attendees",
                "navigation property cannot be changed with PATCH; use the Attendees entity set",
            ));
        }
        self.write(company, |tx| {
            let data = tx.data()?;
            let current = activity_mut(data, key)?;
            if_match.check("Activities", &format!("'{key}'"), current.record.version)?;
            let updated: Activity =
                apply_patch(&current.record.data, patch, schema::ACTIVITIES, "activity")?;
            validate_activity(&updated)?;
            if let Some(reference) = updated
                .external_reference
                .as_deref()
                .filter(|r| !r.is_empty())
                && let Some(existing) = find_by_reference(data, reference, Some(key))
            {
                return Err(duplicate_reference(reference, existing));
            }
            activity_mut(data, key)?.record.data = updated;
            tx.touch_activity(key)?;
            tx.event(EntityKind::Activity, key.to_string(), ChangeKind::Modified);
            activity_mut(tx.data()?, key).cloned()
        })
    }

    /// Delete an activity (and its attendees); all are recorded in `DeletedObjects`.
    pub fn delete_activity(
        &self,
        company: &str,
        key: &str,
        if_match: &IfMatch,
    ) -> Result<(), StoreError> {
        self.write(company, |tx| {
            let data = tx.data()?;
            let current = activity_mut(data, key)?;
            if_match.check("Activities", &format!("'{key}'"), current.record.version)?;
            let removed = data.activities.remove(key);
            for line in removed.iter().flat_map(|r| r.attendees.keys()) {
                tx.audit(EntityKind::Attendee, attendee_key(key, *line))?;
            }
            tx.audit(EntityKind::Activity, key.to_string())
        })
    }

    pub fn attendee(
        &self,
        company: &str,
        activity: &str,
        line: u32,
    ) -> Result<Option<Record<Attendee>>, StoreError> {
        self.read(company, |d| {
            d.activities
                .get(activity)
                .and_then(|a| a.attendees.get(&line))
                .cloned()
        })
    }

    /// Add an attendee to an activity; the line number is assigned as the last line + 1, so the
    /// line of a removed last attendee can be given out again (the contract lets LN reuse
    /// lines; clients must not treat a line as a permanent identity).
    pub fn add_attendee(
        &self,
        company: &str,
        activity: &str,
        mut attendee: Attendee,
    ) -> Result<AttendeeChange, StoreError> {
        self.write(company, |tx| {
            let version = tx.inner.bump();
            let now = tx.now;
            let data = tx.data()?;
            validate_attendee(data, &attendee)?;
            let parent = activity_mut(data, activity)?;
            check_single_organizer(
                parent
                    .attendees
                    .values()
                    .map(|r| &r.data)
                    .chain([&attendee]),
            )?;
            attendee.activity = activity.to_string();
            attendee.line = parent.attendees.keys().next_back().map_or(1, |l| l + 1);
            let record = Record {
                data: attendee,
                version,
                last_modified: now,
            };
            parent.attendees.insert(record.data.line, record.clone());
            let activity_etag = tx.touch_activity(activity)?;
            tx.event(
                EntityKind::Attendee,
                attendee_key(activity, record.data.line),
                ChangeKind::Created,
            );
            tx.event(
                EntityKind::Activity,
                activity.to_string(),
                ChangeKind::Modified,
            );
            Ok(AttendeeChange {
                attendee: record,
                activity_etag,
            })
        })
    }

    /// Merge `patch` into an attendee (flags, status…); moves the parent activity too.
    pub fn patch_attendee(
        &self,
        company: &str,
        activity: &str,
        line: u32,
        patch: &Value,
        if_match: &IfMatch,
    ) -> Result<AttendeeChange, StoreError> {
        self.write(company, |tx| {
            let version = tx.inner.bump();
            let now = tx.now;
            let data = tx.data()?;
            let parent = data
                .activities
                .get(activity)
                .ok_or_else(|| attendee_not_found(activity, line))?;
            let current = parent
                .attendees
                .get(&line)
                .ok_or_else(|| attendee_not_found(activity, line))?;
            if_match.check(
                "Attendees",
                &format!("activity='{activity}',line={line}"),
                current.version,
            )?;
            let updated: Attendee =
                apply_patch(&current.data, patch, schema::ATTENDEES, "activity")?;
            if updated.line != line {
                return Err(validation("line", "key property cannot be changed"));
            }
            validate_attendee(data, &updated)?;
            check_single_organizer(
                parent
                    .attendees
                    .values()
                    .filter(|r| r.data.line != line)
                    .map(|r| &r.data)
                    .chain([&updated]),
            )?;
            let record = Record {
                data: updated,
                version,
                last_modified: now,
            };
            activity_mut(data, activity)?
                .attendees
                .insert(line, record.clone());
            let activity_etag = tx.touch_activity(activity)?;
            tx.event(
                EntityKind::Attendee,
                attendee_key(activity, line),
                ChangeKind::Modified,
            );
            tx.event(
                EntityKind::Activity,
                activity.to_string(),
                ChangeKind::Modified,
            );
            Ok(AttendeeChange {
                attendee: record,
                activity_etag,
            })
        })
    }

    /// Remove an attendee; recorded in `DeletedObjects` and moves the parent activity, whose
    /// new etag is returned.
    pub fn delete_attendee(
        &self,
        company: &str,
        activity: &str,
        line: u32,
        if_match: &IfMatch,
    ) -> Result<String, StoreError> {
        self.write(company, |tx| {
            let data = tx.data()?;
            let parent = data
                .activities
                .get_mut(activity)
                .ok_or_else(|| attendee_not_found(activity, line))?;
            let current = parent
                .attendees
                .get(&line)
                .ok_or_else(|| attendee_not_found(activity, line))?;
            if_match.check(
                "Attendees",
                &format!("activity='{activity}',line={line}"),
                current.version,
            )?;
            parent.attendees.remove(&line);
            let activity_etag = tx.touch_activity(activity)?;
            tx.audit(EntityKind::Attendee, attendee_key(activity, line))?;
            tx.event(
                EntityKind::Activity,
                activity.to_string(),
                ChangeKind::Modified,
            );
            Ok(activity_etag)
        })
    }

    pub fn deleted_objects(&self, company: &str) -> Result<Vec<DeletedObject>, StoreError> {
        self.read(company, |d| {
            d.deleted.iter().map(|(_, o)| o.clone()).collect()
        })
    }
}

fn keyed_row(value: Value, key: &str) -> Row {
    Row {
        value,
        tiebreak: vec![json!(key)],
    }
}

fn find_by_reference<'a>(
    data: &'a CompanyData,
    reference: &str,
    except: Option<&str>,
) -> Option<&'a str> {
    data.activities
        .iter()
        .find(|(k, a)| {
            Some(k.as_str()) != except
                && a.record.data.external_reference.as_deref() == Some(reference)
        })
        .map(|(k, _)| k.as_str())
}

fn duplicate_reference(reference: &str, existing: &str) -> StoreError {
    StoreError::Conflict {
        message: format!(
            "An activity with externalReference '{reference}' already exists: {existing}"
        ),
        target: "activity",
        existing_key: existing.to_string(),
    }
}

/// Generate the next free `PREFIX000001`-style key.
fn next_key<V>(prefix: &str, counter: &mut u64, existing: &BTreeMap<String, V>) -> String {
    loop {
        let key = format!("{prefix}{:06}", *counter);
        *counter += 1;
        if !existing.contains_key(&key) {
            return key;
        }
    }
}

/// Move `counter` past a seeded key of the generated form.
fn bump_counter(counter: &mut u64, key: &str, prefix: &str) {
    if let Some(n) = key.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok()) {
        *counter = (*counter).max(n + 1);
    }
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Our model types serialise infallibly (no maps with non-string keys, no failing impls).
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn with_etag(mut value: Value, etag: String) -> Value {
    if let Value::Object(map) = &mut value {
        map.insert("@odata.etag".into(), Value::String(etag));
    }
    value
}

/// Render an entity whose table has no `lastModified` column.
pub fn render_plain<T: Serialize>(record: &Record<T>) -> Value {
    with_etag(to_value(&record.data), record.etag())
}

/// Audit rows never change; their etag is derived from the insertion sequence (prefixed so it
/// can never equal an entity version).
pub fn render_deleted(seq: u64, deleted: &DeletedObject) -> Value {
    with_etag(to_value(deleted), format!("W/\"d{seq}\""))
}

pub fn render_settings(record: &Record<Settings>) -> Value {
    render_plain(record)
}

pub fn render_contact(record: &Record<Contact>) -> Value {
    let mut value = render_plain(record);
    if let Value::Object(map) = &mut value {
        map.insert("lastModified".into(), to_value(&record.last_modified));
    }
    value
}

pub fn render_attendee(record: &Record<Attendee>) -> Value {
    render_plain(record)
}

pub fn render_activity(activity: &ActivityRecord, expand: bool) -> Value {
    let mut value = render_plain(&activity.record);
    if let Value::Object(map) = &mut value {
        map.insert(
            "lastModified".into(),
            to_value(&activity.record.last_modified),
        );
        if expand {
            let attendees = activity.attendees.values().map(render_attendee).collect();
            map.insert("attendees".into(), Value::Array(attendees));
        }
    }
    value
}

/// Check a JSON object's properties against the schema, naming the first unknown one.
pub fn check_properties(
    object: &Map<String, Value>,
    fields: &'static [Field],
    prefix: &str,
) -> Result<(), StoreError> {
    for (name, value) in object {
        // Annotations (`@odata.etag` echoed back, `@odata.type`) are allowed and ignored.
        if name.starts_with('@') {
            continue;
        }
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        match fields.iter().find(|f| f.name == name) {
            None => return Err(validation(path, "property does not exist")),
            Some(Field {
                ty: FieldType::Complex(inner),
                ..
            }) => {
                if let Value::Object(nested) = value {
                    check_properties(nested, inner, &path)?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Deserialize a payload, naming the field that failed.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, StoreError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        // Build an OData-style path (`attendees[1]/email`) from the segments; the crate's own
        // rendering joins with '.', which is ambiguous next to names like `@odata.etag`.
        let mut field = String::new();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    field.push_str(&format!("[{index}]"))
                }
                serde_path_to_error::Segment::Map { key }
                | serde_path_to_error::Segment::Enum { variant: key } => {
                    if !field.is_empty() {
                        field.push('/');
                    }
                    field.push_str(key);
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = e.into_inner().to_string();
        // serde reports a missing property at its parent; name the property itself.
        if let Some(name) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            field = if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}/{name}")
            };
        }
        validation(field, message)
    })
}

/// Merge a PATCH body into `current` (nested objects merge, everything else replaces) and decode
/// the result. The key property may be repeated but not changed; read-only metadata is ignored.
fn apply_patch<T: Serialize + DeserializeOwned>(
    current: &T,
    patch: &Value,
    fields: &'static [Field],
    key_field: &str,
) -> Result<T, StoreError> {
    let Value::Object(patch) = patch else {
        return Err(validation("", "the request body must be a JSON object"));
    };
    let mut patch = patch.clone();
    patch.remove("lastModified");
    check_properties(&patch, fields, "")?;
    let mut merged = to_value(current);
    if let (Some(given), Some(existing)) = (patch.get(key_field), merged.get(key_field))
        && given != existing
    {
        return Err(validation(key_field, "key property cannot be changed"));
    }
    merge(&mut merged, &Value::Object(patch));
    if let Value::Object(map) = &mut merged {
        map.retain(|k, _| !k.starts_with('@'));
    }
    decode(merged)
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing @ Value::Object(_)) if v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn prefix_field(error: StoreError, prefix: &str) -> StoreError {
    match error {
        StoreError::Validation { field, message } => {
            validation(format!("{prefix}/{field}"), message)
        }
        other => other,
    }
}

fn looks_like_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.'))
}

/// Field checks that do not need the rest of the company.
fn validate_contact_fields(c: &Contact) -> Result<(), StoreError> {
    if let Some(email) = c.email.as_deref().filter(|e| !e.is_empty())
        && !looks_like_email(email)
    {
        return Err(validation(
            "email",
            format!("'{email}' is not an e-mail address"),
        ));
    }
    if let Some(country) = c.address.country.as_deref().filter(|c| !c.is_empty())
        && !(country.len() == 2 && country.chars().all(|ch| ch.is_ascii_uppercase()))
    {
        return Err(validation(
            "address/country",
            format!("'{country}' is not an ISO 3166 alpha-2 code"),
        ));
    }
    if let Some(language) = c.language.as_deref().filter(|l| !l.is_empty())
        && !(language.len() == 2 && language.chars().all(|ch| ch.is_ascii_lowercase()))
    {
        return Err(validation(
            "language",
            format!("'{language}' is not an ISO 639-1 code"),
        ));
    }
    if c.last_name.as_deref().is_none_or(str::is_empty)
        && c.full_name.as_deref().is_none_or(str::is_empty)
    {
        return Err(validation(
            "lastName",
            "a contact needs a last name or a full name",
        ));
    }
    Ok(())
}

fn validate_contact(c: &Contact) -> Result<(), StoreError> {
    if c.contact.trim().is_empty() {
        return Err(validation("contact", "key must not be empty"));
    }
    validate_contact_fields(c)
}

fn validate_activity(a: &Activity) -> Result<(), StoreError> {
    if matches!(
        a.activity_type,
        ActivityType::Appointment | ActivityType::Call
    ) {
        let Some(start) = a.start else {
            return Err(validation("start", "required for appointments and calls"));
        };
        let Some(end) = a.end else {
            return Err(validation("end", "required for appointments and calls"));
        };
        if end < start {
            return Err(validation("end", "must not be before start"));
        }
    }
    if a.reminder_set && (a.reminder_value.is_none() || a.reminder_unit.is_none()) {
        return Err(validation(
            "reminderValue",
            "reminderValue and reminderUnit are required when reminderSet is true",
        ));
    }
    Ok(())
}

fn validate_attendee(data: &CompanyData, a: &Attendee) -> Result<(), StoreError> {
    if let Some(email) = a.email.as_deref().filter(|e| !e.is_empty())
        && !looks_like_email(email)
    {
        return Err(validation(
            "email",
            format!("'{email}' is not an e-mail address"),
        ));
    }
    let code = a.attendee.as_deref().filter(|c| !c.is_empty());
    match a.attendee_type {
        AttendeeType::Employee => match code {
            Some(code) if data.employees.contains_key(code) => Ok(()),
            Some(code) => Err(validation(
                "attendee",
                format!("employee '{code}' does not exist"),
            )),
            None => Err(validation(
                "attendee",
                "an employee attendee needs an employee code",
            )),
        },
        AttendeeType::Contact => match code {
            Some(code) if data.contacts.contains_key(code) => Ok(()),
            Some(code) => Err(validation(
                "attendee",
                format!("contact '{code}' does not exist"),
            )),
            None => Err(validation(
                "attendee",
                "a contact attendee needs a contact code",
            )),
        },
        AttendeeType::Other => {
            if a.email.as_deref().is_none_or(str::is_empty)
                && a.full_name.as_deref().is_none_or(str::is_empty)
            {
                Err(validation(
                    "email",
                    "an attendee of type Other needs an e-mail or a name",
                ))
            } else {
                Ok(())
            }
        }
    }
}

fn check_single_organizer<'a>(
    attendees: impl Iterator<Item = &'a Attendee>,
) -> Result<(), StoreError> {
    if attendees
        .filter(|a| a.attendance == Attendance::MeetingOrganizer)
        .count()
        > 1
    {
        return Err(validation(
            "attendance",
            "an activity has at most one MeetingOrganizer",
        ));
    }
    Ok(())
}
