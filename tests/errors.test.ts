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
});
