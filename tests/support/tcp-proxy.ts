// A TCP proxy on 127.0.0.1 in front of a real server, to cut it the ways a network fails: 'reset' refuses
// new connections and resets open ones; 'blackhole' accepts and forwards nothing, as a partition does.
import net from 'node:net';

export type ProxyMode = 'pass' | 'reset' | 'blackhole';

export interface TcpProxy {
  port: number;
  /** Changes how connections are treated; 'pass' heals (connections held in a blackhole are dropped). */
  set(mode: ProxyMode): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = 'pass';
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket | null }>();

  const server = net.createServer((client) => {
    if (mode === 'reset') return void client.resetAndDestroy();
    const pair = { client, upstream: null as net.Socket | null };
    pairs.add(pair);
    client.on('error', () => {});
    client.on('close', () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (mode === 'blackhole') return; // held open, never answered
    const upstream = net.connect(target.port, target.host);
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    port: (server.address() as net.AddressInfo).port,
    set(next) {
      const previous = mode;
      mode = next;
      for (const pair of pairs) {
        if (next === 'reset') {
          pair.upstream?.destroy();
          pair.client.resetAndDestroy();
        } else if (next === 'blackhole' && pair.upstream) {
          // Bytes stop in both directions: nothing is read, nothing delivered.
          pair.client.unpipe(pair.upstream);
          pair.upstream.unpipe(pair.client);
          pair.client.pause();
          pair.upstream.pause();
        } else if (next === 'pass' && previous === 'blackhole') {
          pair.upstream?.destroy();
          pair.client.destroy();
        }
      }
    },
    async close() {
      for (const pair of pairs) {
        pair.upstream?.destroy();
        pair.client.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
