// The durable queue: BullMQ on Redis, so any number of gateways and workers share one set of jobs.
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { JobHandlers, JobName, JobPayloads } from './jobs.js';
import { PACED_JOBS, TerminalJobError } from './jobs.js';
import type { DeadLetter, EnqueueOptions, JobQueue, QueueOptions, RetryPolicy } from './port.js';

// Paced jobs (SMS) have a queue of their own, whose workers share BullMQ's rate limiter across processes.
const QUEUE_NAMES = { jobs: 'jobs', paced: 'sms' } as const;

export async function bullmqQueue(redisUrl: string, prefix: string, policy: RetryPolicy, options: QueueOptions = {}): Promise<JobQueue> {
  const { concurrency = 8, pacedPerSecond = 0, lockMs = 30_000, enqueueTimeoutMs = 500 } = options;
  // Workers block on Redis, so their connections must never give up on a command (BullMQ's requirement).
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  connection.on('error', () => {}); // reconnects by itself; readiness reports the outage
  await connection.connect();
  // Producers must not: a request that committed its decision answers without waiting out a Redis outage.
  // Without Redis a command fails at once (no offline queue), and one that hangs is given up after the timeout.
  const producer = new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true, commandTimeout: enqueueTimeoutMs });
  producer.on('error', () => {}); // reconnects by itself; readiness reports the outage
  await producer.connect();
  const open = (name: string) => new Queue(name, {
    connection: producer,
    prefix,
    defaultJobOptions: {
      attempts: policy.attempts,
      backoff: { type: 'exponential', delay: policy.backoffMs },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: false, // failed-for-good jobs are the dead letters
    },
  });
  const queue = open(QUEUE_NAMES.jobs);
  const pacedQueue = open(QUEUE_NAMES.paced);
  const queueFor = (name: JobName) => (PACED_JOBS.has(name) ? pacedQueue : queue);
  const workers: Worker[] = [];
  const workerConnections: Redis[] = [];

  return {
    kind: 'bullmq',
    async enqueue<N extends JobName>(name: N, payload: JobPayloads[N], opts: EnqueueOptions = {}) {
      const target = queueFor(name);
      // BullMQ ignores an add whose id it still keeps, finished ones included (removeOnComplete keeps them a day).
      if (opts.replaceFinished && opts.jobId && ['completed', 'failed'].includes(await target.getJobState(opts.jobId))) {
        await target.remove(opts.jobId);
      }
      await target.add(name, payload, { jobId: opts.jobId, delay: opts.delayMs });
    },
    async repeat(name, payload, everyMs) {
      // A scheduler id is unique in Redis: every gateway upserts the same one, and it fires once per period.
      // Upserted only when missing or changed, so calling again (to restore a lost schedule) does not move it.
      const id = `repeat-${name}`;
      const current = await queue.getJobScheduler(id);
      if (current?.every === everyMs) return;
      await queue.upsertJobScheduler(id, { every: everyMs }, { name, data: payload });
    },
    async isLive(name, jobId) {
      const state = await queueFor(name).getJobState(jobId);
      return !['completed', 'failed', 'unknown'].includes(state);
    },
    startWorker(handlers: Partial<JobHandlers>) {
      if (workers.length > 0) throw new Error('worker already started');
      const run = async (job: Job) => {
        const handler = handlers[job.name as JobName] as
          | ((p: unknown, c: { attempt: number; maxAttempts: number }) => Promise<void>)
          | undefined;
        if (!handler) throw new UnrecoverableError(`no handler for job ${job.name}`);
        try {
          await handler(job.data, { attempt: job.attemptsMade + 1, maxAttempts: job.opts.attempts ?? 1 });
        } catch (err) {
          if (err instanceof TerminalJobError) throw new UnrecoverableError(err.message);
          throw err;
        }
      };
      for (const [name, limiter] of [[QUEUE_NAMES.jobs, undefined], [QUEUE_NAMES.paced, pacedPerSecond > 0 ? { max: pacedPerSecond, duration: 1000 } : undefined]] as const) {
        const workerConnection = connection.duplicate();
        workerConnection.on('error', () => {});
        workerConnections.push(workerConnection);
        const worker = new Worker(name, run, {
          connection: workerConnection, prefix, concurrency, lockDuration: lockMs, stalledInterval: lockMs, ...(limiter ? { limiter } : {}),
        });
        worker.on('error', () => {}); // connection errors are retried by ioredis; readiness reports them
        workers.push(worker);
      }
    },
    async deadLetters(limit = 100): Promise<DeadLetter[]> {
      const jobs = [...await queue.getFailed(0, limit - 1), ...await pacedQueue.getFailed(0, limit - 1)]
        .sort((a, b) => (b.finishedOn ?? b.timestamp) - (a.finishedOn ?? a.timestamp)).slice(0, limit);
      return jobs.map((j) => ({
        id: j.id ?? '',
        name: j.name,
        payload: j.data,
        attempts: j.attemptsMade,
        error: j.failedReason,
        failedAt: new Date(j.finishedOn ?? j.timestamp).toISOString(),
      }));
    },
    async ping() {
      await producer.ping();
    },
    async close() {
      // Closing goes on whatever a step says: a command cut off by the close ("Connection is closed") is no failure
      // of it, and the connections below must be released in any case.
      await Promise.all(workers.map((w) => w.close().catch(() => {})));
      await queue.close().catch(() => {});
      await pacedQueue.close().catch(() => {});
      // BullMQ leaves connections it was handed to their owner.
      for (const c of [...workerConnections, connection, producer]) await c.quit().catch(() => c.disconnect());
    },
  };
}
