-- The private follow-up telling a member why their video failed (on their Confirm, while its
-- token lives) cannot be found again (ephemeral messages are in no history): followup_at is
-- written before it is sent, and a later attempt (after a crash, or in another process) that
-- finds it does not tell the member a second time by DM.
ALTER TABLE jobs ADD COLUMN followup_at REAL;
