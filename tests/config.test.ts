import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../gateway/config.js';

const SID = 'AC' + '0123456789abcdef'.repeat(2);
const MG = 'MG' + 'f'.repeat(32);

describe('loadConfig', () => {
  it('defaults to the embedded backends with no environment', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 3000, host: '127.0.0.1', role: 'all', databaseSchema: 'public', queuePrefix: 'gw' });
    expect(c.databaseUrl).toBeUndefined();
    expect(c.redisUrl).toBeUndefined();
    expect(c.twilio).toBeUndefined();
    expect(c.dataDir).toMatch(/\/data$/);
  });

  it('reads real backends and Twilio when given', () => {
    const c = loadConfig({
      PORT: '8080', DATABASE_URL: 'postgres://u@db:5432/x', REDIS_URL: 'redis://r:6379',
      TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 'tok', TWILIO_FROM: '+14155550100', TWILIO_API_URL: 'http://127.0.0.1:9',
    });
    expect(c.port).toBe(8080);
    expect(c.databaseUrl).toBe('postgres://u@db:5432/x');
    expect(c.redisUrl).toBe('redis://r:6379');
    expect(c.twilio).toEqual({ accountSid: SID, authToken: 'tok', from: '+14155550100', messagingServiceSid: undefined, apiUrl: 'http://127.0.0.1:9' });
  });

  it('bounds slow clients by default, well inside Node\'s 60 s for headers and 300 s for a request', () => {
    expect(loadConfig({}).http).toEqual({
      headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, connectionTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000, maxRequestsPerSocket: 1_000, maxConnections: 1_000,
    });
  });

  it('texts the sender\'s country unless SMS_COUNTRIES says otherwise', () => {
    const twilio = { TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 't' };
    expect(loadConfig({}).smsCountries).toEqual(['US']);
    expect(loadConfig({ ...twilio, TWILIO_FROM: '+14155550100' }).smsCountries).toEqual(['US']);
    expect(loadConfig({ ...twilio, TWILIO_FROM: '+447400123456' }).smsCountries).toEqual(['GB']);
    expect(loadConfig({ ...twilio, TWILIO_MESSAGING_SERVICE_SID: MG, SMS_COUNTRIES: 'us, ca,US' }).smsCountries).toEqual(['US', 'CA']);
    expect(loadConfig({}).signupLimits).toEqual({
      codesPerNumberPerHour: 3, codesPerNumberPerDay: 5, codesPerHour: 1000, withoutPhonePerAddressPerDay: 20, unusedMemberDays: 30,
    });
  });

  it('treats blank values as unset', () => {
    expect(loadConfig({ DATABASE_URL: '  ', PORT: '' }).databaseUrl).toBeUndefined();
  });

  const bad: Array<[Record<string, string>, string, RegExp]> = [
    [{ PORT: 'eighty' }, 'PORT', /whole number/],
    [{ PORT: '70000' }, 'PORT', /between 0 and 65535/],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL', /not a valid URL/],
    [{ DATABASE_URL: 'mysql://x/y' }, 'DATABASE_URL', /postgres/],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL', /redis/],
    [{ ROLE: 'boss' }, 'ROLE', /one of all, api, worker/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of/],
    [{ DATABASE_SCHEMA: 'drop table;' }, 'DATABASE_SCHEMA', /identifier/],
    [{ HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' }, 'HTTP_HEADERS_TIMEOUT_MS', /must not exceed HTTP_REQUEST_TIMEOUT_MS/],
    [{ HTTP_MAX_CONNECTIONS: '0' }, 'HTTP_MAX_CONNECTIONS', /between 1 and/],
    [{ JOB_ATTEMPTS: '0' }, 'JOB_ATTEMPTS', /between 1 and 50/],
    [{ TWILIO_AUTH_TOKEN: 'tok' }, 'TWILIO_ACCOUNT_SID', /required/],
    [{ TWILIO_FROM: '+14155550100' }, 'TWILIO_ACCOUNT_SID', /required/],
    [{ TWILIO_ACCOUNT_SID: SID }, 'TWILIO_AUTH_TOKEN', /required/],
    [{ TWILIO_ACCOUNT_SID: 'AC123', TWILIO_AUTH_TOKEN: 't', TWILIO_FROM: '+14155550100' }, 'TWILIO_ACCOUNT_SID', /32 hex/],
    [{ TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 't' }, 'TWILIO_MESSAGING_SERVICE_SID', /TWILIO_FROM/],
    [{ TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 't', TWILIO_FROM: '+14155550100', TWILIO_MESSAGING_SERVICE_SID: MG }, 'TWILIO_FROM', /not be set together/],
    [{ TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 't', TWILIO_FROM: '4155550100' }, 'TWILIO_FROM', /E\.164/],
    [{ TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 't', TWILIO_MESSAGING_SERVICE_SID: 'MG1' }, 'TWILIO_MESSAGING_SERVICE_SID', /32 hex/],
    [{ TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 't', TWILIO_FROM: '+14155550100', TWILIO_API_URL: 'ftp://x' }, 'TWILIO_API_URL', /http/],
    [{ TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 't', TWILIO_MESSAGING_SERVICE_SID: MG }, 'SMS_COUNTRIES', /required with TWILIO_MESSAGING_SERVICE_SID/],
    [{ TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: 't', TWILIO_FROM: '+15555550100' }, 'SMS_COUNTRIES', /cannot be told/],
    [{ SMS_COUNTRIES: 'US,XX' }, 'SMS_COUNTRIES', /alpha-2/],
    [{ SMS_COUNTRIES: 'USA' }, 'SMS_COUNTRIES', /alpha-2/],
    [{ SMS_COUNTRIES: ' , ' }, 'SMS_COUNTRIES', /at least one/],
    [{ SIGNUP_CODES_PER_NUMBER_PER_HOUR: '0' }, 'SIGNUP_CODES_PER_NUMBER_PER_HOUR', /between 1/],
    [{ UNUSED_MEMBER_DAYS: 'soon' }, 'UNUSED_MEMBER_DAYS', /whole number/],
  ];

  it.each(bad)('refuses %j naming %s', (env, variable, problem) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toMatch(problem);
    expect((error as ConfigError).message).toContain(variable);
  });
});
