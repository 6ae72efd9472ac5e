-- Several processes share the jobs. A process is a worker with a lease it renews while it
-- lives; a job is worked only by its owner, and only while the owner's lease runs. Times are
-- the database's clock (seconds since the epoch), so machines' clocks need not agree.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    lease_until  DOUBLE PRECISION NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    detail       TEXT NOT NULL
);
ALTER TABLE jobs ADD COLUMN owner TEXT;
