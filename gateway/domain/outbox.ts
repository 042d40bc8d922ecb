// The outbox reconciler. PostgreSQL is the record of what must be sent; the queue only wakes workers. A
// delivery committed as 'queued' whose job never reached Redis (an enqueue that timed out, a gateway killed
// between commit and enqueue, a Redis restarted empty) is queued again here, or dropped as stale and counted;
// a 'sending' claim whose worker died is handed to a job, which asks the carrier before any new attempt; and
// repeated jobs whose schedule the queue lost are registered again. No process has to restart.
//
// Words: a *pass* is one look over the waiting deliveries; the *lease* (a row of `leases`) lets one process of
// many make passes at a time; a job is *live* while it waits, is delayed or runs.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Sql } from '../db/database.js';
import type { JobName, JobPayloads } from '../queue/jobs.js';
import { deliveryJob } from './deliveries.js';
import type { Deps } from './deps.js';
import { countDrops } from './privacy.js';

const LEASE = 'outbox-reconciler';
/** Rows looked at per pass: a backlog larger than this is worked through over the next passes. */
const BATCH = 1000;

export interface PassResult {
  /** Waiting deliveries that had no live job and were queued again. */
  requeued: number;
  /** Claims whose lease ran out (a dead worker's) handed to a job. */
  recovered: number;
  /** Waiting deliveries past their freshness: cancelled (STALE_OFFER) and counted. */
  stale: number;
}

/** A job the queue runs every `everyMs`; its schedule lives in Redis, which may lose it. */
export interface Repeated<N extends JobName = JobName> {
  name: N;
  payload: JobPayloads[N];
  everyMs: number;
}

/** Takes or renews the lease `name` for `holder`; false while another holder's has not expired. */
export async function takeLease(db: Sql, name: string, holder: string, ttlMs: number): Promise<boolean> {
  // The database's clock is the one every process shares.
  const rows = await db.query(
    `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
      WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < clock_timestamp()
     RETURNING 1`,
    [name, holder, ttlMs],
  );
  return rows.length > 0;
}

export async function releaseLease(db: Sql, name: string, holder: string): Promise<void> {
  await db.query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
}

/** One pass. Safe to run from several processes at once (job id = delivery id), but wasteful: hence the lease. */
export async function reconcile(deps: Deps, repeated: readonly Repeated[] = []): Promise<PassResult> {
  const { db, queue } = deps;
  const now = deps.now();
  // Past its freshness, a waiting offer is dropped here, not queued to be dropped by a worker later.
  const stale = await db.query(
    `UPDATE deliveries SET status = 'cancelled', status_reason = 'STALE_OFFER', updated_at = now()
      WHERE status = 'queued' AND fresh_until <= $1 RETURNING id`,
    [now],
  );
  await countDrops(db, 'offer_stale', now, stale.length);
  // Waiting rows that are due, and claims older than the send lease (their outcome is asked of the carrier).
  const rows = await db.query<{ id: string; channel: 'sms' | 'push'; status: 'queued' | 'sending' }>(
    `SELECT id, channel, status FROM deliveries
      WHERE (status = 'queued' AND (not_before IS NULL OR not_before <= $1))
         OR (status = 'sending' AND sending_at + $2 * interval '1 millisecond' < clock_timestamp())
      ORDER BY created_at LIMIT $3`,
    [now, deps.config.sendLeaseMs, BATCH],
  );
  const result: PassResult = { requeued: 0, recovered: 0, stale: stale.length };
  for (const row of rows) {
    const job = deliveryJob(row);
    if (await queue.isLive(job.name, job.jobId)) continue;
    // A finished job under the same id (kept by the queue for a day) would swallow the enqueue: it is replaced.
    await queue.enqueue(job.name, { deliveryId: row.id }, { jobId: job.jobId, replaceFinished: true });
    if (row.status === 'queued') result.requeued++;
    else result.recovered++;
  }
  for (const r of repeated) await queue.repeat(r.name, r.payload, r.everyMs);
  return result;
}

export interface Reconciler {
  /** Stops the passes, waits for a running one, and gives the lease up for another process to take at once. */
  stop(): Promise<void>;
}

interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Makes a pass at once and then every `everyMs`, whenever this process holds the lease. */
export function startReconciler(deps: Deps, opts: { everyMs: number; repeated: readonly Repeated[]; log: Log }): Reconciler {
  const holder = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  // Three periods: a holder that misses one pass keeps the lease; one that died loses it within seconds.
  const ttlMs = opts.everyMs * 3;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;

  const pass = async () => {
    try {
      if (!(await takeLease(deps.db, LEASE, holder, ttlMs))) return;
      const r = await reconcile(deps, opts.repeated);
      if (r.requeued + r.recovered + r.stale > 0) opts.log.info({ ...r }, 'outbox reconciled');
    } catch (err) {
      // Redis or PostgreSQL away: the next pass tries again.
      opts.log.warn({ err }, 'outbox reconciliation failed');
    }
  };
  const tick = () => {
    running = pass().finally(() => {
      if (!stopped) timer = setTimeout(tick, opts.everyMs);
    });
  };
  tick();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await releaseLease(deps.db, LEASE, holder).catch(() => {});
    },
  };
}
