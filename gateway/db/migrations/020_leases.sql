-- A lease: a task that one process of many should run at a time (the outbox reconciler) is held by whoever
-- wrote the row last and is not yet past expires_at. Held in the database because the gateway's processes
-- share nothing else; a holder that dies simply stops renewing, and another takes the lease when it expires.
CREATE TABLE leases (
  name text PRIMARY KEY,
  holder text NOT NULL,
  expires_at timestamptz NOT NULL
);

-- When a waiting delivery is next due, if not at once: held past the member's quiet hours, or until a push
-- service's Retry-After. The queue holds a delayed job for that moment; the reconciler, which queues again
-- what the queue lost, leaves the row alone until then.
ALTER TABLE deliveries ADD COLUMN not_before timestamptz;
