import { describe, expect, it } from 'vitest';
import {
  CHANNEL_PURPOSE, DEFAULT_CONTACT_LIMITS, PURPOSES, checkConsent, consentState, mayContact, needsConfirmation,
  type ConsentEvent, type ContactDecision, type ContactInput, type PurposeState,
} from '../consent/index.js';

const at = (min: number) => new Date(Date.UTC(2026, 0, 1, 12, min));
const ev = (purpose: ConsentEvent['purpose'], action: ConsentEvent['action'], min: number, source: ConsentEvent['source'] = 'app'): ConsentEvent => ({
  purpose, action, source, occurredAt: at(min),
});

describe('double opt-in', () => {
  it('applies to marketing SMS only', () => {
    expect(PURPOSES.filter(needsConfirmation)).toEqual(['sms_marketing']);
  });

  it.each<[string, ConsentEvent[], PurposeState]>([
    ['nothing yet', [], { granted: false, since: null, source: null, pending: false }],
    ['a request: pending, not granted', [ev('sms_marketing', 'request', 1, 'web')], { granted: false, since: null, source: null, pending: true, requestedAt: at(1) }],
    ['a second request: pending since the latest', [ev('sms_marketing', 'request', 1), ev('sms_marketing', 'request', 5)], { granted: false, since: null, source: null, pending: true, requestedAt: at(5) }],
    ['request, then YES', [ev('sms_marketing', 'request', 1, 'web'), ev('sms_marketing', 'grant', 2, 'sms_keyword')], { granted: true, since: at(2), source: 'sms_keyword', pending: false }],
    ['request, then STOP', [ev('sms_marketing', 'request', 1, 'web'), ev('sms_marketing', 'withdraw', 2, 'sms_keyword')], { granted: false, since: at(2), source: 'sms_keyword', pending: false }],
    ['withdrawn, then asked to re-join', [ev('sms_marketing', 'grant', 1), ev('sms_marketing', 'withdraw', 2), ev('sms_marketing', 'request', 3)], { granted: false, since: at(2), source: 'app', pending: true, requestedAt: at(3) }],
    ['granted, then a new request: still granted', [ev('sms_marketing', 'grant', 1), ev('sms_marketing', 'request', 3)], { granted: true, since: at(1), source: 'app', pending: true, requestedAt: at(3) }],
  ])('%s', (_, events, expected) => {
    expect(consentState(events).sms_marketing).toEqual(expected);
  });

  it('leaves other purposes alone and keeps checkConsent as before', () => {
    const s = consentState([ev('sms_marketing', 'request', 1), ev('location', 'grant', 2)]);
    expect(s.location).toEqual({ granted: true, since: at(2), source: 'app', pending: false });
    expect(checkConsent(s, ['sms_marketing'])).toEqual({ allowed: false, reason: 'CONSENT_MISSING', purpose: 'sms_marketing', since: null });
  });
});

describe('mayContact', () => {
  // 2026-06-03T06:00Z is 14:00 in Shanghai: mid-afternoon, outside quiet hours.
  const now = new Date('2026-06-03T06:00:00Z');
  const hoursAgo = (h: number) => new Date(now.getTime() - h * 3_600_000);
  const granted = (...purposes: ConsentEvent['purpose'][]) => purposes.map((p, i) => ev(p, 'grant', i));
  const input = (events: ConsentEvent[], over: Partial<ContactInput> = {}): ContactInput => ({
    consent: consentState(events), channel: 'sms', purpose: 'sms_marketing', at: now, timeZone: 'Asia/Shanghai', recentContacts: [], ...over,
  });

  it('has the documented defaults', () => {
    expect(CHANNEL_PURPOSE).toEqual({ sms: 'sms_marketing', push: 'push_marketing' });
    expect(DEFAULT_CONTACT_LIMITS).toEqual([{ count: 1, hours: 4 }, { count: 3, hours: 168 }]);
  });

  it.each<[string, ContactInput, ContactDecision]>([
    ['all clear', input(granted('sms_marketing')), { allowed: true }],
    ['push needs push_marketing', input(granted('push_marketing'), { channel: 'push', purpose: 'push_marketing' }), { allowed: true }],

    // Consent comes first: even at night and over every limit, the answer is about consent.
    ['no SMS consent, at night, over limits', input([], { at: new Date('2026-06-03T14:00:00Z'), recentContacts: [hoursAgo(1)] }),
      { allowed: false, reason: 'CONSENT_MISSING', purpose: 'sms_marketing', since: null }],
    ['SMS withdrawn', input([ev('sms_marketing', 'grant', 1), ev('sms_marketing', 'withdraw', 2)]),
      { allowed: false, reason: 'CONSENT_WITHDRAWN', purpose: 'sms_marketing', since: at(2) }],
    ['SMS requested, not confirmed', input([ev('sms_marketing', 'request', 1)]),
      { allowed: false, reason: 'CONSENT_PENDING', purpose: 'sms_marketing', since: null, requestedAt: at(1) }],
    ['SMS withdrawn, re-join requested: pending outranks withdrawn', input([ev('sms_marketing', 'grant', 1), ev('sms_marketing', 'withdraw', 2), ev('sms_marketing', 'request', 3)]),
      { allowed: false, reason: 'CONSENT_PENDING', purpose: 'sms_marketing', since: at(2), requestedAt: at(3) }],
    ['granted with a new request waiting: still allowed', input([ev('sms_marketing', 'grant', 1), ev('sms_marketing', 'request', 3)]), { allowed: true }],
    ['SMS consent does not cover push', input(granted('sms_marketing'), { channel: 'push', purpose: 'push_marketing' }),
      { allowed: false, reason: 'CONSENT_MISSING', purpose: 'push_marketing', since: null }],
    ['a partner offer needs partner_offers too', input(granted('sms_marketing'), { purpose: 'partner_offers' }),
      { allowed: false, reason: 'CONSENT_MISSING', purpose: 'partner_offers', since: null }],
    ['the channel purpose is checked before the extra one', input(granted('partner_offers'), { purpose: 'partner_offers' }),
      { allowed: false, reason: 'CONSENT_MISSING', purpose: 'sms_marketing', since: null }],
    ['a partner offer with both', input(granted('sms_marketing', 'partner_offers'), { purpose: 'partner_offers' }), { allowed: true }],
    ['push partner offer, partner_offers withdrawn', input([...granted('push_marketing'), ev('partner_offers', 'grant', 5), ev('partner_offers', 'withdraw', 6)], { channel: 'push', purpose: 'partner_offers' }),
      { allowed: false, reason: 'CONSENT_WITHDRAWN', purpose: 'partner_offers', since: at(6) }],

    // Then quiet hours, on the member's clock, before limits.
    ['21:30 in Shanghai, over limits too', input(granted('sms_marketing'), { at: new Date('2026-06-03T13:30:00Z'), recentContacts: [new Date('2026-06-03T12:00:00Z')] }),
      { allowed: false, reason: 'QUIET_HOURS', quietHours: { start: '21:00', end: '08:00' }, timeZone: 'Asia/Shanghai', nextAllowedAt: '2026-06-04T00:00:00.000Z' }],
    ['push has quiet hours too', input(granted('push_marketing'), { channel: 'push', purpose: 'push_marketing', timeZone: 'America/New_York', at: new Date('2026-03-08T02:00:00Z') }),
      { allowed: false, reason: 'QUIET_HOURS', quietHours: { start: '21:00', end: '08:00' }, timeZone: 'America/New_York', nextAllowedAt: '2026-03-08T12:00:00.000Z' }],
    ['a stricter campaign window applies (14:00 Shanghai)', input(granted('sms_marketing'), { quietHours: { start: '13:00', end: '15:00' } }),
      { allowed: false, reason: 'QUIET_HOURS', quietHours: { start: '21:00', end: '15:00' }, timeZone: 'Asia/Shanghai', nextAllowedAt: '2026-06-03T07:00:00.000Z' }],
    ['a looser campaign window is ignored (21:30 Shanghai)', input(granted('sms_marketing'), { at: new Date('2026-06-03T13:30:00Z'), quietHours: { start: '23:00', end: '06:00' } }),
      { allowed: false, reason: 'QUIET_HOURS', quietHours: { start: '21:00', end: '08:00' }, timeZone: 'Asia/Shanghai', nextAllowedAt: '2026-06-04T00:00:00.000Z' }],
    ['a whole-day window: no next time', input(granted('sms_marketing'), { quietHours: { start: '00:00', end: '24:00' } }),
      { allowed: false, reason: 'QUIET_HOURS', quietHours: { start: '00:00', end: '24:00' }, timeZone: 'Asia/Shanghai', nextAllowedAt: null }],

    // Then contact limits: 1 per 4 hours, 3 per week.
    ['one contact 2 hours ago', input(granted('sms_marketing'), { recentContacts: [hoursAgo(2)] }),
      { allowed: false, reason: 'CONTACT_LIMIT', limit: { count: 1, hours: 4 }, recent: 1, nextAllowedAt: hoursAgo(-2).toISOString() }],
    ['one contact exactly 4 hours ago no longer counts', input(granted('sms_marketing'), { recentContacts: [hoursAgo(4)] }), { allowed: true }],
    ['two contacts this week', input(granted('sms_marketing'), { recentContacts: [hoursAgo(30), hoursAgo(100)] }), { allowed: true }],
    ['three contacts this week, in any order', input(granted('sms_marketing'), { recentContacts: [hoursAgo(30), hoursAgo(160), hoursAgo(100)] }),
      { allowed: false, reason: 'CONTACT_LIMIT', limit: { count: 3, hours: 168 }, recent: 3, nextAllowedAt: hoursAgo(160 - 168).toISOString() }],
    ['a contact 8 days ago does not count', input(granted('sms_marketing'), { recentContacts: [hoursAgo(30), hoursAgo(100), hoursAgo(192)] }), { allowed: true }],
    ['both reached: the one that lifts last', input(granted('sms_marketing'), { recentContacts: [hoursAgo(1), hoursAgo(50), hoursAgo(100)] }),
      { allowed: false, reason: 'CONTACT_LIMIT', limit: { count: 3, hours: 168 }, recent: 3, nextAllowedAt: hoursAgo(100 - 168).toISOString() }],
    ['both reached, the short one lifts last', input(granted('sms_marketing'), { recentContacts: [hoursAgo(1), hoursAgo(2), hoursAgo(167.5)] }),
      { allowed: false, reason: 'CONTACT_LIMIT', limit: { count: 1, hours: 4 }, recent: 2, nextAllowedAt: hoursAgo(1 - 4).toISOString() }],
    ['a contact recorded just after `at` counts', input(granted('sms_marketing'), { recentContacts: [hoursAgo(-0.01)] }),
      { allowed: false, reason: 'CONTACT_LIMIT', limit: { count: 1, hours: 4 }, recent: 1, nextAllowedAt: hoursAgo(-4.01).toISOString() }],
    ['custom limits replace the defaults', input(granted('sms_marketing'), { recentContacts: [hoursAgo(1)], contactLimits: [{ count: 2, hours: 24 }] }), { allowed: true }],
    ['custom limits, reached', input(granted('sms_marketing'), { recentContacts: [hoursAgo(1), hoursAgo(20), hoursAgo(10)], contactLimits: [{ count: 2, hours: 24 }] }),
      { allowed: false, reason: 'CONTACT_LIMIT', limit: { count: 2, hours: 24 }, recent: 3, nextAllowedAt: hoursAgo(10 - 24).toISOString() }],
    ['no limits at all', input(granted('sms_marketing'), { recentContacts: [hoursAgo(0)], contactLimits: [] }), { allowed: true }],
  ])('%s', (_, given, expected) => {
    expect(mayContact(given)).toEqual(expected);
  });

  it.each([[{ count: 0, hours: 4 }], [{ count: 1.5, hours: 4 }], [{ count: 1, hours: 0 }], [{ count: 1, hours: Number.POSITIVE_INFINITY }], [{ count: 1, hours: Number.NaN }]])(
    'refuses the contact limit %j',
    (limit) => {
      expect(() => mayContact(input(granted('sms_marketing'), { contactLimits: [limit] }))).toThrow(RangeError);
    },
  );
});
