//! The mailbox event table behind notifications: every change of an item (or folder) in a
//! mailbox is journalled with its own watermark, as Exchange's mailbox events table does.
//!
//! A watermark names a position in one mailbox's table. It is opaque to clients (base64, the
//! `AQAAA…` look of real ones) but carries the mailbox's random nonce, an epoch and the
//! position, so the sim can tell a watermark it never issued (other mailbox, other simulator
//! run, garbage) from one that fell out of retention or was expired by an administrator: both
//! are `ErrorInvalidWatermark` to the client, like on Exchange.

use std::collections::VecDeque;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{ChangeKey, FolderId, ItemId};

/// `NotificationEventTypeType` (types.xsd), plus the status event every push subscription gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    CopiedEvent,
    CreatedEvent,
    DeletedEvent,
    ModifiedEvent,
    MovedEvent,
    NewMailEvent,
    FreeBusyChangedEvent,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::CopiedEvent,
        EventKind::CreatedEvent,
        EventKind::DeletedEvent,
        EventKind::ModifiedEvent,
        EventKind::MovedEvent,
        EventKind::NewMailEvent,
        EventKind::FreeBusyChangedEvent,
    ];

    /// The element name in a notification (and the `t:EventType` value of a subscription).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CopiedEvent => "CopiedEvent",
            EventKind::CreatedEvent => "CreatedEvent",
            EventKind::DeletedEvent => "DeletedEvent",
            EventKind::ModifiedEvent => "ModifiedEvent",
            EventKind::MovedEvent => "MovedEvent",
            EventKind::NewMailEvent => "NewMailEvent",
            EventKind::FreeBusyChangedEvent => "FreeBusyChangedEvent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What an event is about: an item or a folder, with the ChangeKey it had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventObject {
    Item { id: ItemId, change_key: ChangeKey },
    Folder { id: FolderId, change_key: ChangeKey },
}

impl EventObject {
    pub fn is_folder(&self) -> bool {
        matches!(self, EventObject::Folder { .. })
    }
}

/// A folder reference inside an event (`ParentFolderId`, `OldParentFolderId`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParentRef {
    pub id: FolderId,
    pub change_key: Option<ChangeKey>,
}

/// One row of a mailbox's event table.
#[derive(Clone, Debug, Serialize)]
pub struct MailboxEvent {
    /// Position in the mailbox's table (1, 2, 3…); the watermark encodes it.
    pub counter: u64,
    /// The table's epoch when the event happened (see [`EventJournal::expire`]).
    pub epoch: u32,
    /// Simulator clock.
    pub time: DateTime<Utc>,
    pub kind: EventKind,
    pub object: EventObject,
    pub parent: ParentRef,
    /// Moved/copied events: where the object was before.
    pub old: Option<(EventObject, ParentRef)>,
}

/// Why a watermark cannot start a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkError {
    /// Not issued for this mailbox by this simulator (or not a watermark at all).
    Unknown,
    /// Issued here but no longer covered: beyond retention, or expired by the admin API.
    Expired,
}

/// Leading bytes of every watermark: decodes to the `AQAAA` prefix real ones show.
const MAGIC: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
const WATERMARK_LEN: usize = MAGIC.len() + 8 + 4 + 8;

/// A mailbox's event table.
#[derive(Debug)]
pub struct EventJournal {
    /// Random per mailbox instance, so a watermark from another mailbox (or a reset sim) is
    /// recognised as foreign instead of silently meaning some other position.
    nonce: [u8; 8],
    epoch: u32,
    counter: u64,
    /// Events up to and including this position were pruned or expired: a watermark below
    /// it would miss events, so it is refused.
    floor: u64,
    events: VecDeque<MailboxEvent>,
}

impl Default for EventJournal {
    fn default() -> Self {
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
        EventJournal {
            nonce,
            epoch: 0,
            counter: 0,
            floor: 0,
            events: VecDeque::new(),
        }
    }
}

impl EventJournal {
    /// Appends an event; returns its position.
    pub fn record(
        &mut self,
        time: DateTime<Utc>,
        kind: EventKind,
        object: EventObject,
        parent: ParentRef,
        old: Option<(EventObject, ParentRef)>,
    ) -> u64 {
        self.counter += 1;
        self.events.push_back(MailboxEvent {
            counter: self.counter,
            epoch: self.epoch,
            time,
            kind,
            object,
            parent,
            old,
        });
        self.counter
    }

    /// The position of the latest event (0 before the first).
    pub fn position(&self) -> u64 {
        self.counter
    }

    /// The watermark of `position` as issued now.
    pub fn watermark_at(&self, position: u64) -> String {
        self.encode(self.epoch, position)
    }

    /// The watermark an event carries (issued in the epoch it happened in).
    pub fn watermark_of(&self, event: &MailboxEvent) -> String {
        self.encode(event.epoch, event.counter)
    }

    fn encode(&self, epoch: u32, position: u64) -> String {
        let mut bytes = Vec::with_capacity(WATERMARK_LEN);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&self.nonce);
        bytes.extend_from_slice(&epoch.to_be_bytes());
        bytes.extend_from_slice(&position.to_be_bytes());
        B64.encode(bytes)
    }

    /// The position a watermark names, if a subscription may start from it.
    pub fn check(&self, watermark: &str) -> Result<u64, WatermarkError> {
        let bytes = B64
            .decode(watermark.trim())
            .map_err(|_| WatermarkError::Unknown)?;
        if bytes.len() != WATERMARK_LEN || bytes[..MAGIC.len()] != MAGIC {
            return Err(WatermarkError::Unknown);
        }
        let rest = &bytes[MAGIC.len()..];
        if rest[..8] != self.nonce {
            return Err(WatermarkError::Unknown);
        }
        let mut epoch = [0u8; 4];
        epoch.copy_from_slice(&rest[8..12]);
        let mut position = [0u8; 8];
        position.copy_from_slice(&rest[12..20]);
        let (epoch, position) = (u32::from_be_bytes(epoch), u64::from_be_bytes(position));
        if epoch > self.epoch || position > self.counter {
            return Err(WatermarkError::Unknown);
        }
        if epoch < self.epoch || position < self.floor {
            return Err(WatermarkError::Expired);
        }
        Ok(position)
    }

    /// Events after `position`, oldest first.
    pub fn after(&self, position: u64) -> impl Iterator<Item = &MailboxEvent> + '_ {
        // Positions are dense in the retained range, so the start index is arithmetic.
        let first = self.events.front().map_or(self.counter + 1, |e| e.counter);
        let skip = position.saturating_add(1).saturating_sub(first);
        self.events
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }

    /// Drops events beyond retention: more than `max_events`, or older than `oldest`.
    pub fn prune(&mut self, max_events: usize, oldest: DateTime<Utc>) {
        while let Some(front) = self.events.front() {
            if self.events.len() <= max_events && front.time >= oldest {
                break;
            }
            self.floor = front.counter;
            self.events.pop_front();
        }
    }

    /// Invalidates every watermark issued so far (the admin API's "expire watermarks").
    pub fn expire(&mut self) {
        self.epoch += 1;
        self.floor = self.counter;
        self.events.clear();
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(n: u8) -> EventObject {
        EventObject::Item {
            id: ItemId(format!("item{n}")),
            change_key: ChangeKey(format!("ck{n}")),
        }
    }

    fn parent() -> ParentRef {
        ParentRef {
            id: FolderId("cal".into()),
            change_key: None,
        }
    }

    #[test]
    fn watermarks_name_positions_and_expire() {
        let mut j = EventJournal::default();
        let t0 = Utc::now();
        let start = j.watermark_at(j.position());
        assert!(start.starts_with("AQAAA"));
        for n in 1..=4 {
            j.record(t0, EventKind::CreatedEvent, item(n), parent(), None);
        }
        assert_eq!(j.check(&start), Ok(0));
        let after_two = j.watermark_of(j.after(1).next().unwrap());
        assert_eq!(j.check(&after_two), Ok(2));
        let rest: Vec<u64> = j.after(2).map(|e| e.counter).collect();
        assert_eq!(rest, vec![3, 4]);

        // Retention by count: positions before the first retained event are too old.
        j.prune(2, t0);
        assert_eq!(j.check(&start), Err(WatermarkError::Expired));
        assert_eq!(j.check(&after_two), Ok(2));
        assert_eq!(j.after(2).count(), 2);
        assert_eq!(j.after(0).count(), 2);

        // Another journal (mailbox) never accepts it; garbage is unknown too.
        assert_eq!(
            EventJournal::default().check(&after_two),
            Err(WatermarkError::Unknown)
        );
        assert_eq!(j.check("AQAAAGarbage=="), Err(WatermarkError::Unknown));

        j.expire();
        assert_eq!(j.check(&after_two), Err(WatermarkError::Expired));
        let fresh = j.watermark_at(j.position());
        assert_eq!(j.check(&fresh), Ok(4));
    }
}
