// The SMS worker against the Twilio stand-in: retries, terminal failures, last-moment consent, stranded jobs.
import twilioLib from 'twilio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendSmsJob } from '../gateway/domain/deliveries.js';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { startTwilioStandIn, type Failure, type TwilioStandIn } from './support/twilio-standin.js';

const STORE_AT = { lat: 48.8584, lon: 2.2945 };
// 18:00 in Paris, moving with real time: offers are never sent in the members' quiet hours.
const START = Date.parse('2026-06-03T16:00:00Z');
const t0 = Date.now();
const clock = () => new Date(START + (Date.now() - t0));

describe.each(backends)('SMS delivery on the %s backends', (backend) => {
  let twilio: TwilioStandIn;
  let iso: Isolated;
  let gw: Gateway;
  let phoneSeq = 0;

  const call = async (gateway: Gateway, method: 'GET' | 'POST', url: string, payload?: object) => {
    const res = await gateway.app.inject({ method, url, payload });
    return { status: res.statusCode, body: res.json() };
  };

  /** Offers sent to a phone (the opt-in request is a programme message, not an offer). */
  const offersTo = (phone: string) => twilio.messages.filter((m) => m.to === phone && /Code: [0-9A-Z]{13}/.test(m.body));

  /**
   * A consenting member checks in at the store; returns the delivery id the decision queued. With a worker
   * running, the opt-in request is awaited first, so failures queued for the stand-in hit the offer.
   */
  const offer = async (gateway: Gateway, failures: Failure[] = [], worker = true): Promise<{ memberId: string; deliveryId: string; phone: string }> => {
    const phone = `+3361234${String(5600 + ++phoneSeq)}`;
    const m = await call(gateway, 'POST', '/members', { phone, timeZone: 'Europe/Paris' });
    expect(m.status).toBe(201);
    await grantConsents(gateway, m.body.id, phone, ['location', 'sms_marketing']);
    if (worker) await eventually(async () => (twilio.messages.some((x) => x.to === phone) ? true : undefined));
    twilio.failNext(...failures);
    const c = await call(gateway, 'POST', '/checkins', { memberId: m.body.id, ...STORE_AT, accuracyM: 5, at: clock().toISOString() });
    expect(c.body.decisions[0].outcome).toBe('offer_queued');
    return { memberId: m.body.id, deliveryId: c.body.deliveryIds[0], phone };
  };

  const twilioEnv = () => ({
    TWILIO_ACCOUNT_SID: twilio.accountSid, TWILIO_AUTH_TOKEN: twilio.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: twilio.url,
  });

  const openStore = async (gateway: Gateway) => {
    const store = await call(gateway, 'POST', '/stores', { name: 'Tower', timeZone: 'Europe/Paris', location: STORE_AT, geofence: { radiusM: 100 } });
    const campaign = await call(gateway, 'POST', '/campaigns', {
      name: 'Crêpes', storeId: store.body.id, trigger: { kind: 'checkin' }, offer: { title: 'Crêpe', message: 'A free crêpe.' },
    });
    expect(campaign.status).toBe(201);
  };

  const settled = (gateway: Gateway, id: string) =>
    eventually(async () => {
      const d = await call(gateway, 'GET', `/deliveries/${id}`);
      return ['queued', 'sending'].includes(d.body.status) ? undefined : d.body;
    });

  beforeAll(async () => {
    twilio = await startTwilioStandIn();
    iso = isolatedConfig(backend, { ...twilioEnv(), JOB_ATTEMPTS: '3', JOB_BACKOFF_MS: '20' });
    gw = await startGateway(iso.config, { now: clock });
    await openStore(gw);
  });

  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
    await twilio?.close();
  });

  it('retries when Twilio answers 503 and sends once it recovers', async () => {
    const unavailable = { status: 503, code: 20503, message: 'Service unavailable' };
    const { deliveryId, phone } = await offer(gw, [unavailable, unavailable]);
    const d = await settled(gw, deliveryId);
    expect(d).toMatchObject({ status: 'sent', attempts: 3, providerId: expect.stringMatching(/^SM/) });
    const sent = offersTo(phone);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ from: '+14155550100', validityPeriod: undefined });
    expect(sent[0]!.body).toMatch(/^Nearby Offers: A free crêpe\. Code: [0-9A-Z]{13} \(valid until .+\)\. Reply STOP to opt out\.$/);
  });

  it('does not retry a number Twilio refuses, and keeps the failure visible', async () => {
    const { deliveryId } = await offer(gw, [{ status: 400, code: 21211, message: "The 'To' number is not a valid phone number." }]);
    const d = await settled(gw, deliveryId);
    expect(d).toMatchObject({ status: 'failed', attempts: 1, errorCode: '21211', statusReason: expect.stringContaining('not a valid phone number') });
    const dead = await eventually(async () => {
      const res = await call(gw, 'GET', '/admin/dead-letters');
      return res.body.deadLetters.find((j: { payload: { deliveryId: string } }) => j.payload.deliveryId === deliveryId);
    });
    expect(dead).toMatchObject({ name: 'sms.send', attempts: 1, error: expect.stringContaining('not a valid phone number') });
  });

  it('gives up after the last attempt when Twilio cannot be reached', async () => {
    const offline = isolatedConfig(backend, { ...twilioEnv(), TWILIO_API_URL: 'http://127.0.0.1:1', JOB_ATTEMPTS: '2', JOB_BACKOFF_MS: '10' });
    const other = await startGateway(offline.config, { now: clock });
    try {
      await openStore(other);
      const { deliveryId } = await offer(other, [], false);
      const d = await settled(other, deliveryId);
      expect(d).toMatchObject({ status: 'failed', attempts: 2, errorCode: 'NETWORK' });
    } finally {
      await other.close();
      await offline.cleanup();
    }
  });

  it('cancels an offer whose consent is withdrawn while queued, and sends one left without a job on restart', async () => {
    // An API-only gateway queues but never sends: its jobs wait for a worker.
    const apiIso = isolatedConfig(backend, { ...twilioEnv(), ROLE: 'api' });
    let apiOnly: Gateway | undefined = await startGateway(apiIso.config, { now: clock });
    let full: Gateway | undefined;
    try {
      await openStore(apiOnly);
      const withdrawn = await offer(apiOnly, [], false);
      await call(apiOnly, 'POST', `/members/${withdrawn.memberId}/consents`, { purpose: 'sms_marketing', action: 'withdraw', source: 'app' });
      await sendSmsJob(apiOnly.deps, { deliveryId: withdrawn.deliveryId }, { attempt: 1, maxAttempts: 3 });
      const d = (await call(apiOnly, 'GET', `/deliveries/${withdrawn.deliveryId}`)).body;
      expect(d).toMatchObject({ status: 'cancelled', statusReason: 'CONSENT_WITHDRAWN', attempts: 0 });

      const waiting = await offer(apiOnly, [], false);
      await apiOnly.close();
      apiOnly = undefined;
      // BullMQ kept the job in Redis; the in-process queue lost it with the process and the start-up sweep queues it again.
      full = await startGateway({ ...apiIso.config, role: 'all' }, { now: clock });
      expect(await settled(full, waiting.deliveryId)).toMatchObject({ status: 'sent', attempts: 1 });
      expect(offersTo(waiting.phone)).toHaveLength(1);
      expect(offersTo(withdrawn.phone)).toHaveLength(0);
      expect((await call(full, 'GET', `/deliveries/${withdrawn.deliveryId}`)).body.status).toBe('cancelled');
    } finally {
      await apiOnly?.close();
      await full?.close();
      await apiIso.cleanup();
    }
  });

  it('sends an offer within its freshness budget from the check-in, and drops and counts one that missed it', async () => {
    const apiIso = isolatedConfig(backend, { ...twilioEnv(), ROLE: 'api' });
    const apiOnly = await startGateway(apiIso.config, { now: clock });
    try {
      await openStore(apiOnly);
      const at = (offsetMs: number) => ({ ...apiOnly.deps, now: () => new Date(clock().getTime() + offsetMs) });
      const late = await offer(apiOnly, [], false);
      const onTime = await offer(apiOnly, [], false);
      // OFFER_FRESHNESS_S is 120 by default: a worker that gets to it two minutes after the check-in is too late.
      await sendSmsJob(at(121_000), { deliveryId: late.deliveryId }, { attempt: 1, maxAttempts: 3 });
      await sendSmsJob(at(60_000), { deliveryId: onTime.deliveryId }, { attempt: 1, maxAttempts: 3 });
      expect((await call(apiOnly, 'GET', `/deliveries/${late.deliveryId}`)).body).toMatchObject({ status: 'cancelled', statusReason: 'STALE_OFFER', attempts: 0 });
      expect((await call(apiOnly, 'GET', `/deliveries/${onTime.deliveryId}`)).body).toMatchObject({ status: 'sent', attempts: 1 });
      expect(offersTo(late.phone)).toHaveLength(0);
      expect(offersTo(onTime.phone)).toHaveLength(1);
      const drops = (await call(apiOnly, 'GET', '/admin/drops')).body.drops as Array<{ kind: string; count: number }>;
      expect(drops.filter((d) => d.kind === 'offer_stale').reduce((a, d) => a + d.count, 0)).toBe(1);
    } finally {
      await apiOnly.close();
      await apiIso.cleanup();
    }
  });

  it('finds the delivery from a status callback that arrives before the worker stored the message id', async () => {
    const { deliveryId, phone } = await offer(gw);
    const d = await settled(gw, deliveryId);
    // As if the worker had not recorded the sid yet (or died before it could).
    await gw.deps.db.query(`UPDATE deliveries SET provider_id = NULL, status = 'sending' WHERE id = $1`, [deliveryId]);
    const url = `${gw.deps.config.publicUrl}/webhooks/twilio/status?d=${deliveryId}`;
    const params = { MessageSid: d.providerId, MessageStatus: 'delivered', To: phone, AccountSid: twilio.accountSid };
    const res = await gw.app.inject({
      method: 'POST', url: `/webhooks/twilio/status?d=${deliveryId}`, payload: new URLSearchParams(params).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioLib.getExpectedTwilioSignature(twilio.authToken, url, params) },
    });
    expect(res.statusCode).toBe(204);
    expect((await call(gw, 'GET', `/deliveries/${deliveryId}`)).body).toMatchObject({ status: 'delivered', providerId: d.providerId });
  });

  it('follows Twilio status callbacks forward only: late, repeated and out-of-order ones change nothing', async () => {
    const { deliveryId, phone, memberId } = await offer(gw);
    const d = await settled(gw, deliveryId);
    expect(d.status).toBe('sent');
    const sent = twilio.messages.find((m) => m.sid === d.providerId)!;
    expect(sent.statusCallback).toBe(`${gw.deps.config.publicUrl}/webhooks/twilio/status?d=${deliveryId}`);
    const callback = async (status: string, extra: Record<string, string> = {}, token = twilio.authToken) => {
      const params = { MessageSid: d.providerId, MessageStatus: status, To: phone, AccountSid: twilio.accountSid, ...extra };
      const url = `${gw.deps.config.publicUrl}/webhooks/twilio/status`;
      const res = await gw.app.inject({
        method: 'POST', url: '/webhooks/twilio/status', payload: new URLSearchParams(params).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioLib.getExpectedTwilioSignature(token, url, params) },
      });
      return res.statusCode;
    };
    const status = async () => (await call(gw, 'GET', `/deliveries/${deliveryId}`)).body.status as string;
    expect(await callback('delivered', {}, 'wrong-token')).toBe(403);
    expect(await status()).toBe('sent');
    expect(await callback('queued')).toBe(204);
    expect(await status()).toBe('sent');
    expect(await callback('delivered')).toBe(204);
    expect(await status()).toBe('delivered');
    for (const late of ['sent', 'delivered', 'undelivered', 'failed']) expect(await callback(late, { ErrorCode: '30003' })).toBe(204);
    expect(await call(gw, 'GET', `/deliveries/${deliveryId}`)).toMatchObject({ body: { status: 'delivered', errorCode: null } });

    // A carrier opt-out reported on a callback is a withdrawal.
    const second = await offer(gw);
    const d2 = await settled(gw, second.deliveryId);
    const params = { AccountSid: twilio.accountSid, MessageSid: d2.providerId, MessageStatus: 'undelivered', ErrorCode: '21610' };
    const url = `${gw.deps.config.publicUrl}/webhooks/twilio/status`;
    await gw.app.inject({
      method: 'POST', url: '/webhooks/twilio/status', payload: new URLSearchParams(params).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioLib.getExpectedTwilioSignature(twilio.authToken, url, params) },
    });
    expect(await call(gw, 'GET', `/deliveries/${second.deliveryId}`)).toMatchObject({ body: { status: 'undelivered', errorCode: '21610' } });
    const consents = await call(gw, 'GET', `/members/${second.memberId}/consents`);
    expect(consents.body.consents.sms_marketing.granted).toBe(false);
    expect(memberId).not.toBe(second.memberId);
  });
});
