// Redemptions that arrive together are redeemed together (one statement per batch), and each still gets the
// answer its own transaction would give: the batch's checks, its deferral of budgeted coupons, and its fall
// back to per-coupon transactions when a constraint decides a race.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../gateway/errors.js';
import { newCouponCode, redeemCoupon, type RedeemInput } from '../gateway/domain/coupons.js';
import { RedemptionBatches } from '../gateway/domain/redemption-batches.js';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, isolatedConfig, type Isolated } from './support/backends.js';
import { seedCoupons } from './support/seed-coupons.js';

// The database's clock decides seeded coupons' expiry, so the gateway's clock is the real one, read once.
const NOW = new Date();

type Outcome = { ok: true; couponCode: string; storeId: string; id: string } | { ok: false; code: string; details?: Record<string, unknown> };

describe.each(backends)('batched redemptions on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: Gateway;
  let seq = 0;

  const ok = async (url: string, payload: object) => {
    const res = await gw.app.inject({ method: 'POST', url, payload });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return res.json();
  };
  const store = async (merchantId?: string) =>
    (await ok('/stores', { ...(merchantId ? { merchantId } : {}), name: `Batch St ${++seq}`, timeZone: 'UTC', location: { lat: 40 + seq / 10, lon: -3 }, geofence: { radiusM: 100 } })).id as string;
  /** A campaign at the store with `n` seeded coupons. */
  const campaign = async (storeId: string, n: number, extra: object = {}, validFor = '7 days') => {
    const c = await ok('/campaigns', { name: `Batch ${++seq}`, storeId, trigger: { kind: 'checkin' }, offer: { title: 't', message: 'm {code}' }, ...extra });
    const codes = Array.from({ length: n }, () => newCouponCode());
    await seedCoupons(gw.deps.db, c.id, codes, validFor);
    return codes;
  };
  const settle = (p: Promise<{ id: string; couponCode: string; storeId: string }>): Promise<Outcome> =>
    p.then((r) => ({ ok: true as const, couponCode: r.couponCode, storeId: r.storeId, id: r.id }), (err: unknown) => {
      if (!(err instanceof AppError)) throw err;
      return { ok: false as const, code: err.code, ...(err.details ? { details: err.details } : {}) };
    });

  beforeAll(async () => {
    iso = isolatedConfig(backend);
    gw = await startGateway(iso.config, { now: () => NOW });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  it('answers every request of a burst as its own transaction would, in far fewer statements', async () => {
    const a = await store();
    const b = await store();
    const brandY = (await ok('/merchants', { kind: 'brand', name: `Brand Y ${seq}` })).id as string;
    const y = await store(brandY);
    const tillB = (await ok(`/stores/${b}/tills`, { name: 'till 1' })).id as string;
    const valid = await campaign(a, 30);
    const [expired] = await campaign(a, 1, {}, '-1 hour');
    const [redeemedBefore, twice, replayed, txA, txB, elsewhere, withOtherTill, house] = await campaign(a, 8);
    const [y1, y2, y3] = await campaign(y, 3);
    const budgeted = await campaign(a, 6, { budget: { maxRedemptions: 3 } });
    const unknown = newCouponCode();

    const batches = new RedemptionBatches(gw.deps.db);
    const first = await batches.redeem({ code: redeemedBefore!, storeId: a, requestId: 'first-request' }, NOW);
    const before = { ...batches.stats };

    const requests: Array<[string, RedeemInput, string | null]> = [
      ...valid.map((code, i): [string, RedeemInput, string | null] => [`valid ${i}`, { code: i % 2 ? code.toLowerCase() : `COUPON:${code}`, storeId: a.toUpperCase(), tillRef: 'till-1' }, null]),
      ['unknown', { code: unknown, storeId: a }, null],
      ['typo', { code: `${unknown.slice(0, -1)}${unknown.endsWith('0') ? '1' : '0'}`, storeId: a }, null],
      ['expired', { code: expired!, storeId: a }, null],
      ['redeemed before', { code: redeemedBefore!, storeId: a }, null],
      ['twice 1', { code: twice!, storeId: a }, null],
      ['twice 2', { code: twice!, storeId: a }, null],
      ['replayed 1', { code: replayed!, storeId: a, requestId: 'same-request' }, null],
      ['replayed 2', { code: replayed!, storeId: a, requestId: 'same-request' }, null],
      ['tx 1', { code: txA!, storeId: a, transactionId: 'sale-1' }, null],
      ['tx 2', { code: txB!, storeId: a, transactionId: 'sale-1' }, null],
      ['request id of another coupon', { code: valid[0]!, storeId: a, requestId: 'first-request' }, null],
      ['unknown till', { code: twice!, storeId: a, tillId: '00000000-0000-4000-8000-00000000abcd' }, null],
      ['campaign store only', { code: elsewhere!, storeId: b }, null],
      ['till of another store', { code: withOtherTill!, storeId: a, tillId: tillB }, null],
      ["brand Y's key at its store", { code: y1!, storeId: y }, brandY],
      ["brand Y's key at another brand's store", { code: y2!, storeId: a }, brandY],
      ["another brand's coupon, brand Y's key", { code: house!, storeId: y }, brandY],
      ["brand Y's coupon at another brand's store, administrator", { code: y3!, storeId: a }, null],
      ...budgeted.map((code, i): [string, RedeemInput, string | null] => [`budgeted ${i}`, { code, storeId: a }, null]),
    ];
    const results = new Map(await Promise.all(requests.map(async ([what, input, caller]) =>
      [what, await settle(batches.redeem(input, NOW, caller))] as const)));
    const failure = (what: string) => {
      const r = results.get(what)!;
      return r.ok ? 'redeemed' : r.code;
    };

    for (let i = 0; i < valid.length; i++) expect(results.get(`valid ${i}`)).toMatchObject({ ok: true, couponCode: valid[i], storeId: a });
    expect(failure('unknown')).toBe('COUPON_NOT_FOUND');
    expect(results.get('request id of another coupon')).toEqual({ ok: false, code: 'REQUEST_ID_REUSED', details: { couponCode: redeemedBefore } });
    expect(failure('unknown till')).toBe('TILL_NOT_FOUND');
    expect(failure('typo')).toBe('COUPON_CODE_INVALID');
    expect(failure('expired')).toBe('COUPON_EXPIRED');
    expect(results.get('redeemed before')).toEqual({ ok: false, code: 'COUPON_ALREADY_REDEEMED', details: { redeemedAt: NOW.toISOString(), storeId: a } });
    expect([failure('twice 1'), failure('twice 2')].sort()).toEqual(['COUPON_ALREADY_REDEEMED', 'redeemed']);
    expect(results.get('replayed 1')).toMatchObject({ ok: true });
    expect(results.get('replayed 2')).toEqual(results.get('replayed 1'));
    expect([failure('tx 1'), failure('tx 2')].sort()).toEqual(['TRANSACTION_ID_TAKEN', 'redeemed']);
    expect(results.get('campaign store only')).toEqual({ ok: false, code: 'COUPON_NOT_VALID_AT_STORE', details: { validAt: a } });
    expect(results.get('till of another store')).toEqual({ ok: false, code: 'TILL_AT_OTHER_STORE', details: { tillStoreId: b } });
    // A brand's key redeems its coupons at its stores; other brands' stores and coupons do not exist for it. The
    // administrator's answer names whose coupon it is.
    expect(results.get("brand Y's key at its store")).toMatchObject({ ok: true, couponCode: y1, storeId: y });
    expect(failure("brand Y's key at another brand's store")).toBe('STORE_NOT_FOUND');
    expect(failure("another brand's coupon, brand Y's key")).toBe('COUPON_NOT_FOUND');
    expect(results.get("brand Y's coupon at another brand's store, administrator")).toEqual({ ok: false, code: 'COUPON_NOT_VALID_AT_STORE', details: { merchantId: brandY } });
    expect(budgeted.map((_, i) => failure(`budgeted ${i}`)).sort()).toEqual([
      'BUDGET_EXHAUSTED', 'BUDGET_EXHAUSTED', 'BUDGET_EXHAUSTED', 'redeemed', 'redeemed', 'redeemed']);

    // What the database holds: one live redemption per coupon that was answered "redeemed", no other.
    const answered = [...results.values()].filter((r) => r.ok).map((r) => (r as { id: string }).id);
    const rows = await gw.deps.db.query<{ id: string }>('SELECT id FROM redemptions WHERE store_id = ANY($1::uuid[])', [[a, b, y]]);
    expect(new Set(rows.map((r) => r.id))).toEqual(new Set([first.id, ...answered]));

    // The burst of 55 went in batches: a handful of statements, and only the budgeted coupons (and the losers of
    // races inside the gateway, which wait for the next batch instead) took transactions of their own.
    const statements = batches.stats.statements - before.statements;
    expect(statements).toBeGreaterThan(0);
    expect(statements).toBeLessThan(requests.length / 3);
    expect(batches.stats.alone - before.alone).toBe(budgeted.length);
  });

  it('compares store ids as ids, however a campaign or a till spelt them', async () => {
    const a = await store();
    const [plain] = await campaign(a.toUpperCase(), 1);
    const [budgeted] = await campaign(a.toUpperCase(), 1, { budget: { maxRedemptions: 5 } });
    const batches = new RedemptionBatches(gw.deps.db);
    const results = await Promise.all([plain!, budgeted!].map((code) => settle(batches.redeem({ code, storeId: a }, NOW))));
    expect(results).toMatchObject([{ ok: true, couponCode: plain }, { ok: true, couponCode: budgeted }]);
    // An id in another spelling (a "urn:uuid:" prefix) is refused at the door, not by the database.
    const res = await gw.app.inject({ method: 'POST', url: '/redemptions', payload: { code: newCouponCode(), storeId: `urn:uuid:${a}` } });
    expect([res.statusCode, res.json().error.code]).toEqual([400, 'VALIDATION_FAILED']);
  });

  it.runIf(backend === 'real')('does not hold other tills back while one coupon waits on a lock', async () => {
    const a = await store();
    const [held, free] = await campaign(a, 2);
    const batches = new RedemptionBatches(gw.deps.db);
    let freeAnswer: Outcome | undefined;
    await gw.deps.db.transaction(async (tx) => {
      // Another gateway's till is in the middle of redeeming `held`.
      await tx.query('SELECT 1 FROM coupons WHERE code = $1 FOR UPDATE', [held]);
      const waiting = settle(batches.redeem({ code: held!, storeId: a }, NOW));
      await new Promise((r) => setTimeout(r, 20));
      // A request for another coupon, in a later turn, is answered while the lock is still held.
      freeAnswer = await Promise.race([settle(batches.redeem({ code: free!, storeId: a }, NOW)), new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))]);
      void waiting;
    });
    expect(freeAnswer).toMatchObject({ ok: true, couponCode: free });
  });

  it('redeems each coupon once when two gateways batch the same codes at once', async () => {
    const a = await store();
    const codes = await campaign(a, 40);
    const one = new RedemptionBatches(gw.deps.db);
    const two = new RedemptionBatches(gw.deps.db);
    const results = await Promise.all(codes.flatMap((code) => [one, two].map((g) => settle(g.redeem({ code, storeId: a }, NOW)))));
    expect(results.filter((r) => r.ok)).toHaveLength(codes.length);
    expect(new Set(results.filter((r) => r.ok).map((r) => (r as { couponCode: string }).couponCode))).toEqual(new Set(codes));
    expect(results.filter((r) => !r.ok).map((r) => (r as { code: string }).code)).toEqual(Array(codes.length).fill('COUPON_ALREADY_REDEEMED'));
    const [{ n }] = await gw.deps.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM redemptions r JOIN coupons c ON c.id = r.coupon_id WHERE c.code = ANY($1::text[])', [codes]) as [{ n: number }];
    expect(n).toBe(codes.length);
  });

  it('moves a redemption budget once per batch when the whole batch fits, and never past it across gateways', async () => {
    const a = await store();
    const codes = await campaign(a, 40, { budget: { maxRedemptions: 25 } });
    const [campaignId] = (await gw.deps.db.query<{ campaign_id: string }>('SELECT campaign_id FROM coupons WHERE code = $1', [codes[0]])).map((r) => r.campaign_id);
    const gateways = [new RedemptionBatches(gw.deps.db), new RedemptionBatches(gw.deps.db)];
    // The campaign's counter is made by the first redemption (a transaction of its own); then waves of 5 per gateway.
    const results = [await settle(gateways[0]!.redeem({ code: codes[0]!, storeId: a }, NOW))];
    for (let from = 1; from < codes.length; from += 10) {
      results.push(...await Promise.all(codes.slice(from, from + 10).map((code, i) => settle(gateways[i % 2]!.redeem({ code, storeId: a }, NOW)))));
    }
    expect(results.filter((r) => r.ok)).toHaveLength(25);
    expect(results.filter((r) => !r.ok).map((r) => (r as { code: string }).code)).toEqual(Array(15).fill('BUDGET_EXHAUSTED'));
    const [row] = await gw.deps.db.query<{ redeemed: number; rows: number }>(
      `SELECT (SELECT redeemed FROM campaign_redemption_counts WHERE campaign_id = $1) AS redeemed,
              (SELECT count(*)::int FROM redemptions r JOIN coupons c ON c.id = r.coupon_id WHERE c.campaign_id = $1) AS rows`, [campaignId]);
    expect(row).toEqual({ redeemed: 25, rows: 25 });
    // The waves that fitted went as batches: fewer requests took transactions of their own than were made.
    const alone = gateways.reduce((n, g) => n + g.stats.alone, 0);
    expect(alone).toBeGreaterThan(0);
    expect(alone).toBeLessThan(codes.length - 10);
  });

  it('lets the constraint decide when a batch races a transaction for a coupon: nothing of the batch is lost', async () => {
    const a = await store();
    const [contested, bystander] = await campaign(a, 2);
    const batches = new RedemptionBatches(gw.deps.db);
    let pending: Promise<Outcome[]> | undefined;
    // Another gateway's till holds the contested coupon's redemption, not yet committed, while this batch runs.
    await gw.deps.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO redemptions (coupon_id, store_id, redeemed_at, attempt) SELECT id, $2, $3, 1 FROM coupons WHERE code = $1`,
        [contested, a, NOW],
      );
      pending = Promise.all([contested, bystander].map((code) => settle(batches.redeem({ code: code!, storeId: a }, NOW))));
      await new Promise((r) => setTimeout(r, 300));
    });
    const [lost, won] = await pending!;
    expect(lost).toMatchObject({ ok: false, code: 'COUPON_ALREADY_REDEEMED' });
    expect(won).toMatchObject({ ok: true, couponCode: bystander });
    const rows = await gw.deps.db.query<{ code: string; n: number }>(
      'SELECT c.code, count(*)::int AS n FROM redemptions r JOIN coupons c ON c.id = r.coupon_id WHERE c.code = ANY($1::text[]) GROUP BY c.code ORDER BY c.code',
      [[contested, bystander]]);
    expect(rows).toEqual([contested!, bystander!].sort().map((code) => ({ code, n: 1 })));
    // On PostgreSQL the batch waited on the unique index, failed, and each request took its own transaction;
    // embedded, the one connection made the batch wait for the commit instead.
    if (gw.deps.db.kind === 'postgres') expect(batches.stats.alone).toBe(2);
  });
  it("fails only the request whose value PostgreSQL refuses, not the rest of its batch (other brands' included)", async () => {
    const a = await store();
    const brandB = (await ok('/merchants', { kind: 'brand', name: `Brand B ${seq}` })).id as string;
    const b = await store(brandB);
    const [poisoned] = await campaign(a, 1);
    const others = await campaign(b, 30);
    const batches = new RedemptionBatches(gw.deps.db);
    // A NUL byte, which the schema refuses at the door: here it reaches the statement, as a value no check foresaw would.
    const results = await Promise.all([
      ...others.map((code, i) => batches.redeem({ code, storeId: b, tillRef: `till-${i}` }, NOW, brandB).then(() => 'redeemed', () => 'failed')),
      batches.redeem({ code: poisoned!, storeId: a, tillRef: 'till\u00001' }, NOW).then(() => 'redeemed', (err: { code?: string }) => `failed ${err.code}`),
    ]);
    expect(results.slice(0, -1)).toEqual(others.map(() => 'redeemed'));
    expect(results.at(-1)).toMatch(/^failed 22/); // a data exception, PostgreSQL's own
    expect(batches.stats.statements).toBe(1);
    const [{ n }] = await gw.deps.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM redemptions r JOIN coupons c ON c.id = r.coupon_id WHERE c.code = ANY($1::text[])', [[...others, poisoned]]) as [{ n: number }];
    expect(n).toBe(others.length);
  });
  it('answers a request id sent again with its first answer only if the request is the same, by a batch and by a till\'s own transaction alike', async () => {
    const a = await store();
    const tillId = (await ok(`/stores/${a}/tills`, { name: `till ${seq}` })).id as string;
    const [plain] = await campaign(a, 1);
    const [budgeted] = await campaign(a, 1, { budget: { maxRedemptions: 5 } });
    const batches = new RedemptionBatches(gw.deps.db);
    const paths = {
      batch: (input: RedeemInput) => settle(batches.redeem(input, NOW)),
      transaction: (input: RedeemInput) => settle(redeemCoupon(gw.deps.db, input, NOW)),
    };
    for (const [code, requestId] of [[plain!, 'rq-plain'], [budgeted!, 'rq-budgeted']] as const) {
      const first: RedeemInput = { code, storeId: a, tillId, tillRef: 'till-1', transactionId: `sale-${requestId}`, requestId, amount: 12.5 };
      const answered = await paths.batch(first);
      expect(answered).toMatchObject({ ok: true, couponCode: code });
      for (const [path, redeem] of Object.entries(paths)) {
        const again = (change: Partial<RedeemInput>, drop?: keyof RedeemInput) => {
          const input = { ...first, ...change };
          if (drop) delete input[drop];
          return redeem(input);
        };
        const answers = {
          same: await again({ code: `coupon:${code.toLowerCase()}`, tillId: tillId.toUpperCase(), amount: 12.501 }),
          tillRef: await again({ tillRef: 'till-2' }),
          tillId: await again({}, 'tillId'),
          transactionId: await again({ transactionId: 'sale-other' }),
          amount: await again({ amount: 12.6 }),
          noAmount: await again({}, 'amount'),
        };
        expect({ path, ...answers }).toEqual({
          path,
          same: answered,
          tillRef: { ok: false, code: 'REQUEST_ID_REUSED', details: { fields: ['tillRef'] } },
          tillId: { ok: false, code: 'REQUEST_ID_REUSED', details: { fields: ['tillId'] } },
          transactionId: { ok: false, code: 'REQUEST_ID_REUSED', details: { fields: ['transactionId'] } },
          amount: { ok: false, code: 'REQUEST_ID_REUSED', details: { fields: ['amount'] } },
          noAmount: { ok: false, code: 'REQUEST_ID_REUSED', details: { fields: ['amount'] } },
        });
      }
    }
  });
});
