// Section 5: the beacon agent's pipeline (frames decoded and turned into presence per second) and the gateway's
// detection ingest: signed uploads of presence events, batched (100 per request) against one event per
// request, with EID resolution over 100,000 members holding identity keys.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { eidHex } from '../beacon-agent/eid.js';
import { passiveAdvertisement } from '../beacon-agent/member-app-sim.js';
import { Pipeline } from '../beacon-agent/pipeline.js';
import { PresenceTracker } from '../beacon-agent/presence.js';
import { loadPrivateKey, signRequest } from '../beacon-agent/signing.js';
import { SimulatedSource, VirtualClock } from '../beacon-agent/sources.js';
import type { Advertisement, PresenceEvent } from '../beacon-agent/types.js';
import { startGateway, type Gateway } from '../gateway/runtime.js';
import { adminHeaders } from './keys.js';
import { isolatedConfig, type BackendName } from '../tests/support/backends.js';
import { fmt, runLoad, table, type LoadStats } from './stats.js';

export const KEYED_MEMBERS = 100_000;
export const BATCH = 100;
export const BATCHED_EVENTS = 40_000;
export const SINGLE_EVENTS = 1_000;
export const CONCURRENCY = 4;
const PRESENT = 2_000;
const LOAD_BUDGET_MS = 60_000;
const K = 10;

export interface AgentFigures { ads: number; ms: number; perSecond: number; events: number; ignored: number }

/** The agent's pipeline on an hour of simulated air: 300 member phones, 60 other devices. */
export async function benchAgentPipeline(): Promise<AgentFigures> {
  const start = Date.parse('2026-06-03T15:00:00Z');
  const apps = Array.from({ length: 300 }, () => ({ identityKey: randomBytes(16), k: K }));
  const sim = new SimulatedSource({
    seed: 11, startMs: start, durationMs: 3_600_000, members: apps.length, nonMembers: 60, clock: new VirtualClock(start),
    zones: [{ id: 'floor', radiusM: 8 }], memberPayload: (m, at) => passiveAdvertisement(apps[m]!, at, 0),
  });
  const air: Advertisement[] = [];
  await sim.start((ad) => air.push(ad));
  await sim.finished();
  let events = 0;
  const pipeline = new Pipeline(new PresenceTracker({
    agentId: 'bench', zones: [{ id: 'floor', enterRssi: -78, exitRssi: -85, minDwellMs: 10_000, exitGraceMs: 20_000, dwellEveryMs: 60_000 }],
  }), (e) => { events += e.length; });
  const t0 = performance.now();
  let nextTick = start;
  for (const ad of air) {
    pipeline.advertisement(ad);
    if (ad.seenAt >= nextTick) pipeline.tick((nextTick += 1000));
  }
  const ms = performance.now() - t0;
  return { ads: air.length, ms, perSecond: (air.length / ms) * 1000, events, ignored: pipeline.stats.ignored };
}

export interface IngestFigures {
  backend: BackendName;
  seedMs: number;
  firstResolveMs: number;
  batched: LoadStats & { failures: string[] };
  single: LoadStats & { failures: string[] };
  batchedEventsPerSecond: number;
  singleEventsPerSecond: number;
  stored: number;
}

/** 100,000 members granting ble_detection, each with an identity key, written straight to the tables. */
async function seedMembers(gw: Gateway): Promise<Array<{ id: string; key: Buffer }>> {
  const keys = Array.from({ length: KEYED_MEMBERS }, () => randomBytes(16));
  const out: Array<{ id: string; key: Buffer }> = [];
  for (let from = 0; from < KEYED_MEMBERS; from += 10_000) {
    const slice = keys.slice(from, from + 10_000);
    const ids = (await gw.deps.db.query<{ id: string }>(
      `INSERT INTO members (time_zone) SELECT 'UTC' FROM generate_series(1, $1) RETURNING id`, [slice.length],
    )).map((r) => r.id);
    await gw.deps.db.query(
      `INSERT INTO consent_events (member_id, purpose, action, source, occurred_at) SELECT unnest($1::uuid[]), 'ble_detection', 'grant', 'app', now()`,
      [ids],
    );
    await gw.deps.db.query(
      `INSERT INTO member_identity_keys (member_id, identity_key, rotation_exponent) SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::int[])`,
      [ids, slice, ids.map(() => K)],
    );
    ids.forEach((id, i) => out.push({ id, key: slice[i]! }));
  }
  // A live database has settled statistics; without this, autovacuum analyses the new rows mid-load.
  await gw.deps.db.query('VACUUM (ANALYZE) members, consent_events, member_identity_keys');
  return out;
}

export async function benchIngest(backend: BackendName): Promise<IngestFigures> {
  const iso = isolatedConfig(backend);
  const gw = await startGateway(iso.config);
  try {
    const admin = await adminHeaders(gw);
    const post = async (url: string, payload: object) => (await gw.app.inject({ method: 'POST', url, payload, headers: admin })).json();
    const store = await post('/stores', { name: 'Bench', timeZone: 'UTC', location: { lat: 51.5, lon: -0.1 }, geofence: { radiusM: 100 } });
    const zone = await post(`/stores/${store.id}/zones`, { name: 'floor' });
    const reg = await post('/agents', { storeId: store.id, name: 'bench box' });
    const privateKey = loadPrivateKey(reg.privateKey);

    let t = performance.now();
    const members = await seedMembers(gw);
    const seedMs = performance.now() - t;
    const present = members.slice(0, PRESENT);
    const nowS = Math.floor(Date.now() / 1000);
    const eids = present.map((m) => eidHex(m.key, K, nowS));

    let seq = 0;
    const event = (i: number): PresenceEvent => ({
      id: `bench-event-${++seq}-${i}`, kind: i < PRESENT ? 'enter' : 'dwell', eid: eids[i % PRESENT]!, zoneId: zone.id,
      at: new Date().toISOString(), source: 'ble_passive', confidence: 0.8, rssi: -65,
    });
    let stamp = Date.now();
    // Requests are built and signed before they are timed: a box does that work, not the gateway.
    const build = (events: PresenceEvent[]) => {
      const body = JSON.stringify({ agentId: reg.agent.id, batchId: events[0]!.id, events });
      // Signatures are deterministic: each request gets its own millisecond, as a real box's would be.
      stamp = Math.max(stamp + 1, Date.now());
      const headers = { 'content-type': 'application/json', ...signRequest(privateKey, reg.agent.id, { method: 'POST', path: '/ingest/presence', timestamp: stamp, body }) };
      return { body, headers, size: events.length };
    };
    const send = async ({ body, headers, size }: ReturnType<typeof build>) => {
      const res = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body, headers });
      if (res.statusCode !== 202) throw new Error(`ingest: ${res.statusCode} ${res.body.slice(0, 200)}`);
      const r = res.json() as { accepted: number };
      if (r.accepted !== size) throw new Error(`ingest accepted ${r.accepted} of ${size}: ${res.body.slice(0, 200)}`);
    };

    // The first upload builds the resolver's table for 100,000 keys; timed apart from the load.
    t = performance.now();
    await send(build([event(0)]));
    const firstResolveMs = performance.now() - t;

    // Enters for everyone present first, then dwells: PRESENT + the rest, batched.
    const batchedRequests: Array<ReturnType<typeof build>> = [];
    for (let next = 1; next < BATCHED_EVENTS; next += BATCH) {
      batchedRequests.push(build(Array.from({ length: Math.min(BATCH, BATCHED_EVENTS - next) }, (_, i) => event(next + i))));
    }
    const singleRequests = Array.from({ length: SINGLE_EVENTS }, (_, i) => build([event(BATCHED_EVENTS + i)]));
    let b = 0;
    const batched = await runLoad(batchedRequests.length, CONCURRENCY, async () => send(batchedRequests[b++]!), LOAD_BUDGET_MS);
    let n = 0;
    const single = await runLoad(SINGLE_EVENTS, CONCURRENCY, async () => send(singleRequests[n++]!), LOAD_BUDGET_MS);
    const [stored] = await gw.deps.db.query<{ n: number }>('SELECT count(*)::int n FROM detections');
    return {
      backend, seedMs, firstResolveMs, batched, single, stored: stored!.n,
      batchedEventsPerSecond: ((batched.count - batched.errors) * BATCH / batched.wallMs) * 1000,
      singleEventsPerSecond: ((single.count - single.errors) / single.wallMs) * 1000,
    };
  } finally {
    await gw.close();
    await iso.cleanup();
  }
}

export function ingestTables(agent: AgentFigures, results: IngestFigures[]): string {
  const a = table(
    '5a. Beacon agent pipeline: an hour of simulated air (300 member phones, 60 other devices), decode + presence',
    ['advertisements', 'ms', 'frames/s', 'presence events', 'not member EIDs (dropped on the box)'],
    [[fmt(agent.ads, 0), fmt(agent.ms, 0), fmt(agent.perSecond, 0), fmt(agent.events, 0), fmt(agent.ignored, 0)]],
  );
  const b = table(
    `5b. POST /ingest/presence, signed, ${fmt(KEYED_MEMBERS, 0)} members with identity keys (EID resolution), ${fmt(PRESENT, 0)} present; ` +
      `concurrency ${CONCURRENCY}, via app.inject`,
    ['backend', 'seed ms', 'first resolve ms', 'mode', 'requests', 'errors', 'events/s', 'p50 ms', 'p99 ms', 'stored'],
    results.flatMap((r) => [
      [r.backend, fmt(r.seedMs, 0), fmt(r.firstResolveMs, 0), `${BATCH} per request`, String(r.batched.count), String(r.batched.errors), fmt(r.batchedEventsPerSecond, 0), fmt(r.batched.p50, 1), fmt(r.batched.p99, 1), String(r.stored)],
      [r.backend, '', '', '1 per request', String(r.single.count), String(r.single.errors), fmt(r.singleEventsPerSecond, 0), fmt(r.single.p50, 1), fmt(r.single.p99, 1), ''],
    ]),
  );
  const c = table(
    '5c. Batched / one per request, same run (target: >= 10,000 events/s batched and >= 5x)',
    ['backend', 'batched events/s', 'single events/s', 'ratio'],
    results.map((r) => [r.backend, fmt(r.batchedEventsPerSecond, 0), fmt(r.singleEventsPerSecond, 0), `${fmt(r.batchedEventsPerSecond / r.singleEventsPerSecond, 1)}x`]),
  );
  return [a, b, c].join('\n');
}
