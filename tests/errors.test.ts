import { describe, expect, it } from 'vitest';
import { AppError, errorStatus, toHttpError } from '../gateway/errors.js';

describe('toHttpError', () => {
  it('maps every registered code to its status, with message and details', () => {
    for (const [code, status] of Object.entries(errorStatus)) {
      const mapped = toHttpError(new AppError(code as keyof typeof errorStatus, `m-${code}`, { k: 1 }));
      expect(mapped).toEqual({ status, body: { error: { code, message: `m-${code}`, details: { k: 1 } } } });
    }
  });

  it('turns schema validation failures into VALIDATION_FAILED naming the field', () => {
    const err = Object.assign(new Error('x'), {
      validation: [{ instancePath: '', message: 'must NOT have additional properties', params: { additionalProperty: 'colour' } }],
      validationContext: 'body',
    });
    const mapped = toHttpError(err);
    expect(mapped.status).toBe(400);
    expect(mapped.body.error).toMatchObject({ code: 'VALIDATION_FAILED', message: 'body/colour is not a known field' });

    const typed = toHttpError(Object.assign(new Error('x'), { validation: [{ instancePath: '/lat', message: 'must be <= 90' }], validationContext: 'body' }));
    expect(typed.body.error.message).toBe('body/lat must be <= 90');
  });

  it.each([
    ['FST_ERR_CTP_INVALID_JSON_BODY', 400, 'MALFORMED_JSON'],
    ['FST_ERR_CTP_EMPTY_JSON_BODY', 400, 'MALFORMED_JSON'],
    ['FST_ERR_CTP_BODY_TOO_LARGE', 413, 'PAYLOAD_TOO_LARGE'],
    ['FST_ERR_CTP_INVALID_MEDIA_TYPE', 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ])('maps fastify %s to %i %s', (fastifyCode, status, code) => {
    const mapped = toHttpError(Object.assign(new Error('parser said no'), { code: fastifyCode, statusCode: status }));
    expect(mapped.status).toBe(status);
    expect(mapped.body.error.code).toBe(code);
  });

  it('hides the message of anything unexpected behind a 500', () => {
    const mapped = toHttpError(new Error('connection to 10.0.0.5 refused: password authentication failed for user "admin"'));
    expect(mapped).toEqual({ status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } });
    expect(toHttpError('a thrown string').status).toBe(500);
  });

  // What pg and ioredis throw when their server is out of reach: an outage, 503 with Retry-After, never a 500.
  it.each([
    ['connect refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), 'DATABASE_UNAVAILABLE'],
    ['connection reset', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'DATABASE_UNAVAILABLE'],
    ['connect timed out', Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }), 'DATABASE_UNAVAILABLE'],
    ['admin shutdown', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }), 'DATABASE_UNAVAILABLE'],
    ['crash shutdown', Object.assign(new Error('terminating connection because of crash of another server process'), { code: '57P02' }), 'DATABASE_UNAVAILABLE'],
    ['starting up', Object.assign(new Error('the database system is starting up'), { code: '57P03' }), 'DATABASE_UNAVAILABLE'],
    ['connection failure', Object.assign(new Error('connection failure'), { code: '08006' }), 'DATABASE_UNAVAILABLE'],
    ['statement timeout', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }), 'DATABASE_UNAVAILABLE'],
    ['terminated', new Error('Connection terminated unexpectedly'), 'DATABASE_UNAVAILABLE'],
    ['pool connect timeout', new Error('timeout exceeded when trying to connect'), 'DATABASE_UNAVAILABLE'],
    ['query timeout', new Error('Query read timeout'), 'DATABASE_UNAVAILABLE'],
    ['redis closed', new Error('Connection is closed.'), 'QUEUE_UNAVAILABLE'],
    ['redis retries', Object.assign(new Error('Reached the max retries per request limit (which is 1).'), { name: 'MaxRetriesPerRequestError' }), 'QUEUE_UNAVAILABLE'],
    ['redis command timeout', new Error('Command timed out'), 'QUEUE_UNAVAILABLE'],
  ])('maps %s to 503 %s with a retry delay', (_what, err, code) => {
    const mapped = toHttpError(err);
    expect(mapped.status).toBe(503);
    expect(mapped.body.error.code).toBe(code);
    expect(mapped.body.error.details).toEqual({ retryAfterSeconds: expect.any(Number) });
    expect(JSON.stringify(mapped.body)).not.toContain(err.message);
  });

  it('keeps a failure of the request itself, such as a unique violation, out of the outages', () => {
    expect(toHttpError(Object.assign(new Error('duplicate key'), { code: '23505' })).status).toBe(500);
    expect(toHttpError(Object.assign(new Error('deadlock detected'), { code: '40P01' })).status).toBe(500);
  });
});
