// The store's iBeacons (which zone each one marks) and the members' apps reporting the beacons they hear.
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { HEADER_APP_SIGNATURE, HEADER_APP_TIMESTAMP } from '../../beacon-agent/app-report.js';
import { addBeacon, checkReportSignature, listBeacons, reportBeacons } from '../domain/app-reports.js';
import type { Deps } from '../domain/deps.js';
import { AppError } from '../errors.js';
import { answeredInTransaction, idempotency, IdempotencyHeaders } from '../http/idempotency.js';
import { keepRawJsonBody, rawBodyOf } from '../http/raw-body.js';
import { Decision, IdParams, Strict, Uuid, Instant, errors } from '../http/schemas.js';

const IBeaconUuid = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' });
const BeaconId = Strict({ uuid: IBeaconUuid, major: Type.Integer({ minimum: 0, maximum: 65535 }), minor: Type.Integer({ minimum: 0, maximum: 65535 }) });
const Beacon = Type.Object({ id: Uuid, storeId: Uuid, zoneId: Type.Union([Uuid, Type.Null()]), uuid: Type.String(), major: Type.Integer(), minor: Type.Integer() });
const Report = Strict({
  id: Type.String({ minLength: 8, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' }),
  kind: Type.Union([Type.Literal('enter'), Type.Literal('dwell'), Type.Literal('exit')]),
  beacon: BeaconId,
  at: Instant,
  rssi: Type.Optional(Type.Number({ minimum: -127, maximum: 20 })),
});

const beacons: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  // Beacon identities are broadcast in the clear and unique across the system, so they are registered by the
  // operator at installation (like the boxes), never claimed by a tenant: a brand cannot take another's.
  app.post('/stores/:id/beacons', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['agents'],
      summary: "Register one of the store's iBeacons and the zone it marks",
      params: IdParams,
      body: Strict({ uuid: IBeaconUuid, major: Type.Integer({ minimum: 0, maximum: 65535 }), minor: Type.Integer({ minimum: 0, maximum: 65535 }), zoneId: Uuid }),
      response: { 201: Beacon, ...errors(404, 409) },
    },
  }, async (req, reply) => reply.code(201).send(await addBeacon(deps.db, req.params.id, req.body)));

  app.get('/stores/:id/beacons', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'store', from: 'params.id' } } },
    schema: { tags: ['agents'], summary: "The store's iBeacons", params: IdParams, response: { 200: Type.Object({ beacons: Type.Array(Beacon) }) } },
  }, async (req) => ({ beacons: await listBeacons(deps.db, req.params.id) }));

  // Signed over the exact body bytes, like the boxes' uploads.
  await app.register(async (signed) => {
    keepRawJsonBody(signed);
    const idempotent = idempotency(deps);
    const partsOf = (req: FastifyRequest) => ({
      method: req.method, path: req.url, timestamp: Number(req.headers[HEADER_APP_TIMESTAMP]), body: rawBodyOf(req),
      signature: String(req.headers[HEADER_APP_SIGNATURE]),
    });
    signed.withTypeProvider<TypeBoxTypeProvider>().post('/members/:id/beacon-reports', {
      config: { access: { roles: ['member'], scope: 'own', by: 'signature' } },
      // An unsigned request is refused before its body is read as anything (the signature itself is checked with the body).
      preValidation: async (req) => {
        if (typeof req.headers[HEADER_APP_SIGNATURE] !== 'string' || typeof req.headers[HEADER_APP_TIMESTAMP] !== 'string') {
          throw new AppError('SIGNATURE_INVALID', `headers ${HEADER_APP_TIMESTAMP} and ${HEADER_APP_SIGNATURE} are required`);
        }
      },
      // The signature before the Idempotency-Key: a kept answer goes only to the member who signed for it.
      preHandler: [async (req) => checkReportSignature(deps, (req.params as { id: string }).id, partsOf(req)), idempotent.preHandler],
      onSend: idempotent.onSend,
      schema: {
        tags: ['agents'],
        summary: `The member's app reports store beacons it heard (up to 50), signed with its key: headers ${HEADER_APP_TIMESTAMP} (ms), ${HEADER_APP_SIGNATURE}`,
        params: IdParams,
        headers: IdempotencyHeaders,
        body: Strict({ reports: Type.Array(Report, { maxItems: 50 }) }),
        response: {
          202: Type.Object({
            received: Type.Integer(), accepted: Type.Integer(), duplicates: Type.Integer(),
            rejected: Type.Array(Type.Object({ index: Type.Integer(), code: Type.String() })),
            decisions: Type.Array(Decision), deliveryIds: Type.Array(Uuid),
          }),
          ...errors(401, 403, 404, 409),
        },
      },
    }, async (req, reply) => {
      const signature = req.headers[HEADER_APP_SIGNATURE];
      const timestamp = req.headers[HEADER_APP_TIMESTAMP];
      if (typeof signature !== 'string' || typeof timestamp !== 'string') {
        throw new AppError('SIGNATURE_INVALID', `headers ${HEADER_APP_TIMESTAMP} and ${HEADER_APP_SIGNATURE} are required`);
      }
      const parts = { method: req.method, path: req.url, timestamp: Number(timestamp), body: rawBodyOf(req), signature };
      return reply.code(202).send(await reportBeacons(answeredInTransaction(req, deps, 202), req.params.id, parts, req.body.reports));
    });
  });
};

export default beacons;
