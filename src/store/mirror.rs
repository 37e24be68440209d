//! What a join checks — how many are in a meeting, and whether someone is banned from a room —
//! kept in memory when this process is the database's only writer, so a join asks no database.
//!
//! Sound when every write of `participants` and `room_bans` goes through this process's `Store`:
//! SQLite, one `bedrud serve` per data folder (bedrud's own commands never write those tables).
//! Each such write takes `writes`, commits, then updates the mirror before releasing it, so the
//! mirror moves through the same states as the database, in the same order; a join that reads it
//! during a write sees the state just before the commit, as it would have from the database.
//! PostgreSQL may be shared by several instances, each writing what the others cannot see (a
//! webhook applied by one, a ban made on another): there admission stays one query.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use sqlx::{AnyPool, Row};

use super::Result;

pub(super) struct Mirror {
    /// Held from the start of a write of these tables until the mirror shows it.
    pub writes: tokio::sync::Mutex<()>,
    /// Participants per LiveKit room name (absent: none).
    counts: Mutex<HashMap<String, i64>>,
    /// Banned identities per room id.
    bans: RwLock<HashMap<String, HashSet<String>>>,
}

impl Mirror {
    /// Reads the tables once, at start (before any request is served).
    pub async fn load(pool: &AnyPool) -> Result<Mirror> {
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
        Ok(Mirror {
            writes: tokio::sync::Mutex::new(()),
            counts: Mutex::new(counts),
            bans: RwLock::new(bans),
        })
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
