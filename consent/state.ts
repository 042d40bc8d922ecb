import { PURPOSES, type ConsentAction, type ConsentSource, type Purpose } from './purposes.js';

export interface ConsentEvent {
  purpose: Purpose;
  action: ConsentAction;
  source: ConsentSource;
  /** When the member acted (the ledger's order is the order of recording). */
  occurredAt: Date;
  noticeVersion?: string | null;
}

interface Decided {
  granted: boolean;
  /** The grant or withdrawal that decided the state; null when there is none. */
  since: Date | null;
  source: ConsentSource | null;
}

/**
 * `pending` says an opt-in was requested and not yet answered; `requestedAt` exists only then.
 * A request never changes `granted`: a member already granted stays granted while a new request waits.
 */
export type PurposeState = (Decided & { pending: false }) | (Decided & { pending: true; requestedAt: Date });

export type ConsentState = Record<Purpose, PurposeState>;

/** Folds a member's events, in ledger order, into the state of every purpose. */
export function consentState(events: readonly ConsentEvent[]): ConsentState {
  const state = Object.fromEntries(
    PURPOSES.map((p) => [p, { granted: false, since: null, source: null, pending: false } satisfies PurposeState]),
  ) as ConsentState;
  for (const e of events) state[e.purpose] = fold(state[e.purpose], e);
  return state;
}

function fold(s: PurposeState, e: ConsentEvent): PurposeState {
  switch (e.action) {
    case 'grant':
    case 'withdraw':
      // Either answer settles a waiting request: a grant confirms it, a withdrawal (STOP) cancels it.
      return { granted: e.action === 'grant', since: e.occurredAt, source: e.source, pending: false };
    case 'request':
      return { granted: s.granted, since: s.since, source: s.source, pending: true, requestedAt: e.occurredAt };
    default: {
      const never: never = e.action;
      throw new Error(`Unknown consent action ${String(never)}`);
    }
  }
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
