// PostgreSQL is the record, the queue only wakes workers: a delivery committed as 'queued' is sent, or dropped
// as stale and counted, whatever became of its job, with no process restarted. On the real backends the queue
// is a Redis of this test's own, stopped and started again empty; on the embedded one the enqueue fails.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../gateway/config.js';
import type { JobQueue } from '../gateway/queue/port.js';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type BackendName, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { daytimeZone } from './support/daytime.js';
import { redisOfOwn, type RedisProcess } from './support/fault-processes.js';
import { startTwilioStandIn, type TwilioStandIn } from './support/twilio-standin.js';

const STORE_AT = { lat: 48.8584, lon: 2.2945 };

describe.each(backends)('the outbox on the %s backends', (backend: BackendName) => {
  let twilio: TwilioStandIn;
  /** A Redis of the test's own, without persistence: killed, it comes back empty. */
  let redis: RedisProcess | undefined;
  let phoneSeq = 0;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    twilio = await startTwilioStandIn();
    if (backend === 'real') {
      redis = await redisOfOwn();
      await redis.start();
    }
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await twilio?.close();
    await redis?.kill().catch(() => {});
  });

  /** A config on the test's own Redis (real backends), reconciling twice a second. */
  const isolated = (env: Record<string, string> = {}): Isolated => {
    const iso = isolatedConfig(backend, {
      TWILIO_ACCOUNT_SID: twilio.accountSid, TWILIO_AUTH_TOKEN: twilio.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: twilio.url,
      RECONCILE_EVERY_MS: '500', ...env,
    });
    cleanups.push(() => iso.cleanup());
    if (backend !== 'real') return iso;
    const c = iso.config;
    const config = loadConfig({
      DATABASE_URL: c.databaseUrl, DATABASE_SCHEMA: c.databaseSchema, REDIS_URL: redis!.url, QUEUE_PREFIX: c.queuePrefix, DATA_DIR: c.dataDir,
      LOG_LEVEL: 'silent', JOB_BACKOFF_MS: '20', SMS_RATE_PER_SECOND: '0', RATE_LIMIT_PUBLIC_PER_MINUTE: '1000000', RATE_LIMIT_MEMBER_PER_MINUTE: '1000000',
      TWILIO_ACCOUNT_SID: twilio.accountSid, TWILIO_AUTH_TOKEN: twilio.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: twilio.url,
      SMS_COUNTRIES: 'US,FR', RECONCILE_EVERY_MS: '500', ...env,
    });
    return { config, cleanup: iso.cleanup };
  };

  const open = async (iso: Isolated, role: 'all' | 'api' | 'worker') => {
    const gw = await startGateway({ ...iso.config, role });
    cleanups.push(() => gw.close());
    return gw;
  };

  const call = async (gw: Gateway, method: 'GET' | 'POST', url: string, payload?: object) => {
    const res = await gw.app.inject({ method, url, payload });
    return { status: res.statusCode, body: res.json() };
  };

  const store = async (gw: Gateway) => {
    const s = await call(gw, 'POST', '/stores', { name: 'Quay', timeZone: 'Europe/Paris', location: STORE_AT, geofence: { radiusM: 100 } });
    await call(gw, 'POST', '/campaigns', { name: 'Once', storeId: s.body.id, trigger: { kind: 'checkin' }, offer: { title: 'Once', message: 'One coffee.' } });
  };

  const member = async (gw: Gateway) => {
    const phone = `+3361288${String(1000 + ++phoneSeq)}`;
    const m = await call(gw, 'POST', '/members', { phone, timeZone: daytimeZone() });
    await grantConsents(gw, m.body.id, phone, ['location', 'sms_marketing']);
    return { memberId: m.body.id as string, phone };
  };

  const checkin = (gw: Gateway, memberId: string) =>
    call(gw, 'POST', '/checkins', { memberId, ...STORE_AT, accuracyM: 5, at: new Date().toISOString() });

  const offersTo = (phone: string) => twilio.messages.filter((m) => m.to === phone && /Code: [0-9A-Z]{13}/.test(m.body));
  const statusOf = async (gw: Gateway, id: string) => (await call(gw, 'GET', `/deliveries/${id}`)).body.status as string;

  it.runIf(backend === 'embedded')('sends an offer whose enqueue failed, without a restart', { timeout: 60_000 }, async () => {
    const gw = await open(isolated(), 'all');
    await store(gw);
    const m = await member(gw);
    // The queue refuses offers' jobs for a while, as a Redis outage would.
    const queue = gw.deps.queue;
    const refusing: JobQueue = {
      ...queue,
      enqueue: async () => {
        throw new Error('queue down');
      },
    };
    gw.deps.queue = refusing;
    const res = await checkin(gw, m.memberId);
    expect(res.status).toBe(202);
    expect(res.body.decisions[0].outcome).toBe('offer_queued');
    const id = res.body.deliveryIds[0] as string;
    expect(await statusOf(gw, id)).toBe('queued');
    gw.deps.queue = queue;
    await eventually(async () => ((await statusOf(gw, id)) === 'sent' ? true : undefined), 20_000);
    expect(offersTo(m.phone)).toHaveLength(1);
  });

  it.runIf(backend === 'real')('a check-in answers at once while Redis is down, and its offer goes out once Redis is back', { timeout: 90_000 }, async () => {
    const iso = isolated();
    const gw = await open(iso, 'all');
    await store(gw);
    const m = await member(gw);
    await redis!.kill();
    try {
      const t0 = Date.now();
      const res = await checkin(gw, m.memberId);
      const tookMs = Date.now() - t0;
      expect(res.status).toBe(202);
      expect(res.body.decisions[0].outcome).toBe('offer_queued');
      // Bounded by ENQUEUE_TIMEOUT_MS (400 ms), not by the outage; generous for a loaded machine.
      expect(tookMs).toBeLessThan(3000);
      const id = res.body.deliveryIds[0] as string;
      expect(await statusOf(gw, id)).toBe('queued');
      await new Promise((r) => setTimeout(r, 1500));
      expect(offersTo(m.phone)).toHaveLength(0);
      await redis!.start(); // empty
      await eventually(async () => ((await statusOf(gw, id)) === 'sent' ? true : undefined), 30_000);
      expect(offersTo(m.phone)).toHaveLength(1);
    } finally {
      await redis!.start().catch(() => {});
    }
  });

  it.runIf(backend === 'real')('a burst whose jobs Redis lost is sent once each, and the hourly schedule comes back, with no restart', { timeout: 120_000 }, async () => {
    // An API gateway and a worker paced to 4 messages a second: most of the burst still waits in Redis when it dies.
    const iso = isolated({ SMS_RATE_PER_SECOND: '4' });
    const api = await open(iso, 'api');
    const worker = await open(iso, 'worker');
    await store(api);
    const members = [];
    for (let i = 0; i < 16; i++) members.push(await member(api));
    const ids = await Promise.all(members.map(async (m) => {
      const res = await checkin(api, m.memberId);
      expect(res.body.decisions[0].outcome).toBe('offer_queued');
      return res.body.deliveryIds[0] as string;
    }));
    await redis!.kill();
    await redis!.start(); // empty: every job and the retention schedule are gone
    const settled = await eventually(async () => {
      const rows = await worker.deps.db.query<{ id: string; status: string; status_reason: string | null }>(
        'SELECT id, status, status_reason FROM deliveries WHERE id = ANY($1::uuid[])', [ids]);
      return rows.every((r) => !['queued', 'sending'].includes(r.status)) ? rows : undefined;
    }, 60_000);
    // Each sent exactly once (the offers are fresh for two minutes: none is stale here).
    expect(settled.map((r) => r.status)).toEqual(ids.map(() => 'sent'));
    for (const m of members) expect(offersTo(m.phone)).toHaveLength(1);
    const raw = new Redis(redis!.url);
    try {
      await eventually(async () => ((await raw.zscore(`${iso.config.queuePrefix}:jobs:repeat`, 'repeat-retention.purge')) !== null ? true : undefined));
    } finally {
      raw.disconnect();
    }
  });

  it('drops as stale, and counts, a waiting offer past its freshness', { timeout: 60_000 }, async () => {
    const iso = isolated();
    const api = await open(iso, 'api');
    await store(api);
    const m = await member(api);
    const res = await checkin(api, m.memberId);
    const id = res.body.deliveryIds[0] as string;
    // Its moment passed before any worker took it.
    await api.deps.db.query(`UPDATE deliveries SET fresh_until = now() - interval '1 second' WHERE id = $1`, [id]);
    const before = await api.deps.db.query<{ count: number }>(`SELECT coalesce(sum(count), 0)::int AS count FROM drop_counters WHERE kind = 'offer_stale'`);
    await api.close(); // one process at a time on the embedded database
    const worker = await open(iso, 'all');
    await eventually(async () => ((await statusOf(worker, id)) === 'cancelled' ? true : undefined));
    const after = await worker.deps.db.query<{ count: number }>(`SELECT coalesce(sum(count), 0)::int AS count FROM drop_counters WHERE kind = 'offer_stale'`);
    expect(after[0]!.count).toBe(before[0]!.count + 1);
    expect(offersTo(m.phone)).toHaveLength(0);
  });
});
