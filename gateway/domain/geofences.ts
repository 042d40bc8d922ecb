// Geofences (circles and polygons, per store or free-standing, with opening hours) and beacon zones.
import { HOUSE_BRAND_ID } from './merchants.js';
import { validateGeofence, type Geofence, type LatLon, type Position, type ShapeLimits, type WeeklyWindow } from '../../campaign-rules/index.js';
import type { GeofenceLimits } from '../config.js';
import { AppError, invalid } from '../errors.js';
import type { Database, Sql } from '../db/database.js';

export type ShapeInput = { kind: 'circle'; center: LatLon; radiusM: number } | { kind: 'polygon'; coordinates: Position[][] };

export interface GeofenceInput {
  name: string;
  storeId?: string;
  shape: ShapeInput;
  hours?: WeeklyWindow[];
  timeZone?: string;
}

export interface GeofenceView {
  id: string;
  name: string;
  storeId: string | null;
  shape: ShapeInput;
  hours: WeeklyWindow[] | null;
  timeZone: string | null;
  createdAt: string;
}

type StoredShape = { kind: 'circle'; center: LatLon; radiusM: number } | { kind: 'polygon'; rings: Position[][] };

export interface GeofenceRow {
  id: string;
  name: string;
  store_id: string | null;
  shape: StoredShape;
  hours: WeeklyWindow[] | null;
  time_zone: string | null;
  created_at: Date;
}

/** The engine's shape of a stored geofence. */
export function toEngineGeofence(r: GeofenceRow): Geofence {
  const base = { id: r.id, ...(r.hours ? { hours: r.hours, timeZone: r.time_zone ?? 'UTC' } : {}) };
  return r.shape.kind === 'circle'
    ? { ...base, kind: 'circle', center: r.shape.center, radiusM: r.shape.radiusM }
    : { ...base, kind: 'polygon', rings: r.shape.rings };
}

export const toGeofenceView = (r: GeofenceRow): GeofenceView => ({
  id: r.id,
  name: r.name,
  storeId: r.store_id,
  shape: r.shape.kind === 'circle' ? r.shape : { kind: 'polygon', coordinates: r.shape.rings },
  hours: r.hours,
  timeZone: r.time_zone,
  createdAt: r.created_at.toISOString(),
});

/** Where a fence's fields sit in the request: `shape` for center, radiusM and coordinates; `rest` for hours and timeZone. */
export interface FieldPaths {
  shape: string;
  rest: string;
}

/** Refuses a bad geofence with every problem, each at its exact path in the request. */
function check(fence: Geofence, limits: ShapeLimits, at: FieldPaths) {
  const problems = validateGeofence(fence, limits).map((p) => ({
    field: /^\/(rings|center|radiusM)/.test(p.path) ? `${at.shape}${p.path.replace(/^\/rings/, '/coordinates')}` : `${at.rest}${p.path}`,
    problem: p.problem,
  }));
  if (problems.length > 0) throw invalid(...problems);
}

/**
 * `merchantId`: who owns a geofence drawn without a store (the house brand unless given); a store's is its merchant's.
 * Runs in its own transaction; inside one already (a store made with its fence), use insertGeofence.
 */
export function createGeofence(
  db: Database, input: GeofenceInput, limits: GeofenceLimits, merchantId: string | null = null, at: FieldPaths = { shape: 'body/shape', rest: 'body' },
): Promise<GeofenceView> {
  return db.transaction((tx) => insertGeofence(tx, input, limits, merchantId, at));
}

export async function insertGeofence(
  tx: Sql, input: GeofenceInput, limits: GeofenceLimits, merchantId: string | null, at: FieldPaths,
): Promise<GeofenceView> {
  let timeZone = input.timeZone ?? null;
  let owner = merchantId ?? HOUSE_BRAND_ID;
  if (input.storeId) {
    const [store] = await tx.query<{ time_zone: string; merchant_id: string }>('SELECT time_zone, merchant_id FROM stores WHERE id = $1', [input.storeId]);
    if (!store) throw new AppError('STORE_NOT_FOUND', `store ${input.storeId} does not exist`);
    timeZone ??= store.time_zone;
    owner = store.merchant_id;
  }
  if (input.hours && !timeZone) {
    throw invalid({ field: `${at.rest}/timeZone`, problem: 'is required with hours for a geofence without a store' });
  }
  const shape: StoredShape =
    input.shape.kind === 'circle' ? input.shape : { kind: 'polygon', rings: input.shape.coordinates };
  const engine = toEngineGeofence({
    id: 'new', name: input.name, store_id: input.storeId ?? null, shape, hours: input.hours ?? null, time_zone: timeZone, created_at: new Date(),
  });
  check(engine, limits, at);
  const positions = shape.kind === 'polygon' ? shape.rings.reduce((n, ring) => n + ring.length, 0) : 0;
  await checkRoom(tx, owner, input.storeId ?? null, positions, limits);
  const [row] = await tx.query<GeofenceRow>(
    `INSERT INTO geofences (store_id, name, shape, hours, time_zone, merchant_id, positions) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
    [input.storeId ?? null, input.name, shape, input.hours ? JSON.stringify(input.hours) : null, input.hours ? timeZone : null, owner, positions],
  );
  return toGeofenceView(row!);
}

/**
 * Refuses a fence past its store's or its brand's limit. The brand's row is locked first, so that requests racing
 * for the last slot count one after the other (a store's fences are its brand's too). NO KEY UPDATE: rows that
 * merely refer to the brand (stores, campaigns) are written meanwhile. The count is a statement of its own, after
 * the lock: in READ COMMITTED it then sees what the request that held the lock committed.
 */
async function checkRoom(tx: Sql, owner: string, storeId: string | null, positions: number, limits: GeofenceLimits): Promise<void> {
  await tx.query('SELECT 1 FROM merchants WHERE id = $1 FOR NO KEY UPDATE', [owner]);
  const [n] = await tx.query<{ brand: number; store: number; positions: number }>(COUNT_FENCES, [owner, storeId]);
  if (storeId && n!.store >= limits.perStore) {
    throw new AppError('GEOFENCE_LIMIT', `store ${storeId} already has ${n!.store} geofences, the limit`, { scope: 'store', limit: limits.perStore });
  }
  if (n!.brand >= limits.perBrand) {
    throw new AppError('GEOFENCE_LIMIT', `the brand already has ${n!.brand} geofences, the limit`, { scope: 'brand', limit: limits.perBrand });
  }
  if (n!.positions + positions > limits.positionsPerBrand) {
    throw new AppError('GEOFENCE_LIMIT', `the brand's polygons have ${n!.positions} positions; ${positions} more would pass the limit of ${limits.positionsPerBrand}`,
      { scope: 'brand_positions', limit: limits.positionsPerBrand });
  }
}

/** $1 the brand, $2 the store or null: how many geofences each has, and the positions of the brand's polygons. */
const COUNT_FENCES = `SELECT count(*)::int AS brand, count(*) FILTER (WHERE store_id = $2)::int AS store, coalesce(sum(positions), 0)::int AS positions
  FROM geofences WHERE merchant_id = $1`;

export async function getGeofence(db: Sql, id: string): Promise<GeofenceView> {
  const [row] = await db.query<GeofenceRow>('SELECT * FROM geofences WHERE id = $1', [id]);
  if (!row) throw new AppError('GEOFENCE_NOT_FOUND', `geofence ${id} does not exist`);
  return toGeofenceView(row);
}

export async function storeGeofences(db: Sql, storeId: string): Promise<GeofenceView[]> {
  const rows = await db.query<GeofenceRow>('SELECT * FROM geofences WHERE store_id = $1 ORDER BY created_at, id', [storeId]);
  return rows.map(toGeofenceView);
}

export interface Zone {
  id: string;
  storeId: string;
  name: string;
}

export async function createZone(db: Sql, storeId: string, name: string): Promise<Zone> {
  const [store] = await db.query('SELECT 1 FROM stores WHERE id = $1', [storeId]);
  if (!store) throw new AppError('STORE_NOT_FOUND', `store ${storeId} does not exist`);
  const [row] = await db.query<{ id: string }>(
    'INSERT INTO zones (store_id, name) VALUES ($1, $2) ON CONFLICT (store_id, name) DO NOTHING RETURNING id',
    [storeId, name],
  );
  if (!row) throw new AppError('ZONE_NAME_TAKEN', `store ${storeId} already has a zone named "${name}"`);
  return { id: row.id, storeId, name };
}

export async function storeZones(db: Sql, storeId: string): Promise<Zone[]> {
  const rows = await db.query<{ id: string; store_id: string; name: string }>('SELECT * FROM zones WHERE store_id = $1 ORDER BY name', [storeId]);
  return rows.map((r) => ({ id: r.id, storeId: r.store_id, name: r.name }));
}
