import type { Config } from '../config.js';
import { bullmqQueue } from './bullmq.js';
import { inProcessQueue } from './in-process.js';
import type { JobQueue } from './port.js';

/** BullMQ on Redis when REDIS_URL is set, otherwise the in-process queue. */
export function openQueue(config: Config): Promise<JobQueue> {
  const policy = { attempts: config.jobAttempts, backoffMs: config.jobBackoffMs };
  const options = { pacedPerSecond: config.smsRatePerSecond, lockMs: config.jobLockMs, enqueueTimeoutMs: config.enqueueTimeoutMs };
  return config.redisUrl
    ? bullmqQueue(config.redisUrl, config.queuePrefix, policy, options)
    : Promise.resolve(inProcessQueue(policy, options));
}
