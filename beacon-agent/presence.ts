/**
 * Presence at one box: turns the sightings of member EIDs into enter / dwell / exit events per zone, one small
 * state machine per (EID, zone): outside -> candidate -> inside -> leaving -> outside. Pure: time is the
 * sighting's own timestamp or tick()'s argument, the clock is never read.
 *
 * Words
 * - sample: one sighting's RSSI after calibration (raw + rssiOffset), kept for windowMs.
 * - smoothed RSSI: the median of the samples in the window ending at a moment. It ranks how near a phone is
 *   to this box's receiver; it is not a distance.
 * - candidate: smoothed RSSI at or above enterRssi, not yet for minDwellMs.
 * - leaving: inside, but the latest smoothed RSSI is below exitRssi or nothing was heard for a whole window.
 *
 * Why a median and not a Kalman filter: BLE RSSI noise is not Gaussian. Body shadowing and multipath give
 * deep one-packet fades (-10 to -20 dB) and sightings arrive irregularly (advertising jitter, missed scans,
 * phones throttled in the background). A median over a time window ignores a minority of outliers outright,
 * needs no motion model or noise variances to tune per phone, handles uneven spacing by construction, and is
 * easy to reason about in tests. Its cost (a lag of about half a window) is small next to minDwellMs.
 *
 * Why events do not flicker: enter needs the median to hold at or above enterRssi for minDwellMs; leaving
 * needs it below exitRssi (lower: hysteresis); exit needs no inside evidence for exitGraceMs, and any inside
 * evidence during the grace cancels it. Every event's moment depends on the sightings only, never on how
 * often tick() runs: enter at the sighting that completes the hold, dwell at enteredAt + k * dwellEveryMs,
 * exit at lastInsideAt + exitGraceMs. So its id is the same however the box is driven.
 */
import { createHash } from 'node:crypto';
import type { PresenceEvent, PresenceKind, Sighting, SightingSource, ZoneConfig } from './types.js';

export type PresencePhase = 'outside' | 'candidate' | 'inside' | 'leaving';

export interface PresenceTrackerOptions {
  agentId: string;
  zones: ZoneConfig[];
  /** Added to every raw RSSI, so that one threshold means the same at every box (dB, default 0). */
  rssiOffset?: number;
  /** Smoothing window (ms, default 5000). */
  windowMs?: number;
}

interface Sample { at: number; rssi: number }

interface ZoneState {
  phase: PresencePhase;
  /** Candidate: when the hold above enterRssi began. */
  since: number;
  enteredAt: number;
  /** The latest sighting after which the smoothed RSSI was at or above exitRssi. */
  lastInsideAt: number;
  dwellsSent: number;
}

interface Track {
  samples: Sample[];
  lastHeardAt: number;
  smoothed: number;
  source: SightingSource;
  zones: ZoneState[];
}

/**
 * A phone advertising at 10 Hz fills a 5 s window with 50; more adds nothing to a median but memory. A phone
 * chattier still is smoothed over its latest 64 sightings, a shorter window, which its rate makes up for.
 */
const MAX_SAMPLES = 64;

export class PresenceTracker {
  readonly #agentId: string;
  readonly #zones: ZoneConfig[];
  readonly #offset: number;
  readonly #windowMs: number;
  readonly #tracks = new Map<string, Track>();
  #clock = -Infinity;

  constructor(opts: PresenceTrackerOptions) {
    const windowMs = opts.windowMs ?? 5000;
    if (!(windowMs > 0)) throw new RangeError(`presence: windowMs must be > 0, got ${windowMs}`);
    validateZones(opts.zones, windowMs);
    this.#agentId = opts.agentId;
    this.#zones = opts.zones.map((z) => ({ ...z }));
    this.#offset = opts.rssiOffset ?? 0;
    this.#windowMs = windowMs;
  }

  /** One sighting. A sighting older than the newest seen counts as heard now: time never runs backwards. */
  observe(s: Sighting): PresenceEvent[] {
    if (!Number.isFinite(s.rssi) || !Number.isFinite(s.at)) return [];
    const t = (this.#clock = Math.max(this.#clock, s.at));
    let track = this.#tracks.get(s.eid);
    if (!track) {
      track = { samples: [], lastHeardAt: -Infinity, smoothed: s.rssi + this.#offset, source: s.source, zones: this.#zones.map(outside) };
      this.#tracks.set(s.eid, track);
    }
    const events = this.#expire(s.eid, track, t);
    track.samples.push({ at: t, rssi: s.rssi + this.#offset });
    prune(track.samples, t - this.#windowMs);
    track.lastHeardAt = t;
    track.source = s.source;
    track.smoothed = median(track.samples.map((x) => x.rssi));
    this.#zones.forEach((zone, i) => events.push(...this.#step(s.eid, track, zone, track.zones[i] as ZoneState, t)));
    return events;
  }

  /** Exits on silence, and forgets EIDs outside everywhere and unheard for a window. Call it about once a second. */
  tick(nowMs: number): PresenceEvent[] {
    const now = (this.#clock = Math.max(this.#clock, nowMs));
    const events: PresenceEvent[] = [];
    for (const [eid, track] of this.#tracks) {
      events.push(...this.#expire(eid, track, now));
      const quiet = track.lastHeardAt <= now - this.#windowMs;
      if (quiet && track.zones.every((z) => z.phase === 'outside')) this.#tracks.delete(eid);
    }
    return events;
  }

  /** How many EIDs are remembered. */
  size(): number {
    return this.#tracks.size;
  }

  phaseOf(eid: string, zoneId: string): PresencePhase {
    const i = this.#zones.findIndex((z) => z.id === zoneId);
    return this.#tracks.get(eid)?.zones[i]?.phase ?? 'outside';
  }

  /** What the passing of time alone decides, up to t: candidates unheard for a window drop, due exits happen. */
  #expire(eid: string, track: Track, t: number): PresenceEvent[] {
    const events: PresenceEvent[] = [];
    const quiet = track.lastHeardAt <= t - this.#windowMs;
    this.#zones.forEach((zone, i) => {
      const z = track.zones[i] as ZoneState;
      if (z.phase === 'candidate' && quiet) z.phase = 'outside';
      if (z.phase === 'inside' || z.phase === 'leaving') {
        const exitAt = z.lastInsideAt + zone.exitGraceMs;
        if (t >= exitAt) {
          events.push(this.#event(eid, track, zone, 'exit', exitAt, z.lastInsideAt - z.enteredAt));
          track.zones[i] = outside();
        } else if (quiet) z.phase = 'leaving';
      }
    });
    prune(track.samples, t - this.#windowMs);
    return events;
  }

  /** What one new sample at t decides for one zone; track.smoothed is the median ending at t. */
  #step(eid: string, track: Track, zone: ZoneConfig, z: ZoneState, t: number): PresenceEvent[] {
    const m = track.smoothed;
    if (z.phase === 'outside' && m >= zone.enterRssi) {
      z.phase = 'candidate';
      z.since = t;
    }
    if (z.phase === 'candidate') {
      if (m < zone.enterRssi) z.phase = 'outside';
      else if (t - z.since >= zone.minDwellMs) {
        z.phase = 'inside';
        z.enteredAt = z.lastInsideAt = t;
        z.dwellsSent = 0;
        return [this.#event(eid, track, zone, 'enter', t)];
      }
      return [];
    }
    if (z.phase === 'outside') return [];
    if (m < zone.exitRssi) {
      z.phase = 'leaving';
      return [];
    }
    z.phase = 'inside';
    z.lastInsideAt = t;
    const events: PresenceEvent[] = [];
    // Dwells due while the visit went on, including across a short gap that did not end it.
    while (zone.dwellEveryMs > 0 && z.enteredAt + (z.dwellsSent + 1) * zone.dwellEveryMs <= t) {
      z.dwellsSent += 1;
      const dwellMs = z.dwellsSent * zone.dwellEveryMs;
      events.push(this.#event(eid, track, zone, 'dwell', z.enteredAt + dwellMs, dwellMs, t));
    }
    return events;
  }

  /** `evidenceAt`: the end of the window the RSSI and confidence are read from (default: the event's moment). */
  #event(eid: string, track: Track, zone: ZoneConfig, kind: PresenceKind, atMs: number, dwellMs?: number, evidenceAt = atMs): PresenceEvent {
    const window = track.samples.filter((x) => x.at > evidenceAt - this.#windowMs && x.at <= evidenceAt).map((x) => x.rssi);
    const rssi = window.length > 0 ? median(window) : track.smoothed;
    const event: PresenceEvent = {
      id: presenceEventId(this.#agentId, eid, zone.id, kind, atMs),
      kind, eid, zoneId: zone.id, at: new Date(atMs).toISOString(), source: track.source,
      confidence: confidence(kind, window, zone),
      rssi: Math.round(rssi * 10) / 10,
    };
    if (dwellMs !== undefined) event.dwellMs = dwellMs;
    return event;
  }
}

/**
 * How sure the box is of what the event claims, from the window of calibrated samples behind it:
 *
 *   confidence = strength * steadiness * support, rounded to 0.01
 *   strength   = clamp01(0.5 + margin / 20): margin is how many dB the median is past the threshold the event
 *                claims (enter: median - enterRssi; dwell: median - exitRssi; exit: exitRssi - median), so
 *                exactly at the threshold is 0.5 and 10 dB past it is 1
 *   steadiness = 1 / (1 + (sigma / 8)^2), sigma = 1.4826 * MAD (a robust standard deviation): a steady phone
 *                (2 dB) ~0.94, typical BLE noise (5 dB) ~0.72, a 8 dB jumble 0.5
 *   support    = min(1, n / 5): fewer than five samples are thin evidence (and a single one has no spread)
 *
 * An exit with an empty window (unheard for a whole window) is 1: the box heard nothing, and that is as sure
 * as it gets; whether the phone walked away or its EID rotated is for the gateway to tell.
 */
export function confidence(kind: PresenceKind, window: readonly number[], zone: Pick<ZoneConfig, 'enterRssi' | 'exitRssi'>): number {
  if (window.length === 0) return kind === 'exit' ? 1 : 0;
  const m = median(window);
  const margin = kind === 'enter' ? m - zone.enterRssi : kind === 'dwell' ? m - zone.exitRssi : zone.exitRssi - m;
  const strength = Math.min(1, Math.max(0, 0.5 + margin / 20));
  const sigma = 1.4826 * median(window.map((x) => Math.abs(x - m)));
  const steadiness = 1 / (1 + (sigma / 8) ** 2);
  const support = Math.min(1, window.length / 5);
  return Math.round(strength * steadiness * support * 100) / 100;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * sha256 of `${agentId}|${eid}|${zoneId}|${kind}|${atMs}`, its first 32 hex digits laid out as a UUID with the
 * version nibble set to 8 and the RFC 9562 variant bits, so that a uuid column or format check accepts it.
 */
export function presenceEventId(agentId: string, eid: string, zoneId: string, kind: PresenceKind, atMs: number): string {
  const h = createHash('sha256').update(`${agentId}|${eid}|${zoneId}|${kind}|${atMs}`).digest('hex');
  const variant = ((parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function outside(): ZoneState {
  return { phase: 'outside', since: 0, enteredAt: 0, lastInsideAt: 0, dwellsSent: 0 };
}

/** Drops samples at or before `before`, and the oldest beyond MAX_SAMPLES. */
function prune(samples: Sample[], before: number): void {
  let drop = 0;
  while (drop < samples.length && (samples[drop] as Sample).at <= before) drop += 1;
  drop = Math.max(drop, samples.length - MAX_SAMPLES);
  if (drop > 0) samples.splice(0, drop);
}

/**
 * Fails fast on a zone that cannot work. A grace shorter than the window would end visits on silence while the
 * window still holds inside evidence, and a phone advertising less often than the grace would flicker.
 */
function validateZones(zones: readonly ZoneConfig[], windowMs: number): void {
  const ids = new Set<string>();
  for (const z of zones) {
    const bad = ids.has(z.id) ? 'duplicate id'
      : !(z.exitRssi < z.enterRssi) ? 'exitRssi must be below enterRssi'
        : [z.minDwellMs, z.exitGraceMs, z.dwellEveryMs].some((x) => !(x >= 0)) ? 'timings must be >= 0 ms'
          : !(z.exitGraceMs >= windowMs) ? `exitGraceMs must be at least the window (${windowMs} ms)`
            : null;
    if (bad) throw new RangeError(`presence: zone ${JSON.stringify(z.id)}: ${bad}`);
    ids.add(z.id);
  }
}
