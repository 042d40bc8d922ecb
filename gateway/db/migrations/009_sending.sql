-- A delivery is claimed ('sending') in a committed row before the carrier is asked, so a worker that dies
-- between the carrier's answer and recording it leaves a trace: the next attempt asks the carrier whether the
-- message went out instead of sending it again. An offer is worth sending until fresh_until (the triggering
-- detection's time plus the freshness budget), never later.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
  CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'cancelled'));
ALTER TABLE deliveries ADD COLUMN sending_at timestamptz;
ALTER TABLE deliveries ADD COLUMN fresh_until timestamptz;
UPDATE deliveries SET fresh_until = created_at + interval '15 minutes';
ALTER TABLE deliveries ALTER COLUMN fresh_until SET NOT NULL;
