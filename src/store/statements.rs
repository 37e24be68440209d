//! The statements that apply webhook events, behind one small trait, so that one body of logic
//! (`event_batch`, `presence`) runs on a sqlx transaction (PostgreSQL, and SQLite's other
//! writes) and on the SQLite event writer's own connection (`sqlite_writer`), which applies a
//! whole batch in one hand-off instead of one round trip to sqlx's worker thread per statement.
//!
//! SQL is written once, with PostgreSQL's `$n` placeholders; SQLite reads `$n` as a named
//! parameter, and each implementation binds by the number in the name.

use sqlx::Row;

use super::presence::Tx;
use super::Result;

/// A value bound to a `$n` placeholder (`params[n - 1]`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// How to read a result column.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Text, or NULL.
    Text,
    Int,
}

/// A result cell, read as its column's `Kind` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Null,
    Text(String),
    Int(i64),
}

impl Value {
    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Where a batch's statements run, inside a transaction the caller opened and will commit.
pub(super) trait Statements {
    /// Runs a query and returns its rows, each column read as `kinds` says.
    async fn rows(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        kinds: &[Kind],
    ) -> Result<Vec<Vec<Value>>>;

    /// Runs a statement and returns how many rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64>;
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    params: &[Param<'q>],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for p in params {
        q = match *p {
            Param::Text(t) => q.bind(t),
            Param::Int(i) => q.bind(i),
        };
    }
    q
}

impl Statements for Tx<'_> {
    async fn rows(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        kinds: &[Kind],
    ) -> Result<Vec<Vec<Value>>> {
        let rows = bind_all(sqlx::query(sql), params)
            .fetch_all(&mut **self)
            .await?;
        rows.iter()
            .map(|row| {
                kinds
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| {
                        Ok(match kind {
                            Kind::Text => row
                                .try_get::<Option<String>, _>(i)?
                                .map_or(Value::Null, Value::Text),
                            Kind::Int => Value::Int(row.try_get(i)?),
                        })
                    })
                    .collect()
            })
            .collect()
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        Ok(bind_all(sqlx::query(sql), params)
            .execute(&mut **self)
            .await?
            .rows_affected())
    }
}

/// Runs a future that never waits: the SQLite writer's statements are synchronous, so every
/// `await` in the batch logic completes at once when run on its connection.
pub(super) fn now<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(t) => t,
        std::task::Poll::Pending => unreachable!("a synchronous statement never waits"),
    }
}
