// The thin slice through HTTP: store and geofence, campaign, member and consents, check-in, SMS, redemption.
import { checkCharacter } from '../gateway/domain/coupons.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { startTwilioStandIn, type TwilioStandIn } from './support/twilio-standin.js';

const STORE_AT = { lat: 40.7411, lon: -73.9897 };
const INSIDE = { lat: 40.7415, lon: -73.9893 }; // about 55 m from the store
const OUTSIDE = { lat: 40.7511, lon: -73.9897 }; // about 1.1 km away
// Noon in New York, moving with real time: offers are never sent in the members' quiet hours.
const START = Date.parse('2026-06-03T16:00:00Z');
const t0 = Date.now();
const clock = () => new Date(START + (Date.now() - t0));

describe.each(backends)('the slice on the %s backends', (backend) => {
  let twilio: TwilioStandIn;
  let iso: Isolated;
  let gw: Gateway;
  let storeId: string;
  let campaignId: string;

  const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await gw.app.inject({ method, url, payload: payload as object });
    return { status: res.statusCode, body: res.json() };
  };

  const newMember = async (phone: string, purposes: string[]) => {
    const m = await call('POST', '/members', { phone, timeZone: 'America/New_York' });
    expect(m.status).toBe(201);
    await grantConsents(gw, m.body.id, phone, purposes);
    return m.body.id as string;
  };

  const checkin = (memberId: string, at: { lat: number; lon: number }, accuracyM = 10) =>
    call('POST', '/checkins', { memberId, ...at, accuracyM, at: clock().toISOString() });

  /** Offers sent to a phone (programme messages such as the opt-in request are not offers). */
  const offersTo = (phone: string) => twilio.messages.filter((m) => m.to === phone && /code [0-9A-Z]{13}/.test(m.body));

  const tableCounts = async () => {
    const rows = await gw.deps.db.query<{ t: string; n: number }>(
      `SELECT 'members' t, count(*)::int n FROM members UNION ALL SELECT 'stores', count(*)::int FROM stores
       UNION ALL SELECT 'campaigns', count(*)::int FROM campaigns UNION ALL SELECT 'checkins', count(*)::int FROM checkins
       UNION ALL SELECT 'coupons', count(*)::int FROM coupons UNION ALL SELECT 'redemptions', count(*)::int FROM redemptions
       UNION ALL SELECT 'consent_events', count(*)::int FROM consent_events`,
    );
    return Object.fromEntries(rows.map((r) => [r.t, r.n]));
  };

  beforeAll(async () => {
    twilio = await startTwilioStandIn();
    iso = isolatedConfig(backend, {
      TWILIO_ACCOUNT_SID: twilio.accountSid,
      TWILIO_AUTH_TOKEN: twilio.authToken,
      TWILIO_MESSAGING_SERVICE_SID: 'MG' + 'b'.repeat(32),
      TWILIO_API_URL: twilio.url,
    });
    gw = await startGateway(iso.config, { now: clock });
    expect(gw.deps.db.kind).toBe(backend === 'real' ? 'postgres' : 'embedded');
    expect(gw.deps.queue.kind).toBe(backend === 'real' ? 'bullmq' : 'in-process');

    const store = await call('POST', '/stores', {
      name: 'Main St', timeZone: 'America/New_York', location: STORE_AT, geofence: { radiusM: 150 },
    });
    expect(store.status).toBe(201);
    storeId = store.body.id;
    const campaign = await call('POST', '/campaigns', {
      name: 'Morning coffee', storeId, trigger: { kind: 'checkin' },
      offer: { title: 'Free coffee', message: 'Free coffee with code {code}, valid until {expires}.', validDays: 3 },
    });
    expect(campaign.status).toBe(201);
    campaignId = campaign.body.id;
  });

  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
    await twilio?.close();
  });

  it('is ready when the database and the queue answer', async () => {
    const ready = await call('GET', '/readyz');
    expect(ready).toEqual({ status: 200, body: { status: 'ready', database: gw.deps.db.kind, queue: gw.deps.queue.kind } });
  });

  it('sends one coupon by SMS through Twilio, redeems it once, and shows both on the member record', async () => {
    const memberId = await newMember('+14155552671', ['location', 'sms_marketing']);
    const res = await checkin(memberId, INSIDE);
    expect(res.status).toBe(202);
    expect(res.body.decisions).toHaveLength(1);
    expect(res.body.decisions[0]).toMatchObject({ trigger: 'checkin', outcome: 'offer_queued', campaignId, campaignVersion: 1, reasonCode: null });
    expect(res.body.checkinId).toEqual(expect.any(String));
    expect(res.body.deliveryIds).toHaveLength(1);

    const delivery = await eventually(async () => {
      const d = await call('GET', `/deliveries/${res.body.deliveryIds[0]}`);
      return d.body.status === 'sent' ? d.body : undefined;
    });
    expect(delivery.providerId).toMatch(/^SM\d{32}$/);

    const sms = offersTo('+14155552671');
    expect(sms).toHaveLength(1);
    expect(sms[0]!.messagingServiceSid).toBe('MG' + 'b'.repeat(32));
    // The offer's freshness budget (OFFER_FRESHNESS_S, 120 s) runs from the check-in.
    expect(Number(sms[0]!.validityPeriod)).toBeGreaterThan(100);
    expect(Number(sms[0]!.validityPeriod)).toBeLessThanOrEqual(120);
    const code = /code ([0-9A-Z]{13})/.exec(sms[0]!.body)?.[1];
    expect(code).toBeDefined();
    expect(sms[0]!.body).toMatch(/^Nearby Offers: Free coffee with code .* Reply STOP to opt out\.$/);

    // A cashier types it in lower case with a dash: still the same coupon.
    const typed = `${code!.slice(0, 5).toLowerCase()}-${code!.slice(5)}`;
    const first = await call('POST', '/redemptions', { code: typed, storeId, tillRef: 'till-1' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ couponCode: code, memberId, campaignId, storeId, tillRef: 'till-1' });

    const second = await call('POST', '/redemptions', { code, storeId, tillRef: 'till-2' });
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('COUPON_ALREADY_REDEEMED');
    expect(second.body.error.details.redeemedAt).toBe(first.body.redeemedAt);

    const record = await call('GET', `/members/${memberId}`);
    expect(record.status).toBe(200);
    expect(record.body.offers).toHaveLength(1);
    expect(record.body.offers[0]).toMatchObject({
      couponCode: code, qrPayload: `COUPON:${code}`, campaignId, campaignName: 'Morning coffee', title: 'Free coffee',
      delivery: { status: 'sent' }, redemption: { storeId, tillRef: 'till-1', redeemedAt: first.body.redeemedAt },
    });
    expect(record.body.consents.sms_marketing.granted).toBe(true);
  });

  it('redeems exactly once when 200 tills race for the same code', async () => {
    const memberId = await newMember('+14155552672', ['location', 'sms_marketing']);
    const res = await checkin(memberId, INSIDE);
    const { code } = (await gw.deps.db.query<{ code: string }>('SELECT code FROM coupons WHERE decision_id = $1', [res.body.decisions[0].id]))[0]!;
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => call('POST', '/redemptions', { code, storeId, tillRef: `t${i}` })));
    expect(results.map((r) => r.status).sort()).toEqual([201, ...Array<number>(199).fill(409)]);
    expect(new Set(results.filter((r) => r.status === 409).map((r) => r.body.error.code))).toEqual(new Set(['COUPON_ALREADY_REDEEMED']));
    const { n } = (await gw.deps.db.query<{ n: number }>(
      'SELECT count(*)::int n FROM redemptions r JOIN coupons c ON c.id = r.coupon_id WHERE c.code = $1', [code],
    ))[0]!;
    expect(n).toBe(1);
  });

  it('without location consent keeps no check-in, sends nothing, and the decision says why', async () => {
    const memberId = await newMember('+14155552673', ['sms_marketing']);
    const res = await checkin(memberId, INSIDE);
    expect(res.status).toBe(202);
    expect(res.body.checkinId).toBeNull();
    expect(res.body.deliveryIds).toEqual([]);
    expect(res.body.decisions[0]).toMatchObject({ outcome: 'dropped', reasonCode: 'CONSENT_MISSING' });
    expect(res.body.decisions[0].trace.consent.location).toEqual({ allowed: false, reason: 'CONSENT_MISSING', purpose: 'location', since: null });

    const { n } = (await gw.deps.db.query<{ n: number }>('SELECT count(*)::int n FROM checkins WHERE member_id = $1', [memberId]))[0]!;
    expect(n).toBe(0);
    const why = await call('GET', `/members/${memberId}/decisions`);
    expect(why.body.decisions).toHaveLength(1);
    expect(why.body.decisions[0].reasonCode).toBe('CONSENT_MISSING');
    expect(offersTo('+14155552673')).toEqual([]);
  });

  it('without sms_marketing consent issues no coupon and sends nothing, and the decision says why', async () => {
    const memberId = await newMember('+14155552674', ['location']);
    const res = await checkin(memberId, INSIDE);
    expect(res.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'CONSENT_MISSING' });
    expect(res.body.decisions[0].trace.consent.sms_marketing).toMatchObject({ allowed: false, purpose: 'sms_marketing' });
    const candidate = res.body.decisions[0].trace.evaluation.candidates.find((c: { campaignId: string }) => c.campaignId === campaignId);
    expect(candidate.failed).toEqual({ condition: 'channel', allowed: ['sms'], memberChannels: [] });
    const coupons = await gw.deps.db.query('SELECT 1 FROM coupons WHERE member_id = $1', [memberId]);
    expect(coupons).toHaveLength(0);
    expect(offersTo('+14155552674')).toEqual([]);
  });

  it('after a withdrawal, the reason is CONSENT_WITHDRAWN', async () => {
    const memberId = await newMember('+14155552675', ['location', 'sms_marketing']);
    await call('POST', `/members/${memberId}/consents`, { purpose: 'sms_marketing', action: 'withdraw', source: 'app' });
    const res = await checkin(memberId, INSIDE);
    expect(res.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'CONSENT_WITHDRAWN' });
    const history = await call('GET', `/members/${memberId}/consents`);
    expect(history.body.history.map((e: { action: string; source: string }) => `${e.action}:${e.source}`)).toEqual([
      'grant:app', 'request:app', 'grant:sms_keyword', 'withdraw:app',
    ]);
    expect(history.body.history[0]).toMatchObject({ source: 'app', noticeVersion: 'n-1', ip: expect.any(String) });
  });

  it('outside the geofence or with a poor fix, no offer, with the failing condition and its values', async () => {
    const memberId = await newMember('+14155552676', ['location', 'sms_marketing']);
    const far = await checkin(memberId, OUTSIDE);
    expect(far.body.decisions[0]).toMatchObject({ outcome: 'no_match', reasonCode: 'OUTSIDE_GEOFENCES' });
    const trace = far.body.decisions[0].trace.evaluation.candidates.find((c: { campaignId: string }) => c.campaignId === campaignId);
    expect(trace.failed.condition).toBe('outside_geofences');
    expect(trace.failed.nearest.distanceM).toBeGreaterThan(900); // about 1.1 km from the centre, 150 m radius
    expect(trace.failed.nearest.distanceM).toBeLessThan(1000);

    const vague = await checkin(memberId, INSIDE, 400);
    expect(vague.body.decisions[0]).toMatchObject({ outcome: 'no_match', reasonCode: 'ACCURACY' });
    const t2 = vague.body.decisions[0].trace.evaluation.candidates.find((c: { campaignId: string }) => c.campaignId === campaignId);
    expect(t2.failed).toEqual({ condition: 'accuracy', accuracyM: 400, maxAccuracyM: 50 });
  });

  it('refuses bad input with a stable code and changes nothing already stored', async () => {
    const memberId = await newMember('+14155552677', ['location', 'sms_marketing']);
    const before = await tableCounts();
    const bad: Array<[string, unknown, number, string]> = [
      ['/checkins', '{"memberId":', 400, 'MALFORMED_JSON'],
      ['/checkins', { memberId, lat: 'north', lon: 0, accuracyM: 5, at: clock().toISOString() }, 400, 'VALIDATION_FAILED'],
      ['/checkins', { memberId, lat: '40.7', lon: 0, accuracyM: 5, at: clock().toISOString() }, 400, 'VALIDATION_FAILED'],
      ['/checkins', { memberId, lat: 91, lon: 0, accuracyM: 5, at: clock().toISOString() }, 400, 'VALIDATION_FAILED'],
      ['/checkins', { memberId, ...INSIDE, accuracyM: 5, at: new Date().toISOString(), extra: 1 }, 400, 'VALIDATION_FAILED'],
      ['/checkins', { memberId, ...INSIDE, accuracyM: 5, at: new Date(clock().getTime() + 3_600_000).toISOString() }, 400, 'VALIDATION_FAILED'],
      ['/checkins', { memberId: '00000000-0000-4000-8000-000000000000', ...INSIDE, accuracyM: 5, at: clock().toISOString() }, 404, 'MEMBER_NOT_FOUND'],
      ['/members', { phone: '4155552678' }, 400, 'PHONE_INVALID'],
      ['/members', { phone: '+999' }, 400, 'PHONE_INVALID'],
      ['/members', { phone: '+14155552677' }, 409, 'PHONE_TAKEN'],
      ['/members', { phone: '+14155552679', timeZone: 'Mars/Olympus' }, 400, 'VALIDATION_FAILED'],
      ['/stores', { name: 'x', timeZone: 'UTC', location: { lat: 0, lon: 0 }, geofence: { radiusM: 0 } }, 400, 'VALIDATION_FAILED'],
      ['/campaigns', { name: 'x', trigger: { kind: 'checkin' }, offer: { title: 't', message: 'm' } }, 400, 'VALIDATION_FAILED'],
      ['/campaigns', { name: 'x', storeId: '00000000-0000-4000-8000-000000000000', trigger: { kind: 'checkin' }, offer: { title: 't', message: 'm' } }, 404, 'STORE_NOT_FOUND'],
      ['/redemptions', { code: 'ZZZZZZZZZZ', storeId }, 400, 'COUPON_CODE_INVALID'],
      ['/redemptions', { code: `ZZZZZZZZZZZZ${checkCharacter('ZZZZZZZZZZZZ')}`, storeId }, 404, 'COUPON_NOT_FOUND'],
      [`/members/${memberId}/consents`, { purpose: 'telepathy', action: 'grant', source: 'app' }, 400, 'VALIDATION_FAILED'],
    ];
    for (const [url, payload, status, code] of bad) {
      const res = await gw.app.inject({
        method: 'POST', url, headers: { 'content-type': 'application/json' },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
      expect({ url, payload, status: res.statusCode, code: res.json().error?.code }).toEqual({ url, payload, status, code });
      expect(res.json().error.message).toEqual(expect.any(String));
    }
    const plain = await gw.app.inject({ method: 'POST', url: '/members', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    expect([plain.statusCode, plain.json().error.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    expect(await tableCounts()).toEqual(before);
    const record = await call('GET', `/members/${memberId}`);
    expect(record.body.member.phone).toBe('+14155552677');
  });

  it('serves the OpenAPI document and the docs page', async () => {
    const doc = await call('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/checkins', '/redemptions', '/members/{id}', '/readyz']));
    const page = await gw.app.inject({ method: 'GET', url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
  });
});
