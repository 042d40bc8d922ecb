import { getDistance } from 'geolib';
import { describe, expect, it } from 'vitest';
import {
  evaluate, holdoutBucket, inWindows, localTime, prepareCampaigns, type Campaign, type EvaluationContext, type MemberContext, type PresenceEvent,
} from '../campaign-rules/index.js';

const now = new Date('2026-06-03T12:00:00Z'); // a Wednesday
const center = { lat: 52.52, lon: 13.405 };
const H = 3_600_000;

function campaign(over: Partial<Campaign> & { id: string }): Campaign {
  return {
    version: 1, status: 'active', priority: 0, expectedValue: 0,
    schedule: { timeZone: 'Europe/Berlin' },
    trigger: { kind: 'checkin' },
    geofences: [{ kind: 'circle', id: `g-${over.id}`, center, radiusM: 100 }],
    sources: ['gps'], minConfidence: 0, maxAccuracyM: 50, audience: {}, channels: ['sms'], caps: {}, budget: {}, holdoutPercent: 0,
    offer: { id: `o-${over.id}`, kind: 'coupon', title: 't', message: 'm', validDays: 7 },
    ...over,
  };
}

function member(over: Partial<MemberContext> = {}): MemberContext {
  return {
    id: 'm-1', tier: null, tags: [], visitCount: 0, lastVisitAt: null, lifetimeRedemptions: 0, homeStoreId: null,
    channels: ['sms'], offers: [], redemptions: [], ...over,
  };
}

// 0.0009 degrees of latitude is about 100 m.
const fix = (dLat: number, accuracyM = 10, at = now): PresenceEvent => ({
  kind: 'checkin', source: 'gps', confidence: 0.9, position: { lat: center.lat + dLat, lon: center.lon }, accuracyM, at,
});

const ctx = (event: PresenceEvent, m: Partial<MemberContext> = {}, extra: Partial<EvaluationContext> = {}): EvaluationContext => ({
  member: member(m), event, counters: new Map(), ...extra,
});

const firstFailure = (c: Campaign, context: EvaluationContext, at = now) => evaluate([c], context, at).candidates[0]!.failed;

describe('evaluate: check-ins and geofences', () => {
  it('matches inside the circle and names the geofence and channel', () => {
    const r = evaluate([campaign({ id: 'a' })], ctx(fix(0.0005)), now);
    expect(r.chosen).toEqual({ campaignId: 'a', version: 1, channel: 'sms', geofenceId: 'g-a', heldOut: false });
    expect(r.candidates).toEqual([{ campaignId: 'a', version: 1, matched: true, geofenceId: 'g-a' }]);
  });

  it('treats the boundary as inside and one metre short of it as outside', () => {
    const event = fix(0.001);
    const d = getDistance({ latitude: center.lat, longitude: center.lon }, { latitude: event.position!.lat, longitude: event.position!.lon }, 0.01);
    const onEdge = campaign({ id: 'edge', geofences: [{ kind: 'circle', id: 'g', center, radiusM: d }] });
    expect(evaluate([onEdge], ctx(event), now).chosen).not.toBeNull();
    const short = campaign({ id: 'short', geofences: [{ kind: 'circle', id: 'g', center, radiusM: d - 1 }] });
    expect(firstFailure(short, ctx(event))?.condition).toBe('outside_geofences');
  });

  it('matches inside a polygon but not in its hole', () => {
    const d = 0.002;
    const ring = (s: number): [number, number][] => [
      [center.lon - s, center.lat - s], [center.lon + s, center.lat - s], [center.lon + s, center.lat + s], [center.lon - s, center.lat + s], [center.lon - s, center.lat - s],
    ];
    const c = campaign({ id: 'p', geofences: [{ kind: 'polygon', id: 'poly', rings: [ring(d), ring(d / 4)] }] });
    expect(firstFailure(c, ctx(fix(0)))?.condition).toBe('outside_geofences'); // centre is in the hole
    expect(evaluate([c], ctx(fix(d * 0.7)), now).chosen?.geofenceId).toBe('poly');
  });

  it('reports the nearest geofence and its distance when outside all of them', () => {
    const c = campaign({
      id: 'a',
      geofences: [
        { kind: 'circle', id: 'far', center: { lat: 52.6, lon: 13.405 }, radiusM: 100 },
        { kind: 'circle', id: 'near', center, radiusM: 100 },
      ],
    });
    const failed = firstFailure(c, ctx(fix(0.0018))); // about 200 m north of `near`, 100 m past its edge
    expect(failed?.condition).toBe('outside_geofences');
    if (failed?.condition !== 'outside_geofences') return;
    expect(failed.nearest?.geofenceId).toBe('near');
    expect(failed.nearest?.distanceM).toBeGreaterThan(95);
    expect(failed.nearest?.distanceM).toBeLessThan(105);
  });

  it('gives the same answers with and without the prepared spatial index', () => {
    const cs = Array.from({ length: 40 }, (_, i) =>
      campaign({ id: `c${String(i).padStart(2, '0')}`, priority: i % 3, geofences: [{ kind: 'circle', id: `g${i}`, center: { lat: center.lat + i * 0.0004, lon: center.lon }, radiusM: 60 + i * 5 }] }),
    );
    const prepared = prepareCampaigns(cs);
    for (const dLat of [0, 0.0011, 0.004, 0.01, 0.03]) {
      expect(evaluate(prepared, ctx(fix(dLat)), now)).toEqual(evaluate(cs, ctx(fix(dLat)), now));
    }
  });
});

describe('evaluate: triggers', () => {
  const geo = (kind: PresenceEvent['kind'], extra: Partial<PresenceEvent> = {}): PresenceEvent => ({
    kind, source: 'gps', confidence: 0.9, at: now, position: center, accuracyM: 10, geofenceId: 'g-a', ...extra,
  });
  const zone = (kind: 'zone_enter' | 'zone_dwell', extra: Partial<PresenceEvent> = {}): PresenceEvent => ({
    kind, source: 'ble_zone', confidence: 0.8, at: now, zoneId: 'z-door', storeId: 's-1', ...extra,
  });

  it.each([
    ['geofence enter', { kind: 'geofence_enter' }, geo('geofence_enter'), undefined],
    ['geofence exit', { kind: 'geofence_exit' }, geo('geofence_exit'), undefined],
    ['exit is not enter', { kind: 'geofence_enter' }, geo('geofence_exit'), { condition: 'trigger', expected: 'geofence_enter', got: 'geofence_exit' }],
    ['another geofence', { kind: 'geofence_enter' }, geo('geofence_enter', { geofenceId: 'elsewhere' }), { condition: 'geofence', got: 'elsewhere' }],
    ['dwell long enough', { kind: 'geofence_dwell', minutes: 10 }, geo('geofence_dwell', { minutes: 10 }), undefined],
    ['dwell too short', { kind: 'geofence_dwell', minutes: 15 }, geo('geofence_dwell', { minutes: 10 }), { condition: 'dwell', minMinutes: 15, minutes: 10 }],
    ['pass-by within', { kind: 'pass_by', withinMinutes: 5 }, geo('pass_by', { minutes: 3 }), undefined],
    ['pass-by too slow', { kind: 'pass_by', withinMinutes: 5 }, geo('pass_by', { minutes: 7 }), { condition: 'pass_by', withinMinutes: 5, minutes: 7 }],
    ['zone enter', { kind: 'zone_enter', zoneIds: ['z-door'] }, zone('zone_enter'), undefined],
    ['other zone', { kind: 'zone_enter', zoneIds: ['z-till'] }, zone('zone_enter'), { condition: 'zone', expected: ['z-till'], got: 'z-door' }],
    ['zone dwell', { kind: 'zone_dwell', zoneIds: ['z-door'], minutes: 2 }, zone('zone_dwell', { minutes: 3 }), undefined],
    ['zone dwell short', { kind: 'zone_dwell', zoneIds: ['z-door'], minutes: 5 }, zone('zone_dwell', { minutes: 3 }), { condition: 'dwell', minMinutes: 5, minutes: 3 }],
  ] as const)('%s', (_name, trigger, event, failed) => {
    const zoneTrigger = trigger.kind.startsWith('zone');
    const c = campaign({
      id: 'a', trigger: trigger as Campaign['trigger'], sources: zoneTrigger ? ['ble_zone', 'app_beacon'] : ['gps'],
      geofences: zoneTrigger ? [] : [{ kind: 'circle', id: 'g-a', center, radiusM: 100 }],
    });
    expect(firstFailure(c, ctx(event as PresenceEvent))).toEqual(failed);
  });

  it('requires an accepted source and enough confidence', () => {
    const c = campaign({ id: 'a', trigger: { kind: 'zone_enter', zoneIds: ['z'] }, geofences: [], sources: ['ble_zone'], minConfidence: 0.7 });
    const event: PresenceEvent = { kind: 'zone_enter', source: 'app_beacon', confidence: 0.9, at: now, zoneId: 'z' };
    expect(firstFailure(c, ctx(event))).toEqual({ condition: 'source', accepted: ['ble_zone'], got: 'app_beacon' });
    expect(firstFailure(c, ctx({ ...event, source: 'ble_zone', confidence: 0.5 }))).toEqual({ condition: 'confidence', min: 0.7, got: 0.5 });
    expect(firstFailure(c, ctx({ ...event, source: 'ble_zone', confidence: 0.7 }))).toBeUndefined();
  });
});

describe('evaluate: conditions', () => {
  it.each([
    ['paused', { status: 'paused' as const }, fix(0), { condition: 'status', status: 'paused' }],
    ['not started', { schedule: { timeZone: 'UTC', startsAt: new Date('2026-06-04T00:00:00Z') } }, fix(0), { condition: 'not_started', startsAt: '2026-06-04T00:00:00.000Z' }],
    ['ended', { schedule: { timeZone: 'UTC', endsAt: now } }, fix(0), { condition: 'ended', endsAt: now.toISOString() }],
    ['poor fix', {}, fix(0, 51), { condition: 'accuracy', accuracyM: 51, maxAccuracyM: 50 }],
    ['no channel', { channels: ['push' as const] }, fix(0), { condition: 'channel', allowed: ['push'], memberChannels: ['sms'] }],
  ])('%s', (_name, over, event, failed) => {
    expect(firstFailure(campaign({ id: 'a', ...over }), ctx(event))).toEqual(failed);
  });

  it('reads the weekly schedule in the store time zone, not UTC', () => {
    // 12:00 UTC on a Wednesday is 14:00 in Berlin and 20:00 in Shanghai.
    const lunch = { timeZone: 'Europe/Berlin', weekly: [{ days: ['wed' as const], from: '13:00', to: '15:00' }] };
    expect(firstFailure(campaign({ id: 'a', schedule: lunch }), ctx(fix(0)))).toBeUndefined();
    const shanghai = { timeZone: 'Asia/Shanghai', weekly: [{ days: ['wed' as const], from: '13:00', to: '15:00' }] };
    expect(firstFailure(campaign({ id: 'a', schedule: shanghai }), ctx(fix(0)))).toEqual({ condition: 'schedule', localTime: 'wed 20:00', timeZone: 'Asia/Shanghai' });
  });

  it('follows daylight saving changes', () => {
    // New York: 13:30 UTC is 08:30 EST before 8 March 2026 and 09:30 EDT after it.
    const morning = { timeZone: 'America/New_York', weekly: [{ days: ['mon' as const], from: '09:00', to: '10:00' }] };
    const c = campaign({ id: 'a', schedule: morning });
    const before = new Date('2026-03-02T14:30:00Z'); // Monday 09:30 EST
    const after = new Date('2026-03-09T13:30:00Z'); // Monday 09:30 EDT
    const stillUtc = new Date('2026-03-09T14:30:00Z'); // Monday 10:30 EDT
    expect(firstFailure(c, ctx(fix(0, 10, before)), before)).toBeUndefined();
    expect(firstFailure(c, ctx(fix(0, 10, after)), after)).toBeUndefined();
    expect(firstFailure(c, ctx(fix(0, 10, stillUtc)), stillUtc)).toEqual({ condition: 'schedule', localTime: 'mon 10:30', timeZone: 'America/New_York' });
  });

  it('runs a window past midnight into the next day', () => {
    const late = [{ days: ['fri' as const], from: '22:00', to: '02:00' }];
    expect(inWindows(late, localTime(new Date('2026-06-05T23:30:00Z'), 'UTC'))).toBe(true); // Fri 23:30
    expect(inWindows(late, localTime(new Date('2026-06-06T01:30:00Z'), 'UTC'))).toBe(true); // Sat 01:30
    expect(inWindows(late, localTime(new Date('2026-06-06T02:30:00Z'), 'UTC'))).toBe(false);
    expect(inWindows(late, localTime(new Date('2026-06-05T01:30:00Z'), 'UTC'))).toBe(false); // Fri 01:30 belongs to Thursday
  });

  it('honours geofence opening hours at the time of the event', () => {
    const closedAtNoon = { kind: 'circle' as const, id: 'g', center, radiusM: 100, timeZone: 'Europe/Berlin', hours: [{ days: ['wed' as const], from: '18:00', to: '22:00' }] };
    expect(firstFailure(campaign({ id: 'a', geofences: [closedAtNoon] }), ctx(fix(0)))).toEqual({
      condition: 'closed', geofenceId: 'g', localTime: 'wed 14:00', timeZone: 'Europe/Berlin',
    });
  });

  it.each([
    ['tier', { tiers: ['gold'] }, { tier: 'silver' }, { rule: 'tiers', expected: ['gold'], actual: 'silver' }],
    ['tier ok', { tiers: ['gold'] }, { tier: 'gold' }, null],
    ['any tag', { tagsAny: ['coffee', 'tea'] }, { tags: ['cake'] }, { rule: 'tagsAny', expected: ['coffee', 'tea'], actual: ['cake'] }],
    ['all tags', { tagsAll: ['coffee', 'cake'] }, { tags: ['cake'] }, { rule: 'tagsAll', expected: ['coffee', 'cake'], actual: ['cake'] }],
    ['min visits', { minVisits: 3 }, { visitCount: 2 }, { rule: 'minVisits', expected: 3, actual: 2 }],
    ['max visits', { maxVisits: 0 }, { visitCount: 1 }, { rule: 'maxVisits', expected: 0, actual: 1 }],
    ['lapsed member', { minDaysSinceLastVisit: 30 }, { lastVisitAt: new Date(now.getTime() - 10 * 24 * H) }, { rule: 'minDaysSinceLastVisit', expected: 30, actual: 10 }],
    ['never visited counts as lapsed', { minDaysSinceLastVisit: 30 }, { lastVisitAt: null }, null],
    ['recent only', { maxDaysSinceLastVisit: 7 }, { lastVisitAt: null }, { rule: 'maxDaysSinceLastVisit', expected: 7, actual: null }],
    ['redeemers', { minLifetimeRedemptions: 1 }, { lifetimeRedemptions: 0 }, { rule: 'minLifetimeRedemptions', expected: 1, actual: 0 }],
    ['home store', { homeStoreIds: ['s-1'] }, { homeStoreId: 's-2' }, { rule: 'homeStoreIds', expected: ['s-1'], actual: 's-2' }],
  ] as const)('audience: %s', (_name, audience, m, failure) => {
    const f = firstFailure(campaign({ id: 'a', audience: audience as Campaign['audience'] }), ctx(fix(0), m as Partial<MemberContext>));
    expect(f).toEqual(failure === null ? undefined : { condition: 'audience', ...failure });
  });
});

describe('evaluate: caps, limits and budgets', () => {
  const sent = (hoursAgo: number, campaignId = 'a') => ({ campaignId, at: new Date(now.getTime() - hoursAgo * H) });
  const noGlobal = { contactLimits: [] };

  it.each([
    ['lifetime reached', { lifetime: 2 }, [sent(100), sent(200)], { condition: 'member_cap', period: 'lifetime', limit: 2, count: 2 }],
    ['weekly reached', { perWeek: 1 }, [sent(24 * 6)], { condition: 'member_cap', period: 'week', limit: 1, count: 1 }],
    ['weekly rolled over', { perWeek: 1 }, [sent(24 * 7 + 1)], undefined],
    ['daily reached', { perDay: 1 }, [sent(3)], { condition: 'member_cap', period: 'day', limit: 1, count: 1 }],
    ['yesterday is not today', { perDay: 1 }, [sent(15)], undefined], // 23:00 Berlin (UTC+2) on Tuesday
    ['other campaigns do not count', { perDay: 1 }, [sent(1, 'b')], undefined],
  ] as const)('member cap: %s', (_name, caps, offers, failure) => {
    const f = firstFailure(campaign({ id: 'a', caps }), ctx(fix(0), { offers: [...offers] }, noGlobal));
    expect(f).toEqual(failure);
  });

  it('counts "per day" in the campaign time zone', () => {
    // 03:00 UTC Wednesday is 11:00 in Shanghai, the same local day as 12:00 UTC (20:00).
    const c = campaign({ id: 'a', caps: { perDay: 1 }, schedule: { timeZone: 'Asia/Shanghai' } });
    expect(firstFailure(c, ctx(fix(0), { offers: [sent(9)] }, noGlobal))?.condition).toBe('member_cap');
    const utc = campaign({ id: 'a', caps: { perDay: 1 }, schedule: { timeZone: 'America/Los_Angeles' } });
    // 03:00 UTC Wednesday is Tuesday 20:00 in Los Angeles; now is Wednesday 05:00 there.
    expect(firstFailure(utc, ctx(fix(0), { offers: [sent(9)] }, noGlobal))).toBeUndefined();
  });

  it('cools down after a redemption', () => {
    const c = campaign({ id: 'a', caps: { cooldownAfterRedemptionHours: 48 } });
    const recent = { redemptions: [{ campaignId: 'a', at: new Date(now.getTime() - 24 * H) }] };
    expect(firstFailure(c, ctx(fix(0), recent, noGlobal))).toEqual({ condition: 'cooldown', hours: 48, lastRedemptionAt: new Date(now.getTime() - 24 * H).toISOString() });
    const old = { redemptions: [{ campaignId: 'a', at: new Date(now.getTime() - 49 * H) }] };
    expect(firstFailure(c, ctx(fix(0), old, noGlobal))).toBeUndefined();
  });

  it.each([
    ['one in the last 4 hours', [sent(3, 'x')], { condition: 'contact_limit', count: 1, hours: 4, sentInWindow: 1 }],
    ['three this week', [sent(5, 'x'), sent(30, 'y'), sent(100, 'z')], { condition: 'contact_limit', count: 3, hours: 168, sentInWindow: 3 }],
    ['two this week, none lately', [sent(5, 'x'), sent(30, 'y')], undefined],
  ] as const)('default global contact limit: %s', (_name, offers, failure) => {
    expect(firstFailure(campaign({ id: 'a' }), ctx(fix(0), { offers: [...offers] }))).toEqual(failure);
  });

  it('stops at the campaign budget', () => {
    const c = campaign({ id: 'a', budget: { maxCoupons: 100, maxRedemptions: 10 } });
    const counters = (couponsIssued: number, redemptions: number) => ({ counters: new Map([['a', { couponsIssued, redemptions }]]) });
    expect(firstFailure(c, ctx(fix(0), {}, counters(99, 9)))).toBeUndefined();
    expect(firstFailure(c, ctx(fix(0), {}, counters(100, 0)))).toEqual({ condition: 'budget', limit: 'maxCoupons', max: 100, used: 100 });
    expect(firstFailure(c, ctx(fix(0), {}, counters(50, 10)))).toEqual({ condition: 'budget', limit: 'maxRedemptions', max: 10, used: 10 });
  });
});

describe('evaluate: arbitration and holdout', () => {
  it('chooses by priority, then expected value, then id, and records the others as suppressed', () => {
    const r = evaluate([campaign({ id: 'b' }), campaign({ id: 'c', priority: 5 }), campaign({ id: 'a' })], ctx(fix(0)), now);
    expect(r.chosen?.campaignId).toBe('c');
    expect(r.candidates.find((t) => t.campaignId === 'a')?.failed).toEqual({ condition: 'arbitration', winner: 'c' });
    const byValue = evaluate([campaign({ id: 'a', expectedValue: 1 }), campaign({ id: 'b', expectedValue: 3.5 })], ctx(fix(0)), now);
    expect(byValue.chosen?.campaignId).toBe('b');
    const tie = evaluate([campaign({ id: 'b' }), campaign({ id: 'a' })], ctx(fix(0)), now);
    expect(tie.chosen?.campaignId).toBe('a');
  });

  it('holds out the control group of the winner without letting another campaign step in', () => {
    const ids = Array.from({ length: 400 }, (_, i) => `member-${i}`);
    const heldOutId = ids.find((id) => holdoutBucket(id, 'a') < 20)!;
    const treatedId = ids.find((id) => holdoutBucket(id, 'a') >= 20)!;
    const cs = [campaign({ id: 'a', priority: 2, holdoutPercent: 20 }), campaign({ id: 'b', priority: 1 })];
    const held = evaluate(cs, ctx(fix(0), { id: heldOutId }), now);
    expect(held.chosen).toMatchObject({ campaignId: 'a', heldOut: true });
    expect(held.candidates[0]).toMatchObject({ matched: true, heldOut: true });
    expect(held.candidates[1]?.failed).toEqual({ condition: 'arbitration', winner: 'a' });
    expect(evaluate(cs, ctx(fix(0), { id: treatedId }), now).chosen).toMatchObject({ campaignId: 'a', heldOut: false });
  });

  it('keeps a stable holdout close to the configured share on 10,000 members', () => {
    const members = Array.from({ length: 10_000 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const held = members.filter((m) => holdoutBucket(m, 'campaign-x') < 10).length;
    expect(held).toBeGreaterThan(900); // 10 % ± 1 %: over 3 standard deviations (30) either side
    expect(held).toBeLessThan(1100);
    expect(members.map((m) => holdoutBucket(m, 'campaign-x'))).toEqual(members.map((m) => holdoutBucket(m, 'campaign-x')));
    // Another campaign draws its own, independent control group.
    const both = members.filter((m) => holdoutBucket(m, 'campaign-x') < 10 && holdoutBucket(m, 'campaign-y') < 10).length;
    expect(both).toBeGreaterThan(50);
    expect(both).toBeLessThan(150);
  });

  it('is deterministic: same input, same output', () => {
    const cs = [campaign({ id: 'x' }), campaign({ id: 'y', priority: 1 })];
    expect(evaluate(cs, ctx(fix(0.0002)), now)).toEqual(evaluate(cs, ctx(fix(0.0002)), now));
  });
});
