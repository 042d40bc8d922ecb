// Two validators: request bodies are taken exactly as sent (no coercion, unknown fields refused);
// path and query strings are text on the wire, so there numbers and booleans are coerced.
import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';
import { UUID_SOURCE } from '../domain/ids.js';
import type { FastifySchemaCompiler } from 'fastify';

function makeAjv(coerceTypes: Options['coerceTypes']): Ajv {
  const ajv = new Ajv({ coerceTypes, removeAdditional: false, useDefaults: true, allErrors: false, strict: true });
  addFormats.default(ajv);
  // ajv-formats' uuid also takes a "urn:uuid:" prefix, which PostgreSQL's uuid type refuses: an id is the bare form.
  ajv.addFormat('uuid', new RegExp(`^${UUID_SOURCE}$`, 'i'));
  return ajv;
}

export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = makeAjv(false);
  const coercing = makeAjv('array');
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object);
}
