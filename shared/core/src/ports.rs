//! The ports: what the core needs from the outside world. Adapters implement them (LN OData,
//! EWS, Graph, SQLite, DynamoDB, SQS, in-process queue); the sync service only sees these traits.
//!
//! All traits are object safe (`async_trait`), because the Exchange backend and the store are
//! chosen at run time from configuration.

use crate::calendar::{CalendarEvent, CreatedEvent, EventRead, EventUpdate, NewEvent};
use crate::error::{ItemError, LnError, MailboxError, QueueError, StoreError};
use crate::ids::*;
use crate::model::*;
use crate::normalize::ContactFields;
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// LN
// ---------------------------------------------------------------------------------------------

/// The calendar window of R15/R16: events whose end is at or after `start` and whose start is
/// before `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Fields of an activity lnsync creates in LN from an Exchange event (R22), deep-inserted with
/// its attendees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActivity {
    pub activity: Activity,
}

/// A partial update of an activity; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityPatch {
    pub subject: Option<Option<String>>,
    pub location: Option<Option<String>>,
    pub information: Option<Option<String>>,
    pub all_day: Option<bool>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub reminder_set: Option<bool>,
    pub reminder_value: Option<Option<u32>>,
    pub reminder_unit: Option<Option<IntervalUnit>>,
    pub show_time_as: Option<ShowTimeAs>,
    pub status: Option<ActivityStatus>,
    pub synchronize: Option<bool>,
    /// Only ever Appointment ↔ Call (the "Call" category in Exchange, R20); never a Task or
    /// Mailing.
    pub activity_type: Option<ActivityType>,
}

/// A partial update of an attendee line (flags of R19, responses of R21).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttendeePatch {
    pub attendance_status: Option<AttendanceStatus>,
    pub sent_to_synchronizer: Option<bool>,
    pub synchronized: Option<bool>,
}

/// One LN environment (company) behind the ION API gateway. An instance is bound to one
/// environment: credentials and company come from that environment's configuration.
#[async_trait]
pub trait LnGateway: Send + Sync {
    /// The settings singleton (R2).
    async fn settings(&self) -> Result<Settings, LnError>;
    /// All sync users, active or not (R4).
    async fn sync_users(&self) -> Result<Vec<SyncUser>, LnError>;
    async fn employees(&self) -> Result<Vec<Employee>, LnError>;
    /// Contacts with `lastModified >= since` (all when `None`), ordered by
    /// (`lastModified`, `contact`), following every page. `>=` rather than `>` so rows that share
    /// the boundary timestamp are re-read (and skipped by hash) instead of lost.
    async fn contacts_changed_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Contact>, LnError>;
    /// Contacts by key (used by repair mode to restore LN values).
    async fn contacts_by_key(&self, keys: &[ContactCode]) -> Result<Vec<Contact>, LnError>;
    /// Rows of `DeletedObjects` of one entity with `deletedAt >= since` (all when `None`).
    async fn deleted_since(
        &self,
        entity: DeletedEntity,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedObject>, LnError>;
    /// Activities with their attendees, ordered by (`lastModified`, key), following every page.
    ///
    /// Without `changed_since`: the appointments and calls in the window (end at or after its
    /// start, start before its end), a full listing. With `changed_since`: **every** activity
    /// with `lastModified >= changed_since` whose start is before the window's end, of any type
    /// and any end, so the core also hears of activities that left the window (moved into the
    /// past: unlinked, R16) or stopped being an appointment or call (cancelled, R15/R29).
    async fn activities_in_window(
        &self,
        window: Window,
        changed_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Activity>, LnError>;
    async fn activity(&self, key: &ActivityKey) -> Result<Option<Activity>, LnError>;
    /// Deep insert; an existing `externalReference` yields [`LnError::AlreadyExists`].
    async fn create_activity(&self, new: &NewActivity) -> Result<Activity, LnError>;
    /// `If-Match: version`; stale gives [`LnError::PreconditionFailed`].
    async fn update_activity(
        &self,
        key: &ActivityKey,
        version: &LnVersion,
        patch: &ActivityPatch,
    ) -> Result<Activity, LnError>;
    /// `If-Match: version` (`*` when `None`); stale gives [`LnError::PreconditionFailed`].
    /// Returns the line as written and the parent activity's version after the write (an
    /// attendee change moves it), or `None` when LN did not report it: the caller's activity
    /// version is then stale, which costs a 412 and a re-read on its next activity write.
    async fn update_attendee(
        &self,
        activity: &ActivityKey,
        line: u32,
        version: Option<&LnVersion>,
        patch: &AttendeePatch,
    ) -> Result<(Attendee, Option<LnVersion>), LnError>;
    /// Adds an attendee line (an attendee added in Exchange, R22/R23); LN assigns the line.
    async fn add_attendee(
        &self,
        activity: &ActivityKey,
        attendee: &Attendee,
    ) -> Result<Attendee, LnError>;
    /// Removes an attendee line (an attendee removed in Exchange).
    async fn delete_attendee(
        &self,
        activity: &ActivityKey,
        line: u32,
        version: Option<&LnVersion>,
    ) -> Result<(), LnError>;
    async fn delete_activity(&self, key: &ActivityKey, version: &LnVersion) -> Result<(), LnError>;
}

// ---------------------------------------------------------------------------------------------
// Exchange
// ---------------------------------------------------------------------------------------------

/// An Exchange item as lnsync addresses it: its id and the version that a write must name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ItemRef {
    pub id: ExchangeItemId,
    pub version: ExchangeVersion,
}

/// An item that carries lnsync's stamp (R10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedItem {
    pub stamp: CrmStamp,
    pub item: ItemRef,
}

/// A contact to create in the "CRM Contacts" folder, with its stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub stamp: CrmStamp,
    pub fields: ContactFields,
}

/// A full overwrite of a contact we own: every mapped field is set or cleared (R12, R13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactUpdate {
    pub item: ItemRef,
    pub stamp: CrmStamp,
    pub fields: ContactFields,
}

/// The per-item result of a batched mailbox call, in request order.
pub type ItemOutcome<T> = Result<T, ItemError>;

/// An incremental folder cursor (EWS SyncState, Graph deltaLink); opaque to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderCursor(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderChange {
    /// Created or updated; `stamp` is our CrmId when the item carries one.
    Upsert {
        item: ItemRef,
        stamp: Option<CrmStamp>,
    },
    Deleted {
        id: ExchangeItemId,
    },
}

/// One page of folder changes. Call again with `cursor` while `more` is true; persist the
/// cursor only after the changes are applied (R35).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderChanges {
    pub changes: Vec<FolderChange>,
    pub cursor: FolderCursor,
    pub more: bool,
}

/// A push subscription to create on a user's calendar (R31).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    /// Where the server POSTs notifications: `{push url}/ews/{environment}/{token}` (EWS) or
    /// `{push url}/graph/{environment}` (Graph).
    pub url: String,
    /// EWS `StatusFrequency` in minutes (1–1440); unused by Graph.
    pub status_frequency_minutes: u32,
    /// Resume from this watermark (events since it are delivered); `None` starts now. EWS only:
    /// Graph subscriptions cannot resume, a calendar pull covers the gap.
    pub watermark: Option<String>,
    /// Graph `clientState`: the secret every notification must carry back (≤ 128 chars).
    pub client_state: Option<Secret>,
    /// Graph `lifecycleNotificationUrl` (`reauthorizationRequired`, `subscriptionRemoved`,
    /// `missed`).
    pub lifecycle_url: Option<String>,
    /// Graph: the expiry asked for (the server may shorten it; the answer says).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A subscription the server created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub id: SubscriptionId,
    /// The watermark the subscription starts at.
    pub watermark: Option<String>,
    /// When the server drops it unless renewed (Graph); `None` for EWS push.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The "CRM Contacts" folder of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactFolder {
    pub id: FolderId,
    /// Created by this call: it is empty, so there is nothing to look up in it.
    pub created: bool,
}

/// One user's Exchange mailbox, reached through EWS or Graph. Implementations batch, honour
/// throttling hints per mailbox (R37) and map per-item failures to [`ItemError`].
#[async_trait]
pub trait Mailbox: Send + Sync {
    /// Finds the "CRM Contacts" folder under the user's contacts, creating it if missing (R9).
    async fn ensure_contact_folder(
        &self,
        mailbox: &MailboxAddress,
    ) -> Result<ContactFolder, MailboxError>;

    /// Items in `folder` carrying any of `stamps` (R10). Implementations may list the folder
    /// when that is cheaper than a restriction per stamp.
    async fn find_stamped_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError>;

    /// Creates contacts, one outcome per input in order. Callers pass at most
    /// [`Mailbox::max_batch`] items, so each call is one write request.
    async fn create_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        contacts: &[NewContact],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError>;

    /// Overwrites contacts in `folder`; a stale version gives [`ItemError::Conflict`].
    ///
    /// `folder` scopes this and the two calls below: an item no longer in it counts as
    /// [`ItemError::NotFound`] by the id the core holds. A contact deleted in Outlook goes to
    /// Deleted Items, where Graph's immutable id still reaches it (EWS's id changes with the
    /// move); it must read as gone, not be written there.
    async fn update_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        updates: &[ContactUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError>;

    /// Deletes items of `folder` for good. Already-gone items give [`ItemError::NotFound`].
    async fn delete_items(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError>;

    /// Current versions of items of `folder` (to retry a write after a conflict).
    async fn current_versions(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError>;

    /// One page of changes in the contact folder since `cursor` (all items when `None`).
    /// An expired cursor gives [`MailboxError::InvalidCursor`] (R38).
    async fn sync_contact_folder(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        cursor: Option<&FolderCursor>,
    ) -> Result<FolderChanges, MailboxError>;

    /// The most items one write call may carry.
    fn max_batch(&self) -> usize {
        100
    }

    // --- Calendar (R15–R30). Defaults say "unsupported" so a backend can grow into them. ---

    /// Every single event, occurrence and exception of the user's calendar that overlaps
    /// `window` (EWS FindItem with CalendarView, paged, then GetItem in batches; Graph
    /// calendarView). Used for the first run, a reset (R38) and the window's new edge.
    async fn calendar_view(
        &self,
        mailbox: &MailboxAddress,
        window: Window,
    ) -> Result<Vec<CalendarEvent>, MailboxError> {
        let _ = (mailbox, window);
        Err(MailboxError::Unsupported("calendar view"))
    }

    /// One page of item changes in the calendar folder since `cursor` (all items when
    /// `None`): singles and recurring masters, ids and versions only (EWS SyncFolderItems).
    /// An expired cursor gives [`MailboxError::InvalidCursor`] (R38).
    ///
    /// `window` is the run's sync window. EWS ignores it (SyncFolderItems sees the whole
    /// folder); Graph's `calendarView/delta` is bound to the window its first round named, so a
    /// cursor whose window no longer covers `window` is answered `InvalidCursor`.
    async fn sync_calendar(
        &self,
        mailbox: &MailboxAddress,
        cursor: Option<&FolderCursor>,
        window: Window,
    ) -> Result<FolderChanges, MailboxError> {
        let _ = (mailbox, cursor, window);
        Err(MailboxError::Unsupported("calendar sync"))
    }

    /// Reads changed items named by [`Mailbox::sync_calendar`], one outcome per id in order:
    /// an event, or for a recurring master its occurrences inside `window` (R25).
    async fn get_events(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
        window: Window,
    ) -> Result<Vec<ItemOutcome<EventRead>>, MailboxError> {
        let _ = (mailbox, ids, window);
        Err(MailboxError::Unsupported("calendar reads"))
    }

    /// Calendar items carrying any of `stamps` (R10, crash recovery of creates).
    async fn find_stamped_events(
        &self,
        mailbox: &MailboxAddress,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let _ = (mailbox, stamps);
        Err(MailboxError::Unsupported("calendar stamp lookup"))
    }

    /// Creates events in the user's calendar as organizer, sending invitations to the
    /// attendees (R18). At most [`Mailbox::max_batch`] per call.
    async fn create_events(
        &self,
        mailbox: &MailboxAddress,
        events: &[NewEvent],
    ) -> Result<Vec<ItemOutcome<CreatedEvent>>, MailboxError> {
        let _ = (mailbox, events);
        Err(MailboxError::Unsupported("calendar writes"))
    }

    /// Overwrites events by version; a stale version gives [`ItemError::Conflict`]
    /// (EWS `ErrorIrresolvableConflict`, Graph 412).
    async fn update_events(
        &self,
        mailbox: &MailboxAddress,
        updates: &[EventUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let _ = (mailbox, updates);
        Err(MailboxError::Unsupported("calendar writes"))
    }

    /// Cancels meetings the user organizes, sending cancellations (R29), or deletes plain
    /// appointments. Already-gone items give [`ItemError::NotFound`].
    async fn cancel_events(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        let _ = (mailbox, ids);
        Err(MailboxError::Unsupported("calendar writes"))
    }

    // --- Push (R31–R33) ---

    /// Subscribes to created/modified/deleted/moved events of the user's calendar, delivered
    /// to `request.url`. A watermark the server no longer knows gives
    /// [`MailboxError::InvalidCursor`] (EWS `ErrorInvalidWatermark`): subscribe without one
    /// and let a pull catch up.
    async fn subscribe_calendar(
        &self,
        mailbox: &MailboxAddress,
        request: &PushRequest,
    ) -> Result<Subscribed, MailboxError> {
        let _ = (mailbox, request);
        Err(MailboxError::Unsupported("push subscriptions"))
    }

    /// Extends a subscription that expires (Graph `PATCH /subscriptions/{id}`), answering the
    /// new expiry. One the server no longer knows gives [`MailboxError::SubscriptionNotFound`]:
    /// subscribe again and let a pull catch up.
    async fn renew_subscription(
        &self,
        mailbox: &MailboxAddress,
        id: &SubscriptionId,
        expires_at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, MailboxError> {
        let _ = (mailbox, id, expires_at);
        Err(MailboxError::Unsupported("subscription renewal"))
    }

    /// Ends a subscription at the server (Graph `DELETE /subscriptions/{id}`). EWS push
    /// subscriptions end by answering their next notification `Unsubscribe`, so the default
    /// does nothing. An unknown subscription is not an error.
    async fn unsubscribe(
        &self,
        mailbox: &MailboxAddress,
        id: &SubscriptionId,
    ) -> Result<(), MailboxError> {
        let _ = (mailbox, id);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// Where lnsync keeps links, cursors and bookkeeping (SQLite embedded, DynamoDB serverless).
/// Every implementation passes the same contract suite (`tests/suite`).
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn environment(
        &self,
        env: &EnvironmentId,
    ) -> Result<Option<EnvironmentState>, StoreError>;
    async fn environments(&self) -> Result<Vec<EnvironmentState>, StoreError>;
    async fn put_environment(&self, state: &EnvironmentState) -> Result<(), StoreError>;

    async fn user_state(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Option<UserState>, StoreError>;
    async fn user_states(&self, env: &EnvironmentId) -> Result<Vec<UserState>, StoreError>;
    async fn put_user_state(&self, state: &UserState) -> Result<(), StoreError>;

    /// The links of `keys` that exist (any order). O(keys), never a scan of all links.
    async fn links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<Vec<Link>, StoreError>;
    async fn link_by_exchange_id(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        id: &ExchangeItemId,
    ) -> Result<Option<Link>, StoreError>;
    /// Every link of (user, kind). For full re-reads (R38) and the daily window roll (R16)
    /// only; incremental runs use keyed lookups.
    async fn all_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<Vec<Link>, StoreError>;
    /// Links whose `ical_uid` is `uid` (a series' occurrences, or one meeting, R24/R25).
    async fn links_by_ical_uid(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        uid: &IcalUid,
    ) -> Result<Vec<Link>, StoreError>;
    /// Links whose `event.series_id` is `series` (a deleted recurring master, R25).
    async fn links_by_series(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        series: &ExchangeItemId,
    ) -> Result<Vec<Link>, StoreError>;
    async fn link_count(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<u64, StoreError>;
    /// Inserts or replaces links, batched by the implementation.
    async fn put_links(&self, links: &[Link]) -> Result<(), StoreError>;
    async fn delete_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError>;

    async fn cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<Option<Cursor>, StoreError>;
    /// Writes `cursor.value` if the stored revision still equals `cursor.revision` (0 = absent),
    /// and returns the new revision; otherwise [`StoreError::Conflict`].
    async fn put_cursor(&self, cursor: &Cursor) -> Result<u64, StoreError>;
    async fn delete_cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<(), StoreError>;

    /// Takes the (user, kind) lease for `ttl` if it is free, expired, or already `holder`'s
    /// (R36). Returns whether `holder` now holds it.
    async fn acquire_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    async fn release_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
    ) -> Result<(), StoreError>;

    /// Records that a job id was processed; false when it already was (redelivery, R34).
    async fn mark_job_done(
        &self,
        job: &JobId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    /// The latest run per (user, kind) of an environment.
    async fn last_runs(&self, env: &EnvironmentId) -> Result<Vec<RunRecord>, StoreError>;

    /// Replaces the problem of (kind, ln_key) for the user, if any, with `problem`.
    async fn put_problem(&self, problem: &ItemProblem) -> Result<(), StoreError>;
    async fn clear_problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError>;
    async fn problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Vec<ItemProblem>, StoreError>;

    // --- Push (R31–R33) ---

    /// The environment's push token (the secret part of its EWS notification URL), creating it
    /// from `candidate` if the environment has none. Concurrent callers all get the one token
    /// that was stored first; a stored token is never replaced.
    async fn ensure_push_token(
        &self,
        env: &EnvironmentId,
        candidate: &str,
    ) -> Result<String, StoreError>;
    /// The environment's push token, if it has one.
    async fn push_token(&self, env: &EnvironmentId) -> Result<Option<String>, StoreError>;
    /// Inserts or replaces a subscription (by environment and id).
    async fn put_subscription(&self, sub: &PushSubscription) -> Result<(), StoreError>;
    async fn subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<Option<PushSubscription>, StoreError>;
    /// Every subscription of the environment, active or not, in any order.
    async fn subscriptions(&self, env: &EnvironmentId)
    -> Result<Vec<PushSubscription>, StoreError>;
    /// Records a notification: `last_seen` moves to `seen` and, when given, `watermark` is
    /// stored, but only if the subscription exists and `seen` is not older than its
    /// `last_seen` (a late, out-of-order delivery never moves either back). Returns whether it
    /// was applied; an unknown subscription is `false` and creates nothing.
    async fn touch_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
        seen: DateTime<Utc>,
        watermark: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Removes a subscription; removing an absent one is not an error.
    async fn delete_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

/// A queue's handle on one delivered message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

/// A job as delivered: it may be delivered more than once (R34).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub job: Job,
    pub receipt: Receipt,
    /// 1 on first delivery.
    pub receive_count: u32,
}

/// A FIFO queue with one ordered group per (environment, user) (R36): while a group's message
/// is in flight, no later message of that group is delivered. Jobs with the same id sent within
/// the de-duplication window are delivered once. A message received more than the configured
/// number of times moves to the dead-letter queue (R37).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends jobs (the implementation batches; SQS takes 10 per call).
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError>;
    /// Up to `max` deliveries, waiting at most `wait` for the first.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;
    /// The job is done: delete it.
    async fn complete(&self, receipt: &Receipt) -> Result<(), QueueError>;
    /// Make the job visible again after `delay` (a throttling hint, R37) instead of sleeping.
    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError>;
    /// Jobs that ended in the dead-letter queue.
    async fn dead_letters(&self) -> Result<Vec<Job>, QueueError>;
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// The only source of "now" for the service, so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
