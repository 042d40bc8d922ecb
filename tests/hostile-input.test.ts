// What an outsider may send and the gateway must refuse at the door, before anything reaches the database: control
// characters in any text (a NUL in one till's request once failed every till's redemption in its batch, other
// brands' included), non-finite numbers in query strings, and a key that would be born expired.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPrivateKey, signRequest } from '../beacon-agent/signing.js';
import { newCouponCode } from '../gateway/domain/coupons.js';
import { backends, isolatedConfig, type Isolated } from './support/backends.js';
import { as, keyFor, startGateway, type TestGateway } from './support/gateway.js';
import { seedCoupons } from './support/seed-coupons.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH';

describe.each(backends)('hostile input on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: TestGateway;
  let seq = 0;
  const w = {} as {
    brandA: string; brandB: string; storeA: string; storeB: string; tillKeyA: string; tillKeyB: string;
    campaignA: string; campaignB: string; member: string; redemption: string; partner: string;
  };

  const call = async (method: Method, url: string, payload?: object, headers: Record<string, string> = {}) => {
    const res = await gw.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
    return { status: res.statusCode, body: res.body ? res.json() : null };
  };
  const ok = async (method: Method, url: string, payload?: object) => {
    const res = await call(method, url, payload);
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const brandWithCoupons = async (tag: string, n: number) => {
    const brand = (await ok('POST', '/merchants', { kind: 'brand', name: `Brand ${tag}` })).id as string;
    const store = (await ok('POST', '/stores', { merchantId: brand, name: `Store ${tag}`, timeZone: 'UTC', location: { lat: 30 + ++seq, lon: 10 }, geofence: { radiusM: 100 } })).id as string;
    const campaign = (await ok('POST', '/campaigns', { name: `Deals ${tag}`, storeId: store, trigger: { kind: 'checkin' }, offer: { title: 't', message: 'm {code}' } })).id as string;
    const codes = Array.from({ length: n }, () => newCouponCode());
    await seedCoupons(gw.deps.db, campaign, codes);
    return { brand, store, campaign, codes, tillKey: await keyFor(gw, 'merchant', { merchantId: brand }) };
  };
  const codesA: string[] = [];
  const codesB: string[] = [];

  beforeAll(async () => {
    iso = isolatedConfig(backend);
    gw = await startGateway(iso.config);
    const a = await brandWithCoupons('A', 5);
    const b = await brandWithCoupons('B', 30);
    codesA.push(...a.codes);
    codesB.push(...b.codes);
    const member = (await ok('POST', '/members', { timeZone: 'UTC' })).id as string;
    const partner = (await ok('POST', '/merchants', { kind: 'partner', name: 'Partner' })).id as string;
    await ok('POST', '/stores', { merchantId: partner, name: 'Partner shop', timeZone: 'UTC', location: { lat: 20, lon: 10 } });
    const redemption = (await ok('POST', '/redemptions', { code: codesA.pop(), storeId: a.store })).id as string;
    Object.assign(w, {
      brandA: a.brand, brandB: b.brand, storeA: a.store, storeB: b.store, tillKeyA: a.tillKey, tillKeyB: b.tillKey,
      campaignA: a.campaign, campaignB: b.campaign, member, redemption, partner,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  it("lets no till's NUL byte fail another brand's redemptions in the same batch", async () => {
    // Both tills' keys known to the gateway already, so that their requests reach the batcher together.
    for (const [key, store] of [[w.tillKeyA, w.storeA], [w.tillKeyB, w.storeB]] as const) expect((await call('GET', `/stores/${store}`, undefined, as(key))).status).toBe(200);
    const others = codesB.map((code, i) => call('POST', '/redemptions', { code, storeId: w.storeB, tillRef: `till-${i}` }, as(w.tillKeyB)));
    const poisoned = call('POST', '/redemptions', { code: codesA[0], storeId: w.storeA, tillRef: 'till\u00001' }, as(w.tillKeyA));
    const [bad, ...good] = await Promise.all([poisoned, ...others]);
    expect(good.map((r) => r.status)).toEqual(codesB.map(() => 201));
    expect([bad!.status, bad!.body.error.code, bad!.body.error.details.issues[0].field]).toEqual([400, 'VALIDATION_FAILED', 'body/tillRef']);
  });

  // Every kind of text a request carries: names, messages, titles, tiers, tags, references, notice versions,
  // actors, reasons, ids, and query strings. Each gets a NUL, another C0 character and DEL in turn.
  const fields: Array<[string, (c: string) => [Method, string, object?], string]> = [
    ['merchant name', (c) => ['POST', '/merchants', { kind: 'brand', name: `Shop${c}` }], 'body/name'],
    ['store name', (c) => ['POST', '/stores', { name: `St${c}`, timeZone: 'UTC', location: { lat: 1, lon: 1 } }], 'body/name'],
    ['store time zone', (c) => ['POST', '/stores', { name: 'St', timeZone: `UTC${c}`, location: { lat: 1, lon: 1 } }], 'body/timeZone'],
    ['campaign name', (c) => ['POST', '/campaigns/validate', { name: `C${c}`, storeId: w.storeA, trigger: { kind: 'checkin' }, offer: { title: 't', message: 'm' } }], 'body/name'],
    ['offer title', (c) => ['POST', '/campaigns', { name: 'C', storeId: w.storeA, trigger: { kind: 'checkin' }, offer: { title: `T${c}`, message: 'm' } }], 'body/offer/title'],
    ['audience tag', (c) => ['PUT', `/campaigns/${w.campaignA}`, { name: 'C', storeId: w.storeA, trigger: { kind: 'checkin' }, audience: { tagsAny: [`t${c}`] }, offer: { title: 't', message: 'm' } }], 'body/audience/tagsAny/0'],
    ['member tier', (c) => ['PATCH', `/members/${w.member}`, { tier: `gold${c}` }], 'body/tier'],
    ['member tag', (c) => ['PATCH', `/members/${w.member}`, { tags: ['ok', `t${c}`] }], 'body/tags/1'],
    ['external ref', (c) => ['POST', '/members', { timeZone: 'UTC', externalRef: `crm${c}` }], 'body/externalRef'],
    ['notice version', (c) => ['POST', `/members/${w.member}/consents`, { purpose: 'profiling', action: 'grant', source: 'app', noticeVersion: `v${c}1` }], 'body/noticeVersion'],
    ['actor', (c) => ['POST', `/members/${w.member}/consents`, { purpose: 'profiling', action: 'grant', source: 'app', actor: `clerk${c}` }], 'body/actor'],
    ['void reason', (c) => ['POST', `/redemptions/${w.redemption}/void`, { storeId: w.storeA, reason: `changed${c}mind` }], 'body/reason'],
    ['transaction id', (c) => ['POST', '/redemptions', { code: newCouponCode(), storeId: w.storeA, transactionId: `tx${c}` }], 'body/transactionId'],
    ['request id', (c) => ['POST', '/redemptions', { code: newCouponCode(), storeId: w.storeA, requestId: `rq${c}` }], 'body/requestId'],
    ['coupon code', (c) => ['POST', '/redemptions', { code: `ABCD${c}EFGH`, storeId: w.storeA }], 'body/code'],
    ['key name', (c) => ['POST', '/api-keys', { role: 'merchant', name: `till${c}`, merchantId: w.brandA }], 'body/name'],
    ['till name', (c) => ['POST', `/stores/${w.storeA}/tills`, { name: `till${c}` }], 'body/name'],
    ['zone name', (c) => ['POST', `/stores/${w.storeA}/zones`, { name: `door${c}` }], 'body/name'],
    ['agent name', (c) => ['POST', '/agents', { storeId: w.storeA, name: `box${c}` }], 'body/name'],
    ['geofence name', (c) => ['POST', '/geofences', { name: `g${c}`, storeId: w.storeA, shape: { kind: 'circle', center: { lat: 1, lon: 1 }, radiusM: 50 } }], 'body/name'],
    ['alliance offer title', (c) => ['POST', '/alliance-offers', { merchantId: w.partner, title: `T${c}`, message: 'm', faceValue: 1, validFrom: '2026-01-01T00:00:00Z', validTo: '2027-01-01T00:00:00Z' }], 'body/title'],
    ['report time zone (query)', (c) => ['GET', `/stores/${w.storeA}/report?timeZone=${encodeURIComponent(`UTC${c}`)}`], 'query/timeZone'],
  ];
  const controls: Array<[string, string]> = [['NUL', '\u0000'], ['a C0 character', '\u001b'], ['DEL', '\u007f'], ['a newline', '\n']];

  it.each(fields)('refuses control characters in the %s, naming the field', async (_what, request, field) => {
    const answers = [];
    for (const [name, c] of controls) {
      const [method, url, payload] = request(c);
      const res = await call(method, url, payload);
      answers.push([name, res.status, res.body?.error?.code, res.body?.error?.details?.issues?.[0]?.field]);
    }
    expect(answers).toEqual(controls.map(([name]) => [name, 400, 'VALIDATION_FAILED', field]));
  });

  it("lets free text run over lines (an offer's message), and nothing else", async () => {
    const campaign = (message: string) => ['POST', '/campaigns/validate', { name: 'C', storeId: w.storeA, trigger: { kind: 'checkin' }, offer: { title: 't', message } }] as const;
    expect((await call(...campaign('Coffee\tfree\nwith {code}'))).status).toBe(200);
    expect((await call(...campaign('Typed on Windows:\r\n{code}'))).status).toBe(200);
    const offer = (message: string) => ({ merchantId: w.partner, title: 't', message, faceValue: 1, validFrom: '2026-01-01T00:00:00Z', validTo: '2027-01-01T00:00:00Z' });
    expect((await call('POST', '/alliance-offers', offer('Two\nlines {code}'))).status).toBe(201);
    for (const c of ['\u0000', '\u000b', '\u0007', '\u007f']) {
      const res = await call(...campaign(`Coffee${c}{code}`));
      expect([res.status, res.body.error.details.issues[0].field]).toEqual([400, 'body/offer/message']);
      expect((await call('POST', '/alliance-offers', offer(`x${c}{code}`))).status).toBe(400);
    }
  });

  it('refuses control characters in the signed uploads, whose bodies are parsed apart', async () => {
    const reg = await ok('POST', '/agents', { storeId: w.storeA, name: 'box' });
    const body = JSON.stringify({ agentId: reg.agent.id, batchId: 'batch\u00001', events: [] });
    const headers = { 'content-type': 'application/json', ...signRequest(loadPrivateKey(reg.privateKey), reg.agent.id, { method: 'POST', path: '/ingest/presence', timestamp: Date.now(), body }) };
    const res = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body, headers: { ...headers, authorization: '' } });
    expect([res.statusCode, res.json().error.code, res.json().error.details.issues[0].field]).toEqual([400, 'VALIDATION_FAILED', 'body/batchId']);
  });

  it('refuses non-finite numbers in query strings', async () => {
    const urls = [
      ...['1e999', 'Infinity', '-1e999', '-Infinity'].map((v) => [`/members/${w.member}/decisions?limit=${v}`, 'query/limit']),
      [`/admin/dead-letters?limit=1e999`, 'query/limit'],
      [`/stores/${w.storeA}/report?windowDays=Infinity`, 'query/windowDays'],
      [`/campaigns/${w.campaignA}/report?windowDays=-1e999`, 'query/windowDays'],
    ];
    const answers = await Promise.all(urls.map(async ([url]) => {
      const res = await call('GET', url!);
      return [url, res.status, res.body.error?.code, res.body.error?.details?.issues?.[0]?.field];
    }));
    expect(answers).toEqual(urls.map(([url, field]) => [url, 400, 'VALIDATION_FAILED', field]));
  });

  it('refuses an API key that would be born expired', async () => {
    const issue = (expiresAt: string) => call('POST', '/api-keys', { role: 'merchant', name: 'till', merchantId: w.brandA, expiresAt });
    const past = await issue(new Date(Date.now() - 60_000).toISOString());
    expect([past.status, past.body.error.code, past.body.error.details.issues[0].field]).toEqual([400, 'VALIDATION_FAILED', 'body/expiresAt']);
    expect((await issue('2001-01-01T00:00:00Z')).status).toBe(400);
    const future = await issue(new Date(Date.now() + 3_600_000).toISOString());
    expect(future.status).toBe(201);
  });
});
