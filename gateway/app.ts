// The HTTP application: a tree of plugins. External plugins first (docs), then the routes, each given its deps.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Deps } from './domain/deps.js';
import { toHttpError } from './errors.js';
import { installAccess, installRateLimits, type DeclaredRoute } from './http/access.js';
import { installDrain } from './http/drain.js';
import { validatorCompiler } from './http/validation.js';
import access from './routes/access.js';
import agents from './routes/agents.js';
import alliance from './routes/alliance.js';
import beacons from './routes/beacons.js';
import campaigns from './routes/campaigns.js';
import checkins from './routes/checkins.js';
import deliveries from './routes/deliveries.js';
import geofences from './routes/geofences.js';
import health from './routes/health.js';
import members from './routes/members.js';
import redemptions from './routes/redemptions.js';
import reports from './routes/reports.js';
import stores from './routes/stores.js';
import twilioRoutes from './routes/twilio.js';
import privacy from './routes/privacy.js';
import push from './routes/push.js';

const BODY_LIMIT_BYTES = 64 * 1024;

export async function buildApp(deps: Deps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.config.logLevel === 'silent' ? false : { level: deps.config.logLevel },
    bodyLimit: BODY_LIMIT_BYTES,
    // While closing, requests still arriving on open connections get SHUTTING_DOWN from installDrain's hook.
    return503OnClosing: false,
    // A number is how many proxies in front to believe (fastify's hop count, in the shape its types take).
    trustProxy: typeof deps.config.trustProxy === 'number'
      ? ((hops: number) => (_address: string, i: number) => i < hops)(deps.config.trustProxy)
      : deps.config.trustProxy,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler());
  // Every body is JSON; anything else gets 415 rather than a confusing schema error.
  app.removeContentTypeParser('text/plain');
  // Twilio's webhooks are form-encoded; every value stays a string, as the signature was computed over.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toHttpError(err);
    if (status >= 500) req.log.error({ err }, 'request failed');
    // Outages (503) and limits (429) say when to come back.
    const retryAfter = body.error.details?.retryAfterSeconds;
    if (typeof retryAfter === 'number' && !reply.hasHeader('retry-after')) void reply.header('retry-after', retryAfter);
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  installDrain(app);
  // Before any route: each declares who may call it, or the gateway does not start.
  const declared: DeclaredRoute[] = [];
  app.decorate('declaredRoutes', declared);
  const verifier = installAccess(app, deps, declared);
  // A worker answers health probes only, which are never limited: no limiter, no Redis connection for one.
  if (deps.config.role !== 'worker') await installRateLimits(app, deps);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Proximity marketing gateway',
        version: '0.1.0',
        description: 'Consent-first presence, campaign decisions, offers by SMS and coupon redemption. Errors carry a stable `error.code`. '
          + 'Authenticate with an API key (`Authorization: Bearer pmk....`); each operation names the roles that may call it. '
          + 'Member-app writes take an `Idempotency-Key` header to make retries safe. An outage of the database or the queue, and a '
          + 'gateway shutting down, answer 503 (`DATABASE_UNAVAILABLE`, `QUEUE_UNAVAILABLE`, `SHUTTING_DOWN`) with `Retry-After`.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: pmk.<id>.<secret>' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true }, config: { access: { public: 'the API description' } } }, async () => app.swagger());

  // A worker-only process answers health probes and nothing else.
  const tree = deps.config.role === 'worker' ? [health] : [health, stores, geofences, campaigns, members, checkins, redemptions, reports, deliveries, twilioRoutes, privacy, agents, beacons, push, alliance];
  for (const routes of tree) {
    await app.register(routes, { deps });
  }
  if (deps.config.role !== 'worker') await app.register(access, { deps, verifier });
  return app;
}
