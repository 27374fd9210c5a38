-- elevate schema, SQLite dialect. Times are milliseconds since the epoch (UTC).

CREATE TABLE requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    parent_id     INTEGER REFERENCES requests(id),
    role          TEXT    NOT NULL,
    requester     TEXT    NOT NULL,
    duration_secs INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    ticket        TEXT,
    source        TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    granted_at    INTEGER,
    expires_at    INTEGER,
    ending        TEXT,
    closed_by     TEXT,
    note          TEXT,
    grant_handle  TEXT
);
CREATE INDEX requests_state ON requests (state);
CREATE INDEX requests_requester ON requests (requester, state);
CREATE INDEX requests_created ON requests (created_at);

CREATE TABLE approvals (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    approver   TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (request_id, approver)
);

-- Durable work. A claim is a lease (claimed_until); an item is deleted when done.
CREATE TABLE due_items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    request_id    INTEGER,
    due_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    payload       TEXT    NOT NULL DEFAULT 'null',
    claimed_until INTEGER
);
CREATE INDEX due_items_due ON due_items (due_at);
CREATE INDEX due_items_request ON due_items (request_id);
CREATE INDEX due_items_claimed ON due_items (claimed_until) WHERE claimed_until IS NOT NULL;

-- Append-only, hash-chained.
CREATE TABLE audit_events (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    subject   INTEGER,
    details   TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX audit_events_subject ON audit_events (subject);

-- The chain head, one row: appends lock it so the chain never forks.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- One row per firing of a periodic job: the replica that inserts it runs it.
CREATE TABLE cron_runs (
    job     TEXT    NOT NULL,
    fire_at INTEGER NOT NULL,
    PRIMARY KEY (job, fire_at)
);

-- Delivery positions in the audit log (audit feed, chat notifiers).
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
