/**
 * Presence tracking: turns one member's stream of GPS fixes into geofence enter / dwell / exit / pass-by events,
 * one small state per (member, geofence). Pure: the signed distance to the fence is an input (see geometry.ts),
 * time is the fix's own timestamp, and the clock is never read.
 *
 * Words
 * - fix: one GPS position with its reported accuracy (metres) and the moment it was taken.
 * - signed distance: metres from the fence's boundary, negative inside, positive outside.
 * - visit: the time between an enter and its exit.
 */
import type { TriggerKind } from './model.js';

/**
 * What we remember of a member in one geofence. Plain JSON (instants as ISO strings) so it can live in a jsonb
 * column as is. 'outside' carries nothing: callers need not store it at all.
 */
export type GeofencePresence =
  | { state: 'outside' }
  | {
      state: 'inside';
      enteredAt: string;
      /** The newest fix applied; older fixes are ignored, a long silence after it ends the visit. */
      lastFixAt: string;
      /** Dwell thresholds (minutes) already reported this visit, ascending; a non-empty list rules out a pass-by. */
      reportedDwellMinutes: number[];
    };

/**
 * Hysteresis, so that a fix wobbling on the boundary does not flap in and out:
 * - a fix ENTERS when signedDistanceM <= -enterBufferM (default 0: the reported position is inside, the boundary
 *   included, as evaluate() counts it);
 * - a fix EXITS only when signedDistanceM >= max(accuracyM, exitBufferFloorM): the member is clearly outside even
 *   allowing for the fix's own uncertainty (a 60 m fix 40 m outside may well be inside);
 * - between the two thresholds the state stays as it was.
 * A fix arriving more than maxFixAgeMinutes after the previous one, while inside, first closes the visit at that
 * previous fix (the last time we knew the member was there), then is evaluated from 'outside'.
 */
export interface PresencePolicy {
  enterBufferM: number;
  exitBufferFloorM: number;
  maxFixAgeMinutes: number;
}

export const DEFAULT_PRESENCE_POLICY: Readonly<PresencePolicy> = Object.freeze({
  enterBufferM: 0,
  exitBufferFloorM: 25,
  maxFixAgeMinutes: 30,
});

/** The thresholds the active campaigns use; duplicates and order do not matter. */
export interface PresenceRules {
  /** geofence_dwell thresholds: each is reported once per visit. */
  dwellMinutes: readonly number[];
  /** pass_by withinMinutes: a visit this short (or shorter) with no dwell reported is a pass-by. */
  passByMinutes: readonly number[];
}

export interface PresenceFix {
  signedDistanceM: number;
  accuracyM: number;
  at: Date;
}

export type GeofenceEventKind = Extract<TriggerKind, 'geofence_enter' | 'geofence_exit' | 'geofence_dwell' | 'pass_by'>;

/**
 * `minutes`: dwell, the threshold reached; exit and pass-by, the visit's length, exact and fractional
 * (ms / 60 000). Not rounded down, because campaigns match pass_by by minutes <= withinMinutes and a 3.9-minute
 * visit must not pass for a 3-minute one. Absent on enter.
 */
export interface GeofenceEvent {
  kind: GeofenceEventKind;
  geofenceId: string;
  at: Date;
  minutes?: number;
}

export interface PresenceStep {
  next: GeofencePresence;
  events: GeofenceEvent[];
}

const MINUTE_MS = 60_000;
const OUTSIDE: GeofencePresence = Object.freeze({ state: 'outside' });

type Inside = Extract<GeofencePresence, { state: 'inside' }>;

const exitBufferM = (accuracyM: number, policy: PresencePolicy): number =>
  // An unknown accuracy is the worst accuracy: such a fix can enter but never prove an exit.
  Math.max(Number.isNaN(accuracyM) ? Infinity : accuracyM, policy.exitBufferFloorM);

/** Reports every dwell threshold the visit has now reached and not reported yet, smallest first. */
function stayInside(prev: Inside, atMs: number, fenceId: string, rules: PresenceRules): PresenceStep {
  const elapsedMin = (atMs - Date.parse(prev.enteredAt)) / MINUTE_MS;
  const reached = [...new Set(rules.dwellMinutes)]
    .filter((t) => elapsedMin >= t && !prev.reportedDwellMinutes.includes(t))
    .sort((a, b) => a - b);
  const at = new Date(atMs);
  return {
    next: {
      ...prev,
      lastFixAt: at.toISOString(),
      reportedDwellMinutes: [...prev.reportedDwellMinutes, ...reached].sort((a, b) => a - b),
    },
    events: reached.map((minutes) => ({ kind: 'geofence_dwell', geofenceId: fenceId, at, minutes })),
  };
}

function fromOutside(fix: PresenceFix, fenceId: string, rules: PresenceRules, policy: PresencePolicy): PresenceStep {
  if (!(fix.signedDistanceM <= -policy.enterBufferM)) return { next: OUTSIDE, events: [] };
  const at = fix.at.toISOString();
  // The entering fix goes through the dwell check too, so a 0-minute threshold fires with the enter.
  const entered = stayInside({ state: 'inside', enteredAt: at, lastFixAt: at, reportedDwellMinutes: [] }, fix.at.getTime(), fenceId, rules);
  return { next: entered.next, events: [{ kind: 'geofence_enter', geofenceId: fenceId, at: new Date(fix.at.getTime()) }, ...entered.events] };
}

/**
 * Closes a visit at `exitMs`. One pass_by at most, carrying the visit's length, when that length is within the
 * largest pass-by threshold and no dwell was reported: each campaign then checks minutes <= its own withinMinutes.
 */
function leave(prev: Inside, exitMs: number, fenceId: string, rules: PresenceRules): GeofenceEvent[] {
  const at = new Date(exitMs);
  const minutes = (exitMs - Date.parse(prev.enteredAt)) / MINUTE_MS;
  const exit: GeofenceEvent = { kind: 'geofence_exit', geofenceId: fenceId, at, minutes };
  const passBy = prev.reportedDwellMinutes.length === 0 && rules.passByMinutes.some((n) => minutes <= n);
  return passBy ? [exit, { kind: 'pass_by', geofenceId: fenceId, at: new Date(exitMs), minutes }] : [exit];
}

/**
 * Applies one fix to one geofence's presence (the hysteresis rule is on PresencePolicy).
 * - enter: geofence_enter at the fix's time;
 * - inside: geofence_dwell (minutes = threshold) once per visit for each threshold in rules.dwellMinutes, at the
 *   first fix with (at - enteredAt) >= threshold;
 * - exit: geofence_exit at the fix's time, minutes = at - enteredAt; then pass_by as `leave` says;
 * - a fix older than lastFixAt is ignored: `next` is `prev` itself and there are no events (fixes from a phone
 *   often arrive in batches and out of order; an old one must not reopen or close a visit);
 * - a fix more than policy.maxFixAgeMinutes after lastFixAt closes the visit at lastFixAt (exit, pass-by check),
 *   then is evaluated from 'outside', so it may enter a new visit;
 * - a fix with a NaN distance or an invalid time carries no information and is ignored likewise.
 * An 'outside' state remembers no time, so out-of-order fixes after an exit are the caller's to drop (stepAll
 * does it for every fence while the member is inside any fence).
 */
export function stepPresence(
  prev: GeofencePresence,
  fix: PresenceFix,
  fence: { id: string },
  rules: PresenceRules,
  policy: PresencePolicy = DEFAULT_PRESENCE_POLICY,
): PresenceStep {
  const atMs = fix.at.getTime();
  if (Number.isNaN(atMs) || Number.isNaN(fix.signedDistanceM)) return { next: prev, events: [] };
  switch (prev.state) {
    case 'outside':
      return fromOutside(fix, fence.id, rules, policy);
    case 'inside': {
      const lastMs = Date.parse(prev.lastFixAt);
      if (atMs < lastMs) return { next: prev, events: [] };
      if (atMs - lastMs > policy.maxFixAgeMinutes * MINUTE_MS) {
        const again = fromOutside(fix, fence.id, rules, policy);
        return { next: again.next, events: [...leave(prev, lastMs, fence.id, rules), ...again.events] };
      }
      if (fix.signedDistanceM >= exitBufferM(fix.accuracyM, policy)) return { next: OUTSIDE, events: leave(prev, atMs, fence.id, rules) };
      return stayInside(prev, atMs, fence.id, rules);
    }
    default: {
      const never: never = prev;
      throw new Error(`unknown presence state: ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Applies one fix to all of a member's geofences: every fence listed in `fixResults`, and every fence 'inside' in
 * `prevByFence` that is not listed, taken as infinitely far outside so that it exits. The gateway lists only the
 * fences near the fix, so its search radius must reach at least the exit buffer (max(accuracy, floor)) beyond a
 * fence, or hysteresis is cut short for fences just beyond it.
 * - A fix older than the newest lastFixAt of the fences the member is inside is ignored as a whole (a fix is a
 *   fact about the member, not one fence): no events, `next` is the inside fences unchanged.
 * - A fence listed twice counts at its smallest distance, so the result does not depend on the list's order.
 * - `next` holds only 'inside' fences (an absent fence is 'outside'); events are ordered by
 *   time (a stale visit closes before the fix), then by fence id.
 */
export function stepAll(
  prevByFence: Readonly<Record<string, GeofencePresence>>,
  fixResults: ReadonlyArray<{ fenceId: string; signedDistanceM: number }>,
  fix: { accuracyM: number; at: Date },
  rules: PresenceRules,
  policy: PresencePolicy = DEFAULT_PRESENCE_POLICY,
): { next: Record<string, GeofencePresence>; events: GeofenceEvent[] } {
  const inside = new Map(Object.entries(prevByFence).filter((e): e is [string, Inside] => e[1].state === 'inside'));
  const newestMs = Math.max(...[...inside.values()].map((p) => Date.parse(p.lastFixAt)));
  if (fix.at.getTime() < newestMs) return { next: Object.fromEntries(inside), events: [] };

  const distance = new Map<string, number>([...inside.keys()].map((id) => [id, Infinity]));
  for (const r of fixResults) distance.set(r.fenceId, Math.min(distance.get(r.fenceId) ?? Infinity, r.signedDistanceM));

  const next: Array<[string, GeofencePresence]> = [];
  const events: GeofenceEvent[] = [];
  for (const id of [...distance.keys()].sort()) {
    const step = stepPresence(inside.get(id) ?? OUTSIDE, { ...fix, signedDistanceM: distance.get(id)! }, { id }, rules, policy);
    if (step.next.state === 'inside') next.push([id, step.next]);
    events.push(...step.events);
  }
  // Stable sort: within one instant the fence-id order and each fence's own order (exit before pass_by) stay.
  events.sort((a, b) => a.at.getTime() - b.at.getTime());
  return { next: Object.fromEntries(next), events };
}
