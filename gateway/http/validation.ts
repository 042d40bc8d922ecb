// Two validators: request bodies are taken exactly as sent (no coercion, unknown fields refused);
// path and query strings are text on the wire, so there numbers and booleans are coerced.
//
// Two rules hold for every schema of every route, whatever it says, so no route can forget them:
// - text holds no control character (C0, U+0000-U+001F, and DEL). PostgreSQL refuses a NUL in text, and one
//   request's NUL would fail a whole statement that carries other requests (a batch of tills' redemptions);
//   none of them belongs in a name, a reference or an id. Free text (an offer's message) marked with FREE_TEXT
//   may hold tabs and line ends.
// - a number is finite. JSON bodies cannot carry Infinity, but a query string's "1e999" coerces to it, and ajv
//   checks minimum and maximum only of finite numbers.
import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';
import { UUID_SOURCE } from '../domain/ids.js';
import type { FastifySchemaCompiler } from 'fastify';

/** A string schema's annotation: free text, where tabs and newlines are allowed (OpenAPI shows it as a vendor extension). */
export const FREE_TEXT = 'x-free-text';

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Control characters that free text refuses: all but tab, line feed and carriage return (a line typed on Windows). */
// eslint-disable-next-line no-control-regex -- as above, tab and line ends left out
export const CONTROL_IN_TEXT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** The check of one string schema: free text may hold tabs and newlines, any other string no control character. */
function printable(_schema: boolean, parent: Record<string, unknown>) {
  const text = parent[FREE_TEXT] === true;
  const refused = text ? CONTROL_IN_TEXT : CONTROL;
  const message = text ? 'must not contain control characters other than tab and line ends' : 'must not contain control characters';
  const check = (data: string): boolean => {
    if (!refused.test(data)) return true;
    check.errors = [{ keyword: 'printable', message, params: {} }];
    return false;
  };
  check.errors = null as null | object[];
  return check;
}

function makeAjv(coerceTypes: Options['coerceTypes']): Ajv {
  const ajv = new Ajv({ coerceTypes, removeAdditional: false, useDefaults: true, allErrors: false, strict: true });
  addFormats.default(ajv);
  // ajv-formats' uuid also takes a "urn:uuid:" prefix, which PostgreSQL's uuid type refuses: an id is the bare form.
  ajv.addFormat('uuid', new RegExp(`^${UUID_SOURCE}$`, 'i'));
  ajv.addKeyword({ keyword: FREE_TEXT, schemaType: 'boolean' });
  ajv.addKeyword({ keyword: 'printable', type: 'string', schemaType: 'boolean', errors: true, compile: printable as never });
  // Not restricted to type number: ajv runs the keywords of that type only for finite numbers.
  ajv.addKeyword({
    keyword: 'finite', schemaType: 'boolean', errors: false,
    validate: (_s: boolean, data: unknown) => typeof data !== 'number' || Number.isFinite(data),
    error: { message: 'must be a finite number' },
  });
  return ajv;
}

// Where a schema holds other schemas: as a map of names to schemas, as a list, or as one.
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);
const SCHEMA_LISTS = new Set(['anyOf', 'oneOf', 'allOf', 'prefixItems']);
const SCHEMA_ONE = new Set(['items', 'additionalProperties', 'additionalItems', 'unevaluatedProperties', 'unevaluatedItems', 'not', 'if', 'then', 'else', 'contains', 'propertyNames']);

const hasType = (node: Record<string, unknown>, ...types: string[]) =>
  types.some((t) => node.type === t || (Array.isArray(node.type) && node.type.includes(t)));

const mapValues = (o: object, f: (v: unknown) => unknown) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));

/** A copy of the schema in which every string is checked for control characters and every number for finiteness. */
export function withInputRules(schema: unknown): unknown {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return schema;
  const node = schema as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (SCHEMA_MAPS.has(k) && v !== null && typeof v === 'object') out[k] = mapValues(v, withInputRules);
    else if (SCHEMA_LISTS.has(k) && Array.isArray(v)) out[k] = v.map(withInputRules);
    else if (SCHEMA_ONE.has(k)) out[k] = Array.isArray(v) ? v.map(withInputRules) : withInputRules(v);
    else out[k] = v;
  }
  if (hasType(node, 'string')) out.printable = true;
  if (hasType(node, 'number', 'integer')) out.finite = true;
  return out;
}

export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = makeAjv(false);
  const coercing = makeAjv('array');
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(withInputRules(schema) as object);
}
