// The durable queue: BullMQ on Redis, so any number of gateways and workers share one set of jobs.
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { JobHandlers, JobName, JobPayloads } from './jobs.js';
import { TerminalJobError } from './jobs.js';
import type { DeadLetter, EnqueueOptions, JobQueue, RetryPolicy } from './port.js';

const QUEUE_NAME = 'jobs';

export async function bullmqQueue(redisUrl: string, prefix: string, policy: RetryPolicy, concurrency = 8): Promise<JobQueue> {
  // Workers block on Redis, so their connection must never give up on a command (BullMQ's requirement).
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  await connection.connect();
  const queue = new Queue(QUEUE_NAME, {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: policy.attempts,
      backoff: { type: 'exponential', delay: policy.backoffMs },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: false, // failed-for-good jobs are the dead letters
    },
  });
  let worker: Worker | undefined;
  let workerConnection: Redis | undefined;

  return {
    kind: 'bullmq',
    async enqueue<N extends JobName>(name: N, payload: JobPayloads[N], opts: EnqueueOptions = {}) {
      await queue.add(name, payload, { jobId: opts.jobId, delay: opts.delayMs });
    },
    async repeat(name, payload, everyMs) {
      // A scheduler id is unique in Redis: every gateway upserts the same one, and it fires once per period.
      await queue.upsertJobScheduler(`repeat-${name}`, { every: everyMs }, { name, data: payload });
    },
    startWorker(handlers: Partial<JobHandlers>) {
      if (worker) throw new Error('worker already started');
      worker = new Worker(
        QUEUE_NAME,
        async (job) => {
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
        },
        { connection: (workerConnection = connection.duplicate()), prefix, concurrency },
      );
      worker.on('error', () => {}); // connection errors are retried by ioredis; readiness reports them
    },
    async deadLetters(limit = 100): Promise<DeadLetter[]> {
      const jobs = await queue.getFailed(0, limit - 1);
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
      await connection.ping();
    },
    async close() {
      await worker?.close();
      await queue.close();
      // BullMQ leaves connections it was handed to their owner.
      for (const c of [workerConnection, connection]) await c?.quit().catch(() => c.disconnect());
    },
  };
}
