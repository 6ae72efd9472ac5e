-- Rolling upgrade: safe (a new table and a new column, which processes of the previous
-- version never read).
-- Budget alerts: the channel they go to, and each one owed or sent. The key makes one row per
-- server, month (in the server's time zone, 'YYYY-MM') and threshold (percent of the monthly
-- budget): whichever process inserts it first is the one that sends it, and nobody else can.
ALTER TABLE guild_settings ADD COLUMN alerts_channel_id BIGINT;
CREATE TABLE budget_alerts (
    guild_id      BIGINT NOT NULL,
    month         TEXT NOT NULL,
    threshold     INTEGER NOT NULL CHECK (threshold > 0),
    spent_mills   BIGINT NOT NULL,
    budget_mills  BIGINT NOT NULL,
    channel_id    BIGINT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    -- The process sending it (a worker of the fleet): another may take it over once that
    -- worker's lease has run out.
    owner         TEXT,
    -- An attempt that may have posted the message: look for it before posting again.
    sending_at    DOUBLE PRECISION,
    -- Posted (message_id), or passed over for a higher threshold crossed at the same time
    -- (message_id NULL): either way nothing more to send.
    sent_at       DOUBLE PRECISION,
    message_id    BIGINT,
    PRIMARY KEY (guild_id, month, threshold)
);
CREATE INDEX budget_alerts_owed ON budget_alerts(guild_id) WHERE sent_at IS NULL;
