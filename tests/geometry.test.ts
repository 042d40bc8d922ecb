import { computeDestinationPoint, getDistance } from 'geolib';
import { describe, expect, it } from 'vitest';
import { EARTH_RADIUS_M, boundingBox, contains, distanceM, signedDistanceM } from '../campaign-rules/geometry.js';
import { validateGeofence } from '../campaign-rules/index.js';
import type { Geofence, LatLon, Position } from '../campaign-rules/model.js';
import type { ShapeLimits } from '../campaign-rules/index.js';

const center = { lat: 52.52, lon: 13.405 };
// The gateway's defaults, spelled out: with older code a second argument is ignored, and these cases fail.
const limits: ShapeLimits = { maxVerticesPerRing: 1000, maxRings: 10, maxExtentM: 100_000 };
const circle = (radiusM: number, c: LatLon = center): Geofence => ({ kind: 'circle', id: 'c', center: c, radiusM });
const polygon = (...rings: Position[][]): Geofence => ({ kind: 'polygon', id: 'p', rings });
const square = (minLon: number, minLat: number, maxLon: number, maxLat: number): Position[] => [
  [minLon, minLat], [maxLon, minLat], [maxLon, maxLat], [minLon, maxLat], [minLon, minLat],
];
/** The point `m` metres from `from` on `bearing` degrees, on the same sphere as the code under test. */
const go = (from: LatLon, m: number, bearing: number): LatLon => {
  const p = computeDestinationPoint(from, m, bearing, EARTH_RADIUS_M);
  return { lat: p.latitude, lon: p.longitude };
};

// A 0.01° square (about 680 m × 1110 m) with a 0.004° square hole in the middle.
const outer = square(13.4, 52.5, 13.41, 52.51);
const hole = square(13.403, 52.503, 13.407, 52.507);
const holed = polygon(outer, hole);
// A U shape: the notch between the arms (13.403..13.407, above 52.503) is outside.
const u = polygon([
  [13.4, 52.5], [13.41, 52.5], [13.41, 52.51], [13.407, 52.51], [13.407, 52.503], [13.403, 52.503], [13.403, 52.51], [13.4, 52.51], [13.4, 52.5],
]);
// A triangle with sloping edges, whose midpoints are not exactly representable.
const tri = polygon([[13.4, 52.5], [13.417, 52.5], [13.4031, 52.5133], [13.4, 52.5]]);

describe('contains', () => {
  const edge = go(center, 100, 37);
  it.each<[string, Geofence, LatLon, boolean]>([
    ['circle centre', circle(100), center, true],
    ['circle, 99.9 m out', circle(100), go(center, 99.9, 200), true],
    ['circle, 100.1 m out', circle(100), go(center, 100.1, 200), false],
    ['circle, exactly on the edge', circle(distanceM(center, edge)), edge, true],
    ['polygon interior, outside the hole', holed, { lat: 52.501, lon: 13.401 }, true],
    ['polygon, inside the hole', holed, { lat: 52.505, lon: 13.405 }, false],
    ['polygon, on an outer edge', holed, { lat: 52.5, lon: 13.405 }, true],
    ['polygon, on an outer vertex', holed, { lat: 52.51, lon: 13.41 }, true],
    ['polygon, on a hole edge', holed, { lat: 52.503, lon: 13.405 }, true],
    ['polygon, on a hole vertex', holed, { lat: 52.507, lon: 13.403 }, true],
    ['polygon, just below the outer edge', holed, { lat: 52.4999, lon: 13.405 }, false],
    ['polygon, far away', holed, { lat: 48.1, lon: 11.6 }, false],
    ['triangle, midpoint of a sloping edge', tri, { lat: (52.5 + 52.5133) / 2, lon: (13.417 + 13.4031) / 2 }, true],
    ['triangle, just outside a sloping edge', tri, { lat: (52.5 + 52.5133) / 2 + 1e-6, lon: (13.417 + 13.4031) / 2 }, false],
    ['concave, in an arm', u, { lat: 52.508, lon: 13.401 }, true],
    ['concave, in the base', u, { lat: 52.501, lon: 13.405 }, true],
    ['concave, in the notch', u, { lat: 52.508, lon: 13.405 }, false],
    ['concave, on the notch floor', u, { lat: 52.503, lon: 13.405 }, true],
    ['polygon without rings', polygon(), center, false],
  ])('%s', (_name, fence, point, expected) => {
    expect(contains(fence, point)).toBe(expected);
  });
});

describe('signedDistanceM', () => {
  // geolib's getDistance at centimetre accuracy is the reference; ours must agree within 1%.
  const ref = (a: LatLon, b: LatLon) => getDistance(a, b, 0.01);
  it.each<[string, Geofence, LatLon, LatLon, 1 | -1]>([
    ['outside a circle', circle(100), go(center, 150, 80), center, 1],
    ['inside a circle', circle(100), go(center, 30, 80), center, -1],
    ['outside, below an edge', holed, { lat: 52.499, lon: 13.405 }, { lat: 52.5, lon: 13.405 }, 1],
    ['outside, nearest a vertex', holed, { lat: 52.499, lon: 13.399 }, { lat: 52.5, lon: 13.4 }, 1],
    ['inside, near an edge', holed, { lat: 52.5005, lon: 13.405 }, { lat: 52.5, lon: 13.405 }, -1],
    ['inside the hole: outside the fence', holed, { lat: 52.505, lon: 13.405 }, { lat: 52.505, lon: 13.403 }, 1],
    ['in the ring between outer edge and hole', holed, { lat: 52.505, lon: 13.4015 }, { lat: 52.505, lon: 13.4 }, -1],
  ])('%s', (_name, fence, point, nearest, sign) => {
    const expected = fence.kind === 'circle' ? ref(fence.center, point) - fence.radiusM : sign * ref(point, nearest);
    const d = signedDistanceM(fence, point);
    expect(Math.sign(d)).toBe(sign);
    expect(Math.abs(d - expected)).toBeLessThanOrEqual(Math.abs(expected) * 0.01);
  });

  it('is 0 on the boundary (to float rounding) and agrees in sign with contains', () => {
    expect(Math.abs(signedDistanceM(holed, { lat: 52.5, lon: 13.405 }))).toBeLessThan(1e-9);
    expect(Math.abs(signedDistanceM(holed, { lat: 52.503, lon: 13.405 }))).toBeLessThan(1e-9);
    for (let i = 0; i < 200; i++) {
      const p = { lat: 52.499 + (i % 20) * 0.0006, lon: 13.399 + Math.floor(i / 20) * 0.0013 };
      expect(signedDistanceM(holed, p) <= 0).toBe(contains(holed, p));
      expect(signedDistanceM(u, p) <= 0).toBe(contains(u, p));
    }
  });
});

describe('boundingBox', () => {
  it('holds a circle, its longitude span widened by the latitude', () => {
    const c = { lat: 60, lon: 10 };
    const box = boundingBox(circle(10_000, c));
    for (let bearing = 0; bearing < 360; bearing += 5) {
      const p = go(c, 10_000, bearing);
      expect(p.lat).toBeGreaterThanOrEqual(box.minLat);
      expect(p.lat).toBeLessThanOrEqual(box.maxLat);
      expect(p.lon).toBeGreaterThanOrEqual(box.minLon);
      expect(p.lon).toBeLessThanOrEqual(box.maxLon);
    }
    // At 60° a degree of longitude is half a degree of latitude on the ground.
    expect((box.maxLon - box.minLon) / (box.maxLat - box.minLat)).toBeCloseTo(2, 2);
  });

  it('spans all longitudes for a circle around a pole', () => {
    expect(boundingBox(circle(20_000, { lat: 89.9, lon: 0 }))).toMatchObject({ minLon: -180, maxLon: 180, maxLat: 90 });
  });

  it('holds every polygon vertex', () => {
    const box = boundingBox(holed);
    expect(box.minLon).toBeCloseTo(13.4, 8);
    expect(box.maxLon).toBeCloseTo(13.41, 8);
    expect(box.minLat).toBeLessThanOrEqual(52.5);
    expect(box.maxLat).toBeGreaterThanOrEqual(52.51);
  });
});

describe('validateGeofence', () => {
  const hours = { hours: [{ days: ['mon' as const, 'fri' as const], from: '08:00', to: '24:00' }], timeZone: 'Europe/Berlin' };
  const problem = (path: string, text: RegExp) => [{ path, problem: expect.stringMatching(text) }];

  it.each<[string, Geofence]>([
    ['a circle with hours', { ...circle(150), ...hours }],
    ['a polygon with a hole', holed],
    ['a concave polygon', u],
    ['a ring with a repeated position', polygon([[0, 0], [0.1, 0], [0.1, 0], [0.1, 0.1], [0, 0.1], [0, 0]])],
    ['a hole touching the outer ring at its first position', polygon(outer, [[13.4, 52.505], [13.402, 52.504], [13.402, 52.506], [13.4, 52.505]])],
  ])('accepts %s', (_name, fence) => {
    expect(validateGeofence(fence)).toEqual([]);
  });

  it.each<[string, Geofence, { path: string; problem: unknown }[]]>([
    ['a self-intersecting bow-tie', polygon([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]), problem('/rings/0', /crosses itself/)],
    ['a ring that runs back along itself', polygon([[0, 0], [2, 0], [1, 0], [1, 1], [0, 0]]), problem('/rings/0', /crosses itself/)],
    ['a ring touching itself at a corner', polygon([[0, 0], [2, 0], [1, 1], [2, 2], [0, 2], [1, 1], [0, 0]]), problem('/rings/0', /crosses itself/)],
    ['a self-intersecting hole', polygon(outer, [[13.401, 52.501], [13.402, 52.502], [13.402, 52.501], [13.401, 52.502], [13.401, 52.501]]), problem('/rings/1', /crosses itself/)],
    ['an unclosed ring', polygon([[0, 0], [1, 0], [1, 1], [0, 1]]), problem('/rings/0', /not closed/)],
    ['a ring of 3 positions', polygon([[0, 0], [1, 0], [0, 0]]), problem('/rings/0', /at least 4 positions/)],
    ['a ring of 2 distinct corners', polygon([[0, 0], [1, 0], [0, 0], [1, 0], [0, 0]]), problem('/rings/0', /3 distinct corners/)],
    ['no ring', polygon(), problem('/rings', /at least one ring/)],
    ['radius 0', circle(0), problem('/radiusM', /greater than 0/)],
    ['radius 60 km', circle(60_000), problem('/radiusM', /limit of 50000 m/)],
    ['a NaN radius', circle(Number.NaN), problem('/radiusM', /greater than 0/)],
    ['a centre at lat 91', circle(100, { lat: 91, lon: 0 }), problem('/center/lat', /91 is out of range -90\.\.90/)],
    ['a centre at lon -181', circle(100, { lat: 0, lon: -181 }), problem('/center/lon', /-181 is out of range -180\.\.180/)],
    ['a vertex at lat 91', polygon([[0, 0], [1, 0], [1, 91], [0, 1], [0, 0]]), problem('/rings/0/2', /latitude 91 is out of range/)],
    ['a vertex at lon -181', polygon(outer, [[0, 0], [1, 0], [1, 1], [-181, 1], [0, 0]]), problem('/rings/1/3', /longitude -181 is out of range/)],
    ['a hole outside the outer ring', polygon(outer, square(13.42, 52.5, 13.43, 52.51)), problem('/rings/1', /outside the outer ring/)],
    ['hours from "25:00"', { ...circle(100), ...hours, hours: [{ days: ['mon'], from: '25:00', to: '18:00' }] }, problem('/hours/0/from', /"25:00" is not a time of day/)],
    ['hours to "18:60"', { ...circle(100), ...hours, hours: [{ days: ['mon'], from: '08:00', to: '18:60' }] }, problem('/hours/0/to', /"18:60" is not a time of day/)],
    ['hours from "24:00"', { ...circle(100), ...hours, hours: [{ days: ['mon'], from: '24:00', to: '02:00' }] }, problem('/hours/0/from', /"24:00" is not a time of day/)],
    ['hours on no day', { ...circle(100), ...hours, hours: [{ days: [], from: '08:00', to: '18:00' }] }, problem('/hours/0/days', /at least one day/)],
    ['hours naming a day twice', { ...circle(100), ...hours, hours: [{ days: ['mon', 'mon'], from: '08:00', to: '18:00' }] }, problem('/hours/0/days', /twice/)],
    // A cast: the API may send what the type forbids.
    ['hours on an unknown day', { ...circle(100), ...hours, hours: [{ days: ['mon', 'xyz' as 'mon'], from: '08:00', to: '18:00' }] }, problem('/hours/0/days/1', /not a weekday/)],
    ['an unknown time zone', { ...circle(100), ...hours, timeZone: 'Mars/Olympus_Mons' }, problem('/timeZone', /"Mars\/Olympus_Mons" is not an IANA time zone/)],
    ['hours without a time zone', { ...circle(100), hours: hours.hours }, problem('/timeZone', /required when hours are given/)],
  ])('refuses %s', (_name, fence, expected) => {
    expect(validateGeofence(fence)).toEqual(expected);
  });

  it('reports every problem, each at its own path', () => {
    const fence: Geofence = { kind: 'circle', id: 'x', center: { lat: 91, lon: -181 }, radiusM: 0, hours: [{ days: [], from: '25:00', to: '08:00' }] };
    expect(validateGeofence(fence).map((p) => p.path)).toEqual(['/center/lat', '/center/lon', '/radiusM', '/hours/0/days', '/hours/0/from', '/timeZone']);
  });

  it('checks a 3,000-vertex ring quickly', () => {
    const ring: Position[] = Array.from({ length: 3000 }, (_, i) => {
      const a = (2 * Math.PI * i) / 3000;
      return [13.4 + 0.01 * Math.cos(a), 52.5 + 0.01 * Math.sin(a)];
    });
    ring.push(ring[0]!);
    const started = performance.now();
    expect(validateGeofence(polygon(ring), { ...limits, maxVerticesPerRing: 3001 })).toEqual([]);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe('validateGeofence: what one fence may cost every lookup near it', () => {
  const problem = (path: string, text: RegExp) => [{ path, problem: expect.stringMatching(text) }];
  /** A closed ring of n positions round `c` (n - 1 corners, then the first again). */
  const round = (n: number, c: LatLon = center, r = 0.01): Position[] => {
    const corners = Array.from({ length: n - 1 }, (_, i): Position => [c.lon + r * Math.cos((2 * Math.PI * i) / (n - 1)), c.lat + r * Math.sin((2 * Math.PI * i) / (n - 1))]);
    return [...corners, corners[0]!];
  };
  const holes = (n: number) => Array.from({ length: n }, (_, i) => square(13.401 + i * 0.0008, 52.505, 13.4015 + i * 0.0008, 52.5055));

  it.each<[string, Geofence]>([
    ['a ring of exactly the limit of positions', polygon(round(1000))],
    ['the outer ring and 9 holes', polygon(outer, ...holes(9))],
    ['a ring 90 km wide at the equator', polygon(square(0, 0, 0.8, 0.1))],
    ['a ring 1.5° wide at 60° north (83 km)', polygon(square(10, 60, 11.5, 60.1))],
    ['a circle close to the antimeridian, not across it', circle(5_000, { lat: 0, lon: 179.9 })],
    ['a circle round the pole', circle(5_000, { lat: 89.99, lon: 179.99 })],
  ])('accepts %s', (_name, fence) => {
    expect(validateGeofence(fence, limits)).toEqual([]);
  });

  it.each<[string, Geofence, ShapeLimits, { path: string; problem: unknown }[]]>([
    ['a ring of 1,001 positions', polygon(round(1001)), limits, problem('/rings/0', /has 1001 positions, more than the limit of 1000/)],
    ['a hole of 2,200 positions', polygon(outer, round(2200, { lat: 52.505, lon: 13.405 }, 0.001)), limits, problem('/rings/1', /2200 positions/)],
    ['the outer ring and 10 holes', polygon(outer, ...holes(10)), limits, problem('/rings', /has 11 rings, more than the limit of 10/)],
    ['a ring across the antimeridian (a band round the globe on the plane)', polygon([[179, 0], [-179, 0], [-179, 1], [179, 1], [179, 0]]), limits,
      problem('/rings/0', /crosses the antimeridian .* between positions 0 and 1/)],
    ['a hole across the antimeridian', polygon(square(179.2, 0.4, 179.6, 0.7), [[179.3, 0.5], [-179.9, 0.5], [179.3, 0.6], [179.3, 0.5]]), limits,
      problem('/rings/1', /antimeridian/)],
    ['a ring 1.5° wide at the equator (167 km)', polygon(square(0, 0, 1.5, 0.1)), limits, problem('/rings/0', /spans 167 km, more than the limit of 100 km across/)],
    ['a ring 1.5° tall', polygon(square(10, 40, 10.1, 41.5)), limits, problem('/rings/0', /spans 167 km/)],
    ['a circle across the antimeridian', circle(5_000, { lat: 0, lon: 179.99 }), limits, problem('/center/lon', /across the antimeridian/)],
    ['a circle wider than a smaller limit', circle(3_000), { ...limits, maxExtentM: 5_000 }, problem('/radiusM', /3000 m spans 6 km, more than the limit of 5 km across/)],
    ['a ring wider than a smaller limit', polygon(outer), { ...limits, maxExtentM: 1_000 }, problem('/rings/0', /spans 1\.1 km, more than the limit of 1 km/)],
    ['a ring longer than a smaller limit', polygon(u.kind === 'polygon' ? u.rings[0]! : []), { ...limits, maxVerticesPerRing: 8 }, problem('/rings/0', /has 9 positions/)],
  ])('refuses %s', (_name, fence, given, expected) => {
    expect(validateGeofence(fence, given)).toEqual(expected);
  });
});
