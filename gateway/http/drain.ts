// Draining on shutdown. From the moment the process is told to stop, /readyz and every new request answer
// 503 SHUTTING_DOWN (so load balancers take this instance out and clients go elsewhere), while requests
// already running finish. The listener stays open DRAIN_DELAY_MS more, so a balancer still sending here gets
// that 503 rather than a refused connection, then closes; /healthz keeps answering, the process is alive, and
// Twilio's webhooks are still taken.
import type { FastifyInstance } from 'fastify';
import { AppError, OUTAGE_RETRY_AFTER_S } from '../errors.js';

export interface DrainState {
  draining: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    drain: DrainState;
  }
}

/** Install before any other hook, so a draining gateway refuses a request before authenticating it. */
export function installDrain(app: FastifyInstance): void {
  app.decorate('drain', { draining: false });
  app.addHook('onRequest', async (req, reply) => {
    // Twilio does not send an inbound message again: a STOP arriving while this gateway drains is taken, not refused.
    if (!app.drain.draining || req.routeOptions.url === '/healthz' || req.routeOptions.url?.startsWith('/webhooks/twilio/')) return;
    void reply.header('connection', 'close');
    throw new AppError('SHUTTING_DOWN', 'this gateway is shutting down; try again', { retryAfterSeconds: OUTAGE_RETRY_AFTER_S });
  });
}
