import type { JobHandlers, JobName, JobPayloads } from './jobs.js';

export interface EnqueueOptions {
  /** Enqueueing the same id twice while the first is kept yields one job. */
  jobId?: string;
  delayMs?: number;
  /**
   * A finished job (completed or failed, and still kept) under `jobId` is replaced rather than blocking the
   * enqueue: how the reconciler queues again a delivery whose job is over but whose row still waits.
   */
  replaceFinished?: boolean;
}

/** A job that failed for good, kept with its error until someone looks. */
export interface DeadLetter {
  id: string;
  name: string;
  payload: unknown;
  attempts: number;
  error: string;
  failedAt: string;
}

/** How a queue runs its jobs. */
export interface QueueOptions {
  /** Jobs run at once per process. */
  concurrency?: number;
  /** PACED_JOBS started per second, across every worker sharing the queue; 0 = no limit. */
  pacedPerSecond?: number;
  /** How long a worker holds a job before it is taken for dead and the job runs again elsewhere. */
  lockMs?: number;
  /**
   * Producers give up on an enqueue after this long without the queue's server (they never wait out an
   * outage: the database row is the record, and the reconciler queues it later).
   */
  enqueueTimeoutMs?: number;
}

export interface RetryPolicy {
  attempts: number;
  /** Delay before retry n is backoffMs * 2^(n-1). */
  backoffMs: number;
}

export interface JobQueue {
  readonly kind: 'bullmq' | 'in-process';
  enqueue<N extends JobName>(name: N, payload: JobPayloads[N], opts?: EnqueueOptions): Promise<void>;
  /** Starts consuming; call at most once. A job with no handler fails for good. */
  startWorker(handlers: Partial<JobHandlers>): void;
  /**
   * Enqueues the job every `everyMs`, once across all processes sharing the queue. Calling it again is
   * harmless (one schedule per name), so it may be called again to restore a schedule the queue lost.
   */
  repeat<N extends JobName>(name: N, payload: JobPayloads[N], everyMs: number): Promise<void>;
  /** Whether a job with this id waits, is delayed or runs; a finished or unknown id is not live. */
  isLive(name: JobName, jobId: string): Promise<boolean>;
  deadLetters(limit?: number): Promise<DeadLetter[]>;
  ping(): Promise<void>;
  /** Stops taking jobs, waits for running ones, releases connections. */
  close(): Promise<void>;
}

export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  return policy.backoffMs * 2 ** (attempt - 1);
}
