//! Time zones for the Exchange calendar adapters (EWS now, Graph later): Windows ↔ IANA zone ids
//! through the CLDR `windowsZones` mapping of the `windows-timezones` crate, zone rules from
//! `chrono-tz`, and the two conversions all-day events need (R20: dates in the event's own zone,
//! never shifted by a day).
//!
//! The core speaks IANA ids; Exchange speaks Windows ids (`W. Europe Standard Time`). CLDR maps
//! every Windows zone to one IANA zone and most IANA zones back, but it lists some zones only
//! under an older alias (`Asia/Calcutta`, `Europe/Kiev`) and does not list `UTC` itself. Those
//! are resolved by rules, not by a table: the Windows zone of a CLDR-listed IANA zone whose
//! offsets are the same (see [`iana_to_windows`]).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use windows_timezones::WindowsTimezone;

/// Why a zone id cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TzError {
    #[error("{0:?} is not an IANA time zone id")]
    UnknownIana(String),
    #[error("IANA time zone {0} has no Windows equivalent")]
    NoWindowsZone(String),
}

/// Parses an IANA id (`Europe/Berlin`, `UTC`).
pub fn parse_iana(id: &str) -> Result<Tz, TzError> {
    id.trim()
        .parse::<Tz>()
        .map_err(|_| TzError::UnknownIana(id.to_owned()))
}

/// The IANA id of a Windows zone id as Exchange reports it; `None` for ids CLDR does not know
/// (custom zone definitions such as `tzone://Microsoft/Custom`).
pub fn windows_to_iana(windows_id: &str) -> Option<&'static str> {
    let id = windows_id.trim();
    // Items that arrived through iCalendar or ActiveSync can carry the `tzone://Microsoft/<Id>`
    // form; the part after the prefix is the ordinary id, except that UTC is spelt `Utc`.
    let id = id.strip_prefix("tzone://Microsoft/").unwrap_or(id);
    let zone = match id.parse::<WindowsTimezone>() {
        Ok(zone) => zone,
        Err(_) if id.eq_ignore_ascii_case(WindowsTimezone::Utc.name()) => WindowsTimezone::Utc,
        Err(_) => return None,
    };
    Some(zone.tzdb_id())
}

/// The zone rules of a Windows zone id, when CLDR knows it.
pub fn windows_zone(windows_id: &str) -> Option<Tz> {
    windows_to_iana(windows_id).and_then(|iana| parse_iana(iana).ok())
}

/// The Windows id (`W. Europe Standard Time`) to send to Exchange for an IANA id.
pub fn iana_to_windows(iana: &str) -> Result<&'static str, TzError> {
    let tz = parse_iana(iana)?;
    if let Ok(zone) = WindowsTimezone::try_from(tz) {
        return Ok(zone.name());
    }
    static EQUIVALENTS: OnceLock<Mutex<HashMap<Tz, Option<&'static str>>>> = OnceLock::new();
    let cache = EQUIVALENTS.get_or_init(Default::default);
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&tz)
    {
        return found.ok_or_else(|| TzError::NoWindowsZone(iana.to_owned()));
    }
    let found = equivalent_windows_zone(tz).map(WindowsTimezone::name);
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(tz, found);
    found.ok_or_else(|| TzError::NoWindowsZone(iana.to_owned()))
}

/// A Windows zone whose CLDR zone keeps the same offsets as `tz` (an alias CLDR does not list).
/// UTC is preferred for zones that are always at offset zero, so `UTC` maps to `UTC` rather than
/// to the first zero-offset zone in alphabetical order. Of several zones that agree today, the
/// one that also agrees over the past decades wins: that is the zone `tz` is an alias of
/// (`Europe/Kyiv` is `Europe/Kiev`, not `Europe/Bucharest`, which only shares today's rules).
fn equivalent_windows_zone(tz: Tz) -> Option<WindowsTimezone> {
    if same_offsets(tz, Tz::Etc__UTC, RECENT) {
        return Some(WindowsTimezone::Utc);
    }
    let candidates: Vec<(Tz, WindowsTimezone)> = chrono_tz::TZ_VARIANTS
        .iter()
        .filter_map(|&candidate| {
            WindowsTimezone::try_from(candidate)
                .ok()
                .map(|w| (candidate, w))
        })
        .filter(|&(candidate, _)| same_offsets(tz, candidate, RECENT))
        .collect();
    candidates
        .iter()
        .find(|&&(candidate, _)| same_offsets(tz, candidate, HISTORY))
        .or(candidates.first())
        .map(|&(_, w)| w)
}

/// Years (from, to) and sampling step in hours of an offset comparison.
type Span = (i32, i32, i64);
/// The years calendar sync can reach (old series, a ten-year horizon); six-hour steps see every
/// DST rule.
const RECENT: Span = (2020, 2036, 6);
/// Enough history to tell an alias from a zone that merely shares today's rules.
const HISTORY: Span = (1970, 2020, 12);

/// Whether two zones have the same UTC offset at every sample of `span`. A cheap two-instant
/// check first keeps a scan over all zones fast.
fn same_offsets(a: Tz, b: Tz, (from, to, step): Span) -> bool {
    let offset = |tz: Tz, at: DateTime<Utc>| tz.offset_from_utc_datetime(&at.naive_utc()).fix();
    let Some(start) = Utc.with_ymd_and_hms(from, 1, 15, 0, 0, 0).single() else {
        return false;
    };
    let quick = [start, start + Duration::days(182)];
    if quick.iter().any(|&t| offset(a, t) != offset(b, t)) {
        return false;
    }
    let steps = i64::from(to - from) * 365 * 24 / step;
    (0..steps)
        .map(|i| start + Duration::hours(step * i))
        .all(|t| offset(a, t) == offset(b, t))
}

/// The first instant of `date` in `tz`: local midnight, or where a DST jump skips midnight
/// (America/Santiago, Asia/Beirut in some years) the first local time after the gap.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<Tz> {
    let midnight = date.and_time(NaiveTime::MIN);
    // Gaps are at most a few hours; step through them in quarter hours.
    (0..=24 * 4)
        .find_map(|q| {
            tz.from_local_datetime(&(midnight + Duration::minutes(15 * q)))
                .earliest()
        })
        // No zone skips a whole day at midnight without also existing at some quarter hour;
        // reading midnight as UTC is only a last resort that keeps the function total.
        .unwrap_or_else(|| tz.from_utc_datetime(&midnight))
}

/// The calendar date of an instant in `tz`.
pub fn local_date(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn windows_ids_map_to_iana_through_cldr() {
        assert_eq!(
            windows_to_iana("W. Europe Standard Time"),
            Some("Europe/Berlin")
        );
        assert_eq!(
            windows_to_iana("Pacific Standard Time"),
            Some("America/Los_Angeles")
        );
        assert_eq!(windows_to_iana("UTC"), Some("Etc/UTC"));
        assert_eq!(windows_to_iana("tzone://Microsoft/Utc"), Some("Etc/UTC"));
        assert_eq!(windows_to_iana("tzone://Microsoft/Custom"), None);
        assert_eq!(windows_to_iana("Mars Standard Time"), None);
    }

    #[test]
    fn iana_ids_map_to_windows_including_aliases_cldr_does_not_list() {
        assert_eq!(
            iana_to_windows("Europe/Berlin"),
            Ok("W. Europe Standard Time")
        );
        assert_eq!(iana_to_windows("Europe/Paris"), Ok("Romance Standard Time"));
        assert_eq!(
            iana_to_windows("America/New_York"),
            Ok("Eastern Standard Time")
        );
        assert_eq!(iana_to_windows("UTC"), Ok("UTC"));
        assert_eq!(iana_to_windows("Etc/UTC"), Ok("UTC"));
        assert_eq!(iana_to_windows("Asia/Kolkata"), Ok("India Standard Time"));
        assert_eq!(iana_to_windows("Europe/Kyiv"), Ok("FLE Standard Time"));
        // Twice: the second answer comes from the cache.
        assert_eq!(iana_to_windows("Asia/Kolkata"), Ok("India Standard Time"));
        assert_eq!(
            iana_to_windows("Nowhere/Special"),
            Err(TzError::UnknownIana("Nowhere/Special".into()))
        );
    }

    #[test]
    fn every_windows_zone_round_trips_through_its_iana_zone() {
        for id in [
            "W. Europe Standard Time",
            "GMT Standard Time",
            "Eastern Standard Time",
            "AUS Eastern Standard Time",
            "Tokyo Standard Time",
            "UTC",
        ] {
            let iana = windows_to_iana(id).expect("known");
            assert_eq!(iana_to_windows(iana), Ok(id), "{id} -> {iana}");
        }
    }

    #[test]
    fn start_of_day_is_local_midnight_across_dst() {
        let berlin = parse_iana("Europe/Berlin").expect("zone");
        // Winter: UTC+1; summer: UTC+2; the day of the spring switch still starts at 00:00+01.
        assert_eq!(
            start_of_day(date(2026, 1, 10), berlin).to_rfc3339(),
            "2026-01-10T00:00:00+01:00"
        );
        assert_eq!(
            start_of_day(date(2026, 7, 10), berlin).to_rfc3339(),
            "2026-07-10T00:00:00+02:00"
        );
        assert_eq!(
            start_of_day(date(2026, 3, 29), berlin).to_rfc3339(),
            "2026-03-29T00:00:00+01:00"
        );
        // Santiago springs forward at midnight: the day starts at 01:00.
        let santiago = parse_iana("America/Santiago").expect("zone");
        assert_eq!(
            start_of_day(date(2025, 9, 7), santiago).to_rfc3339(),
            "2025-09-07T01:00:00-03:00"
        );
    }

    #[test]
    fn local_dates_do_not_shift_by_a_day() {
        let tokyo = parse_iana("Asia/Tokyo").expect("zone");
        let la = parse_iana("America/Los_Angeles").expect("zone");
        // Midnight in Tokyo is the previous day in UTC.
        let tokyo_midnight = start_of_day(date(2026, 2, 10), tokyo).with_timezone(&Utc);
        assert_eq!(tokyo_midnight.to_rfc3339(), "2026-02-09T15:00:00+00:00");
        assert_eq!(local_date(tokyo_midnight, tokyo), date(2026, 2, 10));
        let la_midnight = start_of_day(date(2026, 2, 10), la).with_timezone(&Utc);
        assert_eq!(la_midnight.to_rfc3339(), "2026-02-10T08:00:00+00:00");
        assert_eq!(local_date(la_midnight, la), date(2026, 2, 10));
    }
}
