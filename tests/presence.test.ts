import { describe, expect, it } from 'vitest';
// Straight from the module: the folder's index also re-exports geometry, which this suite does not need.
import {
  DEFAULT_PRESENCE_POLICY, stepAll, stepPresence, type GeofenceEvent, type GeofencePresence, type PresencePolicy, type PresenceRules,
} from '../campaign-rules/presence.js';

const T0 = Date.parse('2026-06-03T10:00:00Z');
const at = (minute: number) => new Date(T0 + minute * 60_000);
const iso = (minute: number) => at(minute).toISOString();
const OUT: GeofencePresence = { state: 'outside' };
const fence = { id: 'g' };
const NO_RULES: PresenceRules = { dwellMinutes: [], passByMinutes: [] };

/** minute offset from T0, signed distance (m), accuracy (m). */
type Fix = [minute: number, signedDistanceM: number, accuracyM: number];

/** An event as "kind@minute" or "kind@minute:minutes", so a scenario reads as one line. */
const show = (e: GeofenceEvent) => {
  const m = `${e.kind}@${(e.at.getTime() - T0) / 60_000}`;
  return e.minutes === undefined ? m : `${m}:${e.minutes}`;
};

function run(fixes: Fix[], rules: PresenceRules = NO_RULES, policy?: PresencePolicy, start: GeofencePresence = OUT) {
  let state = start;
  const events: GeofenceEvent[] = [];
  for (const [minute, signedDistanceM, accuracyM] of fixes) {
    const step = stepPresence(state, { signedDistanceM, accuracyM, at: at(minute) }, fence, rules, policy);
    state = step.next;
    events.push(...step.events);
  }
  return { state, events: events.map(show) };
}

const inside = (enteredMin: number, lastMin: number, reportedDwellMinutes: number[] = []): GeofencePresence => ({
  state: 'inside', enteredAt: iso(enteredMin), lastFixAt: iso(lastMin), reportedDwellMinutes,
});

describe('stepPresence: scenarios', () => {
  const dwell5 = { dwellMinutes: [5], passByMinutes: [3] };
  const cases: Array<{ name: string; fixes: Fix[]; rules?: PresenceRules; policy?: PresencePolicy; events: string[]; state?: GeofencePresence }> = [
    {
      name: 'clean enter, dwell, exit',
      fixes: [[0, 50, 10], [1, -20, 10], [7, -30, 10], [20, 40, 10]], rules: dwell5,
      events: ['geofence_enter@1', 'geofence_dwell@7:5', 'geofence_exit@20:19'], state: OUT,
    },
    {
      name: 'a wobble across the boundary within the exit buffer: one enter, no exit',
      fixes: [[0, -5, 10], [1, 5, 10], [2, -3, 10], [3, 20, 10], [4, -1, 10], [5, 24.9, 10]],
      events: ['geofence_enter@0'], state: inside(0, 5),
    },
    {
      name: 'a poor-accuracy fix just outside does not exit; a precise one there does',
      fixes: [[0, -10, 10], [1, 40, 60], [2, 40, 10]],
      events: ['geofence_enter@0', 'geofence_exit@2:2'],
    },
    {
      name: 'the exit buffer is reached exactly: exits',
      fixes: [[0, -10, 10], [1, 25, 10]],
      events: ['geofence_enter@0', 'geofence_exit@1:1'],
    },
    {
      name: 'on the boundary enters; just beyond it does not',
      fixes: [[0, 0.1, 5], [1, 0, 5]],
      events: ['geofence_enter@1'],
    },
    {
      name: 'an enter buffer asks for the fix to be that far inside',
      fixes: [[0, -4.9, 5], [1, -5, 5]], policy: { ...DEFAULT_PRESENCE_POLICY, enterBufferM: 5 },
      events: ['geofence_enter@1'],
    },
    {
      name: 'pass-by: in and out within 3 minutes, with minutes and no dwell',
      fixes: [[0, -10, 5], [1, -10, 5], [2.5, 30, 5]], rules: dwell5,
      events: ['geofence_enter@0', 'geofence_exit@2.5:2.5', 'pass_by@2.5:2.5'],
    },
    {
      name: 'a visit longer than every pass-by threshold is no pass-by (minutes are not rounded down)',
      fixes: [[0, -10, 5], [3.5, 30, 5]], rules: dwell5,
      events: ['geofence_enter@0', 'geofence_exit@3.5:3.5'],
    },
    {
      name: 'one pass_by with the actual minutes, however many thresholds it is within',
      fixes: [[0, -10, 5], [2, 30, 5]], rules: { dwellMinutes: [], passByMinutes: [10, 3, 5] },
      events: ['geofence_enter@0', 'geofence_exit@2:2', 'pass_by@2:2'],
    },
    {
      name: 'a visit with a dwell reported is no pass-by',
      fixes: [[0, -10, 5], [1, -10, 5], [2, 30, 5]], rules: { dwellMinutes: [1], passByMinutes: [3] },
      events: ['geofence_enter@0', 'geofence_dwell@1:1', 'geofence_exit@2:2'],
    },
    {
      name: 'two dwell thresholds, each reported once (duplicates and order in the rules do not matter)',
      fixes: [[0, -10, 5], [3, -10, 5], [6, -10, 5], [10, -10, 5], [16, -10, 5], [20, -10, 5]],
      rules: { dwellMinutes: [15, 5, 5], passByMinutes: [] },
      events: ['geofence_enter@0', 'geofence_dwell@6:5', 'geofence_dwell@16:15'], state: inside(0, 20, [5, 15]),
    },
    {
      name: 'one fix past both thresholds reports both, smallest first',
      fixes: [[0, -10, 5], [20, -10, 5]], rules: { dwellMinutes: [15, 5], passByMinutes: [] },
      events: ['geofence_enter@0', 'geofence_dwell@20:5', 'geofence_dwell@20:15'],
    },
    {
      name: 'a fix in the hysteresis band keeps the visit and counts toward dwell',
      fixes: [[0, -10, 5], [6, 10, 5]], rules: dwell5,
      events: ['geofence_enter@0', 'geofence_dwell@6:5'],
    },
    {
      name: 'a new visit reports its dwell again',
      fixes: [[0, -10, 5], [6, -10, 5], [7, 100, 5], [8, -10, 5], [14, -10, 5]], rules: dwell5,
      events: ['geofence_enter@0', 'geofence_dwell@6:5', 'geofence_exit@7:7', 'geofence_enter@8', 'geofence_dwell@14:5'],
    },
    {
      name: 'an out-of-order fix is ignored',
      fixes: [[0, -10, 5], [10, -10, 5], [5, 100, 5]],
      events: ['geofence_enter@0'], state: inside(0, 10),
    },
    {
      name: 'silence past maxFixAgeMinutes: exit at the last fix (with pass-by), then re-enter',
      fixes: [[0, -10, 5], [2, -10, 5], [40, -10, 5]], rules: dwell5,
      events: ['geofence_enter@0', 'geofence_exit@2:2', 'pass_by@2:2', 'geofence_enter@40'], state: inside(40, 40),
    },
    {
      name: 'silence past maxFixAgeMinutes, the new fix outside: exit at the last fix only',
      fixes: [[0, -10, 5], [10, -10, 5], [45, 100, 5]], rules: dwell5,
      events: ['geofence_enter@0', 'geofence_dwell@10:5', 'geofence_exit@10:10'], state: OUT,
    },
    {
      name: 'silence of exactly maxFixAgeMinutes keeps the visit',
      fixes: [[0, -10, 5], [30, -10, 5]],
      events: ['geofence_enter@0'], state: inside(0, 30),
    },
    {
      name: 'a fix with no distance is ignored',
      fixes: [[0, -10, 5], [1, Number.NaN, 5], [2, -10, 5]],
      events: ['geofence_enter@0'], state: inside(0, 2),
    },
    {
      name: 'a fix of unknown accuracy may enter but cannot prove an exit',
      fixes: [[0, -10, Number.NaN], [1, 500, Number.NaN]],
      events: ['geofence_enter@0'], state: inside(0, 1),
    },
  ];

  it.each(cases)('$name', ({ fixes, rules, policy, events, state }) => {
    const r = run(fixes, rules, policy);
    expect(r.events).toEqual(events);
    if (state) expect(r.state).toEqual(state);
  });
});

describe('stepPresence: state', () => {
  it('returns the very same state for an ignored fix', () => {
    const prev = inside(0, 10);
    const r = stepPresence(prev, { signedDistanceM: 100, accuracyM: 5, at: at(5) }, fence, NO_RULES);
    expect(r.next).toBe(prev);
    expect(r.events).toEqual([]);
  });

  it('survives a JSON round trip, as it does through a jsonb column', () => {
    const fixes: Fix[] = [[0, -10, 5], [6, -10, 5], [9, 10, 5], [16, -10, 5], [17, 40, 5], [18, -1, 5]];
    const rules = { dwellMinutes: [5, 15], passByMinutes: [3] };
    let direct: GeofencePresence = OUT;
    let stored: GeofencePresence = OUT;
    for (const [minute, signedDistanceM, accuracyM] of fixes) {
      const fix = { signedDistanceM, accuracyM, at: at(minute) };
      const a = stepPresence(direct, fix, fence, rules);
      const b = stepPresence(JSON.parse(JSON.stringify(stored)) as GeofencePresence, fix, fence, rules);
      expect(b).toEqual(a);
      direct = a.next;
      stored = b.next;
    }
  });

  it('is deterministic: the same fixes give the same events and state', () => {
    const fixes: Fix[] = [[0, 30, 5], [1, -10, 5], [4, 10, 40], [7, -5, 5], [8, 60, 5], [50, -2, 5], [51, 26, 5]];
    const rules = { dwellMinutes: [5], passByMinutes: [3] };
    expect(run(fixes, rules)).toEqual(run(fixes, rules));
    expect(run(fixes, rules).events).toEqual([
      'geofence_enter@1', 'geofence_dwell@7:5', 'geofence_exit@8:7', 'geofence_enter@50', 'geofence_exit@51:1', 'pass_by@51:1',
    ]);
  });
});

describe('stepAll', () => {
  const rules = { dwellMinutes: [5], passByMinutes: [3] };
  const fixAt = (minute: number, accuracyM = 5) => ({ accuracyM, at: at(minute) });

  it('exits a fence the caller stopped listing, and keeps only inside fences', () => {
    const prev = { a: inside(0, 10), b: inside(0, 10) };
    const r = stepAll(prev, [{ fenceId: 'a', signedDistanceM: -10 }, { fenceId: 'c', signedDistanceM: 200 }], fixAt(11), rules);
    expect(r.events.map((e) => `${e.geofenceId}:${show(e)}`)).toEqual(['a:geofence_dwell@11:5', 'b:geofence_exit@11:11']);
    expect(r.next).toEqual({ a: inside(0, 11, [5]) });
  });

  it('enters listed fences the member was not in', () => {
    const r = stepAll({}, [{ fenceId: 'b', signedDistanceM: -1 }, { fenceId: 'a', signedDistanceM: -1 }], fixAt(0), rules);
    expect(r.events.map((e) => `${e.geofenceId}:${show(e)}`)).toEqual(['a:geofence_enter@0', 'b:geofence_enter@0']);
    expect(r.next).toEqual({ a: inside(0, 0), b: inside(0, 0) });
  });

  it('drops stored outside entries', () => {
    const r = stepAll({ a: OUT, b: inside(0, 0) }, [{ fenceId: 'b', signedDistanceM: -1 }], fixAt(1), rules);
    expect(r.next).toEqual({ b: inside(0, 1) });
  });

  it('ignores, for every fence, a fix older than the member\'s newest', () => {
    const prev = { a: inside(0, 10) };
    const r = stepAll(prev, [{ fenceId: 'a', signedDistanceM: 100 }, { fenceId: 'b', signedDistanceM: -10 }], fixAt(5), rules);
    expect(r).toEqual({ next: prev, events: [] });
  });

  it('orders a stale visit\'s exit before the fix\'s own events', () => {
    const prev = { z: inside(0, 1) };
    const r = stepAll(prev, [{ fenceId: 'a', signedDistanceM: -10 }, { fenceId: 'z', signedDistanceM: -10 }], fixAt(60), rules);
    expect(r.events.map((e) => `${e.geofenceId}:${show(e)}`)).toEqual([
      'z:geofence_exit@1:1', 'z:pass_by@1:1', 'a:geofence_enter@60', 'z:geofence_enter@60',
    ]);
  });

  it('does not depend on the order of the list; a fence listed twice counts at its smallest distance', () => {
    const prev = { a: inside(0, 1), b: inside(0, 1) };
    const list = [
      { fenceId: 'c', signedDistanceM: -3 }, { fenceId: 'a', signedDistanceM: 100 }, { fenceId: 'a', signedDistanceM: -1 },
      { fenceId: 'b', signedDistanceM: 30 },
    ];
    const forward = stepAll(prev, list, fixAt(2), rules);
    expect(stepAll(prev, [...list].reverse(), fixAt(2), rules)).toEqual(forward);
    expect(forward.events.map((e) => `${e.geofenceId}:${show(e)}`)).toEqual(['b:geofence_exit@2:2', 'b:pass_by@2:2', 'c:geofence_enter@2']);
    expect(Object.keys(forward.next).sort()).toEqual(['a', 'c']);
  });

  it('keeps hysteresis for listed fences: a poor fix just outside does not exit', () => {
    const r = stepAll({ a: inside(0, 1) }, [{ fenceId: 'a', signedDistanceM: 40 }], fixAt(2, 60), rules);
    expect(r.events).toEqual([]);
    expect(r.next).toEqual({ a: inside(0, 2) });
  });
});
