//! How model values become SQLite values and back.
//!
//! - [`Ts`]: timestamps as fixed-width RFC 3339 text (`2026-11-25T10:00:00.000000000Z`). Fixed
//!   width and UTC make text order equal time order, so SQL compares expiries directly, and
//!   nanoseconds make every `DateTime<Utc>` round-trip exactly.
//! - [`Name`]: enums by their serde name, the same spelling the rest of lnsync uses in JSON.
//! - [`Json`]: structured values (run counts) as JSON text, so adding a counter needs no
//!   migration.
//!
//! Values that don't decode surface as `FromSqlConversionFailure`, which the store reports as
//! [`lnsync_core::error::StoreError::Corrupt`].

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A timestamp column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ts(pub DateTime<Utc>);

impl Ts {
    /// `now + ttl`, saturating at the last instant the fixed-width format can hold, so a huge
    /// TTL means "never expires" instead of an overflow.
    pub fn after(now: DateTime<Utc>, ttl: std::time::Duration) -> Ts {
        let latest = DateTime::<Utc>::from_timestamp(253_402_300_799, 999_999_999)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let at = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .map_or(latest, |t| t.min(latest));
        Ts(at)
    }
}

impl ToSql for Ts {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(
            self.0.to_rfc3339_opts(SecondsFormat::Nanos, true),
        ))
    }
}

impl FromSql for Ts {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        DateTime::parse_from_rfc3339(text)
            .map(|t| Ts(t.with_timezone(&Utc)))
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// An enum column holding the value's serde name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Name<T>(pub T);

impl<T: Serialize> ToSql for Name<T> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match serde_json::to_value(&self.0) {
            Ok(serde_json::Value::String(name)) => Ok(ToSqlOutput::from(name)),
            Ok(other) => Err(rusqlite::Error::ToSqlConversionFailure(
                format!("expected an enum that serializes to a name, got {other}").into(),
            )),
            Err(e) => Err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))),
        }
    }
}

impl<T: DeserializeOwned> FromSql for Name<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map(Name)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// A column holding a value as JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Json<T>(pub T);

impl<T: Serialize> ToSql for Json<T> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        serde_json::to_string(&self.0)
            .map(ToSqlOutput::from)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }
}

impl<T: DeserializeOwned> FromSql for Json<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        serde_json::from_str(value.as_str()?)
            .map(Json)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_sort_as_text_and_round_trip() {
        let a = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid")
            + chrono::Duration::nanoseconds(7);
        let b = Utc
            .with_ymd_and_hms(2026, 10, 2, 3, 4, 5)
            .single()
            .expect("valid");
        let (a_ts, b_ts) = (Ts(a), Ts(b));
        let (ta, tb) = (a_ts.to_sql().expect("a"), b_ts.to_sql().expect("b"));
        let text = |o: &ToSqlOutput<'_>| match o {
            ToSqlOutput::Owned(rusqlite::types::Value::Text(s)) => s.clone(),
            _ => panic!("not text"),
        };
        assert!(text(&ta) < text(&tb));
        let back = Ts::column_result(ValueRef::Text(text(&ta).as_bytes())).expect("parses");
        assert_eq!(back.0, a);
    }

    #[test]
    fn huge_ttl_saturates() {
        let now = Utc::now();
        let t = Ts::after(now, std::time::Duration::MAX);
        assert!(t.0 > now);
        assert!(t.to_sql().is_ok());
    }
}
