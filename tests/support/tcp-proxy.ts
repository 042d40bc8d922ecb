// A TCP proxy on 127.0.0.1 in front of a server (PostgreSQL in the fault tests), to cut it off two ways:
// - reset: every connection through it is reset (RST) and new ones are reset as they come, as when the server's
//   host is gone or restarted: the client learns at once;
// - blackhole: connections stay open but bytes go nowhere, either way, as in a network partition: the client
//   learns only from its own timeouts or keepalive.
// `pass` lets traffic through again. Connections stalled by a blackhole are reset then, both ends, as TCP
// would end them after its retransmission timeout: a server session stuck mid-transaction holds no lock after.
import net from 'node:net';

export type ProxyMode = 'pass' | 'reset' | 'blackhole';

export interface TcpProxy {
  readonly port: number;
  /** Changes how connections are treated; `pass` heals (connections held in a blackhole are reset). */
  set(next: ProxyMode): void;
  /** Connections accepted since the start. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let current: ProxyMode = 'pass';
  let accepted = 0;
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; stalled: boolean }>();

  const reset = (s: net.Socket) => (s.destroyed ? undefined : s.resetAndDestroy());

  const server = net.createServer((client) => {
    accepted += 1;
    client.on('error', () => {});
    if (current === 'reset') return reset(client);
    const upstream = net.connect(target.port, target.host);
    upstream.on('error', () => reset(client));
    const pair = { client, upstream, stalled: current === 'blackhole' };
    pairs.add(pair);
    // Bytes are forwarded by hand so that a blackhole can swallow them without closing anything.
    client.on('data', (d) => void (pair.stalled || upstream.write(d)));
    upstream.on('data', (d) => void (pair.stalled || client.write(d)));
    const end = () => {
      if (pair.stalled) return; // kept until the partition ends
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    port: (server.address() as net.AddressInfo).port,
    get accepted() {
      return accepted;
    },
    set(next) {
      current = next;
      for (const pair of pairs) {
        if (next === 'blackhole') {
          pair.stalled = true;
        } else if (next === 'reset' || pair.stalled) {
          reset(pair.client);
          reset(pair.upstream);
          pairs.delete(pair);
        }
      }
    },
    close: () => new Promise<void>((resolve) => {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      server.close(() => resolve());
    }),
  };
}
