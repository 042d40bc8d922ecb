// The embedded default's queue: same contract as BullMQ, held in this process's memory.
import type { JobHandlers, JobName, JobPayloads } from './jobs.js';
import { PACED_JOBS, TerminalJobError } from './jobs.js';
import { backoffDelay, type DeadLetter, type EnqueueOptions, type JobQueue, type QueueOptions, type RetryPolicy } from './port.js';

interface Job {
  id: string;
  name: JobName;
  payload: unknown;
  attempt: number;
}

export function inProcessQueue(policy: RetryPolicy, options: QueueOptions = {}): JobQueue {
  const { concurrency = 4, pacedPerSecond = 0 } = options;
  const ready: Job[] = [];
  // Paced jobs wait here and start no more often than pacedPerSecond allows.
  const paced: Job[] = [];
  let nextPacedAt = 0;
  let pacer: NodeJS.Timeout | undefined;
  const timers = new Set<NodeJS.Timeout>();
  const known = new Set<string>(); // ids waiting, delayed or running
  const dead: DeadLetter[] = [];
  const running = new Set<Promise<void>>();
  let handlers: Partial<JobHandlers> | undefined;
  const intervals = new Map<JobName, { timer: NodeJS.Timeout; everyMs: number }>(); // one schedule per name
  let closed = false;
  let seq = 0;

  function later(job: Job, delayMs: number) {
    const timer = setTimeout(() => {
      timers.delete(timer);
      push(job);
    }, delayMs);
    timers.add(timer);
  }

  function push(job: Job) {
    (pacedPerSecond > 0 && PACED_JOBS.has(job.name) ? paced : ready).push(job);
    pump();
  }

  function next(): Job | undefined {
    if (ready.length > 0) return ready.shift();
    if (paced.length === 0 || pacer) return undefined;
    const now = Date.now();
    if (now < nextPacedAt) {
      pacer = setTimeout(() => {
        pacer = undefined;
        pump();
      }, nextPacedAt - now);
      return undefined;
    }
    nextPacedAt = Math.max(nextPacedAt, now) + 1000 / pacedPerSecond;
    return paced.shift();
  }

  function pump() {
    while (handlers && !closed && running.size < concurrency) {
      const job = next();
      if (!job) return;
      const run = execute(job).finally(() => {
        running.delete(run);
        pump();
      });
      running.add(run);
    }
  }

  async function execute(job: Job) {
    const handler = handlers![job.name] as ((p: unknown, c: { attempt: number; maxAttempts: number }) => Promise<void>) | undefined;
    try {
      if (!handler) throw new TerminalJobError(`no handler for job ${job.name}`);
      await handler(job.payload, { attempt: job.attempt, maxAttempts: policy.attempts });
      known.delete(job.id);
    } catch (err) {
      const terminal = err instanceof TerminalJobError;
      if (!terminal && job.attempt < policy.attempts && !closed) {
        later({ ...job, attempt: job.attempt + 1 }, backoffDelay(policy, job.attempt));
        return;
      }
      known.delete(job.id);
      dead.push({
        id: job.id,
        name: job.name,
        payload: job.payload,
        attempts: job.attempt,
        error: err instanceof Error ? err.message : String(err),
        failedAt: new Date().toISOString(),
      });
    }
  }

  return {
    kind: 'in-process',
    async enqueue<N extends JobName>(name: N, payload: JobPayloads[N], opts: EnqueueOptions = {}) {
      if (closed) throw new Error('queue is closed');
      const id = opts.jobId ?? `job-${++seq}`;
      // Finished jobs are not kept here, so replaceFinished has nothing to replace.
      if (known.has(id)) return;
      known.add(id);
      const job: Job = { id, name, payload, attempt: 1 };
      if (opts.delayMs && opts.delayMs > 0) later(job, opts.delayMs);
      else push(job);
    },
    async repeat(name, payload, everyMs) {
      if (closed || intervals.get(name)?.everyMs === everyMs) return;
      clearInterval(intervals.get(name)?.timer);
      const timer = setInterval(() => void this.enqueue(name, payload, { jobId: `repeat-${name}` }).catch(() => {}), everyMs);
      timer.unref();
      intervals.set(name, { timer, everyMs });
    },
    async isLive(_name, jobId) {
      return known.has(jobId);
    },
    startWorker(h) {
      if (handlers) throw new Error('worker already started');
      handlers = h;
      pump();
    },
    async deadLetters(limit = 100) {
      return dead.slice(-limit).reverse();
    },
    async ping() {
      if (closed) throw new Error('queue is closed');
    },
    async close() {
      closed = true;
      for (const { timer } of intervals.values()) clearInterval(timer);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      if (pacer) clearTimeout(pacer);
      await Promise.allSettled([...running]);
    },
  };
}
