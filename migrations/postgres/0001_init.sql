-- bedrud schema, PostgreSQL flavour (kept in step with migrations/sqlite/0001_init.sql).
-- Times are Unix milliseconds; flags are 0/1 integers so the same queries read both databases.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);

CREATE TABLE rooms (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    owner_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    is_public          BIGINT NOT NULL,
    max_participants   BIGINT NOT NULL,
    allow_video        BIGINT NOT NULL,
    allow_audio        BIGINT NOT NULL,
    allow_screen_share BIGINT NOT NULL,
    allow_guests       BIGINT NOT NULL,
    created_at         BIGINT NOT NULL
);

CREATE TABLE room_moderators (
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE room_bans (
    room_id   TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    identity  TEXT NOT NULL,
    banned_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, identity)
);

-- Who is in a LiveKit room now: from participant_joined until left/aborted/room_finished.
CREATE TABLE participants (
    room_name  TEXT NOT NULL,
    identity   TEXT NOT NULL,
    sid        TEXT NOT NULL,
    name       TEXT NOT NULL,
    joined_at  BIGINT NOT NULL,
    PRIMARY KEY (room_name, identity)
);

-- LiveKit rooms that exist now (room_started until room_finished).
CREATE TABLE livekit_rooms (
    name       TEXT PRIMARY KEY,
    sid        TEXT NOT NULL,
    started_at BIGINT NOT NULL
);

-- Webhook event ids already applied: deliveries repeat.
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE egress (
    egress_id  TEXT PRIMARY KEY,
    room_name  TEXT NOT NULL,
    status     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
