-- Sign-ups from the members' app with a phone number wait here until the number's owner types the code sent
-- to it. Only the code's hash is kept; a row lives 15 minutes. Asking to sign up a number that already
-- belongs to a member makes a row too (with no code sent), so the answer never says whether it does.
CREATE TABLE member_signups (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  phone_e164  text NOT NULL,
  time_zone   text NOT NULL,
  code_hash   bytea,
  attempts    integer NOT NULL DEFAULT 0,
  expires_at  timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX member_signups_expiry ON member_signups (expires_at);
