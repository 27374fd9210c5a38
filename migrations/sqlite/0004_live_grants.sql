-- The live grants of a person and role, for the overlap check a revoke makes (is another grant
-- still giving the same access?): partial, so it holds only requests that may give access now,
-- and a revoke looks up one (requester, role) pair however many grants share it. Its predicate
-- is repeated word for word by the query (see `LIVE` in adapters/sql/src/store.rs).
CREATE INDEX requests_live ON requests (requester, role) WHERE state IN ('approved', 'active') AND kind <> 'extension';
