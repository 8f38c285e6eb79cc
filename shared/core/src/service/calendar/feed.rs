//! The LN side of a calendar run: one read per environment (R14), fanned out to the users by
//! their own watermarks.

use crate::error::LnError;
use crate::ids::*;
use crate::model::*;
use crate::ports::*;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// A user's LN activity-feed position (cursor `LnActivities`): the change watermark plus the
/// window end the user last ran with, so activities that entered the window since are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarWatermark {
    pub changes: Option<DateTime<Utc>>,
    pub deletions: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
}

impl CalendarWatermark {
    /// Where a feed shared by two users must start so it covers both: the older change and
    /// deletion watermarks (`None`, never run, is the oldest) and the earlier window end.
    pub fn oldest(self, other: CalendarWatermark) -> CalendarWatermark {
        let ln = |w: CalendarWatermark| LnWatermark {
            changes: w.changes,
            deletions: w.deletions,
        };
        let both = ln(self).min(ln(other));
        CalendarWatermark {
            changes: both.changes,
            deletions: both.deletions,
            window_end: match (self.window_end, other.window_end) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            },
        }
    }
}

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

pub(super) fn newer(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl CalendarFeed {
    /// Three LN requests when idle (activities changed since the watermark, activity
    /// deletions, employees), plus one for the window's new slice when its end moved.
    ///
    /// Without a watermark the read is a full listing of the window (appointments and calls).
    /// With one it is every activity changed since whose start is before the window's end, of
    /// any type and any end (the port's contract), so moves into the past and type changes
    /// reach the planner, which unlinks (R16) or cancels (R15, R29) them.
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
        let listed = activities.iter().map(|a| a.last_modified).max();
        let changes = match (from.changes, listed) {
            // A full listing that found nothing still proves the window was empty when it was
            // read, so the next read may be incremental. Its lower bound must not be later than
            // the read in LN's clock, which we do not see: a day before the window (which
            // starts at today's midnight by our clock) tolerates any sane clock skew. Without
            // this, a user whose LN window is empty (e.g. whose only meetings came from
            // Exchange during this run, which are never in this run's feed) would read the
            // whole window on every run and never see an activity move out of it.
            (None, None) => Some(window.start - Duration::days(1)),
            (from, listed) => newer(listed, from),
        };
        let high_water = LnWatermark {
            changes,
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

    /// The LN side of a single-event sync (R31, `single.rs`): just the activities it read by
    /// key now, plus a deletion row for each linked one LN no longer has. It is never a full
    /// read (the empty-side gate of R30 is about listings, not about one item) and its
    /// watermarks are never saved, so they only say when it was read.
    pub(super) fn of_items(
        window: Window,
        now: DateTime<Utc>,
        activities: Vec<Activity>,
        deletions: Vec<DeletedObject>,
        users: &[SyncUser],
        employees: &[Employee],
    ) -> Self {
        Self {
            window_start: window.start,
            window_end: window.end,
            read_from: CalendarWatermark {
                changes: Some(now),
                deletions: Some(now),
                window_end: Some(window.end),
            },
            high_water: LnWatermark::default(),
            activities,
            deletions,
            employees: employees.to_vec(),
            users: users.to_vec(),
        }
    }

    pub fn window(&self) -> Window {
        Window {
            start: self.window_start,
            end: self.window_end,
        }
    }

    /// Whether the activities are a full listing of the window (no watermark), the only read
    /// whose emptiness says something about the links (R30).
    pub fn is_full_read(&self) -> bool {
        self.read_from.changes.is_none()
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
