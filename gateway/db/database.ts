// The data-access port: everything the gateway stores goes through `query`, on real PostgreSQL or embedded PGlite alike.
import pg from 'pg';

export interface Sql {
  query<R extends object = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<R[]>;
}

export interface Database extends Sql {
  /** Runs fn inside BEGIN/COMMIT on one connection; rolls back if fn throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /** "postgres" or "embedded", for logs and /readyz. */
  readonly kind: 'postgres' | 'embedded';
}

// bigint counters come back as strings by default; ours stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

export function poolDatabase(
  pool: pg.Pool,
  kind: Database['kind'],
  onClose: () => Promise<void> = async () => {},
): Database {
  return {
    kind,
    async query<R extends object>(text: string, values?: readonly unknown[]) {
      const res = await pool.query<R>(text, values as unknown[] | undefined);
      return res.rows;
    },
    async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      const tx: Sql = {
        async query<R extends object>(text: string, values?: readonly unknown[]) {
          return (await client.query<R>(text, values as unknown[] | undefined)).rows;
        },
      };
      try {
        await client.query('BEGIN');
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await pool.end();
      await onClose();
    },
  };
}

/** Real PostgreSQL. Every connection works in `schema`, so isolated runs can share one database. */
export async function openPostgres(url: string, schema: string, max = 10): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max, options: `-c search_path=${schema}` });
  pool.on('error', () => {}); // an idle client dropped by the server is replaced on next use
  const db = poolDatabase(pool, 'postgres');
  // CREATE SCHEMA IF NOT EXISTS is not safe against itself: gateways starting together on a new schema
  // would collide on the catalog's unique index. The advisory lock makes them take turns.
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`schema:${schema}`]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  });
  return db;
}
