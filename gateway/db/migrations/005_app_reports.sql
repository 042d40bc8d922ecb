-- App-reported beacon sightings: the store's iBeacons map to zones; reports are detections with no agent,
-- counted once per member and report id.
CREATE UNIQUE INDEX detections_app_event ON detections (member_id, event_id) WHERE agent_id IS NULL;
CREATE INDEX beacons_store ON beacons (store_id);

-- The hourly retention purge, the offers poll and the stale-stay sweep each find their rows by index.
CREATE INDEX detections_occurred ON detections (occurred_at);
CREATE INDEX member_zone_presence_store ON member_zone_presence (store_id);
CREATE INDEX member_zone_presence_last ON member_zone_presence (last_event_at);
