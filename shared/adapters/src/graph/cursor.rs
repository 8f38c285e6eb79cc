//! The cursors `GraphMailbox` hands to the core (`FolderCursor`, opaque to it): a Graph delta
//! link plus what the link was made for, as JSON.
//!
//! The core keeps cursors across runs and across a switch of backend, so a cursor may be an
//! EWS SyncState, a cursor of another mailbox or folder, or (calendar) one made for a window
//! that no longer covers the run's. Those are answered `InvalidCursor` without a request, and
//! the core starts over (R38). Links are only ever followed below our service root.

use chrono::{DateTime, Utc};
use lnsync_core::ports::{FolderCursor, Window};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "graph", rename_all = "camelCase")]
pub(crate) enum DeltaCursor {
    /// `contactFolders/{folder}/contacts/delta`.
    #[serde(rename_all = "camelCase")]
    Contacts {
        mailbox: String,
        folder: String,
        link: String,
    },
    /// `calendarView/delta` over `[start, end)`: the window its first round named, which every
    /// later round keeps (the token encodes it).
    #[serde(rename_all = "camelCase")]
    Calendar {
        mailbox: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        link: String,
    },
}

impl DeltaCursor {
    pub(crate) fn encode(&self) -> FolderCursor {
        // Serializing plain strings and instants cannot fail; an empty cursor would only make
        // the next call start over.
        FolderCursor(serde_json::to_string(self).unwrap_or_default())
    }

    pub(crate) fn decode(cursor: &FolderCursor) -> Option<Self> {
        serde_json::from_str(&cursor.0).ok()
    }

    fn same_mailbox(a: &str, b: &str) -> bool {
        a.eq_ignore_ascii_case(b)
    }

    /// The link of a contacts cursor made for `mailbox` and `folder`.
    pub(crate) fn contacts_link(
        cursor: &FolderCursor,
        mailbox: &str,
        folder: &str,
    ) -> Option<String> {
        match Self::decode(cursor)? {
            Self::Contacts {
                mailbox: m,
                folder: f,
                link,
            } if Self::same_mailbox(&m, mailbox) && f == folder => Some(link),
            _ => None,
        }
    }

    /// The link and span of a calendar cursor made for `mailbox` whose span still covers
    /// `window`.
    pub(crate) fn calendar_link(
        cursor: &FolderCursor,
        mailbox: &str,
        window: &Window,
    ) -> Option<(String, DateTime<Utc>, DateTime<Utc>)> {
        match Self::decode(cursor)? {
            Self::Calendar {
                mailbox: m,
                start,
                end,
                link,
            } if Self::same_mailbox(&m, mailbox) && start <= window.start && end >= window.end => {
                Some((link, start, end))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0)
            .single()
            .expect("valid instant")
    }

    #[test]
    fn contact_cursors_round_trip_for_their_mailbox_and_folder_only() {
        let c = DeltaCursor::Contacts {
            mailbox: "alice@x".into(),
            folder: "F1".into(),
            link: "https://g/v1.0/d?$deltatoken=1".into(),
        }
        .encode();
        assert_eq!(
            DeltaCursor::contacts_link(&c, "Alice@X", "F1").as_deref(),
            Some("https://g/v1.0/d?$deltatoken=1")
        );
        assert_eq!(DeltaCursor::contacts_link(&c, "bob@x", "F1"), None);
        assert_eq!(DeltaCursor::contacts_link(&c, "alice@x", "F2"), None);
        // An EWS SyncState, garbage, a calendar cursor.
        for foreign in ["H4sIAAAAAAAEAO29B2AcSZYlJi9tynt", "", "{\"graph\":\"x\"}"] {
            assert_eq!(
                DeltaCursor::contacts_link(&FolderCursor(foreign.into()), "alice@x", "F1"),
                None
            );
        }
    }

    #[test]
    fn calendar_cursors_must_cover_the_window() {
        let c = DeltaCursor::Calendar {
            mailbox: "alice@x".into(),
            start: at(1),
            end: at(31),
            link: "L".into(),
        }
        .encode();
        let w = |s, e| Window {
            start: at(s),
            end: at(e),
        };
        assert!(DeltaCursor::calendar_link(&c, "alice@x", &w(1, 31)).is_some());
        // The window moved on a day: still covered.
        assert!(DeltaCursor::calendar_link(&c, "alice@x", &w(2, 30)).is_some());
        // Up to the cursor's own end: covered.
        assert!(DeltaCursor::calendar_link(&c, "alice@x", &w(2, 31)).is_some());
        // Its end passed the cursor's, or it starts earlier: not covered.
        assert!(
            DeltaCursor::calendar_link(
                &c,
                "alice@x",
                &Window {
                    start: at(2),
                    end: at(31) + chrono::Duration::seconds(1)
                }
            )
            .is_none()
        );
        assert!(
            DeltaCursor::calendar_link(
                &c,
                "alice@x",
                &Window {
                    start: at(1) - chrono::Duration::seconds(1),
                    end: at(20)
                }
            )
            .is_none()
        );
        assert!(DeltaCursor::calendar_link(&c, "bob@x", &w(2, 30)).is_none());
        let contacts = DeltaCursor::Contacts {
            mailbox: "alice@x".into(),
            folder: "F".into(),
            link: "L".into(),
        }
        .encode();
        assert!(DeltaCursor::calendar_link(&contacts, "alice@x", &w(2, 30)).is_none());
    }
}
