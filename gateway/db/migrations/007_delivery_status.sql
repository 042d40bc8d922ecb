-- Twilio's status callbacks move an SMS on after it was handed over: delivered or undelivered by the carrier.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
  CHECK (status IN ('queued', 'sent', 'delivered', 'undelivered', 'failed', 'cancelled'));
ALTER TABLE deliveries ADD COLUMN provider_status text;
CREATE INDEX deliveries_provider ON deliveries (provider_id) WHERE provider_id IS NOT NULL;
