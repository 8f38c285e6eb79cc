//! The calendar run (R15–R30, `docs/calendar.md`). LN is read once per environment (R14) into a
//! [`CalendarFeed`]; each user's run then reads its calendar incrementally (one
//! `sync_calendar` call when idle), assembles pairs in the user's partition, asks the pure
//! planner (`plan::calendar`) what to do and applies it (new meetings in batches, everything
//! else one pair at a time), saving each write's links right after it (R34). Cursors move
//! only when everything they cover is applied (R35).
//!
//! A user's run (`CalendarSync::sync_user`) goes through these phases, each a function whose
//! doc says what it does and why:
//!
//! 1. `begin`: state and both cursors, read again under the lease;
//! 2. `exchange::read_exchange`: the calendar, incrementally or as a full listing;
//! 3. `take_stock`: links of events that passed leave (R16), then R30's empty-side gates;
//! 4. `assemble` (`pairs.rs`): links, both sides and LN deletions as planner pairs;
//! 5. `plan_and_apply`: the pure plan, applied (`apply.rs`: new meetings created in batches,
//!    the rest pair by pair; attendee flags and responses in `flags.rs`);
//! 6. `advance_cursors`: both cursors, only when nothing is left to retry (R35).
//!
//! The LN read and the users' watermarks are in `feed.rs` ([`CalendarFeed`]), the calendar read
//! and cursor in `exchange.rs` ([`CalendarCursor`]). The single-event sync of push
//! notifications (R31, `single.rs`, [`EventTarget`]) re-reads one event on both sides by id
//! and runs phases 4 and 5 over it; it moves no cursor.

mod apply;
mod exchange;
mod feed;
mod flags;
mod pairs;
mod single;

pub use exchange::{CalendarCursor, PendingCopy, ex_event, stamped_activity};
pub use feed::{CalendarFeed, CalendarWatermark};
pub use pairs::ln_event;
pub use single::EventTarget;

use super::contacts::UserRun;
use super::{SyncError, SyncOptions};
use crate::error::StoreError;
use crate::ids::*;
use crate::model::*;
use crate::plan::calendar::*;
use crate::ports::*;
use apply::Executor;
use chrono_tz::Tz;
use exchange::{ExchangeRead, read_exchange};
use feed::newer;
use futures::StreamExt;
use pairs::Assembly;
use std::collections::HashSet;

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

/// What one user's run works with: the feed, the window and who is who, plus the user's state
/// and cursors as read under the lease.
struct UserCx<'r> {
    user: &'r SyncUser,
    feed: &'r CalendarFeed,
    window: Window,
    /// The zone of LN's all-day activities (R20).
    tz: Tz,
    dir: Directory,
    state: UserState,
    lnw: CalendarWatermark,
    ln_rev: u64,
    exc: CalendarCursor,
    ex_rev: u64,
}

impl<'r> UserCx<'r> {
    /// A context without cursors: [`CalendarSync::begin`] sets the user's; a single-event sync
    /// (`single.rs`) keeps none, because it never moves them.
    fn new(user: &'r SyncUser, feed: &'r CalendarFeed, state: UserState, tz: Tz) -> Self {
        UserCx {
            user,
            feed,
            window: feed.window(),
            tz,
            dir: Directory::new(&feed.users, &feed.employees),
            state,
            lnw: CalendarWatermark::default(),
            ln_rev: 0,
            exc: CalendarCursor::default(),
            ex_rev: 0,
        }
    }

    fn me(&self) -> &MailboxAddress {
        &self.user.email
    }
}

/// The user's links after [`CalendarSync::take_stock`].
struct Stock {
    /// All of the user's event links, create intents included (the gate's denominator).
    linked_total: u64,
    /// Every link, when this run had to list them (day change or an empty listing).
    all: Option<Vec<Link>>,
    /// Links of events that passed, dropped this run (R16).
    dropped: HashSet<LnKey>,
}

/// What applying the plan leaves for the cursors.
struct Applied {
    /// Something failed transiently or was held: the cursors stay so the next run sees the
    /// same changes again (R35).
    keep_cursors: bool,
    /// Attendee copies still waiting for their owner's link (R19).
    pending: Vec<PendingCopy>,
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
        let (active, mut runs) = super::addressable_users(users);
        if active.is_empty() {
            return Ok(runs);
        }
        // The feed starts where the furthest-behind user stands, so it covers everyone.
        let mut from: Option<CalendarWatermark> = None;
        for user in &active {
            let w = self.ln_watermark(&user.user).await?.0;
            from = Some(from.map_or(w, |f| f.oldest(w)));
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
        self.scope(Some(LinkKind::Event))
            .run(user, holder, || async {
                let mut counts = RunCounts::default();
                let result = self.sync_user(ln, mailbox, user, feed, &mut counts).await;
                (counts, result)
            })
            .await
    }

    /// Where a calendar run of one user happens: the calendar lease (shared by pulls and
    /// single-event syncs, R36), recorded under `record_kind` if any.
    fn scope(&self, record_kind: Option<LinkKind>) -> super::RunScope<'_> {
        super::RunScope {
            env: self.env,
            store: self.store,
            clock: self.clock,
            lease_ttl: self.options.lease_ttl,
            lease_kind: LEASE_KIND,
            record_kind,
        }
    }

    /// The outline of one user's run; each phase is a function below.
    async fn sync_user(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        feed: &CalendarFeed,
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        let cx = self.begin(user, feed).await?;
        let read = read_exchange(mailbox, cx.me(), &cx.exc, cx.window).await?;
        let stock = self.take_stock(&cx, &read).await?;
        let assembly = self.assemble(mailbox, &cx, &read, &stock, counts).await?;
        let applied = self
            .plan_and_apply(ln, mailbox, &cx, assembly, stock.linked_total, counts)
            .await?;
        if applied.keep_cursors {
            return Ok(());
        }
        self.advance_cursors(&cx, read.cursor, applied.pending)
            .await
    }

    /// Phase 1: the user's state and both cursors. They are read again under the lease because
    /// another run may have moved them since [`CalendarSync::run`] chose where the feed starts.
    async fn begin<'r>(
        &self,
        user: &'r SyncUser,
        feed: &'r CalendarFeed,
    ) -> Result<UserCx<'r>, SyncError> {
        let mut cx = UserCx::new(user, feed, self.user_state(user).await?, self.ln_zone());
        (cx.lnw, cx.ln_rev) = self.ln_watermark(&user.user).await?;
        (cx.exc, cx.ex_rev) = self.exchange_cursor(&user.user).await?;
        Ok(cx)
    }

    async fn user_state(&self, user: &SyncUser) -> Result<UserState, SyncError> {
        Ok(match self.store.user_state(self.env, &user.user).await? {
            Some(s) if s.mailbox == user.email => s,
            // A new user, or a mailbox that changed: its old state is not this mailbox's.
            _ => UserState::new(self.env.clone(), user.user.clone(), user.email.clone()),
        })
    }

    /// The zone of LN's all-day activities (R20).
    fn ln_zone(&self) -> Tz {
        zone(Some(&self.options.calendar.time_zone))
    }

    /// Phase 3: R16, then R30's empty-side gates.
    ///
    /// Links whose event ended before the window leave quietly (no write on either side). This
    /// runs when the window's day changed, and also before any empty-listing check: a link
    /// whose event passed protects nothing, and counting it would stop, for good, a user whose
    /// only links are events that passed.
    ///
    /// Then, a full listing of either side that is empty while links still in the window exist
    /// means something is wrong with the mailbox, the account or LN, not that every meeting
    /// was deleted: the run stops and deletes nothing. Create intents do not count (a crashed
    /// first run has nothing to protect). On the LN side only a full window read qualifies
    /// ([`CalendarFeed::is_full_read`]); an incremental read is empty whenever nothing changed.
    async fn take_stock(&self, cx: &UserCx<'_>, read: &ExchangeRead) -> Result<Stock, SyncError> {
        let day_changed = cx.exc.window_end.is_some_and(|e| e != cx.window.end);
        let ex_empty = read.is_empty_listing();
        let ln_empty = cx.feed.is_full_read() && cx.feed.activities.is_empty();
        let mut dropped = HashSet::new();
        let mut all = None;
        if day_changed || ex_empty || ln_empty {
            let (passed, kept): (Vec<Link>, Vec<Link>) = self
                .store
                .all_links(self.env, &cx.user.user, LinkKind::Event)
                .await?
                .into_iter()
                .partition(|l| {
                    !l.is_intent() && l.event.as_ref().is_some_and(|e| e.end < cx.window.start)
                });
            let passed: Vec<LnKey> = passed.into_iter().map(|l| l.ln_key).collect();
            if !passed.is_empty() {
                self.store
                    .delete_links(self.env, &cx.user.user, LinkKind::Event, &passed)
                    .await?;
                dropped.extend(passed);
            }
            all = Some(kept);
        }
        let linked_total = self
            .store
            .link_count(self.env, &cx.user.user, LinkKind::Event)
            .await?;
        let established = all
            .as_deref()
            .map_or(0, |l| l.iter().filter(|l| !l.is_intent()).count());
        if established > 0 && (ex_empty || ln_empty) {
            let reason = if ex_empty {
                format!(
                    "the calendar of {} lists no events while {established} are linked; nothing was deleted",
                    cx.me()
                )
            } else {
                format!(
                    "LN lists no activities in the window while {established} are linked; nothing was deleted"
                )
            };
            return Err(SyncError::SafetyStop { reason });
        }
        Ok(Stock {
            linked_total,
            all,
            dropped,
        })
    }

    /// Phase 5: the pure plan over the assembled pairs, applied (new meetings in batches of
    /// [`Mailbox::max_batch`], everything else pair by pair), then held
    /// deletions recorded (R30), R19 copies observed, and problems of items that went through
    /// cleared (R40).
    async fn plan_and_apply(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        cx: &UserCx<'_>,
        assembly: Assembly<'_>,
        linked_total: u64,
        counts: &mut RunCounts,
    ) -> Result<Applied, SyncError> {
        let Assembly {
            pairs,
            observed,
            noted,
            feed_by_key,
        } = assembly;
        let input = CalendarPlanInput {
            env: self.env,
            user: cx.user,
            now: self.clock.now(),
            pairs: &pairs,
            policy: self.options.calendar.conflict_policy,
            gate: self.options.deletion_gate,
            linked_total,
            release_held: cx.state.release_held_deletions,
        };
        let plan = plan_calendar(&input);
        counts.skipped += plan.skipped;
        let held = !plan.held.is_empty();
        let applied_deletions = plan.actions.iter().any(|p| p.action.is_deletion());
        let mut exec = Executor {
            sync: self,
            ln,
            mailbox,
            user: cx.user,
            dir: &cx.dir,
            tz: cx.tz,
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
        // New LN meetings (the bulk of a first run) are created in batches (`max_batch` per
        // call); every other action, a create that must look for a crashed run's item
        // included, is applied pair by pair. Pairs are independent, so the order is free.
        let mut fresh = Vec::new();
        let mut rest = Vec::new();
        for p in plan.actions {
            match p.action {
                Action::CreateExchange { ln, intent: false } => fresh.push(ln),
                action => rest.push((p.pair, action)),
            }
        }
        exec.create_events(&fresh).await?;
        for (pair, action) in rest {
            exec.apply(&input, &pairs[pair], action).await?;
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
        // Problems noted this run stay even when the item's write succeeded.
        let succeeded: Vec<LnKey> = std::mem::take(&mut exec.succeeded)
            .into_iter()
            .filter(|k| !noted.contains(k))
            .collect();
        if !succeeded.is_empty() {
            self.store
                .clear_problems(self.env, &cx.user.user, LinkKind::Event, &succeeded)
                .await?;
        }
        // A release covers one run's held deletions, not every later one.
        if applied_deletions && cx.state.release_held_deletions {
            let mut state = cx.state.clone();
            state.release_held_deletions = false;
            self.store.put_user_state(&state).await?;
        }
        Ok(Applied {
            keep_cursors: retry_later || held,
            pending,
        })
    }

    /// Phase 6 (R35): both cursors move, now that everything they cover is applied. A cursor
    /// seen for the first time is saved even when unchanged, so its revision exists.
    async fn advance_cursors(
        &self,
        cx: &UserCx<'_>,
        sync: FolderCursor,
        pending: Vec<PendingCopy>,
    ) -> Result<(), SyncError> {
        let next_ex = CalendarCursor {
            sync: Some(sync.0),
            window_end: Some(cx.window.end),
            pending,
        };
        if next_ex != cx.exc || cx.ex_rev == 0 {
            let value =
                serde_json::to_string(&next_ex).map_err(|e| corrupt("calendar cursor", e))?;
            self.store
                .put_cursor(&Cursor {
                    env: self.env.clone(),
                    user: cx.user.user.clone(),
                    kind: CursorKind::ExchangeCalendar,
                    value,
                    revision: cx.ex_rev,
                })
                .await?;
        }
        let next_ln = CalendarWatermark {
            changes: newer(cx.lnw.changes, cx.feed.high_water.changes),
            deletions: newer(cx.lnw.deletions, cx.feed.high_water.deletions),
            window_end: Some(cx.window.end),
        };
        if next_ln != cx.lnw || cx.ln_rev == 0 {
            let value =
                serde_json::to_string(&next_ln).map_err(|e| corrupt("activity watermark", e))?;
            self.store
                .put_cursor(&Cursor {
                    env: self.env.clone(),
                    user: cx.user.user.clone(),
                    kind: CursorKind::LnActivities,
                    value,
                    revision: cx.ln_rev,
                })
                .await?;
        }
        Ok(())
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
