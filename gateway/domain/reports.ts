// Campaign and store reports, from stored records alone: decisions, deliveries, coupons and live (not voided)
// redemptions for the funnel; the member's first treated-or-control decision and their later visits for lift.
// Every figure is an SQL aggregate; the statistics are campaign-rules/lift.ts.
//
// Definitions
// - A decision belongs to a campaign when the campaign won it (decisions.campaign_id), and to a store when the
//   campaign version it used names that store (definition.storeId).
// - Funnel, per decision, dated by the decision: decisions; heldOut (outcome held_out, the control);
//   offered (offer_queued: a coupon was issued); notSent (quiet hours, coupon budget); sent (its delivery was
//   handed to the carrier or push service: sent, delivered or undelivered); delivered (confirmed delivered);
//   redeemed (its coupon has a live redemption, whenever it happened); redeemedAmount (their amounts);
//   redemptionRate = redeemed / offered.
// - Lift. Unit: a member in a campaign, at their first decision in it with outcome offer_queued or held_out
//   (a member decided ten times counts once; the first decision fixes the group and starts the window).
//   Treated: that decision was offer_queued (intention to treat: counted whether or not the message arrived).
//   Control: held_out. Outcome, the same for both groups: a *return visit*, a visit (GPS geofence or BLE zone
//   stay, see visits.ts) to one of the campaign's places that starts after the decision and within windowDays
//   of it. The campaign's places, from the version the decision used: its store, the stores of its geofences
//   and zones, and its free-standing geofences. Coupon redemption cannot be the outcome: the control never
//   has the coupon. A stay resumed within the visit gap (5 minutes) is the same visit, not a return.
//   Units whose window has not closed at report time are left out and counted as `pending`.
//   Lift = treated rate - control rate, relative lift = that / control rate, 95% CI by Newcombe's hybrid
//   score method (Wilson intervals of each rate). A store's lift pools its campaigns' units.
// - Dates: from/to are inclusive calendar dates and days are grouped in the report's time zone (the store's,
//   or the campaign's schedule zone, unless timeZone is given). Funnel rows are dated by each decision, lift
//   by the unit's first decision.
import { isTimeZone, lift, redemptionRate, type Lift } from '../../campaign-rules/index.js';
import type { Sql } from '../db/database.js';
import { AppError, invalid } from '../errors.js';

export const OUTCOME = 'return_visit';
export const CI_METHOD = 'newcombe_hybrid_score';
/** A day-by-day report spans at most this many days. */
export const MAX_DAYS = 366;

export interface ReportQuery {
  /** YYYY-MM-DD, inclusive, in the report's time zone. */
  from?: string;
  to?: string;
  groupBy?: 'none' | 'day';
  timeZone?: string;
  /** How long after the first decision a return visit counts. */
  windowDays?: number;
}

export interface ReportRow {
  decisions: number;
  heldOut: number;
  offered: number;
  notSent: number;
  sent: number;
  delivered: number;
  redeemed: number;
  redeemedAmount: number;
  redemptionRate: number | null;
  lift: Lift & { pending: number };
}

export interface Report {
  scope: { kind: 'campaign' | 'store'; id: string; name: string };
  range: { from: string | null; to: string | null; timeZone: string };
  groupBy: 'none' | 'day';
  definitions: {
    unit: string;
    treated: string;
    control: string;
    outcome: typeof OUTCOME;
    windowDays: number;
    interval: typeof CI_METHOD;
    confidence: number;
    asOf: string;
  };
  totals: ReportRow;
  days?: Array<ReportRow & { day: string }>;
  campaigns?: Array<ReportRow & { campaignId: string; name: string }>;
}

interface Grouped {
  campaign_id: string | null;
  day: string | null;
  all_campaigns: number;
  all_days: number;
}

interface FunnelRow extends Grouped {
  decisions: number;
  held_out: number;
  offered: number;
  not_sent: number;
  sent: number;
  delivered: number;
  redeemed: number;
  redeemed_amount: number;
}

interface UnitRow extends Grouped {
  treated: number;
  treated_converted: number;
  control: number;
  control_converted: number;
  pending: number;
}

// $1 campaign ids, $2 store id or null, $3 from date, $4 to date, $5 time zone.
const SCOPED = `
  SELECT d.id, d.member_id, d.campaign_id, d.campaign_version, d.outcome, d.occurred_at, d.created_at
    FROM decisions d
    JOIN campaign_versions v ON v.campaign_id = d.campaign_id AND v.version = d.campaign_version
   WHERE d.campaign_id = ANY($1::uuid[]) AND ($2::text IS NULL OR v.definition->>'storeId' = $2)`;

const IN_RANGE = (col: string) => `($3::date IS NULL OR ${col} >= ($3::date::timestamp AT TIME ZONE $5::text))
     AND ($4::date IS NULL OR ${col} < (($4::date + 1)::timestamp AT TIME ZONE $5::text))`;

interface Sets {
  byDay: boolean;
  byCampaign: boolean;
}

// The grand total always; per day and per campaign when asked. A column in no grouping set cannot be selected.
const groupingSets = (g: Sets) => ['()', ...(g.byDay ? ['(day)'] : []), ...(g.byCampaign ? ['(campaign_id)'] : [])].join(', ');
const grouping = (g: Sets) => [
  g.byCampaign ? 'campaign_id, GROUPING(campaign_id)::int AS all_campaigns' : 'NULL::uuid AS campaign_id, 1 AS all_campaigns',
  g.byDay ? 'day, GROUPING(day)::int AS all_days' : 'NULL::text AS day, 1 AS all_days',
].join(', ');

const funnelSql = (g: Sets) => `
WITH scoped AS (${SCOPED} AND ${IN_RANGE('d.occurred_at')}),
per_decision AS (
  SELECT s.campaign_id, s.outcome, to_char(s.occurred_at AT TIME ZONE $5::text, 'YYYY-MM-DD') AS day,
         EXISTS (SELECT 1 FROM deliveries dl WHERE dl.decision_id = s.id AND dl.status IN ('sent', 'delivered', 'undelivered')) AS sent,
         EXISTS (SELECT 1 FROM deliveries dl WHERE dl.decision_id = s.id AND dl.status = 'delivered') AS delivered,
         r.id IS NOT NULL AS redeemed, r.amount
    FROM scoped s
    LEFT JOIN coupons c ON c.decision_id = s.id
    LEFT JOIN live_redemptions r ON r.coupon_id = c.id)
SELECT ${grouping(g)},
       count(*)::int AS decisions,
       count(*) FILTER (WHERE outcome = 'held_out')::int AS held_out,
       count(*) FILTER (WHERE outcome = 'offer_queued')::int AS offered,
       count(*) FILTER (WHERE outcome = 'not_sent')::int AS not_sent,
       count(*) FILTER (WHERE sent)::int AS sent,
       count(*) FILTER (WHERE delivered)::int AS delivered,
       count(*) FILTER (WHERE redeemed)::int AS redeemed,
       coalesce(sum(amount), 0)::float8 AS redeemed_amount
  FROM per_decision
 GROUP BY GROUPING SETS (${groupingSets(g)})`;

// $6 window days, $7 report time.
const unitsSql = (g: Sets) => `
WITH firsts AS (
  SELECT DISTINCT ON (s.member_id, s.campaign_id) s.member_id, s.campaign_id, s.campaign_version, s.outcome, s.occurred_at
    FROM (${SCOPED} AND d.outcome IN ('offer_queued', 'held_out')) s
   ORDER BY s.member_id, s.campaign_id, s.occurred_at, s.created_at, s.id),
places AS (
  SELECT v.campaign_id, v.version,
         ARRAY(SELECT (v.definition->>'storeId')::uuid WHERE v.definition->>'storeId' IS NOT NULL
               UNION SELECT g.store_id FROM geofences g
                      WHERE g.store_id IS NOT NULL AND g.id::text IN (SELECT jsonb_array_elements_text(v.definition->'geofenceIds'))
               UNION SELECT z.store_id FROM zones z
                      WHERE z.id::text IN (SELECT jsonb_array_elements_text(coalesce(v.definition->'trigger'->'zoneIds', '[]'::jsonb)))) AS store_ids,
         ARRAY(SELECT jsonb_array_elements_text(v.definition->'geofenceIds')::uuid) AS geofence_ids
    FROM campaign_versions v WHERE v.campaign_id = ANY($1::uuid[])),
units AS (
  SELECT f.campaign_id, f.outcome, to_char(f.occurred_at AT TIME ZONE $5::text, 'YYYY-MM-DD') AS day,
         f.occurred_at + make_interval(days => $6::int) <= $7::timestamptz AS matured,
         EXISTS (SELECT 1 FROM visits vi
                  WHERE vi.member_id = f.member_id AND vi.started_at > f.occurred_at
                    AND vi.started_at <= f.occurred_at + make_interval(days => $6::int)
                    AND (vi.store_id = ANY(p.store_ids) OR vi.geofence_id = ANY(p.geofence_ids))) AS converted
    FROM firsts f JOIN places p ON p.campaign_id = f.campaign_id AND p.version = f.campaign_version
   WHERE ${IN_RANGE('f.occurred_at')})
SELECT ${grouping(g)},
       count(*) FILTER (WHERE matured AND outcome = 'offer_queued')::int AS treated,
       count(*) FILTER (WHERE matured AND outcome = 'offer_queued' AND converted)::int AS treated_converted,
       count(*) FILTER (WHERE matured AND outcome = 'held_out')::int AS control,
       count(*) FILTER (WHERE matured AND outcome = 'held_out' AND converted)::int AS control_converted,
       count(*) FILTER (WHERE NOT matured)::int AS pending
  FROM units
 GROUP BY GROUPING SETS (${groupingSets(g)})`;

const DAY_MS = 86_400_000;

function checkQuery(q: ReportQuery, timeZone: string) {
  if (!isTimeZone(timeZone)) throw invalid({ field: 'query/timeZone', problem: `"${timeZone}" is not an IANA time zone` });
  if (q.from && q.to && q.from > q.to) {
    throw new AppError('REPORT_RANGE_INVALID', `from ${q.from} is after to ${q.to}`, { from: q.from, to: q.to });
  }
  if (q.groupBy === 'day' && q.from && q.to) {
    const days = (Date.parse(`${q.to}T00:00:00Z`) - Date.parse(`${q.from}T00:00:00Z`)) / DAY_MS + 1;
    if (days > MAX_DAYS) {
      throw new AppError('REPORT_RANGE_INVALID', `a day-by-day report spans at most ${MAX_DAYS} days, not ${days}`, { maxDays: MAX_DAYS, days });
    }
  }
}

const key = (r: Grouped) => `${r.all_campaigns}|${r.all_days}|${r.campaign_id ?? ''}|${r.day ?? ''}`;

function toRow(f: FunnelRow | undefined, u: UnitRow | undefined): ReportRow {
  const offered = f?.offered ?? 0;
  const redeemed = f?.redeemed ?? 0;
  return {
    decisions: f?.decisions ?? 0,
    heldOut: f?.held_out ?? 0,
    offered,
    notSent: f?.not_sent ?? 0,
    sent: f?.sent ?? 0,
    delivered: f?.delivered ?? 0,
    redeemed,
    redeemedAmount: Math.round((f?.redeemed_amount ?? 0) * 100) / 100,
    redemptionRate: redemptionRate(redeemed, offered),
    lift: {
      ...lift({ members: u?.treated ?? 0, converted: u?.treated_converted ?? 0 }, { members: u?.control ?? 0, converted: u?.control_converted ?? 0 }),
      pending: u?.pending ?? 0,
    },
  };
}

async function build(
  db: Sql,
  scope: Report['scope'],
  campaigns: ReadonlyArray<{ id: string; name: string }>,
  storeId: string | null,
  timeZone: string,
  q: ReportQuery,
  now: Date,
): Promise<Report> {
  checkQuery(q, timeZone);
  const groupBy = q.groupBy ?? 'none';
  const windowDays = q.windowDays ?? 7;
  const sets: Sets = { byDay: groupBy === 'day', byCampaign: scope.kind === 'store' };
  const ids = campaigns.map((c) => c.id);
  const base = [ids, storeId, q.from ?? null, q.to ?? null, timeZone];
  const funnel = ids.length ? await db.query<FunnelRow>(funnelSql(sets), base) : [];
  const units = ids.length ? await db.query<UnitRow>(unitsSql(sets), [...base, windowDays, now]) : [];
  const unitsByKey = new Map(units.map((u) => [key(u), u]));
  const funnelByKey = new Map(funnel.map((f) => [key(f), f]));
  const rowFor = (k: string) => toRow(funnelByKey.get(k), unitsByKey.get(k));

  const report: Report = {
    scope,
    range: { from: q.from ?? null, to: q.to ?? null, timeZone },
    groupBy,
    definitions: {
      unit: 'a member in a campaign, at their first decision in it that was offer_queued or held_out',
      treated: 'first decision offer_queued (offered, whether or not the message arrived)',
      control: 'first decision held_out',
      outcome: OUTCOME,
      windowDays,
      interval: CI_METHOD,
      confidence: 0.95,
      asOf: now.toISOString(),
    },
    totals: rowFor('1|1||'),
  };
  if (groupBy === 'day') {
    const days = new Set([...funnel, ...units].filter((r) => r.all_campaigns === 1 && r.all_days === 0).map((r) => r.day!));
    report.days = [...days].sort().map((day) => ({ day, ...rowFor(`1|0||${day}`) }));
  }
  if (scope.kind === 'store') {
    report.campaigns = campaigns.map((c) => ({ campaignId: c.id, name: c.name, ...rowFor(`0|1|${c.id}|`) }));
  }
  return report;
}

export async function campaignReport(db: Sql, campaignId: string, q: ReportQuery, now: Date): Promise<Report> {
  const [c] = await db.query<{ id: string; name: string; time_zone: string }>(
    `SELECT id, name, definition->'schedule'->>'timeZone' AS time_zone FROM campaigns WHERE id = $1`,
    [campaignId],
  );
  if (!c) throw new AppError('CAMPAIGN_NOT_FOUND', `campaign ${campaignId} does not exist`);
  return build(db, { kind: 'campaign', id: c.id, name: c.name }, [c], null, q.timeZone ?? c.time_zone ?? 'UTC', q, now);
}

/** The store's campaigns: every campaign with a version at this store; decisions count where their version was. */
export async function storeReport(db: Sql, storeId: string, q: ReportQuery, now: Date): Promise<Report> {
  const [s] = await db.query<{ id: string; name: string; time_zone: string }>('SELECT id, name, time_zone FROM stores WHERE id = $1', [storeId]);
  if (!s) throw new AppError('STORE_NOT_FOUND', `store ${storeId} does not exist`);
  const campaigns = await db.query<{ id: string; name: string }>(
    `SELECT c.id, c.name FROM campaigns c
      WHERE EXISTS (SELECT 1 FROM campaign_versions v WHERE v.campaign_id = c.id AND v.definition->>'storeId' = $1)
      ORDER BY c.created_at, c.id`,
    [storeId],
  );
  return build(db, { kind: 'store', id: s.id, name: s.name }, campaigns, storeId, q.timeZone ?? s.time_zone, q, now);
}
