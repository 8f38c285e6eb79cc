//! Attendee lines after a meeting is written: R19's *Sent to Synchronizer* / *Synchronized*
//! flags, and R21's responses copied from the organizer's copy into LN.

use super::PendingCopy;
use super::apply::{Executor, placeholder_activity};
use super::exchange::MAX_PENDING;
use crate::error::{Classify, LnError};
use crate::ids::*;
use crate::model::*;
use crate::plan::calendar::*;
use crate::ports::*;
use crate::service::SyncError;
use std::collections::{HashMap, HashSet};

impl Executor<'_, '_> {
    pub(super) fn line_email(&self, line: &Attendee) -> Option<String> {
        let (inv, _) = self.dir.invitees(&Activity {
            attendees: vec![Attendee {
                invite: true,
                ..line.clone()
            }],
            ..placeholder_activity()
        });
        inv.into_iter().next().map(|x| x.email)
    }

    /// R19 after a create or update: *Sent to Synchronizer* for each invited line; *Synchronized*
    /// yes for attendees we can't see, no for sync users until their run sees the copy. On an
    /// update only lines not sent before are touched, so an update does not flap the flags.
    ///
    /// The lines come from the activity the write was planned from (the feed's copy, when its
    /// version is the one written), so no read is needed; only a meeting planned from another
    /// read (e.g. an adopted one) reads the activity. The link keeps the version it was written
    /// with: the flag writes move LN's version without touching mapped content, so the next
    /// run sees a moved version with the same hash and only refreshes the link (R27). Taking
    /// the version the writes return instead would also take, unseen, any LN edit made since
    /// the activity was read, and that edit would never be synchronized.
    pub(super) async fn flags(&mut self, ln: &LnEvent, created: bool) -> Result<(), SyncError> {
        let key = &ln.key;
        let a = match self.feed_by_key.get(key) {
            Some(a) if a.version == ln.version => (*a).clone(),
            _ => match self.ln.activity(key).await? {
                Some(a) => a,
                None => return Ok(()),
            },
        };
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
            // An attendee's own run may have marked the line Synchronized since it was read
            // (their copy arrived as soon as the meeting was created): that is the later truth.
            let already = |l: &Attendee| l.sent_to_synchronizer && l.synchronized;
            self.patch_line(key, line, &patch, already).await?;
        }
        Ok(())
    }

    /// Writes an attendee line conditionally on the version it was read at (R19 flags are
    /// written by the organizer's run and by attendees' runs, possibly at once). When the line
    /// changed meanwhile it is read again: if `settled` says the newer line already says what
    /// matters, nothing is written; otherwise the patch is retried once at the new version.
    async fn patch_line(
        &mut self,
        key: &ActivityKey,
        line: &Attendee,
        patch: &AttendeePatch,
        settled: impl Fn(&Attendee) -> bool,
    ) -> Result<(), SyncError> {
        let first = self
            .ln
            .update_attendee(key, line.line, line.version.as_ref(), patch)
            .await;
        let result = match first {
            Err(LnError::PreconditionFailed { .. }) => {
                let fresh = self
                    .ln
                    .activity(key)
                    .await?
                    .and_then(|a| a.attendees.into_iter().find(|l| l.line == line.line));
                match fresh {
                    None => return Ok(()),
                    Some(l) if settled(&l) => return Ok(()),
                    Some(l) => {
                        self.ln
                            .update_attendee(key, l.line, l.version.as_ref(), patch)
                            .await
                    }
                }
            }
            other => other,
        };
        if let Err(e) = result {
            self.fail(LnKey::from(key), e.class(), e.to_string())
                .await?;
        }
        Ok(())
    }

    /// R21: copies answers from the organizer's copy into LN *Attendance Status*. Like
    /// [`Executor::flags`], it leaves the link's LN version for the next run to refresh.
    pub(super) async fn copy_responses(
        &mut self,
        key: &LnKey,
        ex: &ExEvent,
    ) -> Result<(), SyncError> {
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
                    // An answer reaching LN is a change a user sees (R39), unlike the flags.
                    Ok(_) => self.counts.updated += 1,
                    Err(e) => self.fail(key.clone(), e.class(), e.to_string()).await?,
                }
            }
        }
        Ok(())
    }

    /// R19 on an attendee's run: their copy of another sync user's meeting exists, so their
    /// LN line reads *Synchronized*. Copies whose owner has no link yet stay pending.
    pub(super) async fn observe(
        &mut self,
        copies: Vec<PendingCopy>,
    ) -> Result<Vec<PendingCopy>, SyncError> {
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
                    self.patch_line(&key, line, &patch, |l| l.synchronized)
                        .await?;
                }
            }
        }
        if pending.len() > MAX_PENDING {
            pending.drain(..pending.len() - MAX_PENDING);
        }
        Ok(pending)
    }
}
