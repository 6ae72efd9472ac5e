-- Each process keeps a server's blocked words compiled; a change of the list bumps this
-- version, and each quote reads it (one row by key) to know whether to compile again.
-- Not for a rolling upgrade: a process of the previous version changes the list without
-- bumping it, and the processes of this version would keep the old list.
ALTER TABLE guild_settings ADD COLUMN blocked_words_version INTEGER NOT NULL DEFAULT 0;
