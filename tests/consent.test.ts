import { describe, expect, it } from 'vitest';
import { PURPOSES, checkConsent, consentState, type ConsentEvent } from '../consent/index.js';

const at = (min: number) => new Date(Date.UTC(2026, 0, 1, 12, min));
const ev = (purpose: ConsentEvent['purpose'], action: ConsentEvent['action'], min: number): ConsentEvent => ({
  purpose, action, source: 'app', occurredAt: at(min),
});

describe('consentState', () => {
  it('grants nothing without events', () => {
    const s = consentState([]);
    expect(Object.keys(s).sort()).toEqual([...PURPOSES].sort());
    for (const p of PURPOSES) expect(s[p]).toEqual({ granted: false, since: null, source: null, pending: false });
  });

  it('lets the last event of each purpose decide, purposes independent of each other', () => {
    const s = consentState([ev('location', 'grant', 1), ev('sms_marketing', 'grant', 2), ev('location', 'withdraw', 3), ev('location', 'grant', 4)]);
    expect(s.location).toEqual({ granted: true, since: at(4), source: 'app', pending: false });
    expect(s.sms_marketing.granted).toBe(true);
    expect(s.partner_offers.granted).toBe(false);
  });
});

describe('checkConsent', () => {
  it.each([
    [[], ['location'], { allowed: false, reason: 'CONSENT_MISSING', purpose: 'location', since: null }],
    [[ev('location', 'grant', 1)], ['location'], { allowed: true }],
    [[ev('location', 'grant', 1), ev('location', 'withdraw', 2)], ['location'], { allowed: false, reason: 'CONSENT_WITHDRAWN', purpose: 'location', since: at(2) }],
    [[ev('location', 'grant', 1)], ['location', 'sms_marketing'], { allowed: false, reason: 'CONSENT_MISSING', purpose: 'sms_marketing', since: null }],
    [[ev('location', 'grant', 1), ev('sms_marketing', 'grant', 2)], ['location', 'sms_marketing'], { allowed: true }],
  ] as const)('events %# need %j', (events, purposes, expected) => {
    expect(checkConsent(consentState(events), purposes)).toEqual(expected);
  });
});
