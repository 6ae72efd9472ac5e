-- Members own their data (issue 21): their settings, forgetting them, and the one update the
-- append-only tables allow for it. Read beside migrations/postgres/V11__member_data.sql.

-- A member's own choices, for every server. No row: the defaults.
CREATE TABLE member_settings (
    user_id           INTEGER PRIMARY KEY,
    pictures_allowed  INTEGER NOT NULL DEFAULT 1
);

-- One row per forget (member's or a manager's), naming nobody: its tombstone is -id, the id
-- the forgotten member's records carry instead of theirs.
CREATE TABLE forgets (
    id          INTEGER PRIMARY KEY,
    created_at  REAL NOT NULL
);
-- Jobs of a forgotten member that were not yet final and told: they finish and are delivered
-- as usual, then the privacy sweep erases them (the job id is all that is kept here).
CREATE TABLE forget_pending (
    job_id     INTEGER PRIMARY KEY REFERENCES jobs(id),
    tombstone  INTEGER NOT NULL CHECK (tombstone < 0)
);
-- What the sweep still has to do in Discord for a forgotten member: delete a message the bot
-- posted that holds their picture and prompt (the quote card), or rename a thread the bot named
-- after their prompt ('thread': message_id unused). A message or thread already gone is done.
CREATE TABLE discord_deletions (
    id          INTEGER PRIMARY KEY,
    action      TEXT NOT NULL DEFAULT 'message' CHECK (action IN ('message', 'thread')),
    channel_id  INTEGER NOT NULL,
    message_id  INTEGER NOT NULL,
    created_at  REAL NOT NULL
);
-- When a quote's prompt and picture link were erased (forget or PROMPT_RETENTION_DAYS).
ALTER TABLE quotes ADD COLUMN erased_at REAL;
CREATE INDEX quotes_to_erase ON quotes(created_at) WHERE erased_at IS NULL;
CREATE INDEX quotes_user ON quotes(user_id);
-- Jobs carrying a tombstone whose ledger rows may still name the member (detach pending).
CREATE INDEX jobs_forgotten ON jobs(id) WHERE user_id < 0;

-- The ledger stays append-only, with one designed exception: detaching a forgotten member.
-- An UPDATE may only replace user_id and/or actor_id, each from a real id (>= 0) by a negative
-- tombstone; every other column stays as it was. (A migration adding a ledger column adds it
-- here too.)
DROP TRIGGER ledger_no_update;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    WHEN COALESCE((
        NEW.id = OLD.id AND NEW.guild_id = OLD.guild_id AND NEW.job_id IS OLD.job_id
        AND NEW.kind = OLD.kind AND NEW.amount_mills = OLD.amount_mills
        AND NEW.period_at = OLD.period_at AND NEW.created_at = OLD.created_at
        AND NEW.reason IS OLD.reason AND NEW.dry_run = OLD.dry_run
        AND (NEW.user_id = OLD.user_id OR (OLD.user_id >= 0 AND NEW.user_id < 0))
        AND (NEW.actor_id IS OLD.actor_id
             OR (OLD.actor_id >= 0 AND NEW.actor_id IS NOT NULL AND NEW.actor_id < 0))
    ), 0) = 0
    BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
-- The audit likewise: only the actor (to a tombstone) and a detail that then names a
-- forgotten member instead of the member.
DROP TRIGGER audit_no_update;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    WHEN COALESCE((
        NEW.id = OLD.id AND NEW.guild_id = OLD.guild_id AND NEW.action = OLD.action
        AND NEW.created_at = OLD.created_at
        AND (NEW.actor_id = OLD.actor_id OR (OLD.actor_id >= 0 AND NEW.actor_id < 0))
        AND (NEW.detail = OLD.detail OR NEW.detail LIKE '%privacy.forgotten_member%')
    ), 0) = 0
    BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
