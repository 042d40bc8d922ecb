// Fault: the test's own Redis killed during a burst of check-ins that win offers, and restarted empty (no RDB,
// no AOF) a few seconds later; an API process and a worker process keep running. Check-ins answer once their
// decision is committed (never waiting on Redis); every acknowledged offer is sent once or dropped stale and
// counted; the hourly retention schedule is back in Redis without any restart.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { realUrls } from './support/backends.js';
import { killAll, redisOfOwn, spawnGateway } from './support/fault-processes.js';
import { attemptsOf, openFaultWorld, tallyOffers, type CheckinResult, type FaultWorld } from './support/fault-world.js';

const real = Boolean(realUrls.databaseUrl && realUrls.redisUrl);
const MEMBERS = 120;
const BURST_MS = 9000;
const KILL_AT_MS = 2500;
const DOWN_MS = 4000;
/** A client gives up on an answer after this long: a check-in that waits on Redis is a hang. */
const CLIENT_TIMEOUT_MS = 4000;
/** From Redis's return until every acknowledged offer is settled: a few reconciler intervals on a busy machine. */
const RECOVERY_BOUND_MS = 30_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(real)('fault: Redis restarted empty during a burst', () => {
  let world: FaultWorld | undefined;
  afterAll(async () => {
    await killAll();
    await world?.close();
  });

  it('sends every acknowledged offer once or counts it stale, and registers the retention schedule again', { timeout: 150_000 }, async () => {
    world = await openFaultWorld();
    const redis = await redisOfOwn();
    await redis.start();
    const env = (role: string) => world!.env({ REDIS_URL: redis.url, ROLE: role });
    const [api, worker] = await Promise.all([spawnGateway('api', env('api')), spawnGateway('worker', env('worker'))]);
    await Promise.all([api.ready(), worker.ready()]);
    await world.checkinCampaign(api.url);
    const members = await world.seedMembers(MEMBERS);

    const t0 = Date.now();
    const outage = (async () => {
      await sleep(KILL_AT_MS);
      await redis.kill();
      const killedAt = Date.now();
      await sleep(DOWN_MS);
      await redis.start();
      return { killedAt, back: Date.now() };
    })();
    const results: CheckinResult[] = await Promise.all(members.map(async (m, i) => {
      await sleep((i * BURST_MS) / MEMBERS);
      return world!.checkin(() => api.url, m, { timeoutMs: CLIENT_TIMEOUT_MS, deadlineMs: 30_000 });
    }));
    const { killedAt, back } = await outage;
    const during = results.filter((r) => r.startedAt >= killedAt && r.startedAt < back);

    const tally = await tallyOffers(world, results, 60_000);
    const attempts = attemptsOf(results);
    // The repeatable retention job, lost with Redis's data, is registered again by the running worker.
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const jobs = new Queue('jobs', { connection, prefix: world.queuePrefix });
    let scheduledAt: number | null = null;
    for (const until = Date.now() + 20_000; Date.now() < until; await sleep(200)) {
      if (await jobs.getJobScheduler('repeat-retention.purge')) {
        scheduledAt = Date.now();
        break;
      }
    }
    await jobs.close();
    await connection.quit();

    console.log(`[fault] Redis killed ${KILL_AT_MS} ms into a ${MEMBERS}-check-in burst, back empty after ${back - killedAt} ms: `
      + `${tally.acknowledged} offers acknowledged (${during.length} check-ins began during the outage), ${tally.sentOnce} sent once, `
      + `${tally.stale} stale (counter ${tally.counted}), ${tally.lost.length} lost, ${tally.duplicated.length} duplicated, ${tally.unacknowledged.length} sent unacknowledged; `
      + `last offer ${tally.lastSentAt ? tally.lastSentAt - back : '-'} ms after Redis returned; oldest offer at send ${Math.max(0, ...tally.ageAtSend)} ms; `
      + `slowest answer ${attempts.slowestMs} ms, ${attempts.noAnswer.length} attempts unanswered, ${attempts.unavailable.length} 503, ${attempts.errors5xx.length} other 5xx; `
      + `retention schedule back ${scheduledAt ? `${scheduledAt - back} ms after Redis` : 'never (20 s)'}; burst took ${Date.now() - t0} ms`);

    expect(attempts.errors5xx.map((a) => `${a.status} ${a.body.error?.code}`)).toEqual([]);
    expect(attempts.noAnswer.map((a) => `${a.error} after ${Math.round(a.ms)} ms`)).toEqual([]);
    expect(attempts.unavailable.filter((a) => !a.retryAfter)).toEqual([]);
    expect(results.every((r) => r.final.status === 202 && r.outcome === 'offer_queued')).toBe(true);
    expect(tally.lost).toEqual([]);
    expect(tally.duplicated).toEqual([]);
    expect(tally.unacknowledged).toEqual([]);
    expect(tally.sentOnce + tally.stale).toBe(tally.acknowledged);
    expect(tally.counted).toBeGreaterThanOrEqual(tally.stale);
    expect(tally.lastSentAt - back).toBeLessThan(RECOVERY_BOUND_MS);
    expect(scheduledAt).not.toBeNull();
    expect(api.alive() && worker.alive()).toBe(true);
  });
});
