-- Alliance offers: a partner publishes an offer that brands' campaigns hand out to their members; the coupon is
-- redeemed at the partner's till and settled between them. An offer is never edited: a partner withdraws it and
-- publishes another, so its budget, value and stores stay what every issued coupon was given under.
CREATE TABLE alliance_offers (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  merchant_id      uuid NOT NULL REFERENCES merchants(id),
  title            text NOT NULL,
  message          text NOT NULL,
  -- Money in the programme's currency, as whole cents.
  face_value_cents bigint NOT NULL CHECK (face_value_cents >= 0),
  max_issued       integer CHECK (max_issued IS NULL OR max_issued > 0),
  max_redemptions  integer CHECK (max_redemptions IS NULL OR max_redemptions > 0),
  -- Coupons issued, moved by an atomic conditional update at issue time, so max_issued is never overrun.
  issued           integer NOT NULL DEFAULT 0 CHECK (issued >= 0 AND (max_issued IS NULL OR issued <= max_issued)),
  -- Live redemptions, kept only for an offer with max_redemptions (like campaign_redemption_counts): a hot offer
  -- without a budget does not make every till queue on this row.
  redeemed         integer NOT NULL DEFAULT 0 CHECK (redeemed >= 0 AND (max_redemptions IS NULL OR redeemed <= max_redemptions)),
  valid_from       timestamptz NOT NULL,
  valid_to         timestamptz NOT NULL,
  valid_days       integer NOT NULL CHECK (valid_days BETWEEN 1 AND 365),
  status           text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'withdrawn')),
  withdrawn_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (valid_from < valid_to),
  CHECK ((status = 'withdrawn') = (withdrawn_at IS NOT NULL))
);
CREATE INDEX alliance_offers_merchant ON alliance_offers (merchant_id);

-- Where an offer's coupons are redeemed: stores of the partner that published it.
CREATE TABLE alliance_offer_stores (
  offer_id uuid NOT NULL REFERENCES alliance_offers(id),
  store_id uuid NOT NULL REFERENCES stores(id),
  PRIMARY KEY (offer_id, store_id)
);
CREATE INDEX alliance_offer_stores_store ON alliance_offer_stores (store_id);

-- A coupon a brand's campaign issued for a partner's offer.
ALTER TABLE coupons ADD COLUMN alliance_offer_id uuid REFERENCES alliance_offers(id);
CREATE INDEX coupons_alliance_offer ON coupons (alliance_offer_id, issued_at) WHERE alliance_offer_id IS NOT NULL;

-- 013 gave redemptions a till_id; made again, the view carries it (appended, so nothing that reads it changes).
CREATE OR REPLACE VIEW live_redemptions AS
  SELECT r.* FROM redemptions r WHERE NOT EXISTS (SELECT 1 FROM redemption_voids v WHERE v.redemption_id = r.id);
