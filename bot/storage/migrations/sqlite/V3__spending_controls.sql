-- Spending controls set by server managers, dry runs, and an audit trail of admin acts.
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
