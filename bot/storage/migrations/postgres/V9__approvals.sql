-- Approval above a price: a job whose price is at or above the server's threshold waits in
-- state 'awaiting_approval' (its price reserved, nothing sent to ShortAPI) until a moderator
-- approves it (-> 'reserved'), denies it, the member cancels it or it expires (refunded).
-- Not for a rolling upgrade: a process of the previous version would take a job awaiting
-- approval for one to start.
ALTER TABLE guild_settings ADD COLUMN approval_above_mills BIGINT;
ALTER TABLE guild_settings ADD COLUMN approval_channel_id BIGINT;
ALTER TABLE guild_settings ADD COLUMN approval_role_id BIGINT;
ALTER TABLE jobs ADD COLUMN approval_deadline DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN approval_message_id BIGINT;  -- the card in the approvals channel
-- approved | denied | expired | cancelled, by whom (NULL for an expiry) and when.
ALTER TABLE jobs ADD COLUMN decision TEXT;
ALTER TABLE jobs ADD COLUMN decided_by BIGINT;
ALTER TABLE jobs ADD COLUMN decided_at DOUBLE PRECISION;
-- The member hears who approved: an attempt that may have posted it, and done.
ALTER TABLE jobs ADD COLUMN approval_telling_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN approval_told_at DOUBLE PRECISION;
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN (
    'awaiting_approval', 'reserved', 'submitting', 'running', 'succeeded',
    'delivered', 'failed', 'expired'));
