// PostgreSQL cut through a TCP proxy (reset, then a blackhole): requests answer 503 DATABASE_UNAVAILABLE with
// Retry-After within the configured timeouts, never 500 or a hang, and succeed again once the proxy heals.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../gateway/config.js';
import { realUrls, uniqueName } from './support/backends.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';
import pg from 'pg';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

describe.skipIf(!realUrls.databaseUrl)('a PostgreSQL outage', () => {
  let proxy: TcpProxy;
  let gw: TestGateway;
  let memberId: string;
  const schema = uniqueName('t');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-outage-'));

  beforeAll(async () => {
    const target = new URL(realUrls.databaseUrl!);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    target.host = `127.0.0.1:${proxy.port}`;
    const config = loadConfig({
      DATA_DIR: dataDir, LOG_LEVEL: 'silent', DATABASE_URL: target.toString(), DATABASE_SCHEMA: schema,
      DATABASE_CONNECT_TIMEOUT_MS: '1000', DATABASE_STATEMENT_TIMEOUT_MS: '1000', DATABASE_QUERY_TIMEOUT_MS: '1500',
      RATE_LIMIT_PUBLIC_PER_MINUTE: '1000000', RATE_LIMIT_MEMBER_PER_MINUTE: '1000000',
    });
    gw = await startGateway(config);
    const res = await gw.app.inject({ method: 'POST', url: '/members', payload: { timeZone: 'UTC' } });
    expect(res.statusCode).toBe(201);
    memberId = res.json().id;
  }, 60_000);

  afterAll(async () => {
    proxy.set('pass');
    await gw?.close();
    await proxy.close();
    const client = new pg.Client({ connectionString: realUrls.databaseUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const checkin = () => gw.app.inject({
    method: 'POST', url: '/checkins', payload: { memberId, lat: 40.7, lon: -74, accuracyM: 10, at: new Date().toISOString() },
  });
  const member = () => gw.app.inject({ method: 'GET', url: `/members/${memberId}` });

  async function expectUnavailable(res: Awaited<ReturnType<typeof member>>) {
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe('DATABASE_UNAVAILABLE');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.body).not.toMatch(/ECONN|terminated|timeout/i); // internals stay inside
  }

  it('answers 503 with Retry-After while connections are reset, and serves again after', { timeout: 30_000 }, async () => {
    expect((await member()).statusCode).toBe(200);
    proxy.set('reset');
    await expectUnavailable(await member());
    await expectUnavailable(await checkin());
    proxy.set('pass');
    expect((await member()).statusCode).toBe(200);
    expect((await checkin()).statusCode).toBe(202);
  });

  // Bounded by the test's timeout: without a query timeout a request in a partition waits as long as it lasts.
  it('answers 503 within the query timeout in a blackhole, and serves again after', { timeout: 30_000 }, async () => {
    expect((await member()).statusCode).toBe(200);
    proxy.set('blackhole');
    const started = Date.now();
    const [a, b] = await Promise.all([member(), checkin()]);
    await expectUnavailable(a);
    await expectUnavailable(b);
    // Generous against a busy machine; the configured bounds are 1 s to connect and 1.5 s for an answer.
    expect(Date.now() - started).toBeLessThan(15_000);
    proxy.set('pass');
    expect((await member()).statusCode).toBe(200);
    expect((await checkin()).statusCode).toBe(202);
  });
});
