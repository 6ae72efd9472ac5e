-- Rolling upgrade: safe (a new table that only processes of this version use).
-- The fleet's sends to ShortAPI in the last window, when MAX_PROVIDER_RPS is below one request
-- per window for each process: every request first takes a turn here (bot.ledger.pace).
CREATE TABLE provider_sends (
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX provider_sends_at ON provider_sends(at);
