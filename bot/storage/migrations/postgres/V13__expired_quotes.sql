-- A quote that expires with nobody clicking is shrunk to one line by a sweep in any process:
-- expiry_claimed_at is when a process took it (a conditional UPDATE: one process of a fleet;
-- taken again once stale), expiry_shown_at when its card showed it. A Confirm does not use a
-- quote a sweep has taken. Quotes that had expired before this version are left as they are.
ALTER TABLE quotes ADD COLUMN expiry_claimed_at DOUBLE PRECISION;
ALTER TABLE quotes ADD COLUMN expiry_shown_at DOUBLE PRECISION;
UPDATE quotes SET expiry_shown_at = expires_at
    WHERE state = 'open' AND expires_at <= EXTRACT(EPOCH FROM now());
CREATE INDEX quotes_to_shrink ON quotes(expires_at)
    WHERE state = 'open' AND expiry_shown_at IS NULL;
