-- Limits on what anyone may make the gateway do without an account: text a number (sign-up codes, opt-in
-- requests) or make a member without a phone. Each limited act is one row, for as long as a limit looks back
-- (a day), under a SHA-256 of what it is counted by (a number, an address): the limits need to tell numbers
-- apart, not to read them. The hourly retention job deletes rows older than a day.
CREATE TABLE limit_events (
  id       bigserial PRIMARY KEY,
  kind     text NOT NULL CHECK (kind IN ('signup_code', 'opt_in_request', 'signup_without_phone')),
  subject  bytea NOT NULL CHECK (octet_length(subject) = 32),
  -- What the act was for (an opt-in request's job), so that a retry of the same act is not a second one.
  ref      text,
  at       timestamptz NOT NULL
);
CREATE INDEX limit_events_subject ON limit_events (kind, subject, at);
CREATE INDEX limit_events_at ON limit_events (at);

-- The budget of verification texts: sign-ups with a phone per clock hour, all numbers together, and the ones
-- refused by a limit. Administrators read it (GET /admin/sms-limits); kept 30 days.
CREATE TABLE signup_code_hours (
  hour     timestamptz PRIMARY KEY,
  used     integer NOT NULL DEFAULT 0,
  refused  integer NOT NULL DEFAULT 0
);

-- How the member joined: 'app' by the public sign-up, 'operator' by POST /members (and every member before).
-- A member who signed up in the app without a phone and never used the programme is purged after
-- UNUSED_MEMBER_DAYS; an operator's records are the operator's to keep.
ALTER TABLE members ADD COLUMN joined_via text NOT NULL DEFAULT 'operator' CHECK (joined_via IN ('operator', 'app'));
CREATE INDEX members_unused_candidates ON members (created_at) WHERE joined_via = 'app' AND phone_e164 IS NULL;
-- The purge looks for rows naming each candidate in every member table; these three had no index to look with.
CREATE INDEX deliveries_member ON deliveries (member_id);
CREATE INDEX inbound_sms_member ON inbound_sms (member_id) WHERE member_id IS NOT NULL;
CREATE INDEX identity_key_changes_member ON identity_key_changes (member_id);
