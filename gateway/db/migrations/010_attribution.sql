-- Attribution and reports: what a redemption was worth at the till (optional, in the programme's currency;
-- RFM monetary value sums it), and the index that finds a member's first decision in a campaign.
ALTER TABLE redemptions ADD COLUMN amount numeric(12, 2) CHECK (amount IS NULL OR amount >= 0);

-- The view named its columns when it was made; made again, it carries the new one (appended, so nothing
-- that reads it changes).
CREATE OR REPLACE VIEW live_redemptions AS
  SELECT r.* FROM redemptions r WHERE NOT EXISTS (SELECT 1 FROM redemption_voids v WHERE v.redemption_id = r.id);

CREATE INDEX decisions_campaign_member ON decisions (campaign_id, member_id, occurred_at) WHERE campaign_id IS NOT NULL;
