-- Beacon agents and detection ingest: agent credentials, replay protection, members' EID identity keys,
-- presence events from the boxes, zone presence per member, and visits that fuse BLE with GPS.

-- A store edge box. Only the public half of its Ed25519 key is held; the private half was shown once.
CREATE TABLE agents (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  store_id             uuid NOT NULL REFERENCES stores(id),
  name                 text NOT NULL,
  public_key           text NOT NULL,
  key_version          integer NOT NULL DEFAULT 1,
  -- After a rotation the previous key still signs until this time, so a box can switch without a gap.
  previous_public_key  text,
  previous_valid_until timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  revoked_at           timestamptz
);

-- Signatures seen within the allowed clock skew: the same signed request twice is a replay.
CREATE TABLE agent_requests (
  signature text PRIMARY KEY,
  agent_id  uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  seen_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_requests_seen ON agent_requests (seen_at);

-- A member's Eddystone-EID identity key exists only while ble_detection is granted: withdrawal or erasure
-- deletes the row, and with it any way to recognise the member's phone.
CREATE TABLE member_identity_keys (
  member_id         uuid PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
  identity_key      bytea NOT NULL CHECK (octet_length(identity_key) = 16),
  rotation_exponent integer NOT NULL CHECK (rotation_exponent BETWEEN 0 AND 15),
  issued_at         timestamptz NOT NULL DEFAULT now()
);

-- Every issue and destruction of a key, in order, so each gateway's resolver can catch up incrementally.
-- Holds no key material.
CREATE TABLE identity_key_changes (
  seq       bigserial PRIMARY KEY,
  member_id uuid NOT NULL,
  change    text NOT NULL CHECK (change IN ('issued', 'destroyed')),
  at        timestamptz NOT NULL DEFAULT now()
);

-- Detections are the boxes' presence events, resolved to a consenting member; the agent's event id makes a
-- retried upload count once. Ids are the box's own: unique per agent, so no box can shadow another's.
ALTER TABLE detections
  ADD COLUMN event_id   text,
  ADD COLUMN agent_id   uuid REFERENCES agents(id),
  ADD COLUMN kind       text CHECK (kind IN ('enter', 'dwell', 'exit', 'sighting')),
  ADD COLUMN confidence double precision,
  ADD COLUMN dwell_ms   bigint;
CREATE UNIQUE INDEX detections_event ON detections (agent_id, event_id);

-- Which zones a member is in now, by the EIDs that put them there (a phone's EID rotates mid-visit: the
-- zone is left only when none of its EIDs is inside any more).
CREATE TABLE member_zone_presence (
  member_id     uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  zone_id       uuid NOT NULL REFERENCES zones(id),
  store_id      uuid NOT NULL REFERENCES stores(id),
  eids          text[] NOT NULL,
  entered_at    timestamptz NOT NULL,
  last_event_at timestamptz NOT NULL,
  PRIMARY KEY (member_id, zone_id)
);

-- A visit is now one stay at a store, whatever saw it: GPS geofences and BLE zones fuse into it.
ALTER TABLE visits ALTER COLUMN geofence_id DROP NOT NULL;
ALTER TABLE visits
  ADD COLUMN sources      text[] NOT NULL DEFAULT '{}',
  ADD COLUMN last_seen_at timestamptz;
UPDATE visits SET sources = ARRAY[source], last_seen_at = coalesce(ended_at, started_at);
CREATE INDEX visits_store_open ON visits (member_id, store_id, started_at);

