//! The store's schema as an ordered list of migrations, applied at open.
//!
//! `schema_version` holds one row: how many entries of [`MIGRATIONS`] the file has seen. A
//! migration is never edited once released; a change is a new entry appended at the end, so a
//! file written by any older lnsync upgrades in place, and a file written by a newer one is
//! refused instead of being misread.

use super::error::SqliteStoreError;
use rusqlite::{Connection, TransactionBehavior};

/// Migration 1: the initial schema.
///
/// Conventions (see the module docs of `sqlite`): timestamps are RFC 3339 text in UTC with
/// nine fractional digits and a `Z`, so text order is time order and SQL can compare them;
/// enums are stored by their serde name; `RunCounts` is JSON text. `WITHOUT ROWID` is used
/// where the primary key is the only access path, so rows live in the key's B-tree.
const V1: &str = r#"
-- Environments the store knows, started or stopped (R1). Few rows; read whole.
CREATE TABLE environments (
    env        TEXT    NOT NULL PRIMARY KEY,
    started    INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
) WITHOUT ROWID;

-- Per-user bookkeeping that is neither a link nor a cursor: mailbox, "CRM Contacts" folder
-- (R9), the administrator's release of held deletions (R30), next due runs.
CREATE TABLE user_states (
    env                    TEXT    NOT NULL,
    user_id                TEXT    NOT NULL,
    mailbox                TEXT    NOT NULL,
    contact_folder         TEXT,
    release_held_deletions INTEGER NOT NULL,
    next_contact_run       TEXT,
    next_calendar_run      TEXT,
    PRIMARY KEY (env, user_id)
) WITHOUT ROWID;

-- The status row of every synchronized pair (or a create intent: empty exchange_id). The primary key serves the hot path: the planner
-- asks for the links of the LN keys it is looking at (`links`), never for all of them.
CREATE TABLE links (
    env              TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    ln_key           TEXT NOT NULL,
    exchange_id      TEXT NOT NULL,
    exchange_version TEXT NOT NULL,
    ln_version       TEXT,
    ln_modified      TEXT,
    ln_hash          TEXT NOT NULL,
    exchange_hash    TEXT NOT NULL,
    ical_uid         TEXT,
    origin           TEXT NOT NULL,
    organizer        TEXT,
    last_error       TEXT,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (env, user_id, kind, ln_key)
) WITHOUT ROWID;

-- Exchange change feeds name items by id only (deletions carry nothing else), so finding the
-- link of an Exchange item must be a lookup too.
CREATE INDEX links_by_exchange_id ON links (env, user_id, kind, exchange_id);

-- Sync cursors with a revision for compare-and-set writes (R35, R36).
CREATE TABLE cursors (
    env      TEXT    NOT NULL,
    user_id  TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (env, user_id, kind)
) WITHOUT ROWID;

-- Per (user, kind) leases, the store-side guard of R36. Expired rows are simply taken over.
CREATE TABLE leases (
    env        TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (env, user_id, kind)
) WITHOUT ROWID;

-- Ids of processed jobs, to drop redeliveries (R34). Rows past `expires_at` count as absent.
CREATE TABLE job_done (
    job_id     TEXT NOT NULL PRIMARY KEY,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;

-- Lets the opportunistic purge of expired job ids find them without a scan.
CREATE INDEX job_done_by_expiry ON job_done (expires_at);

-- Run history for the console (R39). AUTOINCREMENT keeps ids increasing even after trimming,
-- so "latest" is "largest id" without comparing timestamps written by different clocks.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    env         TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    counts      TEXT NOT NULL,
    error       TEXT
);

-- Serves both "latest run per (user, kind)" and the history trim after each insert.
CREATE INDEX runs_by_user ON runs (env, user_id, kind, id);

-- Item-level problems for the console (R40), one per item: a new one replaces the old.
CREATE TABLE problems (
    env     TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind    TEXT NOT NULL,
    ln_key  TEXT NOT NULL,
    problem TEXT NOT NULL,
    detail  TEXT NOT NULL,
    at      TEXT NOT NULL,
    PRIMARY KEY (env, user_id, kind, ln_key)
) WITHOUT ROWID;
"#;

/// Migration 2: calendar links (`Link.event`, R16, R25) and their lookups.
///
/// The three columns are NULL for contact links; `event_end` is NOT NULL exactly when the link
/// has an event (the end is the one field an event link always has). Timestamps follow V1's
/// fixed-width text convention.
const V2: &str = r#"
ALTER TABLE links ADD COLUMN event_original_start TEXT;
ALTER TABLE links ADD COLUMN event_series_id      TEXT;
ALTER TABLE links ADD COLUMN event_end            TEXT;

-- Copies of one meeting in several mailboxes, and a series' occurrences, are found by their
-- iCalendar UID (R24, R25) without reading every link of the user.
CREATE INDEX links_by_ical_uid ON links (env, user_id, kind, ical_uid);

-- A deleted recurring master names only itself; its occurrences' links are found through it.
CREATE INDEX links_by_series ON links (env, user_id, kind, event_series_id);
"#;

/// Cursor tombstones: a deleted cursor keeps its revision, so re-creating it continues the count
/// and a writer that read a revision before a reset (R39) can never win afterwards.
const V3: &str = r#"
ALTER TABLE cursors ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
"#;

/// Migration 4: push (R31–R33), two new tables; existing rows are untouched.
const V4: &str = r#"
-- The secret part of each environment's EWS notification URL. Its own table rather than a
-- column of `environments`: `put_environment` replaces that row whole, and a token must never
-- change once handed out (live subscriptions post to URLs that carry it).
CREATE TABLE push_tokens (
    env   TEXT NOT NULL PRIMARY KEY,
    token TEXT NOT NULL
) WITHOUT ROWID;

-- Push subscriptions, addressed the way notifications arrive: by environment (from the URL)
-- and subscription id (from the body). Listed per environment for renewal and the silence
-- check (R33), a range of the primary key.
CREATE TABLE push_subscriptions (
    env                      TEXT    NOT NULL,
    sub_id                   TEXT    NOT NULL,
    user_id                  TEXT    NOT NULL,
    mailbox                  TEXT    NOT NULL,
    backend                  TEXT    NOT NULL,
    watermark                TEXT,
    status_frequency_minutes INTEGER NOT NULL,
    created_at               TEXT    NOT NULL,
    last_seen                TEXT    NOT NULL,
    expires_at               TEXT,
    active                   INTEGER NOT NULL,
    PRIMARY KEY (env, sub_id)
) WITHOUT ROWID;
"#;

/// Every migration in order; entry `i` takes the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// Brings the database up to the latest schema.
///
/// Runs in one IMMEDIATE transaction: two processes opening the same fresh file serialize here
/// instead of both creating tables, and a failed migration leaves the file as it was.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), SqliteStoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |row| row.get(0),
    )?;
    let known = MIGRATIONS.len();
    // A negative or too-large version is a file this code did not write: refuse it.
    let current = match usize::try_from(current) {
        Ok(v) if v <= known => v,
        _ => {
            return Err(SqliteStoreError::SchemaVersion {
                found: current,
                known,
            });
        }
    };
    if current == known {
        return Ok(());
    }
    for sql in &MIGRATIONS[current..] {
        tx.execute_batch(sql)?;
    }
    tx.execute("DELETE FROM schema_version", [])?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [known as i64],
    )?;
    tx.commit()?;
    Ok(())
}
