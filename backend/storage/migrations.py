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
    # 8: messages form a tree (branches: an edited message or a regenerated answer beside the earlier one),
    # with an integer key the full-text index can refer to; projects; pinned and archived conversations
    """
    CREATE TABLE projects (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        system_prompt TEXT NOT NULL DEFAULT '',
        settings      TEXT NOT NULL DEFAULT '{}',
        preset        TEXT,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );

    CREATE TABLE messages_tree (
        n               INTEGER PRIMARY KEY,
        id              TEXT NOT NULL UNIQUE,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        parent_id       TEXT REFERENCES messages (id) ON DELETE CASCADE,
        seq             INTEGER NOT NULL,
        role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content         TEXT NOT NULL DEFAULT '',
        status          TEXT NOT NULL DEFAULT 'done'
                        CHECK (status IN ('streaming', 'done', 'interrupted', 'error')),
        error           TEXT,
        stats           TEXT NOT NULL DEFAULT '{}',
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        reasoning       TEXT NOT NULL DEFAULT '',
        tools           TEXT NOT NULL DEFAULT '[]'
    );
    INSERT INTO messages_tree (id, conversation_id, parent_id, seq, role, content, status, error, stats,
                               created_at, updated_at, reasoning, tools)
        SELECT m.id, m.conversation_id,
               (SELECT p.id FROM messages p WHERE p.conversation_id = m.conversation_id AND p.seq < m.seq
                ORDER BY p.seq DESC LIMIT 1),
               m.seq, m.role, m.content, m.status, m.error, m.stats, m.created_at, m.updated_at, m.reasoning,
               m.tools
        FROM messages m ORDER BY m.created_at, m.conversation_id, m.seq;
    DROP TABLE messages;
    ALTER TABLE messages_tree RENAME TO messages;
    CREATE INDEX messages_conversation ON messages (conversation_id, seq);
    CREATE INDEX messages_parent ON messages (parent_id);
    CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';

    ALTER TABLE conversations ADD COLUMN leaf_id TEXT;
    ALTER TABLE conversations ADD COLUMN project_id TEXT REFERENCES projects (id) ON DELETE SET NULL;
    ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
    UPDATE conversations SET leaf_id =
        (SELECT m.id FROM messages m WHERE m.conversation_id = conversations.id ORDER BY m.seq DESC LIMIT 1);
    DROP INDEX conversations_recent;
    CREATE INDEX conversations_listed ON conversations (archived, pinned DESC, updated_at DESC);
    CREATE INDEX conversations_project ON conversations (project_id, updated_at DESC)
        WHERE project_id IS NOT NULL;

    -- the words of every message that is no longer being written; titles are matched directly.
    -- Prefixes of 2 and 3 letters are indexed too: searching "th" while it is typed would
    -- otherwise merge the lists of every word that starts with it (0.6 s over a million messages).
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content = 'messages', content_rowid = 'n', tokenize = 'unicode61 remove_diacritics 2',
        prefix = '2 3');
    INSERT INTO messages_fts (rowid, content) SELECT n, content FROM messages WHERE status != 'streaming';
    CREATE TRIGGER messages_fts_added AFTER INSERT ON messages WHEN new.status != 'streaming' BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.n, new.content);
    END;
    CREATE TRIGGER messages_fts_removed AFTER DELETE ON messages WHEN old.status != 'streaming' BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.n, old.content);
    END;
    CREATE TRIGGER messages_fts_changed AFTER UPDATE OF content, status ON messages
        WHEN old.status != 'streaming' OR new.status != 'streaming' BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
            SELECT 'delete', old.n, old.content WHERE old.status != 'streaming';
        INSERT INTO messages_fts (rowid, content) SELECT new.n, new.content WHERE new.status != 'streaming';
    END;
    """,
    # 9: collections of documents, read into passages with their words indexed (the vectors are
    # sqlite-vec tables made per collection: see backend/knowledge/store.py); embedding models
    """
    CREATE TABLE models_9 (
        id              TEXT PRIMARY KEY,
        job             TEXT NOT NULL
                        CHECK (job IN ('chat', 'vision', 'images', 'speech', 'voice', 'embeddings')),
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
    INSERT INTO models_9 SELECT id, job, name, format, path, projector, folder, size_bytes, quantization, license,
        source, repo, revision, sha256, info, memory_override, context_length, added_at FROM models;
    DROP TABLE models;
    ALTER TABLE models_9 RENAME TO models;
    CREATE UNIQUE INDEX models_path ON models (path);

    CREATE TABLE collections (
        n               INTEGER PRIMARY KEY,
        id              TEXT NOT NULL UNIQUE,
        name            TEXT NOT NULL,
        description     TEXT NOT NULL DEFAULT '',
        project_id      TEXT REFERENCES projects (id) ON DELETE SET NULL,
        conversation_id TEXT REFERENCES conversations (id) ON DELETE CASCADE,
        embedder        TEXT,
        dim             INTEGER,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL
    );
    CREATE INDEX collections_project ON collections (project_id) WHERE project_id IS NOT NULL;
    CREATE INDEX collections_conversation ON collections (conversation_id) WHERE conversation_id IS NOT NULL;

    CREATE TABLE documents (
        id            TEXT PRIMARY KEY,
        collection_id TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        kind          TEXT NOT NULL DEFAULT '',
        size          INTEGER NOT NULL,
        sha256        TEXT NOT NULL,
        file          TEXT NOT NULL,
        state         TEXT NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'reading', 'indexing', 'ready', 'failed', 'cancelled')),
        error_code    TEXT,
        error         TEXT,
        notice        TEXT,
        title         TEXT,
        pages         INTEGER,
        passages      INTEGER NOT NULL DEFAULT 0,
        embedded      INTEGER NOT NULL DEFAULT 0,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE INDEX documents_collection ON documents (collection_id, created_at);
    CREATE INDEX documents_pending ON documents (created_at) WHERE state IN ('queued', 'reading', 'indexing');

    CREATE TABLE passages (
        n           INTEGER PRIMARY KEY,
        document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        ordinal     INTEGER NOT NULL,
        heading     TEXT NOT NULL DEFAULT '',
        page        INTEGER,
        text        TEXT NOT NULL,
        embedded    INTEGER NOT NULL DEFAULT 0,
        UNIQUE (document_id, ordinal)
    );
    CREATE INDEX passages_unembedded ON passages (document_id, ordinal) WHERE embedded = 0;

    CREATE VIRTUAL TABLE passages_fts USING fts5(
        heading, text, content = 'passages', content_rowid = 'n', tokenize = 'unicode61 remove_diacritics 2');
    CREATE TRIGGER passages_fts_added AFTER INSERT ON passages BEGIN
        INSERT INTO passages_fts (rowid, heading, text) VALUES (new.n, new.heading, new.text);
    END;
    CREATE TRIGGER passages_fts_removed AFTER DELETE ON passages BEGIN
        INSERT INTO passages_fts (passages_fts, rowid, heading, text) VALUES ('delete', old.n, old.heading, old.text);
    END;
    CREATE TRIGGER passages_fts_changed AFTER UPDATE OF heading, text ON passages BEGIN
        INSERT INTO passages_fts (passages_fts, rowid, heading, text) VALUES ('delete', old.n, old.heading, old.text);
        INSERT INTO passages_fts (rowid, heading, text) VALUES (new.n, new.heading, new.text);
    END;

    CREATE TABLE conversation_collections (
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        collection_id   TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
        PRIMARY KEY (conversation_id, collection_id)
    );
    CREATE TABLE project_collections (
        project_id    TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
        collection_id TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
        PRIMARY KEY (project_id, collection_id)
    );

    ALTER TABLE messages ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
    """,
    # 10: engine servers the owner added (other machines' OpenAI-compatible servers), and keys for other apps
    """
    CREATE TABLE engines (
        id           TEXT PRIMARY KEY,
        url          TEXT NOT NULL UNIQUE,
        name         TEXT NOT NULL,
        api_key      TEXT NOT NULL DEFAULT '',
        certificate  TEXT,
        fingerprint  TEXT,
        models       TEXT NOT NULL DEFAULT '[]',
        jobs         TEXT NOT NULL DEFAULT '{}',
        tools        INTEGER NOT NULL DEFAULT 0,
        state        TEXT NOT NULL DEFAULT 'unknown',
        error        TEXT,
        latency_ms   REAL,
        speed        TEXT NOT NULL DEFAULT '{}',
        checked_at   REAL,
        created_at   REAL NOT NULL
    );

    CREATE TABLE api_keys (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        scopes       TEXT NOT NULL,
        secret_hash  TEXT NOT NULL UNIQUE,
        prefix       TEXT NOT NULL,
        created_at   REAL NOT NULL,
        last_used_at REAL,
        requests     INTEGER NOT NULL DEFAULT 0,
        revoked_at   REAL
    );
    """,
]
