// Signed routes check a signature over the exact bytes sent, so they parse JSON themselves and keep the bytes.
import type { FastifyInstance, FastifyRequest } from 'fastify';

const raw = new WeakMap<FastifyRequest, Buffer>();

/** In this (encapsulated) instance, JSON bodies are parsed from bytes that rawBodyOf() gives back. */
export function keepRawJsonBody(app: FastifyInstance, bodyLimit?: number): void {
  app.addContentTypeParser('application/json', { parseAs: 'buffer', ...(bodyLimit ? { bodyLimit } : {}) }, (req, body, done) => {
    raw.set(req, body as Buffer);
    try {
      done(null, JSON.parse((body as Buffer).toString('utf8')));
    } catch {
      done(Object.assign(new Error('body is not valid JSON'), { code: 'FST_ERR_CTP_INVALID_JSON_BODY', statusCode: 400 }), undefined);
    }
  });
}

/** The bytes of the request's body, as received; empty for a request without one. */
export const rawBodyOf = (req: FastifyRequest): Buffer | string => raw.get(req) ?? '';
