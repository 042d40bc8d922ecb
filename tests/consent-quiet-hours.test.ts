import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_QUIET_HOURS, isQuiet, nextAllowed, stricter, validQuietHours, type QuietHours } from '../consent/index.js';

const NY = 'America/New_York';
const iso = (d: Date | null) => d?.toISOString() ?? null;

describe('isQuiet and nextAllowed, default 21:00-08:00', () => {
  it('is the TCPA window', () => {
    expect(DEFAULT_QUIET_HOURS).toEqual({ start: '21:00', end: '08:00' });
  });

  // [instant, zone, local time there (for the reader), quiet?, next allowed instant]
  it.each([
    // A member in Shanghai (UTC+8, no DST), the instant given in UTC.
    ['2026-06-03T12:59:59Z', 'Asia/Shanghai', '20:59:59', false, '2026-06-03T12:59:59.000Z'],
    ['2026-06-03T13:00:00Z', 'Asia/Shanghai', '21:00', true, '2026-06-04T00:00:00.000Z'],
    ['2026-06-03T13:30:00Z', 'Asia/Shanghai', '21:30', true, '2026-06-04T00:00:00.000Z'],
    ['2026-06-03T16:00:00Z', 'Asia/Shanghai', '00:00 next day', true, '2026-06-04T00:00:00.000Z'],
    ['2026-06-03T23:59:59Z', 'Asia/Shanghai', '07:59:59', true, '2026-06-04T00:00:00.000Z'],
    ['2026-06-04T00:00:00Z', 'Asia/Shanghai', '08:00', false, '2026-06-04T00:00:00.000Z'],
    // New York, an ordinary night (EST, UTC-5).
    ['2026-03-07T02:00:00Z', NY, '21:00 EST Mar 6', true, '2026-03-07T13:00:00.000Z'],
    // The night the clocks spring forward: 2026-03-08 02:00 EST becomes 03:00 EDT (07:00Z). 08:00 EDT is 12:00Z.
    ['2026-03-08T01:59:00Z', NY, '20:59 EST Mar 7', false, '2026-03-08T01:59:00.000Z'],
    ['2026-03-08T02:00:00Z', NY, '21:00 EST Mar 7', true, '2026-03-08T12:00:00.000Z'],
    ['2026-03-08T06:59:00Z', NY, '01:59 EST', true, '2026-03-08T12:00:00.000Z'],
    ['2026-03-08T07:00:00Z', NY, '03:00 EDT', true, '2026-03-08T12:00:00.000Z'],
    ['2026-03-08T11:59:30Z', NY, '07:59:30 EDT', true, '2026-03-08T12:00:00.000Z'],
    ['2026-03-08T12:00:00Z', NY, '08:00 EDT', false, '2026-03-08T12:00:00.000Z'],
    ['2026-03-09T00:59:00Z', NY, '20:59 EDT Mar 8', false, '2026-03-09T00:59:00.000Z'],
    ['2026-03-09T01:00:00Z', NY, '21:00 EDT Mar 8', true, '2026-03-09T12:00:00.000Z'],
    // The night the clocks fall back: 2026-11-01 02:00 EDT becomes 01:00 EST (06:00Z); 01:xx happens twice. 08:00 EST is 13:00Z.
    ['2026-11-01T00:59:00Z', NY, '20:59 EDT Oct 31', false, '2026-11-01T00:59:00.000Z'],
    ['2026-11-01T01:00:00Z', NY, '21:00 EDT Oct 31', true, '2026-11-01T13:00:00.000Z'],
    ['2026-11-01T05:30:00Z', NY, '01:30 EDT', true, '2026-11-01T13:00:00.000Z'],
    ['2026-11-01T06:30:00Z', NY, '01:30 EST', true, '2026-11-01T13:00:00.000Z'],
    ['2026-11-01T12:59:00Z', NY, '07:59 EST', true, '2026-11-01T13:00:00.000Z'],
    ['2026-11-01T13:00:00Z', NY, '08:00 EST', false, '2026-11-01T13:00:00.000Z'],
    ['2026-11-02T01:59:00Z', NY, '20:59 EST Nov 1', false, '2026-11-02T01:59:00.000Z'],
    ['2026-11-02T02:00:00Z', NY, '21:00 EST Nov 1', true, '2026-11-02T13:00:00.000Z'],
  ])('%s in %s (%s): quiet %s, next allowed %s', (at, zone, _local, quiet, next) => {
    expect(isQuiet(new Date(at), zone)).toBe(quiet);
    expect(iso(nextAllowed(new Date(at), zone))).toBe(next);
    expect(iso(nextAllowed(new Date(at), zone, DEFAULT_QUIET_HOURS))).toBe(next);
  });
});

describe('windows that the DST change cuts or repeats (America/New_York)', () => {
  it.each<[string, QuietHours, string, boolean, string]>([
    // Spring: local 02:00-02:59 does not exist on 2026-03-08.
    ['ends in the skipped hour: the change itself ends it', { start: '01:00', end: '02:30' }, '2026-03-08T06:30:00Z', true, '2026-03-08T07:00:00.000Z'],
    ['lies wholly in the skipped hour: never quiet', { start: '02:00', end: '02:30' }, '2026-03-08T06:59:00Z', false, '2026-03-08T06:59:00.000Z'],
    ['lies wholly in the skipped hour, after the change', { start: '02:00', end: '02:30' }, '2026-03-08T07:00:00Z', false, '2026-03-08T07:00:00.000Z'],
    ['starts in the skipped hour: quiet from 03:00 EDT', { start: '02:30', end: '04:00' }, '2026-03-08T07:00:00Z', true, '2026-03-08T08:00:00.000Z'],
    // Autumn: local 01:00-01:59 happens twice on 2026-11-01 (EDT 05:00-06:00Z, then EST 06:00-07:00Z).
    ['ends in the repeated hour, first pass', { start: '00:30', end: '01:30' }, '2026-11-01T04:45:00Z', true, '2026-11-01T05:30:00.000Z'],
    ['allowed at 01:45 EDT', { start: '00:30', end: '01:30' }, '2026-11-01T05:45:00Z', false, '2026-11-01T05:45:00.000Z'],
    ['quiet again at 01:15 EST', { start: '00:30', end: '01:30' }, '2026-11-01T06:15:00Z', true, '2026-11-01T06:30:00.000Z'],
    ['lies in the repeated hour: quiet twice, first', { start: '01:00', end: '01:30' }, '2026-11-01T05:00:00Z', true, '2026-11-01T05:30:00.000Z'],
    ['lies in the repeated hour: quiet twice, second', { start: '01:00', end: '01:30' }, '2026-11-01T06:00:00Z', true, '2026-11-01T06:30:00.000Z'],
    ['the clock falls back out of the window: the change ends it', { start: '01:30', end: '03:00' }, '2026-11-01T05:45:00Z', true, '2026-11-01T06:00:00.000Z'],
    ['then it is entered again at 01:30 EST', { start: '01:30', end: '03:00' }, '2026-11-01T06:30:00Z', true, '2026-11-01T08:00:00.000Z'],
  ])('%s: %j at %s quiet %s, next %s', (_, q, at, quiet, next) => {
    expect(isQuiet(new Date(at), NY, q)).toBe(quiet);
    expect(iso(nextAllowed(new Date(at), NY, q))).toBe(next);
  });
});

describe('window edge cases', () => {
  it.each<[QuietHours, string, boolean, string | null]>([
    [{ start: '12:00', end: '13:00' }, '2026-06-03T11:59:59Z', false, '2026-06-03T11:59:59.000Z'],
    [{ start: '12:00', end: '13:00' }, '2026-06-03T12:00:00Z', true, '2026-06-03T13:00:00.000Z'],
    [{ start: '22:00', end: '00:00' }, '2026-06-03T23:59:00Z', true, '2026-06-04T00:00:00.000Z'],
    [{ start: '22:00', end: '24:00' }, '2026-06-03T23:59:00Z', true, '2026-06-04T00:00:00.000Z'],
    [{ start: '00:00', end: '08:00' }, '2026-06-03T00:00:00Z', true, '2026-06-03T08:00:00.000Z'],
    [{ start: '10:00', end: '10:00' }, '2026-06-03T10:00:00Z', false, '2026-06-03T10:00:00.000Z'],
    [{ start: '00:00', end: '24:00' }, '2026-06-03T10:00:00Z', true, null],
  ])('%j at %s (UTC): quiet %s, next %s', (q, at, quiet, next) => {
    expect(isQuiet(new Date(at), 'UTC', q)).toBe(quiet);
    expect(iso(nextAllowed(new Date(at), 'UTC', q))).toBe(next);
  });

  it.each<[QuietHours, boolean]>([
    [{ start: '21:00', end: '08:00' }, true],
    [{ start: '00:00', end: '24:00' }, true],
    [{ start: '24:00', end: '08:00' }, false],
    [{ start: '9:00', end: '08:00' }, false],
    [{ start: '21:60', end: '08:00' }, false],
    [{ start: '21:00', end: '24:01' }, false],
    [{ start: '21:00', end: '' }, false],
  ])('%j valid: %s', (q, valid) => {
    expect(validQuietHours(q)).toBe(valid);
    if (!valid) expect(() => isQuiet(new Date(0), 'UTC', q)).toThrow(RangeError);
  });

  it('refuses an unknown zone', () => {
    expect(() => isQuiet(new Date(0), 'Mars/Olympus_Mons')).toThrow(RangeError);
    expect(() => nextAllowed(new Date(0), 'Mars/Olympus_Mons')).toThrow(RangeError);
  });
});

describe('nextAllowed against minute-by-minute stepping', () => {
  const MIN = 60_000;
  const clock = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
  // The slow, obviously right answer: the first whole minute after `at` that is not quiet.
  const stepped = (at: Date, zone: string, q: QuietHours): Date => {
    if (!isQuiet(at, zone, q)) return at;
    for (let t = Math.floor(at.getTime() / MIN) * MIN + MIN; ; t += MIN) if (!isQuiet(new Date(t), zone, q)) return new Date(t);
  };
  // 2026's offset changes: Lord Howe moves by 30 minutes, Santiago at local midnight, St John's and Chatham
  // have odd offsets. `at` falls within a day of the change, so random windows often span it.
  const changes: Array<[string, string]> = [
    ['America/New_York', '2026-03-08T07:00Z'], ['America/New_York', '2026-11-01T06:00Z'],
    ['Europe/London', '2026-03-29T01:00Z'], ['Europe/London', '2026-10-25T01:00Z'],
    ['Australia/Sydney', '2026-04-04T16:00Z'], ['Australia/Sydney', '2026-10-03T16:00Z'],
    ['Australia/Lord_Howe', '2026-04-04T15:00Z'], ['Australia/Lord_Howe', '2026-10-03T15:30Z'],
    ['America/Santiago', '2026-04-05T03:00Z'], ['America/Santiago', '2026-09-06T04:00Z'],
    ['America/St_Johns', '2026-03-08T05:30Z'], ['America/St_Johns', '2026-11-01T04:30Z'],
    ['Pacific/Chatham', '2026-04-04T14:00Z'], ['Pacific/Chatham', '2026-09-26T14:00Z'],
    ['Asia/Kathmandu', '2026-03-08T07:00Z'], ['Asia/Shanghai', '2026-06-03T13:30Z'],
  ];

  it('agrees on random windows around DST changes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...changes), fc.integer({ min: -24 * 3600, max: 2 * 3600 }),
        fc.integer({ min: 0, max: 1439 }), fc.integer({ min: 0, max: 1440 }),
        ([zone, change], seconds, start, end) => {
          fc.pre(!(start === 0 && end === 1440));
          const q = { start: clock(start), end: clock(end) };
          const at = new Date(Date.parse(change) + seconds * 1000);
          const next = nextAllowed(at, zone, q)!;
          expect(iso(next)).toBe(iso(stepped(at, zone, q)));
        },
      ),
      { numRuns: 200, seed: 20260308 },
    );
  });
});

describe('stricter', () => {
  const base = DEFAULT_QUIET_HOURS;
  it.each<[string, QuietHours, QuietHours | undefined, QuietHours]>([
    ['no campaign: the base', base, undefined, base],
    ['the same window: the base', base, { start: '21:00', end: '08:00' }, base],
    ['inside the base (looser): the base', base, { start: '22:00', end: '07:00' }, base],
    ['inside the base, after midnight only: the base', base, { start: '01:00', end: '05:00' }, base],
    ['an empty window: the base', base, { start: '10:00', end: '10:00' }, base],
    ['starts earlier: earlier start', base, { start: '20:00', end: '07:00' }, { start: '20:00', end: '08:00' }],
    ['ends later: later end', base, { start: '22:00', end: '09:00' }, { start: '21:00', end: '09:00' }],
    ['covers the base: the campaign', base, { start: '20:00', end: '09:00' }, { start: '20:00', end: '09:00' }],
    ['touches the end: joined', base, { start: '08:00', end: '10:00' }, { start: '21:00', end: '10:00' }],
    ['touches the start: joined', base, { start: '19:00', end: '21:00' }, { start: '19:00', end: '08:00' }],
    ['a non-wrapping window overlapping the evening', base, { start: '18:00', end: '22:00' }, { start: '18:00', end: '08:00' }],
    ['apart: also covers the shorter gap (08:00-12:00)', base, { start: '12:00', end: '13:00' }, { start: '21:00', end: '13:00' }],
    ['apart: also covers the shorter gap (19:30-21:00)', base, { start: '18:00', end: '19:30' }, { start: '18:00', end: '08:00' }],
    ['apart, equal gaps: keeps the base start', base, { start: '09:00', end: '20:00' }, { start: '21:00', end: '20:00' }],
    ['overlapping at both ends: the whole day', base, { start: '07:00', end: '22:00' }, { start: '00:00', end: '24:00' }],
    ['a whole-day campaign: the whole day', base, { start: '00:00', end: '24:00' }, { start: '00:00', end: '24:00' }],
    ['an empty base: the campaign', { start: '00:00', end: '00:00' }, { start: '22:00', end: '07:00' }, { start: '22:00', end: '07:00' }],
    ['a non-wrapping base', { start: '00:00', end: '07:00' }, { start: '22:00', end: '06:00' }, { start: '22:00', end: '07:00' }],
  ])('%s: %j + %j = %j', (_, b, campaign, expected) => {
    const result = stricter(b, campaign);
    expect(result).toEqual(expected);
    // Never looser than either: every minute quiet under base or campaign is quiet under the result.
    for (let m = 0; m < 1440; m += 15) {
      const at = new Date(Date.UTC(2026, 5, 3, 0, m));
      if (isQuiet(at, 'UTC', b) || (campaign && isQuiet(at, 'UTC', campaign))) expect(isQuiet(at, 'UTC', result)).toBe(true);
    }
  });

  it('refuses a malformed campaign window', () => {
    expect(() => stricter(base, { start: '7pm', end: '08:00' })).toThrow(RangeError);
  });
});
