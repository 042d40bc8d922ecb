// The agent's presence state machine: scenario tables (one line of signal, the events it must give), ids,
// confidence, memory, and a property over random noisy traces.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { confidence, presenceEventId, PresenceTracker, type PresenceTrackerOptions } from '../beacon-agent/presence.js';
import { createRng, gaussian } from '../beacon-agent/sources.js';
import type { PresenceEvent, Sighting, ZoneConfig } from '../beacon-agent/types.js';

const T0 = Date.parse('2026-06-03T10:00:00Z');
const EID = '0123456789abcdef';
const STORE: ZoneConfig = { id: 'store', enterRssi: -70, exitRssi: -80, minDwellMs: 10_000, exitGraceMs: 15_000, dwellEveryMs: 60_000 };
const TILL: ZoneConfig = { id: 'till', enterRssi: -58, exitRssi: -66, minDwellMs: 5_000, exitGraceMs: 10_000, dwellEveryMs: 0 };

/** From second `from` (inclusive) to `to` (exclusive), one sighting a second at `rssi` (+ Gaussian noise), or none. */
type Segment = [from: number, to: number, rssi: number | 'silent', sigma?: number];

interface RunOptions { zones?: ZoneConfig[]; rssiOffset?: number; tickEveryS?: number; seed?: number; eid?: string }

/** Plays the segments with a tick every tickEveryS seconds and a last one long after; returns every event. */
function play(segments: Segment[], o: RunOptions = {}): { events: PresenceEvent[]; tracker: PresenceTracker } {
  const opts: PresenceTrackerOptions = { agentId: 'box-1', zones: o.zones ?? [STORE] };
  if (o.rssiOffset !== undefined) opts.rssiOffset = o.rssiOffset;
  const tracker = new PresenceTracker(opts);
  const rng = createRng(o.seed ?? 1);
  const events: PresenceEvent[] = [];
  const end = Math.max(0, ...segments.map((s) => s[1]));
  const tickEvery = o.tickEveryS ?? 1;
  for (let sec = 0; sec < end; sec += 1) {
    const seg = segments.find(([from, to]) => sec >= from && sec < to);
    if (seg && seg[2] !== 'silent') {
      const rssi = Math.round(seg[2] + (seg[3] ?? 0) * gaussian(rng));
      events.push(...tracker.observe({ eid: o.eid ?? EID, rssi, at: T0 + sec * 1000, source: 'ble_passive' }));
    }
    if ((sec + 1) % tickEvery === 0) events.push(...tracker.tick(T0 + sec * 1000 + 500));
  }
  events.push(...tracker.tick(T0 + end * 1000 + 3_600_000));
  return { events, tracker };
}

/** "kind@second", with ":dwellSeconds" for dwell and exit, and "/zone" when not the store. */
const show = (e: PresenceEvent) => {
  const s = `${e.kind}@${(Date.parse(e.at) - T0) / 1000}${e.dwellMs === undefined ? '' : `:${e.dwellMs / 1000}`}`;
  return e.zoneId === 'store' ? s : `${s}/${e.zoneId}`;
};

describe('PresenceTracker: scenarios', () => {
  const cases: Array<{ name: string; segments: Segment[]; opts?: RunOptions; events: string[] }> = [
    {
      // The median of the 5 s window turns at 12 s (three of five samples strong); it holds 10 s; the last
      // sighting is at 199 s, so the exit is due at 199 + 15.
      name: 'walks in and dwells: one enter, a dwell a minute, one exit after the grace',
      segments: [[0, 10, -90], [10, 200, -60], [200, 260, 'silent']],
      events: ['enter@22', 'dwell@82:60', 'dwell@142:120', 'exit@214:177'],
    },
    {
      name: 'walks by: above the enter threshold for 7 s of the 10 needed, no event at all',
      segments: [[0, 10, -90], [10, 18, -60], [18, 40, -90]],
      events: [],
    },
    {
      name: 'strong but brief and then gone: no event',
      segments: [[0, 9, -50]],
      events: [],
    },
    {
      name: 'unheard for 10 s (less than the grace) mid-visit: the visit goes on, its dwell is due',
      segments: [[0, 60, -60], [60, 70, 'silent'], [70, 100, -60]],
      events: ['enter@10', 'dwell@70:60', 'exit@114:89'],
    },
    {
      name: 'unheard for 20 s (more than the grace): exit, then a new visit',
      segments: [[0, 30, -60], [30, 50, 'silent'], [50, 80, -60]],
      events: ['enter@10', 'exit@44:19', 'enter@60', 'exit@94:19'],
    },
    {
      name: 'still heard but weak: leaving once the median drops below exitRssi, exit a grace later',
      segments: [[0, 40, -60], [40, 100, -90]],
      events: ['enter@10', 'exit@56:31'],
    },
    {
      name: 'between the thresholds after entering: stays inside (hysteresis)',
      segments: [[0, 20, -65], [20, 200, -75]],
      events: ['enter@10', 'dwell@70:60', 'dwell@130:120', 'dwell@190:180', 'exit@214:189'],
    },
    {
      name: 'between the thresholds from the start: never enters',
      segments: [[0, 200, -75]],
      events: [],
    },
    {
      name: 'a one-packet fade inside does not matter: the median ignores it',
      segments: [[0, 30, -60], [30, 31, -100], [31, 60, -60]],
      events: ['enter@10', 'exit@74:49'],
    },
    {
      name: 'no dwell events when dwellEveryMs is 0',
      segments: [[0, 200, -60]],
      opts: { zones: [{ ...STORE, dwellEveryMs: 0 }] },
      events: ['enter@10', 'exit@214:189'],
    },
    {
      name: 'minDwellMs 0: enters on the first strong median',
      segments: [[0, 5, -60]],
      opts: { zones: [{ ...STORE, minDwellMs: 0 }] },
      events: ['enter@0', 'exit@19:4'],
    },
    {
      name: 'calibration: a box that reads 8 dB low, uncorrected, sees nothing',
      segments: [[0, 60, -75]],
      events: [],
    },
    {
      name: 'calibration: the same box with rssiOffset +8 sees the visit',
      segments: [[0, 60, -75]],
      opts: { rssiOffset: 8 },
      events: ['enter@10', 'exit@74:49'],
    },
    {
      name: 'calibration: a negative offset pushes a marginal phone out',
      segments: [[0, 60, -68]],
      opts: { rssiOffset: -5 },
      events: [],
    },
    {
      name: 'two zones: the store from -70, the till from -58, each with its own timings',
      segments: [[0, 30, -65], [30, 60, -50], [60, 90, -75], [90, 120, 'silent']],
      opts: { zones: [STORE, TILL] },
      events: ['enter@10', 'enter@37/till', 'dwell@70:60', 'exit@71:24/till', 'exit@104:79'],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      expect(play(c.segments, c.opts).events.map(show)).toEqual(c.events);
    });
  }
});

describe('PresenceTracker: noise at the boundary does not flicker', () => {
  // A phone standing where the mean RSSI sits near the enter threshold for 30 minutes, with 4-6 dB of noise,
  // then walking away: at most one visit, and never an exit while it stands there.
  const table = [-74, -72, -70, -69, -66].flatMap((mean) => [4, 5, 6].flatMap((sigma) => [1, 2, 3].map((seed) => ({ mean, sigma, seed }))));
  it.each(table)('mean $mean dBm, sigma $sigma dB, seed $seed', ({ mean, sigma, seed }) => {
    const { events } = play([[0, 1800, mean, sigma], [1800, 1900, 'silent']], { seed, zones: [{ ...STORE, dwellEveryMs: 0 }] });
    const kinds = events.map((e) => e.kind).join(',');
    expect(['', 'enter,exit']).toContain(kinds);
    if (kinds) expect(Date.parse(events[1]?.at ?? '') - T0).toBeGreaterThanOrEqual(1800_000);
    // A phone standing at or above the threshold is found within the half hour whatever the noise.
    if (mean >= -70) expect(kinds).toBe('enter,exit');
  });
});

describe('PresenceTracker: ids, confidence and bookkeeping', () => {
  it('ids are deterministic, UUID-shaped, and differ per agent, EID, zone, kind and moment', () => {
    const a = play([[0, 100, -60]]).events;
    const b = play([[0, 100, -60]]).events;
    expect(a.map((e) => e.id)).toEqual(b.map((e) => e.id));
    for (const e of a) expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const id = presenceEventId('box-1', EID, 'store', 'enter', T0);
    expect(presenceEventId('box-1', EID, 'store', 'enter', T0)).toBe(id);
    const variants = [
      presenceEventId('box-2', EID, 'store', 'enter', T0), presenceEventId('box-1', 'fedcba9876543210', 'store', 'enter', T0),
      presenceEventId('box-1', EID, 'till', 'enter', T0), presenceEventId('box-1', EID, 'store', 'exit', T0),
      presenceEventId('box-1', EID, 'store', 'enter', T0 + 1),
    ];
    expect(new Set([id, ...variants]).size).toBe(6);
  });

  it('events are the same whether tick() runs every second, every 13 s, or only at the end', () => {
    const segments: Segment[] = [[0, 300, -68, 5], [300, 330, 'silent'], [330, 600, -64, 5], [600, 700, -90, 5]];
    const ids = (tickEveryS: number) => play(segments, { tickEveryS, seed: 9 }).events.map((e) => e.id).sort();
    expect(ids(1).length).toBeGreaterThan(2);
    expect(ids(13)).toEqual(ids(1));
    expect(ids(10_000)).toEqual(ids(1));
  });

  it('an event carries the smoothed, calibrated RSSI, the source, and a confidence in 0..1', () => {
    const [enter, exit] = play([[0, 20, -66]], { rssiOffset: 2 }).events;
    expect(enter).toMatchObject({ kind: 'enter', eid: EID, zoneId: 'store', source: 'ble_passive', rssi: -64, at: new Date(T0 + 10_000).toISOString() });
    expect(enter?.dwellMs).toBeUndefined();
    expect(exit).toMatchObject({ kind: 'exit', rssi: -64, confidence: 1, dwellMs: 9000 });
  });

  const zone = { enterRssi: -70, exitRssi: -80 };
  const confidenceCases: Array<[name: string, kind: 'enter' | 'dwell' | 'exit', window: number[], expected: number]> = [
    ['steady and 10 dB past the threshold: 1', 'enter', [-60, -60, -60, -60, -60], 1],
    ['steady, exactly at the threshold: 0.5', 'enter', [-70, -70, -70, -70, -70], 0.5],
    ['one sample is thin evidence', 'enter', [-60], 0.2],
    ['noise lowers it: MAD 4 dB, sigma 5.9 dB', 'enter', [-56, -64, -60, -60, -64, -56], 0.65],
    ['dwell is measured against exitRssi', 'dwell', [-70, -70, -70, -70, -70], 1],
    ['exit, heard weak: 10 dB below exitRssi', 'exit', [-90, -90, -90, -90, -90], 1],
    ['exit, heard strong (grace shorter than the window): low', 'exit', [-75, -75, -75, -75, -75], 0.25],
    ['exit, unheard: 1', 'exit', [], 1],
  ];
  it.each(confidenceCases)('confidence: %s', (_name, kind, window, expected) => {
    expect(confidence(kind, window, zone)).toBeCloseTo(expected, 2);
  });

  it('bounded memory: a thousand walk-bys are forgotten once quiet, visits once they have exited', () => {
    const tracker = new PresenceTracker({ agentId: 'box-1', zones: [STORE, TILL] });
    const sightings: Sighting[] = [];
    for (let i = 0; i < 1000; i += 1) {
      const eid = i.toString(16).padStart(16, '0');
      const strong = i % 10 === 0;
      for (let s = 0; s < (strong ? 30 : 3); s += 1) sightings.push({ eid, rssi: strong ? -55 : -85, at: T0 + i * 100 + s * 1000, source: 'ble_passive' });
    }
    for (const s of sightings.sort((a, b) => a.at - b.at)) tracker.observe(s);
    expect(tracker.size()).toBe(1000);
    // Phone i is heard from i * 100 ms; the weak ones for 3 s, the strong ones (every tenth) for 30 s.
    const exits = tracker.tick(T0 + 132_000);
    // Left: the strong phones last heard less than the store's 15 s grace ago, 890 to 990.
    expect(tracker.size()).toBe(11);
    expect(tracker.phaseOf((990).toString(16).padStart(16, '0'), 'store')).toBe('inside');
    expect(tracker.phaseOf((900).toString(16).padStart(16, '0'), 'store')).toBe('leaving');
    expect(tracker.phaseOf((900).toString(16).padStart(16, '0'), 'till')).toBe('outside');
    exits.push(...tracker.tick(T0 + 3_600_000));
    expect(exits.filter((e) => e.kind === 'exit')).toHaveLength(200); // 100 strong phones, two zones each
    expect(tracker.size()).toBe(0);
  });

  it('a phone heard every 10 ms (capped at 64 samples a window) gives the same decisions', () => {
    const tracker = new PresenceTracker({ agentId: 'box-1', zones: [STORE] });
    const events: PresenceEvent[] = [];
    for (let ms = 0; ms < 60_000; ms += 10) events.push(...tracker.observe({ eid: EID, rssi: -60, at: T0 + ms, source: 'ble_active' }));
    expect(events.map(show)).toEqual(['enter@10']);
    expect(events[0]?.source).toBe('ble_active');
  });

  it('refuses zones without hysteresis, duplicated ids, negative timings, a grace shorter than the window, or an empty window', () => {
    expect(() => new PresenceTracker({ agentId: 'a', zones: [{ ...STORE, exitRssi: -70 }] })).toThrow(/exitRssi must be below enterRssi/);
    expect(() => new PresenceTracker({ agentId: 'a', zones: [STORE, STORE] })).toThrow(/duplicate/);
    expect(() => new PresenceTracker({ agentId: 'a', zones: [{ ...STORE, exitGraceMs: -1 }] })).toThrow(/timings/);
    expect(() => new PresenceTracker({ agentId: 'a', zones: [STORE], windowMs: 0 })).toThrow(/windowMs/);
    expect(() => new PresenceTracker({ agentId: 'a', zones: [{ ...STORE, exitGraceMs: 4000 }] })).toThrow(/exitGraceMs must be at least the window/);
  });

  it('a sighting from the past counts as heard now, and a non-finite one is ignored', () => {
    const tracker = new PresenceTracker({ agentId: 'a', zones: [{ ...STORE, minDwellMs: 0 }] });
    tracker.tick(T0 + 5000);
    const [enter] = tracker.observe({ eid: EID, rssi: -60, at: T0, source: 'ble_passive' });
    expect(enter?.at).toBe(new Date(T0 + 5000).toISOString());
    expect(tracker.observe({ eid: EID, rssi: Number.NaN, at: T0 + 6000, source: 'ble_passive' })).toEqual([]);
  });
});

describe('PresenceTracker: property over random noisy traces', () => {
  const zoneArb = (id: string) => fc.record({
    enterRssi: fc.integer({ min: -85, max: -50 }), hysteresis: fc.integer({ min: 1, max: 15 }),
    minDwellMs: fc.integer({ min: 0, max: 20_000 }), exitGraceMs: fc.integer({ min: 5_000, max: 30_000 }),
    dwellEveryMs: fc.oneof(fc.constant(0), fc.integer({ min: 1_000, max: 60_000 })),
  }).map((z): ZoneConfig => ({ id, enterRssi: z.enterRssi, exitRssi: z.enterRssi - z.hysteresis, minDwellMs: z.minDwellMs, exitGraceMs: z.exitGraceMs, dwellEveryMs: z.dwellEveryMs }));
  /** Stretches of a level with noise, or of silence, for one of three EIDs; sightings 0.2-3 s apart. */
  const traceArb = fc.array(fc.record({
    eid: fc.integer({ min: 0, max: 2 }), seconds: fc.integer({ min: 1, max: 90 }),
    level: fc.oneof(fc.integer({ min: -100, max: -40 }), fc.constant(null)), sigma: fc.integer({ min: 0, max: 8 }),
    gapMs: fc.integer({ min: 200, max: 3000 }),
  }), { minLength: 1, maxLength: 25 });

  function simulate(zones: ZoneConfig[], trace: Array<{ eid: number; seconds: number; level: number | null; sigma: number; gapMs: number }>, seed: number, tickMs: number) {
    const tracker = new PresenceTracker({ agentId: 'box-p', zones });
    const rng = createRng(seed);
    const events: PresenceEvent[] = [];
    let t = T0;
    let nextTick = T0 + tickMs;
    for (const seg of trace) {
      const end = t + seg.seconds * 1000;
      for (; t < end; t += seg.gapMs) {
        while (nextTick <= t) { events.push(...tracker.tick(nextTick)); nextTick += tickMs; }
        if (seg.level === null) continue;
        const eid = `00000000000000${seg.eid.toString(16).padStart(2, '0')}`;
        events.push(...tracker.observe({ eid, rssi: Math.round(seg.level + seg.sigma * gaussian(rng)), at: t, source: 'ble_passive' }));
      }
    }
    events.push(...tracker.tick(t + 3_600_000));
    return { events, tracker };
  }

  it('per (EID, zone): enter, dwell*, exit, strictly alternating; times in order; all closed in the end', () => {
    let visits = 0;
    fc.assert(fc.property(zoneArb('a'), zoneArb('b'), traceArb, fc.integer(), fc.integer({ min: 300, max: 20_000 }), (za, zb, trace, seed, tickMs) => {
      const { events, tracker } = simulate([za, zb], trace, seed, tickMs);
      visits += events.filter((e) => e.kind === 'enter').length;
      expect(tracker.size()).toBe(0);
      expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
      const byKey = new Map<string, PresenceEvent[]>();
      for (const e of events) byKey.set(`${e.eid}/${e.zoneId}`, [...(byKey.get(`${e.eid}/${e.zoneId}`) ?? []), e]);
      for (const list of byKey.values()) {
        expect(list.map((e) => ({ enter: 'E', dwell: 'D', exit: 'X' })[e.kind]).join('')).toMatch(/^(ED*X)*$/);
        for (let i = 1; i < list.length; i += 1) expect(Date.parse(list[i]?.at ?? '')).toBeGreaterThanOrEqual(Date.parse(list[i - 1]?.at ?? ''));
        for (const e of list) {
          expect(e.confidence).toBeGreaterThanOrEqual(0);
          expect(e.confidence).toBeLessThanOrEqual(1);
        }
      }
    }), { numRuns: 300 });
    expect(visits).toBeGreaterThan(300); // the traces do make visits, not only silence
  });

  it('the same events whatever the tick cadence', () => {
    fc.assert(fc.property(zoneArb('a'), traceArb, fc.integer(), fc.integer({ min: 300, max: 20_000 }), (za, trace, seed, tickMs) => {
      const ids = (ms: number) => simulate([za], trace, seed, ms).events.map((e) => `${e.id} ${e.confidence} ${e.rssi}`).sort();
      expect(ids(tickMs)).toEqual(ids(1000));
    }), { numRuns: 150 });
  });
});
