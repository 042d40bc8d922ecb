import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { voidRedemption } from '../domain/coupons.js';
import { RedemptionBatches } from '../domain/redemption-batches.js';
import type { Deps } from '../domain/deps.js';
import { merchantScope } from '../http/access.js';
import { IdParams, Instant, Nullable, Strict, Uuid, errors } from '../http/schemas.js';

const Redeem = Strict({
  code: Type.String({ minLength: 4, maxLength: 32, description: 'The coupon code as shown (or the QR payload COUPON:...); case, spaces and dashes are ignored' }),
  storeId: Uuid,
  tillId: Type.Optional(Type.String({ format: 'uuid', description: 'A registered till of the store (POST /stores/:id/tills)' })),
  tillRef: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Which till' })),
  transactionId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "The till's id for the sale: unique per store" })),
  requestId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Send the same id again after a timeout: the first answer comes back' })),
  amount: Type.Optional(Type.Number({ minimum: 0, maximum: 1e9, description: "What the sale was worth, in the programme's currency (e.g. 12.50); rounded to cents. Used by reports and RFM" })),
});

const Redemption = Type.Object({
  id: Uuid,
  couponCode: Type.String(),
  memberId: Uuid,
  campaignId: Uuid,
  storeId: Uuid,
  tillId: Nullable(Uuid),
  tillRef: Nullable(Type.String()),
  transactionId: Nullable(Type.String()),
  requestId: Nullable(Type.String()),
  amount: Nullable(Type.Number()),
  redeemedAt: Instant,
});

const Void = Type.Object({ id: Uuid, redemptionId: Uuid, couponCode: Type.String(), storeId: Uuid, reason: Nullable(Type.String()), voidedAt: Instant });

const redemptions: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  // Tills' requests that arrive together are redeemed together, in one statement (redemption-batches.ts).
  const batches = new RedemptionBatches(deps.db);
  app.post('/redemptions', {
    // Scoped inside the redemption's own statement (the caller's store and till), not by queries before it: a
    // till's request costs its share of one round trip.
    config: { access: { roles: ['administrator', 'merchant'], scope: 'own' } },
    schema: {
      tags: ['coupons'],
      summary: "Redeem a coupon at a till; a coupon redeems once, at its merchant's stores (another merchant's coupon is COUPON_NOT_FOUND)",
      body: Redeem,
      response: { 201: Redemption, ...errors(404, 409) },
    },
  }, async (req, reply) => reply.code(201).send(await batches.redeem(req.body, deps.now(), merchantScope(req))));

  app.post('/redemptions/:id/void', {
    config: { access: { roles: ['administrator', 'merchant'], scope: [{ kind: 'redemption', from: 'params.id' }, { kind: 'store', from: 'body.storeId' }] } },
    schema: {
      tags: ['coupons'],
      summary: 'Reverse a redemption at the store that made it, within the void window; recorded as a new row, the coupon is live again',
      params: IdParams,
      body: Strict({ storeId: Uuid, reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }),
      response: { 201: Void, ...errors(404, 409) },
    },
  }, async (req, reply) => reply.code(201).send(await voidRedemption(deps.db, req.params.id, req.body, deps.now(), deps.config.voidWindowMinutes)));
};

export default redemptions;
