import { invalid } from '../errors.js';

/** Device clocks drift; an instant further ahead than this is refused rather than trusted. */
export const FUTURE_SKEW_MS = 5 * 60_000;

/** Parses an ISO instant sent by a client and refuses one that lies in the future. */
export function pastInstant(iso: string, now: Date, field: string): Date {
  const at = new Date(iso);
  if (at.getTime() > now.getTime() + FUTURE_SKEW_MS) {
    throw invalid({ field, problem: `is in the future (server time ${now.toISOString()})` });
  }
  return at;
}
