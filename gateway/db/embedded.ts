// The embedded default: PGlite persisted on disk, served to the same `pg` code through a private Unix socket.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, preparePrivateDataDir, tightenTree } from '../data-dir.js';
import { poolDatabase, type Database } from './database.js';

// PGlite is one backend session. The socket server multiplexes its connections onto that session message by
// message, which keeps transactions apart but not the extended protocol's unnamed statements and portals (two
// clients' Parse/Bind/Execute interleave: "portal does not exist"). So `pg` holds exactly one connection: every
// query and transaction waits its turn in the pool, which is what the single session does anyway. The server
// admits one spare connection so that a replacement is not refused while a dropped one is still being cleaned up.
const CONNECTIONS = 1;

function takeLock(lockFile: string): () => void {
  try {
    fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx', mode: PRIVATE_FILE_MODE });
  } catch {
    const holder = Number(fs.readFileSync(lockFile, 'utf8'));
    // This process counts too: two PGlite instances on one directory would corrupt it just the same.
    if (holder && isAlive(holder)) {
      throw new Error(`the embedded database in ${path.dirname(lockFile)} is in use by process ${holder}`);
    }
    fs.writeFileSync(lockFile, String(process.pid), { mode: PRIVATE_FILE_MODE }); // stale lock from a process that is gone
  }
  return () => fs.rmSync(lockFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function openEmbedded(dataDir: string, schema: string): Promise<Database> {
  const dbDir = path.join(dataDir, 'pgdata');
  preparePrivateDataDir(dataDir);
  fs.mkdirSync(dbDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const unlock = takeLock(path.join(dataDir, 'embedded-db.lock'));
  // Unix socket in a fresh 0700 directory: only this user can reach the database, and no TCP port is taken.
  const socketDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgw-'));
  let db: PGlite | undefined;
  let server: PGLiteSocketServer | undefined;
  try {
    db = await PGlite.create(dbDir);
    // PGlite unpacks a new database's files 0666 and rewrites a few at each start 0644; PostgreSQL makes its
    // own files 0600 afterwards. So once more, now that it has started.
    tightenTree(dbDir);
    server = new PGLiteSocketServer({ db, path: path.join(socketDir, '.s.PGSQL.5432'), maxConnections: CONNECTIONS + 1 });
    await server.start();
    const pool = new pg.Pool({ host: socketDir, port: 5432, user: 'postgres', database: 'postgres', max: CONNECTIONS });
    pool.on('error', () => {});
    const stopServer = server;
    const closeDb = db;
    // No named statements: a client that replaces one closed when idle meets the same session, which would
    // still hold the statements the old client prepared, under the names the new one would use.
    const database = poolDatabase(pool, 'embedded', async () => {
      await stopServer.stop();
      await closeDb.close();
      fs.rmSync(socketDir, { recursive: true, force: true });
      unlock();
    }, { prepare: false });
    await database.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    // The one connection is the one PGlite session, so one SET serves every later query.
    await database.query(`SET search_path TO ${schema}`);
    return database;
  } catch (err) {
    await server?.stop().catch(() => {});
    await db?.close().catch(() => {});
    fs.rmSync(socketDir, { recursive: true, force: true });
    unlock();
    throw err;
  }
}
