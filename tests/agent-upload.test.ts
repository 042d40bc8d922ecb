// The agent's durable upload path: the on-disk outbox (reopen, torn lines, rotation, the ack pointer), the
// uploader against a stand-in gateway that checks signatures and fails on command, and the whole path against
// the real gateway, closed and reopened on the same data directory in the middle of an upload.
import { randomUUID, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eidHex } from '../beacon-agent/eid.js';
import { Outbox } from '../beacon-agent/outbox.js';
import {
  HEADER_AGENT, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_SKEW_MS, loadPrivateKey, loadPublicKey, newAgentKeyPair, verifySignature,
} from '../beacon-agent/signing.js';
import type { IngestBatch, PresenceEvent } from '../beacon-agent/types.js';
import { Uploader, backoffDelay, batchIdOf, systemClock, type FlushResult, type LogLevel, type UploaderOptions } from '../beacon-agent/uploader.js';
import { loadConfig } from '../gateway/config.js';
import { bleIdentity, startGateway, type Gateway } from './support/gateway.js';
import { isolatedConfig } from './support/backends.js';
import { grantConsents } from './support/consent.js';

const ZONE = '7f1c2a52-8a7e-4f0e-9d55-3c1f5b0e2a11';
const AGENT = '0b5e3f3c-6a3e-4d1e-8f4e-2f1a7c9d8e01';
let seq = 0;

const event = (over: Partial<PresenceEvent> = {}): PresenceEvent => ({
  id: `evt-${String(++seq).padStart(6, '0')}`, kind: 'dwell', eid: '0123456789abcdef', zoneId: ZONE,
  at: new Date(Date.now() - 60_000).toISOString(), source: 'ble_passive', confidence: 0.9, rssi: -61, dwellMs: 60_000, ...over,
});
const events = (n: number) => Array.from({ length: n }, () => event());
const ids = (list: PresenceEvent[]) => list.map((e) => e.id);
const segmentFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.startsWith('seg-')).sort();

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('outbox', () => {
  it('gives back exactly the unacknowledged events, in order, after a reopen', async () => {
    const all = events(12);
    let box = await Outbox.open(dir);
    await box.append(all.slice(0, 5));
    await Promise.all([box.append(all.slice(5, 9)), box.append(all.slice(9))]); // appends queue, never interleave
    expect(box.pending).toBe(12);
    await box.close();

    box = await Outbox.open(dir);
    expect(box.pending).toBe(12);
    expect(await box.peek(100)).toEqual(all);
    expect(ids(await box.peek(3))).toEqual(ids(all.slice(0, 3)));
    await box.ack(4);
    await expect(box.ack(9)).rejects.toThrow(/cannot acknowledge 9 events, 8 pending/);
    await box.close();

    box = await Outbox.open(dir);
    expect(box.pending).toBe(8);
    expect(await box.peek(100)).toEqual(all.slice(4));
    await box.ack(3); // without a peek first
    expect(ids(await box.peek(1))).toEqual([all[7]!.id]);
    await box.close();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'ack.json'), 'utf8'))).toMatchObject({ segment: 1 });
    const reopened = await Outbox.open(dir);
    expect(reopened.pending).toBe(5);
    await reopened.close();
  });

  it('cuts off a line torn by a crash mid-write, skips a corrupt one, and appends cleanly after', async () => {
    const all = events(5);
    let box = await Outbox.open(dir);
    await box.append(all.slice(0, 2));
    await box.close();
    const seg = path.join(dir, segmentFiles(dir)[0]!);
    fs.appendFileSync(seg, '\u0000\u0000garbage\n'); // a complete line that is no event (a disk fault)
    box = await Outbox.open(dir);
    await box.append(all.slice(2, 4));
    await box.close();
    fs.appendFileSync(seg, JSON.stringify(all[4]).slice(0, 40)); // the crash: no newline

    box = await Outbox.open(dir);
    expect(box.recovery).toEqual({ tornLines: 1, corruptLines: 1, pointerLost: false });
    expect(box.pending).toBe(4);
    expect(fs.readFileSync(seg, 'utf8').endsWith('\n')).toBe(true);
    await box.append([all[4]!]); // would have glued itself to the torn line
    await box.close();

    box = await Outbox.open(dir);
    expect(box.recovery.tornLines).toBe(0);
    expect(await box.peek(10)).toEqual(all);
    await box.ack(5);
    expect(box.pending).toBe(0);
    await box.close();
  });

  it('rotates segments at the size limit and deletes the ones wholly acknowledged', async () => {
    const all = events(20);
    const lineBytes = Buffer.byteLength(`${JSON.stringify(all[0])}\n`);
    let box = await Outbox.open(dir, { segmentBytes: lineBytes * 4 });
    for (let i = 0; i < 20; i += 2) await box.append(all.slice(i, i + 2));
    expect(segmentFiles(dir)).toEqual(['seg-000001.jsonl', 'seg-000002.jsonl', 'seg-000003.jsonl', 'seg-000004.jsonl', 'seg-000005.jsonl']);
    expect(box.bytesOnDisk).toBe(20 * lineBytes);

    await box.peek(6);
    await box.ack(6);
    expect(segmentFiles(dir)).toEqual(['seg-000002.jsonl', 'seg-000003.jsonl', 'seg-000004.jsonl', 'seg-000005.jsonl']);
    expect(box.bytesOnDisk).toBe(16 * lineBytes);
    await box.close();

    box = await Outbox.open(dir, { segmentBytes: lineBytes * 4 });
    expect(box.pending).toBe(14);
    expect(await box.peek(100)).toEqual(all.slice(6));
    await box.ack(14);
    expect(segmentFiles(dir)).toEqual(['seg-000005.jsonl']); // the one being written stays
    await box.append(events(3)); // rotates: the acknowledged tail goes
    expect(segmentFiles(dir)).toEqual(['seg-000006.jsonl']);
    expect(box.bytesOnDisk).toBe(3 * lineBytes);
    await box.close();

    // A crash after the pointer moved but before a segment was deleted: reopening finishes the job.
    fs.writeFileSync(path.join(dir, 'seg-000003.jsonl'), all.map((e) => `${JSON.stringify(e)}\n`).join(''));
    box = await Outbox.open(dir);
    expect(box.pending).toBe(3);
    expect(segmentFiles(dir)).toEqual(['seg-000006.jsonl']);
    await box.close();
  });
});

// ---- A stand-in gateway: checks signatures like the real one, and fails on command ----------------------

type Fault = 'drop' | 'hang' | { status: number; code: string; details?: Record<string, unknown>; headers?: Record<string, string> };

interface Seen { batchId: string; ids: string[]; timestamp: number; signature: string; answer: number | 'dropped' | 'hung' }

class StandIn {
  readonly requests: Seen[] = [];
  /** Times each event id was in a batch the stand-in stored. */
  readonly stored = new Map<string, number>();
  readonly faults: Fault[] = [];
  readonly badIds = new Set<string>();
  /** Ids the stand-in accepts the batch for but rejects inside it (as EVENT_IN_FUTURE). */
  readonly rejectInside = new Set<string>();
  skewMs = 0;
  revoked = false;
  port = 0;
  readonly #publicKey: KeyObject;
  readonly #signatures = new Set<string>();
  #server: http.Server | null = null;

  constructor(publicKey: string) {
    this.#publicKey = loadPublicKey(publicKey);
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.#handle(req, res, Buffer.concat(chunks)));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Stops listening: the port refuses connections until start() again. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const reply = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      seen.answer = status;
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(payload));
    };
    const fail = (status: number, code: string, details?: Record<string, unknown>) => reply(status, { error: { code, message: code.toLowerCase(), details } });
    const timestamp = Number(req.headers[HEADER_TIMESTAMP]);
    const signature = String(req.headers[HEADER_SIGNATURE]);
    const batch = JSON.parse(body.toString('utf8')) as IngestBatch;
    const seen: Seen = { batchId: batch.batchId, ids: ids(batch.events), timestamp, signature, answer: 0 };
    this.requests.push(seen);

    const fault = this.faults.shift();
    if (fault === 'hang') return void (seen.answer = 'hung');
    if (typeof fault === 'object') return reply(fault.status, { error: { code: fault.code, message: 'on command', details: fault.details } }, fault.headers);
    if (req.headers[HEADER_AGENT] !== AGENT) return fail(401, 'AGENT_UNKNOWN');
    if (this.revoked) return fail(403, 'AGENT_REVOKED');
    const now = Date.now() + this.skewMs;
    if (Math.abs(now - timestamp) > MAX_SKEW_MS) return fail(401, 'REQUEST_STALE', { gatewayTime: new Date(now).toISOString() });
    if (!verifySignature(this.#publicKey, { method: req.method!, path: req.url!, timestamp, body }, signature)) return fail(403, 'SIGNATURE_INVALID');
    if (this.#signatures.has(signature)) return fail(409, 'REQUEST_REPLAYED');
    this.#signatures.add(signature);
    const bad = batch.events.findIndex((e) => this.badIds.has(e.id));
    if (bad >= 0) return fail(400, 'VALIDATION_FAILED', { issues: [{ field: `body/events/${bad}/rssi`, problem: 'must be <= 20' }] });

    for (const id of seen.ids) this.stored.set(id, (this.stored.get(id) ?? 0) + 1);
    const rejected = batch.events.flatMap((e, index) => (this.rejectInside.has(e.id) ? [{ index, code: 'EVENT_IN_FUTURE' }] : []));
    if (fault === 'drop') {
      seen.answer = 'dropped'; // stored, but the answer never reaches the box
      return void res.socket?.destroy();
    }
    reply(202, { received: seen.ids.length, accepted: seen.ids.length - rejected.length, duplicates: 0, discarded: 0, rejected, decisions: [], deliveryIds: [] });
  }
}

describe('uploader against a stand-in gateway', () => {
  const keys = newAgentKeyPair();
  let gw: StandIn;
  let box: Outbox;
  let logs: Array<{ level: LogLevel; message: string }>;
  const sleeps: number[] = [];

  const uploader = (over: Partial<UploaderOptions> = {}) => new Uploader({
    outbox: box, gatewayUrl: gw.url, agentId: AGENT, privateKey: loadPrivateKey(keys.privateKeyPem),
    clock: { now: () => Date.now(), sleep: async (ms) => void sleeps.push(ms) }, random: () => 1,
    log: (level, message) => logs.push({ level, message }), ...over,
  });
  /** Flushes until idle; fails the test if that takes more than `max` attempts. */
  const drain = async (u: Uploader, max = 100) => {
    const outcomes: FlushResult[] = [];
    for (let i = 0; i < max; i++) {
      const r = await u.flushOnce();
      if (r.outcome === 'idle') return outcomes;
      outcomes.push(r);
    }
    throw new Error(`not drained after ${max} flushes`);
  };

  beforeEach(async () => {
    gw = new StandIn(keys.publicKey);
    await gw.start();
    box = await Outbox.open(dir);
    logs = [];
    sleeps.length = 0;
  });
  afterEach(async () => {
    await gw.stop();
    await box.close();
  });

  it('sends the oldest batches, signed over their exact bytes, and acknowledges them on 202', async () => {
    const all = events(250);
    await box.append(all);
    const u = uploader();
    expect((await drain(u)).map((r) => r.outcome)).toEqual(['sent', 'sent', 'sent']);
    expect(gw.requests.map((r) => [r.ids.length, r.answer])).toEqual([[100, 202], [100, 202], [50, 202]]);
    expect(gw.requests[0]!.batchId).toBe(batchIdOf(all.slice(0, 100)));
    expect([...gw.stored.keys()]).toEqual(ids(all));
    expect(box.pending).toBe(0);
    expect(u.stats).toMatchObject({ sentBatches: 3, eventsAcked: 250, retries: 0, lastError: null });
  });

  it('backs off exponentially with jitter, up to the cap', () => {
    const full = [1, 2, 3, 4, 5, 8, 20].map((n) => backoffDelay(n, 500, 60_000, () => 1));
    expect(full).toEqual([500, 1000, 2000, 4000, 8000, 60_000, 60_000]);
    expect(backoffDelay(3, 500, 60_000, () => 0)).toBe(1000); // the jitter keeps at least half
  });

  it('loses nothing while the gateway is down and resends nothing acknowledged once it is back', async () => {
    await box.append(events(300));
    const u = uploader();
    expect((await u.flushOnce()).outcome).toBe('sent');

    await gw.stop();
    const down = [await u.flushOnce(), await u.flushOnce(), await u.flushOnce()];
    expect(down.map((r) => [r.outcome, r.delayMs])).toEqual([['retry', 500], ['retry', 1000], ['retry', 2000]]);
    expect(u.stats.lastError).toMatchObject({ status: null, code: 'NETWORK' });

    await gw.start(); // same port
    gw.faults.push({ status: 503, code: 'NOT_READY' }, { status: 429, code: 'RATE_LIMITED', headers: { 'retry-after': '30' } }, 'drop');
    expect((await u.flushOnce()).delayMs).toBe(4000);
    expect((await u.flushOnce()).delayMs).toBe(30_000); // Retry-After beats the 8 s backoff
    expect(await u.flushOnce()).toEqual({ outcome: 'retry', delayMs: 16_000 }); // stored, answer lost
    expect(box.pending).toBe(200);
    await drain(u);
    expect(box.pending).toBe(0);

    // The batch whose answer was lost went again under the same id; no id answered with 202 ever went again.
    const dropped = gw.requests.findIndex((r) => r.answer === 'dropped');
    expect(gw.requests[dropped + 1]).toMatchObject({ batchId: gw.requests[dropped]!.batchId, ids: gw.requests[dropped]!.ids, answer: 202 });
    const acked = new Set<string>();
    for (const r of gw.requests) {
      expect(r.ids.filter((id) => acked.has(id))).toEqual([]);
      if (r.answer === 202) r.ids.forEach((id) => acked.add(id));
    }
    expect(acked.size).toBe(300);
    expect([...gw.stored.values()].filter((n) => n === 2)).toHaveLength(100); // the gateway's dedupe has to catch these
  });

  it('gives up on a gateway that does not answer in time and tries again', async () => {
    await box.append(events(5));
    const u = uploader({ timeoutMs: 200 });
    gw.faults.push('hang');
    const started = Date.now();
    expect(await u.flushOnce()).toEqual({ outcome: 'retry', delayMs: 500 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(u.stats.lastError?.code).toBe('TIMEOUT');
    expect((await u.flushOnce()).outcome).toBe('sent');
  });

  it('isolates refused events into rejected.jsonl and sends every other one', async () => {
    const all = events(100);
    gw.badIds.add(all[37]!.id).add(all[80]!.id);
    await box.append(all);
    const u = uploader();
    const outcomes = await drain(u);
    expect(outcomes.filter((r) => r.outcome === 'dead_lettered')).toHaveLength(2);
    expect(outcomes.length).toBeLessThan(40);
    expect(outcomes.every((r) => r.delayMs === 0)).toBe(true);
    expect([...gw.stored.keys()].sort()).toEqual(ids(all).filter((id) => !gw.badIds.has(id)).sort());
    expect([...gw.stored.values()].every((n) => n === 1)).toBe(true);

    const dead = fs.readFileSync(path.join(dir, 'rejected.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(dead.map((d) => [d.event.id, d.status, d.code])).toEqual([[all[37]!.id, 400, 'VALIDATION_FAILED'], [all[80]!.id, 400, 'VALIDATION_FAILED']]);
    expect(dead[0].event).toEqual(all[37]);
    expect(u.stats).toMatchObject({ deadLettered: 2, eventsAcked: 98 });

    // Full batches again once the bad ones are out.
    await box.append(events(150));
    await drain(u);
    expect(gw.requests.slice(-2).map((r) => r.ids.length)).toEqual([100, 50]);
  });

  it('logs and dead-letters the events a 202 rejects inside the batch', async () => {
    const all = events(3);
    gw.rejectInside.add(all[1]!.id);
    await box.append(all);
    await drain(uploader());
    expect(box.pending).toBe(0);
    expect(logs.some((l) => l.level === 'warn' && /rejected an event/.test(l.message))).toBe(true);
    const dead = JSON.parse(fs.readFileSync(path.join(dir, 'rejected.jsonl'), 'utf8'));
    expect([dead.event.id, dead.code]).toEqual([all[1]!.id, 'EVENT_IN_FUTURE']);
  });

  it.each([['slow', 10 * 60_000], ['fast', -7 * 60_000]])('corrects a %s box clock from REQUEST_STALE', async (_name, skewMs) => {
    gw.skewMs = skewMs;
    await box.append(events(20));
    const u = uploader({ batchSize: 10 });
    expect(await u.flushOnce()).toEqual({ outcome: 'retry', delayMs: 0 });
    expect(Math.abs(u.stats.clockOffsetMs - skewMs)).toBeLessThan(1000);
    expect(u.stats.lastError?.code).toBe('REQUEST_STALE');
    expect((await drain(u)).map((r) => r.outcome)).toEqual(['sent', 'sent']);
    expect(gw.requests.map((r) => r.answer)).toEqual([401, 202, 202]);
  });

  it('signs again with a later timestamp after REQUEST_REPLAYED', async () => {
    await box.append(events(4));
    gw.faults.push({ status: 409, code: 'REQUEST_REPLAYED' });
    const u = uploader();
    expect(await u.flushOnce()).toEqual({ outcome: 'retry', delayMs: 0 });
    expect((await u.flushOnce()).outcome).toBe('sent');
    const [first, second] = gw.requests;
    expect(second!.batchId).toBe(first!.batchId);
    expect(second!.timestamp).toBeGreaterThan(first!.timestamp);
    expect(second!.signature).not.toBe(first!.signature);
  });

  it('keeps everything and retries at the cap, loudly, while the agent is revoked, its key is wrong or the batch is blamed', async () => {
    await box.append(events(30));
    gw.revoked = true;
    const u = uploader();
    for (let i = 0; i < 3; i++) expect(await u.flushOnce()).toEqual({ outcome: 'retry', delayMs: 60_000 });
    expect(logs.filter((l) => l.level === 'error' && l.message.includes('AGENT_REVOKED'))).toHaveLength(3);

    gw.revoked = false;
    const wrongKey = uploader({ privateKey: loadPrivateKey(newAgentKeyPair().privateKeyPem) });
    expect(await wrongKey.flushOnce()).toEqual({ outcome: 'retry', delayMs: 60_000 });
    expect(wrongKey.stats.lastError).toMatchObject({ status: 403, code: 'SIGNATURE_INVALID' });

    // A 400 that blames the batch itself (the gateway's agentId check) is no reason to drop any event.
    gw.faults.push({ status: 400, code: 'VALIDATION_FAILED', details: { issues: [{ field: 'body/agentId', problem: 'differs from x-agent-id' }] } });
    expect(await u.flushOnce()).toEqual({ outcome: 'retry', delayMs: 60_000 });
    expect(logs.at(-1)).toMatchObject({ level: 'error', message: expect.stringContaining('refuses the batch itself') });

    expect(box.pending).toBe(30);
    expect(gw.stored.size).toBe(0);
    expect(fs.existsSync(path.join(dir, 'rejected.jsonl'))).toBe(false);
    await drain(u);
    expect(gw.stored.size).toBe(30);
  });

  it('run() uploads while there is work, idles between, and stops promptly on abort', async () => {
    const u = uploader({ clock: systemClock, flushIntervalMs: 20, batchSize: 50 });
    const stop = new AbortController();
    const running = u.run(stop.signal);
    await box.append(events(120));
    await until(() => box.pending === 0);
    await box.append(events(7));
    await until(() => box.pending === 0);
    expect(gw.stored.size).toBe(127);
    const aborted = Date.now();
    stop.abort();
    await running;
    expect(Date.now() - aborted).toBeLessThan(500);
  });
});

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- Catching up: a gateway away for a minute, on a fake clock and a fake network -------------------------

describe('uploader catching up with a gateway that was away', () => {
  const keys = newAgentKeyPair();
  const GW = 'http://gateway.test';
  /** The same sequence for the same seed (mulberry32): a box's jitter. */
  const seeded = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  /**
   * One box against a gateway that refuses connections (or answers `downAnswer`) until `upAt` ms of fake time, then
   * is ready. Runs the uploader from t = 0 until its first accepted upload; returns when that was and every request.
   */
  const catchUp = async (o: { upAt: number; random: () => number; downAnswer?: number; over?: Partial<UploaderOptions> }) => {
    let t = 0;
    const requests: Array<{ at: number; path: string; status: number | 'refused' }> = [];
    const stop = new AbortController();
    let firstUpload: number | null = null;
    const fetch = (async (url: string | URL | Request) => {
      const path = new URL(String(url)).pathname;
      const up = t >= o.upAt;
      if (!up && o.downAnswer === undefined) {
        requests.push({ at: t, path, status: 'refused' });
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
      }
      const status = !up ? o.downAnswer! : path === '/readyz' ? 200 : 202;
      requests.push({ at: t, path, status });
      if (status === 202) {
        firstUpload ??= t;
        stop.abort();
        return new Response(JSON.stringify({ received: 1, accepted: 1, duplicates: 0, discarded: 0, rejected: [], decisions: [], deliveryIds: [] }), { status });
      }
      return new Response(JSON.stringify(status === 200 ? { status: 'ready' } : { error: { code: 'NOT_READY', message: 'not ready' } }), { status });
    }) as typeof globalThis.fetch;
    const box = await Outbox.open(fs.mkdtempSync(path.join(dir, 'box-')));
    await box.append(events(3));
    const u = new Uploader({
      outbox: box, gatewayUrl: GW, agentId: AGENT, privateKey: loadPrivateKey(keys.privateKeyPem), fetch, random: o.random,
      clock: { now: () => t, sleep: async (ms) => void (t += ms) }, ...o.over,
    });
    await u.run(stop.signal);
    await box.close();
    return { firstUpload: firstUpload!, requests, stats: u.stats };
  };

  it.each([
    ['refused connections for 60 s', 60_000, undefined],
    ['refused connections, back just after a failed upload', 47_700, undefined],
    ['503 NOT_READY for 60 s', 60_000, 503],
    ['refused connections for 10 minutes', 600_000, undefined],
  ])('uploads within a few seconds of its return: %s', async (_name, upAt, downAnswer) => {
    const r = await catchUp({ upAt, downAnswer, random: () => 0.5 });
    expect(r.firstUpload).toBeGreaterThanOrEqual(upAt);
    expect(r.firstUpload - upAt).toBeLessThanOrEqual(5_000);
    // Cheap while away: about one probe every 2 s, each a GET /readyz.
    const probes = r.requests.filter((q) => q.path === '/readyz');
    expect(r.stats.probes).toBe(probes.length);
    expect(probes.length).toBeLessThanOrEqual(upAt / 1000 / 2 + 3);
    // Backing off still: no more failed uploads than the backoff alone makes while the gateway is away.
    let backoffOnly = 0;
    for (let at = 0; at < upAt; at += backoffDelay(backoffOnly, 500, 60_000, () => 0.5)) backoffOnly++;
    expect(r.requests.filter((q) => q.path === '/ingest/presence' && q.at < upAt).length).toBeLessThanOrEqual(backoffOnly);
  });

  it('spreads a fleet\'s first uploads over a few seconds rather than one instant', async () => {
    const firsts: number[] = [];
    for (let box = 1; box <= 20; box++) firsts.push((await catchUp({ upAt: 60_000, random: seeded(box) })).firstUpload);
    expect(Math.max(...firsts)).toBeLessThanOrEqual(60_000 + 5_000);
    expect(Math.min(...firsts)).toBeGreaterThanOrEqual(60_000);
    expect(new Set(firsts.map((t) => Math.floor(t / 100))).size).toBeGreaterThanOrEqual(15); // hardly two in the same 100 ms
    expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThanOrEqual(2_000);
  });

  it('keeps the whole backoff, without probing, for answers that are no outage', async () => {
    let t = 0;
    const paths: string[] = [];
    const sleeps: number[] = [];
    const answers = [
      new Response(JSON.stringify({ error: { code: 'INTERNAL', message: 'internal error' } }), { status: 500 }),
      new Response(JSON.stringify({ error: { code: 'RATE_LIMITED', message: 'slow down' } }), { status: 429, headers: { 'retry-after': '30' } }),
    ];
    const stop = new AbortController();
    const box = await Outbox.open(dir);
    await box.append(events(2));
    const u = new Uploader({
      outbox: box, gatewayUrl: GW, agentId: AGENT, privateKey: loadPrivateKey(keys.privateKeyPem), random: () => 1,
      clock: { now: () => t, sleep: async (ms) => void (sleeps.push(ms), t += ms) },
      fetch: (async (url: string | URL | Request) => {
        paths.push(new URL(String(url)).pathname);
        const next = answers.shift();
        if (next) return next;
        stop.abort();
        return new Response(JSON.stringify({ received: 2, accepted: 2, duplicates: 0, discarded: 0, rejected: [], decisions: [], deliveryIds: [] }), { status: 202 });
      }) as typeof globalThis.fetch,
    });
    await u.run(stop.signal);
    await box.close();
    expect(paths).toEqual(['/ingest/presence', '/ingest/presence', '/ingest/presence']);
    expect(sleeps).toEqual([500, 30_000]);
    expect(u.stats.probes).toBe(0);
  });
});

// ---- The real gateway, closed and reopened on its data directory mid-upload ------------------------------

describe('uploader against the real gateway', () => {
  it('stores every event exactly once across a lost answer and a gateway restart', { timeout: 120_000 }, async () => {
    const iso = isolatedConfig('embedded');
    let gw: Gateway | undefined = await startGateway(iso.config);
    try {
      await gw.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (gw.app.server.address() as AddressInfo).port;
      const ok = async (method: 'GET' | 'POST', url: string, payload?: object) => {
        const res = await gw!.app.inject({ method, url, payload });
        if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
        return res.json();
      };
      const store = await ok('POST', '/stores', { name: 'Upload store', timeZone: 'America/New_York', location: { lat: 41.5, lon: -70 }, geofence: { radiusM: 100 } });
      const zone = await ok('POST', `/stores/${store.id}/zones`, { name: 'entrance' });
      const { agent, privateKey } = await ok('POST', '/agents', { storeId: store.id, name: 'box' });
      const member = await ok('POST', '/members', { phone: '+14155557001', timeZone: 'America/New_York' });
      await grantConsents(gw, member.id, member.phone, ['ble_detection']);
      const identity = (await bleIdentity(gw, member.id)).body;
      const key = Buffer.from(identity.identityKey, 'base64');

      const t0 = Date.now() - 20 * 60_000;
      const all = Array.from({ length: 120 }, (_, i) => {
        const at = t0 + i * 10_000;
        return event({ id: randomUUID(), kind: i === 0 ? 'enter' : 'dwell', zoneId: zone.id, eid: eidHex(key, identity.rotationExponent, Math.floor(at / 1000)), at: new Date(at).toISOString() });
      });
      // One event the gateway's schema refuses (RSSI above 20 dBm): it must end in rejected.jsonl, alone.
      const bad = event({ id: randomUUID(), zoneId: zone.id, rssi: 50 });
      const box = await Outbox.open(dir);
      await box.append([...all.slice(0, 60), bad, ...all.slice(60)]);
      let loseAnswer = false;
      const answers: Array<{ accepted: number; duplicates: number }> = [];
      const u = new Uploader({
        outbox: box, gatewayUrl: `http://127.0.0.1:${port}`, agentId: agent.id, privateKey: loadPrivateKey(privateKey), batchSize: 25,
        clock: { now: () => Date.now(), sleep: async () => {} },
        fetch: async (url, init) => {
          const res = await fetch(url, init);
          if (res.status === 202) answers.push((await res.clone().json()) as { accepted: number; duplicates: number });
          if (!loseAnswer) return res;
          loseAnswer = false;
          await res.arrayBuffer();
          throw new TypeError('fetch failed: the answer was lost');
        },
      });
      expect((await u.flushOnce()).outcome).toBe('sent');
      loseAnswer = true;
      expect((await u.flushOnce()).outcome).toBe('retry'); // stored by the gateway, not acknowledged here
      expect((await u.flushOnce()).outcome).toBe('sent'); // the same batch again
      expect(answers.map((a) => [a.accepted, a.duplicates])).toEqual([[25, 0], [25, 0], [0, 25]]);
      expect(box.pending).toBe(71);

      await gw.close();
      gw = undefined;
      expect((await u.flushOnce()).outcome).toBe('retry');
      expect(u.stats.lastError?.code).toBe('NETWORK');
      expect(box.pending).toBe(71);

      // A second process's config: only the data directory is shared.
      gw = await startGateway(loadConfig({ DATA_DIR: iso.config.dataDir, LOG_LEVEL: 'silent' }));
      await gw.app.listen({ port, host: '127.0.0.1' });
      for (let i = 0; i < 30 && box.pending > 0; i++) await u.flushOnce();
      expect(box.pending).toBe(0);
      expect(u.stats).toMatchObject({ eventsAcked: 120, deadLettered: 1 });
      const dead = JSON.parse(fs.readFileSync(path.join(dir, 'rejected.jsonl'), 'utf8'));
      expect([dead.event.id, dead.status, dead.code]).toEqual([bad.id, 400, 'VALIDATION_FAILED']);

      const rows = await gw.deps.db.query<{ event_id: string; n: number }>(
        'SELECT event_id, count(*)::int n FROM detections WHERE agent_id = $1 GROUP BY event_id', [agent.id]);
      expect(rows.map((r) => r.event_id).sort()).toEqual(ids(all).sort());
      expect(rows.every((r) => r.n === 1)).toBe(true);
      await box.close();
    } finally {
      await gw?.close();
      await iso.cleanup();
    }
  });
});
