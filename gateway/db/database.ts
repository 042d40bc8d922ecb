// The data-access port: everything the gateway stores goes through `query`, on real PostgreSQL or embedded PGlite alike.
import { createHash } from 'node:crypto';
import pg from 'pg';

export interface Sql {
  query<R extends object = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<R[]>;
}

/** A transaction's first statement, sent with its BEGIN in one round trip (its values go as quoted literals). */
export interface Opening {
  text: string;
  values: ReadonlyArray<string | number | Date | null>;
}

export interface Database extends Sql {
  /**
   * Runs fn inside BEGIN/COMMIT on one connection; rolls back if fn throws. With `opening`, that statement
   * runs right after BEGIN, in the same round trip, and fn gets its rows.
   */
  transaction<T>(fn: (tx: Sql, opened: Array<Record<string, unknown>>) => Promise<T>, opening?: Opening): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /** "postgres" or "embedded", for logs and /readyz. */
  readonly kind: 'postgres' | 'embedded';
}

// bigint counters come back as strings by default; ours stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

/**
 * Parameterised statements are prepared once per connection, under a name derived from their text: the
 * server parses them once and, for the busy ones, settles on a cached plan (planning the ingest statement
 * took longer than running it). Statement texts are fixed strings, so the set of names stays small.
 */
const statementNames = new Map<string, string>();

function statement(text: string, values: readonly unknown[] | undefined, prepare: boolean): pg.QueryConfig {
  if (values === undefined || !prepare) return { text, ...(values ? { values: values as unknown[] } : {}) };
  let name = statementNames.get(text);
  if (!name) {
    name = `s${createHash('sha1').update(text).digest('base64url').slice(0, 22)}`;
    statementNames.set(text, name);
  }
  return { name, text, values: values as unknown[] };
}

function inlineValues(client: pg.PoolClient, { text, values }: Opening): string {
  return text.replace(/\$(\d+)/g, (_, n: string) => {
    const v = values[Number(n) - 1];
    if (v === undefined) throw new Error(`opening statement: no value for $${n}`);
    if (v === null) return 'NULL';
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new Error(`opening statement: $${n} is not a finite number`);
      return String(v);
    }
    const text = v instanceof Date ? v.toISOString() : v;
    // What escapeLiteral returns for a string with no quote or backslash, without its walk over every character
    // (an upload's opening carries a hundred member ids).
    return NEEDS_ESCAPING.test(text) ? client.escapeLiteral(text) : `'${text}'`;
  });
}

const NEEDS_ESCAPING = /['\\]/;

export function poolDatabase(
  pool: pg.Pool,
  kind: Database['kind'],
  onClose: () => Promise<void> = async () => {},
  { prepare = true }: { prepare?: boolean } = {},
): Database {
  return {
    kind,
    async query<R extends object>(text: string, values?: readonly unknown[]) {
      const res = await pool.query<R>(statement(text, values, prepare));
      return res.rows;
    },
    async transaction<T>(fn: (tx: Sql, opened: Array<Record<string, unknown>>) => Promise<T>, opening?: Opening): Promise<T> {
      const client = await pool.connect();
      // A checked-out client has no listener of the pool's: a connection reset while it is ours would be an
      // unhandled 'error' event and end the process. The statement in flight fails on its own; the client is dropped.
      let broken = false;
      const onError = () => { broken = true; };
      client.on('error', onError);
      const tx: Sql = {
        async query<R extends object>(text: string, values?: readonly unknown[]) {
          return (await client.query<R>(statement(text, values, prepare))).rows;
        },
      };
      try {
        let opened: Array<Record<string, unknown>> = [];
        if (opening) {
          // The simple protocol carries several statements in one message, but no parameters: the values are
          // quoted by the driver's own escaping.
          const results = await client.query(`BEGIN; ${inlineValues(client, opening)}`) as unknown as pg.QueryResult[];
          opened = results[1]!.rows;
        } else {
          await client.query('BEGIN');
        }
        const result = await fn(tx, opened);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        // A connection that cannot even roll back is dead (reset, timed out): the pool must not hand it out again.
        await client.query('ROLLBACK').catch(() => { broken = true; });
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken);
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

/** Bounds on waiting for PostgreSQL (see DatabaseLimits in config.ts); none when absent. */
export interface PoolLimits {
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  queryTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
  keepAliveDelayMs: number;
}

/** Real PostgreSQL. Every connection works in `schema`, so isolated runs can share one database. */
export async function openPostgres(url: string, schema: string, max = 10, limits?: PoolLimits): Promise<Database> {
  const settings = [`-c search_path=${schema}`];
  if (limits) {
    settings.push(`-c statement_timeout=${limits.statementTimeoutMs}`, `-c idle_in_transaction_session_timeout=${limits.idleInTransactionTimeoutMs}`);
  }
  const pool = new pg.Pool({
    connectionString: url,
    max,
    options: settings.join(' '),
    ...(limits ? {
      connectionTimeoutMillis: limits.connectTimeoutMs,
      query_timeout: limits.queryTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: limits.keepAliveDelayMs,
    } : {}),
  });
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

/** SQLSTATEs of a transaction PostgreSQL aborted to break a deadlock or a serialization conflict: nothing of it was kept. */
const ABORTED = new Set(['40P01', '40001']);

export const wasAborted = (err: unknown): boolean => ABORTED.has((err as { code?: string } | null)?.code ?? '');

/** Runs a transaction again when PostgreSQL aborted it as a deadlock's victim (up to `attempts` runs in all). */
export async function retryingAborted<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || !wasAborted(err)) throw err;
    }
  }
}
