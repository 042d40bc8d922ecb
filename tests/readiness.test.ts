// /readyz answers 503 with the failing part when the database does not answer, and 200 degraded when only the queue fails.
import { describe, expect, it } from 'vitest';
import { buildApp } from '../gateway/app.js';
import { loadConfig } from '../gateway/config.js';
import type { Database } from '../gateway/db/database.js';
import type { Deps } from '../gateway/domain/deps.js';
import { inProcessQueue } from '../gateway/queue/in-process.js';
import { outboxSender } from '../gateway/sms/outbox.js';

function deps(ping: () => Promise<void>): Deps {
  const db = { kind: 'postgres', ping, query: async () => [], transaction: async () => undefined, close: async () => {} } as unknown as Database;
  const config = loadConfig({ LOG_LEVEL: 'silent' });
  return { config, db, queue: inProcessQueue({ attempts: 1, backoffMs: 1 }), sms: outboxSender(config.dataDir), now: () => new Date() };
}

describe('/readyz', () => {
  it('is 503 NOT_READY naming the database when it refuses', async () => {
    const app = await buildApp(deps(async () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'))));
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toMatchObject({ code: 'NOT_READY', details: { failures: ['database: connect ECONNREFUSED 127.0.0.1:5432'] } });
    await app.close();
  });

  it('is 503 when the database hangs, after the probe timeout', async () => {
    const app = await buildApp(deps(() => new Promise(() => {})));
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.details.failures).toEqual(['database: no answer in 2000 ms']);
    await app.close();
  });

  it('stays ready, degraded and naming the queue, when only the queue fails: requests are still taken without it', async () => {
    const d = deps(async () => {});
    await d.queue.close();
    const app = await buildApp(d);
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'degraded', database: 'postgres', queue: 'in-process', failures: ['queue: queue is closed'] });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    await app.close();
  });
});
