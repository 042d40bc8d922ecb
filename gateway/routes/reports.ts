import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Deps } from '../domain/deps.js';
import { campaignReport, storeReport } from '../domain/reports.js';
import { IdParams, Instant, Nullable, Strict, TimeZone, Uuid, errors } from '../http/schemas.js';

const ReportQuery = Strict({
  from: Type.Optional(Type.String({ format: 'date', pattern: '^[1-9]', description: 'First day, YYYY-MM-DD, in the report time zone (inclusive)' })),
  to: Type.Optional(Type.String({ format: 'date', pattern: '^[1-9]', description: 'Last day, YYYY-MM-DD, in the report time zone (inclusive)' })),
  groupBy: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('day')], { default: 'none', description: 'day adds one row per day with data' })),
  timeZone: Type.Optional(TimeZone),
  windowDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 90, default: 7, description: 'How long after the first decision a return visit counts' })),
});

const Count = Type.Integer({ minimum: 0 });
const Rate = Nullable(Type.Number());
const Group = Type.Object({ members: Count, converted: Count, rate: Rate });

const Lift = Type.Object({
  treated: Group,
  control: Group,
  absolute: Nullable(Type.Number({ description: 'Treated rate minus control rate' })),
  relative: Nullable(Type.Number({ description: 'absolute / control rate' })),
  ci95: Nullable(Type.Object({ low: Type.Number(), high: Type.Number() }, { description: '95% interval of absolute, Newcombe hybrid score' })),
  significant: Nullable(Type.Boolean({ description: 'The interval excludes 0' })),
  pending: Type.Integer({ minimum: 0, description: 'Members whose return-visit window is still open: not counted yet' }),
});

const rowProps = {
  decisions: Count,
  heldOut: Count,
  offered: Count,
  notSent: Count,
  sent: Count,
  delivered: Count,
  redeemed: Count,
  redeemedAmount: Type.Number(),
  redemptionRate: Type.Union([Type.Number(), Type.Null()], { description: 'redeemed / offered' }),
  lift: Lift,
};

const Report = Type.Object({
  scope: Type.Object({ kind: Type.Union([Type.Literal('campaign'), Type.Literal('store')]), id: Uuid, name: Type.String() }),
  range: Type.Object({ from: Nullable(Type.String()), to: Nullable(Type.String()), timeZone: Type.String() }),
  groupBy: Type.Union([Type.Literal('none'), Type.Literal('day')]),
  definitions: Type.Object({
    unit: Type.String(),
    treated: Type.String(),
    control: Type.String(),
    outcome: Type.Literal('return_visit'),
    windowDays: Type.Integer(),
    interval: Type.Literal('newcombe_hybrid_score'),
    confidence: Type.Number(),
    asOf: Instant,
  }),
  totals: Type.Object(rowProps),
  days: Type.Optional(Type.Array(Type.Object({ day: Type.String(), ...rowProps }))),
  campaigns: Type.Optional(Type.Array(Type.Object({ campaignId: Uuid, name: Type.String(), ...rowProps }))),
});

const reports: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.get('/campaigns/:id/report', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'campaign', from: 'params.id' } } },
    schema: {
      tags: ['reports'],
      summary: "A campaign's funnel (decisions, held out, sent, delivered, redeemed) and its lift over the control group",
      params: IdParams,
      querystring: ReportQuery,
      response: { 200: Report, ...errors(404) },
    },
  }, async (req) => campaignReport(deps.db, req.params.id, req.query, deps.now()));

  app.get('/stores/:id/report', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: { kind: 'store', from: 'params.id' } } },
    schema: {
      tags: ['reports'],
      summary: "A store's campaigns: funnel and lift in total and per campaign",
      params: IdParams,
      querystring: ReportQuery,
      response: { 200: Report, ...errors(404) },
    },
  }, async (req) => storeReport(deps.db, req.params.id, req.query, deps.now()));
};

export default reports;
