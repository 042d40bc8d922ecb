-- Campaign rules: polygons and opening hours on geofences, audience facts on members, one offer per campaign
-- version, presence state for geofence triggers, visits, and held-out decisions.

ALTER TABLE geofences
  ADD COLUMN hours      jsonb,
  ADD COLUMN time_zone  text,
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE members
  ADD COLUMN tags          text[] NOT NULL DEFAULT '{}',
  ADD COLUMN home_store_id uuid REFERENCES stores(id);

ALTER TABLE campaign_versions ADD COLUMN name text NOT NULL DEFAULT '';

-- An edit can change the offer too; coupons point at the offer of the version that issued them.
ALTER TABLE offers ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE offers ADD CONSTRAINT offers_campaign_version UNIQUE (campaign_id, version);

ALTER TABLE decisions DROP CONSTRAINT decisions_outcome_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_outcome_check
  CHECK (outcome IN ('offer_queued', 'held_out', 'no_match', 'not_sent', 'dropped'));
ALTER TABLE decisions ADD COLUMN event jsonb;
CREATE INDEX decisions_campaign ON decisions (campaign_id, outcome);

-- Per member: which geofences they are inside, with enter time and dwell bookkeeping (campaign-rules/presence.ts).
CREATE TABLE member_presence (
  member_id  uuid PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
  fences     jsonb NOT NULL,
  last_fix_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- A visit: one stay of a member in a geofence, from its enter event to its exit event.
CREATE TABLE visits (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  member_id   uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  geofence_id uuid NOT NULL REFERENCES geofences(id),
  store_id    uuid REFERENCES stores(id),
  source      text NOT NULL,
  started_at  timestamptz NOT NULL,
  ended_at    timestamptz
);
CREATE INDEX visits_member ON visits (member_id, started_at);
CREATE INDEX coupons_campaign ON coupons (campaign_id);
