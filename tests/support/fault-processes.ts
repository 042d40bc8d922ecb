// Real processes for the fault tests: gateways (`node --import tsx gateway/server.ts`), a Redis of the test's
// own, and the beacon agent. Each is spawned with the environment it would have in production, can be killed
// with any signal, and keeps its output so that a failing test can show what the process said.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port nobody listens on right now (the kernel's pick, released at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Everything the process wrote, stdout and stderr interleaved. */
  output(): string;
  alive(): boolean;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Every process a test file spawned, so that afterAll can make sure none outlives it. */
const spawned = new Set<Proc>();

export function spawnProcess(name: string, command: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 400_000) out = out.slice(-200_000); // bounded: only the tail matters when reading a failure
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let done = false;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    done = true;
    resolve(code);
  }));
  const proc: Proc = {
    name, child, exited,
    output: () => out,
    alive: () => !done,
    async kill(signal = 'SIGKILL') {
      if (!done) child.kill(signal);
      await exited;
    },
  };
  spawned.add(proc);
  void exited.then(() => spawned.delete(proc));
  return proc;
}

/** Kills every process still running (afterAll). */
export async function killAll(): Promise<void> {
  await Promise.all([...spawned].map((p) => p.kill('SIGKILL')));
}

export interface GatewayProcess extends Proc {
  readonly url: string;
  readonly port: number;
  /** Resolves once /readyz answers 200; throws with the process's output if it exits or takes longer. */
  ready(timeoutMs?: number): Promise<void>;
}

/**
 * A gateway process on the given environment (DATABASE_URL, REDIS_URL, ROLE...). PORT is chosen here unless
 * given, so that a gateway restarted on the same port is found at the same address.
 */
export async function spawnGateway(name: string, env: Record<string, string>, port?: number): Promise<GatewayProcess> {
  const p = port ?? await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-fault-'));
  const proc = spawnProcess(name, process.execPath, ['--import', 'tsx', 'gateway/server.ts'], {
    DATA_DIR: dataDir, LOG_LEVEL: 'warn', SMS_RATE_PER_SECOND: '0',
    RATE_LIMIT_PUBLIC_PER_MINUTE: '1000000', RATE_LIMIT_MEMBER_PER_MINUTE: '1000000',
    ...env, PORT: String(p), HOST: '127.0.0.1',
  });
  void proc.exited.then(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const url = `http://127.0.0.1:${p}`;
  return Object.assign(proc, {
    url, port: p,
    async ready(timeoutMs = 60_000) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (!proc.alive()) throw new Error(`${name} exited before it was ready:\n${proc.output().slice(-4000)}`);
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
        if (res?.status === 200) return;
        await sleep(100);
      }
      throw new Error(`${name} was not ready within ${timeoutMs} ms:\n${proc.output().slice(-4000)}`);
    },
  });
}

export interface RedisProcess {
  readonly url: string;
  readonly port: number;
  /** Starts it, empty (no RDB, no AOF), and waits until it answers PING; nothing when it runs already. */
  start(): Promise<void>;
  /** SIGKILL: everything it held is gone. */
  kill(): Promise<void>;
  /** SIGSTOP: connections stay open and nothing answers, as in a partition. */
  freeze(): void;
  thaw(): void;
}

/** A Redis of the test's own, on a free port, holding nothing on disk: a restart is a restart empty. */
export async function redisOfOwn(): Promise<RedisProcess> {
  const port = await freePort();
  let proc: Proc | undefined;
  const ping = () => new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(500, () => socket.destroy());
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(false));
    socket.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      socket.destroy();
    });
    socket.write('PING\r\n');
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      if (proc?.alive()) return; // running already: a second one could not take the port
      proc = spawnProcess(`redis:${port}`, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {});
      const until = Date.now() + 10_000;
      while (!(await ping())) {
        if (!proc.alive() || Date.now() > until) throw new Error(`redis-server did not start:\n${proc.output()}`);
        await sleep(50);
      }
    },
    async kill() {
      await proc?.kill('SIGKILL');
    },
    freeze: () => void proc?.child.kill('SIGSTOP'),
    thaw: () => void proc?.child.kill('SIGCONT'),
  };
}

/** `npm run agent`'s process: the beacon agent with the given configuration file. */
export function spawnAgent(configFile: string): Proc {
  return spawnProcess('agent', process.execPath, ['--import', 'tsx', 'beacon-agent/main.ts'], { AGENT_CONFIG: configFile });
}
