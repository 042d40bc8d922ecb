// RFM scoring at its documented thresholds, segments and value tiers, and RFM audience conditions in the
// rules engine: they match only members with a profile (profiling consent), and say why not otherwise.
import { describe, expect, it } from 'vitest';
import {
  evaluate, frequencyScore, monetaryScore, recencyScore, rfmProfile, rfmSegment, valueTier,
  type Campaign, type MemberContext, type PresenceEvent, type RfmStatus,
} from '../campaign-rules/index.js';

const DAY = 86_400_000;
const now = new Date('2026-06-03T12:00:00Z');

describe('RFM scores', () => {
  it.each([
    [null, 1], [0, 5], [7, 5], [8, 4], [30, 4], [31, 3], [90, 3], [91, 2], [180, 2], [181, 1], [2000, 1],
  ] as const)('recency: %s days since the last redemption scores %i', (days, score) => {
    expect(recencyScore(days)).toBe(score);
  });

  it.each([[0, 1], [1, 1], [2, 2], [3, 3], [5, 3], [6, 4], [11, 4], [12, 5], [40, 5]] as const)(
    'frequency: %i redemptions in a year scores %i', (n, score) => {
      expect(frequencyScore(n)).toBe(score);
    },
  );

  it.each([[0, 1], [24.99, 1], [25, 2], [99.99, 2], [100, 3], [199.99, 3], [200, 4], [499.99, 4], [500, 5], [10_000, 5]] as const)(
    'monetary: %d redeemed in a year scores %i', (amount, score) => {
      expect(monetaryScore(amount)).toBe(score);
    },
  );

  it.each([
    [5, 5, true, 'champions'], [4, 4, true, 'champions'], [5, 3, true, 'loyal'], [3, 5, true, 'loyal'], [3, 3, true, 'loyal'],
    [5, 1, true, 'recent'], [4, 2, true, 'recent'], [2, 5, true, 'at_risk'], [1, 3, true, 'at_risk'], [3, 2, true, 'occasional'],
    [3, 1, true, 'occasional'], [2, 2, true, 'hibernating'], [1, 1, true, 'hibernating'], [1, 1, false, 'no_redemptions'],
  ] as const)('segment: R%i F%i (ever redeemed: %s) is %s', (r, f, ever, segment) => {
    expect(rfmSegment(r, f, ever)).toBe(segment);
  });

  it.each([[5, 'top'], [4, 'high'], [3, 'medium'], [2, 'medium'], [1, 'low']] as const)('value tier: M%i is %s', (m, tier) => {
    expect(valueTier(m)).toBe(tier);
  });

  it('profiles from the facts: whole days since the last redemption', () => {
    // 10.9 days ago → 10 whole days → R4; 6 redemptions → F4; 250 → M4: champions (R ≥ 4, F ≥ 4), high.
    const p = rfmProfile({ lastRedemptionAt: new Date(now.getTime() - 10.9 * DAY), redemptions: 6, amount: 250 }, now);
    expect(p).toEqual({
      recency: 4, frequency: 4, monetary: 4, segment: 'champions', valueTier: 'high', daysSinceLastRedemption: 10, redemptions: 6, amount: 250,
    });
    expect(rfmProfile({ lastRedemptionAt: null, redemptions: 0, amount: 0 }, now)).toEqual({
      recency: 1, frequency: 1, monetary: 1, segment: 'no_redemptions', valueTier: 'low', daysSinceLastRedemption: null, redemptions: 0, amount: 0,
    });
    // Redeemed 200 days ago, twice in the year, 30 in value: R1 F2 M2.
    const old = rfmProfile({ lastRedemptionAt: new Date(now.getTime() - 200 * DAY), redemptions: 2, amount: 30 }, now);
    expect([old.recency, old.frequency, old.monetary, old.segment, old.valueTier]).toEqual([1, 2, 2, 'hibernating', 'medium']);
  });
});

describe('RFM audience conditions', () => {
  const center = { lat: 52.52, lon: 13.405 };
  const campaign = (audience: Campaign['audience']): Campaign => ({
    id: 'c', version: 1, status: 'active', priority: 0, expectedValue: 0, schedule: { timeZone: 'Europe/Berlin' }, trigger: { kind: 'checkin' },
    geofences: [{ kind: 'circle', id: 'g', center, radiusM: 100 }], sources: ['gps'], minConfidence: 0, maxAccuracyM: 50, audience,
    channels: ['sms'], caps: {}, budget: {}, holdoutPercent: 0, offer: { id: 'o', kind: 'coupon', title: 't', message: 'm', validDays: 7 },
  });
  const event: PresenceEvent = { kind: 'checkin', source: 'gps', confidence: 0.9, position: center, accuracyM: 10, at: now };
  const member = (rfm?: RfmStatus): MemberContext => ({
    id: 'm', tier: null, tags: [], visitCount: 0, lastVisitAt: null, lifetimeRedemptions: 0, homeStoreId: null, channels: ['sms'], offers: [], redemptions: [],
    ...(rfm ? { rfm } : {}),
  });
  const profiled = (facts: Parameters<typeof rfmProfile>[0]): RfmStatus => ({ status: 'profiled', profile: rfmProfile(facts, now) });
  const loyalHigh = profiled({ lastRedemptionAt: new Date(now.getTime() - 20 * DAY), redemptions: 4, amount: 250 }); // R4 F3 M4: loyal, high
  const run = (audience: Campaign['audience'], m: MemberContext) => evaluate([campaign(audience)], { member: m, event, counters: new Map() }, now);

  it('matches a profiled member whose segment, tier and scores qualify', () => {
    expect(run({ rfmSegments: ['loyal', 'champions'], valueTiers: ['high'], minRecencyScore: 4, minFrequencyScore: 3, minMonetaryScore: 4 }, member(loyalHigh)).chosen)
      .not.toBeNull();
  });

  it.each([
    [{ rfmSegments: ['champions'] }, { rule: 'rfmSegments', expected: ['champions'], actual: 'loyal' }],
    [{ valueTiers: ['top'] }, { rule: 'valueTiers', expected: ['top'], actual: 'high' }],
    [{ minRecencyScore: 5 }, { rule: 'minRecencyScore', expected: 5, actual: 4 }],
    [{ minFrequencyScore: 4 }, { rule: 'minFrequencyScore', expected: 4, actual: 3 }],
    [{ minMonetaryScore: 5 }, { rule: 'minMonetaryScore', expected: 5, actual: 4 }],
  ] as const)('names the RFM condition a profiled member fails: %j', (audience, failure) => {
    const r = run(audience as Campaign['audience'], member(loyalHigh));
    expect(r.chosen).toBeNull();
    expect(r.candidates[0]!.failed).toEqual({ condition: 'audience', ...failure });
  });

  it('never matches without a profile, and says profiling consent is why', () => {
    const audience = { valueTiers: ['high', 'top'] } as Campaign['audience'];
    const withheld = run(audience, member({ status: 'withheld', reason: 'CONSENT_MISSING' }));
    expect(withheld.chosen).toBeNull();
    expect(withheld.candidates[0]!.failed).toEqual({
      condition: 'audience', rule: 'valueTiers', expected: ['high', 'top'], actual: null, withheld: { purpose: 'profiling', reason: 'CONSENT_MISSING' },
    });
    const withdrawn = run({ minMonetaryScore: 1 }, member({ status: 'withheld', reason: 'CONSENT_WITHDRAWN' }));
    expect(withdrawn.candidates[0]!.failed).toMatchObject({ rule: 'minMonetaryScore', withheld: { reason: 'CONSENT_WITHDRAWN' } });
    // A context built without a profile at all is treated the same way.
    expect(run(audience, member()).candidates[0]!.failed).toMatchObject({ withheld: { purpose: 'profiling', reason: 'NOT_COMPUTED' } });
  });

  it('leaves members without a profile alone when the campaign has no RFM condition', () => {
    expect(run({}, member({ status: 'withheld', reason: 'CONSENT_MISSING' })).chosen).not.toBeNull();
  });
});
