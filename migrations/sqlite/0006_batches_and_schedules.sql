-- Requests of several roles at once (`/elevate db-admin,logs-read 2h …`, bundles): one row per
-- role, each with its own lifecycle, all carrying the id of the batch's first row.
ALTER TABLE requests ADD COLUMN batch INTEGER REFERENCES requests(id);
CREATE INDEX requests_batch ON requests (batch) WHERE batch IS NOT NULL;
-- Scheduled access (`… at 2026-12-05 22:00 Europe/Berlin`, `… in 3h`): when the request starts,
-- in milliseconds since the epoch like every other time; its window is counted from here.
ALTER TABLE requests ADD COLUMN starts_at INTEGER;
