//! Applying one user's plan: each action's writes, the links saved right after each write
//! (R34, intents before an Exchange create), failures recorded per item (R40), and one
//! re-plan when Exchange reports the item changed under the write. New meetings are created
//! in batches of [`Mailbox::max_batch`] ([`Executor::create_events`]); the rest goes pair by
//! pair.

use super::exchange::ex_event;
use super::pairs::ln_event;
use super::{CalendarSync, to_u32};
use crate::calendar::*;
use crate::error::{Classify, ErrorClass, ItemError, LnError};
use crate::ids::*;
use crate::model::*;
use crate::plan::calendar::*;
use crate::ports::*;
use crate::service::SyncError;
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::{HashMap, HashSet};

/// Applies one user's plan.
pub(super) struct Executor<'a, 'b> {
    pub(super) sync: &'a CalendarSync<'a>,
    pub(super) ln: &'a dyn LnGateway,
    pub(super) mailbox: &'a dyn Mailbox,
    pub(super) user: &'a SyncUser,
    pub(super) dir: &'a Directory,
    pub(super) tz: Tz,
    pub(super) counts: &'b mut RunCounts,
    pub(super) retry_later: bool,
    pub(super) succeeded: Vec<LnKey>,
    pub(super) feed_by_key: HashMap<ActivityKey, &'a Activity>,
    /// LN contacts by e-mail, read once when an Exchange attendee needs matching (R23).
    pub(super) contacts: Option<HashMap<String, ContactCode>>,
    /// Keys with a problem recorded this run: not cleared by their successful write.
    pub(super) noted: HashSet<LnKey>,
}

/// What applying an action asks for next.
enum Next {
    Done,
    /// The Exchange item changed under us (`ItemError::Conflict`): decide again with what it
    /// holds now.
    Replan(Box<PairInput>),
}

impl Executor<'_, '_> {
    pub(super) fn env(&self) -> &EnvironmentId {
        self.sync.env
    }
    pub(super) fn me(&self) -> &MailboxAddress {
        &self.user.email
    }

    pub(super) async fn record(
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

    pub(super) async fn fail(
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

    pub(super) async fn apply(
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
            Action::CreateExchange { ln, intent } => self.create_exchange(ln, intent).await?,
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

    /// Creates one meeting; with `intent`, a run died after (maybe) creating it, so its stamp
    /// is looked up first and what that run left is adopted instead of duplicated (R34).
    async fn create_exchange(&mut self, ln: LnEvent, intent: bool) -> Result<(), SyncError> {
        if intent {
            let stamp = CrmStamp::activity(self.env(), &ln.key);
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
        self.create_events(std::slice::from_ref(&ln)).await
    }

    /// Creates meetings Exchange does not hold yet, [`Mailbox::max_batch`] per call (R34): a
    /// chunk's create intents are saved in one link write before its call, the created items'
    /// links in one write right after it, then R19's flags of each created meeting. An item
    /// Exchange refuses fails alone (R40); its intent stays for the next run's stamp lookup.
    pub(super) async fn create_events(&mut self, events: &[LnEvent]) -> Result<(), SyncError> {
        let batch = self.mailbox.max_batch().max(1);
        for chunk in events.chunks(batch) {
            let intents: Vec<Link> = chunk
                .iter()
                .map(|ln| {
                    let mut intent = self.link_for(
                        ln,
                        &ItemRef {
                            id: ExchangeItemId::new(""),
                            version: ExchangeVersion::new(""),
                        },
                        &IcalUid::new(""),
                        Origin::Ln,
                    );
                    intent.ical_uid = None;
                    intent
                })
                .collect();
            self.sync.store.put_links(&intents).await?;
            let new: Vec<NewEvent> = chunk
                .iter()
                .map(|ln| NewEvent {
                    stamp: CrmStamp::activity(self.env(), &ln.key),
                    fields: ln.content.fields.clone(),
                    time_zone: self.sync.options.calendar.time_zone.clone(),
                    attendees: ln.attendees.clone(),
                })
                .collect();
            let mut outcomes = self
                .mailbox
                .create_events(self.me(), &new)
                .await?
                .into_iter();
            let mut links = Vec::new();
            let mut created = Vec::new();
            let mut failed = Vec::new();
            for ln in chunk {
                let key = LnKey::from(&ln.key);
                match outcomes.next() {
                    Some(Ok(c)) => {
                        links.push(self.link_for(ln, &c.item, &c.uid, Origin::Ln));
                        created.push(ln);
                    }
                    Some(Err(e)) => failed.push((key, e.class(), e.to_string())),
                    None => failed.push((
                        key,
                        ErrorClass::Transient,
                        "Exchange returned no outcome".into(),
                    )),
                }
            }
            // R34: the links of this write are saved before anything else happens.
            if !links.is_empty() {
                self.sync.store.put_links(&links).await?;
            }
            self.counts.created += to_u32(links.len());
            self.succeeded.extend(links.into_iter().map(|l| l.ln_key));
            for (key, class, detail) in failed {
                self.fail(key, class, detail).await?;
            }
            for ln in created {
                self.flags(ln, true).await?;
            }
        }
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
                self.flags(&ln, false).await?;
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
        let window = self.window();
        match current {
            // R16: the activity left the window (moved into the past in LN) and its link was
            // dropped; pairing it again would write the past into the meeting, so both stay
            // as they are.
            Some(a) if !in_window(&window, a.start, a.end) => {}
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
        let mut patch = patch_from_fields(&ex.content.fields, self.tz);
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
                        Some(a) => {
                            // The "Call" category only switches Appointment ↔ Call (R20): an
                            // activity that became a Task or Mailing meanwhile keeps its type.
                            if !matches!(
                                a.activity_type,
                                ActivityType::Appointment | ActivityType::Call
                            ) {
                                patch.activity_type = None;
                            }
                            version = a.version;
                        }
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
pub(super) fn placeholder_activity() -> Activity {
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
