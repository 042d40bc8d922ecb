// Limits on what anyone may make the gateway do without an account. Definitions:
// - a *limited act*: a sign-up with a phone (a code by SMS, or none if the number is enrolled: counted alike, so a
//   limit never tells the two apart), an opt-in request text, a sign-up without a phone;
// - its *subject*: what it is counted by, a number or a caller's address, kept as a SHA-256;
// - a *window*: how far back a limit looks (an hour, a day), sliding; the budget of verification texts is per
//   clock hour instead, so administrators can read it hour by hour.
// Everything is counted in PostgreSQL, the record every gateway shares; a subject's acts are serialised by an
// advisory lock on it, so two gateways never both take its last one.
import { createHash } from 'node:crypto';
import type { SignupLimits } from '../config.js';
import type { Sql } from '../db/database.js';
import { AppError } from '../errors.js';

export type LimitedAct = 'signup_code' | 'opt_in_request' | 'signup_without_phone';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export const subjectOf = (value: string): Buffer => createHash('sha256').update(value).digest();

const lockKey = (subject: Buffer) => subject.readBigInt64BE(0).toString();

interface Window {
  ms: number;
  max: number;
}

/**
 * Records one act of the subject if every window has room, and returns null; else the seconds until one has.
 * Runs in the caller's transaction: rolled back with it, the act is not counted.
 */
async function take(tx: Sql, kind: LimitedAct, subject: Buffer, windows: readonly Window[], now: Date, ref?: string): Promise<number | null> {
  await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey(subject)]);
  const longest = Math.max(...windows.map((w) => w.ms));
  const rows = await tx.query<{ at: Date }>(
    'SELECT at FROM limit_events WHERE kind = $1 AND subject = $2 AND at > $3 ORDER BY at DESC',
    [kind, subject, new Date(now.getTime() - longest)],
  );
  let waitMs = 0;
  for (const w of windows) {
    const inWindow = rows.filter((r) => r.at.getTime() > now.getTime() - w.ms);
    // Room comes back when the max-th newest act leaves the window.
    if (inWindow.length >= w.max) waitMs = Math.max(waitMs, inWindow[w.max - 1]!.at.getTime() + w.ms - now.getTime());
  }
  if (waitMs > 0) return Math.max(1, Math.ceil(waitMs / 1000));
  await tx.query('INSERT INTO limit_events (kind, subject, ref, at) VALUES ($1, $2, $3, $4)', [kind, subject, ref ?? null, now]);
  return null;
}

const hourOf = (now: Date) => new Date(Math.floor(now.getTime() / HOUR_MS) * HOUR_MS);

/** The refusal of a verification text: the same whichever limit, and whether or not the number is enrolled. */
function smsLimit(seconds: number, why: string): AppError {
  return new AppError('SMS_LIMIT', `${why}; try again in ${seconds} s`, { retryAfterSeconds: seconds });
}

/**
 * Takes one sign-up code for the number, in the sign-up's transaction: within the number's hourly and daily
 * limits, and within this hour's budget of verification texts. Throws SMS_LIMIT otherwise.
 */
export async function takeSignupCode(tx: Sql, limits: SignupLimits, phone: string, signupId: string, now: Date): Promise<void> {
  const wait = await take(tx, 'signup_code', subjectOf(`phone:${phone}`), [
    { ms: HOUR_MS, max: limits.codesPerNumberPerHour },
    { ms: DAY_MS, max: limits.codesPerNumberPerDay },
  ], now, signupId);
  if (wait !== null) throw smsLimit(wait, 'too many sign-up codes for this number');
  const hour = hourOf(now);
  const [used] = await tx.query(
    `INSERT INTO signup_code_hours (hour, used) VALUES ($1, 1)
     ON CONFLICT (hour) DO UPDATE SET used = signup_code_hours.used + 1 WHERE signup_code_hours.used < $2 RETURNING used`,
    [hour, limits.codesPerHour],
  );
  if (!used) throw smsLimit(Math.ceil((hour.getTime() + HOUR_MS - now.getTime()) / 1000), 'the hourly budget of sign-up codes is spent');
}

/** Gives back the code taken for a sign-up whose text could not be queued: it counts against neither the number nor the hour. */
export async function returnSignupCode(db: Sql, signupId: string, takenAt: Date): Promise<void> {
  await db.query(`DELETE FROM limit_events WHERE kind = 'signup_code' AND ref = $1`, [signupId]);
  await db.query('UPDATE signup_code_hours SET used = used - 1 WHERE hour = $1 AND used > 0', [hourOf(takenAt)]);
}

/** Counts a sign-up refused by a limit, for administrators (outside the refused sign-up's transaction). */
export async function countRefusedCode(db: Sql, now: Date): Promise<void> {
  await db.query(
    `INSERT INTO signup_code_hours (hour, refused) VALUES ($1, 1) ON CONFLICT (hour) DO UPDATE SET refused = signup_code_hours.refused + 1`,
    [hourOf(now)],
  );
}

/**
 * Whether an opt-in request text may go to the number now: at most one per number in 24 hours. `ref` names the
 * request (its job), so a retry of a request already counted is the same request, not another.
 */
export async function takeOptInRequest(tx: Sql, phone: string, ref: string, now: Date): Promise<boolean> {
  const subject = subjectOf(`phone:${phone}`);
  await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey(subject)]);
  const rows = await tx.query<{ ref: string | null }>(
    `SELECT ref FROM limit_events WHERE kind = 'opt_in_request' AND subject = $1 AND at > $2`,
    [subject, new Date(now.getTime() - DAY_MS)],
  );
  if (rows.length > 0) return rows.some((r) => r.ref === ref);
  await tx.query(`INSERT INTO limit_events (kind, subject, ref, at) VALUES ('opt_in_request', $1, $2, $3)`, [subject, ref, now]);
  return true;
}

/** Takes one sign-up without a phone for the caller's address; throws RATE_LIMITED past the daily limit. */
export async function takeSignupWithoutPhone(tx: Sql, limits: SignupLimits, address: string, now: Date): Promise<void> {
  const max = limits.withoutPhonePerAddressPerDay;
  const wait = await take(tx, 'signup_without_phone', subjectOf(`address:${address}`), [{ ms: DAY_MS, max }], now);
  if (wait !== null) {
    throw new AppError('RATE_LIMITED', `too many sign-ups without a phone from this address: ${max} a day; try again in ${wait} s`, {
      limit: max, retryAfterSeconds: wait,
    });
  }
}

/** Forgets a number's counted acts (its member is erased: nothing about the number stays). */
export async function forgetNumber(tx: Sql, phone: string): Promise<void> {
  await tx.query('DELETE FROM limit_events WHERE subject = $1', [subjectOf(`phone:${phone}`)]);
}

/** Acts older than any window, and budget hours older than 30 days. */
export async function purgeLimits(db: Sql, now: Date): Promise<number> {
  const acts = await db.query('DELETE FROM limit_events WHERE at < $1 RETURNING 1', [new Date(now.getTime() - DAY_MS)]);
  await db.query('DELETE FROM signup_code_hours WHERE hour < $1', [new Date(now.getTime() - 30 * DAY_MS)]);
  return acts.length;
}

export interface CodeHour {
  hour: string;
  used: number;
  refused: number;
}

/** The budget of verification texts: this hour's use and the last 48 hours', newest first. */
export async function codeBudget(db: Sql, limits: SignupLimits, now: Date): Promise<{ current: CodeHour & { remaining: number }; hours: CodeHour[] }> {
  const rows = await db.query<{ hour: Date; used: number; refused: number }>(
    'SELECT hour, used, refused FROM signup_code_hours WHERE hour > $1 ORDER BY hour DESC',
    [new Date(now.getTime() - 48 * HOUR_MS)],
  );
  const hours = rows.map((r) => ({ hour: r.hour.toISOString(), used: r.used, refused: r.refused }));
  const hour = hourOf(now).toISOString();
  const current = hours.find((h) => h.hour === hour) ?? { hour, used: 0, refused: 0 };
  return { current: { ...current, remaining: Math.max(0, limits.codesPerHour - current.used) }, hours };
}
