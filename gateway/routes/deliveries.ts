import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { getDelivery } from '../domain/deliveries.js';
import type { Deps } from '../domain/deps.js';
import { codeBudget } from '../domain/limits.js';
import { IdParams, Instant, Nullable, Strict, Uuid, errors } from '../http/schemas.js';

const Delivery = Type.Object({
  id: Uuid,
  decisionId: Uuid,
  memberId: Uuid,
  channel: Type.String(),
  status: Type.String(),
  statusReason: Nullable(Type.String()),
  providerId: Nullable(Type.String()),
  errorCode: Nullable(Type.String()),
  attempts: Type.Integer(),
  createdAt: Instant,
  updatedAt: Instant,
});

const DeadLetter = Type.Object({
  id: Type.String(),
  name: Type.String(),
  payload: Type.Unknown(),
  attempts: Type.Integer(),
  error: Type.String(),
  failedAt: Instant,
});

const deliveries: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.get('/deliveries/:id', {
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'delivery', from: 'params.id' } } },
    schema: { tags: ['delivery'], summary: 'One message and where it stands', params: IdParams, response: { 200: Delivery, ...errors(404) } },
  }, async (req) => getDelivery(deps.db, req.params.id));

  app.get('/admin/sms-limits', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['delivery'],
      summary: "Limits on texts nobody signed in asked for: the countries texted (SMS_COUNTRIES), sign-up codes per number, and the hourly budget of sign-up codes with its use and refusals, this hour and the last 48 (newest first)",
      response: {
        200: Type.Object({
          countries: Type.Array(Type.String()),
          codesPerNumberPerHour: Type.Integer(),
          codesPerNumberPerDay: Type.Integer(),
          codesPerHour: Type.Integer(),
          current: Type.Object({ hour: Instant, used: Type.Integer(), refused: Type.Integer(), remaining: Type.Integer() }),
          hours: Type.Array(Type.Object({ hour: Instant, used: Type.Integer(), refused: Type.Integer() })),
        }),
      },
    },
  }, async () => {
    const { codesPerNumberPerHour, codesPerNumberPerDay, codesPerHour } = deps.config.signupLimits;
    return {
      countries: [...deps.config.smsCountries], codesPerNumberPerHour, codesPerNumberPerDay, codesPerHour,
      ...(await codeBudget(deps.db, deps.config.signupLimits, deps.now())),
    };
  });

  app.get('/admin/dead-letters', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['delivery'],
      summary: 'Jobs that failed for good, newest first, with their errors',
      querystring: Strict({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) }),
      response: { 200: Type.Object({ deadLetters: Type.Array(DeadLetter) }) },
    },
  }, async (req) => ({ deadLetters: await deps.queue.deadLetters(req.query.limit ?? 100) }));
};

export default deliveries;
