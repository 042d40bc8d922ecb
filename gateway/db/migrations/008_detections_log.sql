-- Detections are the busiest table: every upload appends up to a hundred rows, and the per-row foreign-key
-- checks took as long as the inserts themselves. Every referenced row is checked by ingest itself, under
-- lock, and none is ever deleted: the agent is the one that signed the upload, the store is its own, the
-- zone is one of that store's, and the member's row is locked FOR UPDATE while their consent is read
-- (members are never deleted; erasure anonymises the row and deletes its detections under the same lock).
ALTER TABLE detections
  DROP CONSTRAINT detections_member_id_fkey,
  DROP CONSTRAINT detections_agent_id_fkey,
  DROP CONSTRAINT detections_store_id_fkey,
  DROP CONSTRAINT detections_zone_id_fkey;
