// Quiet hours: no marketing contact during the member's night, read on the member's own clock (not the
// server's, not the store's), DST included.
import { DAY_MINUTES, MINUTE_MS, formatClock, offsetMinutes, parseClock, wallClock } from './clock.js';

/**
 * A daily window of local wall-clock time, [start, end), during which nobody is contacted.
 * - "HH:MM": start 00:00..23:59, end 00:00..24:00.
 * - An end before the start runs past midnight: 21:00-08:00 is quiet from 21:00 until 08:00 next morning.
 * - start equal to end is an empty window (never quiet); 00:00-24:00 is the whole day.
 */
export interface QuietHours {
  start: string;
  end: string;
}

/** TCPA: calls and texts only between 08:00 and 21:00 at the called party's location. */
export const DEFAULT_QUIET_HOURS: QuietHours = Object.freeze({ start: '21:00', end: '08:00' });

/** The window as an arc of the day: `length` minutes from `start`, wrapping past midnight. */
interface Arc {
  start: number;
  length: number;
}

function arcOf(q: QuietHours): Arc {
  const start = parseClock(q.start, false);
  const end = parseClock(q.end, true);
  if (start === null || end === null) {
    throw new RangeError(`Quiet hours need "HH:MM" times (start 00:00-23:59, end 00:00-24:00), got ${JSON.stringify(q)}`);
  }
  if (start === 0 && end === DAY_MINUTES) return { start: 0, length: DAY_MINUTES };
  return { start, length: (end - start + DAY_MINUTES) % DAY_MINUTES };
}

/** How far into the arc a minute of the day lies; inside the arc when less than its length. */
const into = (a: Arc, minuteOfDay: number) => (minuteOfDay - a.start + DAY_MINUTES) % DAY_MINUTES;

export function validQuietHours(q: QuietHours): boolean {
  try {
    arcOf(q);
    return true;
  } catch {
    return false;
  }
}

/** True when `at` falls in the window on the wall clock of `timeZone`. Throws RangeError for a bad window or zone. */
export function isQuiet(at: Date, timeZone: string, q: QuietHours = DEFAULT_QUIET_HOURS): boolean {
  const a = arcOf(q);
  return into(a, wallClock(at, timeZone).minuteOfDay) < a.length;
}

/**
 * The first instant at or after `at` that is not quiet: `at` itself when it is not, otherwise the first
 * instant the wall clock shows the window's end (second 0), or the moment a DST change moves the clock out
 * of the window (spring forward past the end: the change itself). Null when the window is the whole day.
 *
 * Method: read the wall clock, step to where it shows the window's end assuming the UTC offset holds, and
 * convert that back to an instant; if the offset changes before then, stop at the change and read again.
 * Assumes whole-minute offsets and offset changes on whole minutes (true for every zone since 1972).
 */
export function nextAllowed(at: Date, timeZone: string, q: QuietHours = DEFAULT_QUIET_HOURS): Date | null {
  const a = arcOf(q);
  if (a.length === DAY_MINUTES) return null;
  let t = at.getTime();
  // Each round either answers or passes one offset change; zones change offset at most twice a year.
  for (let round = 0; round < 8; round++) {
    const inside = into(a, wallClock(new Date(t), timeZone).minuteOfDay);
    if (inside >= a.length) return new Date(t);
    const byClock = Math.floor(t / MINUTE_MS) * MINUTE_MS + (a.length - inside) * MINUTE_MS;
    t = firstOffsetChange(t, byClock, timeZone) ?? byClock;
  }
  throw new Error(`No end of quiet hours found after ${at.toISOString()} in ${timeZone}`);
}

const HOUR_MINUTES = 60;

/** The first whole minute in (from, to] with another UTC offset than `from`, or null. Probes hourly, then bisects. */
function firstOffsetChange(from: number, to: number, timeZone: string): number | null {
  const offset = offsetMinutes(from, timeZone);
  const last = Math.ceil(to / MINUTE_MS);
  let lo = Math.floor(from / MINUTE_MS);
  for (;;) {
    const probe = Math.min(lo + HOUR_MINUTES, last);
    if (probe <= lo) return null;
    if (offsetMinutes(probe * MINUTE_MS, timeZone) !== offset) {
      let hi = probe;
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (offsetMinutes(mid * MINUTE_MS, timeZone) === offset) lo = mid;
        else hi = mid;
      }
      return hi * MINUTE_MS;
    }
    lo = probe;
  }
}

/**
 * A campaign may only make quiet hours stricter, never looser. The result is a single window covering
 * both `base` and `campaign`:
 * - no campaign, an empty one, or one inside `base`: `base` itself (anything looser is ignored);
 * - windows that overlap or touch: their union (21:00-08:00 with 22:00-09:00 gives 21:00-09:00);
 *   when the union is the whole day, 00:00-24:00 (no contact at all);
 * - windows apart: one window cannot hold two, so the result also covers the shorter of the two gaps
 *   between them (21:00-08:00 with 12:00-13:00 gives 21:00-13:00); on a tie it keeps the base's start.
 */
export function stricter(base: QuietHours, campaign?: QuietHours): QuietHours {
  const b = arcOf(base);
  if (!campaign) return base;
  const c = arcOf(campaign);
  const u = union(b, c);
  if (u.start === b.start && u.length === b.length) return base;
  if (u.start === c.start && u.length === c.length) return campaign;
  if (u.length === DAY_MINUTES) return { start: '00:00', end: '24:00' };
  return { start: formatClock(u.start), end: formatClock((u.start + u.length) % DAY_MINUTES) };
}

function union(a: Arc, b: Arc): Arc {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const span = (start: number, length: number): Arc => (length >= DAY_MINUTES ? { start: 0, length: DAY_MINUTES } : { start, length });
  const bAfterA = into(a, b.start);
  const aAfterB = into(b, a.start);
  if (bAfterA <= a.length) return span(a.start, Math.max(a.length, bAfterA + b.length));
  if (aAfterB <= b.length) return span(b.start, Math.max(b.length, aAfterB + a.length));
  const gapAfterA = bAfterA - a.length;
  const gapAfterB = aAfterB - b.length;
  return gapAfterB >= gapAfterA ? { start: a.start, length: bAfterA + b.length } : { start: b.start, length: aAfterB + a.length };
}
