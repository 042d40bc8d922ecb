// Noisy tenants: one brand's geofences may not cost every other brand's lookups. Shapes past the limits are
// refused at their field; geofences past a store's or a brand's count get 409 GEOFENCE_LIMIT, also when requests
// race for the last slot (on real PostgreSQL, many connections at once).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../gateway/config.js';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, isolatedConfig, type Isolated } from './support/backends.js';

type Position = [number, number];
const square = (lon: number, lat: number, d = 0.001): Position[] => [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]];
const micro = (x: number) => Math.round(x * 1e6) / 1e6; // short enough for thousands of positions in the 64 kB body limit
/** A closed ring of n positions round (lon, lat). */
const round = (n: number, lon: number, lat: number, r = 0.005): Position[] => {
  const at = (i: number): Position => [micro(lon + r * Math.cos((2 * Math.PI * i) / (n - 1))), micro(lat + r * Math.sin((2 * Math.PI * i) / (n - 1)))];
  const corners = Array.from({ length: n - 1 }, (_, i) => at(i));
  return [...corners, corners[0]!];
};

const PER_STORE = 3;
const PER_BRAND = 5;
const POSITIONS_PER_BRAND = 2500;

describe.each(backends)('geofence limits on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: Gateway;
  let seq = 0;

  const call = async (method: 'GET' | 'POST', url: string, payload?: object) => {
    const res = await gw.app.inject({ method, url, payload });
    return { status: res.statusCode, body: res.json() };
  };
  const ok = async (method: 'GET' | 'POST', url: string, payload?: object) => {
    const res = await call(method, url, payload);
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const brand = async () => (await ok('POST', '/merchants', { kind: 'brand', name: `Brand ${++seq}` })).id as string;
  /** A store of the brand, with its circle (one geofence), far from the others. */
  const store = async (merchantId: string) =>
    (await ok('POST', '/stores', { merchantId, name: `Store ${++seq}`, timeZone: 'Europe/Paris', location: { lat: 45, lon: seq * 0.1 }, geofence: { radiusM: 100 } })).id as string;
  const fence = (storeId: string, coordinates: Position[][] = [square(seq * 0.1, 45)]) =>
    call('POST', '/geofences', { name: `fence ${++seq}`, storeId, shape: { kind: 'polygon', coordinates } });
  const count = async (column: 'store_id' | 'merchant_id', id: string) =>
    (await gw.deps.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM geofences WHERE ${column} = $1`, [id]))[0]!.n;

  beforeAll(async () => {
    iso = isolatedConfig(backend, {
      GEOFENCE_MAX_PER_STORE: String(PER_STORE), GEOFENCE_MAX_PER_BRAND: String(PER_BRAND), GEOFENCE_MAX_POSITIONS_PER_BRAND: String(POSITIONS_PER_BRAND),
    });
    gw = await startGateway(iso.config);
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  it('refuses shapes past the limits at their field, storing nothing', async () => {
    const storeId = await store(await brand());
    const before = await count('store_id', storeId);
    const cases: Array<[string, string, object, string, RegExp]> = [
      ['a ring of 1,001 positions', '/geofences', { name: 'g', storeId, shape: { kind: 'polygon', coordinates: [round(1001, 2, 45)] } },
        'body/shape/coordinates/0', /1001 positions, more than the limit of 1000/],
      ['a hole of 2,200 positions', '/geofences', { name: 'g', storeId, shape: { kind: 'polygon', coordinates: [square(2, 45, 0.1), round(2200, 2.05, 45.05)] } },
        'body/shape/coordinates/1', /2200 positions/],
      ['11 rings', '/geofences', { name: 'g', storeId, shape: { kind: 'polygon', coordinates: [square(2, 45, 0.1), ...Array.from({ length: 10 }, (_, i) => square(2.001 + i * 0.002, 45.05))] } },
        'body/shape/coordinates', /11 rings, more than the limit of 10/],
      ['a band round the globe', '/geofences', { name: 'g', shape: { kind: 'polygon', coordinates: [[[179, 0], [-179, 0], [-179, 1], [179, 1], [179, 0]]] } },
        'body/shape/coordinates/0', /crosses the antimeridian/],
      ['a polygon 2° wide', '/geofences', { name: 'g', shape: { kind: 'polygon', coordinates: [[[2, 45], [4, 45], [4, 45.1], [2, 45]]] } },
        'body/shape/coordinates/0', /spans 157\.4 km, more than the limit of 100 km across/],
      ['a circle across the antimeridian', '/geofences', { name: 'g', shape: { kind: 'circle', center: { lat: -16.5, lon: 179.99 }, radiusM: 5000 } },
        'body/shape/center/lon', /antimeridian/],
      ["a store's circle across the antimeridian", '/stores', { name: 'Fiji', timeZone: 'Pacific/Fiji', location: { lat: -16.5, lon: -179.99 }, geofence: { radiusM: 5000 } },
        'body/geofence/center/lon', /antimeridian/],
    ];
    for (const [name, url, payload, field, problem] of cases) {
      const res = await call('POST', url, payload);
      const issue = res.body.error?.details?.issues?.[0];
      expect({ name, status: res.status, code: res.body.error?.code, field: issue?.field }).toEqual({ name, status: 400, code: 'VALIDATION_FAILED', field });
      expect(issue.problem).toMatch(problem);
    }
    expect(await count('store_id', storeId)).toBe(before);
    // At the limits exactly: accepted.
    expect((await fence(storeId, [round(1000, 2, 45)])).status).toBe(201);
  });

  it("caps a store's and a brand's geofences with 409 GEOFENCE_LIMIT", async () => {
    const merchantId = await brand();
    const first = await store(merchantId); // its circle: 1
    for (let i = 1; i < PER_STORE; i++) expect((await fence(first)).status).toBe(201);
    const full = await fence(first);
    expect(full).toMatchObject({ status: 409, body: { error: { code: 'GEOFENCE_LIMIT', details: { scope: 'store', limit: PER_STORE } } } });

    const second = await store(merchantId); // 4 of the brand's 5
    expect((await fence(second)).status).toBe(201);
    expect(await fence(second)).toMatchObject({ status: 409, body: { error: { code: 'GEOFENCE_LIMIT', details: { scope: 'brand', limit: PER_BRAND } } } });
    const third = await call('POST', '/stores', { merchantId, name: 'One too many', timeZone: 'Europe/Paris', location: { lat: 45, lon: 9 }, geofence: { radiusM: 100 } });
    expect(third).toMatchObject({ status: 409, body: { error: { code: 'GEOFENCE_LIMIT' } } });
    expect(await count('merchant_id', merchantId)).toBe(PER_BRAND);
    expect((await gw.deps.db.query('SELECT 1 FROM stores WHERE name = $1', ['One too many'])).length).toBe(0); // the store went with its fence

    // Another brand is not affected.
    expect((await fence(await store(await brand()))).status).toBe(201);
  });

  it("caps the positions of a brand's polygons together, circles counting none", async () => {
    const merchantId = await brand();
    const a = await store(merchantId);
    const b = await store(merchantId);
    expect((await fence(a, [round(1000, 3, 45)])).status).toBe(201);
    expect((await fence(a, [round(1000, 3.1, 45)])).status).toBe(201);
    const over = await fence(b, [round(501, 3.2, 45)]);
    expect(over).toMatchObject({ status: 409, body: { error: { code: 'GEOFENCE_LIMIT', details: { scope: 'brand_positions', limit: POSITIONS_PER_BRAND } } } });
    expect((await fence(b, [round(500, 3.2, 45)])).status).toBe(201); // exactly the limit
    const [row] = await gw.deps.db.query<{ n: number }>('SELECT sum(positions)::int AS n FROM geofences WHERE merchant_id = $1', [merchantId]);
    expect(row!.n).toBe(POSITIONS_PER_BRAND);
  });

  it('lets exactly one of many requests racing for the last slot have it', async () => {
    const merchantId = await brand();
    const a = await store(merchantId);
    const b = await store(merchantId);
    const c = await store(merchantId);
    expect((await fence(a)).status).toBe(201); // the brand has 4 of 5; each store has room
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => fence([a, b, c][i % 3]!)));
    expect(answers.map((r) => r.status).sort()).toEqual([201, ...Array(11).fill(409)]);
    expect(await count('merchant_id', merchantId)).toBe(PER_BRAND);

    // The store's own limit, raced the same way.
    const d = await store(await brand());
    expect((await fence(d)).status).toBe(201); // 2 of 3
    const racing = await Promise.all(Array.from({ length: 12 }, () => fence(d)));
    expect(racing.map((r) => r.status).sort()).toEqual([201, ...Array(11).fill(409)]);
    expect(await count('store_id', d)).toBe(PER_STORE);
  });
});

describe('geofence limit settings', () => {
  it('are read from the environment and checked at boot', () => {
    expect(loadConfig({}).geofenceLimits).toEqual({ maxVerticesPerRing: 1000, maxRings: 10, maxExtentM: 100_000, perStore: 20, perBrand: 1000, positionsPerBrand: 50_000 });
    expect(loadConfig({ GEOFENCE_MAX_VERTICES: '200', GEOFENCE_MAX_EXTENT_KM: '5', GEOFENCE_MAX_PER_BRAND: '50' }).geofenceLimits)
      .toMatchObject({ maxVerticesPerRing: 200, maxExtentM: 5000, perBrand: 50 });
    expect(() => loadConfig({ GEOFENCE_MAX_VERTICES: '20000' })).toThrow(ConfigError);
    expect(() => loadConfig({ GEOFENCE_MAX_RINGS: '0' })).toThrow(/GEOFENCE_MAX_RINGS must be between 1 and 100/);
  });
});
