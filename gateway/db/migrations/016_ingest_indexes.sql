-- Every upload appends up to a hundred detections and rewrites as many zone presence rows; each index on
-- them is written that many times per upload, and two of them were never read on that path.
--
-- A detection is found by its event (agent_id, event_id; member_id, event_id for app reports), by member
-- (export, erasure) and by time (the retention purge); nothing reads one by its id. The id stays, for the
-- export, but its random-uuid index, a write to a random page per row, goes.
ALTER TABLE detections DROP CONSTRAINT detections_pkey;
-- The stale-stay sweep runs hourly over a table of the members in a zone now: a scan of it costs nothing
-- beside an index entry for every presence event. Without an index on last_event_at, rewriting a stay
-- changes no indexed column, so the row is updated in place (HOT) and no index is written at all.
DROP INDEX member_zone_presence_last;
