import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Deps } from '../domain/deps.js';
import { AppError } from '../errors.js';
import { errors } from '../http/schemas.js';

const PROBE_TIMEOUT_MS = 2000;

async function probe(name: string, check: () => Promise<void>): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([check(), timeout]);
    return null;
  } catch (err) {
    return `${name}: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    clearTimeout(timer);
  }
}

const health: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  app.get('/healthz', {
    config: { access: { public: 'liveness probe' }, rateLimit: false },
    schema: { tags: ['health'], summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    config: { access: { public: 'readiness probe' }, rateLimit: false },
    schema: {
      tags: ['health'],
      summary: 'Ready when the database answers (the queue only wakes workers: without it the gateway still takes requests, '
        + 'status "degraded"); 503 NOT_READY without the database, 503 SHUTTING_DOWN from the moment the process is told to stop',
      response: {
        200: Type.Object({
          status: Type.Union([Type.Literal('ready'), Type.Literal('degraded')]),
          database: Type.String(),
          queue: Type.String(),
          failures: Type.Optional(Type.Array(Type.String())),
        }),
        ...errors(503),
      },
    },
  }, async () => {
    const [database, queue] = await Promise.all([probe('database', () => deps.db.ping()), probe('queue', () => deps.queue.ping())]);
    // Without the database nothing can be accepted. Without Redis, check-ins, uploads and reports are still
    // committed and answered (the reconciler queues their offers once it is back): taking the gateway out of a
    // load balancer then would refuse what it can take, and keep agents backing off.
    if (database) throw new AppError('NOT_READY', [database, queue].filter(Boolean).join('; '), { failures: [database, queue].filter(Boolean) });
    if (queue) return { status: 'degraded' as const, database: deps.db.kind, queue: deps.queue.kind, failures: [queue] };
    return { status: 'ready' as const, database: deps.db.kind, queue: deps.queue.kind };
  });
};

export default health;
