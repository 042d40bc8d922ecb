// The process entry point: read config, start, listen, and shut down cleanly on SIGTERM or SIGINT.
import { ConfigError, loadConfig } from './config.js';
import { bootstrapAdministratorKey } from './domain/api-keys.js';
import { startGateway } from './runtime.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
}

const gateway = await startGateway(config).catch((err: unknown) => {
  console.error(`could not start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
const { app } = gateway;
if (config.role !== 'worker') {
  const key = await bootstrapAdministratorKey(gateway.deps.db, new Date());
  // Printed, not logged: the one time anyone sees it. More keys: POST /api-keys with this one.
  if (key) console.log(`No administrator key existed, so one was made. It is shown this once; keep it:\n  ${key}\nUse it as "Authorization: Bearer <key>".`);
}
const db = gateway.deps.db.kind === 'embedded' ? `embedded PGlite in ${config.dataDir}` : 'PostgreSQL';
const queue = gateway.deps.queue.kind === 'bullmq' ? 'BullMQ on Redis' : 'in-process queue';
const sms = gateway.deps.sms.kind === 'twilio' ? 'Twilio' : `outbox file ${config.dataDir}/outbox.ndjson`;
await app.listen({ port: config.port, host: config.host });
app.log.info(`database: ${db}; queue: ${queue}; SMS: ${sms}; role: ${config.role}; API docs at /docs`);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    app.log.info(`${signal}: draining and closing`);
    const force = setTimeout(() => {
      app.log.error('shutdown took longer than 25 s; exiting');
      process.exit(1);
    }, 25_000);
    force.unref();
    gateway.shutdown().then(
      () => process.exit(0),
      (err) => {
        app.log.error({ err }, 'error while closing');
        process.exit(1);
      },
    );
  });
}
