-- Recordings (issue 12), sqlite flavour (kept in step with migrations/postgres/0002_recordings.sql).
-- id is bedrud's own; egress_id is LiveKit's, set once StartRoomCompositeEgress answered.
-- file: a path relative to the recordings folder, or the S3 object key; set when complete.
CREATE TABLE recordings (
    id          TEXT PRIMARY KEY,
    egress_id   TEXT UNIQUE,
    room        TEXT NOT NULL,
    started_by  TEXT NOT NULL,
    layout      TEXT NOT NULL,
    audio_only  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    file        TEXT,
    size        INTEGER,
    duration_ms INTEGER,
    started_at  INTEGER,
    ended_at    INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX recordings_room ON recordings(room, created_at);

-- At most one recording in progress per room, held by the database itself: two starts racing
-- (or two bedrud instances on one PostgreSQL) cannot both insert one.
CREATE UNIQUE INDEX recordings_one_in_progress ON recordings(room)
    WHERE status IN ('starting', 'active', 'ending');
