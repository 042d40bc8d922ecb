// Access control: every route called by every role (four kinds of API key, and a box's signature), on its own
// tenant's objects and on another tenant's.
// The table below is written out by hand, not read from the routes' declarations, and it must name every
// route the gateway serves: a new route without a row here fails the test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID, type KeyObject } from 'node:crypto';
import { loadPrivateKey, signRequest } from '../beacon-agent/signing.js';
import { issueApiKey } from '../gateway/domain/api-keys.js';
import { backends, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { as, startGateway, type TestGateway } from './support/gateway.js';

type Caller = 'administrator' | 'marketer' | 'merchant' | 'member';
const CALLERS: Caller[] = ['administrator', 'marketer', 'merchant', 'member'];

interface Req {
  url: string;
  payload?: object;
  /** Call with this key instead of the caller's (an object made for this one call, e.g. a member to erase). */
  key?: string;
}

/** The two tenants' objects, and the keys of tenant A's parties. */
interface World {
  brandA: string; brandB: string;
  storeA: string; storeB: string;
  zoneA: string; zoneB: string;
  tillA: string; tillB: string;
  geofenceA: string; geofenceB: string;
  campaignA: string; campaignB: string;
  memberA: string; memberB: string;
  deliveryA: string; deliveryB: string;
  redemptionA: string; redemptionB: string;
  codeA: string; codeB: string;
  agentA: string;
  /** Box A's private key: the agent role signs instead of sending an API key. */
  agentKey: KeyObject;
  /** Partners: A's offer is published; B's was withdrawn (and no brand of A's ever included it). */
  partnerA: string; partnerKey: string; offerA: string; offerB: string;
  keys: Record<Caller, string>;
  freshOffer(): Promise<string>;
  /** Fresh objects for calls that use them up. */
  freshMember(): Promise<{ id: string; appToken: string }>;
  freshKey(role: Caller): Promise<{ id: string; key: string }>;
  freshAgent(): Promise<string>;
  freshCampaign(): Promise<string>;
}

interface Row {
  /** The roles that may call it; a signed route lists none (no API key opens it). */
  allowed: Caller[];
  own: (w: World, caller: Caller) => Req | Promise<Req>;
  /** The same call on tenant B's object: any caller but an administrator gets 404 (or 403 by role). */
  foreign?: (w: World) => Req;
  /** A not-found answer that an allowed call may legitimately get (the object named is made up). */
  notFoundOk?: string;
}

const AT_A = { lat: 40.7, lon: -74.0 };
const AT_B = { lat: 41.7, lon: -72.0 };
const NOW = '2026-06-03T16:00:00.000Z'; // Wednesday noon in New York
const NOBODY = '00000000-0000-4000-8000-00000000dead';
const offerBody = () => ({
  title: 'Treat', message: 'Treat {code}', faceValue: 2.5, validFrom: '2026-06-01T00:00:00Z', validTo: '2026-12-31T00:00:00Z',
});
const campaignBody = (storeId: string, name = 'c') => ({ name, storeId, trigger: { kind: 'checkin' }, offer: { title: 't', message: 'Deal {code}' } });
const zoneIds = (zoneId: string) => ({ name: 'zone campaign', trigger: { kind: 'zone_enter', zoneIds: [zoneId] }, offer: { title: 't', message: 'm {code}' } });
void zoneIds;

const ROUTES: Record<string, Row> = {
  'GET /openapi.json': { allowed: CALLERS, own: () => ({ url: '/openapi.json' }) },
  'GET /healthz': { allowed: CALLERS, own: () => ({ url: '/healthz' }) },
  'GET /readyz': { allowed: CALLERS, own: () => ({ url: '/readyz' }) },
  'POST /members/signup': { allowed: CALLERS, own: () => ({ url: '/members/signup', payload: { timeZone: 'UTC' } }) },
  'POST /members/signup/confirm': { allowed: CALLERS, own: () => ({ url: '/members/signup/confirm', payload: { signupId: NOBODY, code: '000000' } }) },
  'GET /push/vapid-public-key': { allowed: CALLERS, own: () => ({ url: '/push/vapid-public-key' }) },
  // Public, checked by Twilio's signature: without one, 403 whoever calls.
  'POST /webhooks/twilio/status': { allowed: [], own: () => ({ url: '/webhooks/twilio/status', payload: { MessageSid: 'SM1', MessageStatus: 'sent' } }) },
  'POST /webhooks/twilio/sms': { allowed: [], own: () => ({ url: '/webhooks/twilio/sms', payload: { MessageSid: 'SM1', From: '+14155550100', Body: 'YES' } }) },

  'POST /stores': { allowed: ['administrator', 'marketer'], own: () => ({ url: '/stores', payload: { name: 's', timeZone: 'UTC', location: AT_A } }) },
  'GET /stores/:id': { allowed: ['administrator', 'marketer', 'merchant'], own: (w) => ({ url: `/stores/${w.storeA}` }), foreign: (w) => ({ url: `/stores/${w.storeB}` }) },
  'POST /geofences': {
    allowed: ['administrator', 'marketer'],
    own: (w) => ({ url: '/geofences', payload: { name: 'g', storeId: w.storeA, shape: { kind: 'circle', center: AT_A, radiusM: 50 } } }),
    foreign: (w) => ({ url: '/geofences', payload: { name: 'g', storeId: w.storeB, shape: { kind: 'circle', center: AT_B, radiusM: 50 } } }),
  },
  'GET /geofences/:id': { allowed: ['administrator', 'marketer'], own: (w) => ({ url: `/geofences/${w.geofenceA}` }), foreign: (w) => ({ url: `/geofences/${w.geofenceB}` }) },
  'GET /stores/:id/geofences': { allowed: ['administrator', 'marketer', 'merchant'], own: (w) => ({ url: `/stores/${w.storeA}/geofences` }), foreign: (w) => ({ url: `/stores/${w.storeB}/geofences` }) },
  'POST /stores/:id/zones': {
    allowed: ['administrator', 'marketer'],
    own: (w, c) => ({ url: `/stores/${w.storeA}/zones`, payload: { name: `zone by ${c}` } }),
    foreign: (w) => ({ url: `/stores/${w.storeB}/zones`, payload: { name: 'intruder' } }),
  },
  'GET /stores/:id/zones': { allowed: ['administrator', 'marketer'], own: (w) => ({ url: `/stores/${w.storeA}/zones` }), foreign: (w) => ({ url: `/stores/${w.storeB}/zones` }) },
  'POST /stores/:id/beacons': {
    allowed: ['administrator'],
    own: (w, c) => ({ url: `/stores/${w.storeA}/beacons`, payload: { zoneId: w.zoneA, uuid: 'f7826da6-4fa2-4e98-8024-bc5b71e0893e', major: 1, minor: CALLERS.indexOf(c) + 1 } }),
  },
  'GET /stores/:id/beacons': { allowed: ['administrator', 'marketer'], own: (w) => ({ url: `/stores/${w.storeA}/beacons` }), foreign: (w) => ({ url: `/stores/${w.storeB}/beacons` }) },
  'POST /stores/:id/tills': { allowed: ['administrator'], own: (w, c) => ({ url: `/stores/${w.storeA}/tills`, payload: { name: `till of ${c}` } }) },
  'GET /stores/:id/tills': { allowed: ['administrator', 'marketer', 'merchant'], own: (w) => ({ url: `/stores/${w.storeA}/tills` }), foreign: (w) => ({ url: `/stores/${w.storeB}/tills` }) },
  'GET /stores/:id/report': { allowed: ['administrator', 'marketer', 'merchant'], own: (w) => ({ url: `/stores/${w.storeA}/report` }), foreign: (w) => ({ url: `/stores/${w.storeB}/report` }) },

  'POST /campaigns': { allowed: ['administrator', 'marketer'], own: (w) => ({ url: '/campaigns', payload: campaignBody(w.storeA) }), foreign: (w) => ({ url: '/campaigns', payload: campaignBody(w.storeB) }) },
  'POST /campaigns/validate': {
    allowed: ['administrator', 'marketer'], own: (w) => ({ url: '/campaigns/validate', payload: campaignBody(w.storeA) }), foreign: (w) => ({ url: '/campaigns/validate', payload: campaignBody(w.storeB) }),
  },
  'GET /campaigns': { allowed: ['administrator', 'marketer'], own: () => ({ url: '/campaigns' }) },
  'GET /campaigns/:id': { allowed: ['administrator', 'marketer'], own: (w) => ({ url: `/campaigns/${w.campaignA}` }), foreign: (w) => ({ url: `/campaigns/${w.campaignB}` }) },
  'PUT /campaigns/:id': {
    allowed: ['administrator', 'marketer'],
    own: (w) => ({ url: `/campaigns/${w.campaignA}`, payload: campaignBody(w.storeA, 'edited') }),
    foreign: (w) => ({ url: `/campaigns/${w.campaignB}`, payload: campaignBody(w.storeB, 'hijacked') }),
  },
  'POST /campaigns/:id/pause': { allowed: ['administrator', 'marketer'], own: async (w) => ({ url: `/campaigns/${await w.freshCampaign()}/pause` }), foreign: (w) => ({ url: `/campaigns/${w.campaignB}/pause` }) },
  'POST /campaigns/:id/resume': { allowed: ['administrator', 'marketer'], own: (w) => ({ url: `/campaigns/${w.campaignA}/resume` }), foreign: (w) => ({ url: `/campaigns/${w.campaignB}/resume` }) },
  'POST /campaigns/:id/archive': { allowed: ['administrator', 'marketer'], own: async (w) => ({ url: `/campaigns/${await w.freshCampaign()}/archive` }), foreign: (w) => ({ url: `/campaigns/${w.campaignB}/archive` }) },
  'GET /campaigns/:id/report': { allowed: ['administrator', 'marketer'], own: (w) => ({ url: `/campaigns/${w.campaignA}/report` }), foreign: (w) => ({ url: `/campaigns/${w.campaignB}/report` }) },

  'POST /members': { allowed: ['administrator'], own: () => ({ url: '/members', payload: { timeZone: 'UTC' } }) },
  'PATCH /members/:id': { allowed: ['administrator'], own: (w) => ({ url: `/members/${w.memberA}`, payload: { tier: 'gold' } }) },
  'GET /members/:id': { allowed: ['administrator', 'member'], own: (w) => ({ url: `/members/${w.memberA}` }), foreign: (w) => ({ url: `/members/${w.memberB}` }) },
  'POST /members/:id/consents': {
    allowed: ['administrator', 'member'],
    own: (w) => ({ url: `/members/${w.memberA}/consents`, payload: { purpose: 'profiling', action: 'grant', source: 'app', noticeVersion: 'n-1' } }),
    foreign: (w) => ({ url: `/members/${w.memberB}/consents`, payload: { purpose: 'sms_marketing', action: 'withdraw', source: 'app' } }),
  },
  'GET /members/:id/consents': { allowed: ['administrator', 'member'], own: (w) => ({ url: `/members/${w.memberA}/consents` }), foreign: (w) => ({ url: `/members/${w.memberB}/consents` }) },
  'GET /members/:id/decisions': { allowed: ['administrator', 'member'], own: (w) => ({ url: `/members/${w.memberA}/decisions` }), foreign: (w) => ({ url: `/members/${w.memberB}/decisions` }) },
  'GET /members/:id/export': { allowed: ['administrator', 'member'], own: (w) => ({ url: `/members/${w.memberA}/export` }), foreign: (w) => ({ url: `/members/${w.memberB}/export` }) },
  'GET /members/:id/receipts': { allowed: ['administrator', 'member'], own: (w) => ({ url: `/members/${w.memberA}/receipts` }), foreign: (w) => ({ url: `/members/${w.memberB}/receipts` }) },
  'POST /members/:id/erase': {
    allowed: ['administrator', 'member'],
    own: async (w, c) => {
      const m = await w.freshMember();
      return { url: `/members/${m.id}/erase`, ...(c === 'member' ? { key: m.appToken } : {}) };
    },
    foreign: (w) => ({ url: `/members/${w.memberB}/erase` }),
  },
  'GET /members/:id/ble-identity': { allowed: ['member'], own: (w) => ({ url: `/members/${w.memberA}/ble-identity` }), foreign: (w) => ({ url: `/members/${w.memberB}/ble-identity` }) },
  'POST /members/:id/push-subscriptions': {
    allowed: ['administrator', 'member'],
    // No push service is allowed in this configuration: an allowed caller gets the endpoint refused (400).
    own: (w) => ({ url: `/members/${w.memberA}/push-subscriptions`, payload: { endpoint: 'https://push.example.com/x', keys: { p256dh: 'a', auth: 'b' } } }),
    foreign: (w) => ({ url: `/members/${w.memberB}/push-subscriptions`, payload: { endpoint: 'https://push.example.com/x', keys: { p256dh: 'a', auth: 'b' } } }),
  },
  'GET /members/:id/push-subscriptions': { allowed: ['administrator', 'member'], own: (w) => ({ url: `/members/${w.memberA}/push-subscriptions` }), foreign: (w) => ({ url: `/members/${w.memberB}/push-subscriptions` }) },
  'DELETE /members/:id/push-subscriptions/:subscriptionId': {
    allowed: ['administrator', 'member'], notFoundOk: 'PUSH_SUBSCRIPTION_NOT_FOUND',
    own: (w) => ({ url: `/members/${w.memberA}/push-subscriptions/${NOBODY}` }),
    foreign: (w) => ({ url: `/members/${w.memberB}/push-subscriptions/${NOBODY}` }),
  },
  'POST /members/:id/beacon-reports': { allowed: [], own: (w) => ({ url: `/members/${w.memberA}/beacon-reports`, payload: {} }) },
  'POST /checkins': {
    allowed: ['administrator', 'member'],
    own: (w) => ({ url: '/checkins', payload: { memberId: w.memberA, ...AT_A, accuracyM: 10, at: NOW } }),
    foreign: (w) => ({ url: '/checkins', payload: { memberId: w.memberB, ...AT_B, accuracyM: 10, at: NOW } }),
  },
  'GET /deliveries/:id': { allowed: ['administrator', 'member'], own: (w) => ({ url: `/deliveries/${w.deliveryA}` }), foreign: (w) => ({ url: `/deliveries/${w.deliveryB}` }) },

  'POST /redemptions': {
    // The coupon is already redeemed: an allowed caller gets 409, never 401/403/404.
    allowed: ['administrator', 'merchant'],
    own: (w) => ({ url: '/redemptions', payload: { code: w.codeA, storeId: w.storeA, tillId: w.tillA } }),
    foreign: (w) => ({ url: '/redemptions', payload: { code: w.codeB, storeId: w.storeB, tillId: w.tillB } }),
  },
  'POST /redemptions/:id/void': {
    allowed: ['administrator', 'merchant'],
    own: (w) => ({ url: `/redemptions/${w.redemptionA}/void`, payload: { storeId: w.storeA } }),
    foreign: (w) => ({ url: `/redemptions/${w.redemptionB}/void`, payload: { storeId: w.storeB } }),
  },

  'GET /admin/dead-letters': { allowed: ['administrator'], own: () => ({ url: '/admin/dead-letters' }) },
  'POST /dev/sms/inbound': { allowed: ['administrator'], own: () => ({ url: '/dev/sms/inbound', payload: { from: '+14155550999', body: 'HELP' } }) },
  'POST /admin/retention/run': { allowed: ['administrator'], own: () => ({ url: '/admin/retention/run' }) },
  'GET /admin/drops': { allowed: ['administrator'], own: () => ({ url: '/admin/drops' }) },
  'GET /admin/push-counters': { allowed: ['administrator'], own: () => ({ url: '/admin/push-counters' }) },
  'GET /admin/sms-limits': { allowed: ['administrator'], own: () => ({ url: '/admin/sms-limits' }) },

  'POST /agents': { allowed: ['administrator'], own: (w) => ({ url: '/agents', payload: { storeId: w.storeA, name: 'box' } }) },
  'GET /agents/:id': { allowed: ['administrator'], own: (w) => ({ url: `/agents/${w.agentA}` }) },
  'POST /agents/:id/rotate': { allowed: ['administrator'], own: async (w) => ({ url: `/agents/${await w.freshAgent()}/rotate` }) },
  'POST /agents/:id/revoke': { allowed: ['administrator'], own: async (w) => ({ url: `/agents/${await w.freshAgent()}/revoke` }) },
  'POST /ingest/presence': { allowed: [], own: (w) => ({ url: '/ingest/presence', payload: { agentId: w.agentA, batchId: 'b', events: [] } }) },
  'GET /ingest/offers': { allowed: [], own: () => ({ url: '/ingest/offers' }) },

  'POST /merchants': { allowed: ['administrator'], own: () => ({ url: '/merchants', payload: { kind: 'partner', name: 'p' } }) },
  'GET /merchants': { allowed: ['administrator', 'marketer', 'merchant'], own: () => ({ url: '/merchants' }) },
  'GET /merchants/:id': { allowed: ['administrator', 'marketer', 'merchant'], own: (w) => ({ url: `/merchants/${w.brandA}` }), foreign: (w) => ({ url: `/merchants/${w.brandB}` }) },
  'GET /merchants/:id/settlement': {
    allowed: ['administrator', 'marketer', 'merchant'],
    own: (w) => ({ url: `/merchants/${w.brandA}/settlement?from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z` }),
    foreign: (w) => ({ url: `/merchants/${w.brandB}/settlement?from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z` }),
  },
  // The matrix's merchant key is brand A's; for offers, a merchant is a partner: partner A's key stands in.
  'POST /alliance-offers': {
    allowed: ['administrator', 'merchant'],
    own: (w, c) => (c === 'merchant' ? { url: '/alliance-offers', payload: offerBody(), key: w.partnerKey } : { url: '/alliance-offers', payload: { ...offerBody(), merchantId: w.partnerA } }),
  },
  'GET /alliance-offers': { allowed: ['administrator', 'marketer', 'merchant'], own: () => ({ url: '/alliance-offers' }) },
  'GET /alliance-offers/:id': {
    allowed: ['administrator', 'marketer', 'merchant'],
    own: (w, c) => ({ url: `/alliance-offers/${w.offerA}`, ...(c === 'merchant' ? { key: w.partnerKey } : {}) }),
    foreign: (w) => ({ url: `/alliance-offers/${w.offerB}` }),
  },
  'POST /alliance-offers/:id/withdraw': {
    allowed: ['administrator', 'merchant'],
    own: async (w, c) => ({ url: `/alliance-offers/${await w.freshOffer()}/withdraw`, ...(c === 'merchant' ? { key: w.partnerKey } : {}) }),
    foreign: (w) => ({ url: `/alliance-offers/${w.offerB}/withdraw` }),
  },
  'GET /alliance-offers/:id/settlement': {
    allowed: ['administrator', 'marketer', 'merchant'],
    own: (w, c) => ({ url: `/alliance-offers/${w.offerA}/settlement?from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z`, ...(c === 'merchant' ? { key: w.partnerKey } : {}) }),
    foreign: (w) => ({ url: `/alliance-offers/${w.offerB}/settlement?from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z` }),
  },

  'POST /api-keys': { allowed: ['administrator'], own: (w) => ({ url: '/api-keys', payload: { role: 'merchant', name: 'till', merchantId: w.brandA } }) },
  'GET /api-keys': { allowed: ['administrator'], own: () => ({ url: '/api-keys' }) },
  'GET /api-keys/:id': { allowed: ['administrator'], own: async (w) => ({ url: `/api-keys/${(await w.freshKey('merchant')).id}` }) },
  'POST /api-keys/:id/revoke': { allowed: ['administrator'], own: async (w) => ({ url: `/api-keys/${(await w.freshKey('merchant')).id}/revoke` }) },
  'POST /api-keys/:id/rotate': { allowed: ['administrator'], own: async (w) => ({ url: `/api-keys/${(await w.freshKey('merchant')).id}/rotate` }) },
  'POST /api-keys/current/rotate': {
    allowed: ['administrator', 'marketer', 'merchant', 'member'],
    // Each caller rotates a key of its own role made for this call, so the matrix's keys stay as they are.
    own: async (w, c) => ({ url: '/api-keys/current/rotate', key: (await w.freshKey(c)).key }),
  },
};

describe.each(backends)('access control on the %s backends', (backend) => {
  let stamp = 0;
  let iso: Isolated;
  let gw: TestGateway;
  const w = {} as World;

  const send = async (method: string, req: Req, key: string | null) => {
    const res = await gw.app.inject({
      method: method as 'GET', url: req.url, ...(req.payload ? { payload: req.payload } : {}),
      headers: { authorization: key === null ? '' : `Bearer ${key}` },
    });
    return { status: res.statusCode, code: String(res.headers['content-type'] ?? '').includes('json') ? (res.json().error?.code as string | undefined) : undefined };
  };
  const ok = async (method: string, url: string, payload?: object) => {
    const res = await gw.app.inject({ method: method as 'GET', url, ...(payload ? { payload } : {}) });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res.json();
  };

  beforeAll(async () => {
    iso = isolatedConfig(backend);
    gw = await startGateway(iso.config, { now: () => new Date(NOW) });
    let phone = 0;
    const tenant = async (at: { lat: number; lon: number }, tag: string) => {
      const brand = await ok('POST', '/merchants', { kind: 'brand', name: `Brand ${tag}` });
      const store = await ok('POST', '/stores', { merchantId: brand.id, name: `Store ${tag}`, timeZone: 'America/New_York', location: at, geofence: { radiusM: 100 } });
      const zone = await ok('POST', `/stores/${store.id}/zones`, { name: 'door' });
      const till = await ok('POST', `/stores/${store.id}/tills`, { name: 'till 1' });
      const campaign = await ok('POST', '/campaigns', campaignBody(store.id, `Campaign ${tag}`));
      const member = await ok('POST', '/members', { phone: `+1415555${8000 + ++phone}`, timeZone: 'America/New_York' });
      await grantConsents(gw, member.id, member.phone, ['location', 'sms_marketing']);
      const checkin = await ok('POST', '/checkins', { memberId: member.id, ...at, accuracyM: 10, at: NOW });
      const [coupon] = await gw.deps.db.query<{ code: string }>('SELECT code FROM coupons WHERE decision_id = $1', [checkin.decisions[0].id]);
      const redemption = await ok('POST', '/redemptions', { code: coupon!.code, storeId: store.id });
      return { brand: brand.id as string, store, zone: zone.id as string, till: till.id as string, campaign: campaign.id as string, member, delivery: checkin.deliveryIds[0] as string, redemption: redemption.id as string, code: coupon!.code };
    };
    const a = await tenant(AT_A, 'A');
    const b = await tenant(AT_B, 'B');
    const key = async (role: Caller, scope: object) => (await issueApiKey(gw.deps.db, { role, name: `matrix ${role}`, ...scope })).key;
    const partner = async (tag: string, at: { lat: number; lon: number }) => {
      const p = await ok('POST', '/merchants', { kind: 'partner', name: `Partner ${tag}` });
      await ok('POST', '/stores', { merchantId: p.id, name: `Partner ${tag} shop`, timeZone: 'America/New_York', location: at });
      return p.id as string;
    };
    const partnerA = await partner('A', AT_A);
    const partnerB = await partner('B', AT_B);
    const offerA = (await ok('POST', '/alliance-offers', { ...offerBody(), merchantId: partnerA })).id as string;
    const offerB = (await ok('POST', '/alliance-offers', { ...offerBody(), merchantId: partnerB })).id as string;
    await ok('POST', `/alliance-offers/${offerB}/withdraw`);
    Object.assign(w, {
      brandA: a.brand, brandB: b.brand, storeA: a.store.id, storeB: b.store.id, zoneA: a.zone, zoneB: b.zone, tillA: a.till, tillB: b.till,
      geofenceA: a.store.geofences[0].id, geofenceB: b.store.geofences[0].id, campaignA: a.campaign, campaignB: b.campaign,
      memberA: a.member.id, memberB: b.member.id, deliveryA: a.delivery, deliveryB: b.delivery, redemptionA: a.redemption, redemptionB: b.redemption, codeA: a.code, codeB: b.code,
      ...await (async () => {
        const reg = await ok('POST', '/agents', { storeId: a.store.id, name: 'box A' });
        return { agentA: reg.agent.id, agentKey: loadPrivateKey(reg.privateKey) };
      })(),
      partnerA, partnerKey: await key('merchant', { merchantId: partnerA }), offerA, offerB,
      freshOffer: async () => (await ok('POST', '/alliance-offers', { ...offerBody(), merchantId: partnerA })).id,
      keys: {
        administrator: gw.adminKey,
        marketer: await key('marketer', { merchantId: a.brand }),
        merchant: await key('merchant', { merchantId: a.brand }),
        member: a.member.appToken,
      },
      freshMember: async () => ok('POST', '/members', { timeZone: 'UTC' }),
      freshKey: async (role: Caller) => {
        const scope = role === 'member' ? { memberId: a.member.id } : role === 'administrator' ? {} : { merchantId: a.brand };
        const issued = await issueApiKey(gw.deps.db, { role, name: 'fresh', ...scope });
        return { id: issued.apiKey.id, key: issued.key };
      },
      freshAgent: async () => (await ok('POST', '/agents', { storeId: a.store.id, name: 'spare box' })).agent.id,
      freshCampaign: async () => (await ok('POST', '/campaigns', campaignBody(a.store.id, 'spare'))).id,
    } satisfies Partial<World>);
  });

  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  it('has a row for every route the gateway serves, and every route declares its access', () => {
    const served = gw.app.declaredRoutes.map((r) => `${r.method} ${r.url}`).sort();
    expect(served).toEqual(Object.keys(ROUTES).sort());
  });

  for (const [route, row] of Object.entries(ROUTES)) {
    const [method, pattern] = route.split(' ') as [string, string];
    it(`${route}: ${row.allowed.length ? row.allowed.join(', ') : 'no API key'}${row.foreign ? "; never another tenant's" : ''}`, async () => {
      const { access } = gw.app.declaredRoutes.find((r) => r.method === method && r.url === pattern)!;
      const isPublic = 'public' in access;
      const signed = !isPublic && access.by === 'signature';
      const refused: string[] = [];
      // Without credentials: 401 unless the route is public.
      const anonymous = await send(method, await row.own(w, 'administrator'), null);
      // A route with its own signature refuses an unsigned request with 401 or 403, before reading its body.
      if (!isPublic && anonymous.status !== 401 && !(signed && anonymous.status === 403)) refused.push(`no key: ${anonymous.status} ${anonymous.code}`);
      if (isPublic && [401, 403].includes(anonymous.status) && row.allowed.length > 0) refused.push(`public route refused anonymous: ${anonymous.status}`);

      for (const caller of CALLERS) {
        const req = await row.own(w, caller);
        const res = await send(method, req, req.key ?? w.keys[caller]);
        const allowed = row.allowed.includes(caller);
        const gotIn = ![401, 403].includes(res.status) && !(res.status === 404 && res.code !== row.notFoundOk) && res.status < 500;
        if (allowed !== gotIn) refused.push(`${caller} on own: ${res.status} ${res.code} (expected ${allowed ? 'allowed' : 'refused'})`);
        if (!allowed && row.allowed.length > 0 && !isPublic && (res.status !== 403 || res.code !== 'FORBIDDEN')) {
          refused.push(`${caller} refused with ${res.status} ${res.code}, not 403 FORBIDDEN`);
        }
        if (row.foreign) {
          const f = await send(method, row.foreign(w), w.keys[caller]);
          if (caller === 'administrator' && allowed) {
            if ([401, 403].includes(f.status) || f.status >= 500) refused.push(`administrator on B: ${f.status} ${f.code}`);
          } else if (allowed ? f.status !== 404 : f.status !== 403) {
            refused.push(`${caller} on tenant B's object: ${f.status} ${f.code} (expected ${allowed ? 404 : 403})`);
          }
        }
      }
      // The agent role: box A's signature and no API key. Only the boxes' routes take it.
      const boxReq = await row.own(w, 'administrator');
      const body = boxReq.payload ? JSON.stringify(boxReq.payload) : '';
      const boxSignature = signRequest(w.agentKey, w.agentA, { method, path: boxReq.url, timestamp: Date.parse(NOW) + ++stamp, body });
      const box = await gw.app.inject({
        method: method as 'GET', url: boxReq.url, ...(body ? { payload: body } : {}),
        headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...boxSignature, authorization: '' },
      });
      const boxAllowed = !isPublic && access.roles.includes('agent');
      if (!isPublic && boxAllowed !== (box.statusCode < 300)) refused.push(`agent: ${box.statusCode} (expected ${boxAllowed ? 'allowed' : 'refused'})`);
      if (!isPublic && !boxAllowed && ![401, 403].includes(box.statusCode)) refused.push(`agent refused with ${box.statusCode}, not 401/403`);
      expect(refused).toEqual([]);
    });
  }

  it("an agent posts only for its own store: another store's zone is rejected, another box's id refused", async () => {
    const at = new Date(Date.parse(NOW) - 1000).toISOString();
    const post = async (payload: object) => {
      const body = JSON.stringify(payload);
      const headers = { 'content-type': 'application/json', ...signRequest(w.agentKey, w.agentA, { method: 'POST', path: '/ingest/presence', timestamp: Date.parse(NOW) + ++stamp, body }) };
      const res = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body, headers });
      return { status: res.statusCode, body: res.json() };
    };
    const ev = (zoneId: string) => ({ id: randomUUID(), kind: 'enter', eid: '0123456789abcdef', zoneId, at, source: 'ble_passive', confidence: 0.9, rssi: -60 });
    const foreign = await post({ agentId: w.agentA, batchId: `b-${stamp}`, events: [ev(w.zoneB)] });
    expect(foreign).toMatchObject({ status: 202, body: { accepted: 0, rejected: [{ index: 0, code: 'ZONE_NOT_IN_STORE' }] } });
    const other = (await ok('POST', '/agents', { storeId: w.storeB, name: 'box B' })).agent.id;
    const impostor = await post({ agentId: other, batchId: `b-${stamp}`, events: [] });
    expect([impostor.status, impostor.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
  });

  it('tells the API description who may call each operation and which need a key', async () => {
    const doc = (await gw.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/redemptions'].post).toMatchObject({ security: [{ apiKey: [] }], description: expect.stringContaining('Roles: administrator, merchant.') });
    expect(doc.paths['/members/signup'].post.security).toBeUndefined();
    expect(doc.paths['/ingest/presence'].post.security).toBeUndefined();
  });

  it("answers another tenant's object exactly as one that does not exist", async () => {
    const foreign = await send('GET', { url: `/campaigns/${w.campaignB}` }, w.keys.marketer);
    const missing = await send('GET', { url: `/campaigns/${NOBODY}` }, w.keys.marketer);
    expect(foreign).toEqual(missing);
    expect(foreign).toEqual({ status: 404, code: 'CAMPAIGN_NOT_FOUND' });
    const store = await gw.app.inject({ method: 'GET', url: `/stores/${w.storeB}`, headers: as(w.keys.merchant) });
    const none = await gw.app.inject({ method: 'GET', url: `/stores/${NOBODY}`, headers: as(w.keys.merchant) });
    expect(store.json().error.message.replace(w.storeB, 'X')).toBe(none.json().error.message.replace(NOBODY, 'X'));
  });

  it("lists only the caller's own: campaigns and merchants of a marketer's brand", async () => {
    const campaigns = (await gw.app.inject({ method: 'GET', url: '/campaigns', headers: as(w.keys.marketer) })).json().campaigns as Array<{ merchantId: string; id: string }>;
    expect(campaigns.length).toBeGreaterThan(0);
    expect(campaigns.every((c) => c.merchantId === w.brandA)).toBe(true);
    expect(campaigns.map((c) => c.id)).not.toContain(w.campaignB);
    const merchants = (await gw.app.inject({ method: 'GET', url: '/merchants', headers: as(w.keys.merchant) })).json().merchants as Array<{ id: string }>;
    expect(merchants.map((m) => m.id)).toEqual([w.brandA]);
    const all = (await gw.app.inject({ method: 'GET', url: '/merchants', headers: as(w.keys.administrator) })).json().merchants as Array<{ id: string }>;
    expect(all.map((m) => m.id)).toEqual(expect.arrayContaining([w.brandA, w.brandB]));
  });

  it("keeps a marketer's new stores and campaigns in its brand, and refuses another brand's geofences and zones", async () => {
    const store = (await gw.app.inject({ method: 'POST', url: '/stores', headers: as(w.keys.marketer), payload: { name: 'new', timeZone: 'UTC', location: AT_A } })).json();
    expect(store.merchantId).toBe(w.brandA);
    const elsewhere = await gw.app.inject({ method: 'POST', url: '/stores', headers: as(w.keys.marketer), payload: { merchantId: w.brandB, name: 'x', timeZone: 'UTC', location: AT_B } });
    expect([elsewhere.statusCode, elsewhere.json().error.code]).toEqual([404, 'MERCHANT_NOT_FOUND']);
    const fences = await gw.app.inject({
      method: 'POST', url: '/campaigns', headers: as(w.keys.marketer),
      payload: { name: 'g', geofenceIds: [w.geofenceB], trigger: { kind: 'geofence_enter' }, offer: { title: 't', message: 'm {code}' } },
    });
    expect(fences.statusCode).toBe(400);
    expect(fences.json().error.details.issues[0]).toMatchObject({ field: 'body/geofenceIds/0', problem: `geofence ${w.geofenceB} does not exist` });
    const zones = await gw.app.inject({
      method: 'POST', url: '/campaigns', headers: as(w.keys.marketer),
      payload: { name: 'z', trigger: { kind: 'zone_enter', zoneIds: [w.zoneB] }, offer: { title: 't', message: 'm {code}' } },
    });
    expect(zones.statusCode).toBe(400);
    expect(JSON.stringify(zones.json().error.details)).toContain(`zone ${w.zoneB} does not exist`);
    const mine = await gw.app.inject({
      method: 'POST', url: '/campaigns', headers: as(w.keys.marketer),
      payload: { name: 'z', trigger: { kind: 'zone_enter', zoneIds: [w.zoneA] }, offer: { title: 't', message: 'm {code}' } },
    });
    expect([mine.statusCode, mine.json().merchantId]).toEqual([201, w.brandA]);
  });

  it('refuses revoked, expired and malformed keys, and keeps a rotated key only for its grace period', async () => {
    const call = (key: string) => send('GET', { url: `/stores/${w.storeA}` }, key);
    const revoked = await issueApiKey(gw.deps.db, { role: 'merchant', name: 'lost till', merchantId: w.brandA });
    expect((await call(revoked.key)).status).toBe(200);
    expect((await send('POST', { url: `/api-keys/${revoked.apiKey.id}/revoke` }, gw.adminKey)).status).toBe(200);
    expect(await call(revoked.key)).toEqual({ status: 401, code: 'API_KEY_REVOKED' });

    const expired = await issueApiKey(gw.deps.db, { role: 'merchant', name: 'temp', merchantId: w.brandA, expiresAt: new Date(Date.parse(NOW) - 1000) });
    expect(await call(expired.key)).toEqual({ status: 401, code: 'API_KEY_EXPIRED' });

    const [, id] = revoked.key.split('.');
    expect(await call(`pmk.${id}.${'A'.repeat(43)}`)).toEqual({ status: 401, code: 'API_KEY_INVALID' });
    expect(await call('not-a-key')).toEqual({ status: 401, code: 'API_KEY_INVALID' });
    expect(await call(`pmk.${NOBODY}.${'A'.repeat(43)}`)).toEqual({ status: 401, code: 'API_KEY_INVALID' });
    // Not a uuid, though of a uuid's length and alphabet: refused as a key, never a database error.
    expect(await call(`pmk.${'a'.repeat(36)}.${'A'.repeat(43)}`)).toEqual({ status: 401, code: 'API_KEY_INVALID' });

    // A thief who rotated a stolen key holds nothing once the stolen key is revoked.
    const stolen = await issueApiKey(gw.deps.db, { role: 'merchant', name: 'till 9', merchantId: w.brandA });
    const successor = (await gw.app.inject({ method: 'POST', url: '/api-keys/current/rotate', headers: as(stolen.key), payload: { graceSeconds: 0 } })).json();
    const third = (await gw.app.inject({ method: 'POST', url: '/api-keys/current/rotate', headers: as(successor.key), payload: { graceSeconds: 0 } })).json();
    expect((await call(third.key)).status).toBe(200);
    const tooLong = await gw.app.inject({ method: 'POST', url: '/api-keys/current/rotate', headers: as(third.key), payload: { graceSeconds: 90_000 } });
    expect([tooLong.statusCode, tooLong.json().error.code]).toEqual([400, 'VALIDATION_FAILED']);
    expect((await send('POST', { url: `/api-keys/${stolen.apiKey.id}/revoke` }, gw.adminKey)).status).toBe(200);
    expect(await call(successor.key)).toEqual({ status: 401, code: 'API_KEY_REVOKED' });
    expect(await call(third.key)).toEqual({ status: 401, code: 'API_KEY_REVOKED' });

    // Rotation without grace: the old key stops at once, the new one works with the same scope.
    const old = await issueApiKey(gw.deps.db, { role: 'merchant', name: 'till 7', merchantId: w.brandA });
    const rotated = await gw.app.inject({ method: 'POST', url: `/api-keys/${old.apiKey.id}/rotate`, payload: { graceSeconds: 0 } });
    expect(rotated.statusCode).toBe(201);
    const fresh = rotated.json();
    expect(fresh.apiKey).toMatchObject({ role: 'merchant', merchantId: w.brandA, name: 'till 7' });
    expect(await call(old.key)).toEqual({ status: 401, code: 'API_KEY_EXPIRED' });
    expect((await call(fresh.key)).status).toBe(200);
    const again = await gw.app.inject({ method: 'POST', url: `/api-keys/${old.apiKey.id}/rotate` });
    expect([again.statusCode, again.json().error.code]).toEqual([409, 'API_KEY_STATE_CONFLICT']);
    // Only a hash is kept.
    const [row] = await gw.deps.db.query<{ secret_hash: Buffer }>('SELECT secret_hash FROM api_keys WHERE id = $1', [fresh.apiKey.id]);
    expect(row!.secret_hash.length).toBe(32);
    expect(JSON.stringify(await gw.deps.db.query('SELECT * FROM api_keys'))).not.toContain(fresh.key.split('.')[2]);
  });

  it('lets a member record consent only as themselves, now, from the app or the web; an SMS keyword only comes by SMS', async () => {
    const m = await ok('POST', '/members', { phone: '+14155558999', timeZone: 'UTC' });
    const grant = (payload: object, key: string) => gw.app.inject({ method: 'POST', url: `/members/${m.id}/consents`, headers: as(key), payload });
    // Skipping the YES by claiming it came as a keyword: refused, for members and administrators alike.
    for (const key of [m.appToken, gw.adminKey]) {
      const res = await grant({ purpose: 'sms_marketing', action: 'grant', source: 'sms_keyword' }, key);
      expect([res.statusCode, res.json().error.code, res.json().error.details.issues[0].field]).toEqual([400, 'VALIDATION_FAILED', 'body/source']);
    }
    const staff = await grant({ purpose: 'location', action: 'grant', source: 'store_staff' }, m.appToken);
    expect(staff.statusCode).toBe(400);
    const backdated = await grant({ purpose: 'location', action: 'grant', source: 'app', occurredAt: '2026-01-01T00:00:00Z', actor: 'someone else' }, m.appToken);
    expect(backdated.statusCode).toBe(201);
    expect(backdated.json().event).toMatchObject({ occurredAt: NOW, actor: null });
    const sms = await grant({ purpose: 'sms_marketing', action: 'grant', source: 'app' }, m.appToken);
    expect(sms.json().consents.sms_marketing).toMatchObject({ granted: false, pending: true });
    // An administrator may enter a paper consent with its date.
    const paper = await grant({ purpose: 'profiling', action: 'grant', source: 'store_staff', occurredAt: '2026-06-01T10:00:00Z', actor: 'clerk 4' }, gw.adminKey);
    expect(paper.json().event).toMatchObject({ occurredAt: '2026-06-01T10:00:00.000Z', actor: 'clerk 4', source: 'store_staff' });
  });

  it("refuses a campaign audience naming another brand's home store", async () => {
    const res = await gw.app.inject({
      method: 'POST', url: '/campaigns', headers: as(w.keys.marketer),
      payload: { ...campaignBody(w.storeA), audience: { homeStoreIds: [w.storeA, w.storeB] } },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details.issues).toEqual([{ field: 'body/audience/homeStoreIds/1', problem: `store ${w.storeB} does not exist` }]);
  });

  it("erasure revokes the member's app tokens", async () => {
    const m = await ok('POST', '/members', { timeZone: 'UTC' });
    expect((await send('GET', { url: `/members/${m.id}` }, m.appToken)).status).toBe(200);
    expect((await send('POST', { url: `/members/${m.id}/erase` }, m.appToken)).status).toBe(200);
    expect(await send('GET', { url: `/members/${m.id}` }, m.appToken)).toEqual({ status: 401, code: 'API_KEY_REVOKED' });
  });
});

describe('abuse limits', () => {
  it('limits sign-ups per address and members per key with 429 RATE_LIMITED and Retry-After; administrators pass', async () => {
    const iso = isolatedConfig(backends.at(-1)!, { RATE_LIMIT_PUBLIC_PER_MINUTE: '3', RATE_LIMIT_MEMBER_PER_MINUTE: '5' });
    const gw = await startGateway(iso.config);
    try {
      const signups = [];
      for (let i = 0; i < 4; i++) signups.push(await gw.app.inject({ method: 'POST', url: '/members/signup', payload: { timeZone: 'UTC' }, headers: { authorization: '' } }));
      expect(signups.map((r) => r.statusCode)).toEqual([201, 201, 201, 429]);
      expect(signups[3]!.json().error).toMatchObject({ code: 'RATE_LIMITED', details: { limit: 3 } });
      expect(Number(signups[3]!.headers['retry-after'])).toBeGreaterThan(0);

      const m = signups[0]!.json();
      const reads = [];
      for (let i = 0; i < 6; i++) reads.push((await gw.app.inject({ method: 'GET', url: `/members/${m.id}`, headers: as(m.appToken) })).statusCode);
      expect(reads).toEqual([200, 200, 200, 200, 200, 429]);
      // Another member's key has its own count; an administrator is not a member's traffic.
      const other = signups[1]!.json();
      expect((await gw.app.inject({ method: 'GET', url: `/members/${other.id}`, headers: as(other.appToken) })).statusCode).toBe(200);
      for (let i = 0; i < 8; i++) expect((await gw.app.inject({ method: 'GET', url: `/members/${m.id}` })).statusCode).toBe(200);

      // A member's quota is theirs, whichever token: a new one does not start a new count.
      const third = signups[2]!.json();
      const probe = (key: string, id: string) => gw.app.inject({ method: 'GET', url: `/members/${id}`, headers: as(key) });
      const fresh = (await gw.app.inject({ method: 'POST', url: '/api-keys', payload: { role: 'member', name: 'second phone', memberId: m.id } })).json().key;
      expect((await probe(fresh, m.id)).statusCode).toBe(429);
      // Probing other members' ids counts as well: 404s until the quota is gone.
      const probes = [];
      for (let i = 0; i < 6; i++) probes.push((await probe(third.appToken, other.id)).statusCode);
      expect(probes).toEqual([404, 404, 404, 404, 404, 429]);

      // Guessed keys cost the address its quota (3): then 429 instead of another look.
      const guesses = [];
      for (let i = 0; i < 5; i++) guesses.push((await probe(`pmk.${NOBODY}.${'B'.repeat(43)}`, m.id)).statusCode);
      expect(guesses).toEqual([401, 401, 401, 429, 429]);

      // Twilio's webhooks are never limited: a STOP must not be dropped (unsigned here, so 403 each time).
      const hooks = [];
      for (let i = 0; i < 6; i++) hooks.push((await gw.app.inject({ method: 'POST', url: '/webhooks/twilio/sms', payload: { MessageSid: `SM${i}`, From: '+1', Body: 'STOP' }, headers: { authorization: '' } })).statusCode);
      expect(hooks.every((status) => status !== 429)).toBe(true);
    } finally {
      await gw.close();
      await iso.cleanup();
    }
  });

  it('refuses a body over the limit with 413 PAYLOAD_TOO_LARGE before reading it as anything', async () => {
    const iso = isolatedConfig('embedded');
    const gw = await startGateway(iso.config);
    try {
      const res = await gw.app.inject({ method: 'POST', url: '/stores', payload: { name: 'x'.repeat(70 * 1024), timeZone: 'UTC', location: AT_A } });
      expect([res.statusCode, res.json().error.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    } finally {
      await gw.close();
      await iso.cleanup();
    }
  });
});
