// DATA_DIR holds the embedded database and the SMS outbox: members' phones, sign-up codes, coupon codes. Only
// the gateway's own user may reach any of it: DATA_DIR and every directory of ours below it 0700, every file
// 0600. What we made under it is tightened at each start, so a data directory left by an older version (PGlite
// unpacks its files 0666, and no umask changes that: it sets their modes explicitly) is closed too.
// Other entries a person put in DATA_DIR are left as they are; the 0700 directory already keeps others out.
import fs from 'node:fs';
import path from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** What the gateway keeps in DATA_DIR (see embedded.ts and outbox.ts). */
export const DATA_ENTRIES = ['pgdata', 'embedded-db.lock', 'outbox.ndjson'] as const;

/** Makes DATA_DIR 0700 (creating it if need be) and tightens everything the gateway keeps in it. */
export function preparePrivateDataDir(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  fs.chmodSync(dataDir, PRIVATE_DIR_MODE);
  for (const entry of DATA_ENTRIES) tightenTree(path.join(dataDir, entry));
}

/** Directories 0700 and files 0600 from `root` down; symbolic links are neither followed nor changed. */
export function tightenTree(root: string): void {
  const pending = [root];
  for (let at = pending.pop(); at !== undefined; at = pending.pop()) {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // not made yet, or gone meanwhile
      throw err;
    }
    if (stat.isSymbolicLink()) continue;
    const mode = stat.isDirectory() ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE;
    if ((stat.mode & 0o777) !== mode) fs.chmodSync(at, mode);
    if (stat.isDirectory()) for (const name of fs.readdirSync(at)) pending.push(path.join(at, name));
  }
}
