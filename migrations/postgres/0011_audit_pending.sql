-- Audit events written by a transition, waiting for the sealer to number, hash and link them
-- onto the chain (`audit_events`) in batches: the chain's head row is then locked once per
-- batch instead of once per transition (see adapters/sql/src/pg_seal.rs). An event is here
-- only between its transaction's commit and the next sealing round, milliseconds.
CREATE TABLE audit_pending (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    kind    TEXT   NOT NULL,
    subject BIGINT,
    details TEXT   NOT NULL
);
