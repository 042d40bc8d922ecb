// Small measuring and printing helpers shared by the bench sections.
import { performance } from 'node:perf_hooks';

export interface LoadStats {
  count: number;
  errors: number;
  wallMs: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * Runs `task(i)` for i in [0, count) with at most `concurrency` in flight, timing each call. Bounded in time
 * too: no new task starts after `budgetMs`, and a task still running after `timeoutMs` counts as failed.
 * A task signals failure by throwing; failures are counted, and the first few messages are kept.
 */
export async function runLoad(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
  budgetMs = Infinity,
  timeoutMs = 15_000,
): Promise<LoadStats & { failures: string[] }> {
  const latencies: number[] = [];
  const failures: string[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      if (next >= count || performance.now() - started > budgetMs) return;
      const i = next++;
      const t0 = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          task(i),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } catch (err) {
        errors++;
        if (failures.length < 3) failures.push(err instanceof Error ? err.message : String(err));
      } finally {
        clearTimeout(timer);
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const wallMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    errors,
    failures,
    wallMs,
    perSecond: (latencies.length / wallMs) * 1000,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? NaN,
  };
}

/** Fixed decimals, with thousands separators for the integer part. */
export function fmt(value: number, decimals = 1): string {
  if (!Number.isFinite(value)) return 'n/a';
  const [int, frac] = value.toFixed(decimals).split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

/** A plain text table; the first column is left-aligned, the others right-aligned. */
export function table(title: string, headers: string[], rows: string[][]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [``, title, line(headers), rule, ...rows.map(line)].join('\n');
}

/** A deterministic PRNG (mulberry32), so every run draws the same synthetic data: the simulator's own. */
export { createRng as seededRandom } from '../beacon-agent/sources.js';
