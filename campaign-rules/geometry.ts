// Geometry of geofences: is a point inside, how far is it from the edge, which box holds the fence.
// Circles are measured on geolib's sphere (its earth radius, haversine without geolib's rounding to whole metres,
// which would blur the edge). Polygons are read on the plane of longitude/latitude degrees, exactly as geolib's
// isPointInPolygon reads them; at the size of a store or a district that is indistinguishable from the sphere.
// Shapes crossing the antimeridian (±180°) are not supported (none of the markets we serve is there): fence-checks.ts
// refuses them, and every ring wider than a configurable extent.
import type { Geofence, LatLon, Position } from './model.js';

/** geolib's earth radius, so our distances agree with its getDistance. */
export const EARTH_RADIUS_M = 6_378_137;
const RAD = Math.PI / 180;
/** Metres per degree of latitude (and of longitude at the equator) on that sphere. */
export const M_PER_DEG = EARTH_RADIUS_M * RAD;

/**
 * A point this close to a polygon's edge (in degrees, about 0.1 mm) is on the boundary, and the boundary counts as
 * inside. Without a tolerance, a point put exactly on a sloping edge would fall either way with float rounding.
 */
export const EDGE_TOLERANCE_DEG = 1e-9;
// Boxes are widened by a little more than the edge tolerance so they hold every point `contains` accepts.
const BOX_PAD_DEG = 2 * EDGE_TOLERANCE_DEG;

export interface BoundingBox {
  minLat: number;
  minLon: number;
  maxLat: number;
  maxLon: number;
}

/** Great-circle distance in metres (haversine on geolib's sphere, not rounded). */
export function distanceM(a: LatLon, b: LatLon): number {
  const sinDLat = Math.sin(((b.lat - a.lat) * RAD) / 2);
  const sinDLon = Math.sin(((b.lon - a.lon) * RAD) / 2);
  const h = sinDLat * sinDLat + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * sinDLon * sinDLon;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** 1 strictly inside the ring, 0 on its boundary, -1 outside. The ring may or may not repeat its first position. */
export function ringSide(ring: readonly Position[], lon: number, lat: number): 1 | 0 | -1 {
  let inside = false;
  const n = ring.length;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const a = ring[i]!, b = ring[j]!;
    const ax = a[0], ay = a[1], bx = b[0], by = b[1];
    // Hand-ordered bounds, not Math.min/max, and the longitude test first: this loop is the hot path of lookups.
    let lo = ax, hi = bx;
    if (lo > hi) {
      lo = bx;
      hi = ax;
    }
    // An edge can neither hold the point nor cross its ray unless the point's longitude is within the edge's span.
    if (lon < lo - EDGE_TOLERANCE_DEG || lon > hi + EDGE_TOLERANCE_DEG) continue;
    let yLo = ay, yHi = by;
    if (yLo > yHi) {
      yLo = by;
      yHi = ay;
    }
    if (lat >= yLo - EDGE_TOLERANCE_DEG && lat <= yHi + EDGE_TOLERANCE_DEG) {
      const dx = bx - ax, dy = by - ay;
      const cross = dx * (lat - ay) - dy * (lon - ax);
      if (cross * cross <= EDGE_TOLERANCE_DEG * EDGE_TOLERANCE_DEG * (dx * dx + dy * dy)) return 0;
    }
    // The same crossing rule as geolib's isPointInPolygon (a ray towards growing latitude), so interiors agree.
    if (lo <= lon && lon < hi && lat < ((by - ay) * (lon - ax)) / (bx - ax) + ay) inside = !inside;
  }
  return inside ? 1 : -1;
}

function polygonContains(rings: readonly Position[][], lon: number, lat: number): boolean {
  const outer = rings[0];
  if (!outer) return false;
  const side = ringSide(outer, lon, lat);
  if (side <= 0) return side === 0;
  // A hole's boundary is the fence's boundary, so only its strict interior is outside the fence.
  for (let h = 1; h < rings.length; h++) if (ringSide(rings[h]!, lon, lat) === 1) return false;
  return true;
}

/** True when the point is inside the fence or on its boundary. */
export function contains(fence: Geofence, point: LatLon): boolean {
  switch (fence.kind) {
    case 'circle': {
      // Latitude alone already puts most far points out, without trigonometry (a linear scan meets many of them).
      if (Math.abs(point.lat - fence.center.lat) * M_PER_DEG > fence.radiusM + 1e-6) return false;
      return distanceM(fence.center, point) <= fence.radiusM;
    }
    case 'polygon':
      return polygonContains(fence.rings, point.lon, point.lat);
    default:
      return unreachable(fence);
  }
}

/** Metres from the point to the segment a-b, on a plane projected around the point (x and y in metres). */
function segmentDistanceM(ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, -(ax * dx + ay * dy) / len2));
  return Math.hypot(ax + t * dx, ay + t * dy);
}

/**
 * Metres from the fence's boundary: negative inside, positive outside, 0 on it. Entry and exit hysteresis buffers
 * compare against this. Polygons use an equirectangular projection centred on the point, true to well under 1% at
 * the distances a buffer cares about.
 */
export function signedDistanceM(fence: Geofence, point: LatLon): number {
  switch (fence.kind) {
    case 'circle':
      return distanceM(fence.center, point) - fence.radiusM;
    case 'polygon': {
      const ky = M_PER_DEG;
      const kx = M_PER_DEG * Math.cos(point.lat * RAD);
      let best = Infinity;
      for (const ring of fence.rings) {
        for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
          const a = ring[j]!, b = ring[i]!;
          const d = segmentDistanceM((a[0] - point.lon) * kx, (a[1] - point.lat) * ky, (b[0] - point.lon) * kx, (b[1] - point.lat) * ky);
          if (d < best) best = d;
        }
      }
      // The sign comes from `contains`, so the two never disagree about which side the point is on.
      if (!polygonContains(fence.rings, point.lon, point.lat)) return best;
      return best === 0 ? 0 : -best;
    }
    default:
      return unreachable(fence);
  }
}

/**
 * The box holding every point within `radiusM` of `center` on the sphere (longitude degrees shrink with latitude).
 * A box reaching a pole spans all longitudes.
 */
export function boxAround(center: LatLon, radiusM: number): BoundingBox {
  const angle = radiusM / EARTH_RADIUS_M;
  const dLat = angle / RAD + BOX_PAD_DEG;
  const minLat = center.lat - dLat;
  const maxLat = center.lat + dLat;
  if (minLat <= -90 || maxLat >= 90 || angle >= Math.PI / 2) {
    return { minLat: Math.max(-90, minLat), minLon: -180, maxLat: Math.min(90, maxLat), maxLon: 180 };
  }
  // The widest longitude of a spherical cap; the small relative pad absorbs float rounding.
  const dLon = (Math.asin(Math.min(1, Math.sin(angle) / Math.cos(center.lat * RAD))) / RAD) * (1 + 1e-9) + BOX_PAD_DEG;
  return { minLat, minLon: Math.max(-180, center.lon - dLon), maxLat, maxLon: Math.min(180, center.lon + dLon) };
}

/** A box that holds the whole fence, boundary tolerance included. */
export function boundingBox(fence: Geofence): BoundingBox {
  switch (fence.kind) {
    case 'circle':
      return boxAround(fence.center, fence.radiusM);
    case 'polygon': {
      // Every ring, not only the outer one: distances to a hole's edge are looked up through the same box.
      let minLat = Infinity, minLon = Infinity, maxLat = -Infinity, maxLon = -Infinity;
      for (const ring of fence.rings) {
        for (const p of ring) {
          if (p[0] < minLon) minLon = p[0];
          if (p[0] > maxLon) maxLon = p[0];
          if (p[1] < minLat) minLat = p[1];
          if (p[1] > maxLat) maxLat = p[1];
        }
      }
      return { minLat: minLat - BOX_PAD_DEG, minLon: minLon - BOX_PAD_DEG, maxLat: maxLat + BOX_PAD_DEG, maxLon: maxLon + BOX_PAD_DEG };
    }
    default:
      return unreachable(fence);
  }
}

function unreachable(value: never): never {
  throw new Error(`unknown geofence kind: ${JSON.stringify(value)}`);
}
