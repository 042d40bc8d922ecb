// The rate limiter counts in Redis; a Redis that stops answering must not hold requests that never touch the
// queue. The limiter gives up on Redis quickly and lets the request through (limits are protection, not data).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolatedConfig, type Isolated } from './support/backends.js';
import { asMember, startGateway, type TestGateway } from './support/gateway.js';
import { redisOfOwn, type RedisProcess } from './support/fault-processes.js';

describe('a Redis that stops answering', () => {
  let redis: RedisProcess;
  let iso: Isolated;
  let gw: TestGateway;

  beforeAll(async () => {
    redis = await redisOfOwn();
    await redis.start();
    iso = isolatedConfig('embedded', { REDIS_URL: redis.url, ROLE: 'api', RATE_LIMIT_MEMBER_PER_MINUTE: '1000' });
    gw = await startGateway(iso.config);
  }, 90_000);

  afterAll(async () => {
    redis?.thaw();
    await gw?.close();
    await redis.kill();
    await iso.cleanup();
  });

  it('does not hold a member\'s read in the rate limiter, and limits again once Redis is back', { timeout: 30_000 }, async () => {
    const member = (await gw.app.inject({ method: 'POST', url: '/members', payload: { timeZone: 'UTC' } })).json();
    const headers = await asMember(gw, member.id);
    const read = () => gw.app.inject({ method: 'GET', url: `/members/${member.id}/consents`, headers });
    const before = await read();
    expect(before.statusCode).toBe(200);
    expect(before.headers['x-ratelimit-limit']).toBe('1000');

    redis.freeze();
    // Bounded by the test's timeout: without a command timeout this waits for Redis as long as it is frozen.
    const during = await read();
    expect(during.statusCode).toBe(200);

    redis.thaw();
    const after = await read();
    expect(after.statusCode).toBe(200);
    expect(after.headers['x-ratelimit-remaining']).toBeDefined();
  });
});
