-- Requests of several roles at once (`/elevate db-admin,logs-read 2h …`, bundles): one row per
-- role, each with its own lifecycle, all carrying the id of the batch's first row.
ALTER TABLE requests ADD COLUMN batch INTEGER REFERENCES requests(id);
CREATE INDEX requests_batch ON requests (batch) WHERE batch IS NOT NULL;
