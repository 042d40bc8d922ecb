// One contract for both queue adapters: the in-process default always, BullMQ when REDIS_URL is set.
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { bullmqQueue } from '../gateway/queue/bullmq.js';
import { inProcessQueue } from '../gateway/queue/in-process.js';
import { TerminalJobError, type JobContext } from '../gateway/queue/jobs.js';
import type { JobQueue, QueueOptions, RetryPolicy } from '../gateway/queue/port.js';
import { eventually, realUrls, uniqueName } from './support/backends.js';

type Maker = (policy: RetryPolicy, options?: QueueOptions) => Promise<{ queue: JobQueue; cleanup: () => Promise<void> }>;

const makers: Array<[string, Maker]> = [['in-process', async (policy, options) => ({ queue: inProcessQueue(policy, options), cleanup: async () => {} })]];
if (realUrls.redisUrl) {
  makers.push([
    'bullmq',
    async (policy, options) => {
      const prefix = uniqueName('qt');
      const queue = await bullmqQueue(realUrls.redisUrl!, prefix, policy, options);
      return {
        queue,
        cleanup: async () => {
          const redis = new Redis(realUrls.redisUrl!);
          const keys = await redis.keys(`${prefix}:*`);
          if (keys.length) await redis.del(...keys);
          await redis.quit();
        },
      };
    },
  ]);
}

describe.each(makers)('the %s queue', (_name, make) => {
  const opened: Array<{ queue: JobQueue; cleanup: () => Promise<void> }> = [];
  const open = async (policy: RetryPolicy, options?: QueueOptions) => {
    const q = await make(policy, options);
    opened.push(q);
    return q.queue;
  };
  afterEach(async () => {
    for (const q of opened.splice(0)) {
      await q.queue.close();
      await q.cleanup();
    }
  });

  it('runs a job with its payload and attempt count', async () => {
    const queue = await open({ attempts: 3, backoffMs: 10 });
    const seen: Array<[string, JobContext]> = [];
    queue.startWorker({ 'sms.send': async (p, ctx) => void seen.push([p.deliveryId, ctx]) });
    await queue.enqueue('sms.send', { deliveryId: 'd1' });
    await eventually(async () => (seen.length === 1 ? true : undefined));
    expect(seen).toEqual([['d1', { attempt: 1, maxAttempts: 3 }]]);
    await queue.ping();
  });

  it('retries with growing delays and then succeeds, leaving no dead letter', async () => {
    const queue = await open({ attempts: 4, backoffMs: 40 });
    const times: number[] = [];
    queue.startWorker({
      'sms.send': async (_p, ctx) => {
        times.push(Date.now());
        if (ctx.attempt < 3) throw new Error(`flaky ${ctx.attempt}`);
      },
    });
    await queue.enqueue('sms.send', { deliveryId: 'd2' });
    await eventually(async () => (times.length === 3 ? true : undefined));
    await new Promise((r) => setTimeout(r, 100));
    expect(times).toHaveLength(3);
    const gaps = [times[1]! - times[0]!, times[2]! - times[1]!];
    expect(gaps[0]).toBeGreaterThanOrEqual(35); // 40 ms, then 80 ms
    expect(gaps[1]).toBeGreaterThanOrEqual(75);
    expect(await queue.deadLetters()).toEqual([]);
  });

  it('keeps a job that fails every attempt as a dead letter with its error', async () => {
    const queue = await open({ attempts: 3, backoffMs: 5 });
    let runs = 0;
    queue.startWorker({
      'sms.send': async () => {
        runs++;
        throw new Error('carrier down');
      },
    });
    await queue.enqueue('sms.send', { deliveryId: 'd3' }, { jobId: 'job-d3' });
    const dead = await eventually(async () => {
      const d = await queue.deadLetters();
      return d.length ? d : undefined;
    });
    expect(runs).toBe(3);
    expect(dead).toEqual([
      { id: 'job-d3', name: 'sms.send', payload: { deliveryId: 'd3' }, attempts: 3, error: 'carrier down', failedAt: expect.any(String) },
    ]);
  });

  it('sends a terminal failure straight to the dead letters', async () => {
    const queue = await open({ attempts: 5, backoffMs: 5 });
    let runs = 0;
    queue.startWorker({
      'sms.send': async () => {
        runs++;
        throw new TerminalJobError('number is not a mobile');
      },
    });
    await queue.enqueue('sms.send', { deliveryId: 'd4' });
    const dead = await eventually(async () => {
      const d = await queue.deadLetters();
      return d.length ? d : undefined;
    });
    expect(runs).toBe(1);
    expect(dead[0]).toMatchObject({ attempts: 1, error: 'number is not a mobile' });
  });

  it('runs a job id once however often it is enqueued', async () => {
    const queue = await open({ attempts: 1, backoffMs: 5 });
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    queue.startWorker({
      'sms.send': async () => {
        runs++;
        await gate;
      },
    });
    await Promise.all([1, 2, 3].map(() => queue.enqueue('sms.send', { deliveryId: 'd5' }, { jobId: 'same' })));
    await eventually(async () => (runs === 1 ? true : undefined));
    await queue.enqueue('sms.send', { deliveryId: 'd5' }, { jobId: 'same' });
    release();
    await new Promise((r) => setTimeout(r, 150));
    expect(runs).toBe(1);
  });

  it('lets a running job finish when closing', async () => {
    const queue = await open({ attempts: 1, backoffMs: 5 });
    let finished = false;
    let started = false;
    queue.startWorker({
      'sms.send': async () => {
        started = true;
        await new Promise((r) => setTimeout(r, 200));
        finished = true;
      },
    });
    await queue.enqueue('sms.send', { deliveryId: 'd6' });
    await eventually(async () => (started ? true : undefined));
    await queue.close();
    expect(finished).toBe(true);
  });

  it('paces SMS jobs to the sender\'s rate, and lets other jobs through at once', async () => {
    const queue = await open({ attempts: 1, backoffMs: 1 }, { pacedPerSecond: 4 });
    const started: Array<{ name: string; at: number }> = [];
    queue.startWorker({
      'sms.system': async () => void started.push({ name: 'sms', at: Date.now() }),
      'retention.purge': async () => void started.push({ name: 'purge', at: Date.now() }),
    });
    const t0 = Date.now();
    for (let i = 0; i < 6; i++) await queue.enqueue('sms.system', { memberId: `m${i}`, text: 't' });
    await queue.enqueue('retention.purge', {});
    await eventually(async () => (started.filter((s) => s.name === 'sms').length === 6 ? true : undefined));
    const sms = started.filter((s) => s.name === 'sms').map((s) => s.at - t0).sort((a, b) => a - b);
    // At 4 a second, six sends cannot all start within the first second: the sixth waits for the next one.
    expect(sms[5]!).toBeGreaterThanOrEqual(900);
    expect(started.find((s) => s.name === 'purge')!.at - t0).toBeLessThan(sms[5]!);
  });
  it('tells whether a job id is live: waiting, delayed or running, and not once it finished', async () => {
    const queue = await open({ attempts: 1, backoffMs: 5 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let runs = 0;
    queue.startWorker({ 'sms.send': async () => void (runs++, await gate) });
    expect(await queue.isLive('sms.send', 'never')).toBe(false);
    await queue.enqueue('sms.send', { deliveryId: 'l1' }, { jobId: 'later', delayMs: 60_000 });
    expect(await queue.isLive('sms.send', 'later')).toBe(true);
    await queue.enqueue('sms.send', { deliveryId: 'l2' }, { jobId: 'now' });
    await eventually(async () => (runs === 1 ? true : undefined));
    expect(await queue.isLive('sms.send', 'now')).toBe(true);
    release();
    await eventually(async () => ((await queue.isLive('sms.send', 'now')) ? undefined : true));
  });

  it('runs a finished job id again only when asked to replace it', async () => {
    const queue = await open({ attempts: 1, backoffMs: 5 });
    let runs = 0;
    queue.startWorker({ 'sms.send': async () => void runs++ });
    await queue.enqueue('sms.send', { deliveryId: 'r1' }, { jobId: 'again' });
    await eventually(async () => (runs === 1 && !(await queue.isLive('sms.send', 'again')) ? true : undefined));
    await queue.enqueue('sms.send', { deliveryId: 'r1' }, { jobId: 'again', replaceFinished: true });
    await eventually(async () => (runs === 2 ? true : undefined));
    // Replacing never doubles a live job.
    await queue.enqueue('sms.send', { deliveryId: 'r1' }, { jobId: 'held', delayMs: 60_000 });
    await queue.enqueue('sms.send', { deliveryId: 'r1' }, { jobId: 'held', replaceFinished: true });
    await new Promise((r) => setTimeout(r, 150));
    expect(runs).toBe(2);
    expect(await queue.isLive('sms.send', 'held')).toBe(true);
  });

  it('keeps one schedule per repeated job however often it is registered', async () => {
    const queue = await open({ attempts: 1, backoffMs: 5 });
    let runs = 0;
    queue.startWorker({ 'retention.purge': async () => void runs++ });
    for (let i = 0; i < 5; i++) await queue.repeat('retention.purge', {}, 400);
    await new Promise((r) => setTimeout(r, 1000));
    // Every 400 ms for a second: two or three runs (a first one at once on BullMQ), never five schedules' worth.
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThanOrEqual(3);
  });
});
