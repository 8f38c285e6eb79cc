//! `Subscribe` with a `PushSubscriptionRequest` (exchange.md §2.9): Exchange POSTs the events of
//! the named folders to our URL. The answer (`SubscriptionId`, `Watermark`) is read by
//! [`parse_response`](super::parse_response) into [`ResponseMessage::subscription`](super::ResponseMessage::subscription).

use super::request::{Operation, WriteBody};
use super::types::FolderRef;
use super::xml::XmlBuilder;
use crate::ews::notify::EventKind;

/// Largest `StatusFrequency` the schema allows, in minutes (SubscriptionStatusFrequencyType).
pub const MAX_STATUS_FREQUENCY_MINUTES: u32 = 1440;

/// What a calendar subscription listens to: every change that can make an event appear, change
/// or disappear. `Copied` is left out: a copy is a create in the target folder, which that
/// folder's own `Created` event reports.
pub const CALENDAR_EVENTS: [EventKind; 4] = [
    EventKind::Created,
    EventKind::Modified,
    EventKind::Deleted,
    EventKind::Moved,
];

/// A push subscription on `folders` for `events`, delivered to `url`.
#[derive(Debug, Clone, Copy)]
pub struct PushSubscribe<'a> {
    /// At least one folder (the schema's `FolderIds` is a non-empty list).
    pub folders: &'a [FolderRef],
    /// At least one event type (`EventTypes` is a non-empty list).
    pub events: &'a [EventKind],
    /// Resume from this watermark: events since it are delivered. Omitted when `None` or empty.
    pub watermark: Option<&'a str>,
    /// Minutes between keep-alive StatusEvents when idle; clamped to 1..=1440 when written.
    pub status_frequency_minutes: u32,
    pub url: &'a str,
}

impl Operation for PushSubscribe<'_> {
    fn name(&self) -> &'static str {
        "Subscribe"
    }
}

impl WriteBody for PushSubscribe<'_> {
    fn write_body(&self, b: &mut XmlBuilder) {
        b.element("m:Subscribe", &[], |b| {
            // Element order is the XSD sequence of PushSubscriptionRequestType: FolderIds,
            // EventTypes, Watermark (from BaseSubscriptionRequestType), then StatusFrequency, URL.
            b.element("m:PushSubscriptionRequest", &[], |b| {
                b.element("t:FolderIds", &[], |b| {
                    for folder in self.folders {
                        folder.write(b);
                    }
                });
                b.element("t:EventTypes", &[], |b| {
                    for kind in self.events {
                        b.text_element("t:EventType", &[], kind.element_name());
                    }
                });
                if let Some(mark) = self.watermark.filter(|w| !w.is_empty()) {
                    b.text_element("t:Watermark", &[], mark);
                }
                let frequency = self
                    .status_frequency_minutes
                    .clamp(1, MAX_STATUS_FREQUENCY_MINUTES)
                    .to_string();
                b.text_element("t:StatusFrequency", &[], &frequency);
                b.text_element("t:URL", &[], self.url);
            });
        });
    }
}
