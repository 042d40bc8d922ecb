// Settlement of alliance offers: a seeded history (two brands, a partner with two stores and two offers, some
// redemptions and a void, coupons issued and redeemed on the period's edges), checked against figures worked
// out by hand below, in JSON and CSV, for each party that may read it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, keyFor, startGateway, type TestGateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';

const H = 3_600_000;
const D0 = new Date('2026-05-31T16:00:00Z'); // before the period: 12:00 in New York
const P_FROM = '2026-06-01T00:00:00.000Z'; // 20:00 the evening before in New York: not quiet hours yet
const D1 = new Date('2026-06-03T16:00:00Z');
const LAST = new Date('2026-06-07T23:59:59.000Z');
const P_TO = '2026-06-08T00:00:00.000Z';
const P2_TO = '2026-06-09T00:00:00.000Z';

const XS = { lat: 40.7411, lon: -73.9897 }; // Brand X, Main St
const XS2 = { lat: 40.7451, lon: -73.9897 }; // Brand X, 445 m north
const YS = { lat: 40.7811, lon: -73.9597 }; // Brand Y
const A1 = { lat: 40.7431, lon: -73.9897 }; // Partner A: 222 m from XS and from XS2
const A2 = { lat: 40.7831, lon: -73.9597 }; // Partner A: 222 m from YS
const near = (p: { lat: number; lon: number }) => ({ lat: p.lat + 0.0002, lon: p.lon });

describe.each(backends)('alliance settlement on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: TestGateway;
  let clock = D0;
  let phoneSeq = 5000;
  const id: Record<string, string> = {};
  const key: Record<string, string> = {};
  const coupon: Record<string, string> = {};

  type Call = { status: number; body: any; type: string; text: string }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const call = async (method: 'GET' | 'POST', url: string, payload?: object, k?: string, headers: Record<string, string> = {}): Promise<Call> => {
    const res = await gw.app.inject({ method, url, ...(payload ? { payload } : {}), headers: { ...(k ? as(k) : {}), ...headers } });
    const type = String(res.headers['content-type'] ?? '');
    return { status: res.statusCode, type, text: res.body, body: type.startsWith('application/json') ? res.json() : null };
  };
  const ok = async (method: 'GET' | 'POST', url: string, payload?: object, k?: string) => {
    const res = await call(method, url, payload, k);
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${res.text}`);
    return res.body;
  };
  const sql = <R extends object>(text: string, values?: unknown[]) => gw.deps.db.query<R>(text, values);
  const settled = () => eventually(async () => {
    const [row] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM deliveries WHERE status IN ('queued', 'sending')`);
    return row!.n === 0 ? true : undefined;
  });

  /** A member who agreed to partner offers checks in at a brand store; their coupon is kept under `name`. */
  const issue = async (name: string, at: { lat: number; lon: number }) => {
    const phone = `+1415555${++phoneSeq}`;
    const m = await ok('POST', '/members', { phone, timeZone: 'America/New_York' });
    await grantConsents(gw, m.id, phone, ['location', 'sms_marketing', 'partner_offers']);
    const res = await ok('POST', '/checkins', { memberId: m.id, ...near(at), accuracyM: 10, at: clock.toISOString() });
    expect(res.decisions[0].outcome).toBe('offer_queued');
    coupon[name] = (await sql<{ code: string }>('SELECT code FROM coupons WHERE decision_id = $1', [res.decisions[0].id]))[0]!.code;
  };
  const redeem = async (name: string, store: string) => (await ok('POST', '/redemptions', { code: coupon[name], storeId: id[store] }, key.A)).id as string;
  const setDelivery = (names: string[], status: string) =>
    sql(`UPDATE deliveries SET status = $2 WHERE coupon_id IN (SELECT id FROM coupons WHERE code = ANY($1::text[]))`, [names.map((n) => coupon[n]), status]);

  beforeAll(async () => {
    iso = isolatedConfig(backend, { REDEMPTION_VOID_WINDOW_MINUTES: '30' });
    gw = await startGateway(iso.config, { now: () => clock });
    id.X = (await ok('POST', '/merchants', { kind: 'brand', name: 'Brand X' })).id;
    id.Y = (await ok('POST', '/merchants', { kind: 'brand', name: 'Yoyo, "the" brand' })).id;
    id.A = (await ok('POST', '/merchants', { kind: 'partner', name: 'Partner A' })).id;
    id.B = (await ok('POST', '/merchants', { kind: 'partner', name: 'Partner B' })).id;
    key.X = await keyFor(gw, 'marketer', { merchantId: id.X });
    key.Y = await keyFor(gw, 'marketer', { merchantId: id.Y });
    key.A = await keyFor(gw, 'merchant', { merchantId: id.A });
    key.B = await keyFor(gw, 'merchant', { merchantId: id.B });
    const store = async (merchant: string, name: string, at: object, fence: boolean) =>
      (await ok('POST', '/stores', { merchantId: id[merchant], name, timeZone: 'America/New_York', location: at, ...(fence ? { geofence: { radiusM: 150 } } : {}) })).id;
    id.XS = await store('X', 'X Main', XS, true);
    id.XS2 = await store('X', 'X North', XS2, true);
    id.YS = await store('Y', 'Y Uptown', YS, true);
    id.A1 = await store('A', 'A One', A1, false);
    id.A2 = await store('A', 'A Two, Annex', A2, false);
    await store('B', 'B Only', { lat: 40.7, lon: -74 }, false);

    const window = { validFrom: '2026-05-01T00:00:00Z', validTo: '2026-07-01T00:00:00Z', validDays: 7 };
    id.P = (await ok('POST', '/alliance-offers', { title: 'Pastry', message: 'Pastry {code}', faceValue: 4.25, ...window }, key.A)).id;
    id.Q = (await ok('POST', '/alliance-offers', { title: '=Ten off', message: 'Ten {code}', faceValue: 10, storeIds: [id.A1], ...window }, key.A)).id;
    const campaign = async (marketer: string, name: string, storeId?: string, offerId?: string) => ok('POST', '/campaigns', {
      name, storeId, trigger: { kind: 'checkin' }, offer: { title: name, message: `${name} {code}` }, alliance: { offerIds: [offerId], near: 'store', withinM: 1000 },
    }, key[marketer]);
    await campaign('X', 'CX', id.XS, id.P);
    await campaign('X', 'CX2', id.XS2, id.Q);
    await campaign('Y', 'CY', id.YS, id.P);

    // Before the period: m0 (P, brand X).
    clock = D0;
    await issue('m0', XS);
    await settled();
    // The period's first instant: m10 (P, brand Y).
    clock = new Date(P_FROM);
    await issue('m10', YS);
    await settled();
    // Day 1: m1..m4 (P, X); m5..m7 (P, Y); m8, m9 (Q, X).
    clock = D1;
    for (const m of ['m1', 'm2', 'm3', 'm4']) await issue(m, XS);
    for (const m of ['m5', 'm6', 'm7']) await issue(m, YS);
    for (const m of ['m8', 'm9']) await issue(m, XS2);
    await settled();
    // The carrier confirmed some; one failed.
    await setDelivery(['m1', 'm2', 'm5', 'm8'], 'delivered');
    await setDelivery(['m3'], 'failed');

    // An hour later, at the partner's tills; m3's redemption is voided.
    clock = new Date(D1.getTime() + H);
    await redeem('m0', 'A1');
    await redeem('m1', 'A1');
    await redeem('m2', 'A2');
    const voided = await redeem('m3', 'A1');
    await ok('POST', `/redemptions/${voided}/void`, { storeId: id.A1 }, key.A);
    await redeem('m5', 'A2');
    await redeem('m6', 'A2');
    await redeem('m8', 'A1');
    // The period's last second, and its end (the next period's first instant).
    clock = LAST;
    await redeem('m4', 'A2');
    clock = new Date(P_TO);
    await redeem('m9', 'A1');
    await issue('m11', YS);
    await settled();
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  const period = `from=${P_FROM}&to=${P_TO}`;
  const line = (offer: string, brand: string, store: string | null, n: { issued?: number; sent?: number; delivered?: number; redeemed?: number; value?: number }) => ({
    allianceOfferId: id[offer], partnerId: id.A, brandId: id[brand], storeId: store ? id[store] : null,
    issued: n.issued ?? 0, sent: n.sent ?? 0, delivered: n.delivered ?? 0, redeemed: n.redeemed ?? 0, faceValueRedeemed: n.value ?? 0,
  });
  const pick = (l: Record<string, unknown>) => ({
    allianceOfferId: l.allianceOfferId, partnerId: l.partnerId, brandId: l.brandId, storeId: l.storeId,
    issued: l.issued, sent: l.sent, delivered: l.delivered, redeemed: l.redeemed, faceValueRedeemed: l.faceValueRedeemed,
  });

  // By hand, for [2026-06-01T00:00Z, 2026-06-08T00:00Z):
  // P x X, issue: m1..m4 issued on day 1 (m0 before the period); sent m1, m2 (delivered), m4; m3 failed.
  // P x X x A1: m0 (issued before, redeemed in the period), m1; m3's redemption voided. 2 x 4.25 = 8.50.
  // P x X x A2: m2, m4 (the period's last second). 2 x 4.25 = 8.50.
  // P x Y, issue: m10 (the first instant), m5, m6, m7; m11 at the end is out. All sent, m5 delivered.
  // P x Y x A2: m5, m6. 8.50.
  // Q x X, issue: m8, m9; both sent, m8 delivered.  Q x X x A1: m8 (m9 at the end is out). 1 x 10 = 10.00.
  const EXPECTED = () => [
    line('P', 'X', null, { issued: 4, sent: 3, delivered: 2 }),
    line('P', 'X', 'A1', { redeemed: 2, value: 8.5 }),
    line('P', 'X', 'A2', { redeemed: 2, value: 8.5 }),
    line('P', 'Y', null, { issued: 4, sent: 4, delivered: 1 }),
    line('P', 'Y', 'A2', { redeemed: 2, value: 8.5 }),
    line('Q', 'X', null, { issued: 2, sent: 2, delivered: 1 }),
    line('Q', 'X', 'A1', { redeemed: 1, value: 10 }),
  ];

  it("gives the partner every line, with totals that are the lines' sums", async () => {
    const s = await ok('GET', `/merchants/${id.A}/settlement?${period}`, undefined, key.A);
    expect(s.period).toEqual({ from: P_FROM, to: P_TO });
    expect(s.lines.map(pick)).toEqual(EXPECTED());
    expect(s.totals).toEqual({ issued: 10, sent: 9, delivered: 4, redeemed: 7, faceValueRedeemed: 35.5 });
    expect(s.lines[1]).toMatchObject({ offerTitle: 'Pastry', brandName: 'Brand X', storeName: 'A One', faceValue: 4.25 });
    // The administrator reads the same.
    expect((await ok('GET', `/merchants/${id.A}/settlement?${period}`)).lines.map(pick)).toEqual(EXPECTED());
  });

  it("narrows an offer's settlement to the offer, and a brand's to its own lines", async () => {
    const offerP = await ok('GET', `/alliance-offers/${id.P}/settlement?${period}`, undefined, key.A);
    expect(offerP.lines.map(pick)).toEqual(EXPECTED().slice(0, 5));
    expect(offerP.totals).toEqual({ issued: 8, sent: 7, delivered: 3, redeemed: 6, faceValueRedeemed: 25.5 });
    // Brand X's marketer on offer P: X's lines only.
    const asX = await ok('GET', `/alliance-offers/${id.P}/settlement?${period}`, undefined, key.X);
    expect(asX.lines.map(pick)).toEqual(EXPECTED().slice(0, 3));
    expect(asX.totals).toEqual({ issued: 4, sent: 3, delivered: 2, redeemed: 4, faceValueRedeemed: 17 });
    const asY = await ok('GET', `/alliance-offers/${id.P}/settlement?${period}`, undefined, key.Y);
    expect(asY.lines.map(pick)).toEqual(EXPECTED().slice(3, 5));
    expect(asY.totals).toEqual({ issued: 4, sent: 4, delivered: 1, redeemed: 2, faceValueRedeemed: 8.5 });
    // A brand's own settlement: the alliance coupons its campaigns issued, of every offer.
    const brandX = await ok('GET', `/merchants/${id.X}/settlement?${period}`, undefined, key.X);
    expect(brandX.lines.map(pick)).toEqual([...EXPECTED().slice(0, 3), ...EXPECTED().slice(5)]);
    expect(brandX.totals).toEqual({ issued: 6, sent: 5, delivered: 3, redeemed: 5, faceValueRedeemed: 27 });
    // Brand Y never issued offer Q: it sees it (published) but has no line in it.
    expect((await ok('GET', `/alliance-offers/${id.Q}/settlement?${period}`, undefined, key.Y)).lines).toEqual([]);
  });

  it('puts what happens at the period end into the next period', async () => {
    const next = await ok('GET', `/merchants/${id.A}/settlement?from=${P_TO}&to=${P2_TO}`, undefined, key.A);
    expect(next.lines.map(pick)).toEqual([
      line('P', 'Y', null, { issued: 1, sent: 1 }),
      line('Q', 'X', 'A1', { redeemed: 1, value: 10 }),
    ]);
    expect(next.totals).toEqual({ issued: 1, sent: 1, delivered: 0, redeemed: 1, faceValueRedeemed: 10 });
    // Open-ended: everything, m0's issue and m9's redemption included.
    const all = await ok('GET', `/merchants/${id.A}/settlement`, undefined, key.A);
    expect(all.totals).toEqual({ issued: 12, sent: 11, delivered: 4, redeemed: 8, faceValueRedeemed: 45.5 });
    const bad = await call('GET', `/merchants/${id.A}/settlement?from=${P_TO}&to=${P_FROM}`, undefined, key.A);
    expect([bad.status, bad.body.error.code]).toEqual([400, 'REPORT_RANGE_INVALID']);
    const notInstant = await call('GET', `/merchants/${id.A}/settlement?from=yesterday`, undefined, key.A);
    expect([notInstant.status, notInstant.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
  });

  it('answers CSV with a header, one row per line and a totals row, quoted per RFC 4180', async () => {
    const csv = await call('GET', `/merchants/${id.A}/settlement?${period}&format=csv`, undefined, key.A);
    expect(csv.status).toBe(200);
    expect(csv.type).toMatch(/^text\/csv/);
    const y = '"Yoyo, ""the"" brand"';
    const rows = [
      'alliance_offer_id,offer_title,partner_id,brand_id,brand_name,store_id,store_name,face_value,issued,sent,delivered,redeemed,face_value_redeemed',
      `${id.P},Pastry,${id.A},${id.X},Brand X,,,4.25,4,3,2,0,0.00`,
      `${id.P},Pastry,${id.A},${id.X},Brand X,${id.A1},A One,4.25,0,0,0,2,8.50`,
      `${id.P},Pastry,${id.A},${id.X},Brand X,${id.A2},"A Two, Annex",4.25,0,0,0,2,8.50`,
      `${id.P},Pastry,${id.A},${id.Y},${y},,,4.25,4,4,1,0,0.00`,
      `${id.P},Pastry,${id.A},${id.Y},${y},${id.A2},"A Two, Annex",4.25,0,0,0,2,8.50`,
      // A title a spreadsheet would run as a formula is defused.
      `${id.Q},'=Ten off,${id.A},${id.X},Brand X,,,10.00,2,2,1,0,0.00`,
      `${id.Q},'=Ten off,${id.A},${id.X},Brand X,${id.A1},A One,10.00,0,0,0,1,10.00`,
      'total,,,,,,,,10,9,4,7,35.50',
    ];
    expect(csv.text).toBe(rows.map((r) => `${r}\r\n`).join(''));
    // Accept: text/csv does the same; a marketer's CSV has only its brand's rows.
    const accepted = await call('GET', `/alliance-offers/${id.P}/settlement?${period}`, undefined, key.Y, { accept: 'text/csv' });
    expect(accepted.type).toMatch(/^text\/csv/);
    expect(accepted.text).toBe([rows[0], rows[4], rows[5], 'total,,,,,,,,4,4,1,2,8.50'].map((r) => `${r}\r\n`).join(''));
  });

  it("keeps one partner out of another's offers and settlement, and marketers out of other brands'", async () => {
    const notFound = async (url: string, k?: string) => {
      const r = await call('GET', url, undefined, k);
      return [r.status, r.body.error.code];
    };
    expect(await notFound(`/alliance-offers/${id.P}`, key.B)).toEqual([404, 'ALLIANCE_OFFER_NOT_FOUND']);
    expect(await notFound(`/alliance-offers/${id.P}/settlement?${period}`, key.B)).toEqual([404, 'ALLIANCE_OFFER_NOT_FOUND']);
    expect(await notFound(`/merchants/${id.A}/settlement?${period}`, key.B)).toEqual([404, 'MERCHANT_NOT_FOUND']);
    expect(await notFound(`/merchants/${id.X}/settlement?${period}`, key.Y)).toEqual([404, 'MERCHANT_NOT_FOUND']);
    expect(await notFound(`/merchants/${id.A}/settlement?${period}`, key.X)).toEqual([404, 'MERCHANT_NOT_FOUND']);
    expect((await ok('GET', `/merchants/${id.B}/settlement?${period}`, undefined, key.B)).lines).toEqual([]);
    expect((await ok('GET', '/alliance-offers', undefined, key.B)).allianceOffers).toEqual([]);
  });
});
