// A simulated store hour, from radio frames to visits to offers: member phones broadcasting real Eddystone-EIDs
// (some of them members the gateway knows, with ble_detection, some not), other devices around, RSSI noise;
// the box's pipeline, durable outbox and signed uploads through a gateway outage; the gateway's visits and
// zone offers. Then the agent process itself, replaying a recording against a listening gateway.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../beacon-agent/agent.js';
import { parseAgentConfig } from '../beacon-agent/config.js';
import { decodeOffers } from '../beacon-agent/gatt.js';
import { passiveAdvertisement, type MemberApp } from '../beacon-agent/member-app-sim.js';
import { openOffer } from '../beacon-agent/offer-seal.js';
import { Outbox } from '../beacon-agent/outbox.js';
import { Pipeline } from '../beacon-agent/pipeline.js';
import { PresenceTracker } from '../beacon-agent/presence.js';
import { loadPrivateKey } from '../beacon-agent/signing.js';
import { SimulatedSource, VirtualClock } from '../beacon-agent/sources.js';
import type { Advertisement, PresenceEvent } from '../beacon-agent/types.js';
import { Uploader } from '../beacon-agent/uploader.js';
import { bleIdentity, startGateway, type Gateway } from './support/gateway.js';
import { eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { daytimeZone } from './support/daytime.js';

const START = Date.parse('2026-06-03T15:00:00Z'); // 11:00 in New York, a Wednesday
const HOUR = 3_600_000;
const ZONE_THRESHOLDS = { enterRssi: -78, exitRssi: -85, minDwellMs: 10_000, exitGraceMs: 20_000, dwellEveryMs: 60_000 };

describe('a store hour on the embedded backends', () => {
  let iso: Isolated;
  let gw: Gateway;
  let now = START;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-e2e-'));

  const ok = async (method: 'GET' | 'POST', url: string, payload?: object) => {
    const res = await gw.app.inject({ method, url, payload });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res.json();
  };

  beforeAll(async () => {
    iso = isolatedConfig('embedded');
    gw = await startGateway(iso.config, { now: () => new Date(now) });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('turns radio frames into visits and offers for consenting members only, losing nothing in an outage', async () => {
    const store = await ok('POST', '/stores', { name: 'Hour St', timeZone: 'America/New_York', location: { lat: 40.7, lon: -73.9 }, geofence: { radiusM: 100 } });
    const zone = await ok('POST', `/stores/${store.id}/zones`, { name: 'floor' });
    await ok('POST', '/campaigns', {
      name: 'Welcome in', storeId: store.id, trigger: { kind: 'zone_enter', zoneIds: [zone.id] }, sources: ['ble_zone'],
      offer: { title: 'Welcome', message: 'Welcome: code {code}' },
    });
    const reg = await ok('POST', '/agents', { storeId: store.id, name: 'floor box' });

    // 40 phones with the app: the first 25 belong to members granting ble_detection (and SMS); 15 are strangers'.
    const apps: MemberApp[] = [];
    const memberIds: string[] = [];
    for (let i = 0; i < 40; i++) {
      if (i < 25) {
        const m = await ok('POST', '/members', { phone: `+1415555${String(6000 + i)}`, timeZone: 'America/New_York' });
        await grantConsents(gw, m.id, m.phone, ['ble_detection', 'sms_marketing']);
        const key = (await bleIdentity(gw, m.id)).body;
        apps.push({ identityKey: Buffer.from(key.identityKey, 'base64'), k: key.rotationExponent });
        memberIds.push(m.id);
      } else {
        apps.push({ identityKey: randomBytes(16), k: 10 });
      }
    }

    // The hour, generated in virtual time, then played in order with the gateway's clock following it.
    const sim = new SimulatedSource({
      seed: 7, startMs: START, durationMs: HOUR, members: apps.length, nonMembers: 30, visitShare: 0.6,
      zones: [{ id: zone.id, radiusM: 8 }], clock: new VirtualClock(START),
      memberPayload: (member, atMs) => passiveAdvertisement(apps[member]!, atMs, 0),
    });
    const air: Advertisement[] = [];
    await sim.start((ad) => air.push(ad));
    await sim.finished();

    const outbox = await Outbox.open(path.join(dir, 'outbox'));
    const emitted: PresenceEvent[] = [];
    const pipeline = new Pipeline(new PresenceTracker({ agentId: reg.agent.id, zones: [{ id: zone.id, ...ZONE_THRESHOLDS }] }), (events) => {
      emitted.push(...events);
    });
    // The gateway is down for ten minutes of the hour: uploads fail, the outbox holds everything.
    const down = (t: number) => t >= START + 20 * 60_000 && t < START + 30 * 60_000;
    let calls = 0;
    const fetchThroughInject: typeof fetch = async (input, init) => {
      calls++;
      if (down(now)) throw new TypeError('fetch failed: connect ECONNREFUSED');
      const url = new URL(String(input));
      const res = await gw.app.inject({
        method: (init?.method ?? 'GET') as 'GET' | 'POST', url: url.pathname, payload: init?.body as string,
        headers: Object.fromEntries(new Headers(init?.headers).entries()),
      });
      return new Response(res.body, { status: res.statusCode, headers: { 'content-type': String(res.headers['content-type'] ?? 'application/json') } });
    };
    const uploader = new Uploader({
      outbox, gatewayUrl: 'http://127.0.0.1:1', agentId: reg.agent.id, privateKey: loadPrivateKey(reg.privateKey), batchSize: 100,
      fetch: fetchThroughInject, clock: { now: () => now, sleep: async () => {} }, log: () => {},
    });

    let nextTick = START;
    let nextFlush = START;
    const flush = async () => {
      for (let i = 0; i < 20 && outbox.pending > 0; i++) {
        const r = await uploader.flushOnce();
        if (r.outcome !== 'sent' && r.outcome !== 'split') break;
      }
    };
    for (const ad of air) {
      now = ad.seenAt;
      pipeline.advertisement(ad);
      while (nextTick <= now) pipeline.tick(nextTick += 1000);
      if (emitted.length > 0) await outbox.append(emitted.splice(0));
      if (now >= nextFlush) {
        nextFlush = now + 5000;
        await flush();
      }
    }
    now = START + HOUR + 5 * 60_000;
    pipeline.tick(now);
    await outbox.append(emitted.splice(0));
    await flush();
    expect(outbox.pending).toBe(0);
    await outbox.close();
    expect(calls).toBeGreaterThan(0);

    // Nothing about non-member devices left the box; every uploaded EID came from an app's key.
    expect(pipeline.stats.ignored).toBeGreaterThan(0);
    const uploaded = pipeline.stats.events;
    const rows = await gw.deps.db.query<{ event_id: string; member_id: string; kind: string }>('SELECT event_id, member_id, kind FROM detections');
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(rows.length);
    expect(rows.every((r) => memberIds.includes(r.member_id))).toBe(true);

    // Ground truth: who really stood in the zone. Every registered member who did is one visit with one offer.
    const truth = sim.groundTruth();
    const visited = new Set(truth.filter((t) => t.member < 25 && t.toMs - t.fromMs > 60_000).map((t) => memberIds[t.member]!));
    const visits = await gw.deps.db.query<{ member_id: string; n: number }>('SELECT member_id, count(*)::int n FROM visits GROUP BY member_id');
    const deliveries = await gw.deps.db.query<{ member_id: string }>('SELECT member_id FROM deliveries');
    for (const m of visited) expect(visits.find((v) => v.member_id === m)?.n, `member ${m} stood in the zone`).toBe(1);
    expect(visits.every((v) => v.n === 1)).toBe(true);
    expect(visited.size).toBeGreaterThan(3);
    // Offers decided during the outage were decided late (stale) or not at all; the others went out once each.
    expect(new Set(deliveries.map((d) => d.member_id)).size).toBe(deliveries.length);
    expect(deliveries.length).toBeGreaterThan(0);
    const strangers = rows.filter((r) => !memberIds.includes(r.member_id));
    expect(strangers).toEqual([]);
    // Every event the box emitted for a registered member is stored exactly once; the strangers' were discarded.
    const drops = (await ok('GET', '/admin/drops')).drops as Array<{ kind: string; count: number }>;
    const unresolved = drops.filter((d) => d.kind === 'detection_unresolved').reduce((a, d) => a + d.count, 0);
    expect(rows.length + unresolved).toBe(uploaded);
  });
});

describe('the agent process', () => {
  it('refuses a bad configuration, naming the field', () => {
    const good = {
      agentId: '6f1d2a8e-6c1b-4a57-9a3e-2f4f7f0c1d22', gatewayUrl: 'http://127.0.0.1:3000', privateKeyFile: 'agent.pem', dataDir: 'data',
      zones: [{ id: '0b7d4a52-8f3e-4c1a-9b7e-5d2c1e0f9a83', ...ZONE_THRESHOLDS }],
    };
    expect(parseAgentConfig(good)).toMatchObject({ source: 'radio', batchSize: 100, rssiOffset: 0 });
    const bad: Array<[object, RegExp]> = [
      [{ ...good, agentId: 'box-1' }, /agentId must match format "uuid"/],
      [{ ...good, zones: [] }, /zones must NOT have fewer than 1 items/],
      [{ ...good, zones: [{ ...good.zones[0], exitRssi: -70 }] }, /zones\/0\/exitRssi must be below enterRssi/],
      [{ ...good, colour: 'red' }, /colour is not a known setting/],
      [{ ...good, source: 'replay' }, /replayFile is required/],
      [{ ...good, gatewayUrl: 'ftp://x' }, /gatewayUrl/],
      [(({ dataDir: _d, ...rest }) => rest)(good), /dataDir is required/],
    ];
    for (const [config, message] of bad) expect(() => parseAgentConfig(config)).toThrow(message);
  });

  it('replays a recording through the outbox to a listening gateway, and picks up sealed offers', async () => {
    const iso = isolatedConfig('embedded');
    const gw = await startGateway(iso.config);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-proc-'));
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
    try {
      const address = await gw.app.listen({ port: 0, host: '127.0.0.1' });
      const ok = async (method: 'GET' | 'POST', url: string, payload?: object) => {
        const res = await gw.app.inject({ method, url, payload });
        if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
        return res.json();
      };
      const store = await ok('POST', '/stores', { name: 'Replay St', timeZone: 'UTC', location: { lat: 51.5, lon: -0.1 }, geofence: { radiusM: 100 } });
      const zone = await ok('POST', `/stores/${store.id}/zones`, { name: 'door' });
      const reg = await ok('POST', '/agents', { storeId: store.id, name: 'door box' });
      await ok('POST', '/campaigns', {
        name: 'At the door', storeId: store.id, trigger: { kind: 'zone_enter', zoneIds: [zone.id] }, sources: ['ble_zone'],
        offer: { title: 'Door', message: 'Door: code {code}' },
      });
      // The member lives where it is daytime now, so quiet hours do not hold the offer back.
      const timeZone = daytimeZone();
      const m = await ok('POST', '/members', { phone: '+14155557001', timeZone });
      await grantConsents(gw, m.id, m.phone, ['ble_detection', 'sms_marketing']);
      const key = (await bleIdentity(gw, m.id)).body;
      const app = { identityKey: Buffer.from(key.identityKey, 'base64'), k: key.rotationExponent };

      // Two minutes of the member standing by the box, ending now, plus a pair of headphones: as JSON lines.
      const end = Date.now();
      const lines: string[] = [];
      for (let t = end - 120_000; t <= end; t += 1000) {
        const ad = passiveAdvertisement(app, t, -60 + ((t / 1000) % 3));
        lines.push(JSON.stringify({ t, address: ad.address, rssi: ad.rssi, svc: ad.serviceData!.map((s) => ({ uuid: s.uuid, data: s.data.toString('hex') })) }));
        lines.push(JSON.stringify({ t, address: 'aa:bb:cc:dd:ee:ff', rssi: -55, mfg: '4c0010050b1c0a3b2c' }));
      }
      fs.writeFileSync(path.join(dir, 'day.jsonl'), lines.join('\n') + '\n');
      fs.writeFileSync(path.join(dir, 'agent.pem'), reg.privateKey);
      const config = parseAgentConfig({
        agentId: reg.agent.id, gatewayUrl: address, privateKeyFile: path.join(dir, 'agent.pem'), dataDir: path.join(dir, 'data'),
        zones: [{ id: zone.id, enterRssi: -70, exitRssi: -80, minDwellMs: 5000, exitGraceMs: 10_000, dwellEveryMs: 30_000 }],
        source: 'replay', replayFile: path.join(dir, 'day.jsonl'), replaySpeed: 'max', flushMs: 100,
      });
      const logs: string[] = [];
      agent = await startAgent(config, { log: (level, message) => logs.push(`${level} ${message}`) });
      const deadline = Date.now() + 15_000;
      let stored = 0;
      while (Date.now() < deadline) {
        stored = (await gw.deps.db.query<{ n: number }>('SELECT count(*)::int n FROM detections WHERE member_id = $1', [m.id]))[0]!.n;
        if (stored > 0 && agent.pending === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(agent.pipeline.stats.frames.byKind.eddystone_eid).toBe(121);
      expect(agent.pipeline.stats.ignored).toBe(121); // the headphones, never uploaded
      expect(agent.pending).toBe(0);
      expect(stored).toBeGreaterThanOrEqual(2); // the enter and its dwell events
      const kinds = await gw.deps.db.query<{ kind: string }>('SELECT kind FROM detections WHERE member_id = $1 ORDER BY occurred_at', [m.id]);
      expect(kinds[0]!.kind).toBe('enter');
      // The zone entry won an offer; the box fetches it sealed, and only the member's key opens it.
      const [coupon] = await gw.deps.db.query<{ code: string }>('SELECT code FROM coupons WHERE member_id = $1', [m.id]);
      expect(coupon).toBeDefined();
      // Handed over only once it went out by SMS.
      await eventually(async () => ((await gw.deps.db.query(`SELECT 1 FROM deliveries WHERE member_id = $1 AND status = 'sent'`, [m.id])).length ? true : undefined));
      await agent.pollOffers();
      expect(logs.filter((l) => /offers poll/.test(l))).toEqual([]);
      const eidNow = passiveAdvertisement(app, Date.now(), 0).serviceData![0]!.data.toString('hex', 2, 10);
      const blobs = decodeOffers(agent.handover.answer(eidNow, Date.now()))!;
      expect(blobs).toHaveLength(1);
      expect(openOffer(app.identityKey, blobs[0]!)).toMatchObject({ couponCode: coupon!.code, title: 'Door' });
      expect(decodeOffers(agent.handover.answer(randomBytes(8).toString('hex'), Date.now()))).toEqual([]);
    } finally {
      await agent?.stop();
      await gw.close();
      await iso.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
