//! bedrud's database: SQLite by default (a file in the data folder, WAL), PostgreSQL when
//! `database.url` says so. One set of queries serves both, through sqlx's `Any` driver.

mod event_batch;
mod event_log;
mod mirror;
mod presence;
mod recordings;
mod rooms;
mod sqlite_writer;
mod statements;
mod users;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use event_log::EventLog;
pub use presence::{Applied, Egress, Event, LiveParticipant, PresenceChange};
pub use recordings::{NewRecording, Outcome, Recording, RecordingStatus};
pub use rooms::{Room, RoomSummary};
pub use users::{RefreshUse, Role, User};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name or email is taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// From the SQLite event writer's own connection (`sqlite_writer`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The event log's writer is gone (bedrud is shutting down).
    #[error("the webhook event writer has stopped")]
    WriterStopped,
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    kind: Kind,
    /// Admission from memory (see `mirror`): exclusive on SQLite, shared on PostgreSQL; `None`
    /// when opened read-only (`bedrud doctor`).
    mirror: Option<std::sync::Arc<mirror::Mirror>>,
    /// SQLite, opened for writing: the connection webhook events are applied on.
    sqlite_writer: Option<sqlite_writer::SqliteWriter>,
}

/// `<dataDir>/bedrud.db`, the default database file.
pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join("bedrud.db")
}

/// `sqlite://<dataDir>/bedrud.db`, the default database.
pub fn default_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", default_path(data_dir).display())
}

/// Creates the data folder (0700) and the database file (0600) if they are missing, and
/// returns the default database's URL.
pub fn prepare_default(data_dir: &Path) -> std::io::Result<String> {
    crate::host::private::create_dir(data_dir)?;
    crate::host::private::create_file(&data_dir.join("bedrud.db"))?;
    Ok(default_url(data_dir))
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        let mut store = Store::open(url, false).await?;
        store.migrate().await?;
        if store.kind == Kind::Sqlite {
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
            let path = options.get_filename();
            // An in-memory database is private to each connection: nothing to share.
            if path != Path::new(":memory:") {
                store.sqlite_writer = Some(sqlite_writer::SqliteWriter::open(path)?);
            }
        }
        // Subscribed before the load, so that no change falls between the two.
        let listener = match store.kind {
            Kind::Sqlite => None,
            Kind::Postgres => {
                let mut l = sqlx::postgres::PgListener::connect(url).await?;
                l.listen(mirror::CHANNEL).await?;
                Some(l)
            }
        };
        let m = std::sync::Arc::new(mirror::Mirror::load(&store.pool).await?);
        if let Some(l) = listener {
            mirror::follow(l, store.pool.clone(), std::sync::Arc::downgrade(&m));
        }
        store.mirror = Some(m);
        Ok(store)
    }

    /// Connects without creating or changing anything (`bedrud doctor`): SQLite in `mode=ro`,
    /// no migrations.
    pub async fn connect_read_only(url: &str) -> Result<Store> {
        match url.strip_prefix("sqlite:") {
            Some(rest) => {
                let path = rest.split('?').next().unwrap_or(rest);
                Store::open(&format!("sqlite:{path}?mode=ro"), true).await
            }
            None => Store::open(url, true).await,
        }
    }

    async fn open(url: &str, read_only: bool) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Kind::Postgres
        } else {
            Kind::Sqlite
        };
        let pool = AnyPoolOptions::new()
            // SQLite has one writer anyway; PostgreSQL gets a modest pool per bedrud instance.
            .max_connections(if kind == Kind::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if kind == Kind::Sqlite && read_only {
                        // Setting the journal mode writes; a reader only waits for writers.
                        conn.execute("PRAGMA busy_timeout = 5000;").await?;
                    } else if kind == Kind::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(Store {
            pool,
            kind,
            mirror: None,
            sqlite_writer: None,
        })
    }

    async fn migrate(&self) -> Result<()> {
        match self.kind {
            Kind::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Kind::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// While a write of participants or bans is in progress: taken before its transaction,
    /// released after the mirror shows it (`None`: no exclusive mirror, nothing to keep in
    /// step — a shared one is brought up to date after the commit, see `mirror_reread`).
    async fn mirror_write(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match (&self.mirror, self.kind) {
            (Some(m), Kind::Sqlite) => Some(m.writes.lock().await),
            _ => None,
        }
    }

    /// After a commit that changed who is in `rooms` or who is banned from `room_ids`: a shared
    /// mirror re-reads them, so that this instance's next join sees its own write at once
    /// (other instances follow through the database's notification). The write is committed
    /// whatever happens here: a failed re-read is logged, and the notification of that same
    /// commit brings the mirror up to date.
    async fn mirror_reread(&self, rooms: &[&str], room_ids: &[&str]) {
        if let (Some(m), Kind::Postgres) = (&self.mirror, self.kind) {
            if let Err(e) = m.refresh(&self.pool, rooms, room_ids).await {
                tracing::warn!("could not re-read participants and bans after a write: {e}");
            }
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether webhook events are applied on a SQLite connection of their own.
    fn has_sqlite_writer(&self) -> bool {
        self.sqlite_writer.is_some()
    }

    /// Answers when the database does (for `/ready`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Only one bedrud instance at a time should reconcile against a shared database: with
    /// PostgreSQL this takes a transaction-scoped advisory lock (released when the returned guard
    /// is released or dropped, or the instance dies); `None` means another instance holds it.
    /// SQLite serves a single instance, so the lock is always granted.
    pub async fn try_reconcile_lock(&self) -> Result<Option<ReconcileLock>> {
        if self.kind == Kind::Sqlite {
            return Ok(Some(ReconcileLock(None)));
        }
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT pg_try_advisory_xact_lock($1) AS ok")
            .bind(RECONCILE_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
        let ok: bool = row.try_get("ok")?;
        Ok(ok.then_some(ReconcileLock(Some(tx))))
    }

    pub async fn close(&self) {
        if let Some(w) = &self.sqlite_writer {
            w.close();
        }
        self.pool.close().await;
    }
}

/// An arbitrary, fixed advisory-lock key for "reconciliation in progress".
const RECONCILE_LOCK_KEY: i64 = 0x6265_6472_7564; // "bedrud"

/// Held while one instance reconciles; see `Store::try_reconcile_lock`.
pub struct ReconcileLock(Option<sqlx::Transaction<'static, sqlx::Any>>);

impl ReconcileLock {
    pub async fn release(self) {
        if let Some(tx) = self.0 {
            let _ = tx.commit().await;
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Maps a unique-constraint violation to `Conflict(what)`.
fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Db(e),
    }
}

/// Flags are stored as 0/1 integers (see the migrations).
fn flag(row: &AnyRow, col: &str) -> bool {
    row.try_get::<i64, _>(col).unwrap_or(0) != 0
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
