// Reports and attribution over HTTP: a seeded campaign whose funnel, lift and confidence interval are computed
// by hand below; the member record's chain redemption -> coupon -> delivery -> decision -> visit -> campaign
// version; RFM audiences that match only with profiling consent.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdoutBucket } from '../campaign-rules/index.js';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';

const H = 3_600_000;
const D1 = new Date('2026-06-03T16:00:00Z'); // Wednesday 12:00 in New York
const D2 = new Date(D1.getTime() + 25 * H); // Thursday 13:00 in New York
const S_AT = { lat: 40.7411, lon: -73.9897 };
const S_IN = { lat: 40.7415, lon: -73.9893 }; // about 55 m from S
const AWAY = { lat: 40.7611, lon: -73.9897 }; // about 2.2 km from S and T
const T_AT = { lat: 40.7811, lon: -73.9597 };
const T_IN = { lat: 40.7813, lon: -73.9595 };

describe.each(backends)('reports and attribution on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: Gateway;
  let clock = D1;
  let phoneSeq = 2000;

  const call = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => {
    const res = await gw.app.inject({ method, url, ...(payload ? { payload } : {}) });
    return { status: res.statusCode, body: res.json() };
  };
  const ok = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => {
    const res = await call(method, url, payload);
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const sql = <R extends object>(text: string, values?: unknown[]) => gw.deps.db.query<R>(text, values);

  /** A member with the given id (so that its holdout group is known in advance) and consents. */
  const member = async (id: string, purposes = ['location', 'sms_marketing']) => {
    const phone = `+1415555${++phoneSeq}`;
    await sql(`INSERT INTO members (id, phone_e164, time_zone) VALUES ($1, $2, 'America/New_York')`, [id, phone]);
    await grantConsents(gw, id, phone, purposes);
    return id;
  };
  const checkin = async (memberId: string, at: { lat: number; lon: number }) => {
    const res = await ok('POST', '/checkins', { memberId, ...at, accuracyM: 10, at: clock.toISOString() });
    return res.decisions[0] as {
      id: string; outcome: string; reasonCode: string | null; campaignId: string | null;
      trace: { evaluation: { candidates: Array<{ campaignId: string; failed?: unknown }> } };
    };
  };
  const settled = () =>
    eventually(async () => {
      const [row] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM deliveries WHERE status IN ('queued', 'sending')`);
      return row!.n === 0 ? true : undefined;
    });
  const couponOf = async (decisionId: string) => (await sql<{ code: string }>('SELECT code FROM coupons WHERE decision_id = $1', [decisionId]))[0]!.code;

  beforeAll(async () => {
    iso = isolatedConfig(backend, { REDEMPTION_VOID_WINDOW_MINUTES: '30' });
    gw = await startGateway(iso.config, { now: () => clock });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  describe('a seeded campaign', () => {
    let storeS: string;
    let storeT: string;
    let campaignA: string;
    const treated: string[] = [];
    const control: string[] = [];
    const firstDecision = new Map<string, string>();
    const campaignInput = (name: string, storeId: string, holdoutPercent: number) => ({
      name, storeId, trigger: { kind: 'checkin' }, holdoutPercent, offer: { title: 'Coffee', message: 'Coffee: code {code}' },
    });

    beforeAll(async () => {
      clock = D1;
      storeS = (await ok('POST', '/stores', { name: 'S', timeZone: 'America/New_York', location: S_AT, geofence: { radiusM: 150 } })).id;
      storeT = (await ok('POST', '/stores', { name: 'T', timeZone: 'America/New_York', location: T_AT, geofence: { radiusM: 150 } })).id;
      campaignA = (await ok('POST', '/campaigns', campaignInput('A', storeS, 50))).id;
      await ok('POST', '/campaigns', campaignInput('B', storeT, 0));

      // Ten members the holdout treats and five it holds out, chosen by their stable bucket in campaign A.
      while (treated.length < 10 || control.length < 5) {
        const id = randomUUID();
        const group = holdoutBucket(id, campaignA) < 50 ? control : treated;
        if (group.length < (group === control ? 5 : 10)) group.push(await member(id));
      }

      // Day 1, 12:00 in New York: all fifteen check in at S. Treated get an offer, control are held out.
      for (const m of [...treated, ...control]) {
        const d = await checkin(m, S_IN);
        expect([d.campaignId, d.outcome]).toEqual([campaignA, treated.includes(m) ? 'offer_queued' : 'held_out']);
        firstDecision.set(m, d.id);
      }
      await settled();

      // Half an hour later T1..T6 and C1 leave (their visits end; the check-ins away match no campaign).
      clock = new Date(D1.getTime() + 0.5 * H);
      for (const m of [...treated.slice(0, 6), control[0]!]) expect((await checkin(m, AWAY)).campaignId).toBeNull();

      // An edit before day 2: decisions from now on name version 2 (same holdout, so the same groups).
      await ok('PUT', `/campaigns/${campaignA}`, campaignInput('A v2', storeS, 50));

      // Day 2, 13:00: T1..T6 and C1 come back (a new visit each); C2, who never left, checks in again
      // (another held-out decision, no new visit); C3 visits store T instead (not one of A's places).
      clock = D2;
      for (const m of treated.slice(0, 6)) expect((await checkin(m, S_IN)).outcome).toBe('offer_queued');
      expect((await checkin(control[0]!, S_IN)).outcome).toBe('held_out');
      expect((await checkin(control[1]!, S_IN)).outcome).toBe('held_out');
      expect((await checkin(control[2]!, T_IN)).campaignId).not.toBe(campaignA);
      await settled();

      // T1..T4 redeem their day-1 coupons at S with amounts; T4's is voided within the window.
      clock = new Date(D2.getTime() + H);
      const redeemed = [];
      for (const [i, amount] of [10, 20, 30, 40].entries()) {
        redeemed.push(await ok('POST', '/redemptions', { code: await couponOf(firstDecision.get(treated[i]!)!), storeId: storeS, amount }));
      }
      clock = new Date(clock.getTime() + 10 * 60_000);
      await ok('POST', `/redemptions/${redeemed[3].id}/void`, { storeId: storeS });

      // The carrier's reports, as its status callbacks would record them: T1..T4's day-1 SMS delivered, T5's not.
      await sql(`UPDATE deliveries SET status = 'delivered' WHERE decision_id = ANY($1::uuid[])`, [treated.slice(0, 4).map((m) => firstDecision.get(m))]);
      await sql(`UPDATE deliveries SET status = 'undelivered' WHERE decision_id = $1`, [firstDecision.get(treated[4]!)]);
    });

    // Hand computation, campaign A.
    // Decisions: day 1, 15 (10 offer_queued + 5 held_out); day 2, 8 (6 offer_queued + 2 held_out). Total 23.
    // Offered 16; all 16 handed to the carrier (sent; undelivered still counts as sent); delivered 4.
    // Redeemed: 4 minus the voided one = 3, worth 10 + 20 + 30 = 60; redemption rate 3 / 16 = 0.1875.
    // Lift units: each member once, at their day-1 decision: treated 10, control 5 (C1 and C2 decided twice).
    // Converted (a new visit at S within 7 days): treated T1..T6 = 6 → 0.6; control C1 = 1 → 0.2 (C2 never
    // left; C3 went to T). Absolute lift 0.4, relative 0.4 / 0.2 = 2.
    // Newcombe 95% CI: Wilson 6/10 = [0.312674, 0.831820], Wilson 1/5 = [0.036224, 0.624465];
    // low = 0.4 - sqrt(0.287326² + 0.424465²) = -0.112569; high = 0.4 + sqrt(0.231820² + 0.163776²) = 0.683836.
    const funnel = { decisions: 23, heldOut: 7, offered: 16, notSent: 0, sent: 16, delivered: 4, redeemed: 3, redeemedAmount: 60, redemptionRate: 0.1875 };

    it('counts the funnel, and keeps lift pending while the members\' windows are open', async () => {
      clock = new Date(D1.getTime() + 48 * H);
      const r = await ok('GET', `/campaigns/${campaignA}/report`);
      expect(r.scope).toEqual({ kind: 'campaign', id: campaignA, name: 'A v2' });
      expect(r.range).toEqual({ from: null, to: null, timeZone: 'America/New_York' });
      expect(r.definitions).toMatchObject({ outcome: 'return_visit', windowDays: 7, interval: 'newcombe_hybrid_score', confidence: 0.95 });
      expect(r.totals).toMatchObject(funnel);
      expect(r.totals.lift).toMatchObject({ pending: 15, treated: { members: 0 }, control: { members: 0 }, absolute: null, ci95: null });
      expect(r.days).toBeUndefined();
    });

    it('gives the lift over the holdout with its 95% interval once the windows have closed', async () => {
      clock = new Date(D1.getTime() + 8 * 24 * H);
      const r = await ok('GET', `/campaigns/${campaignA}/report`);
      expect(r.totals).toMatchObject(funnel);
      const l = r.totals.lift;
      expect(l.pending).toBe(0);
      expect(l.treated).toEqual({ members: 10, converted: 6, rate: 0.6 });
      expect(l.control).toEqual({ members: 5, converted: 1, rate: 0.2 });
      expect(l.absolute).toBeCloseTo(0.4, 10);
      expect(l.relative).toBeCloseTo(2, 10);
      expect(l.ci95.low).toBeCloseTo(-0.112569, 5);
      expect(l.ci95.high).toBeCloseTo(0.683836, 5);
      expect(l.significant).toBe(false);
    });

    it('counts a return only within the window: one day is too short for a visit 25 hours later', async () => {
      const r = await ok('GET', `/campaigns/${campaignA}/report?windowDays=1`);
      // 0/10 vs 0/5. Wilson 0/10 = [0, 0.277533]; Wilson 0/5: centre = half = (z²/10) / (1 + z²/5) = 0.384146 / 1.768292
      // = 0.217241, so [0, 0.434482]. low = 0 - 0.434482, high = 0 + 0.277533; relative undefined (control rate 0).
      expect(r.definitions.windowDays).toBe(1);
      expect(r.totals.lift).toMatchObject({ treated: { members: 10, converted: 0 }, control: { members: 5, converted: 0 }, absolute: 0, relative: null });
      expect(r.totals.lift.ci95.low).toBeCloseTo(-0.434482, 5);
      expect(r.totals.lift.ci95.high).toBeCloseTo(0.277533, 5);
    });

    it('breaks the report down by day in the report time zone, and filters by a date range', async () => {
      const byDay = await ok('GET', `/campaigns/${campaignA}/report?groupBy=day`);
      expect(byDay.days.map((d: { day: string }) => d.day)).toEqual(['2026-06-03', '2026-06-04']);
      expect(byDay.days[0]).toMatchObject({
        decisions: 15, heldOut: 5, offered: 10, sent: 10, delivered: 4, redeemed: 3, redeemedAmount: 60, redemptionRate: 0.3,
        lift: { treated: { members: 10, converted: 6 }, control: { members: 5, converted: 1 } },
      });
      // Day 2's decisions are all second decisions of members already counted: no lift units that day.
      expect(byDay.days[1]).toMatchObject({
        decisions: 8, heldOut: 2, offered: 6, sent: 6, delivered: 0, redeemed: 0, redemptionRate: 0,
        lift: { treated: { members: 0 }, control: { members: 0 }, absolute: null },
      });
      expect(byDay.totals).toMatchObject(funnel);

      // 16:00Z is 01:00 the next day in Tokyo, 17:00Z 02:00.
      const tokyo = await ok('GET', `/campaigns/${campaignA}/report?groupBy=day&timeZone=Asia/Tokyo`);
      expect(tokyo.days.map((d: { day: string; decisions: number }) => [d.day, d.decisions])).toEqual([['2026-06-04', 15], ['2026-06-05', 8]]);

      const day2 = await ok('GET', `/campaigns/${campaignA}/report?from=2026-06-04&to=2026-06-04`);
      expect(day2.range).toEqual({ from: '2026-06-04', to: '2026-06-04', timeZone: 'America/New_York' });
      expect(day2.totals).toMatchObject({ decisions: 8, heldOut: 2, offered: 6, redeemed: 0, lift: { treated: { members: 0 }, control: { members: 0 } } });
      const day1 = await ok('GET', `/campaigns/${campaignA}/report?from=2026-06-01&to=2026-06-03`);
      expect(day1.totals).toMatchObject({ decisions: 15, offered: 10, redeemed: 3, lift: { treated: { members: 10, converted: 6 } } });
    });

    it('reports a store over its own campaigns only, in total and per campaign', async () => {
      const s = await ok('GET', `/stores/${storeS}/report`);
      expect(s.scope).toEqual({ kind: 'store', id: storeS, name: 'S' });
      expect(s.totals).toMatchObject(funnel);
      expect(s.totals.lift).toMatchObject({ treated: { members: 10, converted: 6 }, control: { members: 5, converted: 1 } });
      expect(s.campaigns).toHaveLength(1);
      expect(s.campaigns[0]).toMatchObject({ campaignId: campaignA, name: 'A v2', ...funnel });
      // Store T: C3's one offer from campaign B, 7 days ago less an hour: its window is still open.
      const t = await ok('GET', `/stores/${storeT}/report`);
      expect(t.totals).toMatchObject({ decisions: 1, offered: 1, heldOut: 0, redeemed: 0, lift: { pending: 1, treated: { members: 0 } } });
    });

    it('refuses bad report requests with stable codes', async () => {
      const bad = async (url: string) => {
        const r = await call('GET', url);
        return [r.status, r.body.error.code];
      };
      expect(await bad(`/campaigns/${campaignA}/report?from=2026-06-05&to=2026-06-01`)).toEqual([400, 'REPORT_RANGE_INVALID']);
      expect(await bad(`/campaigns/${campaignA}/report?groupBy=day&from=2025-01-01&to=2026-06-01`)).toEqual([400, 'REPORT_RANGE_INVALID']);
      expect(await bad(`/campaigns/${campaignA}/report?from=2026-02-30`)).toEqual([400, 'VALIDATION_FAILED']);
      expect(await bad(`/campaigns/${campaignA}/report?timeZone=Mars/Olympus`)).toEqual([400, 'VALIDATION_FAILED']);
      expect(await bad(`/campaigns/${campaignA}/report?windowDays=0`)).toEqual([400, 'VALIDATION_FAILED']);
      expect(await bad(`/campaigns/${campaignA}/report?groupBy=week`)).toEqual([400, 'VALIDATION_FAILED']);
      expect(await bad(`/campaigns/${campaignA}/report?campaign=x`)).toEqual([400, 'VALIDATION_FAILED']);
      expect(await bad(`/campaigns/${randomUUID()}/report`)).toEqual([404, 'CAMPAIGN_NOT_FOUND']);
      expect(await bad(`/stores/${randomUUID()}/report`)).toEqual([404, 'STORE_NOT_FOUND']);
    });

    it("shows each offer's chain on the member record: redemption, coupon, delivery, decision, visit, campaign version", async () => {
      const t1 = treated[0]!;
      const rec = await ok('GET', `/members/${t1}`);
      expect(rec.offerSummary).toEqual({ received: 2, sent: 2, delivered: 1, redeemed: 1, redeemedAmount: 10 });
      expect(rec.rfm).toEqual({ status: 'withheld', reason: 'CONSENT_MISSING' });
      const visits = await sql<{ id: string; started_at: Date; ended_at: Date | null }>(
        'SELECT id, started_at, ended_at FROM visits WHERE member_id = $1 ORDER BY started_at', [t1]);
      expect(visits).toHaveLength(2);
      const [second, first] = rec.offers;
      expect(first).toMatchObject({
        couponCode: await couponOf(firstDecision.get(t1)!),
        campaignId: campaignA,
        delivery: { status: 'delivered' },
        redemption: { storeId: storeS, amount: 10 },
        decision: { id: firstDecision.get(t1), outcome: 'offer_queued', trigger: 'checkin', occurredAt: D1.toISOString() },
        visit: { id: visits[0]!.id, storeId: storeS, startedAt: D1.toISOString(), endedAt: new Date(D1.getTime() + 0.5 * H).toISOString() },
        campaignVersion: { version: 1, name: 'A' },
      });
      expect(first.decision.checkinId).toEqual(expect.any(String));
      expect(second).toMatchObject({
        redemption: null,
        decision: { outcome: 'offer_queued', occurredAt: D2.toISOString() },
        visit: { id: visits[1]!.id, startedAt: D2.toISOString(), endedAt: null },
        campaignVersion: { version: 2, name: 'A v2' },
      });
      // T4's redemption was voided: the coupon shows none, and nothing counts as redeemed.
      const t4 = await ok('GET', `/members/${treated[3]}`);
      expect(t4.offers[1]).toMatchObject({ couponCode: await couponOf(firstDecision.get(treated[3]!)!), redemption: null });
      expect(t4.offerSummary).toEqual({ received: 2, sent: 2, delivered: 1, redeemed: 0, redeemedAmount: 0 });
    });
  });

  it('matches RFM audiences only with profiling consent, and the decision trace says why not', async () => {
    const J1 = new Date('2026-07-01T16:00:00Z'); // 12:00 in New York
    clock = J1;
    const near = (p: { lat: number; lon: number }) => ({ lat: p.lat + 0.0003, lon: p.lon });
    const plainAt = { lat: 41.0, lon: -74.2 };
    const vipAt = { lat: 41.05, lon: -74.2 };
    const plain = (await ok('POST', '/stores', { name: 'Plain', timeZone: 'America/New_York', location: plainAt, geofence: { radiusM: 100 } })).id;
    const vip = (await ok('POST', '/stores', { name: 'VIP', timeZone: 'America/New_York', location: vipAt, geofence: { radiusM: 100 } })).id;
    await ok('POST', '/campaigns', { name: 'Plain', storeId: plain, trigger: { kind: 'checkin' }, offer: { title: 'P', message: 'P: {code}' } });
    const audience = { valueTiers: ['high', 'top'], minRecencyScore: 4 };
    const vipCampaign = (await ok('POST', '/campaigns', {
      name: 'VIP', storeId: vip, trigger: { kind: 'checkin' }, audience, offer: { title: 'V', message: 'V: {code}' },
    })).id;

    // Schema: unknown segments and scores out of 1..5 are refused.
    for (const a of [{ rfmSegments: ['vip'] }, { valueTiers: ['gold'] }, { minRecencyScore: 6 }, { minMonetaryScore: 0 }]) {
      const r = await call('POST', '/campaigns/validate', { name: 'x', storeId: vip, trigger: { kind: 'checkin' }, audience: a, offer: { title: 'x', message: 'x' } });
      expect([r.status, r.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
    }
    const negative = await call('POST', '/redemptions', { code: 'ABCDEFGHJKMN0', storeId: plain, amount: -1 });
    expect([negative.status, negative.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);

    // P redeems a coupon worth 250 at the plain store: R5 (today), F1 (one redemption), M4 (200-499.99) → recent, high.
    const p = await member(randomUUID());
    const offer = await checkin(p, near(plainAt));
    expect(offer.outcome).toBe('offer_queued');
    const redemption = await ok('POST', '/redemptions', { code: await couponOf(offer.id), storeId: plain, amount: 250 });
    expect(redemption.amount).toBe(250);

    // Five hours later (past the contact limit) P is at the VIP store, without profiling consent: no match.
    clock = new Date(J1.getTime() + 5 * H);
    const refused = await checkin(p, near(vipAt));
    expect([refused.outcome, refused.reasonCode]).toEqual(['no_match', 'AUDIENCE']);
    const why = refused.trace.evaluation.candidates.find((c) => c.campaignId === vipCampaign);
    expect(why?.failed).toEqual({
      condition: 'audience', rule: 'valueTiers', expected: ['high', 'top'], actual: null, withheld: { purpose: 'profiling', reason: 'CONSENT_MISSING' },
    });
    expect((await ok('GET', `/members/${p}`)).rfm).toEqual({ status: 'withheld', reason: 'CONSENT_MISSING' });

    // With profiling consent the profile exists and the same member matches.
    await grantConsents(gw, p, null, ['profiling']);
    expect((await ok('GET', `/members/${p}`)).rfm).toEqual({
      status: 'profiled',
      profile: { recency: 5, frequency: 1, monetary: 4, segment: 'recent', valueTier: 'high', daysSinceLastRedemption: 0, redemptions: 1, amount: 250 },
    });
    clock = new Date(clock.getTime() + 60_000);
    const matched = await checkin(p, near(vipAt));
    expect([matched.outcome, matched.campaignId]).toEqual(['offer_queued', vipCampaign]);

    // Profiling consent without the value: the failure names the member's tier, not consent.
    const q = await member(randomUUID(), ['location', 'sms_marketing', 'profiling']);
    const low = await checkin(q, near(vipAt));
    expect([low.outcome, low.reasonCode]).toEqual(['no_match', 'AUDIENCE']);
    expect(low.trace.evaluation.candidates.find((c) => c.campaignId === vipCampaign)?.failed)
      .toEqual({ condition: 'audience', rule: 'valueTiers', expected: ['high', 'top'], actual: 'low' });

    // Withdrawn, the profile is gone again.
    await ok('POST', `/members/${p}/consents`, { purpose: 'profiling', action: 'withdraw', source: 'app' });
    expect((await ok('GET', `/members/${p}`)).rfm).toEqual({ status: 'withheld', reason: 'CONSENT_WITHDRAWN' });
  });
});
