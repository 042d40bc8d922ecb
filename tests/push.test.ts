// Offers by Web Push against a local push service stand-in: the VAPID key, the subscription API, the push worker
// (payload, TTL, topic, 404/410, retries) and the channel choice of decisions.
import { createECDH } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_PUSH_SERVICES, loadConfig } from '../gateway/config.js';
import { migrate } from '../gateway/db/migrate.js';
import { openDatabase } from '../gateway/db/open.js';
import { sendPushJob } from '../gateway/domain/push-deliveries.js';
import { checkEndpoint } from '../gateway/domain/push-subscriptions.js';
import { vapidKeys } from '../gateway/push/open.js';
import { retryAfterMs } from '../gateway/push/web-push.js';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { startPushStandIn, type PushStandIn, type StandInSubscription } from './support/push-standin.js';

// 18:00 in Paris, moving with real time: offers are never sent in the members' quiet hours.
const START = Date.parse('2026-06-03T16:00:00Z');
const t0 = Date.now();
let skewMs = 0;
const clock = () => new Date(START + (Date.now() - t0) + skewMs);

// One store per channel setup, far enough apart that a check-in at one never concerns the other.
const PUSH_ONLY_AT = { lat: 48.8584, lon: 2.2945 };
const PUSH_THEN_SMS_AT = { lat: 48.8606, lon: 2.3376 };

const newKeyPair = () => {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { publicKey: ecdh.getPublicKey().toString('base64url'), privateKey: ecdh.getPrivateKey().toString('base64url') };
};

describe('push configuration', () => {
  it('takes a VAPID key pair from the environment only whole and matching', () => {
    const pair = newKeyPair();
    expect(loadConfig({ VAPID_PUBLIC_KEY: pair.publicKey, VAPID_PRIVATE_KEY: pair.privateKey }).push.vapidKeys).toEqual(pair);
    expect(loadConfig({}).push.vapidKeys).toBeUndefined();
    const refused = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).variable;
      }
      return null;
    };
    expect(refused({ VAPID_PUBLIC_KEY: pair.publicKey })).toBe('VAPID_PRIVATE_KEY');
    expect(refused({ VAPID_PRIVATE_KEY: pair.privateKey })).toBe('VAPID_PUBLIC_KEY');
    expect(refused({ VAPID_PUBLIC_KEY: newKeyPair().publicKey, VAPID_PRIVATE_KEY: pair.privateKey })).toBe('VAPID_PUBLIC_KEY');
    expect(refused({ VAPID_PUBLIC_KEY: pair.publicKey.slice(0, 40), VAPID_PRIVATE_KEY: pair.privateKey })).toBe('VAPID_PUBLIC_KEY');
    expect(refused({ VAPID_PUBLIC_KEY: pair.publicKey, VAPID_PRIVATE_KEY: `${pair.privateKey}==` })).toBe('VAPID_PRIVATE_KEY');
  });

  it('defaults the VAPID subject to the programme contact and accepts only mailto: or https:', () => {
    expect(loadConfig({}).push.vapidSubject).toBe('mailto:help@example.com');
    expect(loadConfig({ PROGRAM_HELP: 'offers@shop.example' }).push.vapidSubject).toBe('mailto:offers@shop.example');
    expect(loadConfig({ PROGRAM_HELP: 'call 555-0100' }).push.vapidSubject).toBe('mailto:help@example.com');
    expect(loadConfig({ VAPID_SUBJECT: 'https://shop.example/contact' }).push.vapidSubject).toBe('https://shop.example/contact');
    for (const bad of ['http://shop.example', 'shop@example.com', 'https://localhost/x', 'mailto:']) {
      expect(() => loadConfig({ VAPID_SUBJECT: bad }), bad).toThrow(/VAPID_SUBJECT/);
    }
  });

  it('accepts endpoints of the known push services only, unless PUSH_SERVICES says otherwise', () => {
    const defaults = loadConfig({}).push;
    expect(defaults.serviceHosts).toEqual(DEFAULT_PUSH_SERVICES);
    for (const ok of [
      'https://fcm.googleapis.com/fcm/send/dXJs:APA91b',
      'https://updates.push.services.mozilla.com/wpush/v2/gAAAAA',
      'https://web.push.apple.com/QGz7',
      'https://wns2-par02p.notify.windows.com/w/?token=BQYAAA',
    ]) expect(checkEndpoint(ok, defaults)).toBe(ok);
    for (const bad of ['http://fcm.googleapis.com/fcm/send/x', 'https://evilfcm.googleapis.com.example/x', 'https://10.0.0.5/x',
      'https://user:pw@fcm.googleapis.com/x', 'not a url']) {
      expect(() => checkEndpoint(bad, defaults), bad).toThrow(expect.objectContaining({ code: 'PUSH_ENDPOINT_INVALID' }));
    }
    const local = loadConfig({ PUSH_SERVICES: 'http://127.0.0.1:8080' }).push;
    expect(checkEndpoint('http://127.0.0.1:8080/push/a', local)).toBe('http://127.0.0.1:8080/push/a');
    expect(() => checkEndpoint('http://127.0.0.1:8081/push/a', local)).toThrow(expect.objectContaining({ code: 'PUSH_ENDPOINT_INVALID' }));
    expect(() => checkEndpoint('https://fcm.googleapis.com/fcm/send/x', local)).toThrow(expect.objectContaining({ code: 'PUSH_ENDPOINT_INVALID' }));
    expect(() => loadConfig({ PUSH_SERVICES: 'ftp://push.example' })).toThrow(/PUSH_SERVICES/);
    expect(() => loadConfig({ PUSH_SERVICES: 'http://127.0.0.1:8080/push' })).toThrow(/PUSH_SERVICES/);
  });
});

describe.each(backends)('push on the %s backends', (backend) => {
  let standIn: PushStandIn;
  let iso: Isolated;
  let gw: Gateway;
  let phoneSeq = 0;

  const call = async (gateway: Gateway, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
    const res = await gateway.app.inject({ method, url, payload });
    return { status: res.statusCode, body: res.body ? res.json() : null };
  };
  const env = () => ({ PUSH_SERVICES: `fcm.googleapis.com,${standIn.url}`, JOB_ATTEMPTS: '3', JOB_BACKOFF_MS: '20' });

  const openStores = async (gateway: Gateway) => {
    const ids: Record<string, string> = {};
    for (const [name, at, channels] of [['push only', PUSH_ONLY_AT, ['push']], ['push then sms', PUSH_THEN_SMS_AT, ['push', 'sms']]] as const) {
      const store = await call(gateway, 'POST', '/stores', { name, timeZone: 'Europe/Paris', location: at, geofence: { radiusM: 100 } });
      const campaign = await call(gateway, 'POST', '/campaigns', {
        name, storeId: store.body.id, trigger: { kind: 'checkin' }, channels,
        offer: { title: 'Croissant', message: 'A free croissant with code {code}, until {expires}.' },
      });
      expect(campaign.status).toBe(201);
      ids[name] = campaign.body.id;
    }
    return ids as { 'push only': string; 'push then sms': string };
  };

  const vapidKey = async (gateway: Gateway) => (await call(gateway, 'GET', '/push/vapid-public-key')).body.publicKey as string;

  /** A member with the given consents, and as many devices subscribed through the API. */
  const member = async (gateway: Gateway, purposes: string[], devices = 1, withPhone = false) => {
    const phone = withPhone ? `+3361235${String(5600 + ++phoneSeq)}` : null;
    const m = await call(gateway, 'POST', '/members', { timeZone: 'Europe/Paris', ...(phone ? { phone } : {}) });
    expect(m.status).toBe(201);
    await grantConsents(gateway, m.body.id, phone, purposes);
    const subscriptions: Array<StandInSubscription & { id: string }> = [];
    for (let i = 0; i < devices; i++) {
      const sub = standIn.subscribe(await vapidKey(gateway));
      const res = await call(gateway, 'POST', `/members/${m.body.id}/push-subscriptions`, sub);
      expect(res.status).toBe(201);
      subscriptions.push({ ...sub, id: res.body.id });
    }
    return { id: m.body.id as string, phone, subscriptions };
  };

  const checkin = (gateway: Gateway, memberId: string, at = PUSH_ONLY_AT) =>
    call(gateway, 'POST', '/checkins', { memberId, ...at, accuracyM: 5, at: clock().toISOString() });

  const settled = (gateway: Gateway, id: string) =>
    eventually(async () => {
      const d = await call(gateway, 'GET', `/deliveries/${id}`);
      return ['queued', 'sending'].includes(d.body.status) ? undefined : d.body;
    });

  const receivedBy = (endpoint: string) => standIn.received.filter((r) => r.endpoint === endpoint);
  const gone = async (gateway: Gateway) =>
    ((await call(gateway, 'GET', '/admin/push-counters')).body.counters as Array<{ kind: string; count: number }>)
      .filter((c) => c.kind === 'subscription_gone').reduce((n, c) => n + c.count, 0);

  let campaigns: Awaited<ReturnType<typeof openStores>>;

  beforeAll(async () => {
    standIn = await startPushStandIn();
    iso = isolatedConfig(backend, env());
    gw = await startGateway(iso.config, { now: clock });
    campaigns = await openStores(gw);
  });

  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
    await standIn?.close();
  });

  it('makes one VAPID key pair on a fresh database, keeps it, and every gateway serves that one', async () => {
    const key = await vapidKey(gw);
    const raw = Buffer.from(key, 'base64url');
    expect(raw).toHaveLength(65);
    expect(raw[0]).toBe(0x04);
    const rows = await gw.deps.db.query<{ public_key: string }>('SELECT public_key FROM vapid_keys');
    expect(rows).toEqual([{ public_key: key }]);

    // First starts racing on an empty database agree on one pair: of the pairs made, one is stored and all read it.
    const fresh = isolatedConfig(backend, env());
    try {
      const db = await openDatabase(fresh.config);
      let stored: string;
      try {
        await migrate(db);
        const raced = await Promise.all(Array.from({ length: 8 }, () => vapidKeys(db, fresh.config)));
        expect(new Set(raced.map((k) => `${k.publicKey}/${k.privateKey}`)).size).toBe(1);
        expect(raced[0]!.source).toBe('database');
        stored = raced[0]!.publicKey;
        expect(stored).not.toBe(key);
        expect(await db.query('SELECT public_key FROM vapid_keys')).toEqual([{ public_key: stored }]);
      } finally {
        await db.close();
      }
      // Every gateway on that database serves the stored pair (the embedded database has one process).
      const started = await Promise.all(Array.from({ length: backend === 'real' ? 3 : 1 }, () => startGateway(fresh.config)));
      try {
        expect(await Promise.all(started.map(vapidKey))).toEqual(started.map(() => stored));
      } finally {
        for (const g of started) await g.close();
      }
      // Started with a pair in the environment: that pair wins, and the stored one stays as it was.
      const pair = newKeyPair();
      const push = loadConfig({ ...env(), VAPID_PUBLIC_KEY: pair.publicKey, VAPID_PRIVATE_KEY: pair.privateKey }).push;
      const withEnv = await startGateway({ ...fresh.config, push });
      try {
        expect(await vapidKey(withEnv)).toBe(pair.publicKey);
        expect(await withEnv.deps.db.query('SELECT public_key FROM vapid_keys')).toEqual([{ public_key: stored }]);
      } finally {
        await withEnv.close();
      }
    } finally {
      await fresh.cleanup();
    }
  });

  it('validates subscriptions with stable codes, changes nothing on a refusal, and registers an endpoint once', async () => {
    const m = await member(gw, [], 0);
    const other = await member(gw, [], 0);
    const sub = standIn.subscribe(await vapidKey(gw));
    const post = (memberId: string, body: object) => call(gw, 'POST', `/members/${memberId}/push-subscriptions`, body);
    const list = async (memberId: string) => (await call(gw, 'GET', `/members/${memberId}/push-subscriptions`)).body.subscriptions as Array<{ id: string; endpoint: string }>;
    const offCurve = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]).toString('base64url');

    const cases: Array<[object, number, string, string?]> = [
      [{ ...sub, endpoint: 'not a url' }, 400, 'PUSH_ENDPOINT_INVALID'],
      [{ ...sub, endpoint: 'http://127.0.0.1:9/push/x' }, 400, 'PUSH_ENDPOINT_INVALID'],
      [{ ...sub, endpoint: 'https://push.example.net/x' }, 400, 'PUSH_ENDPOINT_INVALID'],
      [{ ...sub, keys: { ...sub.keys, p256dh: sub.keys.p256dh.slice(0, 50) } }, 400, 'PUSH_KEYS_INVALID', 'body/keys/p256dh'],
      [{ ...sub, keys: { ...sub.keys, p256dh: offCurve } }, 400, 'PUSH_KEYS_INVALID', 'body/keys/p256dh'],
      [{ ...sub, keys: { ...sub.keys, p256dh: `${sub.keys.p256dh.slice(0, -2)}+/` } }, 400, 'PUSH_KEYS_INVALID', 'body/keys/p256dh'],
      [{ ...sub, keys: { ...sub.keys, auth: Buffer.alloc(8).toString('base64url') } }, 400, 'PUSH_KEYS_INVALID', 'body/keys/auth'],
      [{ endpoint: sub.endpoint }, 400, 'VALIDATION_FAILED'],
      [{ ...sub, keys: { p256dh: sub.keys.p256dh } }, 400, 'VALIDATION_FAILED'],
      [{ ...sub, colour: 'red' }, 400, 'VALIDATION_FAILED'],
      [{ ...sub, expirationTime: 'soon' }, 400, 'VALIDATION_FAILED'],
    ];
    for (const [body, status, code, field] of cases) {
      const res = await post(m.id, body);
      expect({ status: res.status, code: res.body.error.code }, JSON.stringify(body)).toEqual({ status, code });
      if (field) expect(res.body.error.details.field).toBe(field);
    }
    expect(await list(m.id)).toEqual([]);
    expect((await post('00000000-0000-4000-8000-000000000000', sub)).body.error.code).toBe('MEMBER_NOT_FOUND');
    expect((await call(gw, 'GET', '/members/00000000-0000-4000-8000-000000000000/push-subscriptions')).status).toBe(404);

    const first = await post(m.id, sub);
    expect(first.status).toBe(201);
    expect(first.body).toEqual({ id: expect.any(String), endpoint: sub.endpoint, expiresAt: null, createdAt: expect.any(String), lastSuccessAt: null });
    const again = await post(m.id, { ...sub, expirationTime: Date.parse('2030-01-01T00:00:00Z') });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, expiresAt: '2030-01-01T00:00:00.000Z' });
    expect(await list(m.id)).toHaveLength(1);
    const taken = await post(other.id, sub);
    expect(taken).toMatchObject({ status: 409, body: { error: { code: 'PUSH_ENDPOINT_TAKEN' } } });
    expect(await list(other.id)).toEqual([]);

    // A member's devices are capped; removing one makes room.
    for (let i = 1; i < 10; i++) expect((await post(m.id, standIn.subscribe(await vapidKey(gw)))).status).toBe(201);
    const eleventh = standIn.subscribe(await vapidKey(gw));
    expect(await post(m.id, eleventh)).toMatchObject({ status: 409, body: { error: { code: 'PUSH_SUBSCRIPTION_LIMIT' } } });
    expect(await list(m.id)).toHaveLength(10);
    expect((await call(gw, 'DELETE', `/members/${m.id}/push-subscriptions/${first.body.id}`)).status).toBe(204);
    expect((await call(gw, 'DELETE', `/members/${m.id}/push-subscriptions/${first.body.id}`)).body.error.code).toBe('PUSH_SUBSCRIPTION_NOT_FOUND');
    expect((await list(m.id)).map((s) => s.endpoint)).not.toContain(sub.endpoint);
    expect((await post(m.id, eleventh)).status).toBe(201);

    // Another member's device cannot be removed through this member.
    const theirs = (await post(other.id, standIn.subscribe(await vapidKey(gw)))).body.id as string;
    expect((await call(gw, 'DELETE', `/members/${m.id}/push-subscriptions/${theirs}`)).body.error.code).toBe('PUSH_SUBSCRIPTION_NOT_FOUND');
    expect(await list(other.id)).toHaveLength(1);

    // Erasure removes the devices, and an erased member registers none.
    const exported = (await call(gw, 'GET', `/members/${m.id}/export`)).body;
    expect(exported.push_subscriptions).toHaveLength(10);
    expect(exported.push_subscriptions[0]).not.toHaveProperty('auth');
    expect((await call(gw, 'POST', `/members/${m.id}/erase`)).status).toBe(200);
    expect(await list(m.id)).toEqual([]);
    expect((await post(m.id, standIn.subscribe(await vapidKey(gw)))).body.error.code).toBe('MEMBER_ERASED');
  });

  it('pushes an offer end to end: signed for the push service, encrypted to the device, with TTL and topic', async () => {
    const m = await member(gw, ['location', 'push_marketing'], 2);
    const c = await checkin(gw, m.id);
    expect(c.status).toBe(202);
    expect(c.body.decisions[0]).toMatchObject({ outcome: 'offer_queued', reasonCode: null, campaignId: campaigns['push only'] });
    expect(c.body.decisions[0].trace.consent.push_marketing).toEqual({ allowed: true });
    const d = await settled(gw, c.body.deliveryIds[0]);
    expect(d).toMatchObject({ channel: 'push', status: 'sent', attempts: 1, statusReason: null, providerId: expect.stringMatching(`^${standIn.url}/messages/\\d+$`) });

    const record = (await call(gw, 'GET', `/members/${m.id}`)).body;
    const code = record.offers[0].couponCode as string;
    expect(code).toMatch(/^[0-9A-Z]{13}$/);
    for (const device of m.subscriptions) {
      const got = receivedBy(device.endpoint);
      expect(got).toHaveLength(1);
      const expires = new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Paris', month: 'short', day: 'numeric' }).format(new Date(record.offers[0].expiresAt));
      expect(got[0]!.payload).toEqual({
        kind: 'offer', title: 'Croissant', message: `A free croissant with code ${code}, until ${expires}.`, code, expiresAt: record.offers[0].expiresAt,
      });
      // The push service keeps it only while the offer is fresh.
      expect(got[0]!.ttl).toBeGreaterThan(0);
      expect(got[0]!.ttl).toBeLessThanOrEqual(gw.deps.config.offerFreshnessS);
      expect(got[0]!).toMatchObject({ urgency: 'high', topic: campaigns['push only'].replaceAll('-', '') });
      expect(got[0]!.vapid).toMatchObject({ aud: standIn.url, sub: gw.deps.config.push.vapidSubject });
    }
    expect(standIn.refused).toEqual([]);
    const devices = (await call(gw, 'GET', `/members/${m.id}/push-subscriptions`)).body.subscriptions as Array<{ lastSuccessAt: string | null }>;
    expect(devices.every((s) => s.lastSuccessAt !== null)).toBe(true);
  });

  it('removes a subscription the push service says is gone (410), and fails the delivery without retrying', async () => {
    const m = await member(gw, ['location', 'push_marketing'], 1);
    const [device] = m.subscriptions;
    const goneBefore = await gone(gw);
    standIn.answerNext(410, device!.endpoint);
    const c = await checkin(gw, m.id);
    const d = await settled(gw, c.body.deliveryIds[0]);
    expect(d).toMatchObject({ channel: 'push', status: 'failed', attempts: 1, statusReason: 'PUSH_SUBSCRIPTION_GONE', errorCode: '410' });
    expect(standIn.answered.filter((a) => a.endpoint === device!.endpoint).map((a) => a.status)).toEqual([410]);
    expect(receivedBy(device!.endpoint)).toEqual([]);
    expect((await call(gw, 'GET', `/members/${m.id}/push-subscriptions`)).body.subscriptions).toEqual([]);
    expect(await gone(gw)).toBe(goneBefore + 1);
    const dead = await eventually(async () => {
      const res = await call(gw, 'GET', '/admin/dead-letters');
      return res.body.deadLetters.find((j: { payload: { deliveryId: string } }) => j.payload.deliveryId === d.id);
    });
    expect(dead).toMatchObject({ name: 'push.send', attempts: 1 });

    // The next decision knows the member has no device left.
    const next = await checkin(gw, m.id);
    expect(next.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'NO_PUSH_SUBSCRIPTION' });
    expect(next.body.deliveryIds).toEqual([]);
  });

  it('drops a gone device (404) but counts the offer sent when another device took it', async () => {
    const m = await member(gw, ['location', 'push_marketing'], 2);
    const [lost, kept] = m.subscriptions;
    const goneBefore = await gone(gw);
    standIn.answerNext(404, lost!.endpoint);
    const d = await settled(gw, (await checkin(gw, m.id)).body.deliveryIds[0]);
    expect(d).toMatchObject({ status: 'sent', attempts: 1 });
    expect(receivedBy(kept!.endpoint)).toHaveLength(1);
    expect(receivedBy(lost!.endpoint)).toHaveLength(0);
    const left = (await call(gw, 'GET', `/members/${m.id}/push-subscriptions`)).body.subscriptions as Array<{ id: string }>;
    expect(left.map((s) => s.id)).toEqual([kept!.id]);
    expect(await gone(gw)).toBe(goneBefore + 1);
  });

  it('retries when the push service answers 429 or 500, and delivers once it recovers', async () => {
    const m = await member(gw, ['location', 'push_marketing'], 1);
    const [device] = m.subscriptions;
    standIn.answerNext(429, device!.endpoint);
    standIn.answerNext(500, device!.endpoint);
    const d = await settled(gw, (await checkin(gw, m.id)).body.deliveryIds[0]);
    expect(d).toMatchObject({ status: 'sent', attempts: 3 });
    expect(standIn.answered.filter((a) => a.endpoint === device!.endpoint).map((a) => a.status)).toEqual([429, 500]);
    expect(receivedBy(device!.endpoint)).toHaveLength(1);
    expect((await call(gw, 'GET', `/members/${m.id}/push-subscriptions`)).body.subscriptions).toHaveLength(1);
  });

  it("waits as long as the push service's Retry-After asks, and drops the offer if that is past its freshness", async () => {
    const m = await member(gw, ['location', 'push_marketing'], 1);
    const [device] = m.subscriptions;
    standIn.answerNext(429, device!.endpoint, '2');
    const d = await settled(gw, (await checkin(gw, m.id)).body.deliveryIds[0]);
    expect(d).toMatchObject({ status: 'sent', attempts: 2 });
    const refusedAt = standIn.answered.filter((a) => a.endpoint === device!.endpoint).at(-1)!.at;
    const deliveredAt = receivedBy(device!.endpoint).at(-1)!.at.getTime();
    expect(deliveredAt - refusedAt).toBeGreaterThanOrEqual(1900);

    const busy = await member(gw, ['location', 'push_marketing'], 1);
    const stale = async () => ((await call(gw, 'GET', '/admin/drops')).body.drops as Array<{ kind: string; count: number }>)
      .filter((x) => x.kind === 'offer_stale').reduce((a, x) => a + x.count, 0);
    const staleBefore = await stale();
    standIn.answerNext(503, busy.subscriptions[0]!.endpoint, '600'); // ten minutes: the offer is worth two
    const b = await settled(gw, (await checkin(gw, busy.id)).body.deliveryIds[0]);
    expect(b).toMatchObject({ status: 'cancelled', statusReason: 'STALE_OFFER', errorCode: '503', attempts: 1 });
    expect(receivedBy(busy.subscriptions[0]!.endpoint)).toHaveLength(0);
    expect(await stale()).toBe(staleBefore + 1);
  });

  it('fails for good on another 4xx, and after the last attempt on 5xx', async () => {
    const refused = await member(gw, ['location', 'push_marketing'], 1);
    standIn.answerNext(400, refused.subscriptions[0]!.endpoint);
    const r = await settled(gw, (await checkin(gw, refused.id)).body.deliveryIds[0]);
    expect(r).toMatchObject({ status: 'failed', attempts: 1, errorCode: '400', statusReason: expect.stringContaining('answered 400') });

    const down = await member(gw, ['location', 'push_marketing'], 1);
    for (let i = 0; i < 3; i++) standIn.answerNext(503, down.subscriptions[0]!.endpoint);
    const f = await settled(gw, (await checkin(gw, down.id)).body.deliveryIds[0]);
    expect(f).toMatchObject({ status: 'failed', attempts: 3, errorCode: '503' });
    // Neither device was removed: the service did not say they are gone.
    for (const m of [refused, down]) expect((await call(gw, 'GET', `/members/${m.id}/push-subscriptions`)).body.subscriptions).toHaveLength(1);
  });

  it('pushes nothing without push_marketing consent, and says why', async () => {
    const m = await member(gw, ['location'], 1);
    const c = await checkin(gw, m.id);
    expect(c.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'CONSENT_MISSING' });
    expect(c.body.decisions[0].trace.consent.push_marketing).toMatchObject({ allowed: false, reason: 'CONSENT_MISSING', purpose: 'push_marketing' });
    expect(c.body.deliveryIds).toEqual([]);

    const noDevice = await member(gw, ['location', 'push_marketing'], 0);
    expect((await checkin(gw, noDevice.id)).body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'NO_PUSH_SUBSCRIPTION' });
    await new Promise((r) => setTimeout(r, 100));
    expect(receivedBy(m.subscriptions[0]!.endpoint)).toEqual([]);
  });

  it('falls back to SMS when the campaign asks for push then SMS and the member has no push', async () => {
    const smsOnly = await member(gw, ['location', 'sms_marketing'], 0, true);
    const both = await member(gw, ['location', 'sms_marketing', 'push_marketing'], 1, true);
    const bySms = await checkin(gw, smsOnly.id, PUSH_THEN_SMS_AT);
    expect(bySms.body.decisions[0]).toMatchObject({ outcome: 'offer_queued', campaignId: campaigns['push then sms'] });
    const byPush = await checkin(gw, both.id, PUSH_THEN_SMS_AT);
    const [viaSms, viaPush] = [await settled(gw, bySms.body.deliveryIds[0]), await settled(gw, byPush.body.deliveryIds[0])];
    expect(viaSms).toMatchObject({ channel: 'sms', status: 'sent' });
    expect(viaPush).toMatchObject({ channel: 'push', status: 'sent' });
    expect(receivedBy(both.subscriptions[0]!.endpoint)).toHaveLength(1);
    const outbox = fs.readFileSync(path.join(gw.deps.config.dataDir, 'outbox.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { to: string; body: string });
    expect(outbox.filter((o) => o.to === smsOnly.phone && /Code: |code [0-9A-Z]{13}/.test(o.body))).toHaveLength(1);
    expect(outbox.filter((o) => o.to === both.phone && /code [0-9A-Z]{13}/.test(o.body))).toHaveLength(0);
  });

  it('checks consent, freshness and quiet hours again at the last moment; resumes dead claims and stranded pushes', async () => {
    // An API-only gateway queues but never sends: the job is run here by hand.
    const apiIso = isolatedConfig(backend, { ...env(), ROLE: 'api' });
    let api: Gateway | undefined = await startGateway(apiIso.config, { now: clock });
    try {
      await openStores(api);
      const queued = async (purposes = ['location', 'push_marketing']) => {
        const m = await member(api!, purposes, 1);
        const c = await checkin(api!, m.id);
        expect(c.body.decisions[0].outcome).toBe('offer_queued');
        return { ...m, deliveryId: c.body.deliveryIds[0] as string };
      };
      const run = async (deliveryId: string) => {
        await sendPushJob(api!.deps, { deliveryId }, { attempt: 1, maxAttempts: 3 });
        return (await call(api!, 'GET', `/deliveries/${deliveryId}`)).body;
      };

      const withdrawn = await queued();
      await call(api, 'POST', `/members/${withdrawn.id}/consents`, { purpose: 'push_marketing', action: 'withdraw', source: 'app' });
      expect(await run(withdrawn.deliveryId)).toMatchObject({ status: 'cancelled', statusReason: 'CONSENT_WITHDRAWN', attempts: 0 });

      const unsubscribed = await queued();
      await call(api, 'DELETE', `/members/${unsubscribed.id}/push-subscriptions/${unsubscribed.subscriptions[0]!.id}`);
      expect(await run(unsubscribed.deliveryId)).toMatchObject({ status: 'cancelled', statusReason: 'NO_PUSH_SUBSCRIPTION', attempts: 0 });

      const late = await queued();
      skewMs = (api.deps.config.offerFreshnessS + 1) * 1000;
      expect(await run(late.deliveryId)).toMatchObject({ status: 'cancelled', statusReason: 'STALE_OFFER', attempts: 0 });

      // Queued at 20:59:30 in Paris, sent at 21:00:30: still fresh, but the member's night has begun, and the
      // offer would be stale by 08:00, so it is dropped rather than held.
      skewMs = Date.parse('2026-06-03T18:59:30Z') - (START + (Date.now() - t0));
      const night = await queued();
      skewMs += 60_000;
      expect(await run(night.deliveryId)).toMatchObject({ status: 'cancelled', statusReason: 'QUIET_HOURS', attempts: 0 });

      skewMs = 0;
      const sent = await queued();
      expect(await run(sent.deliveryId)).toMatchObject({ status: 'sent', attempts: 1 });
      expect(await run(sent.deliveryId)).toMatchObject({ status: 'sent', attempts: 1 }); // a second run changes nothing
      expect(receivedBy(sent.subscriptions[0]!.endpoint)).toHaveLength(1);
      for (const m of [withdrawn, late, night]) expect(receivedBy(m.subscriptions[0]!.endpoint)).toEqual([]);

      // A push claimed by a worker that is still within its lease is left to it; one whose worker died is pushed again.
      const claimed = await queued();
      await api.deps.db.query(`UPDATE deliveries SET status = 'sending', sending_at = now() WHERE id = $1`, [claimed.deliveryId]);
      expect(await run(claimed.deliveryId)).toMatchObject({ status: 'sending', attempts: 0 });
      expect(receivedBy(claimed.subscriptions[0]!.endpoint)).toEqual([]);
      await api.deps.db.query(`UPDATE deliveries SET sending_at = now() - interval '1 hour' WHERE id = $1`, [claimed.deliveryId]);
      expect(await run(claimed.deliveryId)).toMatchObject({ status: 'sent', attempts: 1 });
      expect(receivedBy(claimed.subscriptions[0]!.endpoint)).toHaveLength(1);

      // A push delivery left queued with no job is found by the start-up sweep of a gateway with a worker.
      const waiting = await queued();
      await api.close();
      api = undefined;
      const full = await startGateway({ ...apiIso.config, role: 'all' }, { now: clock });
      try {
        expect(await settled(full, waiting.deliveryId)).toMatchObject({ channel: 'push', status: 'sent', attempts: 1 });
        expect(receivedBy(waiting.subscriptions[0]!.endpoint)).toHaveLength(1);
      } finally {
        await full.close();
      }
    } finally {
      skewMs = 0;
      await api?.close();
      await apiIso.cleanup();
    }
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-06-03T12:00:00Z');
  it.each([
    ['120', 120_000],
    [' 0 ', 0],
    ['Wed, 03 Jun 2026 12:00:30 GMT', 30_000],
    ['Wed, 03 Jun 2026 11:59:00 GMT', 0],
    ['soon', undefined],
    ['-5', undefined],
    [null, undefined],
  ] as const)('reads %j as %j ms', (header, expected) => {
    expect(retryAfterMs(header, now)).toBe(expected);
  });
});
