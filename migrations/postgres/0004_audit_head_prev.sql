-- The head's hash before the last append, so that the statement that appends an event (and
-- moves the head under its row lock) can return the hash it linked to.
ALTER TABLE audit_head ADD COLUMN prev_hash TEXT;
