import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { redeemCoupon } from '../domain/coupons.js';
import type { Deps } from '../domain/deps.js';
import { Instant, Nullable, Strict, Uuid, errors } from '../http/schemas.js';

const Redeem = Strict({
  code: Type.String({ minLength: 4, maxLength: 32, description: 'The coupon code as shown; case, spaces and dashes are ignored' }),
  storeId: Uuid,
  tillRef: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "The till's own reference for the sale" })),
});

const Redemption = Type.Object({
  id: Uuid,
  couponCode: Type.String(),
  memberId: Uuid,
  campaignId: Uuid,
  storeId: Uuid,
  tillRef: Nullable(Type.String()),
  redeemedAt: Instant,
});

const redemptions: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.post('/redemptions', {
    schema: {
      tags: ['coupons'],
      summary: 'Redeem a coupon at a till; a coupon redeems once',
      body: Redeem,
      response: { 201: Redemption, ...errors(404, 409) },
    },
  }, async (req, reply) => reply.code(201).send(await redeemCoupon(deps.db, req.body, deps.now())));
};

export default redemptions;
