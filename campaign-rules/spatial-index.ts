// Which geofences hold a point, and which are near it, among many. Flatbush narrows the fences down by bounding box;
// geometry.ts decides exactly, with the same `contains` a linear scan uses, so the index only ever changes the speed.
// Fences crossing the antimeridian (±180°) are not supported: their boxes are clamped to -180..180 instead of
// wrapping, so a point on the far side of the line may be missed. None of the markets we serve is there.
import Flatbush from 'flatbush';
import { boundingBox, boxAround, contains, signedDistanceM } from './geometry.js';
import type { Geofence, LatLon } from './model.js';

export interface GeofenceIndex {
  /** Fences in the index. */
  readonly size: number;
  /** Every fence that contains the point (boundary included), by ascending id. */
  containing(point: LatLon): Geofence[];
  /** Every fence whose boundary is within `marginM` of the point, or that contains it, by ascending id. */
  near(point: LatLon, marginM: number): Geofence[];
}

// Code-unit order, not localeCompare: the order must not depend on the machine's locale.
const byId = (a: Geofence, b: Geofence) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const ascending = (a: number, b: number) => a - b;

/** The plain scan, with the same exact test as the index: the reference the index is checked against. */
export function linearContaining(fences: readonly Geofence[], point: LatLon): Geofence[] {
  return fences.filter((f) => contains(f, point)).sort(byId);
}

const EMPTY: GeofenceIndex = { size: 0, containing: () => [], near: () => [] };

export function buildGeofenceIndex(fences: readonly Geofence[]): GeofenceIndex {
  // Items go in by id (a stable sort), so results sorted by item number are sorted by id, ties in input order.
  const sorted = [...fences].sort(byId);
  const boxes = sorted.map(boundingBox);
  // A fence without a finite box (no positions, a NaN centre) contains nothing and is near nothing.
  const items = sorted.flatMap((f, i) => {
    const b = boxes[i]!;
    return [b.minLat, b.minLon, b.maxLat, b.maxLon].every(Number.isFinite) ? [i] : [];
  });
  // Flatbush needs at least one item.
  if (items.length === 0) return { ...EMPTY, size: fences.length };
  const tree = new Flatbush(items.length);
  for (const i of items) {
    const b = boxes[i]!;
    tree.add(b.minLon, b.minLat, b.maxLon, b.maxLat);
  }
  tree.finish();
  const fenceAt = (item: number) => sorted[items[item]!]!;
  const pick = (found: number[]) => found.sort(ascending).map(fenceAt);

  return {
    size: fences.length,
    containing(point) {
      return pick(tree.search(point.lon, point.lat, point.lon, point.lat, (item) => contains(fenceAt(item), point)));
    },
    near(point, marginM) {
      const b = boxAround(point, Math.max(0, marginM));
      return pick(tree.search(b.minLon, b.minLat, b.maxLon, b.maxLat, (item) => signedDistanceM(fenceAt(item), point) <= marginM));
    },
  };
}
