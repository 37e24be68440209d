//! What a join checks — how many are in a meeting, and whether someone is banned from a room —
//! kept in memory, so a join asks no database. Two ways to keep it true:
//!
//! - **Exclusive** (SQLite, one `bedrud serve` per data folder; bedrud's own commands never write
//!   these tables): every write of `participants` and `room_bans` goes through this process's
//!   `Store`. Each takes `writes`, commits, then updates the mirror before releasing it, so the
//!   mirror moves through the same states as the database, in the same order; a join that reads
//!   it during a write sees the state just before the commit, as it would from the database.
//! - **Shared** (PostgreSQL, possibly several instances): a trigger announces every change of
//!   those tables (`NOTIFY bedrud_admission`, migration 0003), and [`follow`] re-reads what
//!   changed. This instance's own writes re-read their rooms right after their commit, so a
//!   ban made here holds for the next join here. A change committed by *another* instance is
//!   seen here once PostgreSQL has delivered its notification and the rows were re-read — a
//!   join in between sees the state just before, as it would have with a query a moment
//!   earlier. Reads and shows are serialized by `writes`, so an older read never overwrites a
//!   newer one. If the listening connection drops, notifications are lost: everything is read
//!   again when it is back.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock, Weak};

use sqlx::postgres::PgListener;
use sqlx::{AnyPool, Row};

use super::Result;

/// The channel migration 0003's trigger notifies.
pub(super) const CHANNEL: &str = "bedrud_admission";

/// More rooms than this changed at once: read everything again instead of listing them.
const MAX_LISTED: usize = 500;

pub(super) struct Mirror {
    /// Exclusive: held from the start of a write of these tables until the mirror shows it.
    /// Shared: held while rows are re-read and shown.
    pub writes: tokio::sync::Mutex<()>,
    /// Participants per LiveKit room name (absent: none).
    counts: Mutex<HashMap<String, i64>>,
    /// Banned identities per room id.
    bans: RwLock<HashMap<String, HashSet<String>>>,
}

impl Mirror {
    /// Reads the tables once, at start (before any request is served).
    pub async fn load(pool: &AnyPool) -> Result<Mirror> {
        let mirror = Mirror {
            writes: tokio::sync::Mutex::new(()),
            counts: Mutex::new(HashMap::new()),
            bans: RwLock::new(HashMap::new()),
        };
        mirror.read_all(pool).await?;
        Ok(mirror)
    }

    /// Replaces everything with what the tables hold now (call with `writes` held, or before
    /// the mirror is shared).
    async fn read_all(&self, pool: &AnyPool) -> Result<()> {
        let mut counts = HashMap::new();
        for r in sqlx::query("SELECT room_name, COUNT(*) AS n FROM participants GROUP BY room_name")
            .fetch_all(pool)
            .await?
        {
            counts.insert(r.try_get("room_name")?, r.try_get("n")?);
        }
        let mut bans: HashMap<String, HashSet<String>> = HashMap::new();
        for r in sqlx::query("SELECT room_id, identity FROM room_bans")
            .fetch_all(pool)
            .await?
        {
            bans.entry(r.try_get("room_id")?)
                .or_default()
                .insert(r.try_get("identity")?);
        }
        *lock(&self.counts) = counts;
        *self.bans.write().unwrap_or_else(|e| e.into_inner()) = bans;
        Ok(())
    }

    /// Shared mode: re-reads the counts of `rooms` (names) and the bans of `room_ids`, and
    /// shows them. Serialized with every other re-read by `writes`.
    pub async fn refresh(&self, pool: &AnyPool, rooms: &[&str], room_ids: &[&str]) -> Result<()> {
        let _reading = self.writes.lock().await;
        if rooms.len() + room_ids.len() > MAX_LISTED {
            return self.read_all(pool).await;
        }
        if !rooms.is_empty() {
            let sql = format!(
                "SELECT room_name, COUNT(*) AS n FROM participants WHERE room_name IN ({}) \
                 GROUP BY room_name",
                placeholders(rooms.len())
            );
            let mut q = sqlx::query(&sql);
            for r in rooms {
                q = q.bind(*r);
            }
            let mut counts: HashMap<String, i64> =
                rooms.iter().map(|r| (r.to_string(), 0)).collect();
            for r in q.fetch_all(pool).await? {
                counts.insert(r.try_get("room_name")?, r.try_get("n")?);
            }
            self.set_counts(counts.into_iter().collect());
        }
        if !room_ids.is_empty() {
            let sql = format!(
                "SELECT room_id, identity FROM room_bans WHERE room_id IN ({})",
                placeholders(room_ids.len())
            );
            let mut q = sqlx::query(&sql);
            for r in room_ids {
                q = q.bind(*r);
            }
            let mut fresh: HashMap<String, HashSet<String>> = room_ids
                .iter()
                .map(|r| (r.to_string(), HashSet::new()))
                .collect();
            for r in q.fetch_all(pool).await? {
                fresh
                    .entry(r.try_get("room_id")?)
                    .or_default()
                    .insert(r.try_get("identity")?);
            }
            let mut bans = self.bans.write().unwrap_or_else(|e| e.into_inner());
            for (room_id, ids) in fresh {
                match ids.is_empty() {
                    true => bans.remove(&room_id),
                    false => bans.insert(room_id, ids),
                };
            }
        }
        Ok(())
    }

    /// (participants in `room_name`, whether `identity` is banned from room `room_id`).
    pub fn admission(&self, room_name: &str, room_id: &str, identity: &str) -> (i64, bool) {
        let n = lock(&self.counts).get(room_name).copied().unwrap_or(0);
        let banned = self
            .bans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(room_id)
            .is_some_and(|ids| ids.contains(identity));
        (n, banned)
    }

    /// Participant counts as committed (call with `writes` held).
    pub fn set_counts(&self, counts: Vec<(String, i64)>) {
        let mut all = lock(&self.counts);
        for (room, n) in counts {
            if n == 0 {
                all.remove(&room);
            } else {
                all.insert(room, n);
            }
        }
    }

    /// Participant counts as a committed batch of events changed them (call with `writes` held,
    /// the batch's own since before it began).
    pub fn change_counts(&self, changes: super::event_batch::CountChanges) {
        let mut all = lock(&self.counts);
        for (room, change) in changes {
            let n = change.applied_to(all.get(&room).copied().unwrap_or(0));
            debug_assert!(n >= 0, "room {room} would count {n}");
            if n <= 0 {
                all.remove(&room);
            } else {
                all.insert(room, n);
            }
        }
    }

    /// A ban as committed (call with `writes` held).
    pub fn set_ban(&self, room_id: &str, identity: &str, banned: bool) {
        let mut bans = self.bans.write().unwrap_or_else(|e| e.into_inner());
        if banned {
            bans.entry(room_id.to_string())
                .or_default()
                .insert(identity.to_string());
        } else if let Some(ids) = bans.get_mut(room_id) {
            ids.remove(identity);
            if ids.is_empty() {
                bans.remove(room_id);
            }
        }
    }
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shared mode: keeps `mirror` current with what every instance commits, until the mirror is
/// dropped. `listener` must already LISTEN on [`CHANNEL`] — subscribed before the mirror was
/// loaded, so that no change falls between the load and the first notification.
pub(super) fn follow(mut listener: PgListener, pool: AnyPool, mirror: Weak<Mirror>) {
    tokio::spawn(async move {
        loop {
            // Waits for the next change (the task ends at the first one after the store is
            // gone: notifications are per database, so one arrives or the process ends).
            let first = listener.try_recv().await;
            let Some(m) = mirror.upgrade() else { return };
            let outcome = match first {
                Ok(Some(n)) => {
                    // Everything already received is handled in the same re-read.
                    let mut payloads = vec![n.payload().to_string()];
                    while let Some(n) = listener.next_buffered() {
                        payloads.push(n.payload().to_string());
                    }
                    let (rooms, room_ids) = changed(&payloads);
                    m.refresh(&pool, &rooms, &room_ids).await
                }
                Ok(None) => {
                    tracing::warn!(
                        "lost the database connection that announces admission changes; \
                         reading participants and bans again"
                    );
                    let _reading = m.writes.lock().await;
                    m.read_all(&pool).await
                }
                Err(e) => {
                    tracing::warn!("admission changes: {e}; retrying in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    // Connects (listening again) before reading everything again: a change
                    // made while the connection was down was announced to nobody here.
                    match sqlx::query("SELECT 1").execute(&mut listener).await {
                        Ok(_) => {
                            let _reading = m.writes.lock().await;
                            m.read_all(&pool).await
                        }
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = outcome {
                if matches!(e, super::StoreError::Db(sqlx::Error::PoolClosed)) {
                    return;
                }
                tracing::warn!("could not re-read participants and bans: {e}");
            }
        }
    });
}

/// Room names (`c:`) and room ids (`b:`) named by the trigger's payloads, each once.
fn changed(payloads: &[String]) -> (Vec<&str>, Vec<&str>) {
    let mut rooms = HashSet::new();
    let mut room_ids = HashSet::new();
    for p in payloads {
        if let Some(room) = p.strip_prefix("c:") {
            rooms.insert(room);
        } else if let Some(id) = p.strip_prefix("b:") {
            room_ids.insert(id);
        }
    }
    (rooms.into_iter().collect(), room_ids.into_iter().collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
