-- Redemptions that can be voided: a void is a row of its own, never an edit. A coupon whose redemption was
-- voided can be redeemed again; the database keeps it to one live redemption at a time: each redemption of a
-- coupon carries its attempt number (1 + the voids before it), unique per coupon. Retried requests are
-- recognised by their request id, and a till's transaction id is unique per store.
ALTER TABLE redemptions DROP CONSTRAINT redemptions_coupon_id_key;
ALTER TABLE redemptions
  ADD COLUMN attempt        integer NOT NULL DEFAULT 1,
  ADD COLUMN request_id     text,
  ADD COLUMN transaction_id text;
ALTER TABLE redemptions ADD CONSTRAINT redemptions_coupon_attempt UNIQUE (coupon_id, attempt);
CREATE UNIQUE INDEX redemptions_request ON redemptions (store_id, request_id) WHERE request_id IS NOT NULL;
CREATE UNIQUE INDEX redemptions_transaction ON redemptions (store_id, transaction_id) WHERE transaction_id IS NOT NULL;

CREATE TABLE redemption_voids (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  redemption_id uuid NOT NULL UNIQUE REFERENCES redemptions(id) ON DELETE CASCADE,
  coupon_id     uuid NOT NULL REFERENCES coupons(id) ON DELETE CASCADE,
  store_id      uuid NOT NULL REFERENCES stores(id),
  reason        text,
  voided_at     timestamptz NOT NULL
);
CREATE INDEX redemption_voids_coupon ON redemption_voids (coupon_id);

-- What counts everywhere (caps, cooldowns, budgets, reports, the member's record): redemptions not voided.
CREATE VIEW live_redemptions AS
  SELECT r.* FROM redemptions r WHERE NOT EXISTS (SELECT 1 FROM redemption_voids v WHERE v.redemption_id = r.id);

-- Live redemptions per campaign, moved by atomic conditional updates so a redemption budget is never overrun.
CREATE TABLE campaign_redemption_counts (
  campaign_id uuid PRIMARY KEY REFERENCES campaigns(id),
  redeemed    integer NOT NULL DEFAULT 0 CHECK (redeemed >= 0)
);
INSERT INTO campaign_redemption_counts (campaign_id, redeemed)
  SELECT c.campaign_id, count(*) FROM redemptions r JOIN coupons c ON c.id = r.coupon_id GROUP BY c.campaign_id;
