// Wall-clock time in an IANA zone, read with Intl. The same approach as campaign-rules/schedule.ts, kept
// as a local copy so consent/ depends on no other package.
export const MINUTE_MS = 60_000;
export const DAY_MINUTES = 24 * 60;

export interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Minutes since local midnight, 0..1439. */
  minuteOfDay: number;
}

// Building a DateTimeFormat costs far more than using one; zones are few.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string, zoneName: boolean): Intl.DateTimeFormat {
  const key = `${timeZone}|${zoneName}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
      ...(zoneName ? { timeZoneName: 'short' as const } : {}),
    });
    formatters.set(key, f);
  }
  return f;
}

function parts(at: Date, timeZone: string, zoneName: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of formatter(timeZone, zoneName).formatToParts(at)) out[p.type] = p.value;
  return out;
}

/** The wall clock at `at` in `timeZone`, DST included as the zone's rules say. Throws RangeError for an unknown zone. */
export function wallClock(at: Date, timeZone: string): WallClock {
  const p = parts(at, timeZone, false);
  const [year, month, day, hour, minute, second] = [p.year, p.month, p.day, p.hour, p.minute, p.second].map(Number) as [number, number, number, number, number, number];
  return { year, month, day, hour, minute, second, minuteOfDay: hour * 60 + minute };
}

/** The zone's UTC offset at `ms`, in minutes (east positive): local wall clock minus UTC. */
export function offsetMinutes(ms: number, timeZone: string): number {
  const w = wallClock(new Date(ms), timeZone);
  const wallAsUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return Math.round((wallAsUtc - Math.floor(ms / 1000) * 1000) / MINUTE_MS);
}

/** "2026-06-03 21:30 GMT+8": ASCII only, so an SMS stays in the GSM-7 alphabet (Intl's own styles may use U+202F). */
export function formatLocal(at: Date, timeZone: string): string {
  const p = parts(at, timeZone, true);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute} ${p.timeZoneName ?? timeZone}`;
}

/** "HH:MM" to minutes since midnight; "24:00" (the end of the day) only when `allowEndOfDay`. */
export function parseClock(hhmm: string, allowEndOfDay: boolean): number | null {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) return null;
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (min > 59 || h > 24 || (h === 24 && (min !== 0 || !allowEndOfDay))) return null;
  return h * 60 + min;
}

export function formatClock(minutes: number): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}
