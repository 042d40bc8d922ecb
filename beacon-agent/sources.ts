/**
 * Where advertisements come from, behind one port (ScanSource): a recording replayed (ReplaySource), a
 * simulated store day (SimulatedSource), and a Watchdog that restarts a source gone quiet. The radio adapter
 * lives in its own file and implements the same port; nothing here touches Bluetooth. Waiting goes through an
 * injected Clock, so a replay or a whole simulated day can run in virtual time, without real waiting.
 *
 * Words
 * - trip: one device's straight walk past the box, closest at `closestM`, stopping there for `stayMs`
 *   (0: a walk-by). A fixed device (another beacon, a PC) is a trip whose stop lasts all day.
 * - ground truth: when a simulated member really was within a zone's radius of the box.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Advertisement } from './types.js';

export interface ScanSource {
  start(onAdvertisement: (ad: Advertisement) => void): Promise<void>;
  stop(): Promise<void>;
  readonly name: string;
}

export interface Clock {
  now(): number;
  sleepUntil(atMs: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleepUntil: (atMs) => new Promise((resolve) => setTimeout(resolve, Math.max(0, atMs - Date.now()))),
};

/** Time that moves only when slept on or advanced: a day passes in milliseconds. */
export class VirtualClock implements Clock {
  #now: number;
  #sleeps = 0;
  constructor(startMs = 0) { this.#now = startMs; }
  now(): number { return this.#now; }
  advance(ms: number): void { this.#now += ms; }
  async sleepUntil(atMs: number): Promise<void> {
    this.#now = Math.max(this.#now, atMs);
    // Let timers and I/O (a stop() from elsewhere) in now and then, without paying a macrotask per sleep.
    if (++this.#sleeps % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

interface Run { stopped: boolean }

/** Delivers `ads` at the clock time `when(ad)`, until they run out or the run is stopped. */
async function pump(ads: AsyncIterable<Advertisement> | Iterable<Advertisement>, when: ((ad: Advertisement) => number) | null,
  clock: Clock, run: Run, onAd: (ad: Advertisement) => void): Promise<void> {
  for await (const ad of ads) {
    if (run.stopped) return;
    if (when) await clock.sleepUntil(when(ad));
    if (run.stopped) return;
    onAd(ad);
  }
}

// ---- Replay ---------------------------------------------------------------------------------------------

const HEX = /^(?:[0-9a-f]{2})*$/i;
/** ISO 8601 with its zone: a recording read on another box must not shift by that box's local time. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/i;

/** One recorded line, `{"t", "address", "rssi", "mfg"?, "svc"?}`, or null when it is not a valid recording. */
export function parseRecordedLine(line: string): Advertisement | null {
  let v: unknown;
  try { v = JSON.parse(line); } catch { return null; }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const r = v as Record<string, unknown>;
  const seenAt = typeof r.t === 'number' ? r.t : typeof r.t === 'string' && ISO_TIME.test(r.t) ? Date.parse(r.t) : NaN;
  if (!Number.isFinite(seenAt) || seenAt < 0) return null;
  if (typeof r.address !== 'string' || r.address === '') return null;
  if (typeof r.rssi !== 'number' || !(r.rssi >= -127 && r.rssi <= 20)) return null;
  const ad: Advertisement = { address: r.address.toLowerCase(), rssi: r.rssi, seenAt };
  if (r.mfg !== undefined) {
    if (typeof r.mfg !== 'string' || !HEX.test(r.mfg)) return null;
    ad.manufacturerData = Buffer.from(r.mfg, 'hex');
  }
  if (r.svc !== undefined) {
    if (!Array.isArray(r.svc)) return null;
    const svc: Array<{ uuid: string; data: Buffer }> = [];
    for (const s of r.svc as unknown[]) {
      const { uuid, data } = (s ?? {}) as Record<string, unknown>;
      const id = typeof uuid === 'string' ? uuid.replaceAll('-', '').toLowerCase() : '';
      if (!/^(?:[0-9a-f]{4}|[0-9a-f]{32})$/.test(id) || typeof data !== 'string' || !HEX.test(data)) return null;
      svc.push({ uuid: id, data: Buffer.from(data, 'hex') });
    }
    ad.serviceData = svc;
  }
  return ad;
}

export interface ReplayOptions {
  lines: () => AsyncIterable<string> | Iterable<string>;
  /** 'max': as fast as possible; a number: that many times the recorded pace (1: as recorded). Default 'max'. */
  speed?: number | 'max';
  clock?: Clock;
  name?: string;
}

/** Replays a recording. Each advertisement keeps its recorded seenAt: a caller's clock follows recorded time. */
export class ReplaySource implements ScanSource {
  readonly name: string;
  /** Malformed lines skipped (blank lines are not counted). */
  skipped = 0;
  emitted = 0;
  #opts: ReplayOptions;
  #run: Run = { stopped: true };
  #done: Promise<void> = Promise.resolve();
  #recordedNow: number | null = null;

  constructor(opts: ReplayOptions) {
    if (opts.speed !== undefined && opts.speed !== 'max' && !(opts.speed > 0)) throw new RangeError('replay: speed must be > 0 or "max"');
    this.#opts = opts;
    this.name = opts.name ?? 'replay';
  }

  static fromFile(path: string, opts: Omit<ReplayOptions, 'lines'> = {}): ReplaySource {
    const lines = () => createInterface({ input: createReadStream(path), crlfDelay: Infinity });
    return new ReplaySource({ name: `replay:${path}`, ...opts, lines });
  }

  /** The recorded time of the latest advertisement handed over (null before the first). */
  recordedNow(): number | null { return this.#recordedNow; }

  /** Resolves when the replay has run out or was stopped; rejects if the recording could not be read. */
  finished(): Promise<void> { return this.#done; }

  async start(onAdvertisement: (ad: Advertisement) => void): Promise<void> {
    this.#run.stopped = true;
    const run: Run = (this.#run = { stopped: false });
    const { speed = 'max', clock = systemClock } = this.#opts;
    let origin: { recorded: number; clock: number } | null = null;
    const when = speed === 'max' ? null : (ad: Advertisement) => {
      origin ??= { recorded: ad.seenAt, clock: clock.now() };
      return origin.clock + (ad.seenAt - origin.recorded) / speed;
    };
    this.#done = pump(this.#parsed(), when, clock, run, (ad) => {
      this.emitted += 1;
      this.#recordedNow = ad.seenAt;
      onAdvertisement(ad);
    });
  }

  async stop(): Promise<void> { this.#run.stopped = true; }

  async *#parsed(): AsyncGenerator<Advertisement> {
    for await (const line of this.#opts.lines()) {
      if (line.trim() === '') continue;
      const ad = parseRecordedLine(line);
      if (ad) yield ad;
      else this.skipped += 1;
    }
  }
}

// ---- Watchdog -------------------------------------------------------------------------------------------

/** A source heard nothing for quietMs or more: time to restart it. */
export function shouldRestart(lastAdvertisementAt: number, now: number, quietMs: number): boolean {
  return now - lastAdvertisementAt >= quietMs;
}

/** Runs fn every ms; returns how to cancel. */
export interface Timer { every(ms: number, fn: () => void): () => void }

export const systemTimer: Timer = {
  every: (ms, fn) => {
    const handle = setInterval(fn, ms);
    handle.unref();
    return () => clearInterval(handle);
  },
};

export interface WatchdogOptions {
  quietMs: number;
  /** How often to look (default quietMs / 4). */
  checkEveryMs?: number;
  clock?: Pick<Clock, 'now'>;
  timer?: Timer;
  /** Told after each restart, with the error if starting again failed (the next quiet period retries). */
  onRestart?: (info: { restarts: number; error?: unknown }) => void;
}

/** Wraps a source; restarts it when it has been quiet for quietMs. A quiet period counts from the last restart. */
export class Watchdog implements ScanSource {
  readonly name: string;
  restarts = 0;
  #source: ScanSource;
  #opts: WatchdogOptions;
  #lastAt = 0;
  #onAd: ((ad: Advertisement) => void) | null = null;
  #cancel: (() => void) | null = null;
  #restarting = false;

  constructor(source: ScanSource, opts: WatchdogOptions) {
    if (!(opts.quietMs > 0)) throw new RangeError('watchdog: quietMs must be > 0');
    this.#source = source;
    this.#opts = opts;
    this.name = `watchdog(${source.name})`;
  }

  async start(onAdvertisement: (ad: Advertisement) => void): Promise<void> {
    this.#onAd = onAdvertisement;
    this.#lastAt = this.#now();
    await this.#source.start(this.#relay);
    this.#cancel?.();
    const { timer = systemTimer, checkEveryMs = this.#opts.quietMs / 4 } = this.#opts;
    this.#cancel = timer.every(checkEveryMs, () => void this.check());
  }

  async stop(): Promise<void> {
    this.#cancel?.();
    this.#cancel = null;
    this.#onAd = null;
    await this.#source.stop();
  }

  /** One look: restarts the source if it has gone quiet. Returns whether it did. */
  async check(): Promise<boolean> {
    if (this.#restarting || !this.#onAd || !shouldRestart(this.#lastAt, this.#now(), this.#opts.quietMs)) return false;
    this.#restarting = true;
    let error: unknown;
    try {
      await this.#source.stop();
      await this.#source.start(this.#relay);
    } catch (err) {
      error = err;
    } finally {
      this.#lastAt = this.#now();
      this.#restarting = false;
    }
    this.restarts += 1;
    this.#opts.onRestart?.(error === undefined ? { restarts: this.restarts } : { restarts: this.restarts, error });
    return true;
  }

  #relay = (ad: Advertisement): void => {
    this.#lastAt = this.#now();
    this.#onAd?.(ad);
  };

  #now(): number { return (this.#opts.clock ?? systemClock).now(); }
}

// ---- Simulation -----------------------------------------------------------------------------------------

/** Seeded PRNG (mulberry32), uniform in [0, 1): the same seed gives the same day. */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One standard normal draw (Box-Muller). */
export function gaussian(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

export interface RadioModel {
  /** Mean RSSI at 1 m (dBm). */
  txPowerAt1m: number;
  /** Path-loss exponent n: 2 in free space, 2 to 3 indoors. */
  pathLossExponent: number;
  /** Standard deviation of the Gaussian noise added to each advertisement (dB). */
  noiseSigmaDb: number;
  /** Anything weaker is not received. */
  sensitivityDbm: number;
  /** Share of advertisements lost to collisions and scan-window gaps. */
  lossRate: number;
}

export const DEFAULT_RADIO: Readonly<RadioModel> = Object.freeze({
  txPowerAt1m: -59, pathLossExponent: 2.5, noiseSigmaDb: 5, sensitivityDbm: -100, lossRate: 0.1,
});

/** Log-distance path loss: the mean RSSI at distanceM, before noise. */
export function pathLossRssi(distanceM: number, radio: RadioModel = DEFAULT_RADIO): number {
  return radio.txPowerAt1m - 10 * radio.pathLossExponent * Math.log10(Math.max(distanceM, 0.1));
}

export interface Trip { kind: 'visit' | 'walk_by' | 'fixed'; closestM: number; speedMps: number; stayMs: number; centerMs: number }

export function tripDistance(trip: Trip, atMs: number): number {
  const walkingMs = Math.max(0, Math.abs(atMs - trip.centerMs) - trip.stayMs / 2);
  return Math.hypot(trip.closestM, (trip.speedMps * walkingMs) / 1000);
}

/** When the trip is within radiusM of the box, or null if never. */
export function tripWithin(trip: Trip, radiusM: number): [fromMs: number, toMs: number] | null {
  if (trip.closestM > radiusM) return null;
  const half = trip.stayMs / 2 + (Math.sqrt(radiusM ** 2 - trip.closestM ** 2) / trip.speedMps) * 1000;
  return [trip.centerMs - half, trip.centerMs + half];
}

/** What a device puts in the air besides its RSSI and time; `address` only if it picks its own. */
export type Payload = Pick<Advertisement, 'manufacturerData' | 'serviceData'> & { address?: string };

export interface SimulationOptions {
  seed: number;
  startMs: number;
  durationMs: number;
  /** How many members pass by, one trip each, numbered from 0. */
  members: number;
  /**
   * A member's payload at a moment: plug the Eddystone-EID encoder in here. An address it returns (one that
   * rotates with the EID) is used; otherwise the phone's address changes every 15 minutes. Any rssi or seenAt
   * it carries is ignored: those are the simulation's.
   */
  memberPayload: (member: number, atMs: number) => Payload;
  /** Phones, PCs, other beacons, headphones (default 20). */
  nonMembers?: number;
  /** Share of members who stop rather than walk by (default 0.5). */
  visitShare?: number;
  /** Zones for the ground truth, as radii around the box (default: 'store', 8 m). */
  zones?: Array<{ id: string; radiusM: number }>;
  radio?: Partial<RadioModel>;
  /** A member phone's advertising interval (ms, default 1000: Android's low-power mode). */
  memberIntervalMs?: number;
  /** Default: a VirtualClock at startMs. */
  clock?: Clock;
}

export interface TruthInterval { member: number; zoneId: string; fromMs: number; toMs: number }

interface Device { trip: Trip; intervalMs: number; member: number | null; payload: Payload; rotates: boolean }

const OTHER_KINDS = ['apple', 'microsoft', 'beacon', 'headphones'] as const;
/** Ads are generated a minute at a time, then sorted: memory stays flat over a whole day. */
const SLICE_MS = 60_000;
/** Phones change their random address about every 15 minutes. */
const ADDRESS_PERIOD_MS = 15 * 60_000;

/** A deterministic store day: members and other devices walking by or stopping, heard with noise. */
export class SimulatedSource implements ScanSource {
  readonly name = 'simulated';
  readonly radio: RadioModel;
  /** Each member's trip, by member index. */
  readonly trips: readonly Trip[];
  #opts: SimulationOptions;
  #devices: Device[];
  #clock: Clock;
  #run: Run = { stopped: true };
  #done: Promise<void> = Promise.resolve();

  constructor(opts: SimulationOptions) {
    const { seed, startMs, durationMs, members, nonMembers = 20, visitShare = 0.5, memberIntervalMs = 1000 } = opts;
    if (!(durationMs > 0) || !Number.isInteger(members) || members < 0 || !(visitShare >= 0 && visitShare <= 1)) {
      throw new RangeError('simulation: durationMs > 0, members a count and visitShare in 0..1 are required');
    }
    this.#opts = opts;
    this.radio = { ...DEFAULT_RADIO, ...opts.radio };
    this.#clock = opts.clock ?? new VirtualClock(startMs);
    const rng = createRng(seed);
    const u = (a: number, b: number) => a + (b - a) * rng();
    const trip = (kind: Trip['kind']): Trip => kind === 'fixed'
      ? { kind, closestM: u(2, 25), speedMps: 1, stayMs: 4 * durationMs, centerMs: startMs + durationMs / 2 }
      : kind === 'visit'
        ? { kind, closestM: u(0.5, 5), speedMps: u(0.8, 1.5), stayMs: Math.round(u(2, 25) * 60_000), centerMs: Math.round(u(startMs, startMs + durationMs)) }
        : { kind, closestM: u(3, 20), speedMps: u(0.8, 1.5), stayMs: 0, centerMs: Math.round(u(startMs, startMs + durationMs)) };
    this.#devices = Array.from({ length: members }, (_, member) => ({
      trip: trip(rng() < visitShare ? 'visit' : 'walk_by'), intervalMs: memberIntervalMs, member, payload: {}, rotates: true,
    }));
    this.trips = this.#devices.map((d) => d.trip);
    for (let i = 0; i < nonMembers; i += 1) {
      const kind = OTHER_KINDS[i % OTHER_KINDS.length] as (typeof OTHER_KINDS)[number];
      const moving = kind === 'apple' || kind === 'headphones';
      this.#devices.push({
        trip: trip(!moving ? 'fixed' : rng() < visitShare ? 'visit' : 'walk_by'),
        intervalMs: Math.round(u(500, 2000)), member: null, payload: otherPayload(kind, rng), rotates: kind === 'apple',
      });
    }
  }

  distanceAt(member: number, atMs: number): number {
    const trip = this.trips[member];
    if (!trip) throw new RangeError(`simulation: no member ${member}`);
    return tripDistance(trip, atMs);
  }

  /** When each member really was within each zone's radius, within the day, by start time. */
  groundTruth(): TruthInterval[] {
    const { startMs, durationMs, zones = [{ id: 'store', radiusM: 8 }] } = this.#opts;
    const out: TruthInterval[] = [];
    this.trips.forEach((trip, member) => {
      for (const zone of zones) {
        const within = tripWithin(trip, zone.radiusM);
        const fromMs = Math.max(startMs, within?.[0] ?? Infinity);
        const toMs = Math.min(startMs + durationMs, within?.[1] ?? -Infinity);
        if (fromMs < toMs) out.push({ member, zoneId: zone.id, fromMs, toMs });
      }
    });
    return out.sort((a, b) => a.fromMs - b.fromMs || a.member - b.member);
  }

  /** The whole day's advertisements in time order, computed as they are pulled; the same every time. */
  *advertisements(): Generator<Advertisement> {
    const { seed, startMs, durationMs } = this.#opts;
    const endMs = startMs + durationMs;
    const rng = createRng(seed ^ 0x5eed5eed);
    const r = this.radio;
    // Beyond this a packet is above sensitivity less than once in a thousand: not worth generating.
    const rangeM = Math.min(100, 10 ** ((r.txPowerAt1m - r.sensitivityDbm + 3 * r.noiseSigmaDb) / (10 * r.pathLossExponent)));
    const states = this.#devices.map((d, index) => {
      const audible = tripWithin(d.trip, rangeM);
      return { d, index, next: Math.max(startMs, audible?.[0] ?? Infinity) + rng() * d.intervalMs, until: audible?.[1] ?? -Infinity };
    });
    for (let slice = startMs; slice < endMs; slice += SLICE_MS) {
      const batch: Advertisement[] = [];
      for (const s of states) {
        const until = Math.min(slice + SLICE_MS, endMs, s.until);
        while (s.next < until) {
          const at = Math.floor(s.next);
          s.next += s.d.intervalMs + rng() * 10; // BLE adds a random 0-10 ms advDelay to every interval
          // Both draws happen whether or not the packet arrives, so one device never shifts another's noise.
          const rssi = Math.round(pathLossRssi(tripDistance(s.d.trip, at), r) + r.noiseSigmaDb * gaussian(rng));
          if (rng() < r.lossRate || rssi < r.sensitivityDbm) continue;
          const p = s.d.member === null ? s.d.payload : this.#opts.memberPayload(s.d.member, at);
          const period = s.d.rotates ? Math.floor(at / ADDRESS_PERIOD_MS) : 0;
          const ad: Advertisement = { address: p.address ?? addressOf(seed, s.index, period, s.d.rotates), rssi, seenAt: at };
          if (p.manufacturerData) ad.manufacturerData = p.manufacturerData;
          if (p.serviceData) ad.serviceData = p.serviceData;
          batch.push(ad);
        }
      }
      yield* batch.sort((a, b) => a.seenAt - b.seenAt);
    }
  }

  /** Delivers the day from the clock's current time on, pacing by the clock (instant on a VirtualClock). */
  async start(onAdvertisement: (ad: Advertisement) => void): Promise<void> {
    this.#run.stopped = true;
    const run: Run = (this.#run = { stopped: false });
    const from = this.#clock.now();
    const ads = (function* (all: Iterable<Advertisement>) {
      for (const ad of all) if (ad.seenAt >= from) yield ad;
    })(this.advertisements());
    this.#done = pump(ads, (ad) => ad.seenAt, this.#clock, run, onAdvertisement);
  }

  async stop(): Promise<void> { this.#run.stopped = true; }

  /** Resolves when the day has been delivered or the run stopped. */
  finished(): Promise<void> { return this.#done; }
}

function otherPayload(kind: (typeof OTHER_KINDS)[number], rng: () => number): Payload {
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rng() * 256)));
  switch (kind) {
    case 'apple': // Nearby Info, company 0x004c
      return { manufacturerData: Buffer.concat([Buffer.from('4c001005', 'hex'), bytes(5)]) };
    case 'microsoft': // CDP beacon, company 0x0006
      return { manufacturerData: Buffer.concat([Buffer.from('060001092002', 'hex'), bytes(20)]) };
    case 'beacon': // someone else's Eddystone-UID
      return { serviceData: [{ uuid: 'feaa', data: Buffer.concat([Buffer.from('00ee', 'hex'), bytes(16), Buffer.alloc(2)]) }] };
    case 'headphones': // Google Fast Pair model id
      return { serviceData: [{ uuid: 'fe2c', data: bytes(3) }] };
  }
}

/** A random address, stable per (device, period): resolvable private (0b01...) if it rotates, else static (0b11...). */
function addressOf(seed: number, device: number, period: number, rotates: boolean): string {
  const rng = createRng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(device + 1, 0x85ebca6b) ^ Math.imul(period + 1, 0xc2b2ae35)) >>> 0);
  const bytes = Array.from({ length: 6 }, () => Math.floor(rng() * 256));
  bytes[0] = ((bytes[0] ?? 0) & 0x3f) | (rotates ? 0x40 : 0xc0);
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
