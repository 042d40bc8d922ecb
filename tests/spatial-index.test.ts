import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signedDistanceM } from '../campaign-rules/geometry.js';
import type { Geofence, LatLon, Position } from '../campaign-rules/model.js';
import { buildGeofenceIndex, linearContaining, type GeofenceIndex } from '../campaign-rules/spatial-index.js';

const M_PER_DEG_LAT = 111_320;
const ids = (fences: readonly Geofence[]) => fences.map((f) => f.id);
const sortedIds = (fences: readonly Geofence[]) => ids(fences).sort();

/** The point `m` metres from `c` towards `angle` (radians from east), flat-earth: fine for generating data. */
function offset(c: LatLon, m: number, angle: number): LatLon {
  return { lat: c.lat + (m * Math.sin(angle)) / M_PER_DEG_LAT, lon: c.lon + (m * Math.cos(angle)) / (M_PER_DEG_LAT * Math.cos((c.lat * Math.PI) / 180)) };
}

/** A star-shaped polygon: corners at sorted angles around the centre, optionally a small hole around the centre. */
function starPolygon(id: string, c: LatLon, radiusM: number, corners: { angle: number; scale: number }[], withHole: boolean): Geofence {
  const ring = (pts: { angle: number; scale: number }[], r: number): Position[] => {
    const positions = [...pts].sort((a, b) => a.angle - b.angle).map(({ angle, scale }) => {
      const p = offset(c, r * scale, angle);
      return [p.lon, p.lat] as Position;
    });
    return [...positions, positions[0]!];
  };
  const hole = [0, 1, 2, 3, 4].map((k) => ({ angle: (2 * Math.PI * k) / 5, scale: 1 }));
  return { kind: 'polygon', id, rings: withHole ? [ring(corners, radiusM), ring(hole, radiusM * 0.15)] : [ring(corners, radiusM)] };
}

const pointAt = (fence: Geofence): LatLon =>
  fence.kind === 'circle' ? fence.center : { lon: fence.rings[0]![0]![0], lat: fence.rings[0]![0]![1] };

describe('GeofenceIndex', () => {
  const c = { lat: 52.52, lon: 13.405 };
  const fences: Geofence[] = [
    { kind: 'circle', id: 'b', center: c, radiusM: 200 },
    { kind: 'circle', id: 'a', center: offset(c, 150, 0), radiusM: 100 },
    starPolygon('c', c, 500, [0, 1, 2, 3, 4, 5].map((k) => ({ angle: k, scale: 1 })), true),
  ];
  const index = buildGeofenceIndex(fences);

  it('finds every fence holding the point, by ascending id whatever the input order', () => {
    expect(index.size).toBe(3);
    expect(ids(index.containing(offset(c, 120, 0)))).toEqual(['a', 'b', 'c']);
    expect(ids(index.containing(offset(c, 20, 2)))).toEqual(['b']); // inside c's hole
    expect(ids(index.containing(offset(c, 400, Math.PI)))).toEqual(['c']);
    expect(index.containing(offset(c, 5_000, 1))).toEqual([]);
  });

  it('finds fences whose boundary is within the margin, and those containing the point', () => {
    const p = offset(c, 230, Math.PI); // 30 m outside b, inside c, 380 m from a's edge
    expect(signedDistanceM(fences[0]!, p)).toBeCloseTo(30, 0);
    expect(ids(index.near(p, 10))).toEqual(['c']);
    expect(ids(index.near(p, 50))).toEqual(['b', 'c']);
    expect(ids(index.near(p, 400))).toEqual(['a', 'b', 'c']);
    expect(index.near(offset(c, 5_000, 1), 100)).toEqual([]);
  });

  it('works with no fences', () => {
    const empty = buildGeofenceIndex([]);
    expect(empty.size).toBe(0);
    expect(empty.containing(c)).toEqual([]);
    expect(empty.near(c, 1_000)).toEqual([]);
  });

  it('ignores a fence that can contain nothing', () => {
    const odd = buildGeofenceIndex([{ kind: 'polygon', id: 'none', rings: [] }, fences[0]!]);
    expect(odd.size).toBe(2);
    expect(ids(odd.containing(c))).toEqual(['b']);
  });
});

describe('index against the linear scan', () => {
  // Centres in a box about 22 km across, radii up to 10 km: fences overlap heavily and many points hit several.
  const centre = fc.record({ lat: fc.double({ min: 52.4, max: 52.6, noNaN: true }), lon: fc.double({ min: 13.2, max: 13.5, noNaN: true }) });
  const radius = fc.double({ min: 10, max: 10_000, noNaN: true });
  const shape = fc.oneof(
    fc.record({ kind: fc.constant('circle' as const), centre, radius }),
    fc.record({
      kind: fc.constant('polygon' as const), centre, radius, hole: fc.boolean(),
      corners: fc.array(fc.record({ angle: fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }), scale: fc.double({ min: 0.3, max: 1, noNaN: true }) }), { minLength: 3, maxLength: 12 }),
    }),
  );
  // Points: anywhere in the box, near a fence (within 1.5 radii), or exactly on a fence's centre or first vertex.
  const point = fc.oneof(
    fc.record({ kind: fc.constant('anywhere' as const), at: centre }),
    fc.record({ kind: fc.constant('near' as const), fence: fc.nat(), angle: fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }), factor: fc.double({ min: 0, max: 1.5, noNaN: true }) }),
    fc.record({ kind: fc.constant('on' as const), fence: fc.nat() }),
  );

  it('agrees with linearContaining on random fences and points', () => {
    fc.assert(
      // size 'max': without it fast-check keeps arrays to about 10 items, far from the 300 fences wanted here.
      fc.property(fc.array(shape, { maxLength: 300, size: 'max' }), fc.array(point, { minLength: 1, maxLength: 40, size: 'max' }), (shapes, points) => {
        const fences: Geofence[] = shapes.map((s, i) =>
          s.kind === 'circle'
            ? { kind: 'circle', id: `f${i}`, center: s.centre, radiusM: s.radius }
            : starPolygon(`f${i}`, s.centre, s.radius, s.corners, s.hole),
        );
        const index = buildGeofenceIndex(fences);
        for (const p of points) {
          let at: LatLon;
          if (p.kind === 'anywhere') at = p.at;
          else if (fences.length === 0) continue;
          else if (p.kind === 'on') at = pointAt(fences[p.fence % fences.length]!);
          else {
            const s = shapes[p.fence % shapes.length]!;
            at = offset(s.centre, s.radius * p.factor, p.angle);
          }
          expect(ids(index.containing(at))).toEqual(sortedIds(linearContaining(fences, at)));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('agrees on 10,000 fences and 2,000 points', () => {
    // A seeded generator (mulberry32): the same fences and points on every run.
    let seed = 20_260_603;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
    const anywhere = () => ({ lat: 52 + random(), lon: 13 + 1.5 * random() });
    const fences: Geofence[] = Array.from({ length: 10_000 }, (_, i) => {
      const r = 10 + 3_000 * random() ** 2;
      if (i % 2 === 0) return { kind: 'circle', id: `g${i}`, center: anywhere(), radiusM: r };
      const corners = Array.from({ length: 3 + Math.floor(random() * 20) }, () => ({ angle: 2 * Math.PI * random(), scale: 0.3 + 0.7 * random() }));
      return starPolygon(`g${i}`, anywhere(), r, corners, random() < 0.2);
    });
    const index = buildGeofenceIndex(fences);
    const points = Array.from({ length: 2_000 }, (_, i) => {
      const f = fences[Math.floor(random() * fences.length)]!;
      return i % 4 === 0 ? anywhere() : offset(pointAt(f), 3_000 * random(), 2 * Math.PI * random());
    });
    // The linear scan a slice of fences at a time, every point per slice: the slice stays in the CPU cache, which makes
    // 20 million exact tests several times faster. The union of the slices' answers is the whole scan's answer.
    const expected = points.map((): string[] => []);
    for (let from = 0; from < fences.length; from += 500) {
      const slice = fences.slice(from, from + 500);
      points.forEach((p, i) => expected[i]!.push(...ids(linearContaining(slice, p))));
    }
    let hits = 0;
    points.forEach((p, i) => {
      const found = ids(index.containing(p));
      expect(found).toEqual(expected[i]!.sort());
      hits += found.length > 0 ? 1 : 0;
    });
    // The points must exercise the exact test, not only empty answers.
    expect(hits).toBeGreaterThan(500);
  });

  it('finds the same near fences as a scan of signedDistanceM', () => {
    const fences: Geofence[] = Array.from({ length: 400 }, (_, i) => {
      const id = `n${String(i).padStart(3, '0')}`;
      const at = offset({ lat: 52.5, lon: 13.4 }, 50 * i, i);
      const radiusM = 20 + (i % 7) * 30;
      return i % 2 === 0
        ? { kind: 'circle', id, center: at, radiusM }
        : starPolygon(id, at, radiusM, [0, 1.5, 2.5, 4, 5.5].map((angle) => ({ angle, scale: 0.6 + (i % 3) * 0.2 })), i % 4 === 1);
    });
    const index: GeofenceIndex = buildGeofenceIndex(fences);
    for (let i = 0; i < 300; i++) {
      const p = offset({ lat: 52.5, lon: 13.4 }, 67 * i, i * 1.3);
      for (const margin of [0, 25, 250]) {
        expect(ids(index.near(p, margin))).toEqual(ids(fences.filter((f) => signedDistanceM(f, p) <= margin)));
      }
    }
  });
});
