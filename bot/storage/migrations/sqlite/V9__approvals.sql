-- Approval above a price: a job whose price is at or above the server's threshold waits in
-- state 'awaiting_approval' (its price reserved, nothing sent to ShortAPI) until a moderator
-- approves it (-> 'reserved'), denies it, the member cancels it or it expires (refunded).
-- Not for a rolling upgrade: a process of the previous version would take a job awaiting
-- approval for one to start.
ALTER TABLE guild_settings ADD COLUMN approval_above_mills INTEGER;
ALTER TABLE guild_settings ADD COLUMN approval_channel_id INTEGER;
ALTER TABLE guild_settings ADD COLUMN approval_role_id INTEGER;
ALTER TABLE jobs ADD COLUMN approval_deadline REAL;
ALTER TABLE jobs ADD COLUMN approval_message_id INTEGER;  -- the card in the approvals channel
-- approved | denied | expired | cancelled, by whom (NULL for an expiry) and when.
ALTER TABLE jobs ADD COLUMN decision TEXT;
ALTER TABLE jobs ADD COLUMN decided_by INTEGER;
ALTER TABLE jobs ADD COLUMN decided_at REAL;
-- The member hears who approved: an attempt that may have posted it, and done.
ALTER TABLE jobs ADD COLUMN approval_telling_at REAL;
ALTER TABLE jobs ADD COLUMN approval_told_at REAL;
-- The new state in the jobs' CHECK. SQLite cannot alter a CHECK; the documented way for a
-- change that every existing row already satisfies is to edit the stored schema text
-- (https://sqlite.org/lang_altertable.html, "making other kinds of table schema changes").
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(sql, '''reserved'', ''submitting''',
                     '''awaiting_approval'', ''reserved'', ''submitting''')
 WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = RESET;
