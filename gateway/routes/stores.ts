import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Deps } from '../domain/deps.js';
import { createStore, getStore } from '../domain/stores.js';
import { AppError } from '../errors.js';
import { merchantScope } from '../http/access.js';
import { IdParams, Instant, LatLon, Strict, TimeZone, Uuid, errors } from '../http/schemas.js';
import { Geofence } from './geofences.js';

const Store = Type.Object({
  id: Uuid,
  merchantId: Type.String({ format: 'uuid', description: 'The merchant (brand or partner) whose location it is' }),
  name: Type.String(),
  timeZone: Type.String(),
  location: LatLon,
  geofences: Type.Array(Geofence),
  createdAt: Instant,
});

const CreateStore = Strict({
  merchantId: Type.Optional(Type.String({ format: 'uuid', description: "Whose location it is (administrators); a marketer's store is its brand's. Default: the house brand" })),
  name: Type.String({ minLength: 1, maxLength: 200 }),
  timeZone: TimeZone,
  location: LatLon,
  geofence: Type.Optional(
    Strict(
      {
        radiusM: Type.Number({ minimum: 10, maximum: 10_000, description: 'Radius in metres, 10 m to 10 km' }),
        center: Type.Optional(LatLon),
      },
      'A circular geofence; centred on the store unless a center is given',
    ),
  ),
});

const stores: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.post('/stores', {
    config: { access: { roles: ['administrator', 'marketer'], scope: 'own' } },
    schema: { tags: ['stores'], summary: 'Create a store, optionally with a circular geofence', body: CreateStore, response: { 201: Store, ...errors(409) } },
  }, async (req, reply) => {
    const own = merchantScope(req);
    if (own && req.body.merchantId && req.body.merchantId !== own) {
      throw new AppError('MERCHANT_NOT_FOUND', `merchant ${req.body.merchantId} does not exist`);
    }
    return reply.code(201).send(await createStore(deps.db, { ...req.body, merchantId: own ?? req.body.merchantId ?? null }, deps.config.geofenceLimits));
  });

  app.get('/stores/:id', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: { kind: 'store', from: 'params.id' } } },
    schema: { tags: ['stores'], summary: 'A store with its geofences', params: IdParams, response: { 200: Store, ...errors(404) } },
  }, async (req) => getStore(deps.db, req.params.id));
};

export default stores;
