// Local-time windows: "Mon-Fri 07:00-10:00 in Europe/Berlin" is read in the store's zone, whatever the server's is.
import { WEEKDAYS, type Weekday, type WeeklyWindow } from './model.js';

export interface LocalTime {
  weekday: Weekday;
  /** Minutes since local midnight, 0..1439. */
  minute: number;
  /** "YYYY-MM-DD" local date. */
  date: string;
}

// Building a DateTimeFormat costs far more than using one; zones are few.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

export function isTimeZone(name: string): boolean {
  try {
    formatter(name);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock weekday and time at `at` in `timeZone` (DST included, as the zone's rules say). */
export function localTime(at: Date, timeZone: string): LocalTime {
  const parts: Record<string, string> = {};
  for (const p of formatter(timeZone).formatToParts(at)) parts[p.type] = p.value;
  const weekday = parts.weekday!.toLowerCase().slice(0, 3) as Weekday;
  return { weekday, minute: Number(parts.hour) * 60 + Number(parts.minute), date: `${parts.year}-${parts.month}-${parts.day}` };
}

/** "HH:MM" to minutes; "24:00" is the end of the day. */
export function parseClock(hhmm: string): number | null {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) return null;
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (min > 59 || h > 24 || (h === 24 && min !== 0)) return null;
  return h * 60 + min;
}

const previousDay = (d: Weekday): Weekday => WEEKDAYS[(WEEKDAYS.indexOf(d) + 6) % 7]!;

/**
 * True when the local time falls in a window. A window whose `to` is not after `from` runs past midnight:
 * "fri 22:00-02:00" covers Friday 22:00 to Saturday 02:00 (the day named is the day it starts).
 */
export function inWindows(windows: readonly WeeklyWindow[], t: LocalTime): boolean {
  return windows.some((w) => {
    const from = parseClock(w.from)!;
    const to = parseClock(w.to)!;
    if (from < to) return w.days.includes(t.weekday) && t.minute >= from && t.minute < to;
    return (w.days.includes(t.weekday) && t.minute >= from) || (w.days.includes(previousDay(t.weekday)) && t.minute < to);
  });
}
