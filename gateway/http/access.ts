// Access control. Every route declares who may call it and which object it scopes the call to; the gateway
// refuses to start with a route that declares nothing. A caller authenticates with an API key
// (`Authorization: Bearer pmk....`), except on routes that carry their own signature (boxes, members' apps,
// Twilio). An object outside the caller's scope answers 404, exactly as one that does not exist.
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import type { Sql } from '../db/database.js';
import { KeyVerifier, type Principal, type Role } from '../domain/api-keys.js';
import type { Deps } from '../domain/deps.js';
import { AppError, type ErrorCode } from '../errors.js';

export type ObjectKind =
  | 'member' | 'store' | 'campaign' | 'geofence' | 'merchant' | 'redemption' | 'delivery' | 'agent' | 'api_key' | 'till'
  | 'alliance_offer';

/** Where a route finds the id of the object it acts on, e.g. `params.id` or `body.storeId`. */
export interface ObjectScope {
  kind: ObjectKind;
  from: `${'params' | 'body' | 'query'}.${string}`;
}

export type Access =
  /** Anyone, for the reason given (e.g. a health probe). */
  | { public: string }
  | {
    roles: readonly Role[];
    /**
     * An object (or several) the caller must be allowed to see; 'own' when the handler itself narrows what it
     * lists or makes to the caller's own; 'none' for routes with no tenant's data (administrators only).
     */
    scope: ObjectScope | readonly ObjectScope[] | 'own' | 'none';
    /** The route checks its own signature (an agent's, a member app's, Twilio's) instead of an API key. */
    by?: 'signature';
  };

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Every route with what it declared, in registration order. */
    declaredRoutes: DeclaredRoute[];
    /** The gateway's key checker (its cache is told of revocations made here). */
    apiKeys: KeyVerifier;
  }
}

/** What a route declared, as the gateway registered it (the role matrix test walks this list). */
export interface DeclaredRoute {
  method: string;
  url: string;
  access: Access;
}

const NOT_FOUND: Record<ObjectKind, ErrorCode> = {
  member: 'MEMBER_NOT_FOUND', store: 'STORE_NOT_FOUND', campaign: 'CAMPAIGN_NOT_FOUND', geofence: 'GEOFENCE_NOT_FOUND',
  merchant: 'MERCHANT_NOT_FOUND', redemption: 'REDEMPTION_NOT_FOUND', delivery: 'DELIVERY_NOT_FOUND', agent: 'AGENT_NOT_FOUND',
  api_key: 'API_KEY_NOT_FOUND', till: 'TILL_NOT_FOUND', alliance_offer: 'ALLIANCE_OFFER_NOT_FOUND',
};

type Resolver = (db: Sql, p: Principal, id: string) => Promise<boolean>;

const ownerIs = (sql: string) => async (db: Sql, p: Principal, id: string) => {
  if (!p.merchantId) return false;
  const [row] = await db.query<{ merchant_id: string }>(sql, [id]);
  return row?.merchant_id === p.merchantId;
};

/**
 * Whether a caller other than an administrator may see an object. Marketers and merchants see what their
 * merchant owns; members see themselves and their own deliveries. Anything else is out of scope.
 */
const resolvers: Readonly<Record<ObjectKind, Resolver>> = {
  member: async (_db, p, id) => p.role === 'member' && p.memberId === id,
  delivery: async (db, p, id) => {
    if (p.role !== 'member') return false;
    const [row] = await db.query<{ member_id: string }>('SELECT member_id FROM deliveries WHERE id = $1', [id]);
    return row?.member_id === p.memberId;
  },
  merchant: async (_db, p, id) => (p.role === 'marketer' || p.role === 'merchant') && p.merchantId === id,
  store: ownerIs('SELECT merchant_id FROM stores WHERE id = $1'),
  campaign: ownerIs('SELECT merchant_id FROM campaigns WHERE id = $1'),
  geofence: ownerIs('SELECT merchant_id FROM geofences WHERE id = $1'),
  redemption: ownerIs('SELECT s.merchant_id FROM redemptions r JOIN stores s ON s.id = r.store_id WHERE r.id = $1'),
  till: ownerIs('SELECT s.merchant_id FROM tills t JOIN stores s ON s.id = t.store_id WHERE t.id = $1'),
  // Its partner; and a brand's marketer sees published offers (to include them in campaigns) and any offer its
  // brand's campaigns include or issued coupons of (to read their settlement), withdrawn or not.
  alliance_offer: async (db, p, id) => {
    if (p.role === 'merchant') return ownerIs('SELECT merchant_id FROM alliance_offers WHERE id = $1')(db, p, id);
    if (p.role !== 'marketer' || !p.merchantId) return false;
    const [row] = await db.query<{ visible: boolean }>(
      `SELECT o.status = 'published'
              OR EXISTS (SELECT 1 FROM campaigns camp WHERE camp.merchant_id = $2 AND camp.definition->'alliance'->'offerIds' ? o.id::text)
              OR EXISTS (SELECT 1 FROM coupons c JOIN campaigns camp ON camp.id = c.campaign_id WHERE c.alliance_offer_id = o.id AND camp.merchant_id = $2) AS visible
         FROM alliance_offers o WHERE o.id = $1`,
      [id, p.merchantId],
    );
    return row?.visible === true;
  },
  agent: async () => false,
  api_key: async () => false,
};

/** Whether the caller may see the object; administrators see everything. */
export async function canSee(db: Sql, p: Principal, kind: ObjectKind, id: string): Promise<boolean> {
  return p.role === 'administrator' || resolvers[kind](db, p, id);
}

/** Throws the object's not-found error unless the caller may see it. */
export async function ensureVisible(db: Sql, p: Principal, kind: ObjectKind, id: string): Promise<void> {
  if (!(await canSee(db, p, kind, id))) throw new AppError(NOT_FOUND[kind], `${kind.replace('_', ' ')} ${id} does not exist`);
}

/** The caller of an authenticated route. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new AppError('AUTH_REQUIRED', 'this route needs credentials');
  return req.principal;
}

/** The merchant a marketer's or merchant's call is held to; null for an administrator (any). */
export function merchantScope(req: FastifyRequest): string | null {
  const p = principalOf(req);
  return p.role === 'administrator' ? null : p.merchantId;
}

const isDocumentation = (url: string) => url === '/docs' || url.startsWith('/docs/');

/** How long a rate-limit count may wait on Redis before the request goes on without it. */
const RATE_LIMIT_REDIS_TIMEOUT_MS = 1_000;

/** Called when a request's credentials are refused (counts failures per address); set by installRateLimits. */
const authFailureHooks = new WeakMap<FastifyInstance, (req: FastifyRequest, reply: FastifyReply) => Promise<void>>();

/**
 * Rate limits, counted in Redis when there is one (so every gateway shares the count), else in the process.
 * Public routes count per address. Members' routes count per member (whichever of their tokens they use), after
 * authentication and before the scope check, so probing other members' ids counts too. Refused credentials count
 * per address, on any route. Administrators' and merchants' calls to members' routes are not members' traffic.
 */
export async function installRateLimits(app: FastifyInstance, deps: Deps): Promise<void> {
  // A Redis that does not answer within the command timeout (down, frozen, cut off) is skipped (skipOnError
  // below): the request goes through unlimited rather than waiting on it. Limits protect; they hold no data.
  const redis = deps.config.redisUrl
    ? new Redis(deps.config.redisUrl, { connectTimeout: 2_000, commandTimeout: RATE_LIMIT_REDIS_TIMEOUT_MS, maxRetriesPerRequest: 1, lazyConnect: true })
    : null;
  if (redis) {
    // Timeouts and lost connections are also emitted as events; the count is skipped either way (skipOnError).
    redis.on('error', (err: Error) => app.log.warn({ err }, 'rate-limit Redis'));
    await redis.connect();
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
  }
  const limited = (max: number, ttl: number) =>
    new AppError('RATE_LIMITED', `too many requests: ${max} per minute; try again in ${Math.ceil(ttl / 1000)} s`, {
      limit: max, retryAfterSeconds: Math.ceil(ttl / 1000),
    });
  await app.register(rateLimit, {
    global: false,
    hook: 'preValidation',
    ...(redis ? { redis, nameSpace: `${deps.config.queuePrefix}:rl:` } : {}),
    // A broken Redis must not take the API down with it.
    skipOnError: true,
    keyGenerator: (req) => (req.principal?.memberId ? `member:${req.principal.memberId}` : `ip:${req.ip}`),
    allowList: (req) => req.principal !== null && req.principal.role !== 'member',
    errorResponseBuilder: (_req, ctx) => limited(ctx.max, ctx.ttl),
  });
  const failures = app.createRateLimit({
    max: deps.config.rateLimitPublicPerMinute, timeWindow: 60_000, keyGenerator: (req) => `authfail:${req.ip}`,
  });
  authFailureHooks.set(app, async (req, reply) => {
    const r = await failures(req);
    if (!r.isAllowed && r.isExceeded) {
      void reply.header('retry-after', r.ttlInSeconds);
      throw limited(r.max, r.ttl);
    }
  });
}

function valueAt(req: FastifyRequest, from: ObjectScope['from']): unknown {
  const [where, field] = from.split('.') as ['params' | 'body' | 'query', string];
  const holder = req[where] as Record<string, unknown> | undefined;
  return holder?.[field];
}

/**
 * Installs the checks. Call before any route is registered: routes registered later without an `access`
 * declaration make the gateway fail to start.
 */
export function installAccess(app: FastifyInstance, deps: Deps, declared: DeclaredRoute[] = []): KeyVerifier {
  const verifier = new KeyVerifier();
  app.decorateRequest('principal', null);
  app.decorate('apiKeys', verifier);

  app.addHook('onRoute', (route) => {
    if (isDocumentation(route.url)) return;
    const access = route.config?.access;
    if (!access) throw new Error(`route ${String(route.method)} ${route.url} declares no access`);
    // Public routes are limited per address, members' routes per key (see installRateLimits); a route may set its own.
    if (route.config && route.config.rateLimit === undefined) {
      if ('public' in access) route.config.rateLimit = { max: deps.config.rateLimitPublicPerMinute, timeWindow: 60_000 };
      else if (access.roles.includes('member')) route.config.rateLimit = { max: deps.config.rateLimitMemberPerMinute, timeWindow: 60_000 };
    }
    // The API description says who may call each operation, and which need a key.
    if (route.schema && !('public' in access)) {
      const who = `Roles: ${access.roles.join(', ')}${access.by === 'signature' ? ' (by its own signature, not an API key)' : ''}.`;
      route.schema.description = route.schema.description ? `${route.schema.description} ${who}` : who;
      if (access.by !== 'signature') route.schema.security = [{ apiKey: [] }];
    }
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) if (method !== 'HEAD') declared.push({ method, url: route.url, access });
  });

  app.addHook('onRequest', async (req, reply) => {
    const access = req.routeOptions.config?.access;
    if (!access || 'public' in access || access.by === 'signature') return;
    const header = req.headers.authorization;
    if (!header) throw new AppError('AUTH_REQUIRED', 'this route needs an API key: Authorization: Bearer <key>');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new AppError('AUTH_REQUIRED', 'the Authorization header must be "Bearer <key>"');
    let principal: Principal;
    try {
      principal = await verifier.verify(deps.db, m[1]!, deps.now());
    } catch (err) {
      // Guessing keys costs an address its quota: past it, 429 instead of another look at the database.
      await authFailureHooks.get(app)?.(req, reply);
      throw err;
    }
    if (!access.roles.includes(principal.role)) {
      throw new AppError('FORBIDDEN', `a ${principal.role} key may not call ${req.method} ${req.routeOptions.url}`);
    }
    req.principal = principal;
  });

  // After validation, so the ids are well-formed before they reach a query.
  app.addHook('preHandler', async (req) => {
    const access = req.routeOptions.config?.access;
    if (!access || 'public' in access || !req.principal) return;
    const scopes = typeof access.scope === 'string' ? [] : Array.isArray(access.scope) ? access.scope : [access.scope as ObjectScope];
    for (const scope of scopes) {
      const id = valueAt(req, scope.from);
      if (typeof id === 'string') await ensureVisible(deps.db, req.principal, scope.kind, id);
    }
  });

  return verifier;
}
