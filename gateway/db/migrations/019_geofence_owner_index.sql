-- A brand's geofences are counted on every new one (GEOFENCE_MAX_PER_BRAND): an index rather than a scan of all.
CREATE INDEX geofences_merchant ON geofences (merchant_id);
