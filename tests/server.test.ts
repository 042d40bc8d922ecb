// The real process, as `npm start` runs it: refuses bad config by name, serves, and shuts down cleanly on SIGTERM.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
// As `npm start` runs it: node itself with tsx's loader, so signals reach the gateway with no relay between.
function run(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/server.ts'], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

describe('the gateway process', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-proc-'));
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('refuses to start on a bad variable and names it', async () => {
    const p = run({ PORT: 'eighty', DATA_DIR: dataDir });
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('Invalid configuration: PORT must be a whole number, got "eighty"');
  });

  // Generous limit: a cold tsx start plus a fresh embedded database on a busy 2-core machine.
  it('serves on the embedded default and drains on SIGTERM, releasing the data directory', { timeout: 90_000 }, async () => {
    const p = run({ PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listen line in: ${p.output()}`)), 60_000);
      const poll = setInterval(() => {
        const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(p.output());
        if (m) {
          clearInterval(poll);
          clearTimeout(timer);
          resolve(m[1]!);
        }
      }, 50);
    });
    const ready = await fetch(`${url}/readyz`);
    expect(await ready.json()).toEqual({ status: 'ready', database: 'embedded', queue: 'in-process' });
    expect(fs.existsSync(path.join(dataDir, 'embedded-db.lock'))).toBe(true);

    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.output()).toContain('SIGTERM: draining and closing');
    expect(fs.existsSync(path.join(dataDir, 'embedded-db.lock'))).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'pgdata'))).toBe(true);
  });
});
