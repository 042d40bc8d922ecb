import type { LatLon } from '../../campaign-rules/index.js';
import { AppError, invalid } from '../errors.js';
import type { Database, Sql } from '../db/database.js';
import type { GeofenceLimits } from '../config.js';
import { insertGeofence, storeGeofences, type GeofenceView } from './geofences.js';
import { isTimeZone } from './members.js';
import { HOUSE_BRAND_ID } from './merchants.js';

export interface Store {
  id: string;
  merchantId: string;
  name: string;
  timeZone: string;
  location: LatLon;
  geofences: GeofenceView[];
  createdAt: string;
}

interface StoreRow {
  id: string;
  merchant_id: string;
  name: string;
  time_zone: string;
  lat: number;
  lon: number;
  created_at: Date;
}

export async function createStore(
  db: Database,
  input: { name: string; timeZone: string; location: LatLon; geofence?: { radiusM: number; center?: LatLon }; merchantId?: string | null },
  limits: GeofenceLimits,
): Promise<Store> {
  if (!isTimeZone(input.timeZone)) {
    throw invalid({ field: 'body/timeZone', problem: `"${input.timeZone}" is not an IANA time zone` });
  }
  return db.transaction(async (tx) => {
    const merchantId = input.merchantId ?? HOUSE_BRAND_ID;
    const [merchant] = await tx.query('SELECT 1 FROM merchants WHERE id = $1', [merchantId]);
    if (!merchant) throw new AppError('MERCHANT_NOT_FOUND', `merchant ${merchantId} does not exist`);
    const [store] = await tx.query<StoreRow>(
      'INSERT INTO stores (name, time_zone, lat, lon, merchant_id) VALUES ($1, $2, $3, $4, $5) RETURNING *',
      [input.name, input.timeZone, input.location.lat, input.location.lon, merchantId],
    );
    if (input.geofence) {
      const shape = { kind: 'circle' as const, center: input.geofence.center ?? input.location, radiusM: input.geofence.radiusM };
      await insertGeofence(tx, { name: `${input.name} area`, storeId: store!.id, shape }, limits, null, { shape: 'body/geofence', rest: 'body/geofence' });
    }
    return loadStore(tx, store!);
  });
}

async function loadStore(db: Sql, row: StoreRow): Promise<Store> {
  return {
    id: row.id,
    merchantId: row.merchant_id,
    name: row.name,
    timeZone: row.time_zone,
    location: { lat: row.lat, lon: row.lon },
    geofences: await storeGeofences(db, row.id),
    createdAt: row.created_at.toISOString(),
  };
}

export async function getStore(db: Sql, id: string): Promise<Store> {
  const [row] = await db.query<StoreRow>('SELECT * FROM stores WHERE id = $1', [id]);
  if (!row) throw new AppError('STORE_NOT_FOUND', `store ${id} does not exist`);
  return loadStore(db, row);
}
