-- Security controls: what rules decided about a request, break-glass reviews, and lockdowns.

-- Approvals a rule added on top of the role's own (e.g. outside working hours).
ALTER TABLE requests ADD COLUMN extra_approvals BIGINT NOT NULL DEFAULT 0;
-- The rules that fired for this request, as JSON: [{"rule": "after-hours", "effect": "extra_approval"}].
ALTER TABLE requests ADD COLUMN rules TEXT NOT NULL DEFAULT '[]';
-- Break-glass post-incident review, as JSON: {"state": "open"} or {"state": "done", "by", "at", "note"}.
ALTER TABLE requests ADD COLUMN review TEXT;

-- Kill switches. scope is a role name or '*' for every role. Kept in the database so that a
-- lockdown survives restarts and applies on every replica.
CREATE TABLE lockdowns (
    scope             TEXT    PRIMARY KEY,
    reason            TEXT    NOT NULL,
    locked_by         TEXT    NOT NULL,
    locked_at         BIGINT NOT NULL,
    blocks_breakglass BIGINT NOT NULL DEFAULT 0
);
