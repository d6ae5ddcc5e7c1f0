"""Numbered schema migrations, applied in order at start-up; `PRAGMA user_version` records the last."""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

MIGRATIONS: list[str] = [
    # 1: conversations and their messages
    """
    CREATE TABLE conversations (
        id            TEXT PRIMARY KEY,
        title         TEXT NOT NULL,
        system_prompt TEXT NOT NULL DEFAULT '',
        settings      TEXT NOT NULL DEFAULT '{}',
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE INDEX conversations_recent ON conversations (updated_at DESC);

    CREATE TABLE messages (
        id              TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq             INTEGER NOT NULL,
        role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content         TEXT NOT NULL DEFAULT '',
        status          TEXT NOT NULL DEFAULT 'done'
                        CHECK (status IN ('streaming', 'done', 'interrupted', 'error')),
        error           TEXT,
        stats           TEXT NOT NULL DEFAULT '{}',
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        UNIQUE (conversation_id, seq)
    );
    CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';

    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: installed models and downloads
    """
    CREATE TABLE models (
        id              TEXT PRIMARY KEY,
        job             TEXT NOT NULL CHECK (job IN ('chat', 'vision', 'images', 'speech', 'voice')),
        name            TEXT NOT NULL,
        format          TEXT NOT NULL,
        path            TEXT NOT NULL,
        projector       TEXT,
        folder          TEXT,
        size_bytes      INTEGER NOT NULL,
        quantization    TEXT,
        license         TEXT,
        source          TEXT NOT NULL CHECK (source IN ('bundled', 'hub', 'import', 'folder')),
        repo            TEXT,
        revision        TEXT,
        sha256          TEXT,
        info            TEXT NOT NULL DEFAULT '{}',
        memory_override INTEGER NOT NULL DEFAULT 0,
        context_length  INTEGER,
        added_at        REAL NOT NULL
    );
    CREATE UNIQUE INDEX models_path ON models (path);

    CREATE TABLE downloads (
        id          TEXT PRIMARY KEY,
        repo        TEXT NOT NULL,
        revision    TEXT NOT NULL,
        job         TEXT NOT NULL,
        name        TEXT NOT NULL,
        files       TEXT NOT NULL,
        state       TEXT NOT NULL
                    CHECK (state IN ('queued', 'running', 'paused', 'failed', 'done', 'cancelled')),
        bytes_done  INTEGER NOT NULL DEFAULT 0,
        bytes_total INTEGER NOT NULL,
        error       TEXT,
        model_id    TEXT,
        options     TEXT NOT NULL DEFAULT '{}',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    """,
    # 3: paired devices (the session token is stored only as its SHA-256)
    """
    CREATE TABLE devices (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        token_hash  TEXT NOT NULL UNIQUE,
        address     TEXT NOT NULL DEFAULT '',
        user_agent  TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        last_seen   REAL NOT NULL
    );
    """,
    # 4: transcripts of recordings and uploaded audio (the audio itself is a media file)
    """
    CREATE TABLE transcripts (
        id            TEXT PRIMARY KEY,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        audio         TEXT NOT NULL,
        mime          TEXT NOT NULL,
        bytes         INTEGER NOT NULL,
        name          TEXT NOT NULL DEFAULT '',
        duration      REAL,
        language      TEXT,
        language_hint TEXT,
        model         TEXT,
        state         TEXT NOT NULL
                      CHECK (state IN ('queued', 'running', 'done', 'error', 'cancelled')),
        text          TEXT NOT NULL DEFAULT '',
        segments      TEXT NOT NULL DEFAULT '[]',
        error         TEXT,
        seconds       REAL
    );
    CREATE INDEX transcripts_created ON transcripts (created_at DESC);
    """,
    # 5: photos and documents attached to messages (the files themselves are media files)
    """
    CREATE TABLE attachments (
        id          TEXT PRIMARY KEY,
        message_id  TEXT REFERENCES messages (id) ON DELETE CASCADE,
        uploader    TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('image', 'document')),
        name        TEXT NOT NULL,
        mime        TEXT NOT NULL,
        path        TEXT NOT NULL,
        thumb       TEXT,
        bytes       INTEGER NOT NULL,
        width       INTEGER,
        height      INTEGER,
        text        TEXT NOT NULL DEFAULT '',
        info        TEXT NOT NULL DEFAULT '{}',
        sent_text   TEXT,
        sent_notice TEXT,
        position    INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL
    );
    CREATE INDEX attachments_message ON attachments (message_id, position);
    CREATE INDEX attachments_pending ON attachments (created_at) WHERE message_id IS NULL;
    """,
    # 6: generated images (the PNGs and thumbnails are media files)
    """
    CREATE TABLE images (
        id              TEXT PRIMARY KEY,
        created_at      REAL NOT NULL,
        prompt          TEXT NOT NULL,
        negative_prompt TEXT NOT NULL DEFAULT '',
        width           INTEGER NOT NULL,
        height          INTEGER NOT NULL,
        steps           INTEGER NOT NULL,
        cfg_scale       REAL NOT NULL,
        sampler         TEXT NOT NULL,
        seed            INTEGER NOT NULL,
        model           TEXT NOT NULL,
        model_name      TEXT NOT NULL,
        seconds         REAL NOT NULL,
        path            TEXT NOT NULL,
        thumb           TEXT NOT NULL,
        bytes           INTEGER NOT NULL,
        source_image    TEXT,
        strength        REAL,
        conversation_id TEXT REFERENCES conversations (id) ON DELETE SET NULL,
        origin          TEXT NOT NULL DEFAULT 'page'
    );
    CREATE INDEX images_recent ON images (created_at DESC);
    CREATE INDEX images_conversation ON images (conversation_id) WHERE conversation_id IS NOT NULL;
    """,
    # 7: an answer's thinking and the tools it called (each call's name, arguments and result)
    """
    ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN tools TEXT NOT NULL DEFAULT '[]';
    """,
]
