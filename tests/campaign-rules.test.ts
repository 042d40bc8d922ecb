import { getDistance } from 'geolib';
import { describe, expect, it } from 'vitest';
import { evaluate, type Campaign, type PresenceEvent } from '../campaign-rules/index.js';

const now = new Date('2026-06-01T12:00:00Z');
const center = { lat: 52.52, lon: 13.405 };

function campaign(over: Partial<Campaign> & { id: string }): Campaign {
  return {
    version: 1, status: 'active', priority: 0, startsAt: null, endsAt: null, trigger: { kind: 'checkin' },
    geofences: [{ kind: 'circle', id: `g-${over.id}`, center, radiusM: 100 }], maxAccuracyM: 50, channel: 'sms',
    offer: { id: `o-${over.id}`, kind: 'coupon', title: 't', message: 'm', validDays: 7 },
    ...over,
  };
}

// 0.0009 degrees of latitude is about 100 m.
const fix = (dLat: number, accuracyM = 10): PresenceEvent => ({
  kind: 'checkin', position: { lat: center.lat + dLat, lon: center.lon }, accuracyM, at: now,
});

describe('evaluate', () => {
  it('matches inside the circle and names the geofence', () => {
    const r = evaluate([campaign({ id: 'a' })], fix(0.0005), now);
    expect(r.chosen).toEqual({ campaignId: 'a', version: 1 });
    expect(r.candidates).toEqual([{ campaignId: 'a', version: 1, matched: true, geofenceId: 'g-a' }]);
  });

  it('treats the boundary as inside and one metre past it as outside', () => {
    const event = fix(0.001);
    const d = getDistance({ latitude: center.lat, longitude: center.lon }, { latitude: event.position.lat, longitude: event.position.lon }, 0.01);
    expect(d).toBeGreaterThan(100);
    const onEdge = campaign({ id: 'edge', geofences: [{ kind: 'circle', id: 'g', center, radiusM: d }] });
    expect(evaluate([onEdge], event, now).chosen).not.toBeNull();
    const short = campaign({ id: 'short', geofences: [{ kind: 'circle', id: 'g', center, radiusM: d - 1 }] });
    expect(evaluate([short], event, now).candidates[0]?.failed?.condition).toBe('outside_geofences');
  });

  it.each([
    ['paused', { status: 'paused' as const }, fix(0), { condition: 'status', status: 'paused' }],
    ['not started', { startsAt: new Date('2026-06-02T00:00:00Z') }, fix(0), { condition: 'not_started', startsAt: '2026-06-02T00:00:00.000Z' }],
    ['ended', { endsAt: now }, fix(0), { condition: 'ended', endsAt: now.toISOString() }],
    ['poor fix', {}, fix(0, 51), { condition: 'accuracy', accuracyM: 51, maxAccuracyM: 50 }],
  ])('reports the first failing condition: %s', (_name, over, event, failed) => {
    const r = evaluate([campaign({ id: 'a', ...over })], event, now);
    expect(r.chosen).toBeNull();
    expect(r.candidates[0]).toEqual({ campaignId: 'a', version: 1, matched: false, failed });
  });

  it('reports the nearest geofence and its distance when outside all of them', () => {
    const c = campaign({
      id: 'a',
      geofences: [
        { kind: 'circle', id: 'far', center: { lat: 52.6, lon: 13.405 }, radiusM: 100 },
        { kind: 'circle', id: 'near', center, radiusM: 100 },
      ],
    });
    const r = evaluate([c], fix(0.0018), now); // about 200 m north of `near`
    const failed = r.candidates[0]!.failed;
    expect(failed?.condition).toBe('outside_geofences');
    if (failed?.condition !== 'outside_geofences') return;
    expect(failed.nearest?.geofenceId).toBe('near');
    expect(failed.nearest?.distanceM).toBeGreaterThan(195);
    expect(failed.nearest?.distanceM).toBeLessThan(205);
  });

  it('chooses one of several matches by priority, then id, and records the others as suppressed', () => {
    const r = evaluate([campaign({ id: 'b' }), campaign({ id: 'c', priority: 5 }), campaign({ id: 'a' })], fix(0), now);
    expect(r.chosen?.campaignId).toBe('c');
    expect(r.candidates.find((t) => t.campaignId === 'a')?.failed).toEqual({ condition: 'arbitration', winner: 'c' });
    const tie = evaluate([campaign({ id: 'b' }), campaign({ id: 'a' })], fix(0), now);
    expect(tie.chosen?.campaignId).toBe('a');
  });

  it('is deterministic: same input, same output', () => {
    const cs = [campaign({ id: 'x' }), campaign({ id: 'y', priority: 1 })];
    expect(evaluate(cs, fix(0.0002), now)).toEqual(evaluate(cs, fix(0.0002), now));
  });
});
