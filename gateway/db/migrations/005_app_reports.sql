-- App-reported beacon sightings: the store's iBeacons map to zones; reports are detections with no agent,
-- counted once per member and report id.
CREATE UNIQUE INDEX detections_app_event ON detections (member_id, event_id) WHERE agent_id IS NULL;
CREATE INDEX beacons_store ON beacons (store_id);
