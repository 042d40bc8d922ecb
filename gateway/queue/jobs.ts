// The one registry of job names and their payloads, shared by producers and workers.

export interface JobPayloads {
  /** Send the SMS of one delivery row; the row holds everything else. */
  'sms.send': { deliveryId: string };
  /** A programme message that is not marketing (opt-in request, confirmations): text fixed at enqueue. */
  /** `onlyWhilePending`: an opt-in request, sent only while that request still waits for an answer. */
  /** `ref`: the opt-in request's own name, so its retries count once against the number's one request a day. */
  'sms.system': { memberId: string; text: string; onlyWhilePending?: 'sms_marketing'; ref?: string };
  /** A sign-up's code, to the number being signed up (read from the sign-up row, which lives 15 minutes). */
  'sms.code': { signupId: string; text: string };
  /** Purge raw presence older than the retention period. */
  'retention.purge': Record<string, never>;
}

export type JobName = keyof JobPayloads;

/** Jobs that go out through the SMS sender: they share its rate limit (the carrier's, per sending number). */
export const PACED_JOBS: ReadonlySet<JobName> = new Set<JobName>(['sms.send', 'sms.system', 'sms.code']);

export interface JobContext {
  /** 1 on the first try. */
  attempt: number;
  maxAttempts: number;
}

export type JobHandlers = { [N in JobName]: (payload: JobPayloads[N], ctx: JobContext) => Promise<void> };

/** Thrown by a handler for a failure that retrying cannot fix: the job goes straight to the dead letters. */
export class TerminalJobError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'TerminalJobError';
  }
}
