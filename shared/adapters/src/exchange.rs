//! What the two Exchange backends (`ews`, `graph`) share in mapping calendar items to the core's
//! events: the "Call" category, text normalization, all-day boundary dates.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The category that marks an LN *Call* (R20).
pub(crate) const CALL_CATEGORY: &str = "Call";

/// Outlook's default reminder, for an item that says "reminder on" without minutes.
pub(crate) const DEFAULT_REMINDER_MINUTES: u32 = 15;

/// Text as the core compares it (R27): Exchange stores line ends as CRLF and pads text bodies
/// with a trailing line break, so without this every read would look like a change.
pub(crate) fn normalize_text(text: Option<&str>) -> Option<String> {
    let text = text?.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim_end();
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// Trimmed text; `None` when empty.
pub(crate) fn short_text(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The date of an all-day boundary when the event's zone is unknown (a custom zone definition):
/// the nearest midnight. All-day boundaries are local midnights, and every offset within ±12 h
/// puts the nearest midnight on the right day.
pub(crate) fn nearest_midnight_date(at: DateTime<Utc>) -> NaiveDate {
    (at + Duration::hours(12)).date_naive()
}

/// The categories to write: the item's own (kept, R27: they are not ours) with "Call" added or
/// removed as the LN type says.
pub(crate) fn merged_categories(existing: &[String], is_call: bool) -> Vec<String> {
    let mut categories: Vec<String> = existing
        .iter()
        .filter(|c| !c.eq_ignore_ascii_case(CALL_CATEGORY))
        .cloned()
        .collect();
    if is_call {
        categories.push(CALL_CATEGORY.to_owned());
    }
    categories
}
