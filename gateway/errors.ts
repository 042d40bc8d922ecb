// Every failure the gateway reports has a stable code; this registry is the one place that maps a code to HTTP.

export const errorStatus = {
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  PHONE_INVALID: 400,
  COUPON_CODE_INVALID: 400,
  SIGNUP_CODE_INVALID: 400,
  REPORT_RANGE_INVALID: 400,
  PUSH_ENDPOINT_INVALID: 400,
  PUSH_KEYS_INVALID: 400,
  AUTH_REQUIRED: 401,
  API_KEY_INVALID: 401,
  API_KEY_REVOKED: 401,
  API_KEY_EXPIRED: 401,
  AGENT_UNKNOWN: 401,
  REQUEST_STALE: 401,
  FORBIDDEN: 403,
  SIGNATURE_INVALID: 403,
  AGENT_REVOKED: 403,
  NOT_FOUND: 404,
  MERCHANT_NOT_FOUND: 404,
  API_KEY_NOT_FOUND: 404,
  TILL_NOT_FOUND: 404,
  MEMBER_NOT_FOUND: 404,
  STORE_NOT_FOUND: 404,
  CAMPAIGN_NOT_FOUND: 404,
  COUPON_NOT_FOUND: 404,
  REDEMPTION_NOT_FOUND: 404,
  GEOFENCE_NOT_FOUND: 404,
  ZONE_NOT_FOUND: 404,
  DELIVERY_NOT_FOUND: 404,
  AGENT_NOT_FOUND: 404,
  PUSH_SUBSCRIPTION_NOT_FOUND: 404,
  ALLIANCE_OFFER_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  PHONE_TAKEN: 409,
  API_KEY_STATE_CONFLICT: 409,
  TILL_NAME_TAKEN: 409,
  TILL_AT_OTHER_STORE: 409,
  PHONE_REQUIRED: 409,
  EXTERNAL_REF_TAKEN: 409,
  ZONE_NAME_TAKEN: 409,
  REQUEST_REPLAYED: 409,
  BEACON_TAKEN: 409,
  CONSENT_REQUIRED: 409,
  CAMPAIGN_STATE_CONFLICT: 409,
  BUDGET_EXHAUSTED: 409,
  COUPON_ALREADY_REDEEMED: 409,
  COUPON_EXPIRED: 409,
  COUPON_NOT_VALID_AT_STORE: 409,
  REQUEST_ID_REUSED: 409,
  TRANSACTION_ID_TAKEN: 409,
  REDEMPTION_ALREADY_VOIDED: 409,
  VOID_WINDOW_PASSED: 409,
  REDEMPTION_AT_OTHER_STORE: 409,
  MEMBER_ERASED: 409,
  PUSH_ENDPOINT_TAKEN: 409,
  PUSH_SUBSCRIPTION_LIMIT: 409,
  MERCHANT_NOT_PARTNER: 409,
  PARTNER_HAS_NO_STORES: 409,
  ALLIANCE_OFFER_WITHDRAWN: 409,
  GEOFENCE_LIMIT: 409,
  SMS_COUNTRY_NOT_ALLOWED: 409,
  IDEMPOTENCY_KEY_REUSED: 409,
  IDEMPOTENCY_KEY_IN_PROGRESS: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  SMS_LIMIT: 429,
  INTERNAL: 500,
  NOT_READY: 503,
  DATABASE_UNAVAILABLE: 503,
  QUEUE_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;

/** An expected failure: its message and details are safe to show to the caller. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
  }

  get status(): number {
    return errorStatus[this.code];
  }
}

export interface Issue {
  /** Where, as body/..., params/... or query/... */
  field: string;
  problem: string;
}

/** A request that is wrong in what a schema cannot see; every issue names its field, like schema errors do. */
export function invalid(...issues: Issue[]): AppError {
  return new AppError('VALIDATION_FAILED', `${issues[0]!.field} ${issues[0]!.problem}`, { issues });
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}

// Fastify's own error codes for failures that are the caller's fault.
const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'VALIDATION_FAILED',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
};

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function describeValidation(err: { validation?: ValidationIssue[]; validationContext?: string }) {
  // fastify calls the query string "querystring"; fields are named as Issue says (and as domain checks name them).
  const where = err.validationContext === 'querystring' ? 'query' : err.validationContext ?? 'body';
  return (err.validation ?? []).map((v) => {
    const extra = v.params?.additionalProperty;
    const field = `${where}${v.instancePath ?? ''}${typeof extra === 'string' ? `/${extra}` : ''}`;
    return { field, problem: typeof extra === 'string' ? 'is not a known field' : (v.message ?? 'is invalid') };
  });
}

/** Seconds a client is asked to wait (Retry-After) before trying again after an outage. */
export const OUTAGE_RETRY_AFTER_S = 2;

// Connection-level failures: the server or the network, never the request. Raw socket errors come from pg,
// whose pool hands them through; ioredis wraps its own in the errors matched by REDIS_DOWN.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
// 57P01-03: admin shutdown, crash shutdown, cannot connect now; 57014: statement cancelled (statement_timeout);
// 53300: too many connections; class 08: connection exceptions.
// Includes 25006 (a read-only standby after a failover) and 57P04/57P05 (a database dropped, an idle session ended).
const PG_UNAVAILABLE = /^(08...|57P0[1-5]|57014|53300|25006)$/;
const PG_DOWN = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Connection closed)/;
const REDIS_DOWN = /^(Connection is closed|Stream isn't writeable|Reached the max retries per request limit|Command timed out)/;

/** Which backend an error says is out of reach, if it is an outage rather than a failure of this request. */
export function outageOf(err: unknown): 'database' | 'queue' | null {
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | null;
  if (!e || typeof e !== 'object' || e instanceof AppError) return null;
  const message = typeof e.message === 'string' ? e.message : '';
  if (e.name === 'MaxRetriesPerRequestError' || REDIS_DOWN.test(message)) return 'queue';
  const code = typeof e.code === 'string' ? e.code : '';
  if (PG_UNAVAILABLE.test(code) || NETWORK_CODES.has(code) || PG_DOWN.test(message)) return 'database';
  return null;
}

/** Maps anything thrown while serving a request to a status and a body; 5xx bodies never carry internals. */
export function toHttpError(err: unknown): { status: number; body: ErrorBody } {
  const outage = outageOf(err);
  if (outage) {
    const code = outage === 'database' ? 'DATABASE_UNAVAILABLE' : 'QUEUE_UNAVAILABLE';
    err = new AppError(code, `the ${outage} is unavailable; try again shortly`, { retryAfterSeconds: OUTAGE_RETRY_AFTER_S });
  }
  if (err instanceof AppError) {
    const body: ErrorBody = { error: { code: err.code, message: err.message } };
    if (err.details) body.error.details = err.details;
    return { status: err.status, body };
  }
  const e = err as { code?: string; statusCode?: number; message?: string; validation?: ValidationIssue[] };
  if (Array.isArray(e.validation)) {
    const issues = describeValidation(e as never);
    const first = issues[0];
    const message = first ? `${first.field} ${first.problem}` : 'request is invalid';
    return { status: 400, body: { error: { code: 'VALIDATION_FAILED', message, details: { issues } } } };
  }
  const mapped = e.code ? fastifyCodes[e.code] : undefined;
  if (mapped) {
    return { status: errorStatus[mapped], body: { error: { code: mapped, message: e.message ?? mapped } } };
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: e.statusCode, body: { error: { code: 'VALIDATION_FAILED', message: e.message ?? 'bad request' } } };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } };
}
