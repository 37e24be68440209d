//! The SQLite event writer's own connection: a second connection to the same file, through
//! rusqlite on the same SQLite library sqlx links. A batch of webhook events runs on it on the
//! event writer's own thread (`event_log`), or in one blocking task when applied from elsewhere
//! (one hand-off to a blocking thread and back); through sqlx
//! each statement is a round trip to the connection's worker thread (a batch is seven, with
//! BEGIN and COMMIT), and those thread switches, not SQLite, were where ingest spent its time
//! (profile in docs/benchmarks.md).
//!
//! It only applies webhook events (`Store::apply_events`); every other write goes through sqlx,
//! and the two take SQLite's write lock in turn (`busy_timeout`, as between sqlx's connections).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{OpenFlags, TransactionBehavior};

use super::statements::{Kind, Param, Statements, Value};
use super::{Result, StoreError};

/// Distinct statement texts kept prepared: a batch's SQL depends on how many events, rooms and
/// participants it holds, and bursts repeat a few shapes.
const STATEMENT_CACHE: usize = 128;

/// Shared by clones of the store; one batch at a time holds it. `None` once closed.
#[derive(Clone)]
pub(super) struct SqliteWriter {
    conn: Arc<Mutex<Option<rusqlite::Connection>>>,
}

impl SqliteWriter {
    /// Opens `path` (created and migrated by sqlx before) with the pool's settings.
    pub fn open(path: &Path) -> Result<SqliteWriter> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The same as the pool's connections: WAL (persistent in the file; checked here),
        // commits durable against a crash of bedrud (not of the machine: docs/benchmarks.md), and
        // waiting for the write lock rather than failing.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Sqlite(rusqlite::Error::InvalidParameterName(
                format!("journal_mode stayed {mode}"),
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteWriter {
            conn: Arc::new(Mutex::new(Some(conn))),
        })
    }

    /// Closes the connection (with the pool's, the last one to close checkpoints the WAL and
    /// removes it); a later batch fails with `WriterStopped`.
    pub fn close(&self) {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Err((_, e))) = conn.map(rusqlite::Connection::close) {
            tracing::warn!("closing the SQLite event writer's connection: {e}");
        }
    }

    /// Runs `work` in one IMMEDIATE transaction (the write lock is taken at BEGIN, so the
    /// transaction never has to upgrade a read lock and fail with SQLITE_BUSY) on a blocking
    /// thread, and commits it; an error rolls everything back.
    pub async fn transaction<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let writer = self.clone();
        tokio::task::spawn_blocking(move || writer.transaction_here(work))
            .await
            .map_err(|_| StoreError::WriterStopped)?
    }

    /// The same, on this thread: for the event writer's own thread (`event_log`), which has
    /// nothing else to do meanwhile.
    pub fn transaction_here<T>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        // A panic in an earlier batch rolled its transaction back when it unwound.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = conn.as_mut().ok_or(StoreError::WriterStopped)?;
        let mut tx = Tx(conn.transaction_with_behavior(TransactionBehavior::Immediate)?);
        let t = work(&mut tx)?;
        tx.0.commit()?;
        tracing::debug!(
            took_us = started.elapsed().as_micros() as u64,
            "SQLite writer transaction committed"
        );
        Ok(t)
    }
}

/// An open transaction on the writer's connection.
pub(super) struct Tx<'c>(rusqlite::Transaction<'c>);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Param::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i)),
        })
    }
}

impl Tx<'_> {
    /// Prepares `sql` and binds each `$n` to `params[n - 1]`. SQLite numbers named parameters
    /// in order of first appearance, so binding by position would go wrong for a statement
    /// whose `$3` comes before its `$1` (`event_batch`'s ban lookup has one).
    fn prepare(&self, sql: &str, params: &[Param<'_>]) -> Result<rusqlite::CachedStatement<'_>> {
        let mut st = self.0.prepare_cached(sql)?;
        for i in 1..=st.parameter_count() {
            let name = st.parameter_name(i).unwrap_or_default().to_string();
            let param = name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| params.get(n.checked_sub(1)?))
                .ok_or(rusqlite::Error::InvalidParameterName(name))?;
            st.raw_bind_parameter(i, param)?;
        }
        Ok(st)
    }
}

impl Statements for Tx<'_> {
    async fn rows(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        kinds: &[Kind],
    ) -> Result<Vec<Vec<Value>>> {
        let mut st = self.prepare(sql, params)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| {
                    Ok(match kind {
                        Kind::Text => row
                            .get::<_, Option<String>>(i)?
                            .map_or(Value::Null, Value::Text),
                        Kind::Int => Value::Int(row.get(i)?),
                    })
                })
                .collect::<Result<Vec<Value>>>()?;
            out.push(cells);
        }
        Ok(out)
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        Ok(self.prepare(sql, params)?.raw_execute()? as u64)
    }
}
