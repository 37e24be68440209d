//! Recordings as bedrud stores them: who started which room's recording, how far LiveKit Egress
//! got with it, and where the finished file is. At most one per room is in progress, enforced
//! by a partial unique index (`migrations/*/0002_recordings.sql`), not only in memory.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{conflict, flag, new_id, now_ms, Result, Store};

/// Where a recording is in its life. Only `Starting → Active → Ending → Complete|Failed` moves
/// forward; a finished one never changes again (webhooks repeat and arrive late).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    Starting,
    Active,
    Ending,
    Complete,
    Failed,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Starting => "starting",
            RecordingStatus::Active => "active",
            RecordingStatus::Ending => "ending",
            RecordingStatus::Complete => "complete",
            RecordingStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> RecordingStatus {
        match s {
            "starting" => RecordingStatus::Starting,
            "active" => RecordingStatus::Active,
            "ending" => RecordingStatus::Ending,
            "complete" => RecordingStatus::Complete,
            _ => RecordingStatus::Failed,
        }
    }

    /// Still recording or about to: holds the room's one slot.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            RecordingStatus::Starting | RecordingStatus::Active | RecordingStatus::Ending
        )
    }
}

/// The statuses of recordings in progress, as SQL (kept in step with the partial index).
const IN_PROGRESS: &str = "('starting', 'active', 'ending')";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    pub id: String,
    pub egress_id: Option<String>,
    pub room: String,
    /// The user id of whoever started it.
    pub started_by: String,
    pub layout: String,
    pub audio_only: bool,
    pub status: RecordingStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Relative to the recordings folder (or the S3 key); set once complete.
    #[serde(skip)]
    pub file: Option<String>,
    /// Bytes, once complete.
    pub size: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Unix milliseconds: when egress began recording and when it stopped.
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub created_at: i64,
}

/// What a start asks for.
#[derive(Debug, Clone)]
pub struct NewRecording {
    pub room: String,
    pub started_by: String,
    pub layout: String,
    pub audio_only: bool,
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete {
        file: String,
        size: i64,
        duration_ms: i64,
    },
    Failed(String),
}

fn recording(row: &AnyRow) -> Result<Recording> {
    Ok(Recording {
        id: row.try_get("id")?,
        egress_id: row.try_get("egress_id")?,
        room: row.try_get("room")?,
        started_by: row.try_get("started_by")?,
        layout: row.try_get("layout")?,
        audio_only: flag(row, "audio_only"),
        status: RecordingStatus::parse(&row.try_get::<String, _>("status")?),
        error: row.try_get("error")?,
        file: row.try_get("file")?,
        size: row.try_get("size")?,
        duration_ms: row.try_get("duration_ms")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Takes the room's recording slot (status `starting`); `Conflict` when one is in progress.
    pub async fn insert_recording(&self, new: NewRecording) -> Result<Recording> {
        let id = new_id();
        let row = sqlx::query(
            "INSERT INTO recordings (id, room, started_by, layout, audio_only, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'starting', $6) RETURNING *",
        )
        .bind(&id)
        .bind(&new.room)
        .bind(&new.started_by)
        .bind(&new.layout)
        .bind(new.audio_only as i64)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(conflict("the room's recording slot"))?;
        recording(&row)
    }

    /// Egress accepted the start: remember its id.
    pub async fn set_recording_egress(&self, id: &str, egress_id: &str) -> Result<()> {
        sqlx::query("UPDATE recordings SET egress_id = $1 WHERE id = $2")
            .bind(egress_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn recording(&self, id: &str) -> Result<Option<Recording>> {
        let row = sqlx::query("SELECT * FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(recording).transpose()
    }

    pub async fn recording_by_egress(&self, egress_id: &str) -> Result<Option<Recording>> {
        let row = sqlx::query("SELECT * FROM recordings WHERE egress_id = $1")
            .bind(egress_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(recording).transpose()
    }

    /// The room's recording in progress, if any.
    pub async fn recording_in_progress(&self, room: &str) -> Result<Option<Recording>> {
        let row = sqlx::query(&format!(
            "SELECT * FROM recordings WHERE room = $1 AND status IN {IN_PROGRESS}"
        ))
        .bind(room)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(recording).transpose()
    }

    /// The room's recordings, newest first.
    pub async fn recordings_of_room(&self, room: &str) -> Result<Vec<Recording>> {
        let rows = sqlx::query(
            "SELECT * FROM recordings WHERE room = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording).collect()
    }

    /// Every recording in progress (for reconciliation).
    pub async fn recordings_in_progress(&self) -> Result<Vec<Recording>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM recordings WHERE status IN {IN_PROGRESS} ORDER BY created_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording).collect()
    }

    /// Finished recordings created before `before_ms` (for retention).
    pub async fn finished_recordings_before(&self, before_ms: i64) -> Result<Vec<Recording>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM recordings WHERE created_at < $1 AND status NOT IN {IN_PROGRESS} \
             ORDER BY created_at"
        ))
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording).collect()
    }

    /// Moves an unfinished recording forward to `status` (`Active` or `Ending`), noting when
    /// it started; never moves one back or touches a finished one. Returns whether it changed.
    pub async fn advance_recording(
        &self,
        id: &str,
        status: RecordingStatus,
        started_at: Option<i64>,
    ) -> Result<bool> {
        let from = match status {
            RecordingStatus::Active => "('starting')",
            RecordingStatus::Ending => "('starting', 'active')",
            _ => return Ok(false),
        };
        let n = sqlx::query(&format!(
            "UPDATE recordings SET status = $1, started_at = COALESCE(started_at, $2) \
             WHERE id = $3 AND status IN {from}"
        ))
        .bind(status.as_str())
        .bind(started_at)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Records how an unfinished recording ended; `false` when it had already finished (the
    /// outcome stays the first one recorded).
    pub async fn finish_recording(
        &self,
        id: &str,
        outcome: &Outcome,
        started_at: Option<i64>,
        ended_at: i64,
    ) -> Result<bool> {
        let (status, error, file, size, duration) = match outcome {
            Outcome::Complete {
                file,
                size,
                duration_ms,
            } => (
                RecordingStatus::Complete,
                None,
                Some(file.as_str()),
                Some(*size),
                Some(*duration_ms),
            ),
            Outcome::Failed(e) => (RecordingStatus::Failed, Some(e.as_str()), None, None, None),
        };
        let n = sqlx::query(&format!(
            "UPDATE recordings SET status = $1, error = $2, file = $3, size = $4, duration_ms = $5, \
             started_at = COALESCE(started_at, $6), ended_at = $7 \
             WHERE id = $8 AND status IN {IN_PROGRESS}"
        ))
        .bind(status.as_str())
        .bind(error)
        .bind(file)
        .bind(size)
        .bind(duration)
        .bind(started_at)
        .bind(ended_at)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Forgets a recording; returns whether it existed.
    pub async fn delete_recording(&self, id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM recordings WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}
