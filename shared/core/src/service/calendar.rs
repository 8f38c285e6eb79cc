//! The calendar run (R15–R30, `docs/calendar.md`). LN is read once per environment (R14) into a
//! [`CalendarFeed`]; each user's run then reads its calendar incrementally (one
//! `sync_calendar` call when idle), assembles pairs in the user's partition, asks the pure
//! planner (`plan::calendar`) what to do and applies it one pair at a time, saving each pair's
//! link right after its write (R34). Cursors move only when everything they cover is applied
//! (R35).

use super::contacts::UserRun;
use super::{SyncError, SyncOptions};
use crate::calendar::*;
use crate::error::{Classify, ErrorClass, ItemError, LnError, MailboxError, StoreError};
use crate::ids::*;
use crate::model::*;
use crate::plan::calendar::*;
use crate::ports::*;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Calendar tunables of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarOptions {
    /// The window's future side in days (R16).
    pub horizon_days: u32,
    pub conflict_policy: ConflictPolicy,
    /// IANA zone of LN's all-day activities (R20).
    pub time_zone: String,
    /// Copy Private/Confidential Exchange events to LN (R26).
    pub sync_private_events: bool,
}

impl Default for CalendarOptions {
    fn default() -> Self {
        Self {
            horizon_days: 365,
            conflict_policy: ConflictPolicy::NewestWins,
            time_zone: "UTC".into(),
            sync_private_events: false,
        }
    }
}

/// A user's LN activity-feed position (cursor `LnActivities`): the change watermark plus the
/// window end the user last ran with, so activities that entered the window since are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarWatermark {
    pub changes: Option<DateTime<Utc>>,
    pub deletions: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
}

/// The user's Exchange calendar cursor (`ExchangeCalendar`), JSON `{sync, windowEnd, pending}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarCursor {
    pub sync: Option<String>,
    pub window_end: Option<DateTime<Utc>>,
    /// Attendee copies seen before their owner's link existed: R19's *Synchronized* flag is set
    /// once the link appears (checked in the store, no Exchange call).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingCopy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingCopy {
    pub uid: IcalUid,
    pub original_start: Option<DateTime<Utc>>,
    pub owner: UserId,
}

/// At most this many pending copies are kept per user; older ones are dropped.
const MAX_PENDING: usize = 200;

/// The LN side of one environment's calendar run, read once (R14). Serializable so a runtime
/// can hand one read to every user's job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarFeed {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub read_from: CalendarWatermark,
    pub high_water: LnWatermark,
    pub activities: Vec<Activity>,
    pub deletions: Vec<DeletedObject>,
    pub employees: Vec<Employee>,
    /// Sync users of the environment (ownership needs all of them, not only the running one).
    pub users: Vec<SyncUser>,
}

fn newer(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl CalendarFeed {
    /// Three LN requests when idle (activities changed in the window, activity deletions,
    /// employees), plus one for the window's new slice when its end moved.
    pub async fn read(
        ln: &dyn LnGateway,
        window: Window,
        from: CalendarWatermark,
        users: &[SyncUser],
    ) -> Result<Self, LnError> {
        let mut activities = ln.activities_in_window(window, from.changes).await?;
        if from.changes.is_some()
            && let Some(old_end) = from.window_end
            && old_end < window.end
        {
            // Activities that entered the window without changing (R16's roll).
            let slice = Window {
                start: old_end.max(window.start),
                end: window.end,
            };
            let known: HashSet<ActivityKey> =
                activities.iter().map(|a| a.activity.clone()).collect();
            activities.extend(
                ln.activities_in_window(slice, None)
                    .await?
                    .into_iter()
                    .filter(|a| !known.contains(&a.activity)),
            );
        }
        let deletions = ln
            .deleted_since(DeletedEntity::Activity, from.deletions)
            .await?;
        let employees = ln.employees().await?;
        let high_water = LnWatermark {
            changes: newer(
                activities.iter().map(|a| a.last_modified).max(),
                from.changes,
            ),
            deletions: newer(deletions.iter().map(|d| d.deleted_at).max(), from.deletions),
        };
        Ok(Self {
            window_start: window.start,
            window_end: window.end,
            read_from: from,
            high_water,
            activities,
            deletions,
            employees,
            users: users.to_vec(),
        })
    }

    pub fn window(&self) -> Window {
        Window {
            start: self.window_start,
            end: self.window_end,
        }
    }

    /// The part of the feed a user with watermark `w` has not applied yet.
    pub fn for_user(&self, w: &CalendarWatermark) -> (Vec<&Activity>, Vec<&DeletedObject>) {
        let mut latest: BTreeMap<&ActivityKey, &Activity> = BTreeMap::new();
        for a in &self.activities {
            let fresh = w.changes.is_none_or(|c| a.last_modified >= c)
                || w.window_end.is_none_or(|e| a.start >= e);
            if fresh
                && latest
                    .get(&a.activity)
                    .is_none_or(|p| p.last_modified <= a.last_modified)
            {
                latest.insert(&a.activity, a);
            }
        }
        let deletions = self
            .deletions
            .iter()
            .filter(|d| d.entity == DeletedEntity::Activity)
            .filter(|d| w.deletions.is_none_or(|x| d.deleted_at >= x))
            .collect();
        (latest.into_values().collect(), deletions)
    }
}

/// Runs calendar sync for one environment over the ports.
pub struct CalendarSync<'a> {
    pub env: &'a EnvironmentId,
    pub store: &'a dyn StateStore,
    pub clock: &'a dyn Clock,
    pub options: &'a SyncOptions,
}

const LEASE_KIND: &str = "calendar";

fn corrupt(what: &str, e: impl std::fmt::Display) -> SyncError {
    SyncError::Store(StoreError::Corrupt {
        message: format!("{what}: {e}"),
    })
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl CalendarSync<'_> {
    /// The window of a run starting now.
    pub fn window(&self) -> Window {
        window_at(self.clock.now(), self.options.calendar.horizon_days)
    }

    /// One calendar run for `users` (active ones only): LN is read once, then users run.
    pub async fn run(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        users: &[SyncUser],
        holder: &str,
    ) -> Result<Vec<UserRun>, SyncError> {
        let (active, unaddressable): (Vec<&SyncUser>, Vec<&SyncUser>) = users
            .iter()
            .filter(|u| u.active)
            .partition(|u| !u.email.as_str().trim().is_empty());
        let mut runs: Vec<UserRun> = unaddressable
            .into_iter()
            .map(|u| UserRun {
                user: u.user.clone(),
                mailbox: u.email.clone(),
                outcome: RunOutcome::Failed,
                counts: RunCounts::default(),
                error: Some(SyncError::InvalidUser {
                    user: u.user.clone(),
                    reason:
                        "has no e-mail address in LN (ttaad2141m000), so no mailbox to synchronize"
                            .into(),
                }),
            })
            .collect();
        if active.is_empty() {
            return Ok(runs);
        }
        let mut from: Option<CalendarWatermark> = None;
        for user in &active {
            let w = self.ln_watermark(&user.user).await?.0;
            from = Some(match from {
                None => w,
                Some(f) => CalendarWatermark {
                    changes: LnWatermark {
                        changes: f.changes,
                        deletions: f.deletions,
                    }
                    .min(LnWatermark {
                        changes: w.changes,
                        deletions: w.deletions,
                    })
                    .changes,
                    deletions: LnWatermark {
                        changes: f.changes,
                        deletions: f.deletions,
                    }
                    .min(LnWatermark {
                        changes: w.changes,
                        deletions: w.deletions,
                    })
                    .deletions,
                    window_end: match (f.window_end, w.window_end) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        _ => None,
                    },
                },
            });
        }
        let feed = CalendarFeed::read(ln, self.window(), from.unwrap_or_default(), users).await?;
        let synced = futures::stream::iter(active)
            .map(|user| self.run_user(ln, mailbox, user, &feed, holder))
            .buffer_unordered(self.options.user_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        runs.extend(synced);
        Ok(runs)
    }

    /// One user's run under the user's calendar lease, recorded for the console (R39).
    pub async fn run_user(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        feed: &CalendarFeed,
        holder: &str,
    ) -> UserRun {
        let started_at = self.clock.now();
        let leased = self
            .store
            .acquire_lease(
                self.env,
                &user.user,
                LEASE_KIND,
                holder,
                started_at,
                self.options.lease_ttl,
            )
            .await;
        let (outcome, counts, error) = match leased {
            Ok(false) => (
                RunOutcome::Busy,
                RunCounts::default(),
                Some(SyncError::Busy),
            ),
            Err(e) => (RunOutcome::Failed, RunCounts::default(), Some(e.into())),
            Ok(true) => {
                let mut counts = RunCounts::default();
                let result = self.sync_user(ln, mailbox, user, feed, &mut counts).await;
                // A lease we fail to release expires on its own; the run's result stands.
                let _ = self
                    .store
                    .release_lease(self.env, &user.user, LEASE_KIND, holder)
                    .await;
                match result {
                    Ok(()) if counts.errors == 0 && counts.held == 0 => {
                        (RunOutcome::Succeeded, counts, None)
                    }
                    Ok(()) => (RunOutcome::Partial, counts, None),
                    Err(e) => (RunOutcome::Failed, counts, Some(e)),
                }
            }
        };
        if outcome != RunOutcome::Busy {
            let record = RunRecord {
                env: self.env.clone(),
                user: user.user.clone(),
                kind: LinkKind::Event,
                started_at,
                finished_at: self.clock.now(),
                outcome,
                counts,
                error: error.as_ref().map(ToString::to_string),
            };
            // The run is done either way; losing its record only dims the console.
            let _ = self.store.record_run(&record).await;
        }
        UserRun {
            user: user.user.clone(),
            mailbox: user.email.clone(),
            outcome,
            counts,
            error,
        }
    }

    async fn ln_watermark(&self, user: &UserId) -> Result<(CalendarWatermark, u64), SyncError> {
        match self
            .store
            .cursor(self.env, user, CursorKind::LnActivities)
            .await?
        {
            None => Ok((CalendarWatermark::default(), 0)),
            Some(c) => Ok((
                serde_json::from_str(&c.value)
                    .map_err(|e| corrupt(&format!("activity watermark of {user}"), e))?,
                c.revision,
            )),
        }
    }

    async fn exchange_cursor(&self, user: &UserId) -> Result<(CalendarCursor, u64), SyncError> {
        match self
            .store
            .cursor(self.env, user, CursorKind::ExchangeCalendar)
            .await?
        {
            None => Ok((CalendarCursor::default(), 0)),
            Some(c) => Ok((
                serde_json::from_str(&c.value)
                    .map_err(|e| corrupt(&format!("calendar cursor of {user}"), e))?,
                c.revision,
            )),
        }
    }

    async fn sync_user(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        feed: &CalendarFeed,
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        let opts = &self.options.calendar;
        let tz = zone(Some(&opts.time_zone));
        let window = feed.window();
        let dir = Directory::new(&feed.users, &feed.employees);
        let state = match self.store.user_state(self.env, &user.user).await? {
            Some(s) if s.mailbox == user.email => s,
            _ => UserState::new(self.env.clone(), user.user.clone(), user.email.clone()),
        };
        // Read again under the lease: another run may have moved them since `run` chose where
        // the feed starts.
        let (lnw, ln_rev) = self.ln_watermark(&user.user).await?;
        let (exc, ex_rev) = self.exchange_cursor(&user.user).await?;
        let me = &user.email;

        // --- Exchange side ---------------------------------------------------------------
        let read = read_exchange(mailbox, me, &exc, window).await?;
        let linked_total = self
            .store
            .link_count(self.env, &user.user, LinkKind::Event)
            .await?;
        // R30: a full listing that comes back empty while links exist means something is
        // wrong with the mailbox or the account, not that every meeting was deleted.
        // Create intents are not established pairs: a crashed first run has nothing to protect.
        if read.full
            && read.events.is_empty()
            && linked_total > 0
            && self.established_links(&user.user).await? > 0
        {
            return Err(SyncError::SafetyStop {
                reason: format!(
                    "the calendar of {me} lists no events while {linked_total} are linked; nothing was deleted"
                ),
            });
        }
        let (activities, ln_deletions) = feed.for_user(&lnw);
        if lnw.changes.is_none()
            && feed.activities.is_empty()
            && linked_total > 0
            && self.established_links(&user.user).await? > 0
        {
            return Err(SyncError::SafetyStop {
                reason: format!(
                    "LN lists no activities in the window while {linked_total} are linked; nothing was deleted"
                ),
            });
        }

        // R16: once a day, links whose event has ended leave quietly.
        let mut dropped: HashSet<LnKey> = HashSet::new();
        if exc.window_end.is_some_and(|e| e != window.end) {
            let passed: Vec<LnKey> = self
                .store
                .all_links(self.env, &user.user, LinkKind::Event)
                .await?
                .into_iter()
                .filter(|l| {
                    !l.is_intent() && l.event.as_ref().is_some_and(|e| e.end < window.start)
                })
                .map(|l| l.ln_key)
                .collect();
            if !passed.is_empty() {
                self.store
                    .delete_links(self.env, &user.user, LinkKind::Event, &passed)
                    .await?;
                dropped.extend(passed);
            }
        }

        // --- Links ---------------------------------------------------------------------
        let mut links: HashMap<LnKey, Link> = HashMap::new();
        let mut keys: Vec<LnKey> = activities
            .iter()
            .map(|a| LnKey::from(&a.activity))
            .collect();
        keys.extend(ln_deletions.iter().map(|d| LnKey::new(d.key.clone())));
        keys.extend(
            read.events
                .iter()
                .filter_map(|e| stamped_activity(self.env, e.stamp.as_ref()))
                .map(|k| LnKey::from(&k)),
        );
        keys.sort();
        keys.dedup();
        if !keys.is_empty() {
            for l in self
                .store
                .links(self.env, &user.user, LinkKind::Event, &keys)
                .await?
            {
                links.insert(l.ln_key.clone(), l);
            }
        }
        let mut uids: Vec<IcalUid> = read.events.iter().map(|e| e.key.uid.clone()).collect();
        uids.extend(read.series.iter().map(|(_, uid, _)| uid.clone()));
        uids.sort();
        uids.dedup();
        for uid in &uids {
            for l in self
                .store
                .links_by_ical_uid(self.env, &user.user, LinkKind::Event, uid)
                .await?
            {
                links.insert(l.ln_key.clone(), l);
            }
        }
        let mut ex_gone: Vec<(LnKey, Gone)> = Vec::new();
        for id in &read.deleted {
            let found = match self
                .store
                .link_by_exchange_id(self.env, &user.user, LinkKind::Event, id)
                .await?
            {
                Some(l) => vec![l],
                None => {
                    self.store
                        .links_by_series(self.env, &user.user, LinkKind::Event, id)
                        .await?
                }
            };
            for l in found {
                ex_gone.push((l.ln_key.clone(), Gone::Deleted));
                links.insert(l.ln_key.clone(), l);
            }
        }
        // R38: a full listing deletes nothing on its own word. A linked item it does not show
        // is read by id, and only Exchange's NotFound counts as a deletion (still gated, R30).
        if read.full && linked_total > 0 {
            let listed: HashSet<&ExchangeItemId> = read.events.iter().map(|e| &e.item.id).collect();
            let missing: Vec<Link> = self
                .store
                .all_links(self.env, &user.user, LinkKind::Event)
                .await?
                .into_iter()
                .filter(|l| !l.is_intent() && !listed.contains(&l.exchange_id))
                .filter(|l| l.event.as_ref().is_none_or(|e| e.end >= window.start))
                .collect();
            for chunk in missing.chunks(mailbox.max_batch().max(1)) {
                let ids: Vec<ExchangeItemId> =
                    chunk.iter().map(|l| l.exchange_id.clone()).collect();
                let outcomes = mailbox.get_events(me, &ids, window).await?;
                for (l, outcome) in chunk.iter().zip(outcomes) {
                    if let Err(ItemError::NotFound(_)) = outcome {
                        ex_gone.push((l.ln_key.clone(), Gone::Deleted));
                        links.insert(l.ln_key.clone(), l.clone());
                    }
                }
            }
        }
        for k in &dropped {
            links.remove(k);
        }

        // --- Pairs ---------------------------------------------------------------------
        let mut pairs: Vec<PairInput> = Vec::new();
        let mut by_ln: HashMap<LnKey, usize> = HashMap::new();
        let mut by_event: HashMap<EventKey, usize> = HashMap::new();
        let mut sorted_links: Vec<&Link> = links.values().collect();
        sorted_links.sort_by(|a, b| a.ln_key.cmp(&b.ln_key));
        for l in sorted_links {
            let i = pairs.len();
            pairs.push(PairInput {
                link: Some(l.clone()),
                ln: Side::Unreported,
                ex: Side::Unreported,
            });
            by_ln.insert(l.ln_key.clone(), i);
            if let Some(uid) = &l.ical_uid
                && !l.is_intent()
            {
                by_event.insert(
                    EventKey {
                        uid: uid.clone(),
                        original_start: l.event.as_ref().and_then(|e| e.original_start),
                    },
                    i,
                );
            }
        }
        for (k, g) in ex_gone {
            if let Some(&i) = by_ln.get(&k) {
                pairs[i].ex = Side::Gone(g);
            }
        }
        // Occurrences a series no longer lists were deleted, or left the window (R25, R16).
        for (_, uid, present) in &read.series {
            for l in links.values() {
                let os = l.event.as_ref().and_then(|e| e.original_start);
                if l.ical_uid.as_ref() == Some(uid)
                    && os.is_some()
                    && !present.contains(&EventKey {
                        uid: uid.clone(),
                        original_start: os,
                    })
                    && let Some(&i) = by_ln.get(&l.ln_key)
                {
                    let ended = l.event.as_ref().is_some_and(|e| e.end < window.start);
                    pairs[i].ex = if ended {
                        Side::OutOfWindow
                    } else {
                        Side::Gone(Gone::Deleted)
                    };
                }
            }
        }

        let mut observed: Vec<PendingCopy> = exc.pending.clone();
        for ev in &read.events {
            let organizer = ev.organizer.as_ref().map(|o| o.email.as_str());
            let owner = dir.event_owner(organizer, &ev.attendees, user);
            if owner.user != user.user {
                // Another sync user's meeting: only R19's flag is ours to set (R24).
                if !ev.is_cancelled {
                    observed.push(PendingCopy {
                        uid: ev.key.uid.clone(),
                        original_start: ev.key.original_start,
                        owner: owner.user.clone(),
                    });
                }
                counts.skipped += 1;
                continue;
            }
            let idx = by_event.get(&ev.key).copied().or_else(|| {
                stamped_activity(self.env, ev.stamp.as_ref())
                    .and_then(|k| by_ln.get(&LnKey::from(&k)).copied())
            });
            let side = if ev.is_cancelled {
                Side::Gone(Gone::Cancelled)
            } else if ev.sensitivity.is_private() && !opts.sync_private_events {
                // R26: not copied; a link it may have keeps still.
                counts.skipped += 1;
                continue;
            } else {
                let ex = ex_event(self.env, ev, me, tz);
                let (s, e) = time_bounds(&ev.fields.time, event_zone(ev, tz));
                if in_window(&window, s, e) {
                    Side::Present(ex)
                } else {
                    Side::OutOfWindow
                }
            };
            let i = match idx {
                Some(i) => i,
                None => {
                    if !matches!(side, Side::Present(_)) {
                        continue;
                    }
                    pairs.push(PairInput {
                        link: None,
                        ln: Side::Unreported,
                        ex: Side::Unreported,
                    });
                    let i = pairs.len() - 1;
                    if let Some(k) = stamped_activity(self.env, ev.stamp.as_ref()) {
                        by_ln.insert(LnKey::from(&k), i);
                    }
                    i
                }
            };
            by_event.insert(ev.key.clone(), i);
            pairs[i].ex = side;
        }

        let mut feed_by_key: HashMap<ActivityKey, &Activity> = HashMap::new();
        let running: HashSet<&UserId> = feed
            .users
            .iter()
            .filter(|u| u.active)
            .map(|u| &u.user)
            .collect();
        let responsible_fallback =
            feed.users.iter().find(|u| u.active).map(|u| &u.user) == Some(&user.user);
        // Problems noted this run stay even when the item's write succeeds.
        let mut noted: Vec<LnKey> = Vec::new();
        for a in &activities {
            let key = LnKey::from(&a.activity);
            feed_by_key.insert(a.activity.clone(), a);
            let linked = by_ln.get(&key).copied();
            let gone = if !matches!(
                a.activity_type,
                ActivityType::Appointment | ActivityType::Call
            ) || !a.synchronize
            {
                Some(Gone::NotSynchronized)
            } else if a.status == ActivityStatus::NotHeld {
                Some(Gone::Cancelled)
            } else {
                None
            };
            let owner = dir.activity_owner(a);
            let mine = matches!(owner, Ok(o) if o.user == user.user);
            if !mine {
                if let Err(reason) = &owner
                    && gone.is_none()
                    && linked.is_none()
                {
                    // R18, R40: say why it is not sent, once, under the organizer's user.
                    let responsible = a
                        .attendees
                        .iter()
                        .find(|l| l.attendance == Attendance::MeetingOrganizer)
                        .and_then(|l| l.attendee.as_deref())
                        .and_then(|c| dir.employee_user_id(c))
                        .filter(|u| running.contains(u))
                        .map_or(responsible_fallback, |u| u == &user.user);
                    if responsible {
                        self.problem(
                            &user.user,
                            key.clone(),
                            ProblemKind::Skipped,
                            format!("not sent to Exchange: {reason}"),
                        )
                        .await?;
                        counts.skipped += 1;
                    }
                }
                // Linked here but now organized by someone else (or nobody): only a
                // deletion is still ours to act on.
                if let (Some(i), Some(g)) = (linked, gone) {
                    pairs[i].ln = Side::Gone(g);
                }
                continue;
            }
            let side = match gone {
                Some(g) => Side::Gone(g),
                None if !in_window(&window, a.start, a.end) => Side::OutOfWindow,
                None => {
                    let (invitees, problems) = dir.invitees(a);
                    if !problems.is_empty() {
                        let detail = problems
                            .iter()
                            .map(|(_, d)| d.as_str())
                            .collect::<Vec<_>>()
                            .join("; ");
                        self.problem(&user.user, key.clone(), ProblemKind::Skipped, detail)
                            .await?;
                        noted.push(key.clone());
                    }
                    Side::Present(ln_event(a, &invitees, me, tz))
                }
            };
            let i = match linked {
                Some(i) => i,
                None => {
                    let by_ref = a
                        .external_reference
                        .as_deref()
                        .and_then(EventKey::from_external_reference)
                        .and_then(|k| by_event.get(&k).copied())
                        .filter(|&i| pairs[i].link.is_none());
                    match by_ref {
                        Some(i) => i,
                        None => {
                            if !matches!(side, Side::Present(_)) {
                                continue;
                            }
                            pairs.push(PairInput {
                                link: None,
                                ln: Side::Unreported,
                                ex: Side::Unreported,
                            });
                            pairs.len() - 1
                        }
                    }
                }
            };
            by_ln.insert(key, i);
            pairs[i].ln = side;
        }
        for d in &ln_deletions {
            let key = LnKey::new(d.key.clone());
            if feed_by_key.contains_key(&ActivityKey::new(d.key.clone())) {
                continue; // in the change feed: it exists now, whatever the audit says
            }
            if let Some(&i) = by_ln.get(&key)
                && let Some(l) = &pairs[i].link
                && l.ln_modified.is_none_or(|m| m <= d.deleted_at)
            {
                pairs[i].ln = Side::Gone(Gone::Deleted);
            }
        }

        // Exchange-originated activities without a link: a run died between LN's create and
        // the link. Their event may not be reported again (deleted since, or the cursor moved
        // on), so look at the calendar once to pair or retire them.
        let orphans: Vec<usize> = pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.link.is_none()
                    && matches!(p.ex, Side::Unreported)
                    && p.ln.present().is_some_and(|l| l.origin == Origin::Exchange)
            })
            .map(|(i, _)| i)
            .collect();
        if !orphans.is_empty() {
            let listing = if read.full {
                read.events.clone()
            } else {
                mailbox.calendar_view(me, window).await?
            };
            for i in orphans {
                let Some(reference) = pairs[i]
                    .ln
                    .present()
                    .and_then(|l| feed_by_key.get(&l.key))
                    .and_then(|a| a.external_reference.as_deref())
                    .and_then(EventKey::from_external_reference)
                else {
                    continue;
                };
                pairs[i].ex = match listing.iter().find(|e| e.key == reference) {
                    Some(ev) => Side::Present(ex_event(self.env, ev, me, tz)),
                    None => Side::Gone(Gone::Deleted),
                };
            }
        }

        // --- Plan and apply ------------------------------------------------------------
        let now = self.clock.now();
        let input = CalendarPlanInput {
            env: self.env,
            user,
            now,
            pairs: &pairs,
            policy: opts.conflict_policy,
            gate: self.options.deletion_gate,
            linked_total,
            release_held: state.release_held_deletions,
        };
        let plan = plan_calendar(&input);
        counts.skipped += plan.skipped;
        let held = !plan.held.is_empty();
        let applied_deletions = plan.actions.iter().any(|p| p.action.is_deletion());
        let mut exec = Executor {
            sync: self,
            ln,
            mailbox,
            user,
            dir: &dir,
            tz,
            counts,
            retry_later: false,
            succeeded: Vec::new(),
            feed_by_key,
            contacts: None,
            noted: noted.into_iter().collect(),
        };
        for c in &plan.conflicts {
            exec.record(c.key.clone(), ProblemKind::Conflict, c.detail.clone())
                .await?;
        }
        for p in plan.actions {
            let pair = &pairs[p.pair];
            exec.apply(&input, pair, p.action).await?;
        }
        for p in plan.held {
            exec.counts.held += 1;
            exec.record(
                p.action.ln_key(),
                ProblemKind::HeldDeletion,
                "deletion held by the safety gate; release it with `lnsync release-deletions`"
                    .into(),
            )
            .await?;
        }
        let pending = exec.observe(observed).await?;
        let retry_later = exec.retry_later;
        let noted = std::mem::take(&mut exec.noted);
        let succeeded: Vec<LnKey> = std::mem::take(&mut exec.succeeded)
            .into_iter()
            .filter(|k| !noted.contains(k))
            .collect();
        if !succeeded.is_empty() {
            self.store
                .clear_problems(self.env, &user.user, LinkKind::Event, &succeeded)
                .await?;
        }
        if applied_deletions && state.release_held_deletions {
            let mut state = state;
            state.release_held_deletions = false;
            self.store.put_user_state(&state).await?;
        }

        // R35: cursors move only once what they cover is applied; held deletions and
        // transient failures keep them so the next run sees the same changes again.
        if retry_later || held {
            return Ok(());
        }
        let next_ex = CalendarCursor {
            sync: Some(read.cursor.0),
            window_end: Some(window.end),
            pending,
        };
        if next_ex != exc || ex_rev == 0 {
            let value =
                serde_json::to_string(&next_ex).map_err(|e| corrupt("calendar cursor", e))?;
            self.store
                .put_cursor(&Cursor {
                    env: self.env.clone(),
                    user: user.user.clone(),
                    kind: CursorKind::ExchangeCalendar,
                    value,
                    revision: ex_rev,
                })
                .await?;
        }
        let next_ln = CalendarWatermark {
            changes: newer(lnw.changes, feed.high_water.changes),
            deletions: newer(lnw.deletions, feed.high_water.deletions),
            window_end: Some(window.end),
        };
        if next_ln != lnw || ln_rev == 0 {
            let value =
                serde_json::to_string(&next_ln).map_err(|e| corrupt("activity watermark", e))?;
            self.store
                .put_cursor(&Cursor {
                    env: self.env.clone(),
                    user: user.user.clone(),
                    kind: CursorKind::LnActivities,
                    value,
                    revision: ln_rev,
                })
                .await?;
        }
        Ok(())
    }

    /// Links that pair two existing items (create intents excluded).
    async fn established_links(&self, user: &UserId) -> Result<usize, SyncError> {
        Ok(self
            .store
            .all_links(self.env, user, LinkKind::Event)
            .await?
            .iter()
            .filter(|l| !l.is_intent())
            .count())
    }

    async fn problem(
        &self,
        user: &UserId,
        key: LnKey,
        problem: ProblemKind,
        detail: String,
    ) -> Result<(), SyncError> {
        self.store
            .put_problem(&ItemProblem {
                env: self.env.clone(),
                user: user.clone(),
                kind: LinkKind::Event,
                ln_key: key,
                problem,
                detail,
                at: self.clock.now(),
            })
            .await?;
        Ok(())
    }
}

/// What one run read from the user's calendar.
struct ExchangeRead {
    events: Vec<CalendarEvent>,
    /// Masters read this run: (id, uid, keys of the occurrences listed).
    series: Vec<(ExchangeItemId, IcalUid, HashSet<EventKey>)>,
    deleted: Vec<ExchangeItemId>,
    cursor: FolderCursor,
    /// A full listing (first run or R38 reset).
    full: bool,
}

/// Reads the calendar: incrementally from the saved cursor, or (first run, R38) by taking a
/// fresh cursor first and then listing the window, so nothing that changes in between is lost.
async fn read_exchange(
    mailbox: &dyn Mailbox,
    me: &MailboxAddress,
    exc: &CalendarCursor,
    window: Window,
) -> Result<ExchangeRead, SyncError> {
    let mut read = ExchangeRead {
        events: Vec::new(),
        series: Vec::new(),
        deleted: Vec::new(),
        cursor: FolderCursor(String::new()),
        full: false,
    };
    let mut changed: Vec<ExchangeItemId> = Vec::new();
    let mut cursor = exc.sync.clone().map(FolderCursor);
    let incremental = cursor.is_some();
    loop {
        let page = match mailbox.sync_calendar(me, cursor.as_ref()).await {
            Err(MailboxError::InvalidCursor { .. })
                if cursor.is_some() && incremental && !read.full =>
            {
                read.full = true;
                changed.clear();
                read.deleted.clear();
                cursor = None;
                continue;
            }
            other => other?,
        };
        if incremental && !read.full {
            for c in page.changes {
                match c {
                    FolderChange::Upsert { item, .. } => changed.push(item.id),
                    FolderChange::Deleted { id } => read.deleted.push(id),
                }
            }
        }
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    read.cursor = cursor.unwrap_or_else(|| FolderCursor(String::new()));
    if !incremental || read.full {
        read.full = true;
        read.events = mailbox.calendar_view(me, window).await?;
        return Ok(read);
    }
    changed.sort();
    changed.dedup();
    read.deleted.retain(|d| !changed.contains(d));
    for chunk in changed.chunks(mailbox.max_batch().max(1)) {
        let outcomes = mailbox.get_events(me, chunk, window).await?;
        for (id, outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                Ok(EventRead::Event(ev)) => read.events.push(*ev),
                Ok(EventRead::Series {
                    master,
                    uid,
                    occurrences,
                }) => {
                    let keys = occurrences.iter().map(|o| o.key.clone()).collect();
                    read.series.push((master.id, uid, keys));
                    read.events.extend(occurrences);
                }
                // Gone between the sync and the read: a deletion.
                Err(ItemError::NotFound(_)) => read.deleted.push(id.clone()),
                Err(e) => {
                    return Err(SyncError::Mailbox(MailboxError::Server {
                        code: "GetItem".into(),
                        message: e.to_string(),
                        transient: matches!(
                            e.class(),
                            ErrorClass::Transient | ErrorClass::Throttled(_)
                        ),
                    }));
                }
            }
        }
    }
    // R16: events that entered the window since the last run, without changing.
    if let Some(old_end) = exc.window_end
        && old_end < window.end
    {
        let slice = Window {
            start: old_end.max(window.start),
            end: window.end,
        };
        let known: HashSet<ExchangeItemId> =
            read.events.iter().map(|e| e.item.id.clone()).collect();
        for ev in mailbox.calendar_view(me, slice).await? {
            let (start, _) = time_bounds(&ev.fields.time, event_zone(&ev, Tz::UTC));
            if start >= old_end && !known.contains(&ev.item.id) {
                read.events.push(ev);
            }
        }
    }
    Ok(read)
}

/// The activity key of one of our `CrmId` stamps (`ln:<env>:activity:<key>`).
pub fn stamped_activity(env: &EnvironmentId, stamp: Option<&CrmStamp>) -> Option<ActivityKey> {
    let rest = stamp?.as_str().strip_prefix("ln:")?;
    let rest = rest.strip_prefix(env.as_str())?;
    rest.strip_prefix(":activity:").map(ActivityKey::new)
}

fn event_zone(ev: &CalendarEvent, fallback: Tz) -> Tz {
    ev.time_zone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or(fallback)
}

/// An Exchange event as the planner sees it.
pub fn ex_event(
    env: &EnvironmentId,
    ev: &CalendarEvent,
    owner: &MailboxAddress,
    tz: Tz,
) -> ExEvent {
    let content = EventContent::new(ev.fields.clone(), &ev.attendees, owner.as_str());
    let (_, end) = time_bounds(&ev.fields.time, event_zone(ev, tz));
    ExEvent {
        item: ev.item.clone(),
        key: ev.key.clone(),
        series_id: ev.series_id.clone(),
        hash: content.hash(),
        content,
        modified: ev.last_modified,
        stamped: stamped_activity(env, ev.stamp.as_ref()),
        organizer: ev.organizer.as_ref().map(|o| o.email.clone()),
        attendees: ev.attendees.clone(),
        time_zone: ev.time_zone.clone(),
        end,
    }
}

/// An LN activity as the planner sees it.
pub fn ln_event(
    a: &Activity,
    invitees: &[EventAttendee],
    owner: &MailboxAddress,
    tz: Tz,
) -> LnEvent {
    let content = EventContent::new(fields_from_activity(a, tz), invitees, owner.as_str());
    LnEvent {
        key: a.activity.clone(),
        hash: content.hash(),
        content,
        version: a.version.clone(),
        modified: a.last_modified,
        origin: a.origin,
        attendees: invitees.to_vec(),
        end: a.end,
    }
}

/// Applies one user's plan.
struct Executor<'a, 'b> {
    sync: &'a CalendarSync<'a>,
    ln: &'a dyn LnGateway,
    mailbox: &'a dyn Mailbox,
    user: &'a SyncUser,
    dir: &'a Directory,
    tz: Tz,
    counts: &'b mut RunCounts,
    retry_later: bool,
    succeeded: Vec<LnKey>,
    feed_by_key: HashMap<ActivityKey, &'a Activity>,
    /// LN contacts by e-mail, read once when an Exchange attendee needs matching (R23).
    contacts: Option<HashMap<String, ContactCode>>,
    /// Keys with a problem recorded this run: not cleared by their successful write.
    noted: HashSet<LnKey>,
}

/// What applying an action asks for next.
enum Next {
    Done,
    /// The Exchange item changed under us (`ItemError::Conflict`): decide again with what it
    /// holds now.
    Replan(Box<PairInput>),
}

impl Executor<'_, '_> {
    fn env(&self) -> &EnvironmentId {
        self.sync.env
    }
    fn me(&self) -> &MailboxAddress {
        &self.user.email
    }

    async fn record(
        &mut self,
        key: LnKey,
        problem: ProblemKind,
        detail: String,
    ) -> Result<(), SyncError> {
        self.noted.insert(key.clone());
        self.sync
            .problem(&self.user.user, key, problem, detail)
            .await
    }

    async fn fail(
        &mut self,
        key: LnKey,
        class: ErrorClass,
        detail: String,
    ) -> Result<(), SyncError> {
        if matches!(class, ErrorClass::Transient | ErrorClass::Throttled(_)) {
            self.retry_later = true;
        }
        self.counts.errors += 1;
        self.record(key, ProblemKind::WriteFailed, detail).await
    }

    async fn put(&mut self, link: Link) -> Result<(), SyncError> {
        self.sync
            .store
            .put_links(std::slice::from_ref(&link))
            .await?;
        Ok(())
    }

    async fn unlink(&mut self, key: &LnKey) -> Result<(), SyncError> {
        self.sync
            .store
            .delete_links(
                self.env(),
                &self.user.user,
                LinkKind::Event,
                std::slice::from_ref(key),
            )
            .await?;
        Ok(())
    }

    async fn apply(
        &mut self,
        input: &CalendarPlanInput<'_>,
        pair: &PairInput,
        action: Action,
    ) -> Result<(), SyncError> {
        let key = action.ln_key();
        match self.apply_once(input, action, false).await? {
            Next::Done => {}
            Next::Replan(fresh) => {
                if let (Some(a), _) = decide(input, &fresh)
                    && let Next::Replan(_) = self.apply_once(input, a, true).await?
                {
                    self.fail(
                        key.clone(),
                        ErrorClass::Conflict,
                        "the Exchange item kept changing during the write".into(),
                    )
                    .await?;
                }
            }
        }
        // R21: answers collected on the organizer's copy go to LN's attendance status.
        if let (Some(ex), Some(link)) = (pair.ex.present(), pair.link.as_ref())
            && ex.item.version != link.exchange_version
            && !link.is_intent()
        {
            self.copy_responses(&link.ln_key, ex).await?;
        }
        Ok(())
    }

    async fn apply_once(
        &mut self,
        input: &CalendarPlanInput<'_>,
        action: Action,
        retried: bool,
    ) -> Result<Next, SyncError> {
        match action {
            Action::Relink(link) => {
                let key = link.ln_key.clone();
                self.put(link).await?;
                self.succeeded.push(key);
            }
            Action::Unlink { link } => self.unlink(&link.ln_key).await?,
            Action::CreateExchange { ln, intent } => {
                self.create_exchange(input, ln, intent).await?
            }
            Action::UpdateExchange { link, ln } => {
                return self.update_exchange(link, ln, retried).await;
            }
            Action::CancelExchange { link } => self.cancel_exchange(&link).await?,
            Action::CreateLn { ex } => self.create_ln(input, ex).await?,
            Action::AdoptStamped { ex, activity } => {
                self.adopt_stamped(input, ex, activity).await?
            }
            Action::UpdateLn { link, ex } => self.update_ln(link, ex).await?,
            Action::LnNotHeld { link } => self.ln_remove(&link, false).await?,
            Action::DeleteLn { link } => self.ln_remove(&link, true).await?,
            Action::OrphanCheck { intent } => {
                let key = ActivityKey::new(intent.ln_key.as_str());
                let stamp = CrmStamp::activity(self.env(), &key);
                let found = self
                    .mailbox
                    .find_stamped_events(self.me(), std::slice::from_ref(&stamp))
                    .await?;
                let ids: Vec<ExchangeItemId> = found.into_iter().map(|f| f.item.id).collect();
                if !ids.is_empty() {
                    self.mailbox.cancel_events(self.me(), &ids).await?;
                    self.counts.deleted += to_u32(ids.len());
                }
                self.unlink(&intent.ln_key).await?;
            }
        }
        Ok(Next::Done)
    }

    fn link_for(&self, ln: &LnEvent, item: &ItemRef, uid: &IcalUid, origin: Origin) -> Link {
        Link {
            env: self.env().clone(),
            user: self.user.user.clone(),
            kind: LinkKind::Event,
            ln_key: LnKey::from(&ln.key),
            exchange_id: item.id.clone(),
            exchange_version: item.version.clone(),
            ln_version: Some(ln.version.clone()),
            ln_modified: Some(ln.modified),
            ln_hash: ln.hash.clone(),
            exchange_hash: ln.hash.clone(),
            ical_uid: Some(uid.clone()),
            origin,
            organizer: Some(self.me().clone()),
            last_error: None,
            updated_at: self.sync.clock.now(),
            event: Some(EventLink {
                original_start: None,
                series_id: None,
                end: ln.end,
            }),
        }
    }

    async fn create_exchange(
        &mut self,
        input: &CalendarPlanInput<'_>,
        ln: LnEvent,
        intent: bool,
    ) -> Result<(), SyncError> {
        let key = LnKey::from(&ln.key);
        let stamp = CrmStamp::activity(self.env(), &ln.key);
        if intent {
            // A run died after (maybe) creating it: adopt what it left instead of duplicating.
            let found = self
                .mailbox
                .find_stamped_events(self.me(), std::slice::from_ref(&stamp))
                .await?;
            if let Some(first) = found.first() {
                if found.len() > 1 {
                    let extra: Vec<ExchangeItemId> =
                        found.iter().skip(1).map(|f| f.item.id.clone()).collect();
                    self.mailbox.cancel_events(self.me(), &extra).await?;
                }
                let mut link = self.link_for(&ln, &first.item, &IcalUid::new(""), Origin::Ln);
                link.ical_uid = None;
                link.exchange_hash = ContentHash::unknown();
                let _ = self.update_exchange(link, ln, true).await?;
                return Ok(());
            }
        }
        let mut intent_link = self.link_for(
            &ln,
            &ItemRef {
                id: ExchangeItemId::new(""),
                version: ExchangeVersion::new(""),
            },
            &IcalUid::new(""),
            Origin::Ln,
        );
        intent_link.ical_uid = None;
        self.put(intent_link).await?;
        let new = NewEvent {
            stamp,
            fields: ln.content.fields.clone(),
            time_zone: self.sync.options.calendar.time_zone.clone(),
            attendees: ln.attendees.clone(),
        };
        let outcome = self
            .mailbox
            .create_events(self.me(), std::slice::from_ref(&new))
            .await?
            .into_iter()
            .next();
        match outcome {
            Some(Ok(created)) => {
                let link = self.link_for(&ln, &created.item, &created.uid, Origin::Ln);
                self.put(link).await?;
                self.counts.created += 1;
                self.succeeded.push(key.clone());
                self.flags(&ln.key, true).await?;
            }
            Some(Err(e)) => self.fail(key, e.class(), e.to_string()).await?,
            None => {
                self.fail(
                    key,
                    ErrorClass::Transient,
                    "Exchange returned no outcome".into(),
                )
                .await?
            }
        }
        let _ = input;
        Ok(())
    }

    async fn update_exchange(
        &mut self,
        link: Link,
        ln: LnEvent,
        retried: bool,
    ) -> Result<Next, SyncError> {
        let key = link.ln_key.clone();
        self.put(Link {
            exchange_hash: ContentHash::unknown(),
            ..link.clone()
        })
        .await?;
        let update = EventUpdate {
            item: ItemRef {
                id: link.exchange_id.clone(),
                version: link.exchange_version.clone(),
            },
            fields: ln.content.fields.clone(),
            time_zone: self.sync.options.calendar.time_zone.clone(),
            attendees: Some(ln.attendees.clone()),
            notify_attendees: !ln.attendees.is_empty(),
        };
        let outcome = self
            .mailbox
            .update_events(self.me(), std::slice::from_ref(&update))
            .await?
            .into_iter()
            .next();
        match outcome {
            Some(Ok(item)) => {
                let mut l = link;
                l.exchange_id = item.id;
                l.exchange_version = item.version;
                l.ln_version = Some(ln.version.clone());
                l.ln_modified = Some(ln.modified);
                l.ln_hash = ln.hash.clone();
                l.exchange_hash = ln.hash.clone();
                l.updated_at = self.sync.clock.now();
                if let Some(e) = l.event.as_mut() {
                    e.end = ln.end;
                }
                self.put(l).await?;
                self.counts.updated += 1;
                self.succeeded.push(key);
                self.flags(&ln.key, false).await?;
            }
            Some(Err(ItemError::Conflict(id))) if !retried => {
                // Re-read and decide again once (ErrorIrresolvableConflict).
                let fresh = self
                    .mailbox
                    .get_events(self.me(), std::slice::from_ref(&id), self.window())
                    .await?
                    .into_iter()
                    .next();
                let ex = match fresh {
                    Some(Ok(EventRead::Event(ev))) => {
                        Side::Present(ex_event(self.env(), &ev, self.me(), self.tz))
                    }
                    _ => Side::Gone(Gone::Deleted),
                };
                return Ok(Next::Replan(Box::new(PairInput {
                    link: Some(link),
                    ln: Side::Present(ln),
                    ex,
                })));
            }
            Some(Err(ItemError::NotFound(_))) if !retried => {
                return Ok(Next::Replan(Box::new(PairInput {
                    link: Some(link),
                    ln: Side::Present(ln),
                    ex: Side::Gone(Gone::Deleted),
                })));
            }
            Some(Err(e)) => self.fail(key, e.class(), e.to_string()).await?,
            None => {
                self.fail(
                    key,
                    ErrorClass::Transient,
                    "Exchange returned no outcome".into(),
                )
                .await?
            }
        }
        Ok(Next::Done)
    }

    fn window(&self) -> Window {
        self.sync.window()
    }

    async fn cancel_exchange(&mut self, link: &Link) -> Result<(), SyncError> {
        let outcome = self
            .mailbox
            .cancel_events(self.me(), std::slice::from_ref(&link.exchange_id))
            .await?
            .into_iter()
            .next();
        match outcome {
            Some(Ok(())) | Some(Err(ItemError::NotFound(_))) => {
                self.unlink(&link.ln_key).await?;
                self.counts.deleted += 1;
                self.succeeded.push(link.ln_key.clone());
            }
            Some(Err(e)) => {
                self.fail(link.ln_key.clone(), e.class(), e.to_string())
                    .await?
            }
            None => {}
        }
        Ok(())
    }

    /// R29 from Exchange: *Not Held* (LN origin) or delete (Exchange origin).
    async fn ln_remove(&mut self, link: &Link, delete: bool) -> Result<(), SyncError> {
        let key = ActivityKey::new(link.ln_key.as_str());
        let mut version = link
            .ln_version
            .clone()
            .unwrap_or_else(|| LnVersion::new(""));
        for attempt in 0..2 {
            let result = if delete {
                self.ln.delete_activity(&key, &version).await
            } else {
                let patch = ActivityPatch {
                    status: Some(ActivityStatus::NotHeld),
                    ..ActivityPatch::default()
                };
                self.ln
                    .update_activity(&key, &version, &patch)
                    .await
                    .map(|_| ())
            };
            match result {
                Ok(()) | Err(LnError::NotFound { .. }) => {
                    self.unlink(&link.ln_key).await?;
                    self.counts.deleted += 1;
                    self.succeeded.push(link.ln_key.clone());
                    return Ok(());
                }
                Err(LnError::PreconditionFailed { .. }) if attempt == 0 => {
                    match self.ln.activity(&key).await? {
                        Some(a) => version = a.version,
                        None => {
                            self.unlink(&link.ln_key).await?;
                            return Ok(());
                        }
                    }
                }
                Err(e) => {
                    return self
                        .fail(link.ln_key.clone(), e.class(), e.to_string())
                        .await;
                }
            }
        }
        Ok(())
    }

    async fn contacts_by_email(&mut self) -> Result<&HashMap<String, ContactCode>, SyncError> {
        if self.contacts.is_none() {
            let all = self.ln.contacts_changed_since(None).await?;
            self.contacts = Some(
                all.into_iter()
                    .filter_map(|c| c.email.clone().map(|e| (e, c.contact)))
                    .collect(),
            );
        }
        Ok(self.contacts.get_or_insert_with(HashMap::new))
    }

    /// An attendee line for an Exchange attendee (R23): employee, else contact, else Other.
    async fn attendee_line(
        &mut self,
        email: &str,
        name: Option<String>,
        attendance: Attendance,
        response: ResponseType,
        invite: bool,
    ) -> Result<Attendee, SyncError> {
        let (attendee_type, code, full_name) = match self.dir.employee_for_email(email) {
            Some(e) => (
                AttendeeType::Employee,
                Some(e.employee.to_string()),
                Some(e.name.clone()),
            ),
            None => match self.contacts_by_email().await?.get(email) {
                Some(c) => (AttendeeType::Contact, Some(c.to_string()), name.clone()),
                None => (AttendeeType::Other, None, name.clone()),
            },
        };
        let sync_user = self.dir.user_by_email(email).is_some();
        Ok(Attendee {
            activity: ActivityKey::new(""),
            line: 0,
            attendance,
            attendee_type,
            attendee: code,
            full_name: full_name.or(name),
            email: Some(email.to_owned()),
            attendance_status: status_of(response).unwrap_or(AttendanceStatus::None),
            invite,
            sent_to_synchronizer: invite,
            // R19: a sync user's flag is set by their own run when their copy is seen.
            synchronized: invite && !sync_user,
            version: None,
        })
    }

    async fn create_ln(
        &mut self,
        input: &CalendarPlanInput<'_>,
        ex: ExEvent,
    ) -> Result<(), SyncError> {
        let external = ex.key.external_reference();
        let key = LnKey::new(external.clone());
        let (start, end) = time_bounds(&ex.content.fields.time, zone(ex.time_zone.as_deref()));
        let patch = patch_from_fields(&ex.content.fields, self.tz);
        let mut lines = Vec::new();
        let me = self.me().as_str().to_owned();
        lines.push(
            self.attendee_line(
                &me,
                Some(self.user.name.clone()),
                Attendance::MeetingOrganizer,
                ResponseType::None,
                false,
            )
            .await?,
        );
        if let Some(org) = ex.organizer.as_ref().filter(|o| o.as_str() != me) {
            // R23: an external organizer is kept as an attendee of type Other.
            lines.push(
                self.attendee_line(
                    org,
                    None,
                    Attendance::Required,
                    ResponseType::Organizer,
                    false,
                )
                .await?,
            );
        }
        for a in ex.attendees.iter().filter(|a| a.email != me) {
            lines.push(
                self.attendee_line(
                    &a.email,
                    a.name.clone(),
                    attendance_of(a.role),
                    a.response,
                    true,
                )
                .await?,
            );
        }
        let f = &ex.content.fields;
        let all_day = matches!(f.time, EventTime::AllDay { .. });
        let activity = Activity {
            activity: ActivityKey::new(""),
            activity_type: if f.is_call {
                ActivityType::Call
            } else {
                ActivityType::Appointment
            },
            subject: f.subject.clone(),
            location: f.location.clone(),
            information: f.body.clone(),
            all_day,
            start: if all_day {
                patch.start.unwrap_or(start)
            } else {
                start
            },
            end: if all_day {
                patch.end.unwrap_or(end)
            } else {
                end
            },
            reminder_set: f.reminder_minutes.is_some(),
            reminder_value: patch.reminder_value.flatten(),
            reminder_unit: patch.reminder_unit.flatten(),
            show_time_as: f.show_as,
            status: ActivityStatus::Planned,
            synchronize: true,
            contact: None,
            business_partner: None,
            external_reference: Some(external),
            origin: Origin::Exchange,
            last_modified: DateTime::default(),
            version: LnVersion::new(""),
            attendees: lines,
        };
        let created = match self.ln.create_activity(&NewActivity { activity }).await {
            Ok(a) => {
                self.counts.created += 1;
                a
            }
            // R34: an earlier run created it (409 names it): adopt.
            Err(LnError::AlreadyExists { existing_key, .. }) => {
                match self.ln.activity(&ActivityKey::new(existing_key)).await? {
                    Some(a) if qualifies(&a) => a,
                    // The earlier incarnation was cancelled in LN since (R29): the meeting is
                    // cancelled too, unless we do not organize it.
                    Some(_) if ex.organizer.as_deref().is_none_or(|o| o == me) => {
                        self.mailbox
                            .cancel_events(self.me(), std::slice::from_ref(&ex.item.id))
                            .await?;
                        self.counts.deleted += 1;
                        return Ok(());
                    }
                    _ => return Ok(()),
                }
            }
            Err(e) => return self.fail(key, e.class(), e.to_string()).await,
        };
        let (invitees, _) = self.dir.invitees(&created);
        let ln = ln_event(&created, &invitees, self.me(), self.tz);
        let mut link = new_link(input, &ln, &ex, Origin::Exchange);
        link.origin = created.origin;
        if ln.hash == ex.hash {
            self.succeeded.push(link.ln_key.clone());
            self.put(link).await?;
        } else {
            link.ln_hash = ContentHash::unknown();
            self.update_ln(link, ex).await?;
        }
        Ok(())
    }

    async fn adopt_stamped(
        &mut self,
        input: &CalendarPlanInput<'_>,
        ex: ExEvent,
        activity: ActivityKey,
    ) -> Result<(), SyncError> {
        let current = self.ln.activity(&activity).await?;
        match current {
            Some(a) if qualifies(&a) => {
                let (invitees, _) = self.dir.invitees(&a);
                let ln = ln_event(&a, &invitees, self.me(), self.tz);
                let link = new_link(input, &ln, &ex, Origin::Ln);
                if ln.hash == ex.hash {
                    self.succeeded.push(link.ln_key.clone());
                    self.put(link).await?;
                } else {
                    let _ = self.update_exchange(link, ln, true).await?;
                }
            }
            _ => {
                // Ours, but its activity is gone: what the crashed run created is removed,
                // and with it the create intent that run left.
                self.mailbox
                    .cancel_events(self.me(), std::slice::from_ref(&ex.item.id))
                    .await?;
                self.unlink(&LnKey::from(&activity)).await?;
                self.counts.deleted += 1;
            }
        }
        Ok(())
    }

    async fn update_ln(&mut self, link: Link, ex: ExEvent) -> Result<(), SyncError> {
        let key = ActivityKey::new(link.ln_key.as_str());
        self.put(Link {
            ln_hash: ContentHash::unknown(),
            ..link.clone()
        })
        .await?;
        let patch = patch_from_fields(&ex.content.fields, self.tz);
        let mut version = link
            .ln_version
            .clone()
            .unwrap_or_else(|| LnVersion::new(""));
        let mut updated = None;
        for attempt in 0..2 {
            match self.ln.update_activity(&key, &version, &patch).await {
                Ok(a) => {
                    updated = Some(a);
                    break;
                }
                Err(LnError::PreconditionFailed { .. }) if attempt == 0 => {
                    match self.ln.activity(&key).await? {
                        Some(a) => version = a.version,
                        None => break,
                    }
                }
                Err(LnError::NotFound { .. }) => break,
                Err(e) => {
                    return self
                        .fail(link.ln_key.clone(), e.class(), e.to_string())
                        .await;
                }
            }
        }
        let Some(mut a) = updated else {
            // Deleted in LN meanwhile: the next run sees the deletion.
            return Ok(());
        };
        // Attendees added or removed in Exchange (R22, R23): only invited lines are ours.
        let me = self.me().as_str().to_owned();
        let want: HashMap<String, &EventAttendee> = ex
            .attendees
            .iter()
            .filter(|x| x.email != me)
            .map(|x| (x.email.clone(), x))
            .collect();
        let (have, _) = self.dir.invitees(&a);
        let have: HashMap<String, AttendeeRole> =
            have.into_iter().map(|x| (x.email, x.role)).collect();
        let mut wrote = false;
        for line in a.attendees.clone() {
            let Some(role) = role_of(line.attendance) else {
                continue;
            };
            if !line.invite {
                continue;
            }
            let email = self.line_email(&line);
            let keep = email
                .as_ref()
                .and_then(|e| want.get(e))
                .is_some_and(|x| x.role == role);
            if !keep && email.as_ref().is_some_and(|e| have.contains_key(e)) {
                match self
                    .ln
                    .delete_attendee(&key, line.line, line.version.as_ref())
                    .await
                {
                    Ok(()) | Err(LnError::NotFound { .. }) => wrote = true,
                    Err(e) => {
                        return self
                            .fail(link.ln_key.clone(), e.class(), e.to_string())
                            .await;
                    }
                }
            }
        }
        for (email, x) in &want {
            if have.get(email) != Some(&x.role) {
                let line = self
                    .attendee_line(
                        email,
                        x.name.clone(),
                        attendance_of(x.role),
                        x.response,
                        true,
                    )
                    .await?;
                match self.ln.add_attendee(&key, &line).await {
                    Ok(_) => wrote = true,
                    Err(e) => {
                        return self
                            .fail(link.ln_key.clone(), e.class(), e.to_string())
                            .await;
                    }
                }
            }
        }
        if wrote && let Some(fresh) = self.ln.activity(&key).await? {
            a = fresh;
        }
        let (invitees, _) = self.dir.invitees(&a);
        let ln = ln_event(&a, &invitees, self.me(), self.tz);
        let mut l = link;
        l.ln_version = Some(ln.version.clone());
        l.ln_modified = Some(ln.modified);
        l.ln_hash = ln.hash.clone();
        l.exchange_id = ex.item.id.clone();
        l.exchange_version = ex.item.version.clone();
        l.exchange_hash = ex.hash.clone();
        l.updated_at = self.sync.clock.now();
        if let Some(e) = l.event.as_mut() {
            e.end = ex.end;
        }
        let k = l.ln_key.clone();
        self.put(l).await?;
        self.counts.updated += 1;
        self.succeeded.push(k);
        Ok(())
    }

    fn line_email(&self, line: &Attendee) -> Option<String> {
        let (inv, _) = self.dir.invitees(&Activity {
            attendees: vec![Attendee {
                invite: true,
                ..line.clone()
            }],
            ..placeholder_activity()
        });
        inv.into_iter().next().map(|x| x.email)
    }

    /// Re-reads an activity after attendee-line writes and saves its new version in the link,
    /// so LN's version bump is not mistaken for an edit.
    async fn refresh_ln_version(&mut self, key: &ActivityKey) -> Result<(), SyncError> {
        let Some(a) = self.ln.activity(key).await? else {
            return Ok(());
        };
        let lk = LnKey::from(key);
        let existing = self
            .sync
            .store
            .links(
                self.env(),
                &self.user.user,
                LinkKind::Event,
                std::slice::from_ref(&lk),
            )
            .await?;
        if let Some(mut l) = existing.into_iter().next() {
            let (invitees, _) = self.dir.invitees(&a);
            let ln = ln_event(&a, &invitees, self.me(), self.tz);
            // Only the version moves; a content change made meanwhile is left for the next run.
            if ln.hash == l.ln_hash {
                l.ln_version = Some(a.version.clone());
                l.ln_modified = Some(a.last_modified);
                self.put(l).await?;
            }
        }
        Ok(())
    }

    /// R19 after a create or update: *Sent to Synchronizer* for each invited line; *Synchronized*
    /// yes for attendees we can't see, no for sync users until their run sees the copy. On an
    /// update only lines not sent before are touched, so an update does not flap the flags.
    async fn flags(&mut self, key: &ActivityKey, created: bool) -> Result<(), SyncError> {
        let a = match self.feed_by_key.get(key) {
            Some(a) if !created => (*a).clone(),
            _ => match self.ln.activity(key).await? {
                Some(a) => a,
                None => return Ok(()),
            },
        };
        let mut wrote = false;
        for line in &a.attendees {
            if !line.invite || role_of(line.attendance).is_none() {
                continue;
            }
            if line.sent_to_synchronizer && !created {
                continue;
            }
            let Some(email) = self.line_email(line) else {
                continue;
            };
            let synchronized = self.dir.user_by_email(&email).is_none();
            if line.sent_to_synchronizer && line.synchronized == synchronized {
                continue;
            }
            let patch = AttendeePatch {
                attendance_status: None,
                sent_to_synchronizer: Some(true),
                synchronized: Some(synchronized),
            };
            match self.ln.update_attendee(key, line.line, None, &patch).await {
                Ok(_) => wrote = true,
                Err(e) => {
                    self.fail(LnKey::from(key), e.class(), e.to_string())
                        .await?;
                }
            }
        }
        if wrote {
            self.refresh_ln_version(key).await?;
        }
        Ok(())
    }

    /// R21: copies answers from the organizer's copy into LN *Attendance Status*.
    async fn copy_responses(&mut self, key: &LnKey, ex: &ExEvent) -> Result<(), SyncError> {
        let answers: HashMap<&str, AttendanceStatus> = ex
            .attendees
            .iter()
            .filter_map(|a| status_of(a.response).map(|s| (a.email.as_str(), s)))
            .collect();
        if answers.is_empty() {
            return Ok(());
        }
        let akey = ActivityKey::new(key.as_str());
        let a = match self.feed_by_key.get(&akey) {
            Some(a) => (*a).clone(),
            None => match self.ln.activity(&akey).await? {
                Some(a) => a,
                None => return Ok(()),
            },
        };
        let mut wrote = false;
        for line in &a.attendees {
            if line.attendance == Attendance::MeetingOrganizer {
                continue;
            }
            let Some(email) = self.line_email(line) else {
                continue;
            };
            if let Some(&status) = answers.get(email.as_str())
                && line.attendance_status != status
            {
                let patch = AttendeePatch {
                    attendance_status: Some(status),
                    ..AttendeePatch::default()
                };
                match self
                    .ln
                    .update_attendee(&akey, line.line, None, &patch)
                    .await
                {
                    Ok(_) => wrote = true,
                    Err(e) => self.fail(key.clone(), e.class(), e.to_string()).await?,
                }
            }
        }
        if wrote {
            self.refresh_ln_version(&akey).await?;
        }
        Ok(())
    }

    /// R19 on an attendee's run: their copy of another sync user's meeting exists, so their
    /// LN line reads *Synchronized*. Copies whose owner has no link yet stay pending.
    async fn observe(&mut self, copies: Vec<PendingCopy>) -> Result<Vec<PendingCopy>, SyncError> {
        let mut pending = Vec::new();
        let mut seen = HashSet::new();
        for c in copies {
            if !seen.insert((c.uid.clone(), c.original_start, c.owner.clone())) {
                continue;
            }
            let links = self
                .sync
                .store
                .links_by_ical_uid(self.env(), &c.owner, LinkKind::Event, &c.uid)
                .await?;
            let Some(link) = links
                .into_iter()
                .find(|l| l.event.as_ref().and_then(|e| e.original_start) == c.original_start)
            else {
                pending.push(c);
                continue;
            };
            let key = ActivityKey::new(link.ln_key.as_str());
            let Some(a) = self.ln.activity(&key).await? else {
                continue;
            };
            let me = self.me().as_str().to_owned();
            for line in &a.attendees {
                if line.attendance == Attendance::MeetingOrganizer || line.synchronized {
                    continue;
                }
                if self.line_email(line).as_deref() == Some(me.as_str()) {
                    let patch = AttendeePatch {
                        attendance_status: None,
                        sent_to_synchronizer: Some(true),
                        synchronized: Some(true),
                    };
                    if let Err(e) = self.ln.update_attendee(&key, line.line, None, &patch).await {
                        self.fail(link.ln_key.clone(), e.class(), e.to_string())
                            .await?;
                    }
                }
            }
        }
        if pending.len() > MAX_PENDING {
            pending.drain(..pending.len() - MAX_PENDING);
        }
        Ok(pending)
    }
}

/// Whether an activity takes part in calendar sync at all (R15, R17, R29).
fn qualifies(a: &Activity) -> bool {
    a.synchronize
        && a.status != ActivityStatus::NotHeld
        && matches!(
            a.activity_type,
            ActivityType::Appointment | ActivityType::Call
        )
}

/// An empty activity, to run attendee lines through [`Directory::invitees`] one at a time.
fn placeholder_activity() -> Activity {
    Activity {
        activity: ActivityKey::new(""),
        activity_type: ActivityType::Appointment,
        subject: None,
        location: None,
        information: None,
        all_day: false,
        start: DateTime::default(),
        end: DateTime::default(),
        reminder_set: false,
        reminder_value: None,
        reminder_unit: None,
        show_time_as: ShowTimeAs::Busy,
        status: ActivityStatus::Planned,
        synchronize: true,
        contact: None,
        business_partner: None,
        external_reference: None,
        origin: Origin::Ln,
        last_modified: DateTime::default(),
        version: LnVersion::new(""),
        attendees: Vec::new(),
    }
}
