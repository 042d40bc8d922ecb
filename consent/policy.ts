// May we contact this member now? Consent first (no consent, nothing else matters), then the member's
// night, then how often we have already written: each later answer is only useful once the earlier pass.
import type { Purpose } from './purposes.js';
import { DEFAULT_QUIET_HOURS, isQuiet, nextAllowed, stricter, type QuietHours } from './quiet-hours.js';
import type { ConsentState } from './state.js';

export type Channel = 'sms' | 'push';

/** Every channel needs consent of its own, whatever the message is for. */
export const CHANNEL_PURPOSE: Readonly<Record<Channel, Purpose>> = { sms: 'sms_marketing', push: 'push_marketing' };

/** At most `count` contacts in any `hours`-long window. */
export interface ContactLimit {
  count: number;
  hours: number;
}

export const DEFAULT_CONTACT_LIMITS: readonly ContactLimit[] = Object.freeze([
  { count: 1, hours: 4 },
  { count: 3, hours: 7 * 24 },
]);

export interface ContactInput {
  consent: ConsentState;
  channel: Channel;
  /** What the message is for; checked too when it differs from the channel's purpose ("partner_offers"). */
  purpose: Purpose;
  at: Date;
  /** The member's IANA zone: quiet hours are read on their clock. */
  timeZone: string;
  /** Can only make DEFAULT_QUIET_HOURS stricter (see `stricter`); applies to push as well as SMS. */
  quietHours?: QuietHours;
  /** The contacts that count toward the limits, any order; ones after `at` count too (clock skew errs on the safe side). */
  recentContacts: readonly Date[];
  contactLimits?: readonly ContactLimit[];
}

export type ContactDecision =
  | { allowed: true }
  | { allowed: false; reason: 'CONSENT_MISSING' | 'CONSENT_WITHDRAWN'; purpose: Purpose; since: Date | null }
  | { allowed: false; reason: 'CONSENT_PENDING'; purpose: Purpose; since: Date | null; requestedAt: Date }
  /** `nextAllowedAt` is null when the window is the whole day. */
  | { allowed: false; reason: 'QUIET_HOURS'; quietHours: QuietHours; timeZone: string; nextAllowedAt: string | null }
  /** `nextAllowedAt` is when this limit lifts; quiet hours then are not considered. */
  | { allowed: false; reason: 'CONTACT_LIMIT'; limit: ContactLimit; recent: number; nextAllowedAt: string };

export function mayContact(input: ContactInput): ContactDecision {
  const channelPurpose = CHANNEL_PURPOSE[input.channel];
  const purposes = input.purpose === channelPurpose ? [channelPurpose] : [channelPurpose, input.purpose];
  for (const purpose of purposes) {
    const refused = consentFor(input.consent, purpose);
    if (refused) return refused;
  }

  const quietHours = stricter(DEFAULT_QUIET_HOURS, input.quietHours);
  if (isQuiet(input.at, input.timeZone, quietHours)) {
    const next = nextAllowed(input.at, input.timeZone, quietHours);
    return { allowed: false, reason: 'QUIET_HOURS', quietHours, timeZone: input.timeZone, nextAllowedAt: next?.toISOString() ?? null };
  }

  return limitReached(input.recentContacts, input.at, input.contactLimits ?? DEFAULT_CONTACT_LIMITS) ?? { allowed: true };
}

// A pending request outranks an earlier withdrawal: the member has asked to come back and the answer
// that matters is their YES. A request while granted does not suspend the grant.
function consentFor(consent: ConsentState, purpose: Purpose): ContactDecision | null {
  const s = consent[purpose];
  if (s.granted) return null;
  if (s.pending) return { allowed: false, reason: 'CONSENT_PENDING', purpose, since: s.since, requestedAt: s.requestedAt };
  return { allowed: false, reason: s.since ? 'CONSENT_WITHDRAWN' : 'CONSENT_MISSING', purpose, since: s.since };
}

const HOUR_MS = 3_600_000;

/**
 * The reached limit that lifts last (the first listed on a tie), or null. A contact counts while it is less
 * than `hours` old, so one exactly `hours` old no longer does.
 */
function limitReached(recent: readonly Date[], at: Date, limits: readonly ContactLimit[]): ContactDecision | null {
  let worst: Extract<ContactDecision, { reason: 'CONTACT_LIMIT' }> | null = null;
  for (const limit of limits) {
    if (!Number.isInteger(limit.count) || limit.count < 1 || !(limit.hours > 0) || !Number.isFinite(limit.hours)) {
      throw new RangeError(`A contact limit needs a whole count >= 1 and hours > 0, got ${JSON.stringify(limit)}`);
    }
    const window = limit.hours * HOUR_MS;
    const counted = recent.map((d) => d.getTime()).filter((t) => t > at.getTime() - window).sort((x, y) => x - y);
    if (counted.length < limit.count) continue;
    // The limit lifts when enough of the oldest counted contacts have aged out to leave room for one more.
    const liftsAt = counted[counted.length - limit.count]! + window;
    if (!worst || liftsAt > Date.parse(worst.nextAllowedAt)) {
      worst = { allowed: false, reason: 'CONTACT_LIMIT', limit, recent: counted.length, nextAllowedAt: new Date(liftsAt).toISOString() };
    }
  }
  return worst;
}
