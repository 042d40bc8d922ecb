import { PURPOSES, type ConsentAction, type ConsentSource, type Purpose } from './purposes.js';

export interface ConsentEvent {
  purpose: Purpose;
  action: ConsentAction;
  source: ConsentSource;
  /** When the member acted (the ledger's order is the order of recording). */
  occurredAt: Date;
  noticeVersion?: string | null;
}

export interface PurposeState {
  granted: boolean;
  /** The event that decided the state; null when there is none. */
  since: Date | null;
  source: ConsentSource | null;
}

export type ConsentState = Record<Purpose, PurposeState>;

/** Folds a member's events, in ledger order, into the state of every purpose. */
export function consentState(events: readonly ConsentEvent[]): ConsentState {
  const state = Object.fromEntries(
    PURPOSES.map((p) => [p, { granted: false, since: null, source: null } satisfies PurposeState]),
  ) as ConsentState;
  for (const e of events) {
    state[e.purpose] = { granted: e.action === 'grant', since: e.occurredAt, source: e.source };
  }
  return state;
}

export type ConsentCheck =
  | { allowed: true }
  | { allowed: false; reason: 'CONSENT_MISSING' | 'CONSENT_WITHDRAWN'; purpose: Purpose; since: Date | null };

/** Allowed only when every purpose is currently granted; otherwise names the first one that is not, and why. */
export function checkConsent(state: ConsentState, purposes: readonly Purpose[]): ConsentCheck {
  for (const purpose of purposes) {
    const s = state[purpose];
    if (!s.granted) {
      return { allowed: false, reason: s.since ? 'CONSENT_WITHDRAWN' : 'CONSENT_MISSING', purpose, since: s.since };
    }
  }
  return { allowed: true };
}
