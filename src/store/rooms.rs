//! Rooms as bedrud stores them: name, owner, settings, moderators and bans.
//! The LiveKit room of the same name exists only while a meeting runs (see `presence`).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{conflict, flag, new_id, now_ms, Result, Store};

/// Settings of a room; they end up in every join token's grants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    #[serde(skip)]
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub is_public: bool,
    pub max_participants: i64,
    pub allow_video: bool,
    pub allow_audio: bool,
    pub allow_screen_share: bool,
    pub allow_guests: bool,
    /// User ids that moderate besides the owner.
    pub moderators: Vec<String>,
}

/// A room as listed: its settings and how many people are in its meeting now.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    #[serde(flatten)]
    pub room: Room,
    pub participants: i64,
}

fn room(row: &AnyRow, moderators: Vec<String>) -> Result<Room> {
    Ok(Room {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        is_public: flag(row, "is_public"),
        max_participants: row.try_get("max_participants")?,
        allow_video: flag(row, "allow_video"),
        allow_audio: flag(row, "allow_audio"),
        allow_screen_share: flag(row, "allow_screen_share"),
        allow_guests: flag(row, "allow_guests"),
        moderators,
    })
}

impl Store {
    /// Creates `new` (its `id` is assigned here); a taken name is `Conflict` and changes nothing.
    pub async fn create_room(&self, new: Room) -> Result<Room> {
        let id = new_id();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO rooms (id, name, owner_id, is_public, max_participants, allow_video, allow_audio, allow_screen_share, allow_guests, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(&new.owner_id)
        .bind(new.is_public as i64)
        .bind(new.max_participants)
        .bind(new.allow_video as i64)
        .bind(new.allow_audio as i64)
        .bind(new.allow_screen_share as i64)
        .bind(new.allow_guests as i64)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(conflict("room name"))?;
        for m in &new.moderators {
            sqlx::query("INSERT INTO room_moderators (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&id)
                .bind(m)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Room { id, ..new })
    }

    pub async fn room_by_name(&self, name: &str) -> Result<Option<Room>> {
        let Some(row) = sqlx::query("SELECT * FROM rooms WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let moderators =
            sqlx::query("SELECT user_id FROM room_moderators WHERE room_id = $1 ORDER BY user_id")
                .bind(&id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("user_id"))
                .collect::<std::result::Result<Vec<String>, _>>()?;
        Ok(Some(room(&row, moderators)?))
    }

    /// Rooms `user_id` may see: public ones, their own, those they moderate; all for admins.
    pub async fn list_rooms(&self, user_id: &str, admin: bool) -> Result<Vec<RoomSummary>> {
        let rows = sqlx::query(
            "SELECT r.*, (SELECT COUNT(*) FROM participants p WHERE p.room_name = r.name) AS participant_count \
             FROM rooms r \
             WHERE $1 = 1 OR r.is_public = 1 OR r.owner_id = $2 \
                OR EXISTS (SELECT 1 FROM room_moderators m WHERE m.room_id = r.id AND m.user_id = $2) \
             ORDER BY r.name",
        )
        .bind(admin as i64)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let mut moderators = self.all_moderators().await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                Ok(RoomSummary {
                    room: room(row, moderators.remove(&id).unwrap_or_default())?,
                    participants: row.try_get("participant_count")?,
                })
            })
            .collect()
    }

    /// Moderators of every room, by room id, in one query (listing must not cost a query per room).
    async fn all_moderators(&self) -> Result<std::collections::HashMap<String, Vec<String>>> {
        let rows =
            sqlx::query("SELECT room_id, user_id FROM room_moderators ORDER BY room_id, user_id")
                .fetch_all(&self.pool)
                .await?;
        let mut by_room: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for r in &rows {
            by_room
                .entry(r.try_get("room_id")?)
                .or_default()
                .push(r.try_get("user_id")?);
        }
        Ok(by_room)
    }

    pub async fn ban(&self, room_id: &str, identity: &str) -> Result<()> {
        let _writing = self.mirror_write().await;
        // Shown before it is written: should this future be dropped mid-write (the client went
        // away), joins are refused rather than let in. Taken back only if the write failed.
        let was = self.mirror.as_ref().map(|m| {
            let was = m.admission("", room_id, identity).1;
            m.set_ban(room_id, identity, true);
            was
        });
        let written = sqlx::query("INSERT INTO room_bans (room_id, identity, banned_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(room_id)
            .bind(identity)
            .bind(now_ms())
            .execute(&self.pool)
            .await;
        if let (Err(_), Some(m), Some(was)) = (&written, &self.mirror, was) {
            m.set_ban(room_id, identity, was);
        }
        written?;
        self.mirror_reread(&[], &[room_id]).await;
        Ok(())
    }

    pub async fn unban(&self, room_id: &str, identity: &str) -> Result<bool> {
        let _writing = self.mirror_write().await;
        let n = sqlx::query("DELETE FROM room_bans WHERE room_id = $1 AND identity = $2")
            .bind(room_id)
            .bind(identity)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if let Some(m) = &self.mirror {
            m.set_ban(room_id, identity, false);
        }
        self.mirror_reread(&[], &[room_id]).await;
        Ok(n > 0)
    }

    /// The identities banned from a room, with when (ms), oldest first.
    pub async fn bans(&self, room_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT identity, banned_at FROM room_bans WHERE room_id = $1 ORDER BY banned_at, identity",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("identity")?, r.try_get("banned_at")?)))
            .collect()
    }

    /// Whether `identity` is banned from the room named `room_name` (webhooks and
    /// reconciliation know rooms by their LiveKit name).
    pub async fn is_banned_from(&self, room_name: &str, identity: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM room_bans b JOIN rooms r ON r.id = b.room_id \
             WHERE r.name = $1 AND b.identity = $2",
        )
        .bind(room_name)
        .bind(identity)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub async fn is_banned(&self, room_id: &str, identity: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM room_bans WHERE room_id = $1 AND identity = $2")
                .bind(room_id)
                .bind(identity)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }
}
