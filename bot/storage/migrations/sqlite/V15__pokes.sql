-- A process asking a job's holder to look at it now (a provider callback that reached
-- another process) writes when, as well as notifying: a holder that was not listening
-- meanwhile (its connection to the database lost) reads the pokes it missed when it listens
-- again, instead of leaving the job to routine polling.
ALTER TABLE jobs ADD COLUMN poked_at REAL;
