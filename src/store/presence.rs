//! Who is in which LiveKit room right now, as told by webhooks and corrected by reconciliation.
//! Each webhook event is applied at most once (its id is recorded in the same transaction as its
//! change); many events may share one transaction (group commit, see `event_log`).

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::statements::{now, Kind, Param, Statements, Value};
use super::{now_ms, Result, Store};

/// A participant connected to a LiveKit room.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveParticipant {
    pub identity: String,
    pub sid: String,
    pub name: String,
    pub joined_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    pub egress_id: String,
    pub room_name: String,
    pub status: String,
}

/// The state change one webhook event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    RoomStarted {
        room: String,
        sid: String,
    },
    RoomFinished {
        room: String,
    },
    Joined {
        room: String,
        participant: LiveParticipant,
    },
    /// `participant_left` or `participant_connection_aborted`; only the session `sid` leaves,
    /// so a late event never removes the same identity's newer session.
    Left {
        room: String,
        identity: String,
        sid: String,
    },
    Egress(Egress),
    /// Events bedrud records (for deduplication) but does not act on.
    Nothing,
}

/// One webhook event, as bedrud stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub name: String,
    pub change: PresenceChange,
}

impl PresenceChange {
    /// The LiveKit room whose participants this change may change.
    pub(super) fn room(&self) -> Option<&str> {
        match self {
            PresenceChange::RoomFinished { room }
            | PresenceChange::Joined { room, .. }
            | PresenceChange::Left { room, .. } => Some(room),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Applied, and it was a `participant_joined` of someone banned from the room: they
    /// connected with a token from before the ban and must be removed.
    AppliedBanned,
    Duplicate,
}

impl Store {
    /// Applies `change` unless event `id` was applied before; both in one transaction, so a
    /// failure leaves neither (and LiveKit's retry can succeed later).
    pub async fn apply_event(
        &self,
        id: &str,
        event: &str,
        change: &PresenceChange,
    ) -> Result<Applied> {
        let event = Event {
            id: id.to_string(),
            name: event.to_string(),
            change: change.clone(),
        };
        let mut applied = self.apply_events(&[&event]).await?;
        Ok(applied.pop().unwrap_or(Applied::Duplicate))
    }

    /// Applies each event, in order, unless its id was applied before (or earlier in `events`):
    /// all in one transaction, so either every outcome returned is committed or none is.
    pub async fn apply_events(&self, events: &[&Event]) -> Result<Vec<Applied>> {
        self.apply_batch(events, false).await
    }

    /// The same, called on the event writer's own thread (`event_log`): SQLite's work runs right
    /// there, without a hand-off to another thread.
    pub(super) async fn apply_events_here(&self, events: &[&Event]) -> Result<Vec<Applied>> {
        self.apply_batch(events, true).await
    }

    async fn apply_batch(&self, events: &[&Event], here: bool) -> Result<Vec<Applied>> {
        let _writing = self.mirror_write().await;
        let rooms: Vec<&str> = events
            .iter()
            .filter_map(|e| e.change.room())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        // An exclusive mirror (SQLite) takes each room's count as the batch changed it; a
        // shared one re-reads the rooms after the commit.
        let counting = self.kind == super::Kind::Sqlite && self.mirror.is_some();
        let (outcomes, changes) = match &self.sqlite_writer {
            Some(writer) if here => writer
                .transaction_here(|db| now(super::event_batch::apply(db, events, counting)))?,
            // The whole batch in one hand-off to a blocking thread (see `sqlite_writer`).
            Some(writer) => {
                let events: Vec<Event> = events.iter().map(|e| (*e).clone()).collect();
                writer
                    .transaction(move |db| {
                        let events: Vec<&Event> = events.iter().collect();
                        now(super::event_batch::apply(db, &events, counting))
                    })
                    .await?
            }
            None => {
                let mut tx = self.pool.begin().await?;
                let applied = super::event_batch::apply(&mut tx, events, counting).await?;
                tx.commit().await?;
                applied
            }
        };
        match &self.mirror {
            Some(m) if counting => m.change_counts(changes),
            _ => self.mirror_reread(&rooms, &[]).await,
        }
        Ok(outcomes)
    }

    /// Commits `tx`, which changed who is in `rooms`; with a mirror, reads their counts in the
    /// transaction and shows them once committed (the caller holds `mirror_write`).
    async fn commit_counts(&self, mut tx: Tx<'_>, rooms: &[String]) -> Result<()> {
        match (&self.mirror, self.kind) {
            (Some(m), super::Kind::Sqlite) => {
                let counts = counts(&mut tx, rooms).await?;
                tx.commit().await?;
                m.set_counts(counts);
            }
            _ => {
                tx.commit().await?;
                let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
                self.mirror_reread(&rooms, &[]).await;
            }
        }
        Ok(())
    }

    pub async fn participants(&self, room: &str) -> Result<Vec<LiveParticipant>> {
        let rows = sqlx::query("SELECT identity, sid, name, joined_at FROM participants WHERE room_name = $1 ORDER BY joined_at, identity")
            .bind(room)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LiveParticipant {
                    identity: r.try_get("identity")?,
                    sid: r.try_get("sid")?,
                    name: r.try_get("name")?,
                    joined_at: r.try_get("joined_at")?,
                })
            })
            .collect()
    }

    /// What a join must check, in one round trip: how many are in the meeting, and whether
    /// `identity` is banned from the room.
    pub async fn admission(
        &self,
        room_name: &str,
        room_id: &str,
        identity: &str,
    ) -> Result<(i64, bool)> {
        if let Some(m) = &self.mirror {
            return Ok(m.admission(room_name, room_id, identity));
        }
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM participants WHERE room_name = $1) AS n, \
                    (SELECT COUNT(*) FROM room_bans WHERE room_id = $2 AND identity = $3) AS banned",
        )
        .bind(room_name)
        .bind(room_id)
        .bind(identity)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get::<i64, _>("banned")? > 0))
    }

    pub async fn participant_count(&self, room: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM participants WHERE room_name = $1")
            .bind(room)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Rooms bedrud believes have a running LiveKit meeting, with participant counts.
    pub async fn active_rooms(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT name, (SELECT COUNT(*) FROM participants p WHERE p.room_name = l.name) AS n \
             FROM livekit_rooms l ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("n")?)))
            .collect()
    }

    /// Names of every room bedrud holds any live state for.
    pub async fn tracked_room_names(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT name FROM livekit_rooms UNION SELECT room_name AS name FROM participants",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// Forgets a meeting: its LiveKit room and everyone in it (room closed or gone).
    /// Returns how many rows that removed.
    pub async fn clear_room(&self, room: &str) -> Result<u64> {
        let _writing = self.mirror_write().await;
        let mut tx = self.pool.begin().await?;
        let n = clear(&mut tx, room).await?;
        self.commit_counts(tx, &[room.to_string()]).await?;
        Ok(n)
    }

    /// Makes bedrud's view of `room` equal LiveKit's (`sid` of the LiveKit room, and who is in
    /// it); returns how many corrections that took.
    pub async fn sync_room(&self, room: &str, sid: &str, live: &[LiveParticipant]) -> Result<u64> {
        let _writing = self.mirror_write().await;
        let mut tx = self.pool.begin().await?;
        let mut corrections = sqlx::query(
            "INSERT INTO livekit_rooms (name, sid, started_at) SELECT $1, $2, $3 \
             WHERE EXISTS (SELECT 1 FROM rooms WHERE name = $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(room)
        .bind(sid)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let known: HashMap<String, String> =
            sqlx::query("SELECT identity, sid FROM participants WHERE room_name = $1")
                .bind(room)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("identity")?, r.try_get("sid")?)))
                .collect::<Result<_>>()?;
        for (identity, sid) in &known {
            if !live
                .iter()
                .any(|p| &p.identity == identity && &p.sid == sid)
            {
                corrections += remove(&mut tx, room, identity, sid).await?;
            }
        }
        for p in live {
            if known.get(&p.identity) != Some(&p.sid) {
                corrections += insert(&mut tx, room, p).await?;
            }
        }
        self.commit_counts(tx, &[room.to_string()]).await?;
        Ok(corrections)
    }

    /// How many webhook events were applied (each id once).
    pub async fn webhook_event_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM webhook_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

pub(super) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// How many are in each of `rooms`, in one statement; a room with nobody left has no row and
/// counts 0.
async fn counts(db: &mut impl Statements, rooms: &[String]) -> Result<Vec<(String, i64)>> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts: HashMap<String, i64> = rooms.iter().map(|r| (r.clone(), 0)).collect();
    let sql = format!(
        "SELECT room_name, COUNT(*) AS n FROM participants WHERE room_name IN ({}) \
         GROUP BY room_name",
        (1..=rooms.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let params: Vec<Param> = rooms.iter().map(|r| Param::Text(r)).collect();
    for row in db.rows(&sql, &params, &[Kind::Text, Kind::Int]).await? {
        if let [Value::Text(room), Value::Int(n)] = row.as_slice() {
            counts.insert(room.clone(), *n);
        }
    }
    Ok(counts.into_iter().collect())
}

/// Applies one change that is not a participant's join or leave (those are folded per batch in
/// `event_batch`).
pub(super) async fn apply_change(db: &mut impl Statements, change: &PresenceChange) -> Result<()> {
    match change {
        PresenceChange::RoomStarted { room, sid } => {
            // Only rooms bedrud created are tracked; others are none of its business.
            db.execute(
                "INSERT INTO livekit_rooms (name, sid, started_at) SELECT $1, $2, $3 \
                 WHERE EXISTS (SELECT 1 FROM rooms WHERE name = $1) \
                 ON CONFLICT (name) DO UPDATE SET sid = excluded.sid, started_at = excluded.started_at",
                &[Param::Text(room), Param::Text(sid), Param::Int(now_ms())],
            )
            .await?;
        }
        PresenceChange::RoomFinished { room } => {
            clear(db, room).await?;
        }
        PresenceChange::Joined { room, participant } => {
            insert(db, room, participant).await?;
        }
        PresenceChange::Left {
            room,
            identity,
            sid,
        } => {
            remove(db, room, identity, sid).await?;
        }
        PresenceChange::Egress(e) => {
            db.execute(
                "INSERT INTO egress (egress_id, room_name, status, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (egress_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
                &[
                    Param::Text(&e.egress_id),
                    Param::Text(&e.room_name),
                    Param::Text(&e.status),
                    Param::Int(now_ms()),
                ],
            )
            .await?;
        }
        PresenceChange::Nothing => {}
    }
    Ok(())
}

async fn insert(db: &mut impl Statements, room: &str, p: &LiveParticipant) -> Result<u64> {
    db.execute(
        "INSERT INTO participants (room_name, identity, sid, name, joined_at) SELECT $1, $2, $3, $4, $5 \
         WHERE EXISTS (SELECT 1 FROM rooms WHERE name = $1) \
         ON CONFLICT (room_name, identity) DO UPDATE SET sid = excluded.sid, name = excluded.name, joined_at = excluded.joined_at",
        &[
            Param::Text(room),
            Param::Text(&p.identity),
            Param::Text(&p.sid),
            Param::Text(&p.name),
            Param::Int(p.joined_at),
        ],
    )
    .await
}

async fn remove(db: &mut impl Statements, room: &str, identity: &str, sid: &str) -> Result<u64> {
    db.execute(
        "DELETE FROM participants WHERE room_name = $1 AND identity = $2 AND sid = $3",
        &[Param::Text(room), Param::Text(identity), Param::Text(sid)],
    )
    .await
}

async fn clear(db: &mut impl Statements, room: &str) -> Result<u64> {
    let a = db
        .execute(
            "DELETE FROM participants WHERE room_name = $1",
            &[Param::Text(room)],
        )
        .await?;
    let b = db
        .execute(
            "DELETE FROM livekit_rooms WHERE name = $1",
            &[Param::Text(room)],
        )
        .await?;
    Ok(a + b)
}
