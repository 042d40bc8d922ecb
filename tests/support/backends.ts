// Which backends a test run covers: the embedded default always; real PostgreSQL and Redis when their URLs are set.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig, type Config } from '../../gateway/config.js';

export type BackendName = 'embedded' | 'real';

export const realUrls = { databaseUrl: process.env.DATABASE_URL, redisUrl: process.env.REDIS_URL };

export const backends: BackendName[] = realUrls.databaseUrl && realUrls.redisUrl ? ['embedded', 'real'] : ['embedded'];

export const uniqueName = (prefix: string) => `${prefix}_${randomBytes(5).toString('hex')}`;

export interface Isolated {
  config: Config;
  /** Drops the schema, the queue keys or the data directory that this run made. */
  cleanup(): Promise<void>;
}

/** A config whose database schema (or data dir) and queue prefix belong to this test alone. */
export function isolatedConfig(backend: BackendName, env: Record<string, string> = {}): Isolated {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-test-'));
  const schema = uniqueName('t');
  const prefix = uniqueName('q');
  // SMS unpaced unless a test asks: the stand-in is no carrier, and most tests send many messages at once.
  // Rate limits out of the way too, unless a test asks: every test request comes from one address.
  const base: Record<string, string> = {
    DATA_DIR: dataDir, LOG_LEVEL: 'silent', JOB_BACKOFF_MS: '20', SMS_RATE_PER_SECOND: '0',
    RATE_LIMIT_PUBLIC_PER_MINUTE: '1000000', RATE_LIMIT_MEMBER_PER_MINUTE: '1000000',
    // So are the sign-up limits; and the tests text American and French numbers.
    SIGNUP_CODES_PER_HOUR: '1000000', SIGNUP_WITHOUT_PHONE_PER_ADDRESS_PER_DAY: '1000000', SMS_COUNTRIES: 'US,FR', ...env,
  };
  if (backend === 'real') {
    Object.assign(base, { DATABASE_URL: realUrls.databaseUrl!, DATABASE_SCHEMA: schema, REDIS_URL: realUrls.redisUrl!, QUEUE_PREFIX: prefix });
  }
  const config = loadConfig(base);
  return {
    config,
    async cleanup() {
      fs.rmSync(dataDir, { recursive: true, force: true });
      if (backend !== 'real') return;
      const client = new pg.Client({ connectionString: realUrls.databaseUrl });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
      const redis = new Redis(realUrls.redisUrl!);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      await redis.quit();
    },
  };
}

/** Polls until check() returns a value other than undefined, or fails after timeoutMs. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
