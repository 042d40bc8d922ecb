// Benchmark: the geofence index against a linear scan, on a country's worth of fences (100,000 in lat 45–55,
// lon 0–15). The baseline calls geolib directly (isPointWithinRadius, isPointInPolygon minus holes), as code without
// the index would; a scan with our own `contains` is shown too, so the index's gain and geolib's overhead are apart.
// geolib parses every coordinate on every call (seconds per point over 100,000 fences), so its full scan is timed on
// a few points only, and its answers are checked on more points after a plain box pre-filter that owes nothing to the
// index or to geometry.ts. Deterministic data (a seeded generator); only the timings vary. Returns the table.
import { isPointInPolygon, isPointWithinRadius } from 'geolib';
import type { Geofence, LatLon, Position } from '../campaign-rules/model.js';
import { buildGeofenceIndex, linearContaining } from '../campaign-rules/spatial-index.js';
import { fmt, seededRandom } from './stats.js';

const FENCES = 100_000;
const LOOKUPS = 100_000;
const LINEAR_POINTS = 200;
// The full geolib scan stops at this budget (after at least one point) if the sample is not done by then.
const GEOLIB_BUDGET_MS = 8_000;
const GEOLIB_CHECK_POINTS = 5_000;
const M_PER_DEG_LAT = 111_320;

function offset(c: LatLon, m: number, angle: number): LatLon {
  return { lat: c.lat + (m * Math.sin(angle)) / M_PER_DEG_LAT, lon: c.lon + (m * Math.cos(angle)) / (M_PER_DEG_LAT * Math.cos((c.lat * Math.PI) / 180)) };
}

/** A closed ring of corners at sorted random angles around `c` (star-shaped, so simple). */
function ring(random: () => number, c: LatLon, radiusM: number, corners: number): Position[] {
  const angles = Array.from({ length: corners }, () => 2 * Math.PI * random()).sort((a, b) => a - b);
  const positions = angles.map((a): Position => {
    const p = offset(c, radiusM * (0.5 + 0.5 * random()), a);
    return [p.lon, p.lat];
  });
  return [...positions, positions[0]!];
}

interface Scene {
  fences: Geofence[];
  /** Centre and size of each fence, to put points near it. */
  anchors: { at: LatLon; radiusM: number }[];
}

function scene(random: () => number): Scene {
  const fences: Geofence[] = [];
  const anchors: Scene['anchors'] = [];
  for (let i = 0; i < FENCES; i++) {
    const at = { lat: 45 + 10 * random(), lon: 15 * random() };
    const radiusM = 20 + 1_980 * random();
    const id = `gf-${String(i).padStart(6, '0')}`;
    if (i % 2 === 0) fences.push({ kind: 'circle', id, center: at, radiusM });
    else {
      const rings = [ring(random, at, radiusM, 6 + Math.floor(random() * 19))];
      // One polygon in ten has a small hole around its centre, inside every corner's reach.
      if (random() < 0.1) rings.push(ring(random, at, radiusM * 0.2, 6));
      fences.push({ kind: 'polygon', id, rings });
    }
    anchors.push({ at, radiusM });
  }
  return { fences, anchors };
}

/** Half the points anywhere in the box, half within 1.5 radii of a random fence's centre. */
function points(random: () => number, anchors: Scene['anchors'], n: number): LatLon[] {
  return Array.from({ length: n }, (_, i) => {
    if (i % 2 === 0) return { lat: 45 + 10 * random(), lon: 15 * random() };
    const a = anchors[Math.floor(random() * anchors.length)]!;
    return offset(a.at, a.radiusM * 1.5 * random(), 2 * Math.PI * random());
  });
}

/** What code without an index would do: ask geolib about every fence. */
function geolibContains(f: Geofence, p: LatLon): boolean {
  if (f.kind === 'circle') return isPointWithinRadius(p, f.center, f.radiusM);
  if (!isPointInPolygon(p, f.rings[0]!)) return false;
  for (let h = 1; h < f.rings.length; h++) if (isPointInPolygon(p, f.rings[h]!)) return false;
  return true;
}

function geolibContaining(fences: readonly Geofence[], p: LatLon): string[] {
  return fences.filter((f) => geolibContains(f, p)).map((f) => f.id).sort();
}

/** Each fence's centre and reach (1.1 radii plus 50 m), packed so a pre-filter reads memory in order. */
interface Reach {
  lat: Float64Array;
  lon: Float64Array;
  m: Float64Array;
}

const reachOf = (anchors: Scene['anchors']): Reach => ({
  lat: Float64Array.from(anchors, (a) => a.at.lat),
  lon: Float64Array.from(anchors, (a) => a.at.lon),
  m: Float64Array.from(anchors, (a) => 1.1 * a.radiusM + 50),
});

/**
 * The same geolib answers, sooner: fences whose centre is beyond their reach in latitude or in longitude are skipped
 * first, as by construction they cannot hold the point. Owes nothing to the index or to geometry.ts.
 */
function geolibContainingBoxed(fences: readonly Geofence[], reach: Reach, p: LatLon): string[] {
  const mPerDegLon = M_PER_DEG_LAT * Math.cos((p.lat * Math.PI) / 180);
  const ids: string[] = [];
  for (let i = 0; i < fences.length; i++) {
    const m = reach.m[i]!;
    if (Math.abs(reach.lat[i]! - p.lat) * M_PER_DEG_LAT > m || Math.abs(reach.lon[i]! - p.lon) * mPerDegLon > m) continue;
    if (geolibContains(fences[i]!, p)) ids.push(fences[i]!.id);
  }
  return ids.sort();
}

const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export async function benchGeofenceIndex(): Promise<string> {
  const started = performance.now();
  const random = seededRandom(20_260_603);
  const { fences, anchors } = scene(random);
  const lookups = points(random, anchors, LOOKUPS);

  let t = performance.now();
  const setupMs = t - started;
  const index = buildGeofenceIndex(fences);
  const buildMs = performance.now() - t;

  const answers: string[][] = [];
  let hits = 0;
  t = performance.now();
  for (const p of lookups) {
    const found = index.containing(p);
    hits += found.length;
    if (answers.length < GEOLIB_CHECK_POINTS) answers.push(found.map((f) => f.id));
  }
  const indexMs = performance.now() - t;
  const indexRate = (LOOKUPS / indexMs) * 1000;

  const sample = lookups.slice(0, LINEAR_POINTS);
  let geolibMismatches = 0;
  let geolibPoints = 0;
  t = performance.now();
  for (const [i, p] of sample.entries()) {
    if (!same(geolibContaining(fences, p), answers[i]!)) geolibMismatches++;
    geolibPoints++;
    if (performance.now() - t > GEOLIB_BUDGET_MS) break;
  }
  const geolibMs = performance.now() - t;
  const geolibRate = (geolibPoints / geolibMs) * 1000;

  let boxedMismatches = 0;
  let boxedHits = 0;
  t = performance.now();
  const reach = reachOf(anchors);
  for (const [i, p] of lookups.slice(0, GEOLIB_CHECK_POINTS).entries()) {
    const expected = geolibContainingBoxed(fences, reach, p);
    boxedHits += expected.length > 0 ? 1 : 0;
    if (!same(expected, answers[i]!)) boxedMismatches++;
  }
  const boxedMs = performance.now() - t;

  let ownMismatches = 0;
  t = performance.now();
  for (const [i, p] of sample.entries()) {
    if (!same(linearContaining(fences, p).map((f) => f.id), answers[i]!)) ownMismatches++;
  }
  const ownMs = performance.now() - t;
  const ownRate = (sample.length / ownMs) * 1000;

  const rows: [string, string][] = [
    ['fences', `${fmt(FENCES, 0)} (half circles 20 m–2 km, half polygons of 6–24 corners, 1 in 10 with a hole), lat 45–55, lon 0–15`],
    ['index build', `${fmt(buildMs, 1)} ms (generating the data: ${fmt(setupMs, 0)} ms)`],
    ['index lookups', `${fmt(indexRate, 0)} /s (${fmt(LOOKUPS, 0)} points in ${fmt(indexMs, 0)} ms, ${fmt(hits / LOOKUPS, 2)} fences per point)`],
    ['linear scan, geolib', `${fmt(geolibRate, 2)} /s (${fmt(geolibPoints, 0)} points in ${fmt(geolibMs, 0)} ms)`],
    ['linear scan, contains()', `${fmt(ownRate, 1)} /s (${fmt(sample.length, 0)} points in ${fmt(ownMs, 0)} ms)`],
    ['index / linear geolib', `${fmt(indexRate / geolibRate, 0)}x`],
    ['index / linear contains()', `${fmt(indexRate / ownRate, 0)}x`],
    ['mismatches vs geolib scan', `${geolibMismatches} of ${geolibPoints} points`],
    ['mismatches vs geolib, boxed', `${boxedMismatches} of ${GEOLIB_CHECK_POINTS} points (${boxedHits} of them in some fence; ${fmt(boxedMs, 0)} ms)`],
    ['mismatches vs linearContaining', `${ownMismatches} of ${sample.length} points`],
    ['bench wall time', `${fmt((performance.now() - started) / 1000, 1)} s`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return ['geofence index (flatbush + exact test) vs linear scan', ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join('\n');
}
