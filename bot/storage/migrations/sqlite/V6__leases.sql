-- Several processes share the jobs. A process is a worker with a lease it renews while it
-- lives; a job is worked only by its owner, and only while the owner's lease runs. (With
-- SQLite there is one process: its lease is always its own.)
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    lease_until  REAL NOT NULL,
    started_at   REAL NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    detail       TEXT NOT NULL
);
ALTER TABLE jobs ADD COLUMN owner TEXT;
