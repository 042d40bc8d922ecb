// DATA_DIR holds members' phones, sign-up codes and coupon codes (the outbox) and, on the embedded backend, the
// whole database: nothing in it may be readable or writable by group or others, whether the gateway made the
// directory or an older version left it open. Run on each backend in `backends` (the real one keeps only the
// outbox there).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig } from './support/backends.js';

/** Every entry under `root` (root too) that group or others may read, write or enter, with its mode. */
function loose(root: string, except: string[] = []): string[] {
  const found: string[] = [];
  const visit = (at: string) => {
    const stat = fs.lstatSync(at);
    const rel = path.relative(root, at) || '.';
    if (except.includes(rel)) return;
    if (stat.mode & 0o077) found.push(`${rel} ${(stat.mode & 0o777).toString(8)}`);
    if (stat.isDirectory()) for (const name of fs.readdirSync(at)) visit(path.join(at, name));
  };
  visit(root);
  return found;
}

/** How an older version left the tree: directories 0755, the database's files 0666, the outbox 0644. */
function loosen(root: string) {
  const visit = (at: string) => {
    const stat = fs.lstatSync(at);
    fs.chmodSync(at, stat.isDirectory() ? 0o755 : path.basename(at) === 'outbox.ndjson' ? 0o644 : 0o666);
    if (stat.isDirectory()) for (const name of fs.readdirSync(at)) visit(path.join(at, name));
  };
  visit(root);
}

const modeOf = (p: string) => fs.statSync(p).mode & 0o777;

describe.each(backends)('DATA_DIR on the %s backends', (backend) => {
  it('is made 0700 with every file 0600, and an older loose tree is tightened at start', async () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-data-'));
    const dataDir = path.join(parent, 'data'); // not there yet: the gateway makes it
    const outbox = path.join(dataDir, 'outbox.ndjson');
    const iso = isolatedConfig(backend, { DATA_DIR: dataDir });
    let gw: Gateway | undefined;
    try {
      gw = await startGateway(iso.config);
      // Something written to each: a sign-up code to the outbox, members to the database.
      const phone = '+14155550123';
      expect((await gw.app.inject({ method: 'POST', url: '/members/signup', payload: { phone } })).statusCode).toBe(202);
      for (let i = 0; i < 5; i++) {
        expect((await gw.app.inject({ method: 'POST', url: '/members', payload: { phone: `+1415555${7000 + i}`, timeZone: 'UTC' } })).statusCode).toBe(201);
      }
      await eventually(async () => (fs.existsSync(outbox) && fs.readFileSync(outbox, 'utf8').includes(phone)) || undefined);
      if (backend === 'embedded') {
        // The database's files are there too, and written to: a checkpoint puts them on disk now.
        await gw.deps.db.query('CHECKPOINT');
        expect(fs.readdirSync(path.join(dataDir, 'pgdata')).length).toBeGreaterThan(5);
      }
      expect(modeOf(dataDir)).toBe(0o700);
      expect(modeOf(outbox)).toBe(0o600);
      expect(loose(dataDir)).toEqual([]);
      await gw.close();
      gw = undefined;

      // A data directory an older version left open, with a file of someone else's in it.
      loosen(dataDir);
      fs.writeFileSync(path.join(dataDir, 'notes.txt'), 'not the gateway\'s');
      fs.chmodSync(path.join(dataDir, 'notes.txt'), 0o644);
      expect(loose(dataDir).length).toBeGreaterThan(backend === 'embedded' ? 100 : 2);
      gw = await startGateway(iso.config);
      expect(loose(dataDir, ['notes.txt'])).toEqual([]);
      // Not the gateway's to change; the 0700 directory keeps others from it already.
      expect(modeOf(path.join(dataDir, 'notes.txt'))).toBe(0o644);
      // And the database opened from the tightened tree still works.
      expect((await gw.app.inject({ method: 'POST', url: '/members', payload: { phone: '+14155557100', timeZone: 'UTC' } })).statusCode).toBe(201);
    } finally {
      await gw?.close();
      await iso.cleanup();
      fs.rmSync(parent, { recursive: true, force: true });
    }
  }, 240_000);
});
