//! The embedded [`StateStore`]: one SQLite file for the single-process runner.
//!
//! - [`SqliteStateStore`]: the store. [`SqliteStateStore::open`] a file (WAL mode, created and
//!   migrated on open) or [`SqliteStateStore::open_in_memory`] for tests and demos.
//! - `schema`: the tables as ordered migrations, each with why it exists.
//! - `codec`: how timestamps (fixed-width RFC 3339 text), enums (serde names) and run counts
//!   (JSON text) are stored. Everything else is a plain column.
//! - [`SqliteStoreError`]: the adapter's failures, kept as the source of the port's error.
//!
//! One connection behind a `std::sync::Mutex` serves all calls; each async method runs its
//! SQLite work on tokio's blocking pool. SQLite serializes writers anyway, and one connection
//! means the process never races itself into `SQLITE_BUSY`; `busy_timeout` covers other
//! processes (a CLI `status` reading the file while `serve` runs).

mod codec;
mod error;
mod schema;

pub use error::SqliteStoreError;
use error::store_error;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use codec::{Json, Name, Ts};
use lnsync_core::error::StoreError;
use lnsync_core::ids::*;
use lnsync_core::model::*;
use lnsync_core::ports::StateStore;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How many runs per (user, kind) are kept; the console shows the latest, the rest is a short
/// history for "what happened lately".
const RUN_HISTORY: i64 = 20;

/// How many expired job ids one `mark_job_done` purges, so a backlog is worked off gradually
/// without one call paying for all of it.
const JOB_PURGE_BATCH: i64 = 100;

/// How long a call waits for another process's write lock before failing as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite implementation of [`StateStore`].
///
/// Keyed reads and deletes (`links`, `delete_links`, `clear_problems`) run one cached
/// point statement per key inside one transaction rather than `IN (...)` lists: with an
/// `IN` list SQLite's planner, lacking statistics, prefers a range scan over the user's whole
/// (env, user, kind) prefix, which is O(links) not O(keys). A point lookup on the full primary
/// key is O(log n) by construction, and a prepared statement costs microseconds per key.
#[derive(Debug, Clone)]
pub struct SqliteStateStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStateStore {
    /// Opens (creating if needed) the store at `path` and migrates it to the current schema.
    /// Blocks briefly: call it once at start-up.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(store_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
        // WAL lets readers (console, CLI) proceed while a sync writes. The default
        // synchronous=FULL is kept: writes are few and small, and a link lost to a power cut
        // would cost a re-adoption by stamp, not worth the speed.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(store_error)?;
        Self::setup(conn)
    }

    /// A private in-memory store, gone when the last clone is dropped.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory().map_err(store_error)?)
    }

    fn setup(mut conn: Connection) -> Result<Self, StoreError> {
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Links of one (env, user, kind) scope selected by `sql`, whose parameters are the scope
    /// and, when given, one more value.
    async fn scoped_links(
        &self,
        sql: String,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        value: Option<&str>,
    ) -> Result<Vec<Link>, StoreError> {
        let (env, user) = (env.as_str().to_owned(), user.as_str().to_owned());
        let value = value.map(str::to_owned);
        self.with_conn(move |c| {
            let kind = kind_name(kind)?;
            match &value {
                None => query_links(c, &sql, &[&env, &user, &kind]),
                Some(v) => query_links(c, &sql, &[&env, &user, &kind, v]),
            }
        })
        .await
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let result = tokio::task::spawn_blocking(move || {
            // A panic while the lock was held can only have happened inside a statement or
            // an uncommitted transaction, which SQLite rolled back; the connection is fine.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(SqliteStoreError::from)?;
        result.map_err(store_error)
    }
}

// ---------------------------------------------------------------------------------------------
// Row mapping
// ---------------------------------------------------------------------------------------------

const ENV_COLS: &str = "env, started, updated_at";

fn env_from_row(row: &Row<'_>) -> rusqlite::Result<EnvironmentState> {
    Ok(EnvironmentState {
        env: EnvironmentId::new(row.get::<_, String>(0)?),
        started: row.get(1)?,
        updated_at: row.get::<_, Ts>(2)?.0,
    })
}

const USER_COLS: &str = "env, user_id, mailbox, contact_folder, release_held_deletions, \
                         next_contact_run, next_calendar_run";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserState> {
    Ok(UserState {
        env: EnvironmentId::new(row.get::<_, String>(0)?),
        user: UserId::new(row.get::<_, String>(1)?),
        mailbox: MailboxAddress::new(row.get::<_, String>(2)?),
        contact_folder: row.get::<_, Option<String>>(3)?.map(FolderId::new),
        release_held_deletions: row.get(4)?,
        next_contact_run: row.get::<_, Option<Ts>>(5)?.map(|t| t.0),
        next_calendar_run: row.get::<_, Option<Ts>>(6)?.map(|t| t.0),
    })
}

const LINK_COLS: &str = "env, user_id, kind, ln_key, exchange_id, exchange_version, ln_version, \
                         ln_modified, ln_hash, exchange_hash, ical_uid, origin, organizer, last_error, updated_at, \
                         event_original_start, event_series_id, event_end";

/// One link by its full primary key.
fn link_by_key_sql() -> String {
    format!(
        "SELECT {LINK_COLS} FROM links \
         WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND ln_key = ?4"
    )
}

/// One link by Exchange id. INDEXED BY: without statistics SQLite prefers a range scan of the
/// user's whole primary-key prefix over this index; naming it keeps the lookup O(log n), and
/// the statement fails to prepare, instead of silently scanning, should the index be lost.
fn link_by_exchange_id_sql() -> String {
    format!(
        "SELECT {LINK_COLS} FROM links INDEXED BY links_by_exchange_id \
         WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND exchange_id = ?4 LIMIT 1"
    )
}

/// Every link of one (env, user, kind): a range of the primary key, in key order.
fn all_links_sql() -> String {
    format!(
        "SELECT {LINK_COLS} FROM links \
         WHERE env = ?1 AND user_id = ?2 AND kind = ?3 ORDER BY ln_key"
    )
}

/// Links by iCalendar UID. INDEXED BY for the same reason as [`link_by_exchange_id_sql`].
fn links_by_ical_uid_sql() -> String {
    format!(
        "SELECT {LINK_COLS} FROM links INDEXED BY links_by_ical_uid \
         WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND ical_uid = ?4 ORDER BY ln_key"
    )
}

/// Links by recurring master. INDEXED BY for the same reason as [`link_by_exchange_id_sql`].
fn links_by_series_sql() -> String {
    format!(
        "SELECT {LINK_COLS} FROM links INDEXED BY links_by_series \
         WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND event_series_id = ?4 ORDER BY ln_key"
    )
}

/// Runs one of the multi-row link queries above with four text parameters.
fn query_links(conn: &Connection, sql: &str, params: &[&str]) -> rusqlite::Result<Vec<Link>> {
    conn.prepare_cached(sql)?
        .query_map(rusqlite::params_from_iter(params), link_from_row)?
        .collect()
}

/// `Link.event` from its three columns: present exactly when `event_end` is.
fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Option<EventLink>> {
    let original_start = row.get::<_, Option<Ts>>(15)?.map(|t| t.0);
    let series_id = row.get::<_, Option<String>>(16)?.map(ExchangeItemId::new);
    match row.get::<_, Option<Ts>>(17)? {
        Some(end) => Ok(Some(EventLink {
            original_start,
            series_id,
            end: end.0,
        })),
        None if original_start.is_none() && series_id.is_none() => Ok(None),
        // Written only by `put_links`, which sets all three or none: half an event is damage,
        // and dropping it silently would lose a series membership (R25).
        None => Err(rusqlite::Error::FromSqlConversionFailure(
            17,
            rusqlite::types::Type::Null,
            "event_end is missing while other event columns are set".into(),
        )),
    }
}

fn link_from_row(row: &Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        env: EnvironmentId::new(row.get::<_, String>(0)?),
        user: UserId::new(row.get::<_, String>(1)?),
        kind: row.get::<_, Name<LinkKind>>(2)?.0,
        ln_key: LnKey::new(row.get::<_, String>(3)?),
        exchange_id: ExchangeItemId::new(row.get::<_, String>(4)?),
        exchange_version: ExchangeVersion::new(row.get::<_, String>(5)?),
        ln_version: row.get::<_, Option<String>>(6)?.map(LnVersion::new),
        ln_modified: row.get::<_, Option<Ts>>(7)?.map(|t| t.0),
        ln_hash: ContentHash(row.get(8)?),
        exchange_hash: ContentHash(row.get(9)?),
        ical_uid: row.get::<_, Option<String>>(10)?.map(IcalUid::new),
        origin: row.get::<_, Name<Origin>>(11)?.0,
        organizer: row.get::<_, Option<String>>(12)?.map(MailboxAddress::new),
        last_error: row.get(13)?,
        updated_at: row.get::<_, Ts>(14)?.0,
        event: event_from_row(row)?,
    })
}

const RUN_COLS: &str = "env, user_id, kind, started_at, finished_at, outcome, counts, error";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        env: EnvironmentId::new(row.get::<_, String>(0)?),
        user: UserId::new(row.get::<_, String>(1)?),
        kind: row.get::<_, Name<LinkKind>>(2)?.0,
        started_at: row.get::<_, Ts>(3)?.0,
        finished_at: row.get::<_, Ts>(4)?.0,
        outcome: row.get::<_, Name<RunOutcome>>(5)?.0,
        counts: row.get::<_, Json<RunCounts>>(6)?.0,
        error: row.get(7)?,
    })
}

const PROBLEM_COLS: &str = "env, user_id, kind, ln_key, problem, detail, at";

fn problem_from_row(row: &Row<'_>) -> rusqlite::Result<ItemProblem> {
    Ok(ItemProblem {
        env: EnvironmentId::new(row.get::<_, String>(0)?),
        user: UserId::new(row.get::<_, String>(1)?),
        kind: row.get::<_, Name<LinkKind>>(2)?.0,
        ln_key: LnKey::new(row.get::<_, String>(3)?),
        problem: row.get::<_, Name<ProblemKind>>(4)?.0,
        detail: row.get(5)?,
        at: row.get::<_, Ts>(6)?.0,
    })
}

const SUB_COLS: &str = "env, sub_id, user_id, mailbox, backend, watermark, \
                        status_frequency_minutes, created_at, last_seen, expires_at, active";

/// One subscription by its full primary key (a notification names env and id).
fn subscription_sql() -> String {
    format!("SELECT {SUB_COLS} FROM push_subscriptions WHERE env = ?1 AND sub_id = ?2")
}

/// Every subscription of an environment: a range of the primary key.
fn subscriptions_sql() -> String {
    format!("SELECT {SUB_COLS} FROM push_subscriptions WHERE env = ?1 ORDER BY sub_id")
}

fn subscription_from_row(row: &Row<'_>) -> rusqlite::Result<PushSubscription> {
    Ok(PushSubscription {
        env: EnvironmentId::new(row.get::<_, String>(0)?),
        id: SubscriptionId::new(row.get::<_, String>(1)?),
        user: UserId::new(row.get::<_, String>(2)?),
        mailbox: MailboxAddress::new(row.get::<_, String>(3)?),
        backend: row.get::<_, Name<ExchangeBackend>>(4)?.0,
        watermark: row.get(5)?,
        status_frequency_minutes: row.get(6)?,
        created_at: row.get::<_, Ts>(7)?.0,
        last_seen: row.get::<_, Ts>(8)?.0,
        expires_at: row.get::<_, Option<Ts>>(9)?.map(|t| t.0),
        active: row.get(10)?,
    })
}

/// The stored spelling of a link kind (its serde name, see `codec`).
fn kind_name(kind: LinkKind) -> rusqlite::Result<String> {
    text_of(&Name(kind))
}

fn cursor_kind_name(kind: CursorKind) -> rusqlite::Result<String> {
    text_of(&Name(kind))
}

fn text_of(value: &dyn rusqlite::ToSql) -> rusqlite::Result<String> {
    match value.to_sql()? {
        rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Text(s)) => Ok(s),
        _ => Err(rusqlite::Error::ToSqlConversionFailure(
            "expected a text value".into(),
        )),
    }
}

/// Deletes the rows of `keys` in one scoped table, one point delete per key, in one
/// transaction (see [`SqliteStateStore`] on why not `IN (...)`).
fn delete_keys(
    conn: &mut Connection,
    table: &'static str,
    scope: (String, String, LinkKind),
    keys: Vec<String>,
) -> rusqlite::Result<()> {
    let (env, user, kind) = scope;
    let kind = kind_name(kind)?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND ln_key = ?4"
        ))?;
        for key in &keys {
            stmt.execute([env.as_str(), user.as_str(), kind.as_str(), key.as_str()])?;
        }
    }
    tx.commit()
}

fn owned_keys(keys: &[LnKey]) -> Vec<String> {
    keys.iter().map(|k| k.as_str().to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// The port
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl StateStore for SqliteStateStore {
    async fn environment(
        &self,
        env: &EnvironmentId,
    ) -> Result<Option<EnvironmentState>, StoreError> {
        let env = env.as_str().to_owned();
        self.with_conn(move |c| {
            c.prepare_cached(&format!(
                "SELECT {ENV_COLS} FROM environments WHERE env = ?1"
            ))?
            .query_row([env], env_from_row)
            .optional()
        })
        .await
    }

    async fn environments(&self) -> Result<Vec<EnvironmentState>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(&format!("SELECT {ENV_COLS} FROM environments ORDER BY env"))?
                .query_map([], env_from_row)?
                .collect()
        })
        .await
    }

    async fn put_environment(&self, state: &EnvironmentState) -> Result<(), StoreError> {
        let state = state.clone();
        self.with_conn(move |c| {
            c.prepare_cached(&format!(
                "INSERT OR REPLACE INTO environments ({ENV_COLS}) VALUES (?1, ?2, ?3)"
            ))?
            .execute(params![
                state.env.as_str(),
                state.started,
                Ts(state.updated_at)
            ])?;
            Ok(())
        })
        .await
    }

    async fn user_state(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Option<UserState>, StoreError> {
        let (env, user) = (env.as_str().to_owned(), user.as_str().to_owned());
        self.with_conn(move |c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLS} FROM user_states WHERE env = ?1 AND user_id = ?2"
            ))?
            .query_row([env, user], user_from_row)
            .optional()
        })
        .await
    }

    async fn user_states(&self, env: &EnvironmentId) -> Result<Vec<UserState>, StoreError> {
        let env = env.as_str().to_owned();
        self.with_conn(move |c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLS} FROM user_states WHERE env = ?1 ORDER BY user_id"
            ))?
            .query_map([env], user_from_row)?
            .collect()
        })
        .await
    }

    async fn put_user_state(&self, state: &UserState) -> Result<(), StoreError> {
        let s = state.clone();
        self.with_conn(move |c| {
            c.prepare_cached(&format!(
                "INSERT OR REPLACE INTO user_states ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                s.env.as_str(),
                s.user.as_str(),
                s.mailbox.as_str(),
                s.contact_folder.as_ref().map(FolderId::as_str),
                s.release_held_deletions,
                s.next_contact_run.map(Ts),
                s.next_calendar_run.map(Ts),
            ])?;
            Ok(())
        })
        .await
    }

    async fn links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<Vec<Link>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (env, user, keys) = (
            env.as_str().to_owned(),
            user.as_str().to_owned(),
            owned_keys(keys),
        );
        self.with_conn(move |c| {
            let kind = kind_name(kind)?;
            // One read transaction: all lookups see the same snapshot even if another
            // process writes in between.
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(keys.len());
            {
                let mut stmt = tx.prepare_cached(&link_by_key_sql())?;
                for key in &keys {
                    let found = stmt
                        .query_row(
                            [env.as_str(), user.as_str(), kind.as_str(), key.as_str()],
                            link_from_row,
                        )
                        .optional()?;
                    out.extend(found);
                }
            }
            // A key named twice is one link.
            out.sort_by(|a, b| a.ln_key.cmp(&b.ln_key));
            out.dedup_by(|a, b| a.ln_key == b.ln_key);
            Ok(out)
        })
        .await
    }

    async fn link_by_exchange_id(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        id: &ExchangeItemId,
    ) -> Result<Option<Link>, StoreError> {
        let (env, user, id) = (
            env.as_str().to_owned(),
            user.as_str().to_owned(),
            id.as_str().to_owned(),
        );
        self.with_conn(move |c| {
            let kind = kind_name(kind)?;
            c.prepare_cached(&link_by_exchange_id_sql())?
                .query_row([env, user, kind, id], link_from_row)
                .optional()
        })
        .await
    }

    async fn all_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<Vec<Link>, StoreError> {
        self.scoped_links(all_links_sql(), env, user, kind, None)
            .await
    }

    async fn links_by_ical_uid(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        uid: &IcalUid,
    ) -> Result<Vec<Link>, StoreError> {
        self.scoped_links(links_by_ical_uid_sql(), env, user, kind, Some(uid.as_str()))
            .await
    }

    async fn links_by_series(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        series: &ExchangeItemId,
    ) -> Result<Vec<Link>, StoreError> {
        self.scoped_links(
            links_by_series_sql(),
            env,
            user,
            kind,
            Some(series.as_str()),
        )
        .await
    }

    async fn link_count(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<u64, StoreError> {
        let (env, user) = (env.as_str().to_owned(), user.as_str().to_owned());
        self.with_conn(move |c| {
            let kind = kind_name(kind)?;
            c.prepare_cached(
                "SELECT COUNT(*) FROM links WHERE env = ?1 AND user_id = ?2 AND kind = ?3",
            )?
            .query_row([env, user, kind], |row| row.get::<_, u64>(0))
        })
        .await
    }

    async fn put_links(&self, links: &[Link]) -> Result<(), StoreError> {
        if links.is_empty() {
            return Ok(());
        }
        let links = links.to_vec();
        self.with_conn(move |c| {
            // One transaction: one fsync for the batch, and all-or-nothing on failure.
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT OR REPLACE INTO links ({LINK_COLS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                             ?16, ?17, ?18)"
                ))?;
                for l in &links {
                    let event = l.event.as_ref();
                    stmt.execute(params![
                        l.env.as_str(),
                        l.user.as_str(),
                        Name(l.kind),
                        l.ln_key.as_str(),
                        l.exchange_id.as_str(),
                        l.exchange_version.as_str(),
                        l.ln_version.as_ref().map(LnVersion::as_str),
                        l.ln_modified.map(Ts),
                        l.ln_hash.0,
                        l.exchange_hash.0,
                        l.ical_uid.as_ref().map(IcalUid::as_str),
                        Name(l.origin),
                        l.organizer.as_ref().map(MailboxAddress::as_str),
                        l.last_error,
                        Ts(l.updated_at),
                        event.and_then(|e| e.original_start).map(Ts),
                        event
                            .and_then(|e| e.series_id.as_ref())
                            .map(ExchangeItemId::as_str),
                        event.map(|e| Ts(e.end)),
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn delete_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let scope = (env.as_str().to_owned(), user.as_str().to_owned(), kind);
        let keys = owned_keys(keys);
        self.with_conn(move |c| delete_keys(c, "links", scope, keys))
            .await
    }

    async fn cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<Option<Cursor>, StoreError> {
        let (env, user) = (env.clone(), user.clone());
        self.with_conn(move |c| {
            let name = cursor_kind_name(kind)?;
            c.prepare_cached(
                "SELECT value, revision FROM cursors \
                 WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND deleted = 0",
            )?
            .query_row([env.as_str(), user.as_str(), name.as_str()], |row| {
                Ok(Cursor {
                    env: env.clone(),
                    user: user.clone(),
                    kind,
                    value: row.get(0)?,
                    revision: row.get(1)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn put_cursor(&self, cursor: &Cursor) -> Result<u64, StoreError> {
        let cur = cursor.clone();
        let written = self
            .with_conn(move |c| {
                let name = cursor_kind_name(cur.kind)?;
                let (env, user) = (cur.env.as_str(), cur.user.as_str());
                // Each branch is one statement, so the check and the write are atomic even
                // against other processes sharing the file.
                if cur.revision == 0 {
                    // "Absent" is no row or a tombstone; a tombstone's revision continues.
                    c.prepare_cached(
                        "INSERT INTO cursors (env, user_id, kind, value, revision) \
                         VALUES (?1, ?2, ?3, ?4, 1) \
                         ON CONFLICT (env, user_id, kind) DO UPDATE \
                         SET value = excluded.value, revision = cursors.revision + 1, deleted = 0 \
                         WHERE cursors.deleted = 1 \
                         RETURNING revision",
                    )?
                    .query_row(params![env, user, name, cur.value], |row| row.get(0))
                    .optional()
                } else {
                    // A revision beyond i64 can't be stored, so it can't match: a conflict.
                    let Ok(expected) = i64::try_from(cur.revision) else {
                        return Ok(None);
                    };
                    c.prepare_cached(
                        "UPDATE cursors SET value = ?4, revision = revision + 1 \
                         WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND revision = ?5 \
                         AND deleted = 0 RETURNING revision",
                    )?
                    .query_row(params![env, user, name, cur.value, expected], |row| {
                        row.get(0)
                    })
                    .optional()
                }
            })
            .await?;
        written.ok_or_else(|| StoreError::Conflict {
            what: format!(
                "cursor {} of {}/{}",
                cursor.kind.as_str(),
                cursor.env,
                cursor.user
            ),
        })
    }

    async fn delete_cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<(), StoreError> {
        let (env, user) = (env.as_str().to_owned(), user.as_str().to_owned());
        self.with_conn(move |c| {
            let name = cursor_kind_name(kind)?;
            // A tombstone, not a delete: the revision must keep growing (see schema V3).
            c.prepare_cached(
                "UPDATE cursors SET deleted = 1, value = '' \
                 WHERE env = ?1 AND user_id = ?2 AND kind = ?3",
            )?
            .execute([env, user, name])?;
            Ok(())
        })
        .await
    }

    async fn acquire_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = (
            env.as_str().to_owned(),
            user.as_str().to_owned(),
            kind.to_owned(),
        );
        let holder = holder.to_owned();
        self.with_conn(move |c| {
            // One upsert decides: insert when free, take over when expired or ours (which
            // also extends our own lease), otherwise leave the row and change nothing.
            let changed = c
                .prepare_cached(
                    "INSERT INTO leases (env, user_id, kind, holder, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (env, user_id, kind) DO UPDATE \
                     SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= ?6",
                )?
                .execute(params![
                    key.0,
                    key.1,
                    key.2,
                    holder,
                    Ts::after(now, ttl),
                    Ts(now)
                ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        let key = [env.as_str(), user.as_str(), kind, holder].map(str::to_owned);
        self.with_conn(move |c| {
            c.prepare_cached(
                "DELETE FROM leases WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND holder = ?4",
            )?
            .execute(key)?;
            Ok(())
        })
        .await
    }

    async fn mark_job_done(
        &self,
        job: &JobId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let job = job.as_str().to_owned();
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            // An expired row counts as absent: the upsert takes it over like a fresh insert.
            let changed = tx
                .prepare_cached(
                    "INSERT INTO job_done (job_id, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT (job_id) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE job_done.expires_at <= ?3",
                )?
                .execute(params![job, Ts::after(now, ttl), Ts(now)])?;
            // Keep the table from growing without bound; bounded so no call stalls on it.
            tx.prepare_cached(
                "DELETE FROM job_done WHERE job_id IN \
                 (SELECT job_id FROM job_done WHERE expires_at <= ?1 LIMIT ?2)",
            )?
            .execute(params![Ts(now), JOB_PURGE_BATCH])?;
            tx.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let r = run.clone();
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            tx.prepare_cached(&format!(
                "INSERT INTO runs ({RUN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                r.env.as_str(),
                r.user.as_str(),
                Name(r.kind),
                Ts(r.started_at),
                Ts(r.finished_at),
                Name(r.outcome),
                Json(r.counts),
                r.error,
            ])?;
            tx.prepare_cached(
                "DELETE FROM runs WHERE env = ?1 AND user_id = ?2 AND kind = ?3 AND id <= \
                 (SELECT id FROM runs WHERE env = ?1 AND user_id = ?2 AND kind = ?3 \
                  ORDER BY id DESC LIMIT 1 OFFSET ?4)",
            )?
            .execute(params![
                r.env.as_str(),
                r.user.as_str(),
                Name(r.kind),
                RUN_HISTORY
            ])?;
            tx.commit()
        })
        .await
    }

    async fn last_runs(&self, env: &EnvironmentId) -> Result<Vec<RunRecord>, StoreError> {
        let env = env.as_str().to_owned();
        self.with_conn(move |c| {
            // "Latest" is the last recorded (largest id), not the largest timestamp.
            c.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM runs WHERE id IN \
                 (SELECT MAX(id) FROM runs WHERE env = ?1 GROUP BY user_id, kind) \
                 ORDER BY user_id, kind"
            ))?
            .query_map([env], run_from_row)?
            .collect()
        })
        .await
    }

    async fn put_problem(&self, problem: &ItemProblem) -> Result<(), StoreError> {
        let p = problem.clone();
        self.with_conn(move |c| {
            c.prepare_cached(&format!(
                "INSERT OR REPLACE INTO problems ({PROBLEM_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                p.env.as_str(),
                p.user.as_str(),
                Name(p.kind),
                p.ln_key.as_str(),
                Name(p.problem),
                p.detail,
                Ts(p.at),
            ])?;
            Ok(())
        })
        .await
    }

    async fn clear_problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let scope = (env.as_str().to_owned(), user.as_str().to_owned(), kind);
        let keys = owned_keys(keys);
        self.with_conn(move |c| delete_keys(c, "problems", scope, keys))
            .await
    }

    async fn problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Vec<ItemProblem>, StoreError> {
        let (env, user) = (env.as_str().to_owned(), user.as_str().to_owned());
        self.with_conn(move |c| {
            c.prepare_cached(&format!(
                "SELECT {PROBLEM_COLS} FROM problems WHERE env = ?1 AND user_id = ?2 \
                 ORDER BY kind, ln_key"
            ))?
            .query_map([env, user], problem_from_row)?
            .collect()
        })
        .await
    }

    async fn ensure_push_token(
        &self,
        env: &EnvironmentId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let (env, candidate) = (env.as_str().to_owned(), candidate.to_owned());
        self.with_conn(move |c| {
            // Insert-if-absent, then read back in the same transaction: whoever inserted
            // first (this call, another clone, or another process on the file) wins, and
            // everyone reads that one token.
            let tx = c.transaction()?;
            tx.prepare_cached(
                "INSERT INTO push_tokens (env, token) VALUES (?1, ?2) \
                 ON CONFLICT (env) DO NOTHING",
            )?
            .execute([&env, &candidate])?;
            let token = tx
                .prepare_cached("SELECT token FROM push_tokens WHERE env = ?1")?
                .query_row([&env], |row| row.get(0))?;
            tx.commit()?;
            Ok(token)
        })
        .await
    }

    async fn push_token(&self, env: &EnvironmentId) -> Result<Option<String>, StoreError> {
        let env = env.as_str().to_owned();
        self.with_conn(move |c| {
            c.prepare_cached("SELECT token FROM push_tokens WHERE env = ?1")?
                .query_row([env], |row| row.get(0))
                .optional()
        })
        .await
    }

    async fn put_subscription(&self, sub: &PushSubscription) -> Result<(), StoreError> {
        let s = sub.clone();
        self.with_conn(move |c| {
            c.prepare_cached(&format!(
                "INSERT OR REPLACE INTO push_subscriptions ({SUB_COLS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                s.env.as_str(),
                s.id.as_str(),
                s.user.as_str(),
                s.mailbox.as_str(),
                Name(s.backend),
                s.watermark,
                s.status_frequency_minutes,
                Ts(s.created_at),
                Ts(s.last_seen),
                s.expires_at.map(Ts),
                s.active,
            ])?;
            Ok(())
        })
        .await
    }

    async fn subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<Option<PushSubscription>, StoreError> {
        let (env, id) = (env.as_str().to_owned(), id.as_str().to_owned());
        self.with_conn(move |c| {
            c.prepare_cached(&subscription_sql())?
                .query_row([env, id], subscription_from_row)
                .optional()
        })
        .await
    }

    async fn subscriptions(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<PushSubscription>, StoreError> {
        let env = env.as_str().to_owned();
        self.with_conn(move |c| {
            c.prepare_cached(&subscriptions_sql())?
                .query_map([env], subscription_from_row)?
                .collect()
        })
        .await
    }

    async fn touch_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
        seen: DateTime<Utc>,
        watermark: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (env, id) = (env.as_str().to_owned(), id.as_str().to_owned());
        let watermark = watermark.map(str::to_owned);
        self.with_conn(move |c| {
            // One statement checks and writes, so two deliveries racing (even from two
            // processes) can't move last_seen back; fixed-width text compares as time.
            let changed = c
                .prepare_cached(
                    "UPDATE push_subscriptions \
                     SET last_seen = ?3, watermark = COALESCE(?4, watermark) \
                     WHERE env = ?1 AND sub_id = ?2 AND last_seen <= ?3",
                )?
                .execute(params![env, id, Ts(seen), watermark])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn delete_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<(), StoreError> {
        let (env, id) = (env.as_str().to_owned(), id.as_str().to_owned());
        self.with_conn(move |c| {
            c.prepare_cached("DELETE FROM push_subscriptions WHERE env = ?1 AND sub_id = ?2")?
                .execute([env, id])?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reopening_a_file_keeps_data_and_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let env = EnvironmentState {
            env: EnvironmentId::new("prod"),
            started: true,
            updated_at: Utc::now(),
        };
        {
            let store = SqliteStateStore::open(&path).expect("open");
            store.put_environment(&env).await.expect("put");
        }
        let store = SqliteStateStore::open(&path).expect("reopen");
        assert_eq!(store.environment(&env.env).await.expect("get"), Some(env));
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        drop(SqliteStateStore::open(&path).expect("open"));
        {
            let conn = Connection::open(&path).expect("raw open");
            conn.execute("UPDATE schema_version SET version = 99", [])
                .expect("bump");
        }
        match SqliteStateStore::open(&path) {
            Err(StoreError::Corrupt { message }) => assert!(message.contains("99"), "{message}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreadable_row_is_corrupt_not_unavailable() {
        let store = SqliteStateStore::open_in_memory().expect("open");
        store
            .with_conn(|c| {
                c.execute(
                    "INSERT INTO environments (env, started, updated_at) VALUES ('x', 1, 'yesterday')",
                    [],
                )
            })
            .await
            .expect("raw insert");
        let err = store.environments().await.expect_err("bad timestamp");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn run_history_is_trimmed() {
        let store = SqliteStateStore::open_in_memory().expect("open");
        let t = Utc::now();
        for i in 0..(RUN_HISTORY + 5) {
            let run = RunRecord {
                env: EnvironmentId::new("e"),
                user: UserId::new("u"),
                kind: LinkKind::Contact,
                started_at: t + chrono::Duration::seconds(i),
                finished_at: t + chrono::Duration::seconds(i),
                outcome: RunOutcome::Succeeded,
                counts: RunCounts::default(),
                error: None,
            };
            store.record_run(&run).await.expect("record");
        }
        let kept: i64 = store
            .with_conn(|c| c.query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0)))
            .await
            .expect("count");
        assert_eq!(kept, RUN_HISTORY);
    }

    /// The O(keys) promise of `links` and `link_by_exchange_id`: both are full-key index searches.
    #[tokio::test]
    async fn link_lookups_search_an_index_never_scan() {
        let store = SqliteStateStore::open_in_memory().expect("open");
        let plans = store
            .with_conn(|c| {
                let plan = |sql: &str| -> rusqlite::Result<String> {
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows =
                        stmt.query_map(["e", "u", "Contact", "x"], |r| r.get::<_, String>(3))?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()
                        .map(|v| v.join("; "))
                };
                Ok([
                    plan(&link_by_key_sql())?,
                    plan(&link_by_exchange_id_sql())?,
                    plan(&links_by_ical_uid_sql())?,
                    plan(&links_by_series_sql())?,
                ])
            })
            .await
            .expect("plans");
        assert!(
            plans[0].contains("USING PRIMARY KEY (env=? AND user_id=? AND kind=? AND ln_key=?)"),
            "{}",
            plans[0]
        );
        assert!(
            plans[1].contains("USING INDEX links_by_exchange_id"),
            "{}",
            plans[1]
        );
        assert!(
            plans[2].contains(
                "USING INDEX links_by_ical_uid (env=? AND user_id=? AND kind=? AND ical_uid=?)"
            ),
            "{}",
            plans[2]
        );
        assert!(
            plans[3].contains(
                "USING INDEX links_by_series (env=? AND user_id=? AND kind=? AND event_series_id=?)"
            ),
            "{}",
            plans[3]
        );
        assert!(plans.iter().all(|p| !p.contains("SCAN")), "{plans:?}");
    }

    /// `all_links` reads one (env, user, kind) range of the primary key, not the table.
    #[tokio::test]
    async fn all_links_reads_one_key_range() {
        let store = SqliteStateStore::open_in_memory().expect("open");
        let plan = store
            .with_conn(|c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {}", all_links_sql()))?;
                let rows = stmt.query_map(["e", "u", "Event"], |r| r.get::<_, String>(3))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map(|v| v.join("; "))
            })
            .await
            .expect("plan");
        assert!(
            plan.contains("USING PRIMARY KEY (env=? AND user_id=? AND kind=?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN"), "{plan}");
    }

    /// A file written before calendar links (schema 1) is upgraded in place: its links keep
    /// every value and read back without an event; new links can carry one.
    #[tokio::test]
    async fn a_schema_1_file_is_upgraded_and_keeps_its_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            tx.execute_batch(schema::MIGRATIONS[0]).expect("v1");
            tx.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL); \
                 INSERT INTO schema_version (version) VALUES (1); \
                 INSERT INTO links (env, user_id, kind, ln_key, exchange_id, exchange_version, \
                   ln_version, ln_modified, ln_hash, exchange_hash, ical_uid, origin, organizer, \
                   last_error, updated_at) VALUES ('e', 'u', 'Event', 'ACT1', 'AAMk1', 'CK1', \
                   'W/\"1\"', NULL, 'lh', 'eh', 'uid-1', 'LN', NULL, NULL, \
                   '2026-11-25T10:00:00.000000000Z');",
            )
            .expect("v1 data");
            tx.commit().expect("commit");
        }
        let store = SqliteStateStore::open(&path).expect("upgrade");
        let (e, u) = (EnvironmentId::new("e"), UserId::new("u"));
        let old = store
            .links_by_ical_uid(&e, &u, LinkKind::Event, &IcalUid::new("uid-1"))
            .await
            .expect("by uid");
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].ln_key.as_str(), "ACT1");
        assert_eq!(old[0].event, None);

        let mut new = old[0].clone();
        new.ln_key = LnKey::new("ACT2");
        new.event = Some(EventLink {
            original_start: Some(old[0].updated_at),
            series_id: Some(ExchangeItemId::new("AAMk-master")),
            end: old[0].updated_at,
        });
        store
            .put_links(std::slice::from_ref(&new))
            .await
            .expect("put");
        let by_series = store
            .links_by_series(&e, &u, LinkKind::Event, &ExchangeItemId::new("AAMk-master"))
            .await
            .expect("by series");
        assert_eq!(by_series, vec![new]);
        let version: i64 = store
            .with_conn(|c| c.query_row("SELECT version FROM schema_version", [], |r| r.get(0)))
            .await
            .expect("version");
        assert_eq!(
            version,
            i64::try_from(schema::MIGRATIONS.len()).expect("few")
        );
    }

    #[tokio::test]
    async fn half_an_event_is_corrupt() {
        let store = SqliteStateStore::open_in_memory().expect("open");
        store
            .with_conn(|c| {
                c.execute(
                    "INSERT INTO links (env, user_id, kind, ln_key, exchange_id, exchange_version, \
                       ln_hash, exchange_hash, origin, updated_at, event_series_id) \
                     VALUES ('e', 'u', 'Event', 'A', 'x', 'v', 'h', 'h', 'LN', \
                       '2026-11-25T10:00:00.000000000Z', 'AAMk-master')",
                    [],
                )
            })
            .await
            .expect("raw insert");
        let err = store
            .all_links(&EnvironmentId::new("e"), &UserId::new("u"), LinkKind::Event)
            .await
            .expect_err("no event_end");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }

    /// A file written before push (schema 3) is upgraded in place: its rows stay, and the push
    /// tables start empty and work.
    #[tokio::test]
    async fn a_schema_3_file_is_upgraded_and_keeps_its_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            for sql in &schema::MIGRATIONS[..3] {
                tx.execute_batch(sql).expect("v1..v3");
            }
            tx.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL); \
                 INSERT INTO schema_version (version) VALUES (3); \
                 INSERT INTO environments (env, started, updated_at) \
                   VALUES ('e', 1, '2026-11-25T10:00:00.000000000Z'); \
                 INSERT INTO cursors (env, user_id, kind, value, revision) \
                   VALUES ('e', 'u', 'LnContacts', 'state-7', 7);",
            )
            .expect("v3 data");
            tx.commit().expect("commit");
        }
        let store = SqliteStateStore::open(&path).expect("upgrade");
        let e = EnvironmentId::new("e");
        assert!(store.environment(&e).await.expect("env").is_some());
        let cursor = store
            .cursor(&e, &UserId::new("u"), CursorKind::LnContacts)
            .await
            .expect("cursor")
            .expect("kept");
        assert_eq!((cursor.value.as_str(), cursor.revision), ("state-7", 7));

        assert_eq!(store.push_token(&e).await.expect("token"), None);
        assert_eq!(
            store.ensure_push_token(&e, "t1").await.expect("ensure"),
            "t1"
        );
        assert!(store.subscriptions(&e).await.expect("subs").is_empty());
        let version: i64 = store
            .with_conn(|c| c.query_row("SELECT version FROM schema_version", [], |r| r.get(0)))
            .await
            .expect("version");
        assert_eq!(
            version,
            i64::try_from(schema::MIGRATIONS.len()).expect("few")
        );
    }

    /// Notifications find their subscription by (env, id) and renewal lists one environment:
    /// both are searches of the primary key, never a scan of every environment's rows.
    #[tokio::test]
    async fn subscription_lookups_search_the_primary_key() {
        let store = SqliteStateStore::open_in_memory().expect("open");
        let plans = store
            .with_conn(|c| {
                let plan = |sql: &str, args: &[&str]| -> rusqlite::Result<String> {
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = stmt
                        .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()
                        .map(|v| v.join("; "))
                };
                Ok([
                    plan(&subscription_sql(), &["e", "s"])?,
                    plan(&subscriptions_sql(), &["e"])?,
                ])
            })
            .await
            .expect("plans");
        assert!(
            plans[0].contains("USING PRIMARY KEY (env=? AND sub_id=?)"),
            "{}",
            plans[0]
        );
        assert!(
            plans[1].contains("USING PRIMARY KEY (env=?)"),
            "{}",
            plans[1]
        );
        assert!(plans.iter().all(|p| !p.contains("SCAN")), "{plans:?}");
    }
}
