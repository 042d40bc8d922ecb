-- Customer records. A member is a person who joined the programme; nothing is held about anyone else.
CREATE TABLE members (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  external_ref text UNIQUE,
  phone_e164   text UNIQUE,
  time_zone    text NOT NULL DEFAULT 'UTC',
  tier         text,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Append-only consent ledger: current state is derived from these rows, never updated in place.
CREATE TABLE consent_events (
  id             bigserial PRIMARY KEY,
  member_id      uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  purpose        text NOT NULL CHECK (purpose IN ('ble_detection','location','sms_marketing','push_marketing','partner_offers','profiling')),
  action         text NOT NULL CHECK (action IN ('grant','withdraw')),
  source         text NOT NULL CHECK (source IN ('app','web','sms_keyword','store_staff','api')),
  notice_version text,
  actor          text,
  ip             text,
  user_agent     text,
  occurred_at    timestamptz NOT NULL,
  recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_events_member ON consent_events (member_id, id);

CREATE TABLE stores (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name       text NOT NULL,
  time_zone  text NOT NULL,
  lat        double precision NOT NULL,
  lon        double precision NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Areas inside a store (entrance, counter) that beacons cover.
CREATE TABLE zones (
  id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  store_id uuid NOT NULL REFERENCES stores(id),
  name     text NOT NULL,
  UNIQUE (store_id, name)
);

CREATE TABLE beacons (
  id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  store_id uuid NOT NULL REFERENCES stores(id),
  zone_id  uuid REFERENCES zones(id),
  uuid     uuid NOT NULL,
  major    integer NOT NULL CHECK (major BETWEEN 0 AND 65535),
  minor    integer NOT NULL CHECK (minor BETWEEN 0 AND 65535),
  UNIQUE (uuid, major, minor)
);

CREATE TABLE geofences (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  store_id   uuid REFERENCES stores(id),
  name       text NOT NULL,
  shape      jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX geofences_store ON geofences (store_id);

-- A campaign's rules live in `definition`; an edit makes a new version and decisions record which one they used.
CREATE TABLE campaigns (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name       text NOT NULL,
  status     text NOT NULL CHECK (status IN ('active','paused','archived')),
  version    integer NOT NULL DEFAULT 1,
  definition jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_status ON campaigns (status);

CREATE TABLE campaign_versions (
  campaign_id uuid NOT NULL REFERENCES campaigns(id),
  version     integer NOT NULL,
  definition  jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, version)
);

CREATE TABLE offers (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  campaign_id uuid NOT NULL REFERENCES campaigns(id),
  kind        text NOT NULL CHECK (kind IN ('coupon')),
  title       text NOT NULL,
  message     text NOT NULL,
  valid_days  integer NOT NULL CHECK (valid_days BETWEEN 1 AND 365),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offers_campaign ON offers (campaign_id);

CREATE TABLE checkins (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  member_id   uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  lat         double precision NOT NULL,
  lon         double precision NOT NULL,
  accuracy_m  double precision NOT NULL,
  occurred_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkins_member ON checkins (member_id, occurred_at);

CREATE TABLE detections (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  member_id   uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  store_id    uuid NOT NULL REFERENCES stores(id),
  zone_id     uuid REFERENCES zones(id),
  source      text NOT NULL,
  rssi        integer,
  occurred_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX detections_member ON detections (member_id, occurred_at);

-- Every evaluation of a member at a moment, with its trace, so that any outcome can explain itself.
CREATE TABLE decisions (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  member_id        uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  trigger          text NOT NULL,
  checkin_id       uuid REFERENCES checkins(id) ON DELETE SET NULL,
  occurred_at      timestamptz NOT NULL,
  outcome          text NOT NULL CHECK (outcome IN ('offer_queued','no_match','not_sent','dropped')),
  reason_code      text,
  campaign_id      uuid REFERENCES campaigns(id),
  campaign_version integer,
  trace            jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_member ON decisions (member_id, occurred_at);

CREATE TABLE coupons (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  code        text NOT NULL UNIQUE,
  offer_id    uuid NOT NULL REFERENCES offers(id),
  campaign_id uuid NOT NULL REFERENCES campaigns(id),
  member_id   uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  decision_id uuid NOT NULL UNIQUE REFERENCES decisions(id) ON DELETE CASCADE,
  issued_at   timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL
);
CREATE INDEX coupons_member ON coupons (member_id);

CREATE TABLE deliveries (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  decision_id  uuid NOT NULL UNIQUE REFERENCES decisions(id) ON DELETE CASCADE,
  coupon_id    uuid NOT NULL REFERENCES coupons(id) ON DELETE CASCADE,
  member_id    uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  channel      text NOT NULL CHECK (channel IN ('sms','push')),
  body         text NOT NULL,
  status       text NOT NULL CHECK (status IN ('queued','sent','failed','cancelled')),
  status_reason text,
  provider_id  text,
  error_code   text,
  attempts     integer NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_status ON deliveries (status);

-- coupon_id is unique: a coupon can be redeemed once, whatever races at the tills.
CREATE TABLE redemptions (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  coupon_id   uuid NOT NULL UNIQUE REFERENCES coupons(id) ON DELETE CASCADE,
  store_id    uuid NOT NULL REFERENCES stores(id),
  till_ref    text,
  redeemed_at timestamptz NOT NULL DEFAULT now()
);
