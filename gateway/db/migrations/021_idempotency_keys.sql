-- Idempotency-Key (IETF httpapi draft): the first answer to a member-app write, replayed to its retries.
-- A row is claimed when the first attempt starts; its answer is written in the write's own transaction where
-- the route allows (check-ins, beacon reports), so a decision is never committed without the answer that told it.
CREATE TABLE idempotency_keys (
  scope text NOT NULL,            -- whose key: member:<id>, or key:<api key id> for staff
  key text NOT NULL,
  fingerprint text NOT NULL,      -- sha256 of method, path and body: the same key with another request is refused
  claim uuid NOT NULL,            -- the attempt running it; a later attempt takes over only a stale claim
  claimed_at timestamptz NOT NULL,
  status integer,                 -- null while the first attempt runs
  body text,                      -- the answer as sent
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
