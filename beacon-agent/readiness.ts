/**
 * Waiting out a backoff for a gateway that is away, without waiting longer than it is away. While the uploader
 * backs off (up to a minute), this asks the gateway's GET /readyz every intervalMs give or take half, each probe
 * bounded by timeoutMs: cheap for the gateway (no body, no signature, no database write) and for the box.
 *
 * Words
 * - away: the gateway was seen unable to answer: a refused or reset connection, a 502/503/504, a failed probe.
 * - back: a probe answered 200 after the gateway was seen away. The wait then ends after a random part of
 *   returnJitterMs, so a fleet of boxes that all see it return in the same second does not upload in that second.
 *   A gateway never seen away (uploads that only timed out) keeps the whole backoff: probing must not turn a
 *   backoff into a hammering of a gateway that is up but slow.
 */
import type { Log, UploaderClock } from './uploader.js';

export const READINESS_PATH = '/readyz';

export interface ReturnWatchOptions {
  /** The gateway's base URL. */
  gatewayUrl: string;
  fetch: typeof globalThis.fetch;
  clock: UploaderClock;
  /** In [0, 1): the jitter's source. */
  random: () => number;
  log: Log;
  intervalMs: number;
  timeoutMs: number;
  returnJitterMs: number;
}

export class ReturnWatch {
  readonly #o: ReturnWatchOptions;
  readonly #url: string;
  #away = false;
  #probes = 0;

  constructor(options: ReturnWatchOptions) {
    this.#o = options;
    this.#url = `${options.gatewayUrl.replace(/\/+$/, '')}${READINESS_PATH}`;
  }

  /** Readiness probes sent so far. */
  get probes(): number {
    return this.#probes;
  }

  /** An upload found the gateway away. */
  seenAway(): void {
    this.#away = true;
  }

  /** An upload got through. */
  seenBack(): void {
    this.#away = false;
  }

  /** Sleeps `waitMs`, probing; returns early (after the return jitter) once the gateway is back. */
  async sleep(waitMs: number, signal: AbortSignal): Promise<void> {
    const { clock, intervalMs, random, returnJitterMs, log } = this.#o;
    const until = clock.now() + waitMs;
    while (!signal.aborted) {
      const left = until - clock.now();
      const step = Math.round(intervalMs * (0.5 + random()));
      if (left <= step) return left > 0 ? clock.sleep(left, signal) : undefined;
      await clock.sleep(step, signal);
      if (signal.aborted) return;
      if (!(await this.#ready(signal))) {
        this.#away = true;
        continue;
      }
      if (!this.#away) continue;
      this.#away = false;
      const spread = Math.min(Math.round(random() * returnJitterMs), Math.max(0, until - clock.now()));
      log('info', 'upload: the gateway is ready again, uploading', { inMs: spread, backoffLeftMs: until - clock.now() });
      return clock.sleep(spread, signal);
    }
  }

  /** True when GET /readyz answers 200 within timeoutMs. */
  async #ready(signal: AbortSignal): Promise<boolean> {
    this.#probes++;
    const timeout = AbortSignal.timeout(this.#o.timeoutMs);
    try {
      const res = await this.#o.fetch(this.#url, { signal: AbortSignal.any([signal, timeout]) });
      await res.arrayBuffer().catch(() => {});
      return res.status === 200;
    } catch {
      return false;
    }
  }
}
