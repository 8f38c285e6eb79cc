//! The SQLite store's own failures and their mapping into the port's [`StoreError`].

use lnsync_core::error::StoreError;
use rusqlite::ErrorCode;

/// What can go wrong inside the SQLite store. Kept as a typed source under
/// [`StoreError::Unavailable`], so logs show the SQLite error code and message.
#[derive(Debug, thiserror::Error)]
pub enum SqliteStoreError {
    #[error("SQLite call failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the blocking SQLite task did not complete")]
    Task(#[from] tokio::task::JoinError),
    #[error("the database has schema version {found}, this lnsync knows up to {known}")]
    SchemaVersion { found: i64, known: usize },
}

impl SqliteStoreError {
    /// Whether retrying can't help because the stored bytes themselves are unreadable.
    fn is_corrupt(&self) -> bool {
        match self {
            SqliteStoreError::Sqlite(e) => match e {
                rusqlite::Error::SqliteFailure(f, _) => {
                    matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
                }
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::IntegralValueOutOfRange(..) => true,
                _ => false,
            },
            SqliteStoreError::Task(_) => false,
            SqliteStoreError::SchemaVersion { .. } => true,
        }
    }
}

impl From<SqliteStoreError> for StoreError {
    fn from(e: SqliteStoreError) -> Self {
        if e.is_corrupt() {
            // `StoreError::Corrupt` has no source slot, so the whole chain goes into the message.
            StoreError::Corrupt { message: chain(&e) }
        } else {
            StoreError::Unavailable {
                source: Box::new(e),
            }
        }
    }
}

/// The port error for a failed SQLite call (a free function: both types are foreign here).
pub(super) fn store_error(e: rusqlite::Error) -> StoreError {
    SqliteStoreError::from(e).into()
}

/// "outer: inner: innermost", for messages that can't carry a source.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}
