// Redemption at the till beyond the first use: retried requests answered alike, transaction ids unique per
// store, voids as rows of their own within a window (the coupon live again), and redemption budgets that
// concurrent tills never overrun.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';

const START = new Date('2026-06-03T16:00:00Z'); // Wednesday 12:00 in New York

describe.each(backends)('redemptions on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: Gateway;
  let clock = START;
  let seq = 0;

  const call = async (url: string, payload: object) => {
    const res = await gw.app.inject({ method: 'POST', url, payload });
    return { status: res.statusCode, body: res.json() };
  };
  const ok = async (url: string, payload: object) => {
    const res = await call(url, payload);
    if (res.status >= 300) throw new Error(`${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  /** A store with a check-in campaign, and `n` coupons from it (one member each). */
  const coupons = async (n: number, budget: object = {}) => {
    const at = { lat: 35 + ++seq / 10, lon: -80 };
    const store = await ok('/stores', { name: `Till St ${seq}`, timeZone: 'America/New_York', location: at, geofence: { radiusM: 100 } });
    await ok('/campaigns', { name: `Tills ${seq}`, storeId: store.id, trigger: { kind: 'checkin' }, budget, offer: { title: 'Deal', message: 'Deal: code {code}' } });
    const codes: string[] = [];
    for (let i = 0; i < n; i++) {
      const m = await ok('/members', { phone: `+1415555${String(7000 + seq * 40 + i)}`, timeZone: 'America/New_York' });
      await grantConsents(gw, m.id, m.phone, ['location', 'sms_marketing']);
      const res = await ok('/checkins', { memberId: m.id, ...at, accuracyM: 10, at: clock.toISOString() });
      const [c] = await gw.deps.db.query<{ code: string }>('SELECT code FROM coupons WHERE decision_id = $1', [res.decisions[0].id]);
      codes.push(c!.code);
    }
    return { storeId: store.id as string, codes };
  };

  beforeAll(async () => {
    iso = isolatedConfig(backend, { REDEMPTION_VOID_WINDOW_MINUTES: '30' });
    gw = await startGateway(iso.config, { now: () => clock });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  it('answers a retried request with its first answer, and keeps transaction ids unique per store', async () => {
    clock = START;
    const { storeId, codes } = await coupons(3);
    const first = await call('/redemptions', { code: codes[0], storeId, requestId: 'req-1', transactionId: 'tx-1' });
    expect(first.status).toBe(201);
    const again = await call('/redemptions', { code: codes[0], storeId, requestId: 'req-1', transactionId: 'tx-1' });
    expect(again).toEqual(first);
    const reused = await call('/redemptions', { code: codes[1], storeId, requestId: 'req-1' });
    expect([reused.status, reused.body.error.code]).toEqual([409, 'REQUEST_ID_REUSED']);
    // The same id for the same coupon, but another sale: not the request it was.
    const changed = await call('/redemptions', { code: codes[0], storeId, requestId: 'req-1', transactionId: 'tx-9' });
    expect([changed.status, changed.body.error.code, changed.body.error.details]).toEqual([409, 'REQUEST_ID_REUSED', { fields: ['transactionId'] }]);
    const taken = await call('/redemptions', { code: codes[1], storeId, transactionId: 'tx-1' });
    expect([taken.status, taken.body.error.code]).toEqual([409, 'TRANSACTION_ID_TAKEN']);
    // The same request id sent by ten tills at once: one redemption, ten identical answers.
    const raced = await Promise.all(Array.from({ length: 10 }, () => call('/redemptions', { code: codes[2], storeId, requestId: 'req-race' })));
    expect(new Set(raced.map((r) => JSON.stringify(r))).size).toBe(1);
    expect(raced[0]!.status).toBe(201);
    const [{ n }] = await gw.deps.db.query<{ n: number }>('SELECT count(*)::int n FROM redemptions WHERE request_id = $1', ['req-race']) as [{ n: number }];
    expect(n).toBe(1);
  });

  it('voids within the window as a new row, at the redeeming store only, and the coupon is live again', async () => {
    clock = START;
    const { storeId, codes } = await coupons(2);
    const other = await coupons(0);
    const r = await ok('/redemptions', { code: codes[0], storeId, tillRef: 'till-1' });
    const wrong = await call(`/redemptions/${r.id}/void`, { storeId: other.storeId });
    expect([wrong.status, wrong.body.error.code]).toEqual([409, 'REDEMPTION_AT_OTHER_STORE']);
    clock = new Date(START.getTime() + 10 * 60_000);
    const v = await call(`/redemptions/${r.id}/void`, { storeId, reason: 'customer changed mind' });
    expect(v.status).toBe(201);
    expect(v.body).toMatchObject({ redemptionId: r.id, couponCode: codes[0], reason: 'customer changed mind' });
    expect((await call(`/redemptions/${r.id}/void`, { storeId })).body.error.code).toBe('REDEMPTION_ALREADY_VOIDED');
    const second = await call('/redemptions', { code: codes[0], storeId, tillRef: 'till-2' });
    expect(second.status).toBe(201);
    // Nothing was rewritten: both redemptions are rows, the first with its void beside it.
    const rows = await gw.deps.db.query<{ attempt: number; voided: boolean }>(
      `SELECT r.attempt, EXISTS (SELECT 1 FROM redemption_voids v WHERE v.redemption_id = r.id) AS voided
         FROM redemptions r JOIN coupons c ON c.id = r.coupon_id WHERE c.code = $1 ORDER BY r.attempt`, [codes[0]]);
    expect(rows).toEqual([{ attempt: 1, voided: true }, { attempt: 2, voided: false }]);
    expect((await call('/redemptions', { code: codes[0], storeId })).body.error.code).toBe('COUPON_ALREADY_REDEEMED');

    const late = await ok('/redemptions', { code: codes[1], storeId });
    clock = new Date(clock.getTime() + 31 * 60_000);
    const tooLate = await call(`/redemptions/${late.id}/void`, { storeId });
    expect([tooLate.status, tooLate.body.error.code]).toEqual([409, 'VOID_WINDOW_PASSED']);
    expect((await call('/redemptions/00000000-0000-4000-8000-000000000000/void', { storeId })).body.error.code).toBe('REDEMPTION_NOT_FOUND');
  });

  it('never overruns a redemption budget, even with every till at once; a void gives one back', async () => {
    clock = START;
    const { storeId, codes } = await coupons(12, { maxRedemptions: 5 });
    const results = await Promise.all(codes.map((code) => call('/redemptions', { code, storeId })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(5);
    expect(new Set(results.filter((r) => r.status !== 201).map((r) => r.body.error.code))).toEqual(new Set(['BUDGET_EXHAUSTED']));
    const won = results.find((r) => r.status === 201)!.body;
    await ok(`/redemptions/${won.id}/void`, { storeId });
    const left = codes.filter((c) => !results.some((r) => r.status === 201 && r.body.couponCode === c));
    expect((await call('/redemptions', { code: left[0], storeId })).status).toBe(201);
    expect((await call('/redemptions', { code: left[1], storeId })).body.error.code).toBe('BUDGET_EXHAUSTED');
  });
});
