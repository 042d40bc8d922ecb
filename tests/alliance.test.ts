// Alliance offers end to end: a partner publishes an offer; a brand's campaign hands it to members who agreed to
// partners' offers (and says why not to the others); the coupon redeems only at the partner's stores, with the
// partner's key; issue and redemption budgets hold under concurrency; a withdrawn offer issues no more coupons.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nearestOffers } from '../campaign-rules/index.js';
import { checkCharacter } from '../gateway/domain/coupons.js';
import { as, keyFor, startGateway, type TestGateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';

const START = new Date('2026-06-03T16:00:00Z'); // Wednesday 12:00 in New York
const DAY = 86_400_000;
const ALL = ['location', 'sms_marketing', 'partner_offers'];
const NO_PARTNER = ['location', 'sms_marketing'];

// Each test has its own neighbourhood: brand store at (lat, lon), partner stores ~220 m north and ~5.5 km north.
const place = (n: number) => ({ lat: 40 + n / 10, lon: -74 });
const north = (p: { lat: number; lon: number }, m: number) => ({ lat: p.lat + m / 111_320, lon: p.lon });

describe('nearestOffers', () => {
  const o = { lat: 40, lon: -74 };
  const at = (m: number) => north(o, m);
  // north() steps 1/111,320 of a degree per metre; on geolib's sphere that is 1.000005 m, rounded away in the table.
  it.each([
    ['each offer once, at its nearest store, nearest first', [['p', 's1', 900], ['p', 's2', 100], ['q', 's3', 500]], 1000, [], [['p', 's2', 100], ['q', 's3', 500]]],
    ['a store beyond reach does not count', [['p', 's1', 1200], ['q', 's2', 999]], 1000, [], [['q', 's2', 999]]],
    ['the same distance: the campaign\'s order decides', [['q', 's1', 300], ['p', 's2', 300]], 1000, ['p', 'q'], [['p', 's2', 300], ['q', 's1', 300]]],
    ['nothing available', [], 1000, [], []],
  ] as const)('%s', (_name, stores, withinM, preference, expected) => {
    const found = nearestOffers(o, stores.map(([offerId, storeId, m]) => ({ offerId, storeId, location: at(m) })), withinM, preference);
    expect(found.map((f) => [f.offerId, f.storeId, Math.round(f.distanceM)])).toEqual(expected.map((e) => [...e]));
  });
});

describe.each(backends)('alliance offers on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: TestGateway;
  let clock = START;
  let phoneSeq = 3000;
  let brandX: string;
  let partnerA: string;
  let partnerB: string;
  let marketerX: string;
  let merchantX: string;
  let merchantA: string;
  let merchantB: string;

  type Call = { status: number; body: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const call = async (method: 'GET' | 'POST', url: string, payload?: object, key?: string): Promise<Call> => {
    const res = await gw.app.inject({ method, url, ...(payload ? { payload } : {}), ...(key ? { headers: as(key) } : {}) });
    return { status: res.statusCode, body: res.json() };
  };
  const ok = async (method: 'GET' | 'POST', url: string, payload?: object, key?: string) => {
    const res = await call(method, url, payload, key);
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const sql = <R extends object>(text: string, values?: unknown[]) => gw.deps.db.query<R>(text, values);

  const store = async (merchantId: string, name: string, at: { lat: number; lon: number }, radiusM?: number) =>
    (await ok('POST', '/stores', { merchantId, name, timeZone: 'America/New_York', location: at, ...(radiusM ? { geofence: { radiusM } } : {}) })).id as string;
  const member = async (purposes: string[]) => {
    const phone = `+1415555${++phoneSeq}`;
    const m = await ok('POST', '/members', { phone, timeZone: 'America/New_York' });
    await grantConsents(gw, m.id, phone, purposes);
    return m.id as string;
  };
  const checkin = async (memberId: string, at: { lat: number; lon: number }) =>
    (await ok('POST', '/checkins', { memberId, ...at, accuracyM: 10, at: clock.toISOString() })).decisions[0];
  const couponOf = async (decisionId: string) =>
    (await sql<{ code: string; alliance_offer_id: string | null; expires_at: Date }>('SELECT code, alliance_offer_id, expires_at FROM coupons WHERE decision_id = $1', [decisionId]))[0]!;
  const settled = () => eventually(async () => {
    const [row] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM deliveries WHERE status IN ('queued', 'sending')`);
    return row!.n === 0 ? true : undefined;
  });
  const offer = (extra: object = {}) => ({
    title: 'Partner treat', message: 'Show code {code} for 5 off at our bakery', faceValue: 5.5,
    validFrom: new Date(START.getTime() - DAY).toISOString(), validTo: new Date(START.getTime() + 30 * DAY).toISOString(), validDays: 7, ...extra,
  });
  const campaign = (storeId: string, offerIds: string[], extra: object = {}) => ({
    name: 'With partners', storeId, trigger: { kind: 'checkin' }, offer: { title: 'Partner offer', message: 'unused {code}' },
    alliance: { offerIds, near: 'store', withinM: 1000 }, ...extra,
  });

  beforeAll(async () => {
    iso = isolatedConfig(backend, { REDEMPTION_VOID_WINDOW_MINUTES: '30' });
    gw = await startGateway(iso.config, { now: () => clock });
    brandX = (await ok('POST', '/merchants', { kind: 'brand', name: 'Brand X' })).id;
    partnerA = (await ok('POST', '/merchants', { kind: 'partner', name: 'Bakery A' })).id;
    partnerB = (await ok('POST', '/merchants', { kind: 'partner', name: 'Florist B' })).id;
    marketerX = await keyFor(gw, 'marketer', { merchantId: brandX });
    merchantX = await keyFor(gw, 'merchant', { merchantId: brandX });
    merchantA = await keyFor(gw, 'merchant', { merchantId: partnerA });
    merchantB = await keyFor(gw, 'merchant', { merchantId: partnerB });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  describe('a partner offer in a brand campaign', () => {
    const at = place(1);
    let xs: string;
    let a1: string;
    let a2: string;
    let b1: string;
    let offerId: string;
    let withConsent: string;
    let code: string;

    beforeAll(async () => {
      clock = START;
      xs = await store(brandX, 'X Main St', at, 150);
      a1 = await store(partnerA, 'A near', north(at, 220));
      a2 = await store(partnerA, 'A far', north(at, 5_500));
      b1 = await store(partnerB, 'B near', north(at, 300));
    });

    it('is published by the partner with its stores, and listed to brands while valid', async () => {
      const published = await call('POST', '/alliance-offers', offer(), merchantA);
      expect(published.status).toBe(201);
      expect(published.body).toMatchObject({
        merchantId: partnerA, faceValue: 5.5, status: 'published', validDays: 7, budget: { maxIssued: null, maxRedemptions: null },
      });
      expect([...published.body.storeIds].sort()).toEqual([a1, a2].sort());
      offerId = published.body.id;
      const listed = await ok('GET', '/alliance-offers', undefined, marketerX);
      expect(listed.allianceOffers.map((o: { id: string }) => o.id)).toContain(offerId);
      expect((await call('GET', `/alliance-offers/${offerId}`, undefined, marketerX)).status).toBe(200);
      // Not yet valid: published, but not listed for campaigns.
      const later = await ok('POST', '/alliance-offers', offer({ validFrom: new Date(START.getTime() + 2 * DAY).toISOString() }), merchantA);
      expect((await ok('GET', '/alliance-offers', undefined, marketerX)).allianceOffers.map((o: { id: string }) => o.id)).not.toContain(later.id);
      expect((await ok('GET', '/alliance-offers', undefined, merchantB)).allianceOffers).toEqual([]);
    });

    it('is sent to a member who agreed to partner offers, and not to one who did not, with the reason', async () => {
      await ok('POST', '/campaigns', campaign(xs, [offerId]), marketerX);
      withConsent = await member(ALL);
      const sent = await checkin(withConsent, north(at, 20));
      expect([sent.outcome, sent.reasonCode]).toEqual(['offer_queued', null]);
      expect(sent.trace.alliance).toMatchObject({ near: 'store', from: 'campaign_store', chosen: { offerId, partnerId: partnerA, storeId: a1 } });
      expect(sent.trace.alliance.candidates).toHaveLength(1); // the far store is 5.5 km away, B's offer is not in the campaign
      const coupon = await couponOf(sent.id);
      code = coupon.code;
      expect(coupon.alliance_offer_id).toBe(offerId);
      expect(coupon.expires_at.toISOString()).toBe(new Date(START.getTime() + 7 * DAY).toISOString());
      await settled();
      const [delivery] = await sql<{ body: string; status: string }>('SELECT body, status FROM deliveries WHERE coupon_id = (SELECT id FROM coupons WHERE code = $1)', [code]);
      expect(delivery!.body).toContain(`Show code ${code} for 5 off at our bakery`);
      // The member's record names the offer they received: the partner's, not the campaign's placeholder.
      const record = await gw.app.inject({ method: 'GET', url: `/members/${withConsent}` });
      expect(record.json().offers.map((o: { couponCode: string; title: string }) => [o.couponCode, o.title])).toEqual([[code, 'Partner treat']]);

      const without = await member(NO_PARTNER);
      const refused = await checkin(without, north(at, 20));
      expect([refused.outcome, refused.reasonCode]).toEqual(['not_sent', 'PARTNER_CONSENT_REQUIRED']);
      expect(refused.trace.consent.partner_offers).toMatchObject({ allowed: false, reason: 'CONSENT_MISSING', purpose: 'partner_offers' });
      expect(refused.trace.note).toMatch(/partner_offers consent is not granted/);
      expect(await sql('SELECT 1 FROM coupons WHERE decision_id = $1', [refused.id])).toEqual([]);
    });

    it("redeems only at the partner's stores with the partner's key; elsewhere the code does not exist", async () => {
      const unknown = `ZZZZZZZZZZZZ${checkCharacter('ZZZZZZZZZZZZ')}`;
      const notFound = (c: string) => ({ status: 404, body: { error: { code: 'COUPON_NOT_FOUND', message: `no coupon has code ${c}` } } });
      // The brand that handed it out, at its own store: exactly what an unknown code gets.
      expect(await call('POST', '/redemptions', { code, storeId: xs }, merchantX)).toEqual(notFound(code));
      expect(await call('POST', '/redemptions', { code: unknown, storeId: xs }, merchantX)).toEqual(notFound(unknown));
      // Another partner, at its own store; and at the partner's store with the wrong key, the store is not theirs.
      expect(await call('POST', '/redemptions', { code, storeId: b1 }, merchantB)).toEqual(notFound(code));
      expect((await call('POST', '/redemptions', { code, storeId: a1 }, merchantB)).body.error.code).toBe('STORE_NOT_FOUND');
      // An administrator hears why, without a store of another merchant named.
      const admin = await call('POST', '/redemptions', { code, storeId: xs });
      expect([admin.status, admin.body.error.code, admin.body.error.details]).toEqual([409, 'COUPON_NOT_VALID_AT_STORE', { merchantId: partnerA }]);

      // At the partner's till: a till of another store is refused; its own is recorded.
      const farTill = await ok('POST', `/stores/${a2}/tills`, { name: 'far 1' });
      const till = await ok('POST', `/stores/${a1}/tills`, { name: 'front' });
      const wrongTill = await call('POST', '/redemptions', { code, storeId: a1, tillId: farTill.id }, merchantA);
      expect([wrongTill.status, wrongTill.body.error.code]).toEqual([409, 'TILL_AT_OTHER_STORE']);
      const bTill = await ok('POST', `/stores/${b1}/tills`, { name: 'b 1' });
      expect((await call('POST', '/redemptions', { code, storeId: a1, tillId: bTill.id }, merchantA)).body.error.code).toBe('TILL_NOT_FOUND');
      const redeemed = await call('POST', '/redemptions', { code, storeId: a1, tillId: till.id, tillRef: 'front' }, merchantA);
      expect(redeemed.status).toBe(201);
      expect(redeemed.body).toMatchObject({ couponCode: code, memberId: withConsent, storeId: a1, tillId: till.id });
      const [row] = await sql<{ till_id: string }>('SELECT till_id FROM redemptions WHERE id = $1', [redeemed.body.id]);
      expect(row!.till_id).toBe(till.id);
      // Redeemed: still nothing to tell another merchant; the partner's second try is told.
      expect(await call('POST', '/redemptions', { code, storeId: xs }, merchantX)).toEqual(notFound(code));
      expect((await call('POST', '/redemptions', { code, storeId: a2 }, merchantA)).body.error.code).toBe('COUPON_ALREADY_REDEEMED');
      // The partner voids it (it is the partner's redemption), and it redeems at the other store of the partner.
      expect((await call('POST', `/redemptions/${redeemed.body.id}/void`, { storeId: a1 }, merchantX)).status).toBe(404);
      expect((await call('POST', `/redemptions/${redeemed.body.id}/void`, { storeId: a1 }, merchantA)).status).toBe(201);
      expect((await call('POST', '/redemptions', { code, storeId: a2 }, merchantA)).status).toBe(201);
    });

    it("keeps a brand's own coupons at its stores: other merchants get COUPON_NOT_FOUND, its other stores validAt", async () => {
      const at2 = place(2);
      const own = await store(brandX, 'X Second St', at2, 150);
      const other = await store(brandX, 'X Third St', north(at2, 3_000));
      await ok('POST', '/campaigns', { name: 'Own coupon', storeId: own, trigger: { kind: 'checkin' }, offer: { title: 'Own', message: 'Own {code}' } }, marketerX);
      const d = await checkin(await member(NO_PARTNER), north(at2, 20));
      expect(d.outcome).toBe('offer_queued');
      const own1 = (await couponOf(d.id)).code;
      expect(await call('POST', '/redemptions', { code: own1, storeId: a1 }, merchantA)).toEqual({
        status: 404, body: { error: { code: 'COUPON_NOT_FOUND', message: `no coupon has code ${own1}` } },
      });
      const elsewhere = await call('POST', '/redemptions', { code: own1, storeId: other }, merchantX);
      expect([elsewhere.status, elsewhere.body.error.code, elsewhere.body.error.details]).toEqual([409, 'COUPON_NOT_VALID_AT_STORE', { validAt: own }]);
      // With a till and a request id: a retry gets the first answer, till and all.
      const till = await ok('POST', `/stores/${own}/tills`, { name: 'till 1' });
      const first = await call('POST', '/redemptions', { code: own1, storeId: own, tillId: till.id, requestId: 'r-1' }, merchantX);
      expect([first.status, first.body.tillId]).toEqual([201, till.id]);
      expect(await call('POST', '/redemptions', { code: own1, storeId: own, tillId: till.id, requestId: 'r-1' }, merchantX)).toEqual(first);
      // The request id again with the partner's coupon: the code still does not exist for the brand.
      expect(await call('POST', '/redemptions', { code, storeId: own, requestId: 'r-1' }, merchantX)).toEqual({
        status: 404, body: { error: { code: 'COUPON_NOT_FOUND', message: `no coupon has code ${code}` } },
      });
    });

    it("is valid only at the offer's stores when the partner names them", async () => {
      const at3 = place(3);
      const xs3 = await store(brandX, 'X Fourth St', at3, 150);
      const near = await store(partnerA, 'A corner', north(at3, 200));
      const notListed = await store(partnerA, 'A kiosk', north(at3, 400));
      const only = await ok('POST', '/alliance-offers', offer({ storeIds: [near] }), merchantA);
      expect(only.storeIds).toEqual([near]);
      await ok('POST', '/campaigns', campaign(xs3, [only.id]), marketerX);
      const d = await checkin(await member(ALL), north(at3, 20));
      const c = (await couponOf(d.id)).code;
      const refused = await call('POST', '/redemptions', { code: c, storeId: notListed }, merchantA);
      expect([refused.status, refused.body.error.code, refused.body.error.details]).toEqual([409, 'COUPON_NOT_VALID_AT_STORE', { validAtStores: [near] }]);
      expect((await call('POST', '/redemptions', { code: c, storeId: near }, merchantA)).status).toBe(201);
    });
  });

  it('picks the nearest available offer to the member, and says when none is near enough', async () => {
    clock = START;
    const at = place(4);
    await store(brandX, 'X Fifth St', at, 150);
    const farStore = await store(partnerA, 'A 900 m', north(at, 900));
    const nearStore = await store(partnerB, 'B 400 m', north(at, 400));
    const far = await ok('POST', '/alliance-offers', offer({ storeIds: [farStore] }), merchantA);
    const near = await ok('POST', '/alliance-offers', offer({ storeIds: [nearStore], message: 'Flowers: {code}' }), merchantB);
    // A campaign without a store, on the brand's geofence: measured from the member.
    const fence = await ok('POST', '/geofences', { name: 'X Fifth St area', shape: { kind: 'circle', center: at, radiusM: 150 } }, marketerX);
    await ok('POST', '/campaigns', {
      name: 'Near the member', geofenceIds: [fence.id], trigger: { kind: 'checkin' }, offer: { title: 'x', message: 'x {code}' },
      alliance: { offerIds: [far.id, near.id], near: 'member', withinM: 1000 },
    }, marketerX);
    const d = await checkin(await member(ALL), at);
    expect(d.outcome).toBe('offer_queued');
    expect(d.trace.alliance.from).toBe('member_position');
    expect(d.trace.alliance.candidates.map((c: { offerId: string }) => c.offerId)).toEqual([near.id, far.id]);
    expect(d.trace.alliance.chosen).toMatchObject({ offerId: near.id, partnerId: partnerB, storeId: nearStore });
    expect((await couponOf(d.id)).alliance_offer_id).toBe(near.id);

    // Another brand campaign whose partner store is out of reach.
    const at5 = place(5);
    const xs5 = await store(brandX, 'X Sixth St', at5, 150);
    const out = await ok('POST', '/alliance-offers', offer({ storeIds: [await store(partnerA, 'A 3 km', north(at5, 3_000))] }), merchantA);
    await ok('POST', '/campaigns', campaign(xs5, [out.id]), marketerX);
    const none = await checkin(await member(ALL), north(at5, 20));
    expect([none.outcome, none.reasonCode]).toEqual(['not_sent', 'ALLIANCE_OFFER_UNAVAILABLE']);
    expect(none.trace.alliance.candidates).toEqual([]);
  });

  it('never overruns the issue budget or the redemption budget under concurrency', async () => {
    clock = START;
    const at = place(6);
    const xs = await store(brandX, 'X Seventh St', at, 150);
    const a = await store(partnerA, 'A budget', north(at, 200));
    const limited = await ok('POST', '/alliance-offers', offer({ budget: { maxIssued: 4, maxRedemptions: 2 } }), merchantA);
    expect(limited.budget).toEqual({ maxIssued: 4, maxRedemptions: 2 });
    await ok('POST', '/campaigns', campaign(xs, [limited.id]), marketerX);
    const members = [];
    for (let i = 0; i < 10; i++) members.push(await member(ALL));
    const decisions = await Promise.all(members.map((m) => checkin(m, north(at, 20))));
    expect(decisions.filter((d) => d.outcome === 'offer_queued')).toHaveLength(4);
    expect(new Set(decisions.filter((d) => d.outcome !== 'offer_queued').map((d) => `${d.outcome} ${d.reasonCode}`))).toEqual(
      new Set(['not_sent ALLIANCE_OFFER_UNAVAILABLE']),
    );
    const [counts] = await sql<{ coupons: number; issued: number }>(
      'SELECT (SELECT count(*)::int FROM coupons WHERE alliance_offer_id = $1) AS coupons, (SELECT issued FROM alliance_offers WHERE id = $1) AS issued', [limited.id]);
    expect(counts).toEqual({ coupons: 4, issued: 4 });

    const codes = await Promise.all(decisions.filter((d) => d.outcome === 'offer_queued').map(async (d) => (await couponOf(d.id)).code));
    const results = await Promise.all(codes.map((code) => call('POST', '/redemptions', { code, storeId: a }, merchantA)));
    expect(results.filter((r) => r.status === 201)).toHaveLength(2);
    expect(results.filter((r) => r.status !== 201).map((r) => [r.status, r.body.error.code, r.body.error.details])).toEqual([
      [409, 'BUDGET_EXHAUSTED', { allianceOfferId: limited.id, maxRedemptions: 2 }],
      [409, 'BUDGET_EXHAUSTED', { allianceOfferId: limited.id, maxRedemptions: 2 }],
    ]);
    // A void gives one back.
    const won = results.find((r) => r.status === 201)!.body;
    expect((await call('POST', `/redemptions/${won.id}/void`, { storeId: a }, merchantA)).status).toBe(201);
    const left = codes.filter((c) => !results.some((r) => r.status === 201 && r.body.couponCode === c));
    expect((await call('POST', '/redemptions', { code: left[0], storeId: a }, merchantA)).status).toBe(201);
    expect((await call('POST', '/redemptions', { code: left[1], storeId: a }, merchantA)).body.error.code).toBe('BUDGET_EXHAUSTED');
  });

  it('issues no coupon once withdrawn; issued coupons stay redeemable', async () => {
    clock = START;
    const at = place(7);
    const xs = await store(brandX, 'X Eighth St', at, 150);
    const a = await store(partnerA, 'A withdraw', north(at, 200));
    const o = await ok('POST', '/alliance-offers', offer(), merchantA);
    await ok('POST', '/campaigns', campaign(xs, [o.id]), marketerX);
    const first = await checkin(await member(ALL), north(at, 20));
    expect(first.outcome).toBe('offer_queued');

    expect((await call('POST', `/alliance-offers/${o.id}/withdraw`, undefined, merchantB)).body.error.code).toBe('ALLIANCE_OFFER_NOT_FOUND');
    expect((await call('POST', `/alliance-offers/${o.id}/withdraw`, undefined, marketerX)).body.error.code).toBe('FORBIDDEN');
    clock = new Date(START.getTime() + 60_000);
    const withdrawn = await ok('POST', `/alliance-offers/${o.id}/withdraw`, undefined, merchantA);
    expect(withdrawn).toMatchObject({ status: 'withdrawn', withdrawnAt: clock.toISOString() });
    const again = await call('POST', `/alliance-offers/${o.id}/withdraw`, undefined, merchantA);
    expect([again.status, again.body.error.code]).toEqual([409, 'ALLIANCE_OFFER_WITHDRAWN']);
    expect((await ok('GET', '/alliance-offers', undefined, marketerX)).allianceOffers.map((x: { id: string }) => x.id)).not.toContain(o.id);
    // The brand still sees the offer its campaign includes.
    expect((await call('GET', `/alliance-offers/${o.id}`, undefined, marketerX)).status).toBe(200);

    const second = await checkin(await member(ALL), north(at, 20));
    expect([second.outcome, second.reasonCode]).toEqual(['not_sent', 'ALLIANCE_OFFER_UNAVAILABLE']);
    expect((await call('POST', '/redemptions', { code: (await couponOf(first.id)).code, storeId: a }, merchantA)).status).toBe(201);
    // A campaign can no longer include it.
    const refused = await call('POST', '/campaigns', campaign(xs, [o.id]), marketerX);
    expect([refused.status, refused.body.error.code, refused.body.error.details.issues[0].field]).toEqual([400, 'VALIDATION_FAILED', 'body/alliance/offerIds/0']);
  });

  it('refuses bad offers and bad alliance campaigns with stable codes', async () => {
    clock = START;
    const at = place(8);
    const xs = await store(brandX, 'X Ninth St', at, 150);
    const code = async (res: Promise<Call>) => {
      const r = await res;
      return [r.status, r.body.error?.code, r.body.error?.details?.issues?.[0]?.field];
    };
    expect(await code(call('POST', '/alliance-offers', offer(), merchantX))).toEqual([409, 'MERCHANT_NOT_PARTNER', undefined]);
    expect(await code(call('POST', '/alliance-offers', offer({ merchantId: brandX })))).toEqual([409, 'MERCHANT_NOT_PARTNER', undefined]);
    expect(await code(call('POST', '/alliance-offers', offer()))).toEqual([400, 'VALIDATION_FAILED', 'body/merchantId']);
    expect(await code(call('POST', '/alliance-offers', offer({ merchantId: partnerB }), merchantA))).toEqual([404, 'MERCHANT_NOT_FOUND', undefined]);
    expect(await code(call('POST', '/alliance-offers', offer({ storeIds: [xs] }), merchantA))).toEqual([400, 'VALIDATION_FAILED', 'body/storeIds/0']);
    expect(await code(call('POST', '/alliance-offers', offer({ faceValue: 1.234 }), merchantA))).toEqual([400, 'VALIDATION_FAILED', 'body/faceValue']);
    expect(await code(call('POST', '/alliance-offers', offer({ faceValue: -1 }), merchantA))).toEqual([400, 'VALIDATION_FAILED', 'body/faceValue']);
    expect(await code(call('POST', '/alliance-offers', offer({ validTo: START.toISOString(), validFrom: START.toISOString() }), merchantA)))
      .toEqual([400, 'VALIDATION_FAILED', 'body/validTo']);
    expect(await code(call('POST', '/alliance-offers', offer({ colour: 'red' }), merchantA))).toEqual([400, 'VALIDATION_FAILED', 'body/colour']);
    expect(await code(call('POST', '/alliance-offers', offer(), marketerX))).toEqual([403, 'FORBIDDEN', undefined]);
    const bare = (await ok('POST', '/merchants', { kind: 'partner', name: 'No stores yet' })).id;
    expect(await code(call('POST', '/alliance-offers', offer({ merchantId: bare })))).toEqual([409, 'PARTNER_HAS_NO_STORES', undefined]);

    const o = await ok('POST', '/alliance-offers', offer(), merchantA);
    const fence = await ok('POST', '/geofences', { name: 'f', shape: { kind: 'circle', center: at, radiusM: 100 } }, marketerX);
    const noStore = {
      name: 'x', geofenceIds: [fence.id], trigger: { kind: 'checkin' }, offer: { title: 't', message: 'm' }, alliance: { offerIds: [o.id], near: 'store', withinM: 500 },
    };
    expect(await code(call('POST', '/campaigns', noStore, marketerX))).toEqual([400, 'VALIDATION_FAILED', 'body/alliance/near']);
    expect(await code(call('POST', '/campaigns', campaign(xs, ['00000000-0000-4000-8000-00000000abcd']), marketerX)))
      .toEqual([400, 'VALIDATION_FAILED', 'body/alliance/offerIds/0']);
    expect(await code(call('POST', '/campaigns', campaign(xs, [o.id], { alliance: { offerIds: [o.id], near: 'store', withinM: 0 } }), marketerX)))
      .toEqual([400, 'VALIDATION_FAILED', 'body/alliance/withinM']);
    // Another partner's offer cannot be read by a partner; it can by a brand, for its campaigns.
    expect(await code(call('GET', `/alliance-offers/${o.id}`, undefined, merchantB))).toEqual([404, 'ALLIANCE_OFFER_NOT_FOUND', undefined]);
    expect((await call('GET', `/alliance-offers/${o.id}`, undefined, merchantA)).status).toBe(200);
  });
});
