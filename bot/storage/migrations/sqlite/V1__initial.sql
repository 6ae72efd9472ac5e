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
