// Merchants, their tills, and API keys: onboarding is an administrator's; each key holder can rotate its own key.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { getApiKey, issueApiKey, listApiKeys, revokeApiKey, rotateApiKey, type KeyVerifier } from '../domain/api-keys.js';
import type { Deps } from '../domain/deps.js';
import { invalid } from '../errors.js';
import { createMerchant, createTill, getMerchant, listMerchants, merchantStores, storeTills } from '../domain/merchants.js';
import { merchantScope, principalOf } from '../http/access.js';
import { IdParams, Instant, Nullable, Strict, Uuid, errors } from '../http/schemas.js';

const Merchant = Type.Object({
  id: Uuid, kind: Type.Union([Type.Literal('brand'), Type.Literal('partner')]), name: Type.String(), createdAt: Instant,
});
const MerchantDetail = Type.Object({
  ...Merchant.properties,
  stores: Type.Array(Type.Object({ id: Uuid, name: Type.String(), timeZone: Type.String() })),
});
const Till = Type.Object({ id: Uuid, storeId: Uuid, name: Type.String(), createdAt: Instant });

const KeyRole = Type.Union([Type.Literal('administrator'), Type.Literal('marketer'), Type.Literal('merchant'), Type.Literal('member')]);
const ApiKey = Type.Object({
  id: Uuid, role: KeyRole, name: Type.String(), merchantId: Nullable(Uuid), memberId: Nullable(Uuid),
  createdAt: Instant, expiresAt: Nullable(Instant), revokedAt: Nullable(Instant), replacedBy: Nullable(Uuid),
});
const IssuedKey = Type.Object({
  key: Type.String({ description: 'The key itself, for `Authorization: Bearer <key>`. Shown this once: only its hash is kept' }),
  apiKey: ApiKey,
});
const Grace = Strict({
  graceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 86_400, default: 3600, description: 'How long the old key keeps working (default an hour)' })),
});

const SelfGrace = Strict({
  graceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, default: 3600, description: 'How long the old key keeps working (default an hour, at most a day)' })),
});

const admin = ['administrator'] as const;
// A rotation may come without a body: the grace period has a default.
const emptyBodyIsEmptyObject = async (req: { body: unknown }) => {
  req.body ??= {};
};

const access: FastifyPluginAsyncTypebox<{ deps: Deps; verifier: KeyVerifier }> = async (app, { deps, verifier }) => {
  app.post('/merchants', {
    config: { access: { roles: admin, scope: 'none' } },
    schema: {
      tags: ['merchants'],
      summary: 'Onboard a merchant: a brand (runs campaigns) or a partner (publishes alliance offers)',
      body: Strict({ kind: Type.Union([Type.Literal('brand'), Type.Literal('partner')]), name: Type.String({ minLength: 1, maxLength: 200 }) }),
      response: { 201: Merchant, ...errors() },
    },
  }, async (req, reply) => reply.code(201).send(await createMerchant(deps.db, req.body)));

  app.get('/merchants', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: 'own' } },
    schema: { tags: ['merchants'], summary: 'Merchants: all for an administrator, its own for anyone else', response: { 200: Type.Object({ merchants: Type.Array(Merchant) }) } },
  }, async (req) => ({ merchants: await listMerchants(deps.db, merchantScope(req)) }));

  app.get('/merchants/:id', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: { kind: 'merchant', from: 'params.id' } } },
    schema: { tags: ['merchants'], summary: 'A merchant with its stores', params: IdParams, response: { 200: MerchantDetail, ...errors(404) } },
  }, async (req) => ({ ...await getMerchant(deps.db, req.params.id), stores: await merchantStores(deps.db, req.params.id) }));

  app.post('/stores/:id/tills', {
    config: { access: { roles: admin, scope: 'none' } },
    schema: {
      tags: ['merchants'],
      summary: "Register a till at a store; redemptions may name it",
      params: IdParams,
      body: Strict({ name: Type.String({ minLength: 1, maxLength: 100 }) }),
      response: { 201: Till, ...errors(404, 409) },
    },
  }, async (req, reply) => reply.code(201).send(await createTill(deps.db, req.params.id, req.body.name)));

  app.get('/stores/:id/tills', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: { kind: 'store', from: 'params.id' } } },
    schema: { tags: ['merchants'], summary: "A store's tills", params: IdParams, response: { 200: Type.Object({ tills: Type.Array(Till) }), ...errors(404) } },
  }, async (req) => ({ tills: await storeTills(deps.db, req.params.id) }));

  app.post('/api-keys', {
    config: { access: { roles: admin, scope: 'none' } },
    schema: {
      tags: ['access'],
      summary: 'Issue an API key: administrator; marketer (of a brand); merchant (its tills, offers and results); member (an app token)',
      body: Strict({
        role: KeyRole,
        name: Type.String({ minLength: 1, maxLength: 100, description: 'Who or what holds it, e.g. "till 3, Main St"' }),
        merchantId: Type.Optional(Uuid),
        memberId: Type.Optional(Uuid),
        expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'When it stops opening anything: an instant in the future' })),
      }),
      response: { 201: IssuedKey, ...errors(404) },
    },
  }, async (req, reply) => {
    const expiresAt = req.body.expiresAt ? new Date(req.body.expiresAt) : null;
    // A key born expired would open nothing: its caller meant another instant.
    if (expiresAt && expiresAt <= deps.now()) throw invalid({ field: 'body/expiresAt', problem: 'must be in the future' });
    return reply.code(201).send(await issueApiKey(deps.db, { ...req.body, expiresAt }));
  });

  app.get('/api-keys', {
    config: { access: { roles: admin, scope: 'none' } },
    schema: {
      tags: ['access'],
      summary: 'Keys (never their secrets)',
      querystring: Strict({ merchantId: Type.Optional(Uuid), memberId: Type.Optional(Uuid) }),
      response: { 200: Type.Object({ apiKeys: Type.Array(ApiKey) }) },
    },
  }, async (req) => ({ apiKeys: await listApiKeys(deps.db, req.query) }));

  app.get('/api-keys/:id', {
    config: { access: { roles: admin, scope: 'none' } },
    schema: { tags: ['access'], summary: 'A key (never its secret)', params: IdParams, response: { 200: ApiKey, ...errors(404) } },
  }, async (req) => getApiKey(deps.db, req.params.id));

  app.post('/api-keys/:id/revoke', {
    config: { access: { roles: admin, scope: 'none' } },
    schema: { tags: ['access'], summary: 'Revoke a key and every key that replaced it: refused from now on (by every gateway within 5 s)', params: IdParams, response: { 200: ApiKey, ...errors(404) } },
  }, async (req) => {
    const { apiKey, revokedIds } = await revokeApiKey(deps.db, req.params.id, deps.now());
    for (const id of revokedIds) verifier.forget(id);
    return apiKey;
  });

  app.post('/api-keys/:id/rotate', {
    config: { access: { roles: admin, scope: 'none' } },
    preValidation: emptyBodyIsEmptyObject,
    schema: {
      tags: ['access'],
      summary: 'A successor with the same role and scope, shown once; the old key works for the grace period',
      params: IdParams,
      body: Grace,
      response: { 201: IssuedKey, ...errors(404, 409) },
    },
  }, async (req, reply) => {
    const issued = await rotateApiKey(deps.db, req.params.id, req.body.graceSeconds ?? 3600, deps.now());
    verifier.forget(req.params.id);
    return reply.code(201).send(issued);
  });

  app.post('/api-keys/current/rotate', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant', 'member'], scope: 'own' } },
    preValidation: emptyBodyIsEmptyObject,
    schema: {
      tags: ['access'],
      summary: 'Rotate the key this request was made with; the old key works for the grace period (at most a day here)',
      body: SelfGrace,
      response: { 201: IssuedKey, ...errors(409) },
    },
  }, async (req, reply) => {
    const { credentialId } = principalOf(req);
    const issued = await rotateApiKey(deps.db, credentialId, req.body.graceSeconds ?? 3600, deps.now());
    verifier.forget(credentialId);
    return reply.code(201).send(issued);
  });
};

export default access;
