// Sign-up from the members' app. With a phone number, the member proves it is theirs by typing a code sent to
// it; the answer to the request is the same whether or not the number already belongs to a member, so the
// public sign-up cannot be used to find out who is enrolled.
import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Database, Sql } from '../db/database.js';
import { AppError, OUTAGE_RETRY_AFTER_S } from '../errors.js';
import { issueApiKey } from './api-keys.js';
import type { Deps } from './deps.js';
import { createMember, normalizePhone, type Member } from './members.js';
import { TerminalJobError } from '../queue/jobs.js';
import { COUNTRY_NOT_ALLOWED, mayText } from '../sms/countries.js';
import { SmsSendError } from '../sms/sender.js';
import { countRefusedCode, returnSignupCode, takeSignupCode, takeSignupWithoutPhone } from './limits.js';

export const SIGNUP_TTL_MS = 15 * 60_000;
export const SIGNUP_MAX_ATTEMPTS = 5;

const hashOf = (signupId: string, code: string) => createHash('sha256').update(`${signupId}:${code}`).digest();

/**
 * Starts a sign-up: a 6-digit code goes by SMS to a number not yet enrolled; to an enrolled one, nothing goes.
 * Both take the same steps, counted alike against the number's limits and the hourly budget (SMS_LIMIT past
 * them), so neither the answer nor its timing says which the number is.
 */
export async function startSignup(deps: Deps, input: { phone: string; timeZone: string }, now: Date): Promise<{ signupId: string; expiresAt: string }> {
  const phone = normalizePhone(input.phone);
  if (!mayText(deps.config.smsCountries, phone)) {
    throw new AppError(COUNTRY_NOT_ALLOWED, `numbers of this country cannot be texted here (SMS_COUNTRIES: ${deps.config.smsCountries.join(', ')})`);
  }
  const expiresAt = new Date(now.getTime() + SIGNUP_TTL_MS);
  const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
  const signupId = randomUUID();
  try {
    await deps.db.transaction(async (tx) => {
      await takeSignupCode(tx, deps.config.signupLimits, phone, signupId, now);
      const [taken] = await tx.query('SELECT 1 FROM members WHERE phone_e164 = $1', [phone]);
      const hash = hashOf(signupId, code);
      await tx.query(
        'INSERT INTO member_signups (id, phone_e164, time_zone, expires_at, code_hash) VALUES ($1, $2, $3, $4, $5)',
        [signupId, phone, input.timeZone, expiresAt, taken ? null : hash],
      );
    });
  } catch (err) {
    if (err instanceof AppError && err.code === 'SMS_LIMIT') await countRefusedCode(deps.db, now);
    throw err;
  }
  // Queued alike: the job finds no code to send for an enrolled number.
  try {
    await deps.queue.enqueue('sms.code', { signupId, text: `${deps.config.programName}: your sign-up code is ${code}. It expires in 15 minutes.` });
  } catch (err) {
    // The code exists only in the job (the row keeps its hash): without the queue it can never be sent. The sign-up
    // is undone, so the retry the 503 asks for costs the number none of its codes.
    await deps.db.query('DELETE FROM member_signups WHERE id = $1', [signupId]);
    await returnSignupCode(deps.db, signupId, now);
    deps.log?.warn({ err }, 'sign-up code could not be queued; the sign-up was undone');
    throw new AppError('QUEUE_UNAVAILABLE', 'the queue is unavailable; try again shortly', { retryAfterSeconds: OUTAGE_RETRY_AFTER_S });
  }
  return { signupId, expiresAt: expiresAt.toISOString() };
}

/** A member without a phone, from the public sign-up: at most SIGNUP_WITHOUT_PHONE_PER_ADDRESS_PER_DAY per address. */
export async function signupWithoutPhone(deps: Deps, input: { timeZone: string; address: string }, now: Date): Promise<Member & { appToken: string }> {
  return deps.db.transaction(async (tx) => {
    await takeSignupWithoutPhone(tx, deps.config.signupLimits, input.address, now);
    return createMemberWithAppToken(tx, { timeZone: input.timeZone, joinedVia: 'app' });
  });
}

/** Finishes a sign-up with its code: the member and their first app token. */
export async function confirmSignup(db: Database, input: { signupId: string; code: string }, now: Date): Promise<Member & { appToken: string }> {
  // Unknown, expired, used up, wrong, or a number that was already enrolled (no code was ever sent): one answer.
  const refuse = () => new AppError('SIGNUP_CODE_INVALID', 'the code is wrong or has expired; start the sign-up again');
  const outcome = await db.transaction(async (tx) => {
    const [s] = await tx.query<{ phone_e164: string; time_zone: string; code_hash: Buffer | null; attempts: number; expires_at: Date }>(
      'SELECT * FROM member_signups WHERE id = $1 FOR UPDATE', [input.signupId],
    );
    if (!s || s.expires_at <= now || s.attempts >= SIGNUP_MAX_ATTEMPTS) throw refuse();
    const ok = s.code_hash !== null && timingSafeEqual(hashOf(input.signupId, input.code), s.code_hash);
    if (!ok) {
      // Counted, and committed: the refusal comes after the transaction.
      await tx.query('UPDATE member_signups SET attempts = attempts + 1 WHERE id = $1', [input.signupId]);
      return null;
    }
    await tx.query('DELETE FROM member_signups WHERE id = $1', [input.signupId]);
    return createMemberWithAppToken(tx, { phone: s.phone_e164, timeZone: s.time_zone, joinedVia: 'app' });
  });
  if (!outcome) throw refuse();
  return outcome;
}

/** A member and their first app token, in the caller's transaction. */
export async function createMemberWithAppToken(tx: Sql, input: Parameters<typeof createMember>[1]): Promise<Member & { appToken: string }> {
  const member = await createMember(tx, input);
  const { key } = await issueApiKey(tx, { role: 'member', name: 'app token', memberId: member.id });
  return { ...member, appToken: key };
}

/** The job that sends a sign-up's code, while the sign-up is still open. */
export async function sendSignupCodeJob(deps: Deps, { signupId, text }: { signupId: string; text: string }): Promise<void> {
  const [s] = await deps.db.query<{ phone_e164: string }>(
    'SELECT phone_e164 FROM member_signups WHERE id = $1 AND expires_at > $2 AND code_hash IS NOT NULL', [signupId, deps.now()],
  );
  if (!s) return;
  try {
    await deps.sms.send({ to: s.phone_e164, body: text });
  } catch (err) {
    if (err instanceof SmsSendError && !err.retryable) throw new TerminalJobError(err.message, err.code);
    throw err;
  }
}

/** Sign-ups nobody finished. */
export async function purgeSignups(db: Database, now: Date): Promise<number> {
  return (await db.query('DELETE FROM member_signups WHERE expires_at < $1 RETURNING 1', [now])).length;
}
