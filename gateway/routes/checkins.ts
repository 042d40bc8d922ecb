import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { handleCheckin } from '../domain/checkins.js';
import type { Deps } from '../domain/deps.js';
import { pastInstant } from '../domain/time.js';
import { answeredInTransaction, idempotency, IdempotencyHeaders } from '../http/idempotency.js';
import { Decision, Instant, Lat, Lon, Nullable, Strict, Uuid, errors } from '../http/schemas.js';

const Checkin = Strict({
  memberId: Uuid,
  lat: Lat,
  lon: Lon,
  accuracyM: Type.Number({ minimum: 0, maximum: 100_000, description: 'Reported horizontal accuracy, metres' }),
  at: Instant,
});

const checkins: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.post('/checkins', {
    ...idempotency(deps),
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'body.memberId' } } },
    schema: {
      tags: ['presence'],
      summary: "A GPS check-in from the member's app: updates presence (enter, exit, dwell, pass-by) and decides at once whether an offer goes out",
      headers: IdempotencyHeaders,
      body: Checkin,
      response: {
        202: Type.Object({ checkinId: Nullable(Uuid), decisions: Type.Array(Decision), deliveryIds: Type.Array(Uuid) }),
        ...errors(404, 409),
      },
    },
  }, async (req, reply) => {
    const at = pastInstant(req.body.at, deps.now(), 'body/at');
    return reply.code(202).send(await handleCheckin(answeredInTransaction(req, deps, 202), { ...req.body, at }));
  });
};

export default checkins;
