// Inbound SMS from Twilio (keywords: STOP, START/YES, HELP). Only requests signed with our auth token for our
// public URL are believed; anything else is refused with 403 and changes nothing.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import twilio from 'twilio';
import { Type } from 'typebox';
import type { FastifyRequest } from 'fastify';
import { handleInboundSms } from '../domain/consent-changes.js';
import { applyStatusCallback } from '../domain/deliveries.js';
import { mayText } from '../sms/countries.js';
import { STATUS_CALLBACK_PATH } from '../sms/open.js';
import type { Deps } from '../domain/deps.js';
import { AppError } from '../errors.js';
import { Strict, errors } from '../http/schemas.js';

const escapeXml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
const twiml = (reply: string | null) =>
  `<?xml version="1.0" encoding="UTF-8"?><Response>${reply ? `<Message>${escapeXml(reply)}</Message>` : ''}</Response>`;

/** The webhook's form parameters, if Twilio signed them for our public URL; otherwise 403 and nothing changes. */
function signedParams(deps: Deps, req: FastifyRequest): Record<string, string> {
  const params = (req.body ?? {}) as Record<string, string>;
  const signature = req.headers['x-twilio-signature'];
  const token = deps.config.twilio?.authToken;
  const url = `${deps.config.publicUrl}${req.url}`;
  if (!token || typeof signature !== 'string' || !twilio.validateRequest(token, signature, url, params)) {
    throw new AppError('SIGNATURE_INVALID', 'X-Twilio-Signature is missing or does not match this request');
  }
  return params;
}

const inbound: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.post(STATUS_CALLBACK_PATH, {
    // Not rate limited: Twilio does not retry a refused callback, and a burst of a campaign's statuses is normal.
    config: { access: { public: "Twilio's status callbacks, checked by their X-Twilio-Signature" }, rateLimit: false },
    schema: {
      tags: ['deliveries'],
      summary: "Twilio status callback for an SMS we sent (signed): moves the delivery forward, never back",
      response: { ...errors(403) },
    },
  }, async (req, reply) => {
    const params = signedParams(deps, req);
    const { MessageSid: messageSid, MessageStatus: status, ErrorCode: errorCode } = params;
    if (!messageSid || !status) throw new AppError('VALIDATION_FAILED', 'body/MessageSid and body/MessageStatus are required');
    // The signed URL carries our delivery id (?d=), which finds a delivery whose provider id is not stored yet.
    const reference = typeof (req.query as Record<string, unknown>).d === 'string' ? (req.query as Record<string, string>).d : undefined;
    await applyStatusCallback(deps, { messageSid, status, ...(errorCode ? { errorCode } : {}), ...(reference ? { reference } : {}) }, deps.now());
    return reply.code(204).send(null as never);
  });

  app.post('/webhooks/twilio/sms', {
    // Not rate limited: a member's STOP must never be dropped.
    config: { access: { public: "Twilio's inbound SMS, checked by its X-Twilio-Signature" }, rateLimit: false },
    schema: {
      tags: ['consent'],
      summary: 'Twilio inbound SMS webhook (form-encoded, signed with X-Twilio-Signature); answers with TwiML',
      response: { ...errors(403) },
    },
  }, async (req, reply) => {
    const params = signedParams(deps, req);
    const { MessageSid: messageSid, From: from, Body: body } = params;
    if (!messageSid || !from) throw new AppError('VALIDATION_FAILED', 'body/MessageSid and body/From are required');
    const text = await handleInboundSms(deps, { messageSid, from, body: body ?? '' }, deps.now());
    // TwiML is XML, not JSON: sent as the string it is. A reply is an SMS too: none outside SMS_COUNTRIES.
    return reply.type('text/xml').send(twiml(mayText(deps.config.smsCountries, from) ? text : null) as never);
  });

  // The embedded default's stand-in for a member's phone: replies go to the outbox like every SMS there.
  if (deps.sms.kind === 'outbox') {
    app.post('/dev/sms/inbound', {
      config: { access: { roles: ['administrator'], scope: 'none' } },
      schema: {
        tags: ['consent'],
        summary: 'Embedded default only: simulate an SMS from a member (e.g. YES, STOP); the reply goes to the outbox',
        body: Strict({ from: Type.String({ minLength: 1, maxLength: 20 }), body: Type.String({ maxLength: 1600 }) }),
        response: { 200: Type.Object({ reply: Type.Union([Type.String(), Type.Null()]) }) },
      },
    }, async (req) => {
      const text = await handleInboundSms(deps, { messageSid: `dev-${crypto.randomUUID()}`, ...req.body }, deps.now());
      if (text && mayText(deps.config.smsCountries, req.body.from)) await deps.sms.send({ to: req.body.from, body: text });
      return { reply: text };
    });
  }
};

export default inbound;
