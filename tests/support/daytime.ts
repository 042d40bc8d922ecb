// Quiet hours (21:00-08:00 on the member's own clock) hold marketing SMS back: tests and the bench that want
// an offer sent now give their members a time zone where it is day.
import { wallClock } from '../../consent/clock.js';

const ZONES = ['America/New_York', 'America/Los_Angeles', 'Pacific/Honolulu', 'Asia/Tokyo', 'Asia/Kolkata', 'Europe/London', 'Asia/Shanghai', 'UTC'];

/** A zone where it is between 10:00 and 19:00 at `now` (09:00-20:00 if none), well clear of quiet hours. */
export function daytimeZone(now = new Date()): string {
  const hour = (tz: string) => wallClock(now, tz).hour;
  return ZONES.find((tz) => hour(tz) >= 10 && hour(tz) < 19) ?? ZONES.find((tz) => hour(tz) >= 9 && hour(tz) < 20)!;
}
