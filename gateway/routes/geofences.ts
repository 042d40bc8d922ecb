import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Deps } from '../domain/deps.js';
import { createGeofence, createZone, getGeofence, storeGeofences, storeZones } from '../domain/geofences.js';
import { getStore } from '../domain/stores.js';
import { WeeklyWindow } from '../http/campaign-schema.js';
import { merchantScope } from '../http/access.js';
import { IdParams, Instant, LatLon, Nullable, Strict, TimeZone, Uuid, errors } from '../http/schemas.js';

const Position = Type.Tuple([Type.Number({ minimum: -180, maximum: 180 }), Type.Number({ minimum: -90, maximum: 90 })], {
  description: '[longitude, latitude], as in GeoJSON',
});

export const Shape = Type.Union([
  Strict({ kind: Type.Literal('circle'), center: LatLon, radiusM: Type.Number({ minimum: 10, maximum: 10_000, description: '10 m to 10 km' }) }),
  Strict(
    {
      kind: Type.Literal('polygon'),
      coordinates: Type.Array(Type.Array(Position, { minItems: 4, maxItems: 10_000 }), { minItems: 1, maxItems: 100 }),
    },
    'GeoJSON Polygon coordinates: the outer ring, then holes; each ring closed',
  ),
]);

const GeofenceInput = Strict({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  storeId: Type.Optional(Uuid),
  shape: Shape,
  hours: Type.Optional(Type.Array(WeeklyWindow, { minItems: 1, maxItems: 50, description: 'Opening hours; absent means always open' })),
  timeZone: Type.Optional(TimeZone),
});

export const Geofence = Type.Object({
  id: Uuid,
  name: Type.String(),
  storeId: Nullable(Uuid),
  shape: Shape,
  hours: Nullable(Type.Array(WeeklyWindow)),
  timeZone: Nullable(Type.String()),
  createdAt: Instant,
});

const Zone = Type.Object({ id: Uuid, storeId: Uuid, name: Type.String() });

const geofences: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.post('/geofences', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'store', from: 'body.storeId' } } },
    schema: {
      tags: ['stores'],
      summary: 'Create a geofence: a circle or a GeoJSON polygon, for a store or free-standing, with optional hours',
      description: 'Positions per ring, rings, extent and geofences per store and per brand are limited (GEOFENCE_MAX_*): a shape past them is '
        + '400 VALIDATION_FAILED at its field, a geofence past a count 409 GEOFENCE_LIMIT. Rings crossing the antimeridian are refused.',
      body: GeofenceInput,
      response: { 201: Geofence, ...errors(404, 409) },
    },
  }, async (req, reply) => reply.code(201).send(await createGeofence(deps.db, req.body, deps.config.geofenceLimits, merchantScope(req))));

  app.get('/geofences/:id', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'geofence', from: 'params.id' } } },
    schema: { tags: ['stores'], summary: 'One geofence', params: IdParams, response: { 200: Geofence, ...errors(404) } },
  }, async (req) => getGeofence(deps.db, req.params.id));

  app.get('/stores/:id/geofences', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: { kind: 'store', from: 'params.id' } } },
    schema: { tags: ['stores'], summary: "A store's geofences", params: IdParams, response: { 200: Type.Object({ geofences: Type.Array(Geofence) }), ...errors(404) } },
  }, async (req) => {
    await getStore(deps.db, req.params.id);
    return { geofences: await storeGeofences(deps.db, req.params.id) };
  });

  app.post('/stores/:id/zones', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'store', from: 'params.id' } } },
    schema: {
      tags: ['stores'],
      summary: 'Add a beacon zone (entrance, counter) to a store',
      params: IdParams,
      body: Strict({ name: Type.String({ minLength: 1, maxLength: 100 }) }),
      response: { 201: Zone, ...errors(404, 409) },
    },
  }, async (req, reply) => reply.code(201).send(await createZone(deps.db, req.params.id, req.body.name)));

  app.get('/stores/:id/zones', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'store', from: 'params.id' } } },
    schema: { tags: ['stores'], summary: "A store's zones", params: IdParams, response: { 200: Type.Object({ zones: Type.Array(Zone) }), ...errors(404) } },
  }, async (req) => {
    await getStore(deps.db, req.params.id);
    return { zones: await storeZones(deps.db, req.params.id) };
  });
};

export default geofences;
