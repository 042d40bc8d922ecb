-- The gateway's VAPID key pair (RFC 8292): made by whichever gateway starts first, read by all of them, so that
-- every subscription a member's app made with the public key stays valid whatever gateway sends. One row.
CREATE TABLE vapid_keys (
  id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  public_key  text NOT NULL,
  private_key text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- A member's app on one device, subscribed to Web Push (the browser's PushSubscription). The endpoint is the
-- push service's address for that device; p256dh and auth are the keys its payloads are encrypted to (RFC 8291).
-- `provider` leaves room for other push providers (FCM tokens) beside Web Push.
CREATE TABLE push_subscriptions (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  member_id       uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  provider        text NOT NULL DEFAULT 'webpush' CHECK (provider IN ('webpush')),
  endpoint        text NOT NULL UNIQUE,
  p256dh          text NOT NULL,
  auth            text NOT NULL,
  expires_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_success_at timestamptz
);
CREATE INDEX push_subscriptions_member ON push_subscriptions (member_id);

-- Push events worth watching, per day: subscriptions the push service said are gone (404/410) and were removed.
CREATE TABLE push_counters (
  day   date NOT NULL,
  kind  text NOT NULL,
  count bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (day, kind)
);
