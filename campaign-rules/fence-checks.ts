// Validation of a geofence: what a schema cannot see. Every problem names its path relative to the fence.
// Besides soundness (closed, simple rings, holes inside), it keeps one tenant's fences from costing every other
// tenant's lookups: a ring's corners, a polygon's rings and a fence's extent are capped, and a ring crossing the
// antimeridian is refused (read on the plane of degrees, [[179,0],[-179,0],…] would be a band round the globe).
import { M_PER_DEG, boxAround, ringSide } from './geometry.js';
import { WEEKDAYS, type Geofence, type Position, type Weekday } from './model.js';
import { isTimeZone } from './schedule.js';
import { validateWindows, type Problem } from './validate.js';

export type GeofenceProblem = Problem;

/** Larger circles are mistakes (a radius typed in km, or metres for a whole city), not geofences. */
export const MAX_RADIUS_M = 50_000;

/** How big one fence may be. Each lookup near a fence walks its edges, so these bound what one fence costs. */
export interface ShapeLimits {
  /** Positions in one ring, the closing repeat included. */
  maxVerticesPerRing: number;
  /** The outer ring and its holes. */
  maxRings: number;
  /** The widest a fence may be, north to south or east to west (a circle: its diameter). */
  maxExtentM: number;
}

export const DEFAULT_SHAPE_LIMITS: ShapeLimits = { maxVerticesPerRing: 1000, maxRings: 10, maxExtentM: 100_000 };

const RAD = Math.PI / 180;
const km = (m: number) => `${Math.round(m / 100) / 10} km`;

function coordinateProblem(value: unknown, name: 'latitude' | 'longitude'): string | null {
  const limit = name === 'latitude' ? 90 : 180;
  if (typeof value !== 'number' || !Number.isFinite(value)) return `${name} must be a finite number`;
  if (value < -limit || value > limit) return `${name} ${value} is out of range -${limit}..${limit}`;
  return null;
}

const orient = (a: Position, b: Position, c: Position) => (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
const sign = (x: number) => (x > 0 ? 1 : x < 0 ? -1 : 0);
/** c, known collinear with a-b, lies within the segment a-b. */
const within = (a: Position, b: Position, c: Position) =>
  Math.min(a[0], b[0]) <= c[0] && c[0] <= Math.max(a[0], b[0]) && Math.min(a[1], b[1]) <= c[1] && c[1] <= Math.max(a[1], b[1]);

/** The closed segments p-q and r-s cross, touch or overlap. */
function segmentsMeet(p: Position, q: Position, r: Position, s: Position): boolean {
  const d1 = sign(orient(r, s, p)), d2 = sign(orient(r, s, q)), d3 = sign(orient(p, q, r)), d4 = sign(orient(p, q, s));
  if (d1 * d2 < 0 && d3 * d4 < 0) return true;
  return (d1 === 0 && within(r, s, p)) || (d2 === 0 && within(r, s, q)) || (d3 === 0 && within(p, q, r)) || (d4 === 0 && within(p, q, s));
}

/** Start positions (as given) of two edges of a closed ring that meet where they should not, or null. O(n²). */
function selfIntersection(ring: readonly Position[]): [number, number] | null {
  // Repeated consecutive positions are harmless; dropping them keeps "adjacent edges" meaningful.
  const pts: Position[] = [];
  const at: number[] = [];
  ring.forEach((p, i) => {
    const last = pts[pts.length - 1];
    if (!last || last[0] !== p[0] || last[1] !== p[1]) {
      pts.push(p);
      at.push(i);
    }
  });
  const m = pts.length - 1; // edges: pts[k] -> pts[k + 1]; pts[m] repeats pts[0]
  for (let k = 0; k < m; k++) {
    const p = pts[k]!, q = pts[k + 1]!;
    for (let l = k + 1; l < m; l++) {
      const r = pts[l]!, s = pts[l + 1]!;
      // Neighbouring edges share a corner, which is fine; they are wrong only when one runs back along the other.
      const meet = l === k + 1 ? foldsBack(p, q, s) : k === 0 && l === m - 1 ? foldsBack(q, p, r) : segmentsMeet(p, q, r, s);
      if (meet) return [at[k]!, at[l]!];
    }
  }
  return null;
}

/** Edges a-b and b-c share b; they overlap when c lies back along b-a. */
function foldsBack(a: Position, b: Position, c: Position): boolean {
  return orient(a, b, c) === 0 && (a[0] - b[0]) * (c[0] - b[0]) + (a[1] - b[1]) * (c[1] - b[1]) > 0;
}

/**
 * The first edge that spans more than 180° of longitude, or -1. As RFC 7946 reads GeoJSON, such an edge is the
 * short way across the antimeridian; on our plane it would run the long way round, through the other side of the world.
 */
function antimeridianEdge(ring: readonly Position[]): number {
  for (let j = 1; j < ring.length; j++) if (Math.abs(ring[j]![0] - ring[j - 1]![0]) > 180) return j - 1;
  return -1;
}

/** The widest a ring is, in metres: north to south, or east to west where its box is widest (nearest the equator). */
function ringExtentM(ring: readonly Position[]): number {
  let minLat = Infinity, minLon = Infinity, maxLat = -Infinity, maxLon = -Infinity;
  for (const p of ring) {
    if (p[0] < minLon) minLon = p[0];
    if (p[0] > maxLon) maxLon = p[0];
    if (p[1] < minLat) minLat = p[1];
    if (p[1] > maxLat) maxLat = p[1];
  }
  const widestLat = minLat <= 0 && maxLat >= 0 ? 0 : Math.min(Math.abs(minLat), Math.abs(maxLat));
  return Math.max((maxLat - minLat) * M_PER_DEG, (maxLon - minLon) * M_PER_DEG * Math.cos(widestLat * RAD));
}

function ringProblems(ring: readonly Position[], path: string, limits: ShapeLimits): { problems: Problem[]; sound: boolean } {
  const refuse = (problem: string, at = path) => ({ problems: [{ path: at, problem }], sound: false });
  if (!Array.isArray(ring) || ring.length < 4) return refuse('must have at least 4 positions (3 corners, then the first repeated to close it)');
  // Before anything that walks the ring: the crossing test below is quadratic in its length.
  if (ring.length > limits.maxVerticesPerRing) return refuse(`has ${ring.length} positions, more than the limit of ${limits.maxVerticesPerRing}`);
  const problems: Problem[] = [];
  ring.forEach((p, j) => {
    const bad = !Array.isArray(p) ? 'must be a [longitude, latitude] pair' : (coordinateProblem(p[0], 'longitude') ?? coordinateProblem(p[1], 'latitude'));
    if (bad) problems.push({ path: `${path}/${j}`, problem: bad });
  });
  if (problems.length > 0) return { problems, sound: false };
  const first = ring[0]!, last = ring[ring.length - 1]!;
  if (first[0] !== last[0] || first[1] !== last[1]) return refuse('is not closed: the last position must repeat the first');
  if (new Set(ring.map((p) => `${p[0]},${p[1]}`)).size < 3) return refuse('must have at least 3 distinct corners');
  const edge = antimeridianEdge(ring);
  if (edge >= 0) {
    return refuse(`crosses the antimeridian (±180° longitude) between positions ${edge} and ${edge + 1}, which is not supported: `
      + 'draw one polygon on each side of it');
  }
  const crossing = selfIntersection(ring);
  if (crossing) return refuse(`crosses itself: the edge from position ${crossing[0]} meets the edge from position ${crossing[1]}`);
  const extent = ringExtentM(ring);
  if (extent > limits.maxExtentM) return refuse(`spans ${km(extent)}, more than the limit of ${km(limits.maxExtentM)} across`);
  return { problems: [], sound: true };
}

function circleProblems(fence: Extract<Geofence, { kind: 'circle' }>, limits: ShapeLimits): Problem[] {
  const problems: Problem[] = [];
  const lat = coordinateProblem(fence.center?.lat, 'latitude');
  const lon = coordinateProblem(fence.center?.lon, 'longitude');
  if (lat) problems.push({ path: '/center/lat', problem: lat });
  if (lon) problems.push({ path: '/center/lon', problem: lon });
  const r = fence.radiusM;
  if (typeof r !== 'number' || !Number.isFinite(r) || r <= 0) problems.push({ path: '/radiusM', problem: 'must be a number of metres greater than 0' });
  else if (r > MAX_RADIUS_M) problems.push({ path: '/radiusM', problem: `${r} m is larger than the limit of ${MAX_RADIUS_M} m` });
  else if (2 * r > limits.maxExtentM) problems.push({ path: '/radiusM', problem: `${r} m spans ${km(2 * r)}, more than the limit of ${km(limits.maxExtentM)} across` });
  else if (!lat && !lon) {
    // A box clamped at ±180° but not round a pole: the circle reaches over the antimeridian, where lookups miss it.
    const box = boxAround(fence.center, r);
    const allLongitudes = box.minLon === -180 && box.maxLon === 180;
    if (!allLongitudes && (box.minLon <= -180 || box.maxLon >= 180)) {
      problems.push({ path: '/center/lon', problem: 'puts the circle across the antimeridian (±180° longitude), which is not supported' });
    }
  }
  return problems;
}

function shapeProblems(fence: Geofence, limits: ShapeLimits): Problem[] {
  switch (fence.kind) {
    case 'circle':
      return circleProblems(fence, limits);
    case 'polygon': {
      if (!Array.isArray(fence.rings) || fence.rings.length === 0) return [{ path: '/rings', problem: 'must have at least one ring (the outer boundary)' }];
      if (fence.rings.length > limits.maxRings) {
        return [{ path: '/rings', problem: `has ${fence.rings.length} rings, more than the limit of ${limits.maxRings} (the outer boundary and its holes)` }];
      }
      const checked = fence.rings.map((ring, i) => ringProblems(ring, `/rings/${i}`, limits));
      const problems = checked.flatMap((c) => c.problems);
      const outer = fence.rings[0]!;
      if (checked[0]!.sound) {
        fence.rings.forEach((hole, i) => {
          // A hole must lie inside the outer ring; its first position stands for it (a hole crossing the outer ring
          // is caught by neither test, and is rare enough in drawn shapes to accept).
          if (i > 0 && checked[i]!.sound && ringSide(outer, hole[0]![0], hole[0]![1]) < 0) {
            problems.push({ path: `/rings/${i}`, problem: 'is a hole outside the outer ring (rings/0): its first position is not inside it' });
          }
        });
      }
      return problems;
    }
    default:
      throw new Error(`unknown geofence kind: ${JSON.stringify(fence satisfies never)}`);
  }
}

/**
 * Everything wrong with the fence, each at its path (`/radiusM`, `/rings/1/3`, `/hours/0/from`); empty when sound.
 * `limits` default to DEFAULT_SHAPE_LIMITS; the gateway passes its configured ones.
 */
export function validateGeofence(fence: Geofence, limits: ShapeLimits = DEFAULT_SHAPE_LIMITS): GeofenceProblem[] {
  const problems = shapeProblems(fence, limits);
  if (fence.hours !== undefined) {
    problems.push(...validateWindows(fence.hours, '/hours'));
    fence.hours.forEach((w, i) =>
      w.days.forEach((d, j) => {
        if (!WEEKDAYS.includes(d as Weekday)) problems.push({ path: `/hours/${i}/days/${j}`, problem: `"${d}" is not a weekday (${WEEKDAYS.join(', ')})` });
      }),
    );
    if (fence.timeZone === undefined) problems.push({ path: '/timeZone', problem: 'is required when hours are given' });
  }
  if (fence.timeZone !== undefined && !isTimeZone(fence.timeZone)) {
    problems.push({ path: '/timeZone', problem: `"${fence.timeZone}" is not an IANA time zone` });
  }
  return problems;
}
