-- Provider callbacks authenticate with a per-job secret; posting_at marks a delivery
-- attempt that may have reached Discord, so a restart looks before posting again.
ALTER TABLE jobs ADD COLUMN callback_token TEXT;
ALTER TABLE jobs ADD COLUMN posting_at REAL;
CREATE UNIQUE INDEX jobs_callback_token ON jobs(callback_token);
