"""Schema migrations, applied in order and tracked with ``PRAGMA user_version``."""

from __future__ import annotations

import logging
from typing import Final

import aiosqlite

log = logging.getLogger(__name__)

# Each entry moves the schema from version ``index`` to ``index + 1``. Never edit a shipped one.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE quotes (
        id            TEXT PRIMARY KEY,
        guild_id      INTEGER NOT NULL,
        channel_id    INTEGER NOT NULL,
        user_id       INTEGER NOT NULL,
        message_id    INTEGER,
        in_thread     INTEGER NOT NULL DEFAULT 0,
        prompt        TEXT NOT NULL,
        image_url     TEXT NOT NULL,
        resolution    TEXT NOT NULL,
        duration      INTEGER NOT NULL,
        aspect_ratio  TEXT NOT NULL,
        audio         INTEGER NOT NULL,
        multi_shot    INTEGER NOT NULL,
        price_mills   INTEGER NOT NULL CHECK (price_mills > 0),
        upload_limit  INTEGER NOT NULL,
        state         TEXT NOT NULL DEFAULT 'open'
                      CHECK (state IN ('open', 'cancelled', 'confirmed')),
        created_at    REAL NOT NULL,
        expires_at    REAL NOT NULL
    );

    CREATE TABLE jobs (
        id                     INTEGER PRIMARY KEY,
        quote_id               TEXT NOT NULL UNIQUE REFERENCES quotes(id),
        guild_id               INTEGER NOT NULL,
        channel_id             INTEGER NOT NULL,
        user_id                INTEGER NOT NULL,
        state                  TEXT NOT NULL CHECK (state IN (
                                   'reserved', 'submitting', 'running', 'succeeded',
                                   'delivered', 'failed', 'expired')),
        price_mills            INTEGER NOT NULL,
        provider_job_id        TEXT UNIQUE,
        provider_amount_mills  INTEGER,
        provider_status        INTEGER,
        video_url              TEXT,
        thread_id              INTEGER,
        result_message_id      INTEGER,
        error                  TEXT,
        created_at             REAL NOT NULL,
        submitted_at           REAL,
        finished_at            REAL,
        deadline_at            REAL NOT NULL,
        updated_at             REAL NOT NULL
    );
    CREATE INDEX jobs_unfinished ON jobs(state)
        WHERE state NOT IN ('delivered', 'failed', 'expired');
    CREATE INDEX jobs_user ON jobs(guild_id, user_id, created_at);

    -- Append-only: spend is always derived from these rows.
    CREATE TABLE ledger (
        id            INTEGER PRIMARY KEY,
        guild_id      INTEGER NOT NULL,
        user_id       INTEGER NOT NULL,
        job_id        INTEGER REFERENCES jobs(id),
        kind          TEXT NOT NULL CHECK (kind IN ('reserve', 'settle', 'refund', 'adjust')),
        amount_mills  INTEGER NOT NULL,
        period_at     REAL NOT NULL,
        created_at    REAL NOT NULL,
        actor_id      INTEGER,
        reason        TEXT
    );
    -- A job's money moves at most once per kind, whatever the code above does.
    CREATE UNIQUE INDEX ledger_once ON ledger(job_id, kind)
        WHERE kind IN ('reserve', 'settle', 'refund');
    CREATE INDEX ledger_user_period ON ledger(guild_id, user_id, period_at);
    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
    """,
    # 2: provider callbacks authenticate with a per-job secret; posting_at marks a delivery
    # attempt that may have reached Discord, so a restart looks before posting again.
    """
    ALTER TABLE jobs ADD COLUMN callback_token TEXT;
    ALTER TABLE jobs ADD COLUMN posting_at REAL;
    CREATE UNIQUE INDEX jobs_callback_token ON jobs(callback_token);
    """,
    # 3: spending controls set by server managers, dry runs, and an audit trail of admin acts.
    """
    CREATE TABLE guild_settings (
        guild_id              INTEGER PRIMARY KEY,
        timezone              TEXT NOT NULL DEFAULT 'UTC',
        paused                INTEGER NOT NULL DEFAULT 0,
        daily_limit_mills     INTEGER,
        monthly_limit_mills   INTEGER,
        monthly_budget_mills  INTEGER
    );
    -- NULL limit: use the default; -1: no cap.
    CREATE TABLE limit_overrides (
        guild_id     INTEGER NOT NULL,
        scope        TEXT NOT NULL CHECK (scope IN ('member', 'role')),
        target_id    INTEGER NOT NULL,
        period       TEXT NOT NULL CHECK (period IN ('daily', 'monthly')),
        limit_mills  INTEGER NOT NULL,
        PRIMARY KEY (guild_id, scope, target_id, period)
    );
    CREATE TABLE allowed_channels (
        guild_id    INTEGER NOT NULL,
        channel_id  INTEGER NOT NULL,
        PRIMARY KEY (guild_id, channel_id)
    );
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        guild_id    INTEGER NOT NULL,
        actor_id    INTEGER NOT NULL,
        action      TEXT NOT NULL,
        detail      TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    ALTER TABLE quotes ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0;
    -- An admin refund happens at most once per job.
    CREATE UNIQUE INDEX ledger_one_adjust ON ledger(job_id)
        WHERE kind = 'adjust' AND job_id IS NOT NULL;
    CREATE INDEX ledger_guild_period ON ledger(guild_id, period_at);
    """,
)


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring the schema to the newest version; return that version."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    current = int(row[0]) if row else 0
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {current} is newer than this bot knows ({len(MIGRATIONS)})"
        )
    for version in range(current, len(MIGRATIONS)):
        log.info("migrating database schema %d -> %d", version, version + 1)
        # executescript commits; wrapping the script keeps each migration all-or-nothing.
        script = MIGRATIONS[version]
        await db.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
        )
    return len(MIGRATIONS)
