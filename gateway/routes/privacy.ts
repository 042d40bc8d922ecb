import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Deps } from '../domain/deps.js';
import { getMember } from '../domain/members.js';
import { eraseMember, exportMember, purgeExpired } from '../domain/privacy.js';
import { idempotency, IdempotencyHeaders } from '../http/idempotency.js';
import { IdParams, Instant, errors } from '../http/schemas.js';

const privacy: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.get('/members/:id/export', {
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['privacy'],
      summary: 'Everything held about the member, table by table (JSON)',
      params: IdParams,
      response: { 200: Type.Object({}, { additionalProperties: true }), ...errors(404) },
    },
  }, async (req, reply) => {
    const data = await exportMember(deps.db, req.params.id);
    return reply.header('content-disposition', `attachment; filename="member-${req.params.id}.json"`).send(data);
  });

  app.post('/members/:id/erase', {
    ...idempotency(deps),
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['privacy'],
      summary: 'Erase the member: identity and raw presence destroyed, consents withdrawn (proof kept), aggregates kept',
      params: IdParams,
      headers: IdempotencyHeaders,
      response: { 200: Type.Object({ erasedAt: Instant, withdrawn: Type.Array(Type.String()) }), ...errors(404, 409) },
    },
  }, async (req) => {
    const erased = await eraseMember(deps.db, req.params.id, deps.now());
    // The member's app tokens were revoked with the erasure; this gateway stops honouring them at once.
    app.apiKeys.forgetMember(req.params.id);
    return erased;
  });

  app.get('/members/:id/receipts', {
    config: { access: { roles: ['administrator', 'member'], scope: { kind: 'member', from: 'params.id' } } },
    schema: {
      tags: ['privacy'],
      summary: 'Receipts of every consent change, newest first, as the app shows them',
      params: IdParams,
      response: { 200: Type.Object({ receipts: Type.Array(Type.Object({ id: Type.Integer(), text: Type.String(), createdAt: Instant })) }), ...errors(404) },
    },
  }, async (req) => {
    await getMember(deps.db, req.params.id);
    const rows = await deps.db.query<{ id: number; text: string; created_at: Date }>(
      'SELECT id, text, created_at FROM consent_receipts WHERE member_id = $1 ORDER BY id DESC',
      [req.params.id],
    );
    return { receipts: rows.map((r) => ({ id: r.id, text: r.text, createdAt: r.created_at.toISOString() })) };
  });

  app.post('/admin/retention/run', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['privacy'],
      summary: 'Purge raw check-ins, detections and trace positions older than RETENTION_DAYS now (it also runs hourly)',
      response: { 200: Type.Object({ retentionDays: Type.Integer(), checkins: Type.Integer(), detections: Type.Integer(), traces: Type.Integer() }) },
    },
  }, async () => ({ retentionDays: deps.config.retentionDays, ...(await purgeExpired(deps.db, deps.now(), deps.config.retentionDays)) }));

  app.get('/admin/drops', {
    config: { access: { roles: ['administrator'], scope: 'none' } },
    schema: {
      tags: ['privacy'],
      summary: 'Presence refused at the door for want of consent: counts per day, nothing else is kept',
      response: { 200: Type.Object({ drops: Type.Array(Type.Object({ day: Type.String(), kind: Type.String(), count: Type.Integer() })) }) },
    },
  }, async () => {
    const rows = await deps.db.query<{ day: string; kind: string; count: number }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, kind, count FROM drop_counters ORDER BY day DESC, kind LIMIT 1000`,
    );
    return { drops: rows };
  });
};

export default privacy;
