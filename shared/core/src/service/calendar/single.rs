//! R31: the sync of one event, for push notifications. A notification names an Exchange item or
//! an LN activity and is only a hint (R32): nothing but that name is taken from it. Both sides
//! of the event are read again now, by id, and handed to the pull's own phases 4 and 5
//! (`assemble`, `plan_and_apply`) as a narrow Exchange read and
//! a narrow LN feed, so a pushed event is decided and written exactly as the pull would decide
//! and write it. Because state is always re-read, duplicate and out-of-order notifications end
//! in the same state as one in order, and a notification caused by our own write finds what
//! the link recorded and writes nothing.
//!
//! Unlike the pull, it moves no cursor (R35: the pull's cursors cover changes this job never
//! read) and records no run (the console's last run stays the pull's); item problems are kept
//! as the pull keeps them (R40). It runs under the user's calendar lease, the pull's (R36).

use super::exchange::ExchangeRead;
use super::{CalendarFeed, CalendarSync, Stock, UserCx};
use crate::calendar::EventKey;
use crate::ids::*;
use crate::model::*;
use crate::plan::calendar::Directory;
use crate::ports::*;
use crate::service::contacts::UserRun;
use crate::service::{SyncError, addressable_users};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What a push notification names (R31).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTarget {
    /// An item of the user's calendar (EWS ItemId / Graph id): created, modified, or gone.
    Exchange(ExchangeItemId),
    /// An LN activity: created, changed, or deleted.
    Activity(ActivityKey),
}

/// Both sides of one target as read now: the Exchange read and the LN rows for the feed.
struct Narrow {
    read: ExchangeRead,
    activities: Vec<Activity>,
    deletions: Vec<DeletedObject>,
}

impl CalendarSync<'_> {
    /// The sync user whose calendar run owns `key` (the ownership rule of docs/calendar.md,
    /// computed from the activity as LN has it now, using `users` and `employees`), or — when
    /// the activity no longer exists — the user holding a link to it (store lookup per user,
    /// `StateStore::links` with that key). `None`: nobody's (not an appointment/call, no sync
    /// user involved, or never linked).
    ///
    /// An activity that still exists but is no longer an appointment or call, or whose
    /// organizer is no sync user, also goes to the user holding its link: that user's run has
    /// a meeting to cancel or a link to drop (R29, R16), exactly as the pull would.
    pub async fn owner_of_activity(
        &self,
        ln: &dyn LnGateway,
        key: &ActivityKey,
        users: &[SyncUser],
        employees: &[Employee],
    ) -> Result<Option<SyncUser>, SyncError> {
        if let Some(a) = ln.activity(key).await?
            && matches!(
                a.activity_type,
                ActivityType::Appointment | ActivityType::Call
            )
            && let Ok(owner) = Directory::new(users, employees).activity_owner(&a)
        {
            return Ok(Some(owner.clone()));
        }
        // Deleted, no longer an appointment or call, or organized by nobody we synchronize:
        // only a user who linked it has something left to do (cancel or unlink, R29, R16).
        let lk = LnKey::from(key);
        for u in users.iter().filter(|u| u.active) {
            let linked = self
                .store
                .links(
                    self.env,
                    &u.user,
                    LinkKind::Event,
                    std::slice::from_ref(&lk),
                )
                .await?;
            if !linked.is_empty() {
                return Ok(Some(u.clone()));
            }
        }
        Ok(None)
    }

    /// R31: re-reads just the target on both sides now and reconciles its pair(s) with the
    /// calendar planner, under the user's calendar lease (the same lease as the pull, R36).
    // The worker's API as agreed: one job's user and target, the directory, the lease holder.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync_event(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        target: &EventTarget,
        users: &[SyncUser],
        employees: &[Employee],
        holder: &str,
    ) -> UserRun {
        let (active, mut unaddressable) = addressable_users(std::slice::from_ref(user));
        if let Some(failed) = unaddressable.pop() {
            return failed;
        }
        if active.is_empty() {
            // Deactivated since the notification was sent: nothing of theirs is synchronized
            // any more (R4), and the notification was only a hint.
            return UserRun {
                user: user.user.clone(),
                mailbox: user.email.clone(),
                outcome: RunOutcome::Succeeded,
                counts: RunCounts {
                    skipped: 1,
                    ..RunCounts::default()
                },
                error: None,
            };
        }
        // Not recorded: the console's last run stays the pull's.
        self.scope(None)
            .run(user, holder, || async {
                let mut counts = RunCounts::default();
                let result = self
                    .sync_target(ln, mailbox, user, target, users, employees, &mut counts)
                    .await;
                (counts, result)
            })
            .await
    }

    /// Reads the target on both sides and reconciles what was read (under the lease).
    #[allow(clippy::too_many_arguments)]
    async fn sync_target(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        target: &EventTarget,
        users: &[SyncUser],
        employees: &[Employee],
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        let window = self.window();
        let narrow = match target {
            EventTarget::Exchange(id) => self.read_item(ln, mailbox, user, id, window).await?,
            EventTarget::Activity(key) => {
                self.read_activity(ln, mailbox, user, key, window).await?
            }
        };
        let feed = CalendarFeed::of_items(
            window,
            self.clock.now(),
            narrow.activities,
            narrow.deletions,
            users,
            employees,
        );
        self.reconcile(ln, mailbox, user, &feed, &narrow.read, counts)
            .await
    }

    /// The pull's phases 4 and 5 over what was read. The context has no cursors: every
    /// activity of the narrow feed is new to it, and nothing here moves a cursor.
    async fn reconcile(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        feed: &CalendarFeed,
        read: &ExchangeRead,
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        // The user's state only matters for a release of held deletions (R30), and that is
        // meant for the pull's held batch: a one-item job never needs it and must not use it
        // up, so it works with a fresh state instead of reading the stored one.
        let state = UserState::new(self.env.clone(), user.user.clone(), user.email.clone());
        let cx = UserCx::new(user, feed, state, self.ln_zone());
        // Phase 3 is the pull's: R16's sweep and R30's empty-listing gates are about full
        // listings, and one item is none. The deletion gate still counts all links.
        let stock = Stock {
            linked_total: self
                .store
                .link_count(self.env, &user.user, LinkKind::Event)
                .await?,
            all: None,
            dropped: HashSet::new(),
        };
        let assembly = self.assemble(mailbox, &cx, read, &stock, counts).await?;
        // What is left to retry is the pull's to find again: its cursors did not move.
        self.plan_and_apply(ln, mailbox, &cx, assembly, stock.linked_total, counts)
            .await?;
        Ok(())
    }

    /// An Exchange target: the item read by id in the window (an event, a master's occurrences,
    /// or `NotFound`: gone), and the LN side of the links it names.
    async fn read_item(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        id: &ExchangeItemId,
        window: Window,
    ) -> Result<Narrow, SyncError> {
        let mut read = ExchangeRead::empty();
        let outcomes = mailbox
            .get_events(&user.email, std::slice::from_ref(id), window)
            .await?;
        if let Some(outcome) = outcomes.into_iter().next() {
            read.add(id, outcome)?;
        }
        let links = self.links_to_read(&user.user, &read).await?;
        let mut activities = Vec::new();
        let mut deletions = Vec::new();
        for link in links.values() {
            match ln.activity(&ActivityKey::new(link.ln_key.as_str())).await? {
                Some(a) => activities.push(a),
                None => deletions.push(self.deleted_now(link)),
            }
        }
        Ok(Narrow {
            read,
            activities,
            deletions,
        })
    }

    /// The links an Exchange read names whose LN side the planner needs: a deleted item's (by
    /// id, or a master's occurrences by series), an event's (by UID and original start, by id,
    /// or by our stamp's activity, R24, R34), and of a series the occurrences that changed or
    /// left it. An occurrence whose Exchange copy is still what its link recorded is left out:
    /// a notification names the master whenever any one of possibly hundreds of occurrences
    /// changes, there is nothing in it about that one, and its LN changes arrive by their own
    /// notification or the pull.
    async fn links_to_read(
        &self,
        user: &UserId,
        read: &ExchangeRead,
    ) -> Result<BTreeMap<LnKey, Link>, SyncError> {
        let mut found = BTreeMap::new();
        let mut keep = |l: Link| {
            found.entry(l.ln_key.clone()).or_insert(l);
        };
        for id in &read.deleted {
            match self
                .store
                .link_by_exchange_id(self.env, user, LinkKind::Event, id)
                .await?
            {
                Some(l) => keep(l),
                None => {
                    for l in self
                        .store
                        .links_by_series(self.env, user, LinkKind::Event, id)
                        .await?
                    {
                        keep(l);
                    }
                }
            }
        }
        let series: HashSet<&IcalUid> = read.series.iter().map(|(_, uid, _)| uid).collect();
        let current: HashMap<&EventKey, &ExchangeVersion> = read
            .events
            .iter()
            .map(|e| (&e.key, &e.item.version))
            .collect();
        let uids: BTreeSet<&IcalUid> = read
            .events
            .iter()
            .map(|e| &e.key.uid)
            .chain(series.iter().copied())
            .collect();
        for uid in uids {
            for l in self
                .store
                .links_by_ical_uid(self.env, user, LinkKind::Event, uid)
                .await?
            {
                let key = EventKey {
                    uid: uid.clone(),
                    original_start: l.event.as_ref().and_then(|e| e.original_start),
                };
                let wanted = match current.get(&key) {
                    Some(version) if series.contains(uid) => **version != l.exchange_version,
                    Some(_) => true,
                    // Missing from its series' expansion: deleted, or passed (R25, R16).
                    None => series.contains(uid),
                };
                if wanted {
                    keep(l);
                }
            }
        }
        for ev in read.events.iter().filter(|e| !series.contains(&e.key.uid)) {
            if let Some(l) = self
                .store
                .link_by_exchange_id(self.env, user, LinkKind::Event, &ev.item.id)
                .await?
            {
                keep(l);
            }
            if let Some(k) = super::stamped_activity(self.env, ev.stamp.as_ref()) {
                for l in self
                    .store
                    .links(
                        self.env,
                        user,
                        LinkKind::Event,
                        std::slice::from_ref(&LnKey::from(&k)),
                    )
                    .await?
                {
                    keep(l);
                }
            }
        }
        Ok(found)
    }

    /// An LN target: the activity as LN has it now (`None`: deleted) and, when it is linked,
    /// the Exchange item of its link read by id. An intent's item is found by the planner's
    /// stamp lookup (R34), as in the pull.
    async fn read_activity(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        key: &ActivityKey,
        window: Window,
    ) -> Result<Narrow, SyncError> {
        let activity = ln.activity(key).await?;
        let link = self
            .store
            .links(
                self.env,
                &user.user,
                LinkKind::Event,
                std::slice::from_ref(&LnKey::from(key)),
            )
            .await?
            .into_iter()
            .next();
        let mut read = ExchangeRead::empty();
        if let Some(l) = link.as_ref().filter(|l| !l.is_intent()) {
            let outcomes = mailbox
                .get_events(&user.email, std::slice::from_ref(&l.exchange_id), window)
                .await?;
            if let Some(outcome) = outcomes.into_iter().next() {
                read.add(&l.exchange_id, outcome)?;
            }
        }
        let deletions = match (&activity, &link) {
            (None, Some(l)) => vec![self.deleted_now(l)],
            _ => Vec::new(),
        };
        Ok(Narrow {
            read,
            activities: activity.into_iter().collect(),
            deletions,
        })
    }

    /// The `DeletedObjects` row the pull would see for a linked activity LN no longer has
    /// (R29). It is dated now, but never before the link's last LN change: the pull ignores
    /// a deletion older than that as an earlier incarnation's, and here LN was just asked, so
    /// no later incarnation exists, whatever the skew between LN's clock and ours.
    fn deleted_now(&self, link: &Link) -> DeletedObject {
        let now = self.clock.now();
        DeletedObject {
            entity: DeletedEntity::Activity,
            key: link.ln_key.as_str().to_owned(),
            deleted_at: link.ln_modified.map_or(now, |m| m.max(now)),
        }
    }
}
