-- A brand's geofences are counted on every new one (GEOFENCE_MAX_PER_BRAND): an index rather than a scan of all.
CREATE INDEX geofences_merchant ON geofences (merchant_id);

-- Positions of a polygon's rings (0 for a circle), summed per brand against GEOFENCE_MAX_POSITIONS_PER_BRAND:
-- a lookup near a polygon walks every one of them.
ALTER TABLE geofences ADD COLUMN positions integer NOT NULL DEFAULT 0;
UPDATE geofences SET positions = (SELECT coalesce(sum(jsonb_array_length(r)), 0) FROM jsonb_array_elements(shape->'rings') r)
WHERE shape->>'kind' = 'polygon';
