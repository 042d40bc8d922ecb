-- Parties and their credentials. A merchant is a business on the system: a brand (a retail chain that runs
-- campaigns for its members) or a partner (a business that publishes alliance offers). Each owns its stores
-- (locations) and their tills. API keys carry a role and the scope it is held to; only a hash of each key's
-- secret is kept, the key itself was shown once.

CREATE TABLE merchants (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind       text NOT NULL CHECK (kind IN ('brand', 'partner')),
  name       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Stores made before there were merchants belong to the house brand; so do stores an administrator opens
-- without naming a merchant.
INSERT INTO merchants (id, kind, name) VALUES ('00000000-0000-4000-8000-000000000001', 'brand', 'House brand');

ALTER TABLE stores ADD COLUMN merchant_id uuid NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001' REFERENCES merchants(id);
CREATE INDEX stores_merchant ON stores (merchant_id);

-- A campaign belongs to the brand that runs it.
ALTER TABLE campaigns ADD COLUMN merchant_id uuid NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001' REFERENCES merchants(id);
CREATE INDEX campaigns_merchant ON campaigns (merchant_id);

CREATE TABLE tills (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  store_id   uuid NOT NULL REFERENCES stores(id),
  name       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (store_id, name)
);
ALTER TABLE redemptions ADD COLUMN till_id uuid;

-- role 'marketer' and 'merchant' keys name their merchant; 'member' keys (the app's token) their member.
-- A rotated key stays valid until expires_at (the grace period), then only its successor does.
CREATE TABLE api_keys (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  role        text NOT NULL CHECK (role IN ('administrator', 'marketer', 'merchant', 'member')),
  merchant_id uuid REFERENCES merchants(id),
  member_id   uuid REFERENCES members(id) ON DELETE CASCADE,
  name        text NOT NULL,
  secret_hash bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  revoked_at  timestamptz,
  replaced_by uuid REFERENCES api_keys(id),
  CHECK ((role IN ('marketer', 'merchant')) = (merchant_id IS NOT NULL)),
  CHECK ((role = 'member') = (member_id IS NOT NULL))
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);
CREATE INDEX api_keys_member ON api_keys (member_id);

-- A geofence belongs to its store's merchant, or, with no store, to the brand that drew it.
ALTER TABLE geofences ADD COLUMN merchant_id uuid NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001' REFERENCES merchants(id);
UPDATE geofences g SET merchant_id = s.merchant_id FROM stores s WHERE s.id = g.store_id;
