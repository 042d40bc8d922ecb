// `npm run bench`: the rules engine and geofence index alone, check-in and redemption over HTTP on the embedded backends,
// and on real PostgreSQL + Redis when DATABASE_URL and REDIS_URL are both set; then the beacon agent and detection ingest.
// Prints plain text tables.
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { backends, realUrls } from '../tests/support/backends.js';
import { benchBackend, CHECKINS, CONCURRENCY, WARMUP, type BackendResult } from './gateway.js';
import { benchGeofenceIndex } from './geofence-index.js';
import { benchAgentPipeline, benchIngest, ingestTables, type IngestFigures } from './ingest.js';
import { benchLatency, benchRedemptions, deliveryTables, type LatencyFigures, type RedemptionFigures } from './delivery.js';
import { benchRules } from './rules.js';
import { fmt, table, type LoadStats } from './stats.js';

/** Hard upper bound on the whole run; the work itself is bounded by counts and per-step timeouts. */
const WATCHDOG_MS = 420_000;

const watchdog = setTimeout(() => {
  console.error(`\nbench: still running after ${WATCHDOG_MS / 1000} s, giving up`);
  process.exit(2);
}, WATCHDOG_MS);
watchdog.unref();

const started = performance.now();
const cpus = os.cpus();
console.log('Machine');
console.log(`  node ${process.version} on ${process.platform}/${process.arch}; ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ` +
  `available parallelism ${os.availableParallelism()}; ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM`);
console.log(`  backends: ${backends.join(', ')}` +
  (backends.includes('real') ? '' : ` (real skipped: set both DATABASE_URL and REDIS_URL${realUrls.databaseUrl || realUrls.redisUrl ? '; only one is set' : ''})`));

console.log(benchRules().text);
console.log(`\n${await benchGeofenceIndex()}`);

const results: BackendResult[] = [];
let failed = false;
for (const backend of backends) {
  try {
    results.push(await benchBackend(backend));
  } catch (err) {
    failed = true;
    console.error(`\nbench on the ${backend} backends failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  }
}

const loadRow = (r: BackendResult, step: string, s: LoadStats) => [
  r.backend, step, String(s.count), String(s.errors), fmt(s.wallMs / 1000, 2), fmt(s.perSecond, 1),
  fmt(s.p50, 2), fmt(s.p95, 2), fmt(s.p99, 2), fmt(s.max, 2),
];

if (results.length > 0) {
  console.log('\nBackends');
  for (const r of results) {
    console.log(`  ${r.backend.padEnd(8)} ${r.kinds}; setup ${r.setupRequests} requests (store, campaign, members, consents) in ` +
      `${fmt(r.setupMs / 1000, 2)} s`);
  }
  console.log(table(
    `2-3. POST /checkins (member with location + sms_marketing, inside the geofence: one coupon + one SMS each) and ` +
      `POST /redemptions of those coupons, via app.inject; ${WARMUP} warm-up requests each, then ${CHECKINS} at concurrency ${CONCURRENCY}`,
    ['backend', 'step', 'requests', 'errors', 'wall s', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
    results.flatMap((r) => [loadRow(r, 'check-in', r.checkins), loadRow(r, 'redemption', r.redemptions)]),
  ));
  console.log(table(
    '2b. SMS deliveries (outbox file): time until every queued delivery is sent, polling the deliveries table',
    ['backend', 'deliveries', 'sent', 'sent when check-ins ended', 'after last check-in ms', 'since first measured check-in ms'],
    results.map((r) => [
      r.backend, String(r.deliveries.total), String(r.deliveries.sent), String(r.deliveries.sentAtCheckinEnd),
      fmt(r.deliveries.drainMs, 0), fmt(r.deliveries.sinceFirstMs, 0),
    ]),
  ));
  for (const r of results) {
    for (const [step, s] of [['check-in', r.checkins], ['redemption', r.redemptions]] as const) {
      if (s.errors > 0) {
        failed = true;
        console.error(`  ${r.backend} ${step}: ${s.errors} errors, e.g. ${s.failures.join(' | ')}`);
      }
    }
  }
}

const embedded = results.find((r) => r.backend === 'embedded');
const real = results.find((r) => r.backend === 'real');
if (embedded && real) {
  console.log(table(
    '4. Real (PostgreSQL + Redis) / embedded (PGlite + in-process), same run',
    ['step', 'embedded req/s', 'real req/s', 'real/embedded'],
    [
      ['check-in', fmt(embedded.checkins.perSecond, 1), fmt(real.checkins.perSecond, 1), `${fmt(real.checkins.perSecond / embedded.checkins.perSecond, 2)}x`],
      ['redemption', fmt(embedded.redemptions.perSecond, 1), fmt(real.redemptions.perSecond, 1), `${fmt(real.redemptions.perSecond / embedded.redemptions.perSecond, 2)}x`],
    ],
  ));
}

const agentFigures = await benchAgentPipeline();
const ingest: IngestFigures[] = [];
for (const backend of backends) {
  try {
    ingest.push(await benchIngest(backend));
  } catch (err) {
    failed = true;
    console.error(`\ningest bench on the ${backend} backends failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  }
}
console.log(`\n${ingestTables(agentFigures, ingest)}`);

const redemptionFigures: RedemptionFigures[] = [];
const latencyFigures: LatencyFigures[] = [];
for (const backend of backends) {
  try {
    const r = await benchRedemptions(backend);
    for (const x of r.runs.filter((x) => x.load.errors > 0)) {
      failed = true;
      console.error(`  ${backend} redemptions (${x.label}, ${x.concurrency} tills): ${x.load.errors} errors, e.g. ${x.load.failures.join(' | ')}`);
    }
    redemptionFigures.push(r);
    latencyFigures.push(await benchLatency(backend));
  } catch (err) {
    failed = true;
    console.error(`\ndelivery bench on the ${backend} backends failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  }
}
console.log(`\n${deliveryTables(redemptionFigures, latencyFigures)}`);

// maxRSS is reported in kilobytes.
const peakMiB = process.resourceUsage().maxRSS / 1024;
console.log(`\nPeak RSS ${fmt(peakMiB, 1)} MiB; total bench time ${fmt((performance.now() - started) / 1000, 1)} s`);
process.exit(failed ? 1 : 0);
