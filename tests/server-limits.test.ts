// Slow and surplus connections against a real listening port on 127.0.0.1: a client that never finishes its
// headers or its body, or idles on a kept-alive connection, is closed after the configured time; connections
// beyond the cap are closed on arrival; normal requests still work. HTTP limits do not depend on the backend,
// so this runs on the embedded one. Every wait is bounded.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from './support/gateway.js';
import { isolatedConfig, type Isolated } from './support/backends.js';

// Far above every configured limit, far below Node's defaults (60 s for headers, 300 s for a request).
const BOUND_MS = 8_000;

interface Opened {
  socket: net.Socket;
  /** Everything the server sent, so far. */
  received(): string;
  /** Resolves when the server closes the connection (or at BOUND_MS, with closed: false). */
  closed: Promise<{ closed: boolean; afterMs: number }>;
}

/** Polls `ok` every 20 ms, for at most BOUND_MS. */
async function until(ok: () => boolean | Promise<boolean>) {
  for (let waited = 0; waited < BOUND_MS && !(await ok()); waited += 20) await new Promise((r) => setTimeout(r, 20));
}

function open(port: number): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const start = Date.now();
    socket.on('data', (c) => (data += c.toString()));
    socket.on('error', () => {}); // a reset is one way of being closed
    const closed = new Promise<{ closed: boolean; afterMs: number }>((done) => {
      const timer = setTimeout(() => done({ closed: false, afterMs: Date.now() - start }), BOUND_MS);
      socket.on('close', () => {
        clearTimeout(timer);
        done({ closed: true, afterMs: Date.now() - start });
      });
    });
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
    socket.once('error', reject);
  });
}

const GET = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';

async function listen(env: Record<string, string>): Promise<{ gw: Gateway; iso: Isolated; port: number }> {
  const iso = isolatedConfig('embedded', env);
  const gw = await startGateway(iso.config);
  await gw.app.listen({ port: 0, host: '127.0.0.1' });
  return { gw, iso, port: (gw.app.server.address() as AddressInfo).port };
}

describe('HTTP connection limits on a real port', () => {
  let slow: Awaited<ReturnType<typeof listen>>;
  let capped: Awaited<ReturnType<typeof listen>>;
  const trickles: NodeJS.Timeout[] = [];

  beforeAll(async () => {
    [slow, capped] = await Promise.all([
      listen({
        HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '600', HTTP_CONNECTION_TIMEOUT_MS: '6000',
        HTTP_KEEP_ALIVE_TIMEOUT_MS: '300', HTTP_MAX_REQUESTS_PER_SOCKET: '2',
      }),
      // Long timeouts here, so that the connections held open are held by the cap alone.
      listen({ HTTP_MAX_CONNECTIONS: '5' }),
    ]);
  }, 120_000);

  afterAll(async () => {
    for (const t of trickles) clearInterval(t);
    for (const s of [slow, capped]) {
      await s?.gw.close();
      await s?.iso.cleanup();
    }
  });

  const trickle = (socket: net.Socket, line: () => string) => {
    const t = setInterval(() => socket.writable && socket.write(line()), 100);
    trickles.push(t);
    return t;
  };

  it('carries each configured limit on the server', () => {
    const server = slow.gw.app.server;
    expect({
      headers: server.headersTimeout, request: server.requestTimeout, idle: server.timeout,
      keepAlive: server.keepAliveTimeout, perSocket: server.maxRequestsPerSocket, cap: capped.gw.app.server.maxConnections,
    }).toEqual({ headers: 300, request: 600, idle: 6000, keepAlive: 300, perSocket: 2, cap: 5 });
  });

  it('closes a slowloris connection whose headers never end, and one whose body never ends', async () => {
    const loris = await open(slow.port);
    loris.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    let n = 0;
    trickle(loris.socket, () => `X-Slow-${++n}: a\r\n`);
    const body = await open(slow.port);
    body.socket.write('POST /members HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    trickle(body.socket, () => ' ');
    const silent = await open(slow.port);

    for (const [what, c] of [['headers trickled', loris], ['body trickled', body], ['nothing sent', silent]] as const) {
      const { closed } = await c.closed;
      expect({ what, closed }).toEqual({ what, closed: true });
      // Answered 408 or simply closed; never a 2xx.
      expect(c.received()).not.toMatch(/^HTTP\/1\.1 2/);
    }
  });

  it('closes an idle kept-alive connection, and a connection after its last allowed request', async () => {
    const idle = await open(slow.port);
    idle.socket.write(GET);
    // Closed by the keep-alive timeout (300 ms), well before the idle-socket timeout (6 s) could close it.
    await until(() => /^HTTP\/1\.1 200/.test(idle.received()));
    const soon = new Promise<{ closed: boolean }>((r) => setTimeout(() => r({ closed: false }), 4_000));
    expect(await Promise.race([idle.closed, soon])).toMatchObject({ closed: true });

    const busy = await open(slow.port);
    busy.socket.write(GET + GET + GET);
    expect(await busy.closed).toMatchObject({ closed: true });
    const statuses = [...busy.received().matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    expect(statuses.slice(0, 2)).toEqual(['200', '200']);
    expect(statuses.filter((s) => s === '200')).toHaveLength(2);
    expect(busy.received()).toMatch(/connection: close/i);
  });

  it('closes connections beyond the cap on arrival, and serves again once they are gone', async () => {
    const held: Opened[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await open(capped.port);
      c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // headers left open: a slow client
      held.push(c);
    }
    const connections = () => new Promise<number>((r) => capped.gw.app.server.getConnections((_e, count) => r(count)));
    // The server has taken all five before the sixth knocks.
    await until(async () => (await connections()) >= 5);
    const surplus = await open(capped.port).catch(() => null);
    if (surplus) {
      surplus.socket.write(GET);
      expect((await surplus.closed).closed).toBe(true);
      expect(surplus.received()).toBe('');
    }
    for (const c of held) c.socket.destroy();
    for (const c of held) await c.closed;
    await until(async () => (await connections()) < 5);
    // Normal requests still work, on both servers.
    for (const port of [capped.port, slow.port]) {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(BOUND_MS) });
      expect(res.status).toBe(200);
    }
  });
});
