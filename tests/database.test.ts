import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openPostgres } from '../gateway/db/database.js';
import { openEmbedded } from '../gateway/db/embedded.js';
import { migrate, readMigrations } from '../gateway/db/migrate.js';
import { realUrls, uniqueName } from './support/backends.js';

const latest = Math.max(...readMigrations().map((m) => m.version));

describe('the embedded database', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-emb-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps its rows on disk across a restart, and migrates once', async () => {
    fs.writeFileSync(path.join(dir, 'embedded-db.lock'), '999999999'); // left by a process that is gone
    const first = await openEmbedded(dir, 'public');
    expect(await migrate(first)).toEqual(readMigrations().map((m) => m.version));
    await first.query(`INSERT INTO stores (name, time_zone, lat, lon) VALUES ('Kept', 'UTC', 1, 2)`);
    await first.close();

    const again = await openEmbedded(dir, 'public');
    try {
      expect(await migrate(again)).toEqual([]);
      expect(await again.query('SELECT name, lat, lon FROM stores')).toEqual([{ name: 'Kept', lat: 1, lon: 2 }]);
      const [row] = await again.query<{ v: number }>('SELECT max(version) v FROM schema_migrations');
      expect(row?.v).toBe(latest);
    } finally {
      await again.close();
    }
  });

  it('refuses a second process on the same data directory, naming the holder', async () => {
    const held = await openEmbedded(dir, 'public');
    try {
      await expect(openEmbedded(dir, 'public')).rejects.toThrow(`in use by process ${process.pid}`);
      // Another live process (our parent) holding it is refused the same way.
      fs.writeFileSync(path.join(dir, 'embedded-db.lock'), String(process.ppid));
      await expect(openEmbedded(dir, 'public')).rejects.toThrow(`in use by process ${process.ppid}`);
    } finally {
      await held.close();
    }
  });

  it('rolls back a failed transaction completely', async () => {
    const db = await openEmbedded(dir, 'public');
    try {
      await expect(
        db.transaction(async (tx) => {
          await tx.query(`INSERT INTO stores (name, time_zone, lat, lon) VALUES ('Lost', 'UTC', 0, 0)`);
          await tx.query('SELECT no_such_column FROM stores');
        }),
      ).rejects.toThrow(/no_such_column/);
      expect(await db.query(`SELECT 1 FROM stores WHERE name = 'Lost'`)).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('keeps concurrent parameterised queries and transactions apart', async () => {
    // Many callers at once, each with its own parameters and a transaction that reads back its own row:
    // an interleaving of their protocol messages would return another caller's row or lose a statement.
    const db = await openEmbedded(dir, 'public');
    try {
      const results = await Promise.allSettled(Array.from({ length: 40 }, async (_, i) => {
        const name = `Concurrent ${i}`;
        const [own] = await db.transaction(async (tx) => {
          await tx.query('INSERT INTO stores (name, time_zone, lat, lon) VALUES ($1, $2, $3, $4)', [name, 'UTC', i / 100, 0]);
          return tx.query<{ name: string; lat: number }>('SELECT name, lat FROM stores WHERE name = $1', [name]);
        });
        const [plain] = await db.query<{ n: number }>('SELECT $1::int * 2 AS n', [i]);
        return { own, plain, i };
      }));
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
      expect(failures).toEqual([]);
      for (const r of results) {
        if (r.status !== 'fulfilled') continue;
        expect(r.value.own).toEqual({ name: `Concurrent ${r.value.i}`, lat: r.value.i / 100 });
        expect(r.value.plain).toEqual({ n: r.value.i * 2 });
      }
      const [count] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stores WHERE name LIKE 'Concurrent %'`);
      expect(count!.n).toBe(40);
    } finally {
      await db.close();
    }
  });
});

describe.runIf(realUrls.databaseUrl)('real PostgreSQL', () => {
  const schemas: string[] = [];
  afterAll(async () => {
    const client = new pg.Client({ connectionString: realUrls.databaseUrl });
    await client.connect();
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    await client.end();
  });

  it('applies each migration once when several gateways start together', async () => {
    const schema = uniqueName('mig');
    schemas.push(schema);
    const dbs = await Promise.all([1, 2, 3].map(() => openPostgres(realUrls.databaseUrl!, schema, 2)));
    try {
      const applied = await Promise.all(dbs.map((db) => migrate(db)));
      expect(applied.filter((a) => a.length > 0)).toHaveLength(1);
      expect(applied.flat()).toEqual(readMigrations().map((m) => m.version));
      const [row] = await dbs[0]!.query<{ n: number }>('SELECT count(*)::int n FROM schema_migrations');
      expect(row?.n).toBe(readMigrations().length);
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
    }
  });

  it('keeps runs apart: tables live in each run\'s own schema', async () => {
    const [a, b] = [uniqueName('iso'), uniqueName('iso')];
    schemas.push(a, b);
    const dbA = await openPostgres(realUrls.databaseUrl!, a, 2);
    const dbB = await openPostgres(realUrls.databaseUrl!, b, 2);
    try {
      await migrate(dbA);
      await migrate(dbB);
      await dbA.query(`INSERT INTO stores (name, time_zone, lat, lon) VALUES ('only in a', 'UTC', 0, 0)`);
      expect(await dbB.query('SELECT * FROM stores')).toEqual([]);
      expect(await dbA.query('SELECT name FROM stores')).toEqual([{ name: 'only in a' }]);
    } finally {
      await dbA.close();
      await dbB.close();
    }
  });
});
