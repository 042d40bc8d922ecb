// SIGTERM on the real process: /readyz and new requests answer 503 SHUTTING_DOWN at once, a request already
// running (here held on its member's row lock) finishes with its 2xx, then the process exits 0.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { realUrls, uniqueName } from './support/backends.js';

const root = path.resolve(import.meta.dirname, '..');

describe.skipIf(!realUrls.databaseUrl)('draining on SIGTERM', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-drain-'));
  const schema = uniqueName('t');
  let holder: pg.Client | undefined;
  let watcher: pg.Client | undefined;
  afterAll(async () => {
    await holder?.end().catch(() => {});
    await watcher?.end().catch(() => {});
    fs.rmSync(dataDir, { recursive: true, force: true });
    const client = new pg.Client({ connectionString: realUrls.databaseUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it('turns not ready, refuses new requests in the error format, finishes the running one and exits 0', { timeout: 120_000 }, async () => {
    const env = {
      PATH: process.env.PATH ?? '', PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info', DATABASE_URL: realUrls.databaseUrl!, DATABASE_SCHEMA: schema,
      // Long enough for the probes below to reach the open listener on a busy machine.
      DRAIN_DELAY_MS: '10000',
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/server.ts'], { cwd: root, env, stdio: 'pipe' });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const started = Date.now();
    let m: RegExpExecArray | null;
    while (!(m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out))) {
      if (Date.now() - started > 90_000) throw new Error(`no listen line in: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = m[1]!;
    const adminKey = /\n\s+(pmk\.\S+)/.exec(out)![1]!;
    const call = (method: string, p: string, body?: unknown) => fetch(`${url}${p}`, {
      method, headers: { authorization: `Bearer ${adminKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const member = await (await call('POST', '/members', { timeZone: 'UTC' })).json() as { id: string };
    expect((await fetch(`${url}/readyz`)).status).toBe(200);

    // The member's row held by another session: the check-in waits on it, in flight.
    holder = new pg.Client({ connectionString: realUrls.databaseUrl, options: `-c search_path=${schema}` });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM members WHERE id = $1 FOR UPDATE', [member.id]);
    const inFlight = call('POST', '/checkins', { memberId: member.id, lat: 40.7, lon: -74, accuracyM: 10, at: new Date().toISOString() });
    // Watched from a session of its own: inside a transaction pg_stat_activity is one frozen snapshot.
    watcher = new pg.Client({ connectionString: realUrls.databaseUrl });
    await watcher.connect();
    while ((await watcher.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT 1 FROM members%FOR UPDATE'")).rowCount === 0) {
      await new Promise((r) => setTimeout(r, 20));
    }

    child.kill('SIGTERM');
    let ready: Response;
    while ((ready = await fetch(`${url}/readyz`)).status === 200) await new Promise((r) => setTimeout(r, 20));
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { error: { code: string } }).error.code).toBe('SHUTTING_DOWN');
    const refused = await call('POST', '/members', { timeZone: 'UTC' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await refused.json()).toMatchObject({ error: { code: 'SHUTTING_DOWN' } });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // Twilio's webhooks still reach their route (here refused for want of a signature), never SHUTTING_DOWN:
    // Twilio does not send an inbound STOP again.
    const webhook = await fetch(`${url}/webhooks/twilio/sms`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'From=%2B14155550100&Body=STOP',
    });
    expect([webhook.status, ((await webhook.json()) as { error: { code: string } }).error.code]).toEqual([403, 'SIGNATURE_INVALID']);

    await holder.query('COMMIT');
    const done = await inFlight;
    expect(done.status).toBe(202);
    expect(((await done.json()) as { decisions: unknown[] }).decisions).toHaveLength(1);
    expect(await exited).toBe(0);
    // Only the one member made before SIGTERM exists: the refused request wrote nothing.
    const check = new pg.Client({ connectionString: realUrls.databaseUrl, options: `-c search_path=${schema}` });
    await check.connect();
    expect((await check.query('SELECT count(*)::int AS n FROM members')).rows[0].n).toBe(1);
    await check.end();
  });
});
