// What every fault test stands on: a schema and a queue prefix of its own on the real PostgreSQL, migrated and
// with an administrator key; the Twilio stand-in; members seeded straight into the tables (with location and
// marketing SMS granted); a member app that checks in as the real one should (an Idempotency-Key per check-in,
// a bounded wait, retries after 503 and after a lost answer); and the tally of what the stand-in received, per
// delivery, that the assertions read.
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../gateway/config.js';
import type { Database } from '../../gateway/db/database.js';
import { migrate } from '../../gateway/db/migrate.js';
import { openDatabase } from '../../gateway/db/open.js';
import { issueApiKey } from '../../gateway/domain/api-keys.js';
import { realUrls, uniqueName } from './backends.js';
import { daytimeZone } from './daytime.js';
import { startTwilioStandIn, type TwilioStandIn } from './twilio-standin.js';

export const STORE_AT = { lat: 48.8584, lon: 2.2945 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One HTTP exchange as a client saw it: an answer, or none (status 0) and why. */
export interface Exchange {
  status: number;
  body: { error?: { code?: string }; [k: string]: unknown };
  retryAfter: string | null;
  ms: number;
  /** When the answer (or the failure) came, epoch ms. */
  at: number;
  error?: string;
}

export async function http(url: string, opts: { method?: string; body?: unknown; key?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Exchange> {
  const t = performance.now();
  try {
    const res = await fetch(url, {
      method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
      headers: {
        ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}),
        ...opts.headers,
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
    const text = await res.text();
    let body: Exchange['body'] = {};
    try {
      body = JSON.parse(text) as Exchange['body'];
    } catch {
      body = { raw: text };
    }
    return { status: res.status, body, retryAfter: res.headers.get('retry-after'), ms: performance.now() - t, at: Date.now() };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { status: 0, body: {}, retryAfter: null, ms: performance.now() - t, at: Date.now(), error: e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? e.message) };
  }
}

export interface Member {
  id: string;
  phone: string;
}

/** What the member app ends with for one check-in, and every attempt it took. */
export interface CheckinResult {
  member: Member;
  /** The answer it settled on (202, or a 4xx), or the last failure when the deadline came first. */
  final: Exchange;
  attempts: Exchange[];
  deliveryIds: string[];
  outcome: string | null;
  /** When the check-in was first sent (epoch ms). */
  startedAt: number;
}

export interface FaultWorld {
  db: Database;
  adminKey: string;
  twilio: TwilioStandIn;
  schema: string;
  queuePrefix: string;
  /** The environment every gateway process of this test gets (its own Redis URL and role are added per process). */
  env(extra?: Record<string, string>): Record<string, string>;
  /** A store at STORE_AT with a check-in campaign, made through a gateway's API. */
  checkinCampaign(gatewayUrl: string): Promise<{ storeId: string; campaignId: string }>;
  seedMembers(n: number): Promise<Member[]>;
  /**
   * The member app's check-in at the store: one Idempotency-Key for all its attempts, each waiting at most
   * `timeoutMs`; a 503 waits its Retry-After, a lost answer 0.5 s; it tries again until `deadlineMs` has passed.
   * `target` picks the gateway for each attempt (a load balancer would send a retry elsewhere).
   */
  checkin(target: (attempt: number) => string, member: Member, opts?: { timeoutMs?: number; deadlineMs?: number }): Promise<CheckinResult>;
  /** Offer messages the stand-in took, per delivery id (from the status callback's ?d=). */
  sentPerDelivery(): Map<string, number>;
  deliveries(ids: readonly string[]): Promise<Array<{ id: string; status: string; status_reason: string | null }>>;
  close(): Promise<void>;
}

/**
 * Where every offer a client was told of ended up, once each has settled (or `timeoutMs` passed):
 * - sentOnce: status sent (or later) with exactly one message at the stand-in;
 * - stale: cancelled as STALE_OFFER with no message (and counted: `counted` is the offer_stale drop counter);
 * - lost: anything else (still queued or sending, failed, cancelled with a message...);
 * - duplicated: more than one message;
 * - unacknowledged: messages for deliveries no client was told of (a retry answered "no offer" while the
 *   first attempt's offer went out).
 */
export interface OfferTally {
  acknowledged: number;
  sentOnce: number;
  stale: number;
  counted: number;
  lost: Array<{ id: string; status: string; reason: string | null; messages: number }>;
  duplicated: string[];
  unacknowledged: string[];
  /** When the last acknowledged offer reached the stand-in (epoch ms; 0 if none). */
  lastSentAt: number;
  /** Per acknowledged sent offer: from the check-in's time to its message, ms. */
  ageAtSend: number[];
  /** When each acknowledged offer's message reached the stand-in (epoch ms). */
  sentAt: Map<string, number>;
}

export async function tallyOffers(world: FaultWorld, results: readonly CheckinResult[], timeoutMs: number): Promise<OfferTally> {
  return tallyDeliveries(world, new Map(results.flatMap((r) => r.deliveryIds.map((id) => [id, r.startedAt] as const))), timeoutMs);
}

/** tallyOffers for deliveries known otherwise (an agent's detections): id -> when its trigger happened (epoch ms). */
export async function tallyDeliveries(world: FaultWorld, acked: ReadonlyMap<string, number>, timeoutMs: number): Promise<OfferTally> {
  const ids = [...acked.keys()];
  const until = Date.now() + timeoutMs;
  let rows = await world.deliveries(ids);
  while (rows.some((d) => d.status === 'queued' || d.status === 'sending') && Date.now() < until) {
    await sleep(200);
    rows = await world.deliveries(ids);
  }
  const sent = world.sentPerDelivery();
  const firstAt = new Map<string, number>();
  for (const m of world.twilio.messages) {
    const id = m.statusCallback ? new URL(m.statusCallback).searchParams.get('d') : null;
    if (id && !firstAt.has(id)) firstAt.set(id, m.dateCreated.getTime());
  }
  const [drops] = await world.db.query<{ n: number }>(`SELECT coalesce(sum(count), 0)::int n FROM drop_counters WHERE kind = 'offer_stale'`);
  const tally: OfferTally = {
    acknowledged: ids.length, sentOnce: 0, stale: 0, counted: drops!.n, lost: [], duplicated: [], lastSentAt: 0, ageAtSend: [], sentAt: new Map(),
    unacknowledged: [...sent.keys()].filter((id) => !acked.has(id)),
  };
  for (const d of rows) {
    const messages = sent.get(d.id) ?? 0;
    if (messages > 1) tally.duplicated.push(d.id);
    if (['sent', 'delivered', 'undelivered'].includes(d.status) && messages === 1) {
      tally.sentOnce += 1;
      tally.lastSentAt = Math.max(tally.lastSentAt, firstAt.get(d.id)!);
      tally.ageAtSend.push(firstAt.get(d.id)! - acked.get(d.id)!);
      tally.sentAt.set(d.id, firstAt.get(d.id)!);
    } else if (d.status === 'cancelled' && d.status_reason === 'STALE_OFFER' && messages === 0) {
      tally.stale += 1;
    } else {
      tally.lost.push({ id: d.id, status: d.status, reason: d.status_reason, messages });
    }
  }
  return tally;
}

/** Every attempt of every check-in, as the clients saw them: for the 500-or-hang assertions and the figures. */
export function attemptsOf(results: readonly CheckinResult[]) {
  const all = results.flatMap((r) => r.attempts);
  return {
    all,
    errors5xx: all.filter((a) => a.status >= 500 && a.status !== 503),
    unavailable: all.filter((a) => a.status === 503),
    noAnswer: all.filter((a) => a.status === 0),
    slowestMs: Math.round(Math.max(0, ...all.map((a) => a.ms))),
  };
}

export async function openFaultWorld(standIn: { otherAccounts?: string[] } = {}): Promise<FaultWorld> {
  const schema = uniqueName('f');
  const queuePrefix = uniqueName('fq');
  const config = loadConfig({ DATABASE_URL: realUrls.databaseUrl, DATABASE_SCHEMA: schema, LOG_LEVEL: 'silent' });
  const db = await openDatabase(config);
  await migrate(db);
  const { key: adminKey } = await issueApiKey(db, { role: 'administrator', name: 'fault tests' });
  const twilio = await startTwilioStandIn(standIn);
  let phoneSeq = 0;

  const world: FaultWorld = {
    db, adminKey, twilio, schema, queuePrefix,
    env: (extra = {}) => ({
      DATABASE_URL: realUrls.databaseUrl!, DATABASE_SCHEMA: schema, QUEUE_PREFIX: queuePrefix,
      TWILIO_ACCOUNT_SID: twilio.accountSid, TWILIO_AUTH_TOKEN: twilio.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: twilio.url,
      SMS_COUNTRIES: 'US,FR', // the members' numbers are French
      ...extra,
    }),
    async checkinCampaign(gatewayUrl) {
      const store = await http(`${gatewayUrl}/stores`, { key: adminKey, body: { name: 'Quay', timeZone: 'Europe/Paris', location: STORE_AT, geofence: { radiusM: 100 } } });
      if (store.status !== 201) throw new Error(`POST /stores: ${store.status} ${JSON.stringify(store.body)}`);
      const campaign = await http(`${gatewayUrl}/campaigns`, {
        key: adminKey, body: { name: 'Quay coffee', storeId: store.body.id, trigger: { kind: 'checkin' }, offer: { title: 'Coffee', message: 'A coffee on us.' } },
      });
      if (campaign.status !== 201) throw new Error(`POST /campaigns: ${campaign.status} ${JSON.stringify(campaign.body)}`);
      return { storeId: store.body.id as string, campaignId: campaign.body.id as string };
    },
    async seedMembers(n) {
      const phones = Array.from({ length: n }, () => `+3361${String(1_000_000 + ++phoneSeq).padStart(7, '0')}`);
      const rows = await db.query<{ id: string; phone_e164: string }>(
        'INSERT INTO members (phone_e164, time_zone) SELECT unnest($1::text[]), $2 RETURNING id, phone_e164', [phones, daytimeZone()],
      );
      await db.query(
        `INSERT INTO consent_events (member_id, purpose, action, source, occurred_at)
         SELECT m, p, 'grant', 'app', now() - interval '1 hour' FROM unnest($1::uuid[]) m, unnest(ARRAY['location', 'sms_marketing']) p`,
        [rows.map((r) => r.id)],
      );
      return rows.map((r) => ({ id: r.id, phone: r.phone_e164 }));
    },
    async checkin(target, member, { timeoutMs = 5000, deadlineMs = 30_000 } = {}) {
      const startedAt = Date.now();
      const idempotencyKey = randomUUID();
      const body = { memberId: member.id, ...STORE_AT, accuracyM: 5, at: new Date(startedAt).toISOString() };
      const attempts: Exchange[] = [];
      for (let attempt = 0; ; attempt++) {
        const res = await http(`${target(attempt)}/checkins`, { key: adminKey, body, headers: { 'idempotency-key': idempotencyKey }, timeoutMs });
        attempts.push(res);
        const settled = (res.status >= 200 && res.status < 500 && res.status !== 429) || Date.now() - startedAt > deadlineMs;
        if (settled) {
          const decisions = (res.body.decisions ?? []) as Array<{ outcome: string }>;
          return { member, final: res, attempts, deliveryIds: res.status === 202 ? (res.body.deliveryIds as string[]) : [], outcome: decisions[0]?.outcome ?? null, startedAt };
        }
        const retryAfterS = Number(res.retryAfter);
        await sleep(res.status === 503 && retryAfterS > 0 ? Math.min(retryAfterS, 5) * 1000 : 500);
      }
    },
    sentPerDelivery() {
      const counts = new Map<string, number>();
      for (const m of twilio.messages) {
        const id = m.statusCallback ? new URL(m.statusCallback).searchParams.get('d') : null;
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      return counts;
    },
    deliveries: (ids) => db.query('SELECT id, status, status_reason FROM deliveries WHERE id = ANY($1::uuid[])', [ids]),
    async close() {
      await twilio.close();
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
      await db.close();
    },
  };
  return world;
}
