// Opens every resource the configuration names, wires them, and registers their closing on the app.
import type { FastifyInstance } from 'fastify';
import { buildApp, type LogStream } from './app.js';
import type { Config } from './config.js';
import { migrate } from './db/migrate.js';
import { openDatabase } from './db/open.js';
import { sendSmsJob, sendSystemSmsJob } from './domain/deliveries.js';
import { purgeAgentRequests } from './domain/agents.js';
import { closeStaleZonePresence } from './domain/detections.js';
import { purgeLimits } from './domain/limits.js';
import { startReconciler, type Reconciler } from './domain/outbox.js';
import { purgeExpired, purgeUnusedMembers } from './domain/privacy.js';
import { sendPushJob } from './domain/push-deliveries.js';
import { purgeSignups, sendSignupCodeJob } from './domain/signups.js';
import type { Deps } from './domain/deps.js';
import { purgeIdempotencyKeys } from './http/idempotency.js';
import { openPushChannel } from './push/open.js';
import { openQueue } from './queue/open.js';
import { openSmsSender } from './sms/open.js';

const RETENTION_EVERY_MS = 3_600_000;

export interface Gateway {
  app: FastifyInstance;
  deps: Deps;
  /** Stops HTTP, drains the worker, closes the queue and the database. */
  close(): Promise<void>;
  /** On SIGTERM: not ready and refusing new requests at once, the listener closed after DRAIN_DELAY_MS, then close(). */
  shutdown(): Promise<void>;
}

export async function startGateway(config: Config, options: { now?: () => Date; logStream?: LogStream } = {}): Promise<Gateway> {
  const db = await openDatabase(config);
  let queue: Deps['queue'] | undefined;
  let reconciler: Reconciler | undefined;
  try {
    await migrate(db);
    queue = await openQueue(config);
    const push = await openPushChannel(config, db);
    const deps: Deps = { config, db, queue, sms: openSmsSender(config), push, now: options.now ?? (() => new Date()) };
    const app = await buildApp(deps, options.logStream ? { logStream: options.logStream } : {});
    deps.log = app.log;
    // Closing order: HTTP stops taking requests, then the reconciler and running jobs finish, then the database goes.
    app.addHook('onClose', async () => {
      await reconciler?.stop();
      await deps.queue.close();
      await deps.db.close();
    });
    if (config.role !== 'api') {
      deps.queue.startWorker({
        'sms.send': (payload, ctx) => sendSmsJob(deps, payload, ctx),
        'push.send': (payload, ctx) => sendPushJob(deps, payload, ctx),
        'sms.system': (payload) => sendSystemSmsJob(deps, payload),
        'sms.code': (payload) => sendSignupCodeJob(deps, payload),
        'retention.purge': async () => {
          const purged = await purgeExpired(deps.db, deps.now(), config.retentionDays);
          const signatures = await purgeAgentRequests(deps.db, deps.now());
          const zoneStaysClosed = await closeStaleZonePresence(deps.db, deps.now());
          await purgeSignups(deps.db, deps.now());
          const limits = await purgeLimits(deps.db, deps.now());
          const unusedMembers = await purgeUnusedMembers(deps.db, deps.now(), config.signupLimits.unusedMemberDays);
          const idempotencyKeys = await purgeIdempotencyKeys(deps.db, deps.now());
          app.log.info({ purged, signatures, zoneStaysClosed, limits, unusedMembers, idempotencyKeys, retentionDays: config.retentionDays }, 'retention purge');
        },
      });
      // The reconciler registers the repeated jobs, and again whenever Redis lost them; its first pass is now.
      reconciler = startReconciler(deps, {
        everyMs: config.reconcileEveryMs, log: app.log, repeated: [{ name: 'retention.purge', payload: {}, everyMs: RETENTION_EVERY_MS }],
      });
    }
    await app.ready();
    return {
      app,
      deps,
      close: () => app.close(),
      async shutdown() {
        app.drain.draining = true;
        await new Promise((resolve) => setTimeout(resolve, config.drainDelayMs));
        await app.close();
      },
    };
  } catch (err) {
    await reconciler?.stop().catch(() => {});
    await queue?.close().catch(() => {});
    await db.close().catch(() => {});
    throw err;
  }
}
