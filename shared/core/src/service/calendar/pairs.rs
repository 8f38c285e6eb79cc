//! Phase 4 of a user's run: the planner's pairs, one per meeting, assembled from the user's
//! links, the Exchange read, the LN feed and LN's deletion audit. Every side a pair does not
//! hear about this run stays [`Side::Unreported`] (it did not change).

use super::exchange::{ExchangeRead, confirm_missing, event_zone, ex_event, stamped_activity};
use super::{CalendarSync, PendingCopy, Stock, UserCx};
use crate::calendar::*;
use crate::ids::*;
use crate::model::*;
use crate::plan::calendar::*;
use crate::ports::*;
use crate::service::SyncError;
use chrono_tz::Tz;
use std::collections::{HashMap, HashSet};

/// The pairs of one user's run and what the later phases need from their assembly.
pub(super) struct Assembly<'f> {
    pub pairs: Vec<PairInput>,
    /// Copies of other sync users' meetings seen in this calendar (R19, R24).
    pub observed: Vec<PendingCopy>,
    /// Keys with a problem recorded while assembling: a successful write does not clear it.
    pub noted: Vec<LnKey>,
    /// The feed's activities of this user, by key.
    pub feed_by_key: HashMap<ActivityKey, &'f Activity>,
}

/// Pairs under construction, indexed by LN key and by Exchange event key.
#[derive(Default)]
struct Pairs {
    pairs: Vec<PairInput>,
    by_ln: HashMap<LnKey, usize>,
    by_event: HashMap<EventKey, usize>,
}

impl Pairs {
    fn push(&mut self, link: Option<Link>) -> usize {
        self.pairs.push(PairInput {
            link,
            ln: Side::Unreported,
            ex: Side::Unreported,
        });
        self.pairs.len() - 1
    }
}

/// Where an LN activity of the feed stands for this run.
enum LnState {
    /// Its end is before the window's start (moved into the past, R16): unlinked quietly,
    /// whatever else changed, because the pull never touches past events (R15).
    OutOfWindow,
    /// No longer synchronized: not an appointment or call, lost *Synchronize* (R15, R17,
    /// R29), or *Not Held*.
    Gone(Gone),
    Live,
}

fn ln_state(a: &Activity, window: &Window) -> LnState {
    if !in_window(window, a.start, a.end) {
        LnState::OutOfWindow
    } else if !matches!(
        a.activity_type,
        ActivityType::Appointment | ActivityType::Call
    ) || !a.synchronize
    {
        LnState::Gone(Gone::NotSynchronized)
    } else if a.status == ActivityStatus::NotHeld {
        LnState::Gone(Gone::Cancelled)
    } else {
        LnState::Live
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

impl CalendarSync<'_> {
    /// Phase 4: links first (each one a pair), then the Exchange side, the LN side, LN's
    /// deletions, and a last look at Exchange for activities a crashed run left unpaired.
    pub(super) async fn assemble<'f>(
        &self,
        mailbox: &dyn Mailbox,
        cx: &UserCx<'f>,
        read: &ExchangeRead,
        stock: &Stock,
        counts: &mut RunCounts,
    ) -> Result<Assembly<'f>, SyncError> {
        let (activities, ln_deletions) = cx.feed.for_user(&cx.lnw);
        let (links, ex_gone) = self
            .related_links(mailbox, cx, read, stock, &activities, &ln_deletions)
            .await?;
        let mut p = place_links(&links, ex_gone, read, cx.window);
        let observed = self.add_exchange_side(&mut p, cx, read, counts);
        let (feed_by_key, noted) = self.add_ln_side(&mut p, cx, &activities, counts).await?;
        add_ln_deletions(&mut p, &ln_deletions, &feed_by_key);
        self.pair_orphans(&mut p, mailbox, cx, read, &feed_by_key)
            .await?;
        Ok(Assembly {
            pairs: p.pairs,
            observed,
            noted,
            feed_by_key,
        })
    }

    /// The links this run's changes touch: by LN key (feed, deletions, our stamps), by UID
    /// (events and series read), and by the Exchange ids reported deleted. Returns them with
    /// the ones whose Exchange item is gone. Links dropped as passed (R16) are left out.
    async fn related_links(
        &self,
        mailbox: &dyn Mailbox,
        cx: &UserCx<'_>,
        read: &ExchangeRead,
        stock: &Stock,
        activities: &[&Activity],
        ln_deletions: &[&DeletedObject],
    ) -> Result<(HashMap<LnKey, Link>, Vec<(LnKey, Gone)>), SyncError> {
        let user = &cx.user.user;
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
                .links(self.env, user, LinkKind::Event, &keys)
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
                .links_by_ical_uid(self.env, user, LinkKind::Event, uid)
                .await?
            {
                links.insert(l.ln_key.clone(), l);
            }
        }
        let mut ex_gone: Vec<(LnKey, Gone)> = Vec::new();
        for id in &read.deleted {
            let found = match self
                .store
                .link_by_exchange_id(self.env, user, LinkKind::Event, id)
                .await?
            {
                Some(l) => vec![l],
                // A deleted master: its occurrences' links name the series.
                None => {
                    self.store
                        .links_by_series(self.env, user, LinkKind::Event, id)
                        .await?
                }
            };
            for l in found {
                ex_gone.push((l.ln_key.clone(), Gone::Deleted));
                links.insert(l.ln_key.clone(), l);
            }
        }
        if read.full && stock.linked_total > 0 {
            let all = match &stock.all {
                Some(all) => all.clone(),
                None => {
                    self.store
                        .all_links(self.env, user, LinkKind::Event)
                        .await?
                }
            };
            for l in confirm_missing(self.env, mailbox, cx.me(), cx.window, read, &all).await? {
                ex_gone.push((l.ln_key.clone(), Gone::Deleted));
                links.insert(l.ln_key.clone(), l);
            }
        }
        for k in &stock.dropped {
            links.remove(k);
        }
        Ok((links, ex_gone))
    }

    /// The Exchange side of each pair. Copies of other sync users' meetings only feed R19 and
    /// are returned; private events are skipped (R26); an event without a link gets a new pair
    /// when it is present in the window.
    fn add_exchange_side(
        &self,
        p: &mut Pairs,
        cx: &UserCx<'_>,
        read: &ExchangeRead,
        counts: &mut RunCounts,
    ) -> Vec<PendingCopy> {
        let me = cx.me();
        let mut observed: Vec<PendingCopy> = cx.exc.pending.clone();
        for ev in &read.events {
            let organizer = ev.organizer.as_ref().map(|o| o.email.as_str());
            let owner = cx.dir.event_owner(organizer, &ev.attendees, cx.user);
            if owner.user != cx.user.user {
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
            let idx = p.by_event.get(&ev.key).copied().or_else(|| {
                stamped_activity(self.env, ev.stamp.as_ref())
                    .and_then(|k| p.by_ln.get(&LnKey::from(&k)).copied())
            });
            let side = if ev.is_cancelled {
                Side::Gone(Gone::Cancelled)
            } else if ev.sensitivity.is_private() && !self.options.calendar.sync_private_events {
                // R26: not copied; a link it may have keeps still.
                counts.skipped += 1;
                continue;
            } else {
                let ex = ex_event(self.env, ev, me, cx.tz);
                let (s, e) = time_bounds(&ev.fields.time, event_zone(ev, cx.tz));
                if in_window(&cx.window, s, e) {
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
                    let i = p.push(None);
                    if let Some(k) = stamped_activity(self.env, ev.stamp.as_ref()) {
                        p.by_ln.insert(LnKey::from(&k), i);
                    }
                    i
                }
            };
            p.by_event.insert(ev.key.clone(), i);
            p.pairs[i].ex = side;
        }
        observed
    }

    /// The LN side of each pair from the user's part of the feed. Activities this user does
    /// not own only matter when linked here and gone; an unowned one that would be sent gets a
    /// `Skipped` problem saying why (R18, R40). Invitees that can't be invited are reported.
    async fn add_ln_side<'f>(
        &self,
        p: &mut Pairs,
        cx: &UserCx<'f>,
        activities: &[&'f Activity],
        counts: &mut RunCounts,
    ) -> Result<(HashMap<ActivityKey, &'f Activity>, Vec<LnKey>), SyncError> {
        let user = cx.user;
        let mut feed_by_key: HashMap<ActivityKey, &'f Activity> = HashMap::new();
        let running: HashSet<&UserId> = cx
            .feed
            .users
            .iter()
            .filter(|u| u.active)
            .map(|u| &u.user)
            .collect();
        // Unowned activities whose organizer is nobody running are reported by the first user.
        let responsible_fallback =
            cx.feed.users.iter().find(|u| u.active).map(|u| &u.user) == Some(&user.user);
        let mut noted: Vec<LnKey> = Vec::new();
        for &a in activities {
            let key = LnKey::from(&a.activity);
            feed_by_key.insert(a.activity.clone(), a);
            let linked = p.by_ln.get(&key).copied();
            let state = ln_state(a, &cx.window);
            let owner = cx.dir.activity_owner(a);
            if !matches!(owner, Ok(o) if o.user == user.user) {
                if let Err(reason) = &owner
                    && matches!(state, LnState::Live)
                    && linked.is_none()
                {
                    // R18, R40: say why it is not sent, once, under the organizer's user.
                    let responsible = a
                        .attendees
                        .iter()
                        .find(|l| l.attendance == Attendance::MeetingOrganizer)
                        .and_then(|l| l.attendee.as_deref())
                        .and_then(|c| cx.dir.employee_user_id(c))
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
                // Linked here but now organized by someone else (or nobody): only leaving the
                // window or a deletion is still ours to act on.
                if let Some(i) = linked {
                    match state {
                        LnState::OutOfWindow => p.pairs[i].ln = Side::OutOfWindow,
                        LnState::Gone(g) => p.pairs[i].ln = Side::Gone(g),
                        LnState::Live => {}
                    }
                }
                continue;
            }
            let side = match state {
                LnState::OutOfWindow => Side::OutOfWindow,
                LnState::Gone(g) => Side::Gone(g),
                LnState::Live => {
                    let (invitees, problems) = cx.dir.invitees(a);
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
                    Side::Present(ln_event(a, &invitees, cx.me(), cx.tz))
                }
            };
            let i = match linked {
                Some(i) => i,
                None => {
                    // An activity we created from an event whose link was lost: its reference
                    // names the event.
                    let by_ref = a
                        .external_reference
                        .as_deref()
                        .and_then(EventKey::from_external_reference)
                        .and_then(|k| p.by_event.get(&k).copied())
                        .filter(|&i| p.pairs[i].link.is_none());
                    match by_ref {
                        Some(i) => i,
                        None if matches!(side, Side::Present(_)) => p.push(None),
                        None => continue,
                    }
                }
            };
            p.by_ln.insert(key, i);
            p.pairs[i].ln = side;
        }
        Ok((feed_by_key, noted))
    }

    /// Exchange-originated activities without a link: a run died between LN's create and the
    /// link. Their event may not be reported again (deleted since, or the cursor moved on),
    /// so look at the calendar once to pair or retire them.
    async fn pair_orphans(
        &self,
        p: &mut Pairs,
        mailbox: &dyn Mailbox,
        cx: &UserCx<'_>,
        read: &ExchangeRead,
        feed_by_key: &HashMap<ActivityKey, &Activity>,
    ) -> Result<(), SyncError> {
        let orphans: Vec<usize> = p
            .pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.link.is_none()
                    && matches!(p.ex, Side::Unreported)
                    && p.ln.present().is_some_and(|l| l.origin == Origin::Exchange)
            })
            .map(|(i, _)| i)
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        let listing = if read.full {
            read.events.clone()
        } else {
            mailbox.calendar_view(cx.me(), cx.window).await?
        };
        for i in orphans {
            let Some(reference) = p.pairs[i]
                .ln
                .present()
                .and_then(|l| feed_by_key.get(&l.key))
                .and_then(|a| a.external_reference.as_deref())
                .and_then(EventKey::from_external_reference)
            else {
                continue;
            };
            p.pairs[i].ex = match listing.iter().find(|e| e.key == reference) {
                Some(ev) => Side::Present(ex_event(self.env, ev, cx.me(), cx.tz)),
                None => Side::Gone(Gone::Deleted),
            };
        }
        Ok(())
    }
}

/// One pair per link, with the Exchange deletions found so far, and the occurrences a series
/// read this run no longer lists: deleted, or passed (R25, R16).
fn place_links(
    links: &HashMap<LnKey, Link>,
    ex_gone: Vec<(LnKey, Gone)>,
    read: &ExchangeRead,
    window: Window,
) -> Pairs {
    let mut p = Pairs::default();
    let mut sorted: Vec<&Link> = links.values().collect();
    sorted.sort_by(|a, b| a.ln_key.cmp(&b.ln_key));
    for l in sorted {
        let i = p.push(Some(l.clone()));
        p.by_ln.insert(l.ln_key.clone(), i);
        if let Some(uid) = &l.ical_uid
            && !l.is_intent()
        {
            p.by_event.insert(
                EventKey {
                    uid: uid.clone(),
                    original_start: l.event.as_ref().and_then(|e| e.original_start),
                },
                i,
            );
        }
    }
    for (k, g) in ex_gone {
        if let Some(&i) = p.by_ln.get(&k) {
            p.pairs[i].ex = Side::Gone(g);
        }
    }
    for (_, uid, present) in &read.series {
        for l in links.values() {
            let os = l.event.as_ref().and_then(|e| e.original_start);
            if l.ical_uid.as_ref() == Some(uid)
                && os.is_some()
                && !present.contains(&EventKey {
                    uid: uid.clone(),
                    original_start: os,
                })
                && let Some(&i) = p.by_ln.get(&l.ln_key)
            {
                let ended = l.event.as_ref().is_some_and(|e| e.end < window.start);
                p.pairs[i].ex = if ended {
                    Side::OutOfWindow
                } else {
                    Side::Gone(Gone::Deleted)
                };
            }
        }
    }
    p
}

/// LN's deletion audit (R29). An activity that is also in the change feed exists now, whatever
/// the audit says; a deletion older than the link's last LN change is an earlier incarnation's.
fn add_ln_deletions(
    p: &mut Pairs,
    deletions: &[&DeletedObject],
    feed_by_key: &HashMap<ActivityKey, &Activity>,
) {
    for d in deletions {
        if feed_by_key.contains_key(&ActivityKey::new(d.key.clone())) {
            continue;
        }
        if let Some(&i) = p.by_ln.get(&LnKey::new(d.key.clone()))
            && let Some(l) = &p.pairs[i].link
            && l.ln_modified.is_none_or(|m| m <= d.deleted_at)
        {
            p.pairs[i].ln = Side::Gone(Gone::Deleted);
        }
    }
}
