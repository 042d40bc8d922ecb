import type { Geofence, LatLon } from '../../campaign-rules/index.js';
import { AppError } from '../errors.js';
import type { Database, Sql } from '../db/database.js';
import { isTimeZone } from './members.js';

export interface Store {
  id: string;
  name: string;
  timeZone: string;
  location: LatLon;
  geofences: Geofence[];
  createdAt: string;
}

interface StoreRow {
  id: string;
  name: string;
  time_zone: string;
  lat: number;
  lon: number;
  created_at: Date;
}

interface GeofenceRow {
  id: string;
  store_id: string | null;
  shape: { kind: 'circle'; center: LatLon; radiusM: number };
}

export const toGeofence = (r: GeofenceRow): Geofence => ({ id: r.id, ...r.shape });

export async function createStore(
  db: Database,
  input: { name: string; timeZone: string; location: LatLon; geofence?: { radiusM: number; center?: LatLon } },
): Promise<Store> {
  if (!isTimeZone(input.timeZone)) {
    throw new AppError('VALIDATION_FAILED', `body/timeZone "${input.timeZone}" is not an IANA time zone`);
  }
  return db.transaction(async (tx) => {
    const [store] = await tx.query<StoreRow>(
      'INSERT INTO stores (name, time_zone, lat, lon) VALUES ($1, $2, $3, $4) RETURNING *',
      [input.name, input.timeZone, input.location.lat, input.location.lon],
    );
    if (input.geofence) {
      const shape = { kind: 'circle', center: input.geofence.center ?? input.location, radiusM: input.geofence.radiusM };
      await tx.query('INSERT INTO geofences (store_id, name, shape) VALUES ($1, $2, $3)', [store!.id, `${input.name} area`, shape]);
    }
    return loadStore(tx, store!);
  });
}

async function loadStore(db: Sql, row: StoreRow): Promise<Store> {
  const fences = await db.query<GeofenceRow>('SELECT * FROM geofences WHERE store_id = $1 ORDER BY created_at, id', [row.id]);
  return {
    id: row.id,
    name: row.name,
    timeZone: row.time_zone,
    location: { lat: row.lat, lon: row.lon },
    geofences: fences.map(toGeofence),
    createdAt: row.created_at.toISOString(),
  };
}

export async function getStore(db: Sql, id: string): Promise<Store> {
  const [row] = await db.query<StoreRow>('SELECT * FROM stores WHERE id = $1', [id]);
  if (!row) throw new AppError('STORE_NOT_FOUND', `store ${id} does not exist`);
  return loadStore(db, row);
}
