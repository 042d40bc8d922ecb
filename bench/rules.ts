// Section 1: the pure rules engine, evaluate(), over synthetic circular-geofence check-in campaigns.
import { performance } from 'node:perf_hooks';
import {
  evaluate, prepareCampaigns, type Campaign, type EvaluationContext, type MemberContext, type PreparedCampaigns,
} from '../campaign-rules/index.js';
import { fmt, seededRandom, table } from './stats.js';

/** Centre of the ~20 km x 20 km box the campaigns are scattered in (Manhattan). */
const ORIGIN = { lat: 40.75, lon: -73.98 };
const BOX_M = 20_000;
const M_PER_DEG_LAT = 111_320;
const M_PER_DEG_LON = M_PER_DEG_LAT * Math.cos((ORIGIN.lat * Math.PI) / 180);

const WARMUP_MS = 200;
const RUN_MS = 1_000;
const MAX_ITERATIONS = 2_000_000;
const BATCH = 16;
const EVENTS = 1024;

function pointInBox(rand: () => number) {
  return {
    lat: ORIGIN.lat + ((rand() - 0.5) * BOX_M) / M_PER_DEG_LAT,
    lon: ORIGIN.lon + ((rand() - 0.5) * BOX_M) / M_PER_DEG_LON,
  };
}

export function syntheticCampaigns(n: number, rand: () => number): Campaign[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `c${String(i).padStart(5, '0')}`,
    version: 1,
    status: 'active',
    priority: Math.floor(rand() * 5),
    expectedValue: Math.round(rand() * 100) / 10,
    schedule: { timeZone: 'America/New_York' },
    trigger: { kind: 'checkin' },
    geofences: [{ id: `g${i}`, kind: 'circle', center: pointInBox(rand), radiusM: 50 + rand() * 450 }],
    sources: ['gps'],
    minConfidence: 0.5,
    maxAccuracyM: 50,
    audience: {},
    channels: ['sms'],
    caps: {},
    budget: {},
    holdoutPercent: 0,
    offer: { id: `o${i}`, kind: 'coupon', title: 'Offer', message: 'Code {code} until {expires}', validDays: 7 },
  }));
}

/** Half the fixes land on a random campaign's centre (a match), half anywhere in the box (mostly no match). */
function syntheticContexts(campaigns: Campaign[], rand: () => number, now: Date): EvaluationContext[] {
  const member: MemberContext = {
    id: '00000000-0000-4000-8000-000000000001', tier: null, tags: [], visitCount: 3, lastVisitAt: null,
    lifetimeRedemptions: 0, homeStoreId: null, channels: ['sms'], offers: [], redemptions: [],
  };
  return Array.from({ length: EVENTS }, (_, i) => {
    const fence = campaigns[Math.floor(rand() * campaigns.length)]!.geofences[0]!;
    const position = i % 2 === 0 && fence.kind === 'circle' ? { ...fence.center } : pointInBox(rand);
    return {
      member,
      counters: new Map(),
      event: { kind: 'checkin', source: 'gps', confidence: 0.9, at: now, position, accuracyM: 10 },
    };
  });
}

interface Measured {
  iterations: number;
  ms: number;
  matched: number;
}

let cursor = 0; // walks through all the synthetic fixes across warm-up and timed runs

function measure(set: readonly Campaign[] | PreparedCampaigns, contexts: EvaluationContext[], now: Date, budgetMs: number, max: number): Measured {
  let iterations = 0;
  let matched = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < budgetMs && iterations < max) {
    for (let b = 0; b < BATCH; b++) {
      if (evaluate(set, contexts[cursor++ % contexts.length]!, now).chosen) matched++;
    }
    iterations += BATCH;
    elapsed = performance.now() - started;
  }
  return { iterations, ms: elapsed, matched };
}

export interface RulesRow {
  campaigns: number;
  form: string;
  perSecond: number;
  usPerEval: number;
  iterations: number;
  matchRate: number;
}

export function benchRules(sizes: number[] = [10, 100, 1000]): { rows: RulesRow[]; text: string } {
  const now = new Date('2025-06-04T15:00:00Z');
  const rows: RulesRow[] = [];
  for (const n of sizes) {
    const rand = seededRandom(0xbe7c4 + n);
    const campaigns = syntheticCampaigns(n, rand);
    const contexts = syntheticContexts(campaigns, rand, now);
    const prepared = prepareCampaigns(campaigns);
    const forms: Array<[string, readonly Campaign[] | PreparedCampaigns]> = [
      ['Campaign[] (linear scan)', campaigns],
      ['prepared (spatial index)', prepared],
    ];
    for (const [form, set] of forms) {
      measure(set, contexts, now, WARMUP_MS, MAX_ITERATIONS / 4);
      const m = measure(set, contexts, now, RUN_MS, MAX_ITERATIONS);
      rows.push({
        campaigns: n, form, iterations: m.iterations, matchRate: m.matched / m.iterations,
        perSecond: (m.iterations / m.ms) * 1000, usPerEval: (m.ms * 1000) / m.iterations,
      });
    }
  }
  const text = table(
    `1. Rules engine: evaluate(campaigns, checkin event, now), circular geofences r=50-500 m in a ${BOX_M / 1000} km box ` +
      `(warm-up ${WARMUP_MS} ms, then <= ${RUN_MS} ms or ${fmt(MAX_ITERATIONS, 0)} evaluations per row)`,
    ['campaigns', 'form', 'evals/s', 'us/eval', 'us/campaign', 'evaluations', 'matched'],
    rows.map((r) => [
      String(r.campaigns), r.form, fmt(r.perSecond, 0), fmt(r.usPerEval, 2), fmt(r.usPerEval / r.campaigns, 3), fmt(r.iterations, 0), `${fmt(r.matchRate * 100, 1)}%`,
    ]),
  );
  return { rows, text };
}
