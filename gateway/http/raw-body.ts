// Signed routes check a signature over the exact bytes sent, so they keep the body as received, then parse it
// with fastify's own JSON parser (the one every other route uses, prototype-poisoning checks included).
import type { FastifyInstance, FastifyRequest } from 'fastify';

const raw = new WeakMap<FastifyRequest, string>();

/** In this (encapsulated) instance, JSON bodies are kept as received for rawBodyOf(), then parsed as usual. */
export function keepRawJsonBody(app: FastifyInstance, bodyLimit?: number): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string', ...(bodyLimit ? { bodyLimit } : {}) }, (req, body, done) => {
    raw.set(req, body as string);
    parse(req, body as string, done);
  });
}

/** The body as received; empty for a request without one. */
export const rawBodyOf = (req: FastifyRequest): string => raw.get(req) ?? '';
