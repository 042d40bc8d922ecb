// Beacon agents: registration and key rotation for administrators, the signed ingest of presence events
// for the boxes, and the member's own EID identity key for their app.
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { HEADER_AGENT, HEADER_SIGNATURE, HEADER_TIMESTAMP } from '../../beacon-agent/signing.js';
import { AgentVerifier, authenticateAgent, getAgent, registerAgent, revokeAgent, rotateAgentKey, type Agent, type SignedRequest } from '../domain/agents.js';
import type { Deps } from '../domain/deps.js';
import { ingestPresence } from '../domain/detections.js';
import { EidRegistry, readIdentityKey } from '../domain/eid-registry.js';
import { sealedOffersForStore } from '../domain/handover.js';
import { getMember } from '../domain/members.js';
import { AppError } from '../errors.js';
import { keepRawJsonBody, rawBodyOf } from '../http/raw-body.js';
import { Decision, IdParams, Instant, Strict, Uuid, errors } from '../http/schemas.js';

const Agent = Type.Object({
  id: Uuid, storeId: Uuid, name: Type.String(), keyVersion: Type.Integer(), createdAt: Instant, revokedAt: Type.Union([Instant, Type.Null()]),
});
const AgentWithKey = Type.Object({
  agent: Agent,
  privateKey: Type.String({ description: 'Ed25519 private key (PKCS#8 PEM) for the box. Shown once; the gateway keeps only the public half.' }),
});

const PresenceEvent = Strict({
  id: Type.String({ minLength: 8, maxLength: 64, pattern: '^[A-Za-z0-9-]+$', description: 'Deterministic per event: a retried upload is counted once' }),
  kind: Type.Union([Type.Literal('enter'), Type.Literal('dwell'), Type.Literal('exit')]),
  eid: Type.String({ pattern: '^[0-9a-f]{16}$', description: 'The Eddystone-EID heard, 8 bytes as lower-case hex' }),
  zoneId: Uuid,
  at: Instant,
  source: Type.Union([Type.Literal('ble_passive'), Type.Literal('ble_active')]),
  confidence: Type.Number({ minimum: 0, maximum: 1 }),
  rssi: Type.Number({ minimum: -127, maximum: 20 }),
  dwellMs: Type.Optional(Type.Integer({ minimum: 0 })),
});
export const MAX_BATCH = 500;
const IngestBatch = Strict({
  agentId: Uuid,
  batchId: Type.String({ minLength: 1, maxLength: 64 }),
  events: Type.Array(PresenceEvent, { maxItems: MAX_BATCH }),
});

/** The signed parts of a request, from its headers and its exact body bytes. */
function signedParts(req: FastifyRequest): SignedRequest {
  const header = (name: string) => {
    const v = req.headers[name];
    if (typeof v !== 'string' || v === '') throw new AppError('AGENT_UNKNOWN', `header ${name} is required`);
    return v;
  };
  return {
    agentId: header(HEADER_AGENT), signature: header(HEADER_SIGNATURE), timestamp: Number(header(HEADER_TIMESTAMP)),
    method: req.method, path: req.url, body: rawBodyOf(req),
  };
}

const agents: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  const registry = new EidRegistry();
  const uploaders = new AgentVerifier();
  // The agent each request was verified as, before its body was validated.
  const verified = new WeakMap<FastifyRequest, Agent>();

  app.post('/agents', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['agents'],
      summary: 'Register a store edge box; answers with its private key, shown this once',
      body: Strict({ storeId: Uuid, name: Type.String({ minLength: 1, maxLength: 100 }) }),
      response: { 201: AgentWithKey, ...errors(404) },
    },
  }, async (req, reply) => reply.code(201).send(await registerAgent(deps.db, req.body)));

  app.get('/agents/:id', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: { tags: ['agents'], summary: 'An agent (never its key)', params: IdParams, response: { 200: Agent, ...errors(404) } },
  }, async (req) => getAgent(deps.db, req.params.id));

  app.post('/agents/:id/rotate', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['agents'],
      summary: 'A new key for the box; the old one keeps signing for 15 minutes',
      params: IdParams,
      response: { 200: AgentWithKey, ...errors(403, 404) },
    },
  }, async (req) => rotateAgentKey(deps.db, req.params.id, deps.now()));

  app.post('/agents/:id/revoke', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: { tags: ['agents'], summary: 'Revoke the box: its uploads are refused from now on', params: IdParams, response: { 200: Agent, ...errors(404) } },
  }, async (req) => revokeAgent(deps.db, req.params.id, deps.now()));

  // The signature covers the exact bytes sent, so this route parses JSON itself and keeps the raw body.
  await app.register(async (signed) => {
    keepRawJsonBody(signed, 1024 * 1024);

    signed.withTypeProvider<TypeBoxTypeProvider>().post('/ingest/presence', {
      config: { access: { roles: ['agent'], scope: 'own', by: 'signature' } },
      bodyLimit: 1024 * 1024,
      schema: {
        tags: ['agents'],
        summary: `Presence events from a box (up to ${MAX_BATCH} per batch), signed with its key: headers ${HEADER_AGENT}, ${HEADER_TIMESTAMP} (ms), ${HEADER_SIGNATURE}`,
        body: IngestBatch,
        response: {
          202: Type.Object({
            received: Type.Integer(), accepted: Type.Integer(), duplicates: Type.Integer(), discarded: Type.Integer(),
            rejected: Type.Array(Type.Object({ index: Type.Integer(), code: Type.String() })),
            decisions: Type.Array(Decision),
            deliveryIds: Type.Array(Uuid),
          }),
          ...errors(401, 403, 409),
        },
      },
      // Who sent it is checked before what it says: an unsigned or forged request gets 401/403, never a 400.
      preValidation: async (req) => {
        verified.set(req, await uploaders.verify(deps.db, signedParts(req), deps.now()));
      },
    }, async (req, reply) => {
      const agent = verified.get(req)!;
      return reply.code(202).send(await ingestPresence(deps, registry, agent, signedParts(req), req.body));
    });

    signed.get('/ingest/offers', {
      config: { access: { roles: ['agent'], scope: 'own', by: 'signature' } },
      schema: {
        tags: ['agents'],
        summary: 'Sealed offers the box may hand over by Bluetooth to members in its store, under the EIDs their phones may be broadcasting (signed like uploads)',
        response: {
          200: Type.Object({ offers: Type.Array(Type.Object({ eids: Type.Array(Type.String()), sealed: Type.String({ description: 'base64' }), expiresAt: Instant })) }),
          ...errors(401, 403, 409),
        },
      },
    }, async (req) => {
      const now = deps.now();
      const agent = await deps.db.transaction((tx) => authenticateAgent(tx, signedParts(req), now));
      return { offers: await sealedOffersForStore(deps.db, registry, agent.storeId, now) };
    });
  });

  app.get('/members/:id/ble-identity', {
    config: { access: { roles: ['member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['agents'],
      summary: "The member's Eddystone-EID identity key for their app; exists only while ble_detection is granted",
      params: IdParams,
      response: {
        200: Type.Object({ identityKey: Type.String({ description: '16 bytes, base64' }), rotationExponent: Type.Integer(), issuedAt: Instant }),
        ...errors(404, 409),
      },
    },
  }, async (req) => {
    await getMember(deps.db, req.params.id);
    const key = await readIdentityKey(deps.db, req.params.id);
    if (!key) throw new AppError('CONSENT_REQUIRED', 'no identity key: the member does not grant ble_detection');
    return key;
  });
};

export default agents;
