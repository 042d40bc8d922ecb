/**
 * Uploads the outbox to the gateway's `POST /ingest/presence`, oldest batch first, each request signed over
 * its exact body bytes. An event leaves the outbox only when the gateway has answered 202 for it, or when the
 * gateway has refused it alone (400/413 for a single event), and then it goes to the dead-letter file first.
 *
 * What each answer does
 * - 202: acknowledge the batch; events the gateway rejected inside it are logged and dead-lettered.
 * - network error, timeout, 429, 5xx, anything unexpected: keep the batch, back off exponentially with jitter.
 *   After no answer or a 502/503/504, run() spends the backoff probing the gateway's GET /readyz, and uploads
 *   within a few seconds of its return (readiness.ts).
 * - 401 REQUEST_STALE: the box's clock is off; take the offset from details.gatewayTime and retry at once.
 * - 409 REQUEST_REPLAYED: sign again (a later timestamp) and retry at once.
 * - 400 / 413: this batch can never pass. Halve it until the bad event stands alone, then dead-letter it.
 *   Unless the 400's issues all name the batch itself (body/agentId, body/batchId): then no event is to blame.
 * - 401 AGENT_UNKNOWN, 403 SIGNATURE_INVALID / AGENT_REVOKED, a 400 blaming the batch: nothing a retry soon
 *   can fix. Keep everything and retry at the backoff cap, logging an error every time, until someone fixes it.
 *
 * A batch's id is a hash of its event ids, so a batch sent again after a lost answer keeps its id; the gateway
 * stores each event once whatever happens to batches.
 */
import { createHash, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { appendJsonLine } from './outbox.js';
import { ReturnWatch } from './readiness.js';
import { signRequest } from './signing.js';
import type { IngestBatch, PresenceEvent } from './types.js';

export const INGEST_PATH = '/ingest/presence';
/** The gateway refuses bigger batches. */
export const MAX_BATCH = 500;
/** Immediate retries (clock correction, re-signing) in a row before backing off anyway. */
const MAX_QUICK_RETRIES = 3;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What the uploader needs of the outbox. */
export interface UploadQueue {
  readonly dir: string;
  readonly pending: number;
  peek(max: number): Promise<PresenceEvent[]>;
  ack(n: number): Promise<void>;
}

export type LogLevel = 'info' | 'warn' | 'error';
export type Log = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export interface UploaderClock {
  /** Milliseconds since the epoch, by the box's clock. */
  now(): number;
  /** Resolves after `ms`, or at once when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: UploaderClock = {
  now: () => Date.now(),
  sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => {}),
};

export interface UploaderOptions {
  outbox: UploadQueue;
  /** The gateway's base URL, e.g. https://gw.example.com */
  gatewayUrl: string;
  agentId: string;
  privateKey: KeyObject;
  /** Events per batch (default 100, at most 500). */
  batchSize?: number;
  fetch?: typeof globalThis.fetch;
  clock?: UploaderClock;
  log?: Log;
  /** Per request, answer included (default 10 s). */
  timeoutMs?: number;
  /** How long run() sleeps when there is nothing to send (default 1 s). */
  flushIntervalMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** In [0, 1): the jitter's source. */
  random?: () => number;
  /** Where refused events go (default rejected.jsonl in the outbox's directory). */
  rejectedFile?: string;
  /** While backing off from a gateway that is away: how often to probe GET /readyz, give or take half (default 2 s). */
  probeIntervalMs?: number;
  /** Per readiness probe (default 1 s): a gateway that slow is not back. */
  probeTimeoutMs?: number;
  /** Once the gateway is back, upload after a random part of this (default 2 s). */
  returnJitterMs?: number;
}

export type FlushOutcome = 'idle' | 'sent' | 'split' | 'dead_lettered' | 'retry' | 'aborted';

export interface FlushResult {
  outcome: FlushOutcome;
  /** How long to wait before the next flush (0: at once). */
  delayMs: number;
}

export interface UploadError {
  at: string;
  /** HTTP status, or null when no answer came (network error, timeout). */
  status: number | null;
  code: string;
  message: string;
}

export interface UploaderStats {
  sentBatches: number;
  eventsAcked: number;
  deadLettered: number;
  retries: number;
  consecutiveFailures: number;
  /** Readiness probes sent while backing off. */
  probes: number;
  clockOffsetMs: number;
  lastError: UploadError | null;
}

/** Exponential backoff with "equal jitter": the n-th failure in a row waits between half and all of base * 2^(n-1), capped. */
export function backoffDelay(failures: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** The same events always make the same batch id (64 hex characters, the gateway's limit). */
export function batchIdOf(events: readonly PresenceEvent[]): string {
  return createHash('sha256').update(events.map((e) => e.id).join('\n')).digest('hex');
}

interface Answer {
  status: number;
  code: string;
  message: string;
  body: Record<string, unknown> | undefined;
  retryAfterMs: number | null;
}

type Settings = Required<Omit<UploaderOptions, 'fetch' | 'outbox' | 'privateKey' | 'probeIntervalMs' | 'probeTimeoutMs' | 'returnJitterMs'>>;

export class Uploader {
  readonly #o: Settings & Pick<UploaderOptions, 'outbox' | 'privateKey'>;
  readonly #fetch: typeof globalThis.fetch;
  readonly #url: string;
  readonly #stats: UploaderStats = {
    sentBatches: 0, eventsAcked: 0, deadLettered: 0, retries: 0, consecutiveFailures: 0, probes: 0, clockOffsetMs: 0, lastError: null,
  };
  /** Batch size now: below batchSize while isolating a refused event. */
  #limit: number;
  /** Events from the head that were in a refused batch and have not been settled yet. */
  #suspect = 0;
  #quickRetries = 0;
  #lastTimestamp = 0;
  #inFlight: Promise<FlushResult> | null = null;
  readonly #watch: ReturnWatch;
  /** The last failure found no gateway there to answer: its backoff is spent watching for the gateway's return. */
  #watching = false;

  constructor(options: UploaderOptions) {
    const batchSize = options.batchSize ?? 100;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) throw new RangeError(`uploader: batchSize must be 1..${MAX_BATCH}, got ${batchSize}`);
    // The gateway's schema refuses a batch with a malformed agent id before it looks at the signature (400, not
    // 401): caught here at boot, rather than as a refusal the uploader could take for bad events.
    if (!UUID.test(options.agentId)) throw new RangeError(`uploader: agentId must be the UUID the gateway issued, got "${options.agentId}"`);
    this.#o = {
      outbox: options.outbox, gatewayUrl: options.gatewayUrl, agentId: options.agentId, privateKey: options.privateKey, batchSize,
      clock: options.clock ?? systemClock, log: options.log ?? (() => {}), timeoutMs: options.timeoutMs ?? 10_000,
      flushIntervalMs: options.flushIntervalMs ?? 1000, backoffBaseMs: options.backoffBaseMs ?? 500, backoffCapMs: options.backoffCapMs ?? 60_000,
      random: options.random ?? Math.random, rejectedFile: options.rejectedFile ?? path.join(options.outbox.dir, 'rejected.jsonl'),
    };
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#url = `${options.gatewayUrl.replace(/\/+$/, '')}${INGEST_PATH}`;
    this.#watch = new ReturnWatch({
      gatewayUrl: options.gatewayUrl, fetch: this.#fetch, clock: this.#o.clock, random: this.#o.random, log: this.#o.log,
      intervalMs: options.probeIntervalMs ?? 2000, timeoutMs: options.probeTimeoutMs ?? 1000, returnJitterMs: options.returnJitterMs ?? 2000,
    });
    this.#limit = batchSize;
  }

  get stats(): UploaderStats {
    return { ...this.#stats, probes: this.#watch.probes };
  }

  /** Sends the oldest batch once and settles it as its answer says. Concurrent calls share one attempt. */
  flushOnce(signal?: AbortSignal): Promise<FlushResult> {
    this.#inFlight ??= this.#flush(signal).finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  /** Flushes while there is work, sleeping per backoff or flushIntervalMs when idle, until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, log } = this.#o;
    while (!signal.aborted) {
      let result: FlushResult;
      try {
        result = await this.flushOnce(signal);
      } catch (err) {
        // The outbox itself failed (disk full, I/O error): nothing was lost, try again later.
        log('error', 'upload: outbox error', { error: String(err) });
        result = this.#failed(null, 'OUTBOX_ERROR', String(err));
      }
      if (signal.aborted) return;
      const wait = result.outcome === 'idle' ? this.#o.flushIntervalMs : result.delayMs;
      if (wait > 0 && result.outcome === 'retry' && this.#watching) await this.#watch.sleep(wait, signal);
      else if (wait > 0) await clock.sleep(wait, signal);
    }
  }

  async #flush(signal?: AbortSignal): Promise<FlushResult> {
    const { outbox, agentId, privateKey, clock, timeoutMs } = this.#o;
    const events = await outbox.peek(this.#limit);
    if (events.length === 0) return { outcome: 'idle', delayMs: 0 };
    const batch: IngestBatch = { agentId, batchId: batchIdOf(events), events };
    const body = Buffer.from(JSON.stringify(batch));
    // Never the same timestamp twice: Ed25519 is deterministic, and the gateway refuses a signature it has seen.
    const timestamp = Math.max(Math.round(clock.now() + this.#stats.clockOffsetMs), this.#lastTimestamp + 1);
    this.#lastTimestamp = timestamp;
    const headers = { 'content-type': 'application/json', ...signRequest(privateKey, agentId, { method: 'POST', path: INGEST_PATH, timestamp, body }) };
    const timeout = AbortSignal.timeout(timeoutMs);
    let answer: Answer;
    try {
      const res = await this.#fetch(this.#url, { method: 'POST', headers, body, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      answer = await readAnswer(res);
    } catch (err) {
      if (signal?.aborted) return { outcome: 'aborted', delayMs: 0 };
      const code = timeout.aborted ? 'TIMEOUT' : 'NETWORK';
      return this.#failed(null, code, errorMessage(err), events.length);
    }
    return this.#settle(events, answer);
  }

  async #settle(events: PresenceEvent[], a: Answer): Promise<FlushResult> {
    const { log } = this.#o;
    if (a.status === 202) return this.#accepted(events, a.body);
    if ((a.status === 400 || a.status === 413) && !blamesTheBatch(a)) return this.#refused(events, a);
    if (a.code === 'REQUEST_STALE' && a.status === 401) {
      const gatewayTime = Date.parse(String((a.body?.error as { details?: { gatewayTime?: unknown } } | undefined)?.details?.gatewayTime));
      if (Number.isFinite(gatewayTime)) {
        const offset = gatewayTime - this.#o.clock.now();
        log('warn', 'upload: box clock is off, correcting from the gateway\'s', { offsetMs: offset, previousOffsetMs: this.#stats.clockOffsetMs });
        this.#stats.clockOffsetMs = offset;
        this.#lastTimestamp = 0; // a box that ran fast must be allowed to go back in time
        return this.#quickRetry(a);
      }
    }
    if (a.code === 'REQUEST_REPLAYED' && a.status === 409) return this.#quickRetry(a);
    if (a.code === 'AGENT_UNKNOWN' || a.code === 'SIGNATURE_INVALID' || a.code === 'AGENT_REVOKED') {
      return this.#stuck(a, "this box's agent id or key is wrong or revoked");
    }
    if (a.status === 400) return this.#stuck(a, 'the gateway refuses the batch itself, not an event in it');
    const result = this.#failed(a.status, a.code, a.message, events.length);
    if (a.retryAfterMs !== null) result.delayMs = Math.min(this.#o.backoffCapMs, Math.max(result.delayMs, a.retryAfterMs));
    return result;
  }

  /** Nothing this box can change by retrying soon: keep everything, retry at the cap, and say so loudly. */
  #stuck(a: Answer, why: string): FlushResult {
    const result = this.#failed(a.status, a.code, a.message);
    const { backoffCapMs, outbox } = this.#o;
    this.#o.log('error', `upload REFUSED (${a.status} ${a.code}): ${why}. Nothing is dropped (${outbox.pending} events kept); `
      + `retrying every ${Math.round(backoffCapMs / 1000)} s`, { status: a.status, code: a.code, message: a.message });
    return { ...result, delayMs: backoffCapMs };
  }

  async #accepted(events: PresenceEvent[], body: Record<string, unknown> | undefined): Promise<FlushResult> {
    const rejected = Array.isArray(body?.rejected) ? (body.rejected as Array<{ index: number; code: string }>) : [];
    for (const r of rejected) {
      const event = events[r.index];
      this.#o.log('warn', 'upload: the gateway rejected an event of an accepted batch', { eventId: event?.id, code: r.code });
      if (event) await this.#deadLetter(event, { status: 202, code: r.code, message: 'rejected within an accepted batch' });
    }
    await this.#o.outbox.ack(events.length);
    this.#stats.sentBatches++;
    this.#stats.eventsAcked += events.length;
    this.#progress(events.length);
    return { outcome: 'sent', delayMs: 0 };
  }

  async #refused(events: PresenceEvent[], a: Answer): Promise<FlushResult> {
    const { log } = this.#o;
    if (events.length > 1) {
      this.#suspect = Math.max(this.#suspect, events.length);
      this.#limit = Math.ceil(events.length / 2);
      log('warn', 'upload: batch refused, splitting it to find the bad event', { status: a.status, code: a.code, size: events.length, next: this.#limit });
      this.#stats.consecutiveFailures = 0;
      this.#quickRetries = 0;
      return { outcome: 'split', delayMs: 0 };
    }
    const event = events[0]!;
    await this.#deadLetter(event, a);
    await this.#o.outbox.ack(1);
    this.#stats.deadLettered++;
    log('error', `upload: event refused by the gateway, moved to ${this.#o.rejectedFile}`, { eventId: event.id, status: a.status, code: a.code, message: a.message });
    this.#progress(1);
    // Try the rest of the refused range in one go again: if it holds another bad event, it is halved again.
    if (this.#suspect > 0) this.#limit = Math.min(this.#o.batchSize, this.#suspect);
    return { outcome: 'dead_lettered', delayMs: 0 };
  }

  #deadLetter(event: PresenceEvent, error: { status: number; code: string; message: string }): Promise<void> {
    const record = { rejectedAt: new Date(this.#o.clock.now()).toISOString(), status: error.status, code: error.code, message: error.message, event };
    return appendJsonLine(this.#o.rejectedFile, record);
  }

  /** Events settled: leave isolation mode once the whole refused range is settled. */
  #progress(n: number): void {
    this.#stats.consecutiveFailures = 0;
    this.#watching = false;
    this.#watch.seenBack();
    this.#quickRetries = 0;
    this.#suspect = Math.max(0, this.#suspect - n);
    if (this.#suspect === 0) this.#limit = this.#o.batchSize;
  }

  #quickRetry(a: Answer): FlushResult {
    if (++this.#quickRetries > MAX_QUICK_RETRIES) return this.#failed(a.status, a.code, a.message);
    this.#record(a.status, a.code, a.message);
    this.#stats.retries++;
    return { outcome: 'retry', delayMs: 0 };
  }

  #failed(status: number | null, code: string, message: string, size?: number): FlushResult {
    // No answer, or a proxy's or an unready gateway's 502/503/504: the gateway is not there to answer. A refused or
    // reset connection and those answers say so for sure; a timeout may be a gateway up but slow.
    const away = (status === null && code === 'NETWORK') || status === 502 || status === 503 || status === 504;
    this.#watching = away || (status === null && code === 'TIMEOUT');
    if (away) this.#watch.seenAway();
    this.#record(status, code, message);
    this.#stats.retries++;
    this.#stats.consecutiveFailures++;
    const { backoffBaseMs, backoffCapMs, random } = this.#o;
    const delayMs = backoffDelay(this.#stats.consecutiveFailures, backoffBaseMs, backoffCapMs, random);
    this.#o.log('warn', 'upload failed, keeping the batch', { status, code, message, size, failures: this.#stats.consecutiveFailures, retryInMs: delayMs });
    return { outcome: 'retry', delayMs };
  }

  #record(status: number | null, code: string, message: string): void {
    this.#stats.lastError = { at: new Date(this.#o.clock.now()).toISOString(), status, code, message };
  }
}

/**
 * A 400 whose issues all lie outside the events (agentId, batchId): no event is to blame, so none may be
 * dead-lettered. Without issues (MALFORMED_JSON, 413) the events are suspected, and the batch is split.
 */
function blamesTheBatch(a: Answer): boolean {
  const issues = (a.body?.error as { details?: { issues?: unknown } } | undefined)?.details?.issues;
  return Array.isArray(issues) && issues.length > 0
    && issues.every((i: { field?: unknown } | null) => !String(i?.field ?? '').startsWith('body/events/'));
}

/** The status and, when the body is the gateway's JSON, its error code and message. */
async function readAnswer(res: Response): Promise<Answer> {
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = await res.json();
    if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
  } catch {
    // No readable body. The status still counts: a 202 whose body was lost means the gateway stored the batch.
  }
  const error = body?.error as { code?: unknown; message?: unknown } | undefined;
  const retryAfter = Number(res.headers.get('retry-after'));
  return {
    status: res.status,
    code: typeof error?.code === 'string' ? error.code : `HTTP_${res.status}`,
    message: typeof error?.message === 'string' ? error.message : res.statusText,
    body,
    retryAfterMs: res.headers.has('retry-after') && Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : null,
  };
}

function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ? `${err.message}: ${cause.code}` : err.message;
}
