// Exactly one message per decision when workers die: a send is claimed in the database before the carrier is
// asked, so a worker that dies after Twilio took the message leaves a claim, and the next run asks Twilio
// instead of sending again. On the real backends a worker process is killed while Twilio holds its request.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { daytimeZone } from './support/daytime.js';
import { startTwilioStandIn, type TwilioStandIn } from './support/twilio-standin.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STORE_AT = { lat: 48.8584, lon: 2.2945 };

describe.each(backends)('sending once across worker deaths on the %s backends', (backend) => {
  let twilio: TwilioStandIn;
  let phoneSeq = 0;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    twilio = await startTwilioStandIn();
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await twilio?.close();
  });

  const env = () => ({
    TWILIO_ACCOUNT_SID: twilio.accountSid, TWILIO_AUTH_TOKEN: twilio.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: twilio.url,
    // A short lease, but one that leaves the Twilio client (timeout: 2/3 of it) time to answer on a loaded machine.
    JOB_LOCK_MS: '1000', SEND_LEASE_MS: '6000', SMS_COUNTRIES: 'US,FR', // its worker process texts French numbers
  });

  const call = async (gw: Gateway, method: 'GET' | 'POST', url: string, payload?: object) => {
    const res = await gw.app.inject({ method, url, payload });
    return { status: res.statusCode, body: res.json() };
  };

  const open = async (iso: Isolated, role: 'all' | 'api' | 'worker') => {
    const gw = await startGateway({ ...iso.config, role });
    cleanups.push(() => gw.close());
    return gw;
  };

  /** A store with a check-in campaign, and a member who grants location and marketing SMS. */
  const setUp = async (gw: Gateway, withStore = true) => {
    if (withStore) {
      const store = await call(gw, 'POST', '/stores', { name: 'Quay', timeZone: 'Europe/Paris', location: STORE_AT, geofence: { radiusM: 100 } });
      await call(gw, 'POST', '/campaigns', { name: 'Once', storeId: store.body.id, trigger: { kind: 'checkin' }, offer: { title: 'Once', message: 'One coffee.' } });
    }
    const phone = `+3361299${String(1000 + ++phoneSeq)}`;
    const member = await call(gw, 'POST', '/members', { phone, timeZone: daytimeZone() });
    await grantConsents(gw, member.body.id, phone, ['location', 'sms_marketing']);
    return { memberId: member.body.id as string, phone };
  };

  const checkin = async (gw: Gateway, memberId: string) => {
    const res = await call(gw, 'POST', '/checkins', { memberId, ...STORE_AT, accuracyM: 5, at: new Date().toISOString() });
    expect(res.body.decisions[0].outcome).toBe('offer_queued');
    return res.body.deliveryIds[0] as string;
  };

  const offersTo = (phone: string) => twilio.messages.filter((m) => m.to === phone && /Code: [0-9A-Z]{13}/.test(m.body));
  const settled = (gw: Gateway, id: string) => eventually(async () => {
    const d = await call(gw, 'GET', `/deliveries/${id}`);
    return ['queued', 'sending'].includes(d.body.status) ? undefined : d.body;
  });

  /** The state a worker leaves when it dies between claiming a send and recording it: 'sending', long ago. */
  const claimedLongAgo = (gw: Gateway, id: string) =>
    gw.deps.db.query(`UPDATE deliveries SET status = 'sending', sending_at = now() - interval '1 hour', attempts = 1 WHERE id = $1`, [id]);

  it('records a send that Twilio took before its worker died, and sends nothing again', async () => {
    const iso = isolatedConfig(backend, env());
    cleanups.push(() => iso.cleanup());
    const api = await open(iso, 'api');
    const { memberId, phone } = await setUp(api);
    const deliveryId = await checkin(api, memberId);
    // The dead worker's half: Twilio has the message, the row only the claim.
    const [row] = await api.deps.db.query<{ body: string }>('SELECT body FROM deliveries WHERE id = $1', [deliveryId]);
    const { providerId } = await api.deps.sms.send({ to: phone, body: row!.body, reference: deliveryId });
    await claimedLongAgo(api, deliveryId);
    await api.close();

    const worker = await open(iso, 'all');
    const d = await settled(worker, deliveryId);
    expect(d).toMatchObject({ status: 'sent', providerId, statusReason: 'RECOVERED_AFTER_CRASH', attempts: 1 });
    expect(offersTo(phone)).toHaveLength(1);
    expect(twilio.lists.some((l) => l.includes(`To=${encodeURIComponent(phone)}`))).toBe(true);
  });

  it('sends, once, a claimed message that never reached Twilio', async () => {
    const iso = isolatedConfig(backend, env());
    cleanups.push(() => iso.cleanup());
    const api = await open(iso, 'api');
    const { memberId, phone } = await setUp(api);
    const deliveryId = await checkin(api, memberId);
    await claimedLongAgo(api, deliveryId);
    await api.close();

    const worker = await open(iso, 'all');
    const d = await settled(worker, deliveryId);
    expect(d).toMatchObject({ status: 'sent', providerId: offersTo(phone)[0]?.sid, attempts: 2 });
    expect(offersTo(phone)).toHaveLength(1);
  });

  it('records, never marks failed, a last attempt that got no answer from Twilio while Twilio took the message', async () => {
    // One attempt only, and a Twilio client that gives up after 1 s (2/3 of the lease) while Twilio holds its answer.
    const iso = isolatedConfig(backend, { ...env(), JOB_ATTEMPTS: '1', SEND_LEASE_MS: '1500', RECONCILE_EVERY_MS: '300' });
    cleanups.push(() => iso.cleanup());
    const gw = await open(iso, 'all');
    const { memberId, phone } = await setUp(gw);
    const hold = twilio.holdNext(phone, /Code: [0-9A-Z]{13}/); // the offer, not the consent texts
    const deliveryId = await checkin(gw, memberId);
    const accepted = await hold.accepted;
    // The reconciler takes the expired claim and asks Twilio, which has the message: sent, once.
    const d = await settled(gw, deliveryId);
    expect(d).toMatchObject({ status: 'sent', providerId: accepted.sid, statusReason: 'RECOVERED_AFTER_CRASH' });
    expect(offersTo(phone)).toHaveLength(1);
  });

  /** A worker of its own process, on the same PostgreSQL and Redis; resolves once it runs. */
  const spawnWorker = async (iso: Isolated, extraEnv: Record<string, string>) => {
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'gateway/server.ts'], {
      cwd: ROOT,
      env: {
        ...process.env, ...extraEnv, ROLE: 'worker', PORT: '0', LOG_LEVEL: 'info', DATA_DIR: iso.config.dataDir, SMS_RATE_PER_SECOND: '0',
        DATABASE_URL: iso.config.databaseUrl, DATABASE_SCHEMA: iso.config.databaseSchema, REDIS_URL: iso.config.redisUrl, QUEUE_PREFIX: iso.config.queuePrefix,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    cleanups.push(async () => void child.kill('SIGKILL'));
    let log = '';
    child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    await eventually(async () => (log.includes('role: worker') ? true : undefined), 30_000);
    return { kill: async () => void (child.kill('SIGKILL'), await exited) };
  };

  it.runIf(backend === 'real')('a worker process killed while Twilio holds its request sends no second message', { timeout: 60_000 }, async () => {
    const iso = isolatedConfig(backend, env());
    cleanups.push(() => iso.cleanup());
    const api = await open(iso, 'api');
    const { memberId, phone } = await setUp(api);
    const child = await spawnWorker(iso, env());

    const hold = twilio.holdNext(phone);
    const deliveryId = await checkin(api, memberId);
    const accepted = await hold.accepted;
    await child.kill();
    expect((await call(api, 'GET', `/deliveries/${deliveryId}`)).body.status).toBe('sending');

    // Another worker: BullMQ gives it the dead one's job once its lock lapses; the claim's lease runs out; Twilio is asked.
    await open(iso, 'worker');
    const d = await settled(api, deliveryId);
    expect(d).toMatchObject({ status: 'sent', providerId: accepted.sid, statusReason: 'RECOVERED_AFTER_CRASH' });
    expect(offersTo(phone)).toHaveLength(1);
  });

  it.runIf(backend === 'real')('recovers a killed worker\'s send within 15 s at the default settings', { timeout: 120_000 }, async () => {
    // Default job lock, send lease and reconciler period: only Twilio's address is set.
    const twilioOnly = { TWILIO_ACCOUNT_SID: twilio.accountSid, TWILIO_AUTH_TOKEN: twilio.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: twilio.url, SMS_COUNTRIES: 'US,FR' };
    const iso = isolatedConfig(backend, twilioOnly);
    cleanups.push(() => iso.cleanup());
    const api = await open(iso, 'api');
    const { memberId, phone } = await setUp(api);
    const child = await spawnWorker(iso, twilioOnly);
    // The survivor runs all along, as in production: it waits on the same queue.
    await open(iso, 'worker');

    const hold = twilio.holdNext(phone);
    const deliveryId = await checkin(api, memberId);
    const accepted = await hold.accepted;
    await child.kill();
    const killedAt = Date.now();
    const d = await eventually(async () => {
      const r = await call(api, 'GET', `/deliveries/${deliveryId}`);
      return ['queued', 'sending'].includes(r.body.status) ? undefined : r.body;
    }, 90_000);
    const recoveryMs = Date.now() - killedAt;
    expect(d).toMatchObject({ status: 'sent', providerId: accepted.sid, statusReason: 'RECOVERED_AFTER_CRASH' });
    expect(offersTo(phone)).toHaveLength(1);
    expect(recoveryMs).toBeLessThan(15_000);
  });

  it.runIf(backend === 'real')('two gateways with two workers on one PostgreSQL and Redis send one message per decision, duplicate jobs included', { timeout: 60_000 }, async () => {
    const iso = isolatedConfig(backend, env());
    cleanups.push(() => iso.cleanup());
    const gateways = [await open(iso, 'all'), await open(iso, 'all')];
    const members = [await setUp(gateways[0]!)];
    for (let i = 1; i < 20; i++) members.push(await setUp(gateways[i % 2]!, false));
    const deliveries = await Promise.all(members.map(async (m, i) => {
      const id = await checkin(gateways[i % 2]!, m.memberId);
      // The same delivery's job, queued again by the other gateway under other ids: as a retry or a sweep would.
      await gateways[(i + 1) % 2]!.deps.queue.enqueue('sms.send', { deliveryId: id }, { jobId: `${id}-again` });
      await gateways[i % 2]!.deps.queue.enqueue('sms.send', { deliveryId: id }, { jobId: `${id}-once-more` });
      return id;
    }));
    for (const id of deliveries) expect(await settled(gateways[0]!, id)).toMatchObject({ status: 'sent', attempts: 1 });
    for (const m of members) expect(offersTo(m.phone)).toHaveLength(1);
  });
});
