-- Consent: SMS double opt-in requests, inbound SMS (for replay protection), receipts, drop counters, erasure.

ALTER TABLE consent_events DROP CONSTRAINT consent_events_action_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_action_check CHECK (action IN ('grant', 'withdraw', 'request'));

-- Each inbound message once: a replayed webhook finds its MessageSid here and changes nothing.
-- No phone number is kept; the member is enough.
CREATE TABLE inbound_sms (
  message_sid text PRIMARY KEY,
  member_id   uuid REFERENCES members(id) ON DELETE SET NULL,
  keyword     text,
  received_at timestamptz NOT NULL DEFAULT now()
);

-- What the member is told after every consent change; readable in the app, sent by SMS where allowed.
CREATE TABLE consent_receipts (
  id         bigserial PRIMARY KEY,
  member_id  uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  event_id   bigint NOT NULL REFERENCES consent_events(id) ON DELETE CASCADE,
  text       text NOT NULL,
  channel    text NOT NULL CHECK (channel IN ('app', 'sms')),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_receipts_member ON consent_receipts (member_id, id);

-- Presence data refused at the door is counted, never stored.
CREATE TABLE drop_counters (
  day   date NOT NULL,
  kind  text NOT NULL,
  count bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (day, kind)
);

ALTER TABLE members ADD COLUMN erased_at timestamptz;
