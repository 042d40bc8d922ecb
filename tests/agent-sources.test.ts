// Sources of advertisements: recorded lines parsed and replayed in virtual time, the simulated store day
// (deterministic, noisy as specified, true to its ground truth), and the watchdog that restarts a quiet source.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PresenceTracker } from '../beacon-agent/presence.js';
import {
  parseRecordedLine, pathLossRssi, ReplaySource, shouldRestart, SimulatedSource, VirtualClock, Watchdog,
  type ScanSource, type SimulationOptions, type Timer,
} from '../beacon-agent/sources.js';
import type { Advertisement, PresenceEvent } from '../beacon-agent/types.js';

const T0 = Date.parse('2026-06-03T08:00:00Z');

describe('parseRecordedLine', () => {
  const good: Array<[name: string, line: string, expected: Partial<Advertisement>]> = [
    ['t in ms, no payload', '{"t":1780473600000,"address":"AA:BB:CC:DD:EE:FF","rssi":-60}', { address: 'aa:bb:cc:dd:ee:ff', rssi: -60, seenAt: 1780473600000 }],
    ['t as ISO time', '{"t":"2026-06-03T08:00:01.500Z","address":"a","rssi":-71}', { seenAt: T0 + 1500 }],
    ['t as ISO time with an offset', '{"t":"2026-06-03T10:00:01+02:00","address":"a","rssi":-71}', { seenAt: T0 + 1000 }],
    ['manufacturer data', '{"t":0,"address":"a","rssi":-50,"mfg":"4C001005"}', { manufacturerData: Buffer.from('4c001005', 'hex') }],
    ['service data, uuid normalised', '{"t":0,"address":"a","rssi":-50,"svc":[{"uuid":"FEAA","data":"30ee0011"}]}',
      { serviceData: [{ uuid: 'feaa', data: Buffer.from('30ee0011', 'hex') }] }],
    ['a 128-bit service uuid with dashes', '{"t":0,"address":"a","rssi":-50,"svc":[{"uuid":"0000FEAA-0000-1000-8000-00805F9B34FB","data":""}]}',
      { serviceData: [{ uuid: '0000feaa00001000800000805f9b34fb', data: Buffer.alloc(0) }] }],
    ['unknown fields are ignored', '{"t":5,"address":"a","rssi":-50,"channel":37}', { seenAt: 5 }],
  ];
  it.each(good)('reads %s', (_name, line, expected) => {
    expect(parseRecordedLine(line)).toMatchObject(expected);
  });

  const bad: Array<[name: string, line: string]> = [
    ['not JSON', '{"t":0,"address":'], ['an array', '[1,2]'], ['null', 'null'], ['blank', ''],
    ['no address', '{"t":0,"rssi":-60}'], ['empty address', '{"t":0,"address":"","rssi":-60}'],
    ['no time', '{"address":"a","rssi":-60}'], ['a time that is not ISO', '{"t":"June 3","address":"a","rssi":-60}'],
    ['an ISO time without its zone', '{"t":"2026-06-03T08:00:00","address":"a","rssi":-60}'],
    ['a negative time', '{"t":-1,"address":"a","rssi":-60}'], ['rssi as text', '{"t":0,"address":"a","rssi":"-60"}'],
    ['rssi out of range', '{"t":0,"address":"a","rssi":-200}'], ['odd-length hex', '{"t":0,"address":"a","rssi":-60,"mfg":"4c0"}'],
    ['non-hex', '{"t":0,"address":"a","rssi":-60,"mfg":"zz"}'], ['svc not a list', '{"t":0,"address":"a","rssi":-60,"svc":{}}'],
    ['svc uuid of 3 hex', '{"t":0,"address":"a","rssi":-60,"svc":[{"uuid":"fea","data":""}]}'],
    ['svc entry null', '{"t":0,"address":"a","rssi":-60,"svc":[null]}'],
  ];
  it.each(bad)('refuses %s', (_name, line) => {
    expect(parseRecordedLine(line)).toBeNull();
  });
});

describe('ReplaySource', () => {
  const LINES = [
    '{"t":1000,"address":"a","rssi":-60}',
    'garbage',
    '',
    '{"t":2000,"address":"b","rssi":-61}',
    '{"t":"1970-01-01T00:00:05.000Z","address":"c","rssi":-62}',
    '{"t":6000,"address":"d"}',
  ];

  async function replay(speed: number | 'max', lines = LINES) {
    const clock = new VirtualClock(1_000_000);
    const source = new ReplaySource({ lines: () => lines, speed, clock });
    const got: Array<{ address: string; clockAt: number; recordedNow: number | null }> = [];
    await source.start((ad) => got.push({ address: ad.address, clockAt: clock.now(), recordedNow: source.recordedNow() }));
    await source.finished();
    return { got, source, clock };
  }

  it('skips and counts malformed lines, passes blank ones, keeps recorded time', async () => {
    const { got, source } = await replay('max');
    expect(got.map((g) => g.address)).toEqual(['a', 'b', 'c']);
    expect(got.map((g) => g.recordedNow)).toEqual([1000, 2000, 5000]);
    expect([source.emitted, source.skipped]).toEqual([3, 2]);
  });

  it.each([
    ['as fast as possible: the clock does not move', 'max' as const, [0, 0, 0]],
    ['at recorded pace', 1, [0, 1000, 4000]],
    ['four times faster', 4, [0, 250, 1000]],
  ])('in virtual time, %s', async (_name, speed, offsets) => {
    const { got, clock } = await replay(speed);
    expect(got.map((g) => g.clockAt - 1_000_000)).toEqual(offsets);
    expect(clock.now() - 1_000_000).toBe(offsets.at(-1));
  });

  it('stops when told, even mid-replay', async () => {
    const clock = new VirtualClock();
    const source = new ReplaySource({ lines: () => LINES, speed: 1, clock });
    const got: string[] = [];
    await source.start((ad) => {
      got.push(ad.address);
      if (got.length === 2) void source.stop();
    });
    await source.finished();
    expect(got).toEqual(['a', 'b']);
  });

  it('reads a recording from a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'replay-'));
    try {
      const path = join(dir, 'scan.jsonl');
      await writeFile(path, `${LINES.join('\r\n')}\n`);
      const source = ReplaySource.fromFile(path);
      const got: string[] = [];
      await source.start((ad) => got.push(ad.address));
      await source.finished();
      expect(got).toEqual(['a', 'b', 'c']);
      expect(source.skipped).toBe(2);
      expect(source.name).toBe(`replay:${path}`);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('refuses a speed of 0', () => {
    expect(() => new ReplaySource({ lines: () => [], speed: 0 })).toThrow(/speed/);
  });
});

describe('SimulatedSource', () => {
  /** A member's payload: an Eddystone-EID-shaped frame whose EID is the member's index, so tests can tell who. */
  const memberPayload = (member: number) => ({
    serviceData: [{ uuid: 'feaa', data: Buffer.concat([Buffer.from('30ee', 'hex'), Buffer.from(member.toString(16).padStart(16, '0'), 'hex')]) }],
  });
  const memberOf = (ad: Advertisement): number | null => {
    const data = ad.serviceData?.find((s) => s.uuid === 'feaa')?.data;
    return data?.[0] === 0x30 ? parseInt(data.subarray(2).toString('hex'), 16) : null;
  };
  const day = (o: Partial<SimulationOptions> = {}) =>
    new SimulatedSource({ seed: 42, startMs: T0, durationMs: 2 * 3600_000, members: 40, memberPayload, ...o });

  it('is deterministic: the same seed gives the same day, another seed another', () => {
    const lines = (sim: SimulatedSource) => [...sim.advertisements()].map((ad) =>
      `${ad.seenAt} ${ad.address} ${ad.rssi} ${ad.manufacturerData?.toString('hex')} ${ad.serviceData?.map((x) => x.uuid + x.data.toString('hex'))}`);
    const a = lines(day());
    expect(a.length).toBeGreaterThan(10_000);
    expect(lines(day()).join('\n') === a.join('\n')).toBe(true);
    const other = lines(day({ seed: 43, durationMs: 60_000 }));
    expect(other.join('\n')).not.toBe(a.slice(0, other.length).join('\n'));
    expect(day().groundTruth()).toEqual(day().groundTruth());
  });

  it('delivers in time order, within the day, members and other devices mixed', () => {
    const ads = [...day().advertisements()];
    expect(ads.every((ad, i) => i === 0 || ad.seenAt >= (ads[i - 1] as Advertisement).seenAt)).toBe(true);
    expect(ads.every((ad) => ad.seenAt >= T0 && ad.seenAt < T0 + 2 * 3600_000 && ad.rssi >= -100)).toBe(true);
    const companies = new Set(ads.map((ad) => ad.manufacturerData?.readUInt16LE(0)).filter((c) => c !== undefined));
    expect(companies).toEqual(new Set([0x004c, 0x0006]));
    const services = new Set(ads.flatMap((ad) => ad.serviceData ?? []).map((s) => `${s.uuid}:${s.data[0]}`));
    expect(services).toContain('feaa:0'); // someone else's Eddystone-UID
    expect(services).toContain('feaa:48'); // members' EID frames
    expect([...services].some((s) => s.startsWith('fe2c:'))).toBe(true); // headphones
    const members = ads.filter((ad) => memberOf(ad) !== null);
    expect(members.length).toBeGreaterThan(1000);
    expect(members.length).toBeLessThan(ads.length / 2);
    // A member's phone changes its address over a long stay; a fixed beacon keeps one.
    const addressesOf = (member: number) => new Set(members.filter((ad) => memberOf(ad) === member).map((ad) => ad.address));
    const longest = day().trips.reduce((best, t, i, all) => (t.stayMs > (all[best]?.stayMs ?? 0) ? i : best), 0);
    expect(addressesOf(longest).size).toBeGreaterThan(1);
  });

  it('a payload function may bring its own address (one that rotates with the EID); rssi and time stay the simulation\'s', () => {
    // Shaped like member-app-sim's passiveAdvertisement(): a whole advertisement, rssi and time included.
    const whole = (member: number, atMs: number): Advertisement => ({
      ...memberPayload(member), address: `eid-window-${member}-${Math.floor(atMs / 512_000)}`, rssi: 0, seenAt: 0,
    });
    const ads = [...day({ memberPayload: whole, durationMs: 600_000 }).advertisements()].filter((ad) => memberOf(ad) !== null);
    expect(ads.length).toBeGreaterThan(100);
    for (const ad of ads) {
      expect(ad.address).toBe(`eid-window-${memberOf(ad)}-${Math.floor(ad.seenAt / 512_000)}`);
      expect(ad.rssi).toBeLessThan(0);
      expect(ad.seenAt).toBeGreaterThanOrEqual(T0);
    }
  });

  it.each([['the default (5 dB)', undefined], ['4 dB', 4], ['6 dB', 6]])('noise: %s is what the receiver sees, over many samples', (_name, sigma) => {
    // No sensitivity cut-off here: dropping the weakest packets far away would bias the residuals.
    const sim = day({ radio: { ...(sigma === undefined ? {} : { noiseSigmaDb: sigma }), sensitivityDbm: -127, lossRate: 0 } });
    const residuals: number[] = [];
    for (const ad of sim.advertisements()) {
      const member = memberOf(ad);
      if (member !== null) residuals.push(ad.rssi - pathLossRssi(sim.distanceAt(member, ad.seenAt), sim.radio));
    }
    const mean = residuals.reduce((s, x) => s + x, 0) / residuals.length;
    const sd = Math.sqrt(residuals.reduce((s, x) => s + (x - mean) ** 2, 0) / (residuals.length - 1));
    expect(residuals.length).toBeGreaterThan(20_000);
    expect(Math.abs(mean)).toBeLessThan(0.2);
    if (sigma === undefined) {
      expect(sd).toBeGreaterThanOrEqual(4);
      expect(sd).toBeLessThanOrEqual(6);
    }
    // Rounding to whole dBm adds 1/12 dB² of variance; 20 000 samples pin sigma within a few hundredths.
    expect(Math.abs(sd - sim.radio.noiseSigmaDb)).toBeLessThan(0.15);
  });

  it('ground truth: intervals in the day, at the right distances, the till inside the store', () => {
    const zones = [{ id: 'store', radiusM: 8 }, { id: 'till', radiusM: 2 }];
    const sim = day({ zones, members: 200 });
    const truth = sim.groundTruth();
    expect(truth.length).toBeGreaterThan(50);
    for (const t of truth) {
      const radius = t.zoneId === 'store' ? 8 : 2;
      expect(t.fromMs).toBeGreaterThanOrEqual(T0);
      expect(t.toMs).toBeLessThanOrEqual(T0 + 2 * 3600_000);
      expect(sim.distanceAt(t.member, (t.fromMs + t.toMs) / 2)).toBeLessThanOrEqual(radius);
      if (t.fromMs > T0) expect(sim.distanceAt(t.member, t.fromMs - 1000)).toBeGreaterThan(radius);
      if (t.toMs < T0 + 2 * 3600_000) expect(sim.distanceAt(t.member, t.toMs + 1000)).toBeGreaterThan(radius);
      if (t.zoneId === 'till') {
        const store = truth.find((s) => s.member === t.member && s.zoneId === 'store');
        expect(store && store.fromMs <= t.fromMs && t.toMs <= store.toMs).toBe(true);
      }
    }
    sim.trips.forEach((trip, member) => {
      const inStore = truth.some((t) => t.member === member && t.zoneId === 'store');
      if (trip.kind === 'visit' && trip.centerMs > T0 && trip.centerMs < T0 + 2 * 3600_000) expect(inStore).toBe(true);
      if (trip.closestM > 8) expect(inStore).toBe(false);
    });
  });

  it('end to end in virtual time: every stopping member is one visit, nobody is seen who was not there', async () => {
    const clock = new VirtualClock(T0);
    const sim = day({ members: 120, clock });
    // Thresholds from the radio model: enter within ~6 m, leave beyond ~11 m of the box.
    const tracker = new PresenceTracker({
      agentId: 'box-sim', zones: [{ id: 'store', enterRssi: -78, exitRssi: -85, minDwellMs: 10_000, exitGraceMs: 20_000, dwellEveryMs: 0 }],
    });
    const events: PresenceEvent[] = [];
    let lastTick = T0;
    await sim.start((ad) => {
      const member = memberOf(ad);
      if (member !== null) events.push(...tracker.observe({ eid: member.toString(16).padStart(16, '0'), rssi: ad.rssi, at: ad.seenAt, source: 'ble_passive' }));
      if (clock.now() - lastTick >= 1000) events.push(...tracker.tick((lastTick = clock.now())));
    });
    await sim.finished();
    events.push(...tracker.tick(T0 + 3 * 3600_000));
    expect(clock.now()).toBeGreaterThan(T0 + 2 * 3600_000 - 5000); // the day went by, without waiting

    const truth = sim.groundTruth();
    const enters = events.filter((e) => e.kind === 'enter');
    expect(enters.length).toBe(events.filter((e) => e.kind === 'exit').length);
    for (const e of enters) {
      const member = parseInt(e.eid, 16);
      const t = truth.find((x) => x.member === member);
      expect(t, `member ${member} entered but was never within 8 m`).toBeDefined();
      expect(Date.parse(e.at)).toBeGreaterThanOrEqual((t?.fromMs ?? 0) - 5000);
      expect(Date.parse(e.at)).toBeLessThanOrEqual(t?.toMs ?? 0);
    }
    sim.trips.forEach((trip, member) => {
      const visits = enters.filter((e) => parseInt(e.eid, 16) === member).length;
      expect(visits).toBeLessThanOrEqual(1);
      const wholly = trip.centerMs - trip.stayMs / 2 > T0 + 60_000 && trip.centerMs + trip.stayMs / 2 < T0 + 2 * 3600_000 - 60_000;
      if (trip.kind === 'visit' && wholly) expect(visits, `member ${member} stopped ${trip.closestM.toFixed(1)} m away`).toBe(1);
    });
  });

  it('start() from a later clock time resumes the day there; stop() ends it', async () => {
    const clock = new VirtualClock(T0 + 3600_000);
    const sim = day({ clock });
    const got: Advertisement[] = [];
    await sim.start((ad) => {
      got.push(ad);
      if (got.length === 500) void sim.stop();
    });
    await sim.finished();
    expect(got).toHaveLength(500);
    expect(got[0]?.seenAt).toBeGreaterThanOrEqual(T0 + 3600_000);
  });
});

describe('Watchdog', () => {
  it.each([
    [0, 9_999, 10_000, false], [0, 10_000, 10_000, true], [5_000, 4_000, 10_000, false], [0, 60_000, 10_000, true],
  ])('shouldRestart(last %i, now %i, quiet %i) is %s', (last, now, quiet, expected) => {
    expect(shouldRestart(last, now, quiet)).toBe(expected);
  });

  class FakeSource implements ScanSource {
    readonly name = 'fake';
    starts = 0;
    stops = 0;
    failNextStart = false;
    #onAd: ((ad: Advertisement) => void) | null = null;
    async start(onAd: (ad: Advertisement) => void) {
      this.starts += 1;
      if (this.failNextStart) {
        this.failNextStart = false;
        throw new Error('adapter busy');
      }
      this.#onAd = onAd;
    }
    async stop() { this.stops += 1; this.#onAd = null; }
    emit(at: number) { this.#onAd?.({ address: 'a', rssi: -60, seenAt: at }); }
  }

  function setup() {
    const clock = new VirtualClock(T0);
    const source = new FakeSource();
    const checks = new Set<() => void>();
    const timer: Timer = { every: (_ms, fn) => { checks.add(fn); return () => checks.delete(fn); } };
    const restarts: Array<{ restarts: number; error?: unknown }> = [];
    const dog = new Watchdog(source, { quietMs: 10_000, clock, timer, onRestart: (info) => restarts.push(info) });
    return { clock, source, dog, checks, restarts };
  }

  it('does not restart while traffic flows', async () => {
    const { clock, source, dog } = setup();
    const got: Advertisement[] = [];
    await dog.start((ad) => got.push(ad));
    for (let s = 0; s < 120; s += 1) {
      clock.advance(1000);
      source.emit(clock.now());
      expect(await dog.check()).toBe(false);
    }
    expect(got).toHaveLength(120);
    expect([dog.restarts, source.starts, source.stops]).toEqual([0, 1, 0]);
  });

  it('restarts once after a silence, counts the next quiet period from the restart, and relays again', async () => {
    const { clock, source, dog, checks, restarts } = setup();
    const got: Advertisement[] = [];
    await dog.start((ad) => got.push(ad));
    source.emit(clock.now());
    for (let s = 0; s < 15; s += 1) {
      clock.advance(1000);
      await dog.check();
    }
    expect([dog.restarts, source.starts, source.stops]).toEqual([1, 2, 1]);
    expect(restarts).toEqual([{ restarts: 1 }]);
    source.emit(clock.now());
    expect(got).toHaveLength(2);
    // The timer drives check() too.
    clock.advance(10_000);
    checks.forEach((check) => check());
    await new Promise((resolve) => setImmediate(resolve));
    expect(dog.restarts).toBe(2);
    await dog.stop();
    expect(checks.size).toBe(0);
  });

  it('reports a failed restart and tries again after another quiet period', async () => {
    const { clock, source, dog, restarts } = setup();
    await dog.start(() => undefined);
    source.failNextStart = true;
    clock.advance(10_000);
    expect(await dog.check()).toBe(true);
    expect(restarts[0]?.error).toBeInstanceOf(Error);
    clock.advance(5_000);
    expect(await dog.check()).toBe(false);
    clock.advance(5_000);
    expect(await dog.check()).toBe(true);
    expect(restarts.map((r) => r.error === undefined)).toEqual([false, true]);
  });
});
