// Web Push for the member's app: the key to subscribe with, and the member's subscribed devices.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Deps } from '../domain/deps.js';
import { listSubscriptions, pushCounters, registerSubscription, removeSubscription } from '../domain/push-subscriptions.js';
import { AppError } from '../errors.js';
import { idempotency, IdempotencyHeaders } from '../http/idempotency.js';
import { IdParams, Instant, Nullable, Strict, Uuid, errors } from '../http/schemas.js';

const Base64Url = (description: string, maxLength: number) => Type.String({ minLength: 1, maxLength, description });

const SubscriptionInput = Strict(
  {
    endpoint: Type.String({ minLength: 1, maxLength: 2048, description: "The push service's URL for this device" }),
    keys: Strict({
      p256dh: Base64Url("The device's P-256 public key, base64url (65 bytes)", 200),
      auth: Base64Url("The device's auth secret, base64url (16 bytes)", 100),
    }),
    expirationTime: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 8_640_000_000_000_000, description: 'ms since the epoch' }))),
  },
  "The browser's PushSubscription as its toJSON() gives it",
);

const Subscription = Type.Object({
  id: Uuid,
  endpoint: Type.String(),
  expiresAt: Nullable(Instant),
  createdAt: Instant,
  lastSuccessAt: Nullable(Instant),
});

const SubscriptionParams = Strict({ id: Uuid, subscriptionId: Uuid });

const push: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.get('/push/vapid-public-key', {
    config: { access: { public: "the VAPID public key every browser needs to subscribe" } },
    schema: {
      tags: ['push'],
      summary: "The gateway's VAPID public key: the member's app passes it as applicationServerKey to pushManager.subscribe()",
      response: { 200: Type.Object({ publicKey: Type.String({ description: 'Uncompressed P-256 point, base64url' }) }), ...errors(503) },
    },
  }, async () => {
    if (!deps.push) throw new AppError('NOT_READY', 'push is not available in this process');
    return { publicKey: deps.push.vapidPublicKey };
  });

  app.post('/members/:id/push-subscriptions', {
    ...idempotency(deps),
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['push'],
      summary: "Register one of the member's devices for push offers; the same endpoint again changes nothing but its keys",
      params: IdParams,
      headers: IdempotencyHeaders,
      body: SubscriptionInput,
      response: { 201: Subscription, 200: Subscription, ...errors(404, 409) },
    },
  }, async (req, reply) => {
    const { subscription, created } = await registerSubscription(deps.db, deps.config.push, req.params.id, req.body);
    return reply.code(created ? 201 : 200).send(subscription);
  });

  app.get('/members/:id/push-subscriptions', {
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['push'],
      summary: "The member's subscribed devices",
      params: IdParams,
      response: { 200: Type.Object({ subscriptions: Type.Array(Subscription) }), ...errors(404) },
    },
  }, async (req) => ({ subscriptions: await listSubscriptions(deps.db, req.params.id) }));

  app.delete('/members/:id/push-subscriptions/:subscriptionId', {
    ...idempotency(deps),
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['push'],
      summary: 'Remove a device: nothing more is pushed to it',
      params: SubscriptionParams,
      headers: IdempotencyHeaders,
      response: { 204: Type.Null(), ...errors(404, 409) },
    },
  }, async (req, reply) => {
    await removeSubscription(deps.db, req.params.id, req.params.subscriptionId);
    return reply.code(204).send(null);
  });

  app.get('/admin/push-counters', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['push'],
      summary: 'Push subscriptions removed because their push service said they are gone (404, 410), per day',
      response: { 200: Type.Object({ counters: Type.Array(Type.Object({ day: Type.String(), kind: Type.String(), count: Type.Integer() })) }) },
    },
  }, async () => ({ counters: await pushCounters(deps.db) }));
};

export default push;
