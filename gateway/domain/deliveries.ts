// The SMS worker: one job per delivery row; consent is checked again at the last moment before sending.
import { isUuid } from './ids.js';
import { checkConsent, isQuiet, nextAllowed } from '../../consent/index.js';
import { AppError } from '../errors.js';
import type { Sql } from '../db/database.js';
import { TerminalJobError, type JobContext, type JobPayloads } from '../queue/jobs.js';
import { SmsSendError } from '../sms/sender.js';
import { recordCarrierOptOut } from './consent-changes.js';
import { currentConsent } from './consents.js';
import type { Deps } from './deps.js';
import { countDrops } from './privacy.js';
import { takeOptInRequest } from './limits.js';
import { COUNTRY_NOT_ALLOWED, mayText } from '../sms/countries.js';

export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'delivered' | 'undelivered' | 'failed' | 'cancelled';

export interface Delivery {
  id: string;
  decisionId: string;
  memberId: string;
  channel: 'sms' | 'push';
  status: DeliveryStatus;
  statusReason: string | null;
  providerId: string | null;
  errorCode: string | null;
  attempts: number;
  createdAt: string;
  updatedAt: string;
}

interface Row {
  id: string;
  decision_id: string;
  member_id: string;
  channel: 'sms' | 'push';
  body: string;
  status: DeliveryStatus;
  status_reason: string | null;
  provider_id: string | null;
  error_code: string | null;
  attempts: number;
  sending_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const toDelivery = (r: Row): Delivery => ({
  id: r.id,
  decisionId: r.decision_id,
  memberId: r.member_id,
  channel: r.channel,
  status: r.status,
  statusReason: r.status_reason,
  providerId: r.provider_id,
  errorCode: r.error_code,
  attempts: r.attempts,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

export async function getDelivery(db: Sql, id: string): Promise<Delivery> {
  const [row] = await db.query<Row>('SELECT * FROM deliveries WHERE id = $1', [id]);
  if (!row) throw new AppError('DELIVERY_NOT_FOUND', `delivery ${id} does not exist`);
  return toDelivery(row);
}

/**
 * The steps both channels' workers share. Settles a delivery that is still waiting (`queued`) or claimed
 * (`sending`); a settled one stays as it is.
 */
export async function finish(db: Sql, id: string, status: DeliveryStatus, fields: { reason?: string; providerId?: string | null; errorCode?: string }) {
  await db.query(
    `UPDATE deliveries SET status = $2, status_reason = $3, provider_id = COALESCE($4, provider_id), error_code = $5, updated_at = now()
      WHERE id = $1 AND status IN ('queued', 'sending')`,
    [id, status, fields.reason ?? null, fields.providerId ?? null, fields.errorCode ?? null],
  );
}

/** An offer dropped because its moment passed: cancelled, and counted. */
export async function dropStale(db: Sql, id: string, now: Date, errorCode?: string): Promise<void> {
  await finish(db, id, 'cancelled', { reason: 'STALE_OFFER', ...(errorCode ? { errorCode } : {}) });
  await countDrops(db, 'offer_stale', now, 1);
}

/** Gives a claim back (nothing went out): the next run may claim it. With a refusal, what the provider said. */
export async function releaseClaim(db: Sql, id: string, refusal?: { message: string; code?: string }): Promise<void> {
  await db.query(
    refusal
      ? `UPDATE deliveries SET status = 'queued', status_reason = $2, error_code = $3, updated_at = now() WHERE id = $1 AND status = 'sending'`
      : `UPDATE deliveries SET status = 'queued', updated_at = now() WHERE id = $1 AND status = 'sending'`,
    refusal ? [id, refusal.message, refusal.code ?? null] : [id],
  );
}

/**
 * Takes back a dead worker's claim, the one claimed at `sendingAt`; false when another run got there first.
 * Two runs may find the same expired claim (its job, a duplicate, the reconciler's): only the first releases it,
 * so the second never undoes a claim the first has taken again in the meantime.
 */
export async function releaseDeadClaim(db: Sql, id: string, sendingAt: Date): Promise<boolean> {
  const rows = await db.query(
    // No newer than the claim seen (a Date holds milliseconds, the column microseconds); a claim taken since is newer.
    `UPDATE deliveries SET status = 'queued', updated_at = now()
      WHERE id = $1 AND status = 'sending' AND sending_at < $2::timestamptz + interval '1 millisecond' RETURNING 1`,
    [id, sendingAt],
  );
  return rows.length > 0;
}

/**
 * Sends one delivery's SMS, once. The carrier's API has no idempotency key, so the send is claimed first
 * (status 'sending', committed) and recorded after: a run that finds a claim older than the lease (its
 * worker died between the two) asks the carrier whether the message went out, and records it instead of
 * sending again. Duplicate jobs, retries and restarts all meet the same row, so each decision gets at most
 * one message, and only while the offer is fresh.
 */
export async function sendSmsJob(deps: Deps, { deliveryId }: { deliveryId: string }, ctx: JobContext): Promise<void> {
  const { db } = deps;
  // The lease is measured on the database's clock, the one every worker shares.
  const [row] = await db.query<Row & { phone_e164: string | null; time_zone: string; fresh_until: Date; lease_left_ms: number | null }>(
    `SELECT d.*, m.phone_e164, m.time_zone,
            (extract(epoch FROM d.sending_at + $2 * interval '1 millisecond' - clock_timestamp()) * 1000)::float8 AS lease_left_ms
       FROM deliveries d JOIN members m ON m.id = d.member_id WHERE d.id = $1`,
    [deliveryId, deps.config.sendLeaseMs],
  );
  if (!row) throw new TerminalJobError(`delivery ${deliveryId} does not exist`, 'DELIVERY_NOT_FOUND');
  // A push delivery's job that came this way (queued before deliveries were queued by channel) goes on to push.
  if (row.channel !== 'sms') return enqueueDelivery(deps, row);
  if (row.status === 'sending') {
    if (row.lease_left_ms !== null && row.lease_left_ms > 0) {
      // Another run holds the claim (or held it, and its worker died moments ago): look again when its lease ends.
      const at = Date.now() + Math.ceil(row.lease_left_ms);
      await deps.queue.enqueue('sms.send', { deliveryId }, { jobId: `${deliveryId}@lease-${at}`, delayMs: Math.ceil(row.lease_left_ms) });
      return;
    }
    // The worker that claimed this send died before recording it: it may or may not have reached the carrier.
    const found = row.phone_e164 ? await deps.sms.findSent({ to: row.phone_e164, body: row.body, since: row.sending_at! }) : null;
    if (found) return finish(db, row.id, 'sent', { providerId: found.providerId, reason: 'RECOVERED_AFTER_CRASH' });
    if (!(await releaseDeadClaim(db, row.id, row.sending_at!))) return;
    row.status = 'queued';
  }
  if (row.status !== 'queued') return; // already settled by an earlier run of this job

  const consent = checkConsent(await currentConsent(db, row.member_id), ['sms_marketing']);
  if (!consent.allowed) return finish(db, row.id, 'cancelled', { reason: consent.reason });
  if (!row.phone_e164) return finish(db, row.id, 'cancelled', { reason: 'NO_PHONE' });
  if (!mayText(deps.config.smsCountries, row.phone_e164)) return finish(db, row.id, 'cancelled', { reason: COUNTRY_NOT_ALLOWED });
  const now = deps.now();
  if (now.getTime() >= row.fresh_until.getTime()) return dropStale(db, row.id, now);
  if (isQuiet(now, row.time_zone)) {
    // Held to the end of the member's quiet hours if the offer is still fresh then; otherwise dropped.
    const next = nextAllowed(now, row.time_zone);
    if (next && next.getTime() < row.fresh_until.getTime()) {
      await holdUntil(db, row.id, next);
      await deps.queue.enqueue('sms.send', { deliveryId }, { jobId: `${deliveryId}@${next.getTime()}`, delayMs: next.getTime() - now.getTime() });
      return;
    }
    return finish(db, row.id, 'cancelled', { reason: 'QUIET_HOURS' });
  }

  // The claim: of any number of runs for this delivery, one gets it.
  const [claimed] = await db.query<{ sending_at: Date }>(
    `UPDATE deliveries SET status = 'sending', sending_at = now(), attempts = attempts + 1, updated_at = now()
      WHERE id = $1 AND status = 'queued' RETURNING sending_at`,
    [row.id],
  );
  if (!claimed) return;
  try {
    const validitySeconds = Math.floor((row.fresh_until.getTime() - now.getTime()) / 1000);
    const { providerId } = await deps.sms.send({ to: row.phone_e164, body: row.body, validitySeconds, reference: row.id });
    await finish(db, row.id, 'sent', { providerId });
  } catch (err) {
    const e = err instanceof SmsSendError ? err : new SmsSendError(String(err), true);
    // The carrier says the member unsubscribed (by replying STOP to it): that is a withdrawal for us too.
    if (e.code === '21610') await recordCarrierOptOut(deps, row.member_id, now);
    // No answer: the message may have gone out, so it is not 'failed'. The claim is kept: the retry (after the last
    // attempt, the reconciler's pass over expired claims) waits for its lease to end and asks the carrier first.
    if (e.retryable && e.maybeSent) {
      if (ctx.attempt >= ctx.maxAttempts) throw new TerminalJobError(e.message, e.code);
      throw e;
    }
    if (!e.retryable || ctx.attempt >= ctx.maxAttempts) {
      await finish(db, row.id, 'failed', { reason: e.message, errorCode: e.code });
      throw new TerminalJobError(e.message, e.code);
    }
    // The carrier answered, with a refusal worth retrying: nothing went out, the claim is given back.
    await releaseClaim(db, row.id, e);
    throw e;
  }
}

/**
 * Queues the jobs of deliveries just committed, each on its channel's job (an SMS's is paced by the sender's
 * rate; a push's is not). Never fails and never waits long: the caller's answer does not depend on Redis. What
 * does not reach the queue within ENQUEUE_TIMEOUT_MS stays 'queued' in the database, and the reconciler
 * (outbox.ts) queues it within a few seconds.
 */
export async function queueDeliveries(deps: Deps, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  crashHook(deps.config.testCrashAfterCommit);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), deps.config.enqueueTimeoutMs)));
  const work = (async () => {
    const rows = await deps.db.query<{ id: string; channel: 'sms' | 'push' }>('SELECT id, channel FROM deliveries WHERE id = ANY($1::uuid[])', [ids]);
    await Promise.all(rows.map((r) => enqueueDelivery(deps, r)));
  })();
  try {
    if ((await Promise.race([work, deadline])) === 'late') deps.log?.warn({ deliveryIds: ids }, 'enqueue after commit timed out; the reconciler will queue it');
  } catch (err) {
    deps.log?.warn({ err, deliveryIds: ids }, 'enqueue after commit failed; the reconciler will queue it');
  } finally {
    clearTimeout(timer);
    work.catch(() => {}); // settled or not, its outcome is the reconciler's business now
  }
}

// Test only (TEST_CRASH_AFTER_COMMIT): every committed decision's deliveries come through queueDeliveries, so
// dying here is a gateway lost between commit and enqueue, the window the reconciler must close.
let commitsWithDeliveries = 0;
function crashHook(afterCommits: number) {
  if (afterCommits > 0 && ++commitsWithDeliveries >= afterCommits) process.kill(process.pid, 'SIGKILL');
}

/** A delivery's own job: its id is the delivery's, so any number of enqueues of it make one job. */
export function deliveryJob(d: { id: string; channel: 'sms' | 'push' }): { name: 'sms.send' | 'push.send'; jobId: string } {
  return d.channel === 'push' ? { name: 'push.send', jobId: `push-${d.id}` } : { name: 'sms.send', jobId: d.id };
}

function enqueueDelivery(deps: Deps, d: { id: string; channel: 'sms' | 'push' }): Promise<void> {
  const job = deliveryJob(d);
  return deps.queue.enqueue(job.name, { deliveryId: d.id }, { jobId: job.jobId });
}

/** A waiting delivery held until `at` (quiet hours, a Retry-After): the reconciler leaves it alone until then. */
export async function holdUntil(db: Sql, id: string, at: Date): Promise<void> {
  // Also on a claimed row about to be given back, so that no reconciler pass sees it waiting without its hold.
  await db.query(`UPDATE deliveries SET not_before = $2 WHERE id = $1 AND status IN ('queued', 'sending')`, [id, at]);
}

/** Programme messages (opt-in request and the like) go to the member's number, if they still have one. */
export async function sendSystemSmsJob(deps: Deps, { memberId, text, onlyWhilePending, ref }: JobPayloads['sms.system']): Promise<void> {
  const [member] = await deps.db.query<{ phone_e164: string | null }>('SELECT phone_e164 FROM members WHERE id = $1', [memberId]);
  if (!member?.phone_e164) return; // erased, or the number was removed: nothing to send to
  // A STOP (or a YES) that arrived while the opt-in request waited answers it: the request is not sent.
  if (onlyWhilePending && !(await currentConsent(deps.db, memberId))[onlyWhilePending].pending) return;
  // One opt-in request per number in 24 hours, however often the member (or whoever holds their token) grants
  // again: the one already sent can still be answered YES.
  const phone = member.phone_e164;
  if (onlyWhilePending && !(await deps.db.transaction((tx) => takeOptInRequest(tx, phone, ref ?? `member-${memberId}`, deps.now())))) return;
  try {
    await deps.sms.send({ to: member.phone_e164, body: text });
  } catch (err) {
    if (err instanceof SmsSendError && !err.retryable) throw new TerminalJobError(err.message, err.code);
    throw err;
  }
}

// How far along each status is: a callback moves a delivery only forward, so callbacks that arrive late,
// twice or out of order never overwrite a later state, and a final one (delivered, undelivered, failed) stays.
const PROGRESS: Record<string, number> = { queued: 0, sending: 0, sent: 1, delivered: 2, undelivered: 2, failed: 2, cancelled: 2 };
// Twilio's MessageStatus values, as our statuses; the ones before "sent" change nothing we record.
const FROM_TWILIO: Record<string, DeliveryStatus | undefined> = {
  sent: 'sent', delivered: 'delivered', undelivered: 'undelivered', failed: 'failed',
};

/**
 * One Twilio status callback. Returns whether the delivery moved. Error 21610 also records the opt-out. The
 * delivery is found by the message's sid, or by our reference on the callback URL when the worker has not
 * stored the sid yet (or died before it could: the callback then records the send).
 */
export async function applyStatusCallback(
  deps: Deps, cb: { messageSid: string; status: string; errorCode?: string; reference?: string }, now: Date,
): Promise<boolean> {
  const next = FROM_TWILIO[cb.status];
  const byReference = cb.reference && isUuid(cb.reference) ? cb.reference : null;
  const [row] = await deps.db.query<{ id: string; member_id: string; status: DeliveryStatus }>(
    `SELECT id, member_id, status FROM deliveries WHERE provider_id = $1
      UNION ALL SELECT id, member_id, status FROM deliveries WHERE id = $2::uuid AND provider_id IS NULL LIMIT 1`,
    [cb.messageSid, byReference],
  );
  if (!row) return false; // not ours, or erased
  if (cb.errorCode === '21610') await recordCarrierOptOut(deps, row.member_id, now);
  if (!next) return false;
  const moved = await deps.db.query(
    `UPDATE deliveries SET status = $2, provider_status = $3, error_code = coalesce($4, error_code), updated_at = $5,
            provider_id = coalesce(provider_id, $7)
      WHERE id = $1 AND (CASE status ${Object.entries(PROGRESS).map(([k, v]) => `WHEN '${k}' THEN ${v}`).join(' ')} END) < $6 RETURNING 1`,
    [row.id, next, cb.status, cb.errorCode ?? null, now, PROGRESS[next], cb.messageSid],
  );
  return moved.length > 0;
}
