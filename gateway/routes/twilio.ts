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
import { checkWebhookParams, type FormParams } from '../sms/webhook-params.js';
import type { Deps } from '../domain/deps.js';
import { AppError } from '../errors.js';
import { FreeText, Strict, errors } from '../http/schemas.js';

const escapeXml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
const twiml = (reply: string | null) =>
  `<?xml version="1.0" encoding="UTF-8"?><Response>${reply ? `<Message>${escapeXml(reply)}</Message>` : ''}</Response>`;

const FORM = /^application\/x-www-form-urlencoded\s*(;|$)/i;

/**
 * The webhook's form parameters, if Twilio signed them for our public URL (otherwise 403 and nothing changes)
 * and each has the shape Twilio gives it (otherwise 400: see webhook-params.ts for why a signature is not enough).
 */
function signedParams<R extends string>(deps: Deps, req: FastifyRequest, required: readonly R[]) {
  const signature = req.headers['x-twilio-signature'];
  const twilioConfig = deps.config.twilio;
  if (!twilioConfig || typeof signature !== 'string' || signature === '') {
    throw new AppError('SIGNATURE_INVALID', 'X-Twilio-Signature is missing or does not match this request');
  }
  // Twilio posts forms only; another body (JSON) would be read as parameters it never signed as such.
  if (!FORM.test(req.headers['content-type'] ?? '')) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', "Twilio's webhooks take application/x-www-form-urlencoded bodies only");
  }
  const params = (req.body ?? {}) as FormParams;
  const url = `${deps.config.publicUrl}${req.url}`;
  if (!twilio.validateRequest(twilioConfig.authToken, signature, url, params as Record<string, string>)) {
    throw new AppError('SIGNATURE_INVALID', 'X-Twilio-Signature is missing or does not match this request');
  }
  return checkWebhookParams(params, twilioConfig.accountSid, required);
}

const inbound: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.post(STATUS_CALLBACK_PATH, {
    // Not rate limited: Twilio does not retry a refused callback, and a burst of a campaign's statuses is normal.
    config: { access: { public: "Twilio's status callbacks, checked by their X-Twilio-Signature" }, rateLimit: false },
    schema: {
      tags: ['deliveries'],
      summary: "Twilio status callback for an SMS we sent (signed): moves the delivery forward, never back",
      response: { ...errors(400, 403, 415) },
    },
  }, async (req, reply) => {
    const { MessageSid: messageSid, MessageStatus: status, ErrorCode: errorCode } = signedParams(deps, req, ['MessageSid', 'MessageStatus']);
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
      response: { ...errors(400, 403, 415) },
    },
  }, async (req, reply) => {
    const { MessageSid: messageSid, From: from, Body: body } = signedParams(deps, req, ['MessageSid', 'From']);
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
        body: Strict({ from: Type.String({ minLength: 1, maxLength: 20 }), body: FreeText({ maxLength: 1600 }) }),
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
