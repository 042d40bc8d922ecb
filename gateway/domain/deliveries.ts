// The SMS worker: one job per delivery row; consent is checked again at the last moment before sending.
import { checkConsent, isQuiet, nextAllowed } from '../../consent/index.js';
import { AppError } from '../errors.js';
import type { Sql } from '../db/database.js';
import { TerminalJobError, type JobContext, type JobPayloads } from '../queue/jobs.js';
import { SmsSendError } from '../sms/sender.js';
import { OFFER_FRESHNESS_S } from './checkins.js';
import { recordCarrierOptOut } from './consent-changes.js';
import { currentConsent } from './consents.js';
import type { Deps } from './deps.js';

export type DeliveryStatus = 'queued' | 'sent' | 'delivered' | 'undelivered' | 'failed' | 'cancelled';

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

async function finish(db: Sql, id: string, status: DeliveryStatus, fields: { reason?: string; providerId?: string; errorCode?: string }) {
  await db.query(
    `UPDATE deliveries SET status = $2, status_reason = $3, provider_id = COALESCE($4, provider_id), error_code = $5, updated_at = now()
      WHERE id = $1 AND status = 'queued'`,
    [id, status, fields.reason ?? null, fields.providerId ?? null, fields.errorCode ?? null],
  );
}

export async function sendSmsJob(deps: Deps, { deliveryId }: { deliveryId: string }, ctx: JobContext): Promise<void> {
  const { db } = deps;
  const [row] = await db.query<Row & { phone_e164: string | null; time_zone: string }>(
    'SELECT d.*, m.phone_e164, m.time_zone FROM deliveries d JOIN members m ON m.id = d.member_id WHERE d.id = $1',
    [deliveryId],
  );
  if (!row) throw new TerminalJobError(`delivery ${deliveryId} does not exist`, 'DELIVERY_NOT_FOUND');
  if (row.status !== 'queued') return; // already settled by an earlier run of this job

  const consent = checkConsent(await currentConsent(db, row.member_id), ['sms_marketing']);
  if (!consent.allowed) return finish(db, row.id, 'cancelled', { reason: consent.reason });
  if (!row.phone_e164) return finish(db, row.id, 'cancelled', { reason: 'NO_PHONE' });
  const now = deps.now();
  const ageS = (now.getTime() - row.created_at.getTime()) / 1000;
  if (ageS >= OFFER_FRESHNESS_S) return finish(db, row.id, 'cancelled', { reason: 'STALE_OFFER' });
  if (isQuiet(now, row.time_zone)) {
    // Held to the end of the member's quiet hours if the offer is still fresh then; otherwise dropped.
    const next = nextAllowed(now, row.time_zone);
    if (next && next.getTime() - row.created_at.getTime() < OFFER_FRESHNESS_S * 1000) {
      await deps.queue.enqueue('sms.send', { deliveryId }, { jobId: `${deliveryId}@${next.getTime()}`, delayMs: next.getTime() - now.getTime() });
      return;
    }
    return finish(db, row.id, 'cancelled', { reason: 'QUIET_HOURS' });
  }

  await db.query('UPDATE deliveries SET attempts = attempts + 1, updated_at = now() WHERE id = $1', [row.id]);
  try {
    const { providerId } = await deps.sms.send({ to: row.phone_e164, body: row.body, validitySeconds: Math.floor(OFFER_FRESHNESS_S - ageS) });
    await finish(db, row.id, 'sent', { providerId });
  } catch (err) {
    const e = err instanceof SmsSendError ? err : new SmsSendError(String(err), true);
    // The carrier says the member unsubscribed (by replying STOP to it): that is a withdrawal for us too.
    if (e.code === '21610') await recordCarrierOptOut(deps, row.member_id, now);
    if (!e.retryable || ctx.attempt >= ctx.maxAttempts) {
      await finish(db, row.id, 'failed', { reason: e.message, errorCode: e.code });
      throw new TerminalJobError(e.message, e.code);
    }
    await db.query('UPDATE deliveries SET status_reason = $2, error_code = $3, updated_at = now() WHERE id = $1', [row.id, e.message, e.code ?? null]);
    throw e;
  }
}

/** Deliveries left 'queued' with no job (an enqueue that failed, a queue that lost its data): queue them again. */
export async function requeueStranded(deps: Deps): Promise<number> {
  const rows = await deps.db.query<{ id: string }>(`SELECT id FROM deliveries WHERE status = 'queued' ORDER BY created_at`);
  for (const r of rows) await deps.queue.enqueue('sms.send', { deliveryId: r.id }, { jobId: r.id });
  return rows.length;
}

/** Programme messages (opt-in request and the like) go to the member's number, if they still have one. */
export async function sendSystemSmsJob(deps: Deps, { memberId, text, onlyWhilePending }: JobPayloads['sms.system']): Promise<void> {
  const [member] = await deps.db.query<{ phone_e164: string | null }>('SELECT phone_e164 FROM members WHERE id = $1', [memberId]);
  if (!member?.phone_e164) return; // erased, or the number was removed: nothing to send to
  // A STOP (or a YES) that arrived while the opt-in request waited answers it: the request is not sent.
  if (onlyWhilePending && !(await currentConsent(deps.db, memberId))[onlyWhilePending].pending) return;
  try {
    await deps.sms.send({ to: member.phone_e164, body: text });
  } catch (err) {
    if (err instanceof SmsSendError && !err.retryable) throw new TerminalJobError(err.message, err.code);
    throw err;
  }
}

// How far along each status is: a callback moves a delivery only forward, so callbacks that arrive late,
// twice or out of order never overwrite a later state, and a final one (delivered, undelivered, failed) stays.
const PROGRESS: Record<string, number> = { queued: 0, sent: 1, delivered: 2, undelivered: 2, failed: 2, cancelled: 2 };
// Twilio's MessageStatus values, as our statuses; the ones before "sent" change nothing we record.
const FROM_TWILIO: Record<string, DeliveryStatus | undefined> = {
  sent: 'sent', delivered: 'delivered', undelivered: 'undelivered', failed: 'failed',
};

/** One Twilio status callback. Returns whether the delivery moved. Error 21610 also records the opt-out. */
export async function applyStatusCallback(deps: Deps, cb: { messageSid: string; status: string; errorCode?: string }, now: Date): Promise<boolean> {
  const next = FROM_TWILIO[cb.status];
  const [row] = await deps.db.query<{ id: string; member_id: string; status: DeliveryStatus }>(
    'SELECT id, member_id, status FROM deliveries WHERE provider_id = $1', [cb.messageSid],
  );
  if (!row) return false; // not ours, or erased
  if (cb.errorCode === '21610') await recordCarrierOptOut(deps, row.member_id, now);
  if (!next) return false;
  const moved = await deps.db.query(
    `UPDATE deliveries SET status = $2, provider_status = $3, error_code = coalesce($4, error_code), updated_at = $5
      WHERE id = $1 AND (CASE status ${Object.entries(PROGRESS).map(([k, v]) => `WHEN '${k}' THEN ${v}`).join(' ')} END) < $6 RETURNING 1`,
    [row.id, next, cb.status, cb.errorCode ?? null, now, PROGRESS[next]],
  );
  return moved.length > 0;
}
