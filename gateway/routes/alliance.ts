// Alliance offers: partners publish them, brands' marketers include them in campaigns, partners redeem them at
// their tills, and both read the settlement.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { createOffer, getOffer, listOffers, withdrawOffer } from '../domain/alliance.js';
import type { Deps } from '../domain/deps.js';
import { merchantSettlement, settlement, settlementCsv, type Settlement as SettlementData } from '../domain/settlement.js';
import { AppError, invalid } from '../errors.js';
import { merchantScope, principalOf } from '../http/access.js';
import { FreeText, IdParams, Instant, Nullable, Strict, Uuid, errors } from '../http/schemas.js';

const Money = Type.Number({ minimum: 0, maximum: 10_000_000, description: "In the programme's currency, e.g. 5.50; whole cents" });

const AllianceOffer = Type.Object({
  id: Uuid,
  merchantId: Type.String({ format: 'uuid', description: 'The partner that publishes it' }),
  title: Type.String(),
  message: Type.String(),
  faceValue: Type.Number(),
  budget: Type.Object({ maxIssued: Nullable(Type.Integer()), maxRedemptions: Nullable(Type.Integer()) }),
  validFrom: Instant,
  validTo: Instant,
  validDays: Type.Integer(),
  storeIds: Type.Array(Uuid),
  status: Type.Union([Type.Literal('published'), Type.Literal('withdrawn')]),
  withdrawnAt: Nullable(Instant),
  createdAt: Instant,
});

const Count = Type.Integer({ minimum: 1, maximum: 1_000_000_000 });
const CreateOffer = Strict({
  merchantId: Type.Optional(Type.String({ format: 'uuid', description: "The partner (administrators); a merchant key publishes its own merchant's" })),
  title: Type.String({ minLength: 1, maxLength: 100 }),
  message: FreeText({ minLength: 1, maxLength: 300, description: 'SMS text; {code} and {expires} are filled in. The programme name and opt-out line are added.' }),
  faceValue: Money,
  budget: Type.Optional(Strict({
    maxIssued: Type.Optional(Count),
    maxRedemptions: Type.Optional(Count),
  }, 'At most so many coupons issued, across every brand; at most so many live redemptions')),
  validFrom: Instant,
  validTo: Type.String({ format: 'date-time', description: 'No coupon is issued from then on, and none issued lives past it' }),
  validDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365, description: 'How long a coupon lives (never past validTo); default COUPON_VALID_DAYS' })),
  storeIds: Type.Optional(Type.Array(Uuid, { minItems: 1, maxItems: 1000, description: "Where it is redeemed: the partner's own stores; default all of them" })),
});

const Totals = {
  issued: Type.Integer({ minimum: 0 }),
  sent: Type.Integer({ minimum: 0 }),
  delivered: Type.Integer({ minimum: 0 }),
  redeemed: Type.Integer({ minimum: 0 }),
  faceValueRedeemed: Type.Number(),
};
const Settlement = Type.Object({
  period: Type.Object({ from: Nullable(Instant), to: Nullable(Instant) }),
  scope: Type.Object({ allianceOfferId: Type.Optional(Uuid), partnerId: Type.Optional(Uuid), brandId: Type.Optional(Uuid) }),
  lines: Type.Array(Type.Object({
    allianceOfferId: Uuid,
    offerTitle: Type.String(),
    partnerId: Uuid,
    brandId: Uuid,
    brandName: Type.String(),
    storeId: Nullable(Uuid),
    storeName: Nullable(Type.String()),
    faceValue: Type.Number(),
    ...Totals,
  })),
  totals: Type.Object(Totals),
});

const SettlementQuery = Strict({
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Start of the period (inclusive), an ISO 8601 instant' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'End of the period (exclusive), an ISO 8601 instant' })),
  format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')], { description: 'csv (or Accept: text/csv): one row per line and a totals row' })),
});

const PERIOD = 'issued, sent and delivered count coupons issued in [from, to); redeemed and faceValueRedeemed count live redemptions made in it';
const settlementResponse = {
  200: {
    description: `Lines per alliance offer x issuing brand x redeeming store (storeId null: the issue figures), and totals. ${PERIOD}`,
    content: { 'application/json': { schema: Settlement }, 'text/csv': { schema: Type.String() } },
  },
  ...errors(404),
};

function send(req: FastifyRequest, reply: FastifyReply, s: SettlementData, name: string) {
  const q = req.query as { format?: 'json' | 'csv' };
  const csv = q.format === 'csv' || (q.format === undefined && /\btext\/csv\b/.test(req.headers.accept ?? ''));
  if (!csv) return reply.type('application/json').send(s);
  return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}.csv"`).send(settlementCsv(s));
}

const alliance: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  const tags = ['alliance'];
  const ownerRoles = ['administrator', 'merchant'] as const;
  const offerScope = { kind: 'alliance_offer', from: 'params.id' } as const;

  app.post('/alliance-offers', {
    config: { access: { roles: ownerRoles, scope: 'own' } },
    schema: {
      tags,
      summary: "Publish a partner's offer for brands' campaigns to hand out; redeemed at the partner's stores",
      body: CreateOffer,
      response: { 201: AllianceOffer, ...errors(404, 409) },
    },
  }, async (req, reply) => {
    const own = merchantScope(req);
    if (own && req.body.merchantId && req.body.merchantId !== own) {
      throw new AppError('MERCHANT_NOT_FOUND', `merchant ${req.body.merchantId} does not exist`);
    }
    const merchantId = own ?? req.body.merchantId;
    if (!merchantId) throw invalid({ field: 'body/merchantId', problem: 'is required from an administrator: the partner that publishes the offer' });
    return reply.code(201).send(await createOffer(deps.db, merchantId, req.body, deps.config.couponValidDays, deps.now()));
  });

  app.get('/alliance-offers', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: 'own' } },
    schema: {
      tags,
      summary: "Alliance offers: all (administrator), a partner's own (merchant), or those published and valid now (marketer, to include in campaigns)",
      response: { 200: Type.Object({ allianceOffers: Type.Array(AllianceOffer) }) },
    },
  }, async (req) => {
    const p = principalOf(req);
    const filter = p.role === 'marketer' ? { availableAt: deps.now() } : { merchantId: merchantScope(req) };
    return { allianceOffers: await listOffers(deps.db, filter) };
  });

  app.get('/alliance-offers/:id', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: offerScope } },
    schema: { tags, summary: 'An alliance offer', params: IdParams, response: { 200: AllianceOffer, ...errors(404) } },
  }, async (req) => getOffer(deps.db, req.params.id));

  app.post('/alliance-offers/:id/withdraw', {
    config: { access: { roles: ownerRoles, scope: offerScope } },
    schema: {
      tags,
      summary: 'Withdraw an offer: no new coupons from now on; coupons already issued stay redeemable until they expire',
      params: IdParams,
      response: { 200: AllianceOffer, ...errors(404, 409) },
    },
  }, async (req) => withdrawOffer(deps.db, req.params.id, deps.now()));

  app.get('/alliance-offers/:id/settlement', {
    config: { access: { roles: ['administrator', 'merchant', 'marketer'], scope: offerScope } },
    schema: {
      tags,
      summary: `An offer's settlement (a brand's marketer: its own brand's lines). ${PERIOD}`,
      params: IdParams,
      querystring: SettlementQuery,
      response: settlementResponse,
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    const brandId = p.role === 'marketer' ? p.merchantId! : undefined;
    const s = await settlement(deps.db, { allianceOfferId: req.params.id, ...(brandId ? { brandId } : {}) }, req.query);
    return send(req, reply, s, `settlement-${req.params.id}`);
  });

  app.get('/merchants/:id/settlement', {
    config: { access: { roles: ['administrator', 'marketer', 'merchant'], scope: { kind: 'merchant', from: 'params.id' } } },
    schema: {
      tags,
      summary: `A merchant's settlement: a partner's, of all its offers; a brand's, of the alliance coupons its campaigns issued. ${PERIOD}`,
      params: IdParams,
      querystring: SettlementQuery,
      response: settlementResponse,
    },
  }, async (req, reply) => send(req, reply, await merchantSettlement(deps.db, req.params.id, req.query), `settlement-${req.params.id}`));
};

export default alliance;
