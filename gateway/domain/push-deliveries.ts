// The push worker: one job per push delivery row. Like the SMS worker it checks, at the last moment, that the
// delivery still waits, that the member still consents, that it is not their night and that the offer is still
// fresh; then it pushes the offer to each of the member's subscribed devices.
import { checkConsent, isQuiet, nextAllowed } from '../../consent/index.js';
import { PushSendError, type PushMessage } from '../push/provider.js';
import { TerminalJobError, type JobContext } from '../queue/jobs.js';
import { currentConsent } from './consents.js';
import { dropStale, finish, holdUntil, releaseClaim, releaseDeadClaim, type DeliveryStatus } from './deliveries.js';
import type { Deps } from './deps.js';
import { dropGoneSubscription, liveSubscriptions, toTarget, type SubscriptionRow } from './push-subscriptions.js';

declare module '../queue/jobs.js' {
  interface JobPayloads {
    /** Push the offer of one delivery row (channel 'push') to the member's subscribed devices. */
    'push.send': { deliveryId: string };
  }
}

/** An offer is worth something for minutes: push services deliver high-urgency messages to sleeping devices too. */
export const OFFER_URGENCY: PushMessage['urgency'] = 'high';

/** A newer offer of the same campaign replaces one still waiting at the push service (a topic is ≤ 32 characters). */
export const offerTopic = (campaignId: string) => campaignId.replaceAll('-', '');

interface Row {
  id: string;
  member_id: string;
  channel: 'sms' | 'push';
  body: string;
  status: DeliveryStatus;
  fresh_until: Date;
  sending_at: Date | null;
  lease_left_ms: number | null;
  time_zone: string;
  campaign_id: string;
}

type Outcome = { device: SubscriptionRow; providerId: string | null } | { device: SubscriptionRow; error: PushSendError };

/**
 * Pushes one delivery's offer to every device the member has subscribed. It counts as sent when a push service
 * accepted it for at least one device. A device whose subscription is gone (404, 410) is removed; when none
 * accepted, a refusal worth retrying (429, 5xx, no answer) retries the job, and anything else fails it for good.
 */
export async function sendPushJob(deps: Deps, { deliveryId }: { deliveryId: string }, ctx: JobContext): Promise<void> {
  const { db } = deps;
  // The lease is measured on the database's clock, the one every worker shares.
  const [row] = await db.query<Row>(
    `SELECT d.id, d.member_id, d.channel, d.body, d.status, d.fresh_until, d.sending_at, m.time_zone, c.campaign_id,
            (extract(epoch FROM d.sending_at + $2 * interval '1 millisecond' - clock_timestamp()) * 1000)::float8 AS lease_left_ms
       FROM deliveries d JOIN members m ON m.id = d.member_id JOIN coupons c ON c.id = d.coupon_id WHERE d.id = $1`,
    [deliveryId, deps.config.sendLeaseMs],
  );
  if (!row) throw new TerminalJobError(`delivery ${deliveryId} does not exist`, 'DELIVERY_NOT_FOUND');
  if (row.channel !== 'push') throw new TerminalJobError(`delivery ${deliveryId} is not a push delivery`, 'WRONG_CHANNEL');
  if (row.status === 'sending') {
    if (row.lease_left_ms !== null && row.lease_left_ms > 0) {
      // Another run holds the claim (or held it, and its worker died moments ago): look again when its lease ends.
      const at = Date.now() + Math.ceil(row.lease_left_ms);
      await deps.queue.enqueue('push.send', { deliveryId }, { jobId: `push-${deliveryId}@lease-${at}`, delayMs: Math.ceil(row.lease_left_ms) });
      return;
    }
    // Its worker died between claiming and recording. A push service cannot be asked what it took, so the offer
    // goes again, under the same topic: a copy still waiting at the push service is replaced, not doubled.
    if (!(await releaseDeadClaim(db, row.id, row.sending_at!))) return;
    row.status = 'queued';
  }
  if (row.status !== 'queued') return; // already settled by an earlier run of this job
  if (!deps.push) throw new Error('this process has no push channel');

  const consent = checkConsent(await currentConsent(db, row.member_id), ['push_marketing']);
  if (!consent.allowed) return finish(db, row.id, 'cancelled', { reason: consent.reason });
  const now = deps.now();
  const devices = await liveSubscriptions(db, row.member_id, now);
  if (devices.length === 0) return finish(db, row.id, 'cancelled', { reason: 'NO_PUSH_SUBSCRIPTION' });
  if (now.getTime() >= row.fresh_until.getTime()) {
    return dropStale(db, row.id, now);
  }
  if (isQuiet(now, row.time_zone)) {
    // Held to the end of the member's quiet hours if the offer is still fresh then; otherwise dropped.
    const next = nextAllowed(now, row.time_zone);
    if (next && next.getTime() < row.fresh_until.getTime()) {
      await holdUntil(db, row.id, next);
      await deps.queue.enqueue('push.send', { deliveryId }, { jobId: `push-${deliveryId}@${next.getTime()}`, delayMs: next.getTime() - now.getTime() });
      return;
    }
    return finish(db, row.id, 'cancelled', { reason: 'QUIET_HOURS' });
  }

  // The claim: of any number of runs for this delivery, one pushes.
  const claimed = await db.query(
    `UPDATE deliveries SET status = 'sending', sending_at = now(), attempts = attempts + 1, updated_at = now()
      WHERE id = $1 AND status = 'queued' RETURNING 1`,
    [row.id],
  );
  if (claimed.length === 0) return;
  const message: PushMessage = {
    payload: row.body,
    // The push service keeps it for an offline device only while the offer is worth having.
    ttlSeconds: Math.floor((row.fresh_until.getTime() - now.getTime()) / 1000),
    urgency: OFFER_URGENCY,
    topic: offerTopic(row.campaign_id),
  };
  const push = deps.push;
  const outcomes = await Promise.all(devices.map(async (device): Promise<Outcome> => {
    try {
      return { device, ...(await push.providers[device.provider].send(toTarget(device), message)) };
    } catch (err) {
      return { device, error: err instanceof PushSendError ? err : new PushSendError(String(err), 'retry', 'INTERNAL') };
    }
  }));

  const failures: PushSendError[] = [];
  const accepted: Array<{ device: SubscriptionRow; providerId: string | null }> = [];
  for (const o of outcomes) {
    if (!('error' in o)) accepted.push(o);
    else {
      failures.push(o.error);
      if (o.error.outcome === 'gone') await dropGoneSubscription(db, o.device.id, now);
    }
  }
  if (accepted.length > 0) {
    await db.query('UPDATE push_subscriptions SET last_success_at = $2 WHERE id = ANY($1::uuid[])', [accepted.map((a) => a.device.id), now]);
    return finish(db, row.id, 'sent', { providerId: accepted.find((a) => a.providerId)?.providerId ?? null });
  }
  const retry = failures.find((e) => e.outcome === 'retry');
  // A push service that said when to come back (429, 503 with Retry-After) is asked again then, not sooner; if
  // that is past the offer's freshness, the offer is dropped now rather than sent late.
  const waitMs = Math.max(0, ...failures.map((e) => (e.outcome === 'retry' ? e.retryAfterMs ?? 0 : 0)));
  if (retry && waitMs > 0) {
    if (now.getTime() + waitMs >= row.fresh_until.getTime()) {
      return dropStale(db, row.id, now, retry.code);
    }
    // Held before the claim is given back: a reconciler pass in between would otherwise queue it at once.
    await holdUntil(db, row.id, new Date(now.getTime() + waitMs));
    await releaseClaim(db, row.id, retry);
    const at = Date.now() + waitMs;
    await deps.queue.enqueue('push.send', { deliveryId }, { jobId: `push-${deliveryId}@retry-${at}`, delayMs: waitMs });
    return;
  }
  if (retry && ctx.attempt < ctx.maxAttempts) {
    // Nothing went out: the claim is given back for the next attempt.
    await releaseClaim(db, row.id, retry);
    throw retry;
  }
  const final = retry ?? failures.find((e) => e.outcome === 'refused');
  const reason = final?.message ?? 'PUSH_SUBSCRIPTION_GONE';
  const errorCode = (final ?? failures[0])!.code;
  await finish(db, row.id, 'failed', { reason, errorCode });
  throw new TerminalJobError(reason, errorCode);
}
