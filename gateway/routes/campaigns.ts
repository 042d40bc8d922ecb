import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createCampaign, getCampaign } from '../domain/campaigns.js';
import type { Deps } from '../domain/deps.js';
import { IdParams, Instant, Nullable, Strict, Uuid, errors } from '../http/schemas.js';

const Trigger = Strict({ kind: Type.Literal('checkin', { description: 'A GPS check-in inside one of the geofences' }) });

const OfferInput = Strict({
  title: Type.String({ minLength: 1, maxLength: 100 }),
  message: Type.String({
    minLength: 1,
    maxLength: 300,
    description: 'SMS text; {code} and {expires} are filled in. The programme name and opt-out line are added.',
  }),
  validDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 })),
});

const CreateCampaign = Strict({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  storeId: Type.Optional(Uuid),
  geofenceIds: Type.Optional(Type.Array(Uuid, { minItems: 1, maxItems: 1000 })),
  priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000 })),
  startsAt: Type.Optional(Instant),
  endsAt: Type.Optional(Instant),
  trigger: Trigger,
  maxAccuracyM: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10_000 })),
  channel: Type.Optional(Type.Literal('sms')),
  offer: OfferInput,
});

const Campaign = Type.Object({
  id: Uuid,
  name: Type.String(),
  status: Type.String(),
  version: Type.Integer(),
  storeId: Nullable(Uuid),
  geofenceIds: Type.Array(Uuid),
  priority: Type.Integer(),
  startsAt: Nullable(Instant),
  endsAt: Nullable(Instant),
  trigger: Type.Object({ kind: Type.String() }),
  maxAccuracyM: Type.Number(),
  channel: Type.String(),
  offer: Type.Object({ id: Uuid, kind: Type.String(), title: Type.String(), message: Type.String(), validDays: Type.Integer() }),
  createdAt: Instant,
});

const campaigns: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.post('/campaigns', {
    schema: {
      tags: ['campaigns'],
      summary: 'Create an active campaign with one coupon offer',
      body: CreateCampaign,
      response: { 201: Campaign, ...errors(404) },
    },
  }, async (req, reply) => reply.code(201).send(await createCampaign(deps.db, req.body, deps.config.couponValidDays)));

  app.get('/campaigns/:id', {
    schema: { tags: ['campaigns'], summary: 'A campaign with its offer', params: IdParams, response: { 200: Campaign, ...errors(404) } },
  }, async (req) => getCampaign(deps.db, req.params.id));
};

export default campaigns;
