// Idempotency-Key on the member-app writes: a retry after a lost answer gets the first answer (the same
// decisions, no second offer, no second SMS); the same key with another body is 409; a malformed key is 400.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appReportRequest } from '../beacon-agent/member-app-sim.js';
import { purgeIdempotencyKeys } from '../gateway/http/idempotency.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { asMember, bleIdentity, startGateway, type Gateway } from './support/gateway.js';
import { startTwilioStandIn, type TwilioStandIn } from './support/twilio-standin.js';

const STORE_AT = { lat: 40.7411, lon: -73.9897 };
const INSIDE = { lat: 40.7415, lon: -73.9893 };
// Noon in New York, moving with real time: offers are never sent in quiet hours.
const START = Date.parse('2026-06-03T16:00:00Z');
const t0 = Date.now();
const clock = () => new Date(START + (Date.now() - t0));

describe.each(backends)('Idempotency-Key on the %s backends', (backend) => {
  let twilio: TwilioStandIn;
  let iso: Isolated;
  let gw: Gateway;
  let phones = 0;

  const newMember = async (purposes: string[]) => {
    const phone = `+1415555${String(3000 + ++phones)}`;
    const m = await gw.app.inject({ method: 'POST', url: '/members', payload: { phone, timeZone: 'America/New_York' } });
    expect(m.statusCode).toBe(201);
    await grantConsents(gw, m.json().id, phone, purposes);
    return { id: m.json().id as string, phone, headers: await asMember(gw, m.json().id) };
  };
  const count = async (sql: string, values: unknown[]) => (await gw.deps.db.query<{ n: number }>(sql, values))[0]!.n;
  const checkin = (m: { id: string; headers: Record<string, string> }, key?: string, extra: Record<string, unknown> = {}) => gw.app.inject({
    method: 'POST', url: '/checkins',
    headers: { ...m.headers, ...(key === undefined ? {} : { 'idempotency-key': key }) },
    payload: { memberId: m.id, ...INSIDE, accuracyM: 10, at: new Date(START).toISOString(), ...extra },
  });

  beforeAll(async () => {
    twilio = await startTwilioStandIn();
    iso = isolatedConfig(backend, {
      TWILIO_ACCOUNT_SID: twilio.accountSid, TWILIO_AUTH_TOKEN: twilio.authToken,
      TWILIO_MESSAGING_SERVICE_SID: 'MG' + 'c'.repeat(32), TWILIO_API_URL: twilio.url,
    });
    gw = await startGateway(iso.config, { now: clock });
    const store = await gw.app.inject({ method: 'POST', url: '/stores', payload: { name: 'Main St', timeZone: 'America/New_York', location: STORE_AT, geofence: { radiusM: 150 } } });
    const campaign = await gw.app.inject({
      method: 'POST', url: '/campaigns',
      payload: { name: 'Coffee', storeId: store.json().id, trigger: { kind: 'checkin' }, offer: { title: 'Coffee', message: 'Coffee with code {code}.', validDays: 3 } },
    });
    expect(campaign.statusCode).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
    await twilio?.close();
  });

  it('answers a retried check-in with the first answer: the same decisions, one offer, one SMS', async () => {
    const m = await newMember(['location', 'sms_marketing']);
    const key = `"${randomUUID()}"`;
    const first = await checkin(m, key);
    expect(first.statusCode).toBe(202);
    expect(first.json().decisions[0]).toMatchObject({ outcome: 'offer_queued' });
    // The answer was lost on the way; the app sends the same request again with the same key.
    const retry = await checkin(m, key);
    expect(retry.statusCode).toBe(202);
    expect(retry.body).toBe(first.body);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await count('SELECT count(*)::int n FROM decisions WHERE member_id = $1', [m.id])).toBe(1);
    expect(await count('SELECT count(*)::int n FROM checkins WHERE member_id = $1', [m.id])).toBe(1);
    const deliveryId = first.json().deliveryIds[0];
    await eventually(async () => ((await gw.deps.db.query<{ status: string }>('SELECT status FROM deliveries WHERE id = $1', [deliveryId]))[0]!.status === 'sent' ? true : undefined));
    expect(twilio.messages.filter((s) => s.to === m.phone && /code [0-9A-Z]{13}/.test(s.body))).toHaveLength(1);
  });

  it('lets concurrent duplicates share one run and one answer', async () => {
    const m = await newMember(['location', 'sms_marketing']);
    const key = randomUUID();
    const answers = await Promise.all([checkin(m, key), checkin(m, key), checkin(m, key)]);
    for (const a of answers) {
      expect(a.statusCode).toBe(202);
      expect(a.body).toBe(answers[0]!.body);
    }
    expect(await count('SELECT count(*)::int n FROM decisions WHERE member_id = $1', [m.id])).toBe(1);
  });

  it('refuses the same key with another body (409) and a malformed key (400); keys are the caller\'s own', async () => {
    const m = await newMember(['location']);
    const key = randomUUID();
    expect((await checkin(m, key)).statusCode).toBe(202);
    const other = await checkin(m, key, { accuracyM: 20 });
    expect([other.statusCode, other.json().error.code]).toEqual([409, 'IDEMPOTENCY_KEY_REUSED']);
    for (const bad of ['has space', 'x'.repeat(256), '"unclosed', 'a,b']) {
      const res = await checkin(m, bad);
      expect([res.statusCode, res.json().error.code, res.json().error.details.issues[0].field]).toEqual([400, 'VALIDATION_FAILED', 'headers/idempotency-key']);
    }
    // Another member's request under the same key is theirs, run afresh.
    const n = await newMember(['location']);
    const theirs = await checkin(n, key);
    expect([theirs.statusCode, theirs.headers['idempotent-replayed']]).toEqual([202, undefined]);
    // Past its time (purged by the hourly retention job) the key is free again.
    await purgeIdempotencyKeys(gw.deps.db, new Date(clock().getTime() + 25 * 3_600_000));
    expect((await checkin(m, key, { accuracyM: 20 })).statusCode).toBe(202);
  });

  it('is described as a header parameter of each idempotent operation', async () => {
    const doc = (await gw.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const ops = [doc.paths['/checkins'].post, doc.paths['/members/{id}/beacon-reports'].post, doc.paths['/members/{id}/consents'].post,
      doc.paths['/members/{id}/push-subscriptions'].post, doc.paths['/members/{id}/push-subscriptions/{subscriptionId}'].delete, doc.paths['/members/{id}/erase'].post];
    for (const op of ops) {
      expect(op.parameters).toContainEqual(expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false }));
    }
  });

  it('replays a consent change instead of recording it twice', async () => {
    const m = await newMember([]);
    const grant = () => gw.app.inject({
      method: 'POST', url: `/members/${m.id}/consents`, headers: { ...m.headers, 'idempotency-key': 'grant-location-1' },
      payload: { purpose: 'location', action: 'grant', source: 'app' },
    });
    const first = await grant();
    expect(first.statusCode).toBe(201);
    const retry = await grant();
    expect([retry.statusCode, retry.body]).toEqual([201, first.body]);
    expect(await count("SELECT count(*)::int n FROM consent_events WHERE member_id = $1 AND purpose = 'location'", [m.id])).toBe(1);
  });

  it('replays a beacon report only to a request signed by the member', async () => {
    const m = await newMember(['ble_detection']);
    const identity = (await bleIdentity(gw, m.id)).body;
    const app = { identityKey: Buffer.from(identity.identityKey, 'base64'), k: identity.rotationExponent };
    const send = (key: string, headers: Record<string, string> = {}) => {
      const r = appReportRequest(app, m.id, [], clock().getTime());
      return gw.app.inject({ method: 'POST', url: r.path, payload: r.body, headers: { ...r.headers, 'idempotency-key': key, ...headers } });
    };
    const first = await send('report-1');
    expect(first.statusCode).toBe(202);
    const retry = await send('report-1');
    expect([retry.statusCode, retry.body, retry.headers['idempotent-replayed']]).toEqual([202, first.body, 'true']);
    const forged = await send('report-1', { 'x-app-signature': 'A'.repeat(43) });
    expect([forged.statusCode, forged.json().error.code]).toEqual([403, 'SIGNATURE_INVALID']);
  });
});
