// Checks a campaign's rules for what a schema cannot see: real time zones, windows that parse, an end after
// the start. Every problem names the exact path of the bad field, as the API reports it.
import type { Trigger, WeeklyWindow } from './model.js';
import { isTimeZone, parseClock } from './schedule.js';

export interface Problem {
  path: string;
  problem: string;
}

export interface ScheduleSpec {
  timeZone: string;
  startsAt?: string | null;
  endsAt?: string | null;
  weekly?: WeeklyWindow[];
}

export function validateWindows(windows: readonly WeeklyWindow[], path: string): Problem[] {
  const problems: Problem[] = [];
  if (windows.length === 0) problems.push({ path, problem: 'must list at least one window (leave it out for "any time")' });
  windows.forEach((w, i) => {
    const at = `${path}/${i}`;
    if (w.days.length === 0) problems.push({ path: `${at}/days`, problem: 'must name at least one day' });
    if (new Set(w.days).size !== w.days.length) problems.push({ path: `${at}/days`, problem: 'names a day twice' });
    const from = parseClock(w.from);
    const to = parseClock(w.to);
    if (from === null || from >= 24 * 60) problems.push({ path: `${at}/from`, problem: `"${w.from}" is not a time of day HH:MM` });
    if (to === null) problems.push({ path: `${at}/to`, problem: `"${w.to}" is not a time of day HH:MM (24:00 allowed)` });
    if (from !== null && to !== null && from === to) problems.push({ path: `${at}/to`, problem: 'must differ from "from"' });
  });
  return problems;
}

export function validateSchedule(s: ScheduleSpec, path = '/schedule'): Problem[] {
  const problems: Problem[] = [];
  if (!isTimeZone(s.timeZone)) problems.push({ path: `${path}/timeZone`, problem: `"${s.timeZone}" is not an IANA time zone` });
  if (s.startsAt && s.endsAt && new Date(s.endsAt) <= new Date(s.startsAt)) {
    problems.push({ path: `${path}/endsAt`, problem: 'must be later than startsAt' });
  }
  if (s.weekly) problems.push(...validateWindows(s.weekly, `${path}/weekly`));
  return problems;
}

export function validateTrigger(t: Trigger, geofenceCount: number, path = '/trigger'): Problem[] {
  const zone = t.kind === 'zone_enter' || t.kind === 'zone_dwell';
  if (zone && t.zoneIds.length === 0) return [{ path: `${path}/zoneIds`, problem: 'must name at least one zone' }];
  if (!zone && geofenceCount === 0) {
    return [{ path: '/geofenceIds', problem: `a ${t.kind} trigger needs at least one geofence (name geofenceIds, or a storeId with geofences)` }];
  }
  return [];
}
