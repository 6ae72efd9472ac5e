-- A job in the waiting line takes one of the fleet's slots (MAX_ACTIVE_JOBS, and its
-- member's MAX_ACTIVE_JOBS_PER_USER) before its create is sent, whichever process works it.
ALTER TABLE jobs ADD COLUMN slot_at DOUBLE PRECISION;
