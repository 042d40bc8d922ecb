// Fault: PostgreSQL cut off from a gateway process by a TCP proxy, first by reset (every connection refused at
// once), then by blackhole (a partition: bytes go nowhere, nothing is refused), while members keep checking in.
// Clients get 503 DATABASE_UNAVAILABLE with Retry-After within a bounded time, never a 500 or a hang; once the
// path is back, every acknowledged offer is sent once or dropped stale and counted.
import { afterAll, describe, expect, it } from 'vitest';
import { realUrls } from './support/backends.js';
import { killAll, redisOfOwn, spawnGateway } from './support/fault-processes.js';
import { attemptsOf, http, openFaultWorld, tallyOffers, type CheckinResult, type FaultWorld } from './support/fault-world.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

const real = Boolean(realUrls.databaseUrl && realUrls.redisUrl);
const MEMBERS = 90;
const EVERY_MS = 200;
const RESET = { from: 3000, to: 6000 };
const BLACKHOLE = { from: 8000, to: 18_000 };
/**
 * The gateway's database limits for this test: statements 3 s, so the client-side query timeout (what bounds a
 * request in a partition) is 8 s; a connection, or a free one, is waited for 5 s (the default).
 */
const LIMITS = { DATABASE_STATEMENT_TIMEOUT_MS: '3000', DATABASE_CONNECT_TIMEOUT_MS: '5000' };
/** A client gives up on an answer after this long: past the gateway's limits and a busy machine's delays, a hang. */
const CLIENT_TIMEOUT_MS = 12_000;
/** From the path's return until the gateway is ready and every acknowledged offer is settled. */
const RECOVERY_BOUND_MS = 30_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(real)('fault: PostgreSQL cut through a proxy', () => {
  let world: FaultWorld | undefined;
  let proxy: TcpProxy | undefined;
  afterAll(async () => {
    await killAll();
    await proxy?.close();
    await world?.close();
  });

  it('answers 503 with Retry-After during a reset and a blackhole, and loses no acknowledged offer', { timeout: 150_000 }, async () => {
    world = await openFaultWorld();
    const direct = new URL(realUrls.databaseUrl!);
    proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    const throughProxy = new URL(direct);
    throughProxy.hostname = '127.0.0.1';
    throughProxy.port = String(proxy.port);
    const redis = await redisOfOwn();
    await redis.start();
    const gw = await spawnGateway('gateway', world.env({ REDIS_URL: redis.url, ROLE: 'all', DATABASE_URL: throughProxy.href, ...LIMITS }));
    await gw.ready();
    await world.checkinCampaign(gw.url);
    const members = await world.seedMembers(MEMBERS);

    const t0 = Date.now();
    const marks: Record<string, number> = {};
    const faults = (async () => {
      for (const [at, mode] of [[RESET.from, 'reset'], [RESET.to, 'pass'], [BLACKHOLE.from, 'blackhole'], [BLACKHOLE.to, 'pass']] as const) {
        await sleep(t0 + at - Date.now());
        proxy!.set(mode);
        marks[`${mode}@${at}`] = Date.now();
      }
    })();
    const results: CheckinResult[] = await Promise.all(members.map(async (m, i) => {
      await sleep(i * EVERY_MS);
      return world!.checkin(() => gw.url, m, { timeoutMs: CLIENT_TIMEOUT_MS, deadlineMs: 30_000 });
    }));
    await faults;
    if (!gw.alive()) console.log(`[fault] the gateway died:\n${gw.output().slice(-3000)}`);
    expect(gw.alive()).toBe(true);
    const healedAt = marks[`pass@${BLACKHOLE.to}`]!;
    let readyAt = 0;
    for (const until = Date.now() + RECOVERY_BOUND_MS; Date.now() < until && !readyAt; await sleep(100)) {
      if ((await http(`${gw.url}/readyz`, { timeoutMs: 2000 })).status === 200) readyAt = Date.now();
    }
    const tally = await tallyOffers(world, results, 60_000);
    const attempts = attemptsOf(results);
    const byCode = new Map<string, number>();
    for (const a of attempts.unavailable) byCode.set(String(a.body.error?.code), (byCode.get(String(a.body.error?.code)) ?? 0) + 1);
    // Answers to check-ins that began inside the blackhole: how long a client waited for its 503.
    const blackholed = results.filter((r) => r.startedAt >= t0 + BLACKHOLE.from && r.startedAt < t0 + BLACKHOLE.to).map((r) => r.attempts[0]!);
    const firstOk = Math.min(...attempts.all.filter((a) => a.status === 202 && a.at >= healedAt).map((a) => a.at));
    console.log(`[fault] PostgreSQL cut by reset for ${RESET.to - RESET.from} ms, then by blackhole for ${BLACKHOLE.to - BLACKHOLE.from} ms: `
      + `${attempts.all.length} attempts for ${MEMBERS} check-ins: ${attempts.unavailable.length} 503 (${[...byCode].map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}), `
      + `${attempts.errors5xx.length} other 5xx (${[...new Set(attempts.errors5xx.map((a) => `${a.status} ${a.body.error?.code}`))].join(', ')}), ${attempts.noAnswer.length} unanswered in ${CLIENT_TIMEOUT_MS} ms; `
      + `slowest answer during the blackhole ${Math.round(Math.max(0, ...blackholed.filter((a) => a.status !== 0).map((a) => a.ms)))} ms; `
      + `ready ${readyAt ? readyAt - healedAt : 'never'} ms after the path returned; first 202 ${Number.isFinite(firstOk) ? Math.round(firstOk - healedAt) : '-'} ms from its return; `
      + `${tally.sentOnce}/${tally.acknowledged} offers sent once, ${tally.stale} stale, ${tally.lost.length} lost, ${tally.duplicated.length} duplicated, ${tally.unacknowledged.length} sent unacknowledged; `
      + `last offer ${tally.lastSentAt ? tally.lastSentAt - healedAt : '-'} ms after the return`);

    expect(attempts.errors5xx.map((a) => `${a.status} ${a.body.error?.code}`)).toEqual([]);
    expect(attempts.noAnswer.map((a) => `${a.error} after ${Math.round(a.ms)} ms`)).toEqual([]);
    expect(attempts.unavailable.length).toBeGreaterThan(0);
    expect(attempts.unavailable.filter((a) => !a.retryAfter || a.body.error?.code !== 'DATABASE_UNAVAILABLE')).toEqual([]);
    expect(results.every((r) => r.final.status === 202 && r.outcome === 'offer_queued')).toBe(true);
    expect(tally.lost).toEqual([]);
    expect(tally.duplicated).toEqual([]);
    expect(tally.unacknowledged).toEqual([]);
    expect(tally.sentOnce + tally.stale).toBe(tally.acknowledged);
    expect(readyAt).toBeGreaterThan(0);
    expect(tally.lastSentAt - healedAt).toBeLessThan(RECOVERY_BOUND_MS);
    expect(gw.alive()).toBe(true);
  });
});
