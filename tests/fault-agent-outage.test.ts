// Fault: the gateway SIGKILLed while a beacon agent process keeps detecting (a recording replayed in real time),
// and started again on the same port once the agent has failed enough uploads to have backed off far. The agent
// reaches it through a TCP proxy that counts its connection attempts. Every detection the agent made is stored
// once, its outbox is empty at the end, its first upload lands within a few seconds of the gateway's return, and
// the zone offers those detections won are sent once or dropped stale.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { passiveAdvertisement, type MemberApp } from '../beacon-agent/member-app-sim.js';
import { Outbox } from '../beacon-agent/outbox.js';
import { realUrls } from './support/backends.js';
import { daytimeZone } from './support/daytime.js';
import { killAll, redisOfOwn, spawnAgent, spawnGateway, type GatewayProcess } from './support/fault-processes.js';
import { http, openFaultWorld, STORE_AT, tallyDeliveries, type FaultWorld } from './support/fault-world.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

const real = Boolean(realUrls.databaseUrl && realUrls.redisUrl);
/** EIDs rotate every 2^15 s: a rotation inside the recording (a new EID: an exit and an enter) is unlikely. */
const K = 15;
/** Connection attempts refused before the gateway comes back: an agent backing off exponentially waits 16-64 s by then. */
const FAILED_ATTEMPTS = 8;
/** "Within a few seconds of its return", with room for a busy machine. */
const CATCH_UP_BOUND_MS = 10_000;
const RECORDING_MS = 70_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** When each member stands by the box, ms from the recording's start: one stays throughout, the others pass. */
const STAYS = [[0, RECORDING_MS], [3000, 9000], [12_000, 18_000], [20_000, 26_000], [28_000, 34_000], [36_000, 42_000], [50_000, 56_000]] as const;

describe.runIf(real)('fault: the gateway down while an agent keeps detecting', () => {
  let world: FaultWorld | undefined;
  let proxy: TcpProxy | undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-fault-'));
  afterAll(async () => {
    await killAll();
    await proxy?.close();
    await world?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores every detection once and uploads within seconds of the gateway\'s return', { timeout: 240_000 }, async () => {
    world = await openFaultWorld();
    const redis = await redisOfOwn();
    await redis.start();
    const env = world.env({ REDIS_URL: redis.url, ROLE: 'all' });
    let gw: GatewayProcess = await spawnGateway('gateway', env);
    await gw.ready();
    proxy = await startTcpProxy({ host: '127.0.0.1', port: gw.port });
    const ok = async (url: string, body: object) => {
      const res = await http(`${gw.url}${url}`, { key: world!.adminKey, body });
      if (res.status !== 201) throw new Error(`POST ${url}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body as Record<string, never>;
    };
    const store = await ok('/stores', { name: 'Door St', timeZone: 'UTC', location: STORE_AT, geofence: { radiusM: 100 } });
    const zone = await ok(`/stores/${store.id}/zones`, { name: 'door' });
    await ok('/campaigns', { name: 'At the door', storeId: store.id, trigger: { kind: 'zone_enter', zoneIds: [zone.id] }, sources: ['ble_zone'], offer: { title: 'Door', message: 'Door offer.' } });
    const reg = await ok('/agents', { storeId: store.id, name: 'door box' }) as unknown as { agent: { id: string }; privateKey: string };

    // Members granting Bluetooth detection and marketing SMS, with their phones' identity keys.
    const keys = STAYS.map(() => randomBytes(16));
    const phones = STAYS.map((_, i) => `+3362${String(1_000_000 + i).padStart(7, '0')}`);
    const ids = (await world.db.query<{ id: string }>('INSERT INTO members (phone_e164, time_zone) SELECT unnest($1::text[]), $2 RETURNING id', [phones, daytimeZone()])).map((r) => r.id);
    await world.db.query(
      `INSERT INTO consent_events (member_id, purpose, action, source, occurred_at)
       SELECT m, p, 'grant', 'app', now() - interval '1 hour' FROM unnest($1::uuid[]) m, unnest(ARRAY['ble_detection', 'sms_marketing']) p`, [ids],
    );
    await world.db.query('INSERT INTO member_identity_keys (member_id, identity_key, rotation_exponent) SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::int[])', [ids, keys, ids.map(() => K)]);

    // The recording: each member's phone advertising its EID every second while by the box.
    const start = Date.now() + 1000;
    const lines: string[] = [];
    for (let t = 0; t <= RECORDING_MS; t += 1000) {
      STAYS.forEach(([from, to], i) => {
        if (t < from || t > to) return;
        const app: MemberApp = { identityKey: keys[i]!, k: K };
        const ad = passiveAdvertisement(app, start + t, -60);
        lines.push(JSON.stringify({ t: start + t, address: ad.address, rssi: ad.rssi, svc: ad.serviceData!.map((s) => ({ uuid: s.uuid, data: s.data.toString('hex') })) }));
      });
    }
    fs.writeFileSync(path.join(dir, 'day.jsonl'), lines.join('\n') + '\n');
    fs.writeFileSync(path.join(dir, 'agent.pem'), reg.privateKey);
    const dataDir = path.join(dir, 'data');
    fs.writeFileSync(path.join(dir, 'agent.json'), JSON.stringify({
      agentId: reg.agent.id, gatewayUrl: `http://127.0.0.1:${proxy.port}`, privateKeyFile: 'agent.pem', dataDir: 'data',
      zones: [{ id: zone.id, enterRssi: -70, exitRssi: -80, minDwellMs: 2000, exitGraceMs: 5000, dwellEveryMs: 10_000 }],
      source: 'replay', replayFile: 'day.jsonl', replaySpeed: 1, flushMs: 500,
    }));
    const agent = spawnAgent(path.join(dir, 'agent.json'));
    const stored = async () => (await world!.db.query<{ n: number }>('SELECT count(*)::int n FROM detections'))[0]!.n;

    // Detections flow; then the gateway dies.
    for (const until = Date.now() + 60_000; (await stored()) === 0; await sleep(200)) {
      if (Date.now() > until || !agent.alive()) throw new Error(`no detection stored:\n${agent.output().slice(-3000)}`);
    }
    await sleep(2000);
    await gw.kill('SIGKILL');
    const killedAt = Date.now();
    const before = await stored();
    const acceptedAtKill = proxy.accepted;
    // The agent keeps detecting and keeps failing to upload; the gateway returns once it has failed often.
    while (proxy.accepted - acceptedAtKill < FAILED_ATTEMPTS && Date.now() - killedAt < 75_000) await sleep(100);
    const attemptsWhileDown = proxy.accepted - acceptedAtKill;
    gw = await spawnGateway('gateway again', env, gw.port);
    await gw.ready();
    const readyAt = Date.now();
    let caughtUpAt = 0;
    for (const until = readyAt + 70_000; Date.now() < until; await sleep(100)) {
      if ((await stored()) > before) {
        caughtUpAt = Date.now();
        break;
      }
    }
    const catchUpMs = caughtUpAt ? caughtUpAt - readyAt : null;

    // The recording plays out; then the agent stops (SIGTERM flushes) and its outbox must be empty.
    await sleep(Math.max(0, start + RECORDING_MS + 3000 - Date.now()));
    for (const until = Date.now() + 20_000; Date.now() < until; await sleep(250)) {
      const enters = await world.db.query<{ n: number }>(`SELECT count(DISTINCT member_id)::int n FROM detections WHERE kind = 'enter'`);
      if (enters[0]!.n === STAYS.length) break;
    }
    await agent.kill('SIGTERM');
    const outbox = await Outbox.open(dataDir);
    const pending = outbox.pending;
    await outbox.close();

    const rows = await world.db.query<{ member_id: string; kind: string; event_id: string }>('SELECT member_id, kind, event_id FROM detections');
    const enters = new Map<string, number>();
    for (const r of rows.filter((r) => r.kind === 'enter')) enters.set(r.member_id, (enters.get(r.member_id) ?? 0) + 1);
    const visits = new Map((await world.db.query<{ member_id: string; n: number }>('SELECT member_id, count(*)::int n FROM visits GROUP BY member_id')).map((v) => [v.member_id, v.n]));
    const deliveries = await world.db.query<{ id: string; at: Date }>('SELECT d.id, c.occurred_at AS at FROM deliveries d JOIN decisions c ON c.id = d.decision_id');
    const tally = await tallyDeliveries(world, new Map(deliveries.map((d) => [d.id, d.at.getTime()])), 30_000);
    console.log(`[fault] gateway SIGKILLed while an agent detects: down ${readyAt - killedAt} ms (restarted after ${attemptsWhileDown} refused connections), `
      + `first upload ${catchUpMs ?? 'never (70 s)'} ms after the gateway was ready; ${rows.length} detections stored (${before} before the kill), `
      + `${new Set(rows.map((r) => r.event_id)).size} distinct; enters ${[...enters.values()].join(',')} and visits ${[...visits.values()].join(',')} for ${STAYS.length} members; agent outbox left ${pending}; `
      + `${tally.sentOnce}/${tally.acknowledged} zone offers sent once, ${tally.stale} stale, ${tally.lost.length} lost, ${tally.duplicated.length} duplicated`);

    if (pending > 0) console.log(`[fault] the agent said:\n${agent.output().slice(-3000)}`);
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(rows.length);
    // One stay each, one visit each (an EID rotating mid-stay would add an enter, fused into the same visit).
    expect(ids.every((id) => (enters.get(id) ?? 0) >= 1)).toBe(true);
    expect(ids.map((id) => visits.get(id) ?? 0)).toEqual(ids.map(() => 1));
    expect(pending).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'rejected.jsonl'))).toBe(false);
    expect(tally.acknowledged).toBe(STAYS.length);
    expect(tally.lost).toEqual([]);
    expect(tally.duplicated).toEqual([]);
    expect(tally.unacknowledged).toEqual([]);
    expect(catchUpMs).not.toBeNull();
    expect(catchUpMs!).toBeLessThan(CATCH_UP_BOUND_MS);
  });
});
