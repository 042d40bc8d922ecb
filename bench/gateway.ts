// Sections 2 and 3: the check-in decision path and redemption over HTTP (app.inject), on one backend.
import { performance } from 'node:perf_hooks';
import { startGateway, type Gateway } from '../gateway/runtime.js';
import { adminHeaders, tillHeaders } from './keys.js';
import { isolatedConfig, type BackendName } from '../tests/support/backends.js';
import { daytimeZone } from '../tests/support/daytime.js';
import { runLoad, type LoadStats } from './stats.js';

export const CHECKINS = 300;
export const WARMUP = 20;
export const CONCURRENCY = 8;
const SETUP_CONCURRENCY = 8;
/** Time caps per phase: a phase that hits its cap reports what it completed. */
const SETUP_BUDGET_MS = 40_000;
const LOAD_BUDGET_MS = 20_000;
const DELIVERY_TIMEOUT_MS = 20_000;
const CLOSE_TIMEOUT_MS = 15_000;
const POLL_MS = 20;

const STORE_AT = { lat: 40.7411, lon: -73.9897 };
const INSIDE = { lat: 40.7415, lon: -73.9893 }; // about 55 m from the store, inside its 150 m geofence

export interface DeliveryStats {
  total: number;
  sent: number;
  unsettled: number;
  /** Sent before the last measured check-in returned. */
  sentAtCheckinEnd: number;
  /** From the last measured check-in's response until every delivery was sent. */
  drainMs: number;
  /** From the first measured check-in's request until every delivery was sent. */
  sinceFirstMs: number;
}

export interface BackendResult {
  backend: BackendName;
  kinds: string;
  setupMs: number;
  setupRequests: number;
  checkins: LoadStats & { failures: string[] };
  deliveries: DeliveryStats;
  redemptions: LoadStats & { failures: string[] };
}

type Json = Record<string, unknown>;

async function post(gw: Gateway, url: string, payload: object, expected: number): Promise<Json> {
  // Tills redeem with their merchant's key; everything else here is an administrator's or the app's doing.
  const headers = url === '/redemptions' ? await tillHeaders(gw) : await adminHeaders(gw);
  const res = await gw.app.inject({ method: 'POST', url, payload, headers });
  if (res.statusCode !== expected) {
    throw new Error(`POST ${url}: expected ${expected}, got ${res.statusCode} ${res.body.slice(0, 200)}`);
  }
  return res.json() as Json;
}

const phoneFor = (i: number) => `+1415555${String(2000 + i).padStart(4, '0')}`;

async function setup(gw: Gateway, members: number, timeZone: string): Promise<{ storeId: string; memberIds: string[]; requests: number }> {
  const store = await post(gw, '/stores', {
    name: 'Bench St', timeZone: 'America/New_York', location: STORE_AT, geofence: { radiusM: 150 },
  }, 201);
  const storeId = store.id as string;
  await post(gw, '/campaigns', {
    name: 'Bench coffee', storeId, trigger: { kind: 'checkin' },
    offer: { title: 'Free coffee', message: 'Free coffee with code {code}, valid until {expires}.' },
  }, 201);
  const memberIds: string[] = new Array(members);
  let requests = 2;
  const made = await runLoad(members, SETUP_CONCURRENCY, async (i) => {
    const m = await post(gw, '/members', { phone: phoneFor(i), timeZone }, 201);
    requests++;
    for (const purpose of ['location', 'sms_marketing']) {
      const c = await post(gw, `/members/${m.id as string}/consents`, { purpose, action: 'grant', source: 'app' }, 201);
      requests++;
      const state = (c.consents as Record<string, { granted: boolean; pending?: boolean }> | undefined)?.[purpose];
      if (state && !state.granted && state.pending) {
        // Double opt-in: marketing SMS counts once the member replies YES (the outbox backend's inbound stand-in).
        await post(gw, '/dev/sms/inbound', { from: phoneFor(i), body: 'YES' }, 200);
        requests++;
      }
    }
    memberIds[i] = m.id as string;
  }, SETUP_BUDGET_MS);
  if (made.errors > 0 || made.count < members) {
    throw new Error(`setup: ${made.count} of ${members} members in ${SETUP_BUDGET_MS / 1000} s, ${made.errors} failed: ${made.failures.join('; ')}`);
  }
  return { storeId, memberIds, requests };
}

async function checkin(gw: Gateway, memberId: string): Promise<void> {
  const body = await post(gw, '/checkins', { memberId, ...INSIDE, accuracyM: 10, at: new Date().toISOString() }, 202);
  const decisions = body.decisions as Array<{ outcome: string; reasonCode: string | null }>;
  const deliveryIds = body.deliveryIds as string[];
  if (decisions[0]?.outcome !== 'offer_queued' || deliveryIds.length !== 1) {
    throw new Error(`check-in did not queue one offer: ${JSON.stringify(decisions.map((d) => [d.outcome, d.reasonCode]))}`);
  }
}

async function deliveryCounts(gw: Gateway) {
  const [row] = await gw.deps.db.query<{ total: number; sent: number; settled: number }>(
    `SELECT count(*)::int AS total, (count(*) FILTER (WHERE status = 'sent'))::int AS sent,
            (count(*) FILTER (WHERE status NOT IN ('queued', 'sending')))::int AS settled FROM deliveries WHERE coupon_id IS NOT NULL`,
  );
  return row!;
}

async function waitForDeliveries(gw: Gateway, expected: number, firstAt: number, endAt: number): Promise<DeliveryStats> {
  const atEnd = await deliveryCounts(gw);
  let counts = atEnd;
  const deadline = performance.now() + DELIVERY_TIMEOUT_MS;
  while ((counts.total < expected || counts.settled < counts.total) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    counts = await deliveryCounts(gw);
  }
  const done = performance.now();
  if (counts.sent < expected) {
    throw new Error(`deliveries: ${counts.sent} of ${expected} sent within ${DELIVERY_TIMEOUT_MS} ms ` +
      `(${counts.total} rows, ${counts.total - counts.settled} still queued or being sent, ${counts.settled - counts.sent} failed or cancelled)`);
  }
  return {
    total: counts.total, sent: counts.sent, unsettled: counts.total - counts.settled, sentAtCheckinEnd: atEnd.sent,
    drainMs: done - endAt, sinceFirstMs: done - firstAt,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      setTimeout(() => reject(new Error(`${what}: no end within ${ms} ms`)), ms).unref();
    }),
  ]);
}

export async function benchBackend(backend: BackendName): Promise<BackendResult> {
  const t0 = performance.now();
  const progress = (what: string) => process.stderr.write(`  [${backend} +${((performance.now() - t0) / 1000).toFixed(1)} s] ${what}\n`);
  const iso = isolatedConfig(backend);
  let gw: Gateway | undefined;
  try {
    gw = await startGateway(iso.config);
    const g = gw;
    if (g.deps.sms.kind !== 'outbox') throw new Error(`SMS sender is ${g.deps.sms.kind}; the bench only sends to the outbox file`);
    const timeZone = daytimeZone();
    const kinds = `${g.deps.db.kind} + ${g.deps.queue.kind} queue + ${g.deps.sms.kind} SMS; members in ${timeZone}`;
    const members = WARMUP + CHECKINS;

    progress(`started (${kinds}); creating ${members} members with location and sms_marketing consent`);
    const setupStart = performance.now();
    const { storeId, memberIds, requests } = await setup(g, members, timeZone);
    const setupMs = performance.now() - setupStart;

    // Contact limits allow one offer per member per few hours, so every check-in is a different member.
    progress(`setup done; ${WARMUP} warm-up check-ins`);
    const warm = await runLoad(WARMUP, CONCURRENCY, (i) => checkin(g, memberIds[i]!), LOAD_BUDGET_MS);
    if (warm.errors > 0) throw new Error(`warm-up check-ins failed: ${warm.failures.join('; ')}`);
    progress(`${CHECKINS} check-ins at concurrency ${CONCURRENCY}`);
    const firstAt = performance.now();
    const checkins = await runLoad(CHECKINS, CONCURRENCY, (i) => checkin(g, memberIds[WARMUP + i]!), LOAD_BUDGET_MS);
    const endAt = performance.now();
    progress('waiting for every queued delivery to be sent');
    const deliveries = await waitForDeliveries(g, warm.count + checkins.count - checkins.errors, firstAt, endAt);

    const rows = await g.deps.db.query<{ member_id: string; code: string }>('SELECT member_id, code FROM coupons');
    const codeOf = new Map(rows.map((r) => [r.member_id, r.code]));
    const codes = memberIds.flatMap((id) => codeOf.get(id) ?? []);
    const redeem = (i: number) => post(g, '/redemptions', { code: codes[i]!, storeId, tillRef: `till-${i % 4}` }, 201).then(() => {});
    progress(`${WARMUP} warm-up + ${codes.length - WARMUP} redemptions`);
    const warmRedeem = await runLoad(WARMUP, CONCURRENCY, redeem, LOAD_BUDGET_MS);
    if (warmRedeem.errors > 0) throw new Error(`warm-up redemptions failed: ${warmRedeem.failures.join('; ')}`);
    const redemptions = await runLoad(codes.length - WARMUP, CONCURRENCY, (i) => redeem(WARMUP + i), LOAD_BUDGET_MS);
    progress('done; closing');
    return { backend, kinds, setupMs, setupRequests: requests, checkins, deliveries, redemptions };
  } finally {
    await withTimeout(gw?.close() ?? Promise.resolve(), CLOSE_TIMEOUT_MS, 'closing the gateway').catch((err) => progress(String(err)));
    await withTimeout(iso.cleanup(), CLOSE_TIMEOUT_MS, 'cleanup').catch((err) => progress(String(err)));
  }
}
