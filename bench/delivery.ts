// Section 6: the last mile. Redemptions per second across many codes (each till request with its own request
// and transaction id, as a till sends them), and the latency from a detection to its offer being queued and
// to the carrier being called, with detections arriving at a steady rate.
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { eidHex } from '../beacon-agent/eid.js';
import { loadPrivateKey, signRequest } from '../beacon-agent/signing.js';
import type { PresenceEvent } from '../beacon-agent/types.js';
import { newCouponCode } from '../gateway/domain/coupons.js';
import { startGateway } from '../gateway/runtime.js';
import { adminHeaders, tillHeaders } from './keys.js';
import { isolatedConfig, type BackendName } from '../tests/support/backends.js';
import { daytimeZone } from '../tests/support/daytime.js';
import { seedCoupons } from '../tests/support/seed-coupons.js';
import { startTwilioStandIn } from '../tests/support/twilio-standin.js';
import { fmt, percentile, runLoad, table, type LoadStats } from './stats.js';

export const COUPONS = 20_000;
const DETECTION_RATE = 1000;
const DETECTION_SECONDS = 5;
const LOAD_BUDGET_MS = 60_000;
const K = 10;

export interface RedemptionRun { label: string; concurrency: number; load: LoadStats & { failures: string[] } }
export interface RedemptionFigures { backend: BackendName; seedMs: number; runs: RedemptionRun[] }

/**
 * Tills at once, and whether the campaign has a redemption budget (its coupons take a transaction each instead
 * of a batch's share of one statement).
 */
const REDEEM_RUNS = [
  { label: 'warm-up (not reported)', concurrency: 16, budgeted: false, codes: 2_000 },
  { label: 'no budget', concurrency: 16, budgeted: false, codes: COUPONS },
  { label: 'no budget', concurrency: 64, budgeted: false, codes: COUPONS },
  { label: 'redemption budget', concurrency: 16, budgeted: true, codes: 5_000 },
];

/** Coupons seeded straight into the tables, then redeemed once each over HTTP, as tills send them. */
export async function benchRedemptions(backend: BackendName): Promise<RedemptionFigures> {
  const iso = isolatedConfig(backend, { ROLE: 'api' });
  const gw = await startGateway(iso.config);
  try {
    const admin = await adminHeaders(gw);
    const post = async (url: string, payload: object) => (await gw.app.inject({ method: 'POST', url, payload, headers: admin })).json();
    const store = await post('/stores', { name: 'Tills', timeZone: 'UTC', location: { lat: 51.5, lon: -0.1 }, geofence: { radiusM: 100 } });
    const campaign = async (budgeted: boolean) => (await post('/campaigns', {
      name: 'Tills', storeId: store.id, trigger: { kind: 'checkin' }, offer: { title: 't', message: 'm' }, ...(budgeted ? { budget: { maxRedemptions: 1_000_000 } } : {}),
    })).id as string;
    const t = performance.now();
    const runs = [];
    for (const run of REDEEM_RUNS) {
      const codes = Array.from({ length: run.codes }, () => newCouponCode());
      await seedCoupons(gw.deps.db, await campaign(run.budgeted), codes);
      runs.push({ ...run, codes });
    }
    await gw.deps.db.query('VACUUM (ANALYZE) coupons, decisions, members');
    const seedMs = performance.now() - t;
    const till = await tillHeaders(gw);
    const out: RedemptionRun[] = [];
    for (const run of runs) {
      let n = 0;
      const load = await runLoad(run.codes.length, run.concurrency, async () => {
        const i = n++;
        const res = await gw.app.inject({
          method: 'POST', url: '/redemptions', headers: till,
          payload: { code: run.codes[i]!, storeId: store.id, tillRef: `till-${i % 8}`, transactionId: `${run.concurrency}-${run.label}-${i}`, requestId: randomUUID() },
        });
        if (res.statusCode !== 201) throw new Error(`redemption: ${res.statusCode} ${res.body.slice(0, 200)}`);
      }, LOAD_BUDGET_MS);
      if (run !== runs[0]) out.push({ label: run.label, concurrency: run.concurrency, load });
    }
    return { backend, seedMs, runs: out };
  } finally {
    await gw.close();
    await iso.cleanup();
  }
}

export interface LatencyFigures {
  backend: BackendName;
  detections: number;
  perSecond: number;
  offered: number;
  called: number;
  queued: { p50: number; p95: number; p99: number };
  providerCall: { p50: number; p95: number; p99: number };
}

/**
 * A box uploads DETECTION_RATE presence events a second for DETECTION_SECONDS, in batches every 50 ms: one
 * event in ten is a member walking into the zone (a zone_enter campaign offers them a coupon by SMS), the rest
 * are dwells of members already there. Detection to queued: from the event until its upload is answered (the
 * delivery is queued by then). Detection to provider call: until the SMS request reaches a local stand-in of
 * Twilio's API.
 */
export async function benchLatency(backend: BackendName): Promise<LatencyFigures> {
  const standIn = await startTwilioStandIn();
  // When each number's SMS request first reached the stand-in (wall clock), counting from `since` messages in.
  let since = 0;
  const calledAt = () => {
    const first = new Map<string, number>();
    for (const m of standIn.messages.slice(since)) if (!first.has(m.to)) first.set(m.to, m.dateCreated.getTime());
    return first;
  };
  const total = DETECTION_RATE * DETECTION_SECONDS;
  const batchEvery = 50;
  const perBatch = (DETECTION_RATE * batchEvery) / 1000;
  const entering = total / 10;
  const dwelling = 200;
  const iso = isolatedConfig(backend, {
    TWILIO_ACCOUNT_SID: standIn.accountSid, TWILIO_AUTH_TOKEN: standIn.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: standIn.url,
    SMS_RATE_PER_SECOND: '0',
  });
  const gw = await startGateway(iso.config);
  try {
    const admin = await adminHeaders(gw);
    const post = async (url: string, payload: object) => (await gw.app.inject({ method: 'POST', url, payload, headers: admin })).json();
    const store = await post('/stores', { name: 'Latency', timeZone: 'UTC', location: { lat: 51.5, lon: -0.1 }, geofence: { radiusM: 100 } });
    const zone = await post(`/stores/${store.id}/zones`, { name: 'entrance' });
    await post('/campaigns', { name: 'Welcome', storeId: store.id, trigger: { kind: 'zone_enter', zoneIds: [zone.id] }, offer: { title: 't', message: 'Welcome in.' } });
    const reg = await post('/agents', { storeId: store.id, name: 'latency box' });
    const privateKey = loadPrivateKey(reg.privateKey);
    // Members granting Bluetooth detection and confirmed marketing SMS, with identity keys, seeded straight into the tables.
    const count = entering + dwelling;
    const phones = Array.from({ length: count }, (_, i) => `+1415${String(2_000_000 + i).padStart(7, '0')}`);
    const keys = phones.map(() => randomBytes(16));
    const ids = (await gw.deps.db.query<{ id: string }>(
      'INSERT INTO members (phone_e164, time_zone) SELECT unnest($1::text[]), $2 RETURNING id', [phones, daytimeZone()],
    )).map((r) => r.id);
    await gw.deps.db.query(
      `INSERT INTO consent_events (member_id, purpose, action, source, occurred_at)
       SELECT m, p, 'grant', 'app', now() - interval '1 hour' FROM unnest($1::uuid[]) m, unnest(ARRAY['ble_detection', 'sms_marketing']) p`,
      [ids],
    );
    await gw.deps.db.query(
      'INSERT INTO member_identity_keys (member_id, identity_key, rotation_exponent) SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::int[])',
      [ids, keys, ids.map(() => K)],
    );
    await gw.deps.db.query('VACUUM (ANALYZE) members, consent_events, member_identity_keys');
    const eidOf = (i: number) => eidHex(keys[i]!, K, Math.floor(Date.now() / 1000));
    let stamp = Date.now();
    let seq = 0;
    const upload = async (events: PresenceEvent[]) => {
      const body = JSON.stringify({ agentId: reg.agent.id, batchId: events[0]!.id, events });
      stamp = Math.max(stamp + 1, Date.now());
      const headers = { 'content-type': 'application/json', ...signRequest(privateKey, reg.agent.id, { method: 'POST', path: '/ingest/presence', timestamp: stamp, body }) };
      const res = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body, headers });
      if (res.statusCode !== 202) throw new Error(`ingest: ${res.statusCode} ${res.body.slice(0, 200)}`);
      return res.json() as { deliveryIds: string[] };
    };
    const event = (i: number, kind: 'enter' | 'dwell'): PresenceEvent => ({
      id: `latency-${++seq}`, kind, eid: eidOf(i), zoneId: zone.id, at: new Date().toISOString(), source: 'ble_passive', confidence: 0.8, rssi: -60,
    });
    // Those who dwell walked in before the clock starts (their own offers are not measured).
    for (let from = entering; from < count; from += 100) await upload(Array.from({ length: Math.min(100, count - from) }, (_, j) => event(from + j, 'enter')));
    await new Promise((r) => setTimeout(r, 1000));
    since = standIn.messages.length;

    const enteredAt = new Map<string, number>();
    const queued: number[] = [];
    let offered = 0;
    let next = 0;
    const pending: Array<Promise<void>> = [];
    const t0 = performance.now();
    for (let b = 0; b < total / perBatch; b++) {
      const wait = t0 + b * batchEvery - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const events: PresenceEvent[] = [];
      for (let j = 0; j < perBatch; j++) {
        if (j % 10 === 0) {
          const i = next++;
          enteredAt.set(phones[i]!, Date.now());
          events.push(event(i, 'enter'));
        } else {
          events.push(event(entering + ((b * perBatch + j) % dwelling), 'dwell'));
        }
      }
      const start = performance.now();
      pending.push(upload(events).then((r) => {
        const ms = performance.now() - start;
        for (let k = 0; k < r.deliveryIds.length; k++) queued.push(ms);
        offered += r.deliveryIds.length;
      }));
    }
    await Promise.all(pending);
    const wallS = (performance.now() - t0) / 1000;
    const until = performance.now() + 30_000;
    while ([...enteredAt.keys()].filter((p) => calledAt().has(p)).length < offered && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
    const called = calledAt();
    const calls = [...enteredAt].flatMap(([phone, t]) => (called.has(phone) ? [called.get(phone)! - t] : [])).sort((a, c) => a - c);
    queued.sort((a, c) => a - c);
    const p = (xs: number[]) => ({ p50: percentile(xs, 50), p95: percentile(xs, 95), p99: percentile(xs, 99) });
    return { backend, detections: total, perSecond: total / wallS, offered, called: calls.length, queued: p(queued), providerCall: p(calls) };
  } finally {
    await gw.close();
    await iso.cleanup();
    await standIn.close();
  }
}

export function deliveryTables(redemptions: RedemptionFigures[], latency: LatencyFigures[]): string {
  const a = table(
    '6a. POST /redemptions, each code once, each request with its own request and transaction id, via app.inject (target: >= 2,000/s)',
    ['backend', 'campaign', 'tills at once', 'redemptions', 'errors', 'wall s', 'per s', 'p50 ms', 'p99 ms'],
    redemptions.flatMap((r) => r.runs.map((x) => [
      r.backend, x.label, String(x.concurrency), String(x.load.count), String(x.load.errors), fmt(x.load.wallMs / 1000, 2), fmt(x.load.perSecond, 0),
      fmt(x.load.p50, 1), fmt(x.load.p99, 1),
    ])),
  );
  const b = table(
    `6b. A box uploading ${fmt(DETECTION_RATE, 0)} detections/s for ${DETECTION_SECONDS} s (batches every 50 ms; 1 in 10 a zone entry winning an SMS offer): ` +
      'detection to queued and to the carrier\'s API being called (target p95 <= 2 s)',
    ['backend', 'detections', 'uploaded /s', 'offers', 'carrier calls', 'queued p50 ms', 'queued p99 ms', 'call p50 ms', 'call p95 ms', 'call p99 ms'],
    latency.map((l) => [
      l.backend, String(l.detections), fmt(l.perSecond, 0), String(l.offered), String(l.called), fmt(l.queued.p50, 1), fmt(l.queued.p99, 1),
      fmt(l.providerCall.p50, 1), fmt(l.providerCall.p95, 1), fmt(l.providerCall.p99, 1),
    ]),
  );
  return [a, b].join('\n');
}
