import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { changeConsent } from '../domain/consent-changes.js';
import { consentHistory, consentRecordView, consentStateView } from '../domain/consents.js';
import { consentState } from '../../consent/index.js';
import type { Deps } from '../domain/deps.js';
import { getMember, isTimeZone, updateMemberFacts, type createMember } from '../domain/members.js';
import { confirmSignup, createMemberWithAppToken, startSignup } from '../domain/signups.js';
import { pastInstant } from '../domain/time.js';
import { invalid } from '../errors.js';
import { principalOf } from '../http/access.js';
import { idempotency, IdempotencyHeaders } from '../http/idempotency.js';
import { memberDecisions, memberRecord } from '../domain/record.js';
import {
  ConsentSource, ConsentState, Decision, IdParams, Instant, Nullable, Phone, Purpose, Strict, TimeZone, Uuid, errors,
} from '../http/schemas.js';

const Member = Type.Object({
  id: Uuid,
  externalRef: Nullable(Type.String()),
  phone: Nullable(Type.String()),
  timeZone: Type.String(),
  tier: Nullable(Type.String()),
  tags: Type.Array(Type.String()),
  homeStoreId: Nullable(Uuid),
  createdAt: Instant,
});

const MemberCreated = Type.Object({
  ...Member.properties,
  appToken: Type.String({ description: "The member's app token (an API key of role member, for `Authorization: Bearer`). Shown this once" }),
});

const Facts = {
  tier: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 50, description: 'Value tier, e.g. gold' }))),
  tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { maxItems: 50, description: 'Segment tags' })),
  homeStoreId: Type.Optional(Nullable(Uuid)),
};

const CreateMember = Strict({
  phone: Type.Optional(Phone),
  timeZone: Type.Optional(TimeZone),
  externalRef: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "The retailer's own customer id" })),
  ...Facts,
});

const ConsentInput = Strict({
  purpose: Purpose,
  action: Type.Union([Type.Literal('grant'), Type.Literal('withdraw')]),
  source: ConsentSource,
  noticeVersion: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Id and version of the notice text the member saw' })),
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  occurredAt: Type.Optional(Instant),
});

const ConsentEvent = Type.Object({
  id: Type.Integer(),
  purpose: Type.String(),
  action: Type.String(),
  source: Type.String(),
  noticeVersion: Nullable(Type.String()),
  actor: Nullable(Type.String()),
  ip: Nullable(Type.String()),
  userAgent: Nullable(Type.String()),
  occurredAt: Instant,
  recordedAt: Instant,
});

const OfferRecord = Type.Object({
  couponCode: Type.String(),
  qrPayload: Type.String({ description: 'For a QR code or barcode; the till may send it as the code' }),
  campaignId: Uuid,
  campaignName: Type.String(),
  title: Type.String(),
  issuedAt: Instant,
  expiresAt: Instant,
  delivery: Nullable(Type.Object({ id: Uuid, channel: Type.String(), status: Type.String(), statusReason: Nullable(Type.String()) })),
  redemption: Nullable(Type.Object({ id: Uuid, storeId: Uuid, tillRef: Nullable(Type.String()), amount: Nullable(Type.Number()), redeemedAt: Instant })),
  decision: Type.Object(
    { id: Uuid, occurredAt: Instant, trigger: Type.String(), outcome: Decision.properties.outcome, checkinId: Nullable(Uuid) },
    { description: 'The decision that issued the coupon' },
  ),
  visit: Nullable(Type.Object(
    {
      id: Uuid, storeId: Nullable(Uuid), geofenceId: Nullable(Uuid), sources: Type.Array(Type.String()), startedAt: Instant, endedAt: Nullable(Instant),
    },
    { description: 'The visit the member was on at the decision, if presence recorded one' },
  )),
  campaignVersion: Type.Object({ version: Type.Integer(), name: Type.String() }, { description: 'The campaign version the decision used' }),
});

const RfmStatus = Type.Union([
  Type.Object({
    status: Type.Literal('profiled'),
    profile: Type.Object({
      recency: Type.Integer(), frequency: Type.Integer(), monetary: Type.Integer(),
      segment: Type.String(), valueTier: Type.String(),
      daysSinceLastRedemption: Nullable(Type.Integer()), redemptions: Type.Integer(), amount: Type.Number(),
    }),
  }),
  Type.Object({ status: Type.Literal('withheld'), reason: Type.String({ description: 'Why there is no profile: profiling consent CONSENT_MISSING or CONSENT_WITHDRAWN' }) }),
]);

const MemberRecord = Type.Object({
  member: Member,
  consents: ConsentState,
  rfm: RfmStatus,
  offerSummary: Type.Object({
    received: Type.Integer(), sent: Type.Integer(), delivered: Type.Integer(), redeemed: Type.Integer(), redeemedAmount: Type.Number(),
  }),
  offers: Type.Array(OfferRecord),
  recentDecisions: Type.Array(Decision),
});

const members: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  // The member and their first app token are made together.
  const withAppToken = (input: Parameters<typeof createMember>[1]) => deps.db.transaction((tx) => createMemberWithAppToken(tx, input));

  app.post('/members', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['members'],
      summary: "Create a member (customer record), with the facts audiences use; the answer holds the member's app token, shown once",
      body: CreateMember,
      response: { 201: MemberCreated, ...errors(409) },
    },
  }, async (req, reply) => reply.code(201).send(await withAppToken(req.body)));

  app.post('/members/signup', {
    config: { access: { public: "the members' app signs a member up (rate limited); facts are the operator's to set" } },
    schema: {
      tags: ['members'],
      summary: "A member signs up from the app. Without a phone: the member and their app token at once (201). With one: a code goes to it by SMS (202), and POST /members/signup/confirm finishes; the answer is the same whether or not the number is enrolled already",
      body: Strict({ phone: Type.Optional(Phone), timeZone: Type.Optional(TimeZone) }),
      response: {
        201: MemberCreated,
        202: Type.Object({ signupId: Uuid, expiresAt: Instant }),
        ...errors(409),
      },
    },
  }, async (req, reply) => {
    const timeZone = req.body.timeZone ?? 'UTC';
    if (!isTimeZone(timeZone)) throw invalid({ field: 'body/timeZone', problem: `"${timeZone}" is not an IANA time zone` });
    if (req.body.phone === undefined) return reply.code(201).send(await withAppToken({ timeZone }));
    return reply.code(202).send(await startSignup(deps, { phone: req.body.phone, timeZone }, deps.now()));
  });

  app.post('/members/signup/confirm', {
    config: { access: { public: 'the app finishes a sign-up with the code its member received (rate limited, 5 tries per code)' } },
    schema: {
      tags: ['members'],
      summary: "Finish a sign-up with the code sent to the phone: the member and their app token, shown once",
      body: Strict({ signupId: Uuid, code: Type.String({ pattern: '^[0-9]{6}$' }) }),
      response: { 201: MemberCreated, ...errors(409) },
    },
  }, async (req, reply) => reply.code(201).send(await confirmSignup(deps.db, req.body, deps.now())));

  app.patch('/members/:id', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['members'],
      summary: 'Change the facts audiences use: tier, segment tags, home store',
      params: IdParams,
      body: Strict(Facts),
      response: { 200: Member, ...errors(404) },
    },
  }, async (req) => updateMemberFacts(deps.db, req.params.id, req.body));

  app.get('/members/:id', {
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['members'],
      summary: "The member's record: consents, RFM profile (with profiling consent), offers with their attribution chain, recent decisions",
      params: IdParams,
      response: { 200: MemberRecord, ...errors(404) },
    },
  }, async (req) => memberRecord(deps.db, req.params.id, deps.now()));

  app.post('/members/:id/consents', {
    ...idempotency(deps),
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['consent'],
      summary: 'Record a grant or withdrawal of one purpose, with its evidence; marketing SMS is granted once the member replies YES',
      params: IdParams,
      headers: IdempotencyHeaders,
      body: ConsentInput,
      response: {
        201: Type.Object({ event: ConsentEvent, consents: ConsentState }),
        200: Type.Object({ event: Type.Null({ description: 'Nothing recorded: the purpose was already granted and confirmed' }), consents: ConsentState }),
        ...errors(404, 409),
      },
    },
  }, async (req, reply) => {
    const now = deps.now();
    // An SMS keyword is the member's own text, taken only from Twilio's signed webhook: over HTTP it would skip
    // the YES that proves the phone is theirs.
    if (req.body.source === 'sms_keyword') {
      throw invalid({ field: 'body/source', problem: 'sms_keyword is recorded from the member\'s SMS reply only' });
    }
    // A member speaks for themselves, now, from their app or the web: no backdating, no other actor or source.
    const byMember = principalOf(req).role === 'member';
    if (byMember && !['app', 'web'].includes(req.body.source)) {
      throw invalid({ field: 'body/source', problem: 'a member records consent from the app or the web' });
    }
    const occurredAt = req.body.occurredAt && !byMember ? pastInstant(req.body.occurredAt, now, 'body/occurredAt') : now;
    const { event, consents } = await changeConsent(deps, req.params.id, {
      ...req.body,
      ...(byMember ? { actor: undefined } : {}),
      occurredAt,
      ip: req.ip,
      userAgent: req.headers['user-agent'],
    });
    if (!event) return reply.code(200).send({ event: null, consents: consentStateView(consents) });
    return reply.code(201).send({ event: consentRecordView(event), consents: consentStateView(consents) });
  });

  app.get('/members/:id/consents', {
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['consent'],
      summary: "The member's current consents and the full history of events behind them",
      params: IdParams,
      response: { 200: Type.Object({ consents: ConsentState, history: Type.Array(ConsentEvent) }), ...errors(404) },
    },
  }, async (req) => {
    await getMember(deps.db, req.params.id);
    const history = await consentHistory(deps.db, req.params.id);
    return { consents: consentStateView(consentState(history)), history: history.map(consentRecordView) };
  });

  app.get('/members/:id/decisions', {
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['decisions'],
      summary: 'Why the member did or did not get an offer: decisions with their traces, newest first',
      params: IdParams,
      querystring: Strict({
        from: Type.Optional(Instant),
        to: Type.Optional(Instant),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
      }),
      response: { 200: Type.Object({ decisions: Type.Array(Decision) }), ...errors(404) },
    },
  }, async (req) => ({
    decisions: await memberDecisions(deps.db, req.params.id, {
      from: req.query.from ? new Date(req.query.from) : null,
      to: req.query.to ? new Date(req.query.to) : null,
      limit: req.query.limit ?? 50,
    }),
  }));
};

export default members;
