-- What the member is owed hearing about, once money has moved (issue: every outcome reaches
-- the member, even across a crash). A final job with told_at NULL has not been told yet.
-- telling_at marks an attempt to post the outcome that may have reached Discord, so a restart
-- looks before posting again; outcome is the reason to tell (catalogue key and values, JSON).
ALTER TABLE jobs ADD COLUMN telling_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN told_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN outcome TEXT;
-- Jobs that ended before this version were told by the code of their day.
UPDATE jobs SET told_at = finished_at WHERE state IN ('delivered', 'failed', 'expired');
CREATE INDEX jobs_untold ON jobs(id) WHERE told_at IS NULL;
