// The one place that reads the environment. Everything else receives a typed Config.
import { createECDH } from 'node:crypto';
import path from 'node:path';

export type Role = 'all' | 'api' | 'worker';

export interface TwilioConfig {
  accountSid: string;
  authToken: string;
  /** Exactly one of messagingServiceSid and from is set. */
  messagingServiceSid?: string;
  from?: string;
  /** Replaces https://api.twilio.com, e.g. a stand-in server on 127.0.0.1. */
  apiUrl?: string;
}

export interface PushConfig {
  /** The VAPID key pair (base64url) from the environment; absent means the pair kept in the database. */
  vapidKeys?: { publicKey: string; privateKey: string };
  /** Who runs this application server, for the push services (RFC 8292): a mailto: or https: URI. */
  vapidSubject: string;
  /** Push services a subscription may name: https endpoints on these hosts or their subdomains... */
  serviceHosts: string[];
  /** ...and endpoints on these exact origins, http allowed (a local stand-in, a staging service). */
  serviceOrigins: string[];
}

/** The push services of the browsers in use: Chrome and other Chromium browsers, Firefox, Safari, Edge. */
export const DEFAULT_PUSH_SERVICES = ['fcm.googleapis.com', 'updates.push.services.mozilla.com', 'web.push.apple.com', 'notify.windows.com'];

/** What one brand's geofences may cost everyone's lookups (campaign-rules/fence-checks.ts checks the shapes). */
export interface GeofenceLimits {
  /** Positions in one polygon ring, the closing repeat included. */
  maxVerticesPerRing: number;
  /** Rings in one polygon: the outer boundary and its holes. */
  maxRings: number;
  /** The widest a fence may be, in metres, north to south or east to west (a circle: its diameter). */
  maxExtentM: number;
  perStore: number;
  /** Every geofence of a brand: its stores' and its free-standing ones. */
  perBrand: number;
  /** Positions of all of a brand's polygons together: what a lookup under all of them would walk. */
  positionsPerBrand: number;
}

export interface Config {
  port: number;
  host: string;
  role: Role;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  dataDir: string;
  /** Real PostgreSQL; absent means the embedded PGlite under dataDir. */
  databaseUrl?: string;
  /** Schema for every table; lets several isolated runs share one database. */
  databaseSchema: string;
  /** Real Redis for BullMQ; absent means the in-process queue. */
  redisUrl?: string;
  queuePrefix: string;
  /** Absent means SMS goes to the outbox file under dataDir. */
  twilio?: TwilioConfig;
  /** Web Push: VAPID identity and the push services subscriptions may name. */
  push: PushConfig;
  /** Name of the programme, shown in every SMS. */
  programName: string;
  /** Where members get help, named in the opt-in and HELP messages. */
  programHelp: string;
  /** Expected message frequency, named in the opt-in message (CTIA). */
  programFrequency: string;
  /** The gateway's address as Twilio calls it (it may sit behind a proxy); webhook signatures are checked against it. */
  publicUrl: string;
  /** Which proxies' X-Forwarded-For to believe for the caller's address (rate limits): false, true, hops or addresses. */
  trustProxy: boolean | number | string[];
  /** Raw check-ins and detections older than this are purged. */
  retentionDays: number;
  /** Members' phones rotate their Eddystone-EID every 2^K seconds; K for keys issued from now on. */
  eidRotationExponent: number;
  couponValidDays: number;
  /** A till may void a redemption this many minutes after it. */
  voidWindowMinutes: number;
  /** Requests per minute: per address on public routes; per key on members' routes. */
  rateLimitPublicPerMinute: number;
  rateLimitMemberPerMinute: number;
  jobAttempts: number;
  jobBackoffMs: number;
  /** How long a worker may hold a job before others take it for dead (BullMQ's lock and stall check). */
  jobLockMs: number;
  /** An offer is sent within this many seconds of the detection or check-in that triggered it, or not at all. */
  offerFreshnessS: number;
  /**
   * A delivery claimed for sending longer ago than this, and not recorded as sent, is taken for a dead
   * worker's: the carrier is asked whether it went out before it is sent again. Longer than a carrier call:
   * the Twilio client gives up after twilioTimeoutMs(sendLeaseMs).
   */
  sendLeaseMs: number;
  /** Messages per second the SMS sender may send (the carrier's limit for the number type); 0 = no limit. */
  smsRatePerSecond: number;
  /** Each worker process's reconciler runs this often (one at a time across processes, under a lease). */
  reconcileEveryMs: number;
  /** An enqueue after commit is given up after this long without Redis; the reconciler queues it later. */
  enqueueTimeoutMs: number;
  /**
   * Test only (fault tests): the process SIGKILLs itself right after the Nth decision with deliveries is
   * committed and before its deliveries are queued; 0 = never.
   */
  testCrashAfterCommit: number;
  /** Limits on the PostgreSQL pool, so an outage or a partition answers 503 within them instead of hanging. */
  database: DatabaseLimits;
  /** How long an Idempotency-Key and its recorded answer are kept. */
  idempotencyKeyTtlHours: number;
  /** On SIGTERM: how long /readyz and new requests answer 503 before the listener closes (load balancers notice). */
  drainDelayMs: number;
  geofenceLimits: GeofenceLimits;
}

export interface DatabaseLimits {
  /** A connection not made within this fails the request (pg's connectionTimeoutMillis, also the wait for a free one). */
  connectTimeoutMs: number;
  /** The server cancels a statement running longer (statement_timeout, 57014). */
  statementTimeoutMs: number;
  /** The client gives up on an answer after this (pg's query_timeout): what bounds a request in a partition. */
  queryTimeoutMs: number;
  /** The server ends a session left idle inside a transaction this long (idle_in_transaction_session_timeout). */
  idleInTransactionTimeoutMs: number;
  /** TCP keepalive's first probe after this much silence on a connection. */
  keepAliveDelayMs: number;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const raw = text(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${parsed.protocol}`);
  }
  return raw;
}

function identifier(env: Env, name: string, fallback: string): string {
  const raw = text(env, name) ?? fallback;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(raw)) {
    throw new ConfigError(name, 'must be a lower-case SQL identifier (letters, digits, underscore)');
  }
  return raw;
}

function twilio(env: Env): TwilioConfig | undefined {
  const accountSid = text(env, 'TWILIO_ACCOUNT_SID');
  const authToken = text(env, 'TWILIO_AUTH_TOKEN');
  const messagingServiceSid = text(env, 'TWILIO_MESSAGING_SERVICE_SID');
  const from = text(env, 'TWILIO_FROM');
  const apiUrl = url(env, 'TWILIO_API_URL', ['http:', 'https:']);
  if (accountSid === undefined && authToken === undefined) {
    if (messagingServiceSid !== undefined || from !== undefined || apiUrl !== undefined) {
      throw new ConfigError('TWILIO_ACCOUNT_SID', 'is required when other TWILIO_ variables are set');
    }
    return undefined;
  }
  if (accountSid === undefined) throw new ConfigError('TWILIO_ACCOUNT_SID', 'is required with TWILIO_AUTH_TOKEN');
  if (authToken === undefined) throw new ConfigError('TWILIO_AUTH_TOKEN', 'is required with TWILIO_ACCOUNT_SID');
  if (!/^AC[0-9a-fA-F]{32}$/.test(accountSid)) {
    throw new ConfigError('TWILIO_ACCOUNT_SID', 'must be "AC" followed by 32 hex digits');
  }
  if (messagingServiceSid === undefined && from === undefined) {
    throw new ConfigError('TWILIO_MESSAGING_SERVICE_SID', 'or TWILIO_FROM is required with Twilio credentials');
  }
  if (messagingServiceSid !== undefined && from !== undefined) {
    throw new ConfigError('TWILIO_FROM', 'must not be set together with TWILIO_MESSAGING_SERVICE_SID');
  }
  if (messagingServiceSid !== undefined && !/^MG[0-9a-fA-F]{32}$/.test(messagingServiceSid)) {
    throw new ConfigError('TWILIO_MESSAGING_SERVICE_SID', 'must be "MG" followed by 32 hex digits');
  }
  if (from !== undefined && !/^\+[1-9]\d{6,14}$/.test(from)) {
    throw new ConfigError('TWILIO_FROM', 'must be an E.164 phone number such as +14155550100');
  }
  return { accountSid, authToken, messagingServiceSid, from, apiUrl };
}

function base64url(env: Env, name: string, bytes: number): Buffer | undefined {
  const raw = text(env, name);
  if (raw === undefined) return undefined;
  const decoded = /^[A-Za-z0-9_-]+$/.test(raw) ? Buffer.from(raw, 'base64url') : undefined;
  if (decoded?.length !== bytes) throw new ConfigError(name, `must be ${bytes} bytes in URL-safe base64 without padding`);
  return decoded;
}

function push(env: Env): PushConfig {
  const publicKey = base64url(env, 'VAPID_PUBLIC_KEY', 65);
  const privateKey = base64url(env, 'VAPID_PRIVATE_KEY', 32);
  if ((publicKey === undefined) !== (privateKey === undefined)) {
    throw new ConfigError(publicKey ? 'VAPID_PRIVATE_KEY' : 'VAPID_PUBLIC_KEY', 'is required with the other half of the VAPID key pair');
  }
  if (publicKey && privateKey) {
    const ecdh = createECDH('prime256v1');
    try {
      ecdh.setPrivateKey(privateKey);
    } catch {
      throw new ConfigError('VAPID_PRIVATE_KEY', 'is not a P-256 private key');
    }
    if (!ecdh.getPublicKey().equals(publicKey)) throw new ConfigError('VAPID_PUBLIC_KEY', 'is not the public half of VAPID_PRIVATE_KEY');
  }

  const help = text(env, 'PROGRAM_HELP') ?? 'help@example.com';
  const subject = text(env, 'VAPID_SUBJECT') ?? `mailto:${/^[^\s@:/]+@[^\s@:/]+\.[^\s@:/]+$/.test(help) ? help : 'help@example.com'}`;
  let parsed: URL | undefined;
  try {
    parsed = new URL(subject);
  } catch {
    parsed = undefined;
  }
  const valid = parsed?.protocol === 'mailto:' ? /^[^\s@]+@[^\s@]+$/.test(parsed.pathname) : parsed?.protocol === 'https:';
  if (!parsed || !valid) throw new ConfigError('VAPID_SUBJECT', `must be a mailto: address or an https: URL, got "${subject}"`);
  // Apple's push service refuses tokens whose subject names localhost.
  if (parsed.protocol === 'https:' && parsed.hostname === 'localhost') throw new ConfigError('VAPID_SUBJECT', 'must not name localhost');

  const hosts: string[] = [];
  const origins: string[] = [];
  const services = text(env, 'PUSH_SERVICES');
  for (const entry of services === undefined ? DEFAULT_PUSH_SERVICES : services.split(',').map((e) => e.trim()).filter(Boolean)) {
    if (/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(entry)) {
      hosts.push(entry.toLowerCase());
      continue;
    }
    let origin: URL;
    try {
      origin = new URL(entry);
    } catch {
      throw new ConfigError('PUSH_SERVICES', `entries are host names or origins such as http://127.0.0.1:8080, got "${entry}"`);
    }
    if (!['http:', 'https:'].includes(origin.protocol) || origin.origin !== entry.replace(/\/$/, '')) {
      throw new ConfigError('PUSH_SERVICES', `entries are host names or origins such as http://127.0.0.1:8080, got "${entry}"`);
    }
    origins.push(origin.origin);
  }
  return {
    vapidKeys: publicKey && privateKey ? { publicKey: publicKey.toString('base64url'), privateKey: privateKey.toString('base64url') } : undefined,
    vapidSubject: subject,
    serviceHosts: hosts,
    serviceOrigins: origins,
  };
}

/** Reads and validates the whole configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  return {
    port: integer(env, 'PORT', 3000, 0, 65535),
    host: text(env, 'HOST') ?? '127.0.0.1',
    role: oneOf(env, 'ROLE', ['all', 'api', 'worker'] as const, 'all'),
    logLevel: oneOf(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
    dataDir: path.resolve(text(env, 'DATA_DIR') ?? 'data'),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    databaseSchema: identifier(env, 'DATABASE_SCHEMA', 'public'),
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    queuePrefix: identifier(env, 'QUEUE_PREFIX', 'gw'),
    twilio: twilio(env),
    push: push(env),
    programName: text(env, 'PROGRAM_NAME') ?? 'Nearby Offers',
    programHelp: text(env, 'PROGRAM_HELP') ?? 'help@example.com',
    programFrequency: text(env, 'PROGRAM_FREQUENCY') ?? 'Up to 3 msgs/week',
    trustProxy: trustProxy(env),
    publicUrl: (url(env, 'PUBLIC_URL', ['http:', 'https:']) ?? `http://${text(env, 'HOST') ?? '127.0.0.1'}:${integer(env, 'PORT', 3000, 0, 65535)}`).replace(/\/$/, ''),
    retentionDays: integer(env, 'RETENTION_DAYS', 30, 1, 3650),
    eidRotationExponent: integer(env, 'EID_ROTATION_EXPONENT', 10, 0, 15),
    couponValidDays: integer(env, 'COUPON_VALID_DAYS', 7, 1, 365),
    voidWindowMinutes: integer(env, 'REDEMPTION_VOID_WINDOW_MINUTES', 30, 1, 10_080),
    rateLimitPublicPerMinute: integer(env, 'RATE_LIMIT_PUBLIC_PER_MINUTE', 60, 1, 10_000_000),
    rateLimitMemberPerMinute: integer(env, 'RATE_LIMIT_MEMBER_PER_MINUTE', 300, 1, 10_000_000),
    jobAttempts: integer(env, 'JOB_ATTEMPTS', 5, 1, 50),
    jobBackoffMs: integer(env, 'JOB_BACKOFF_MS', 1000, 1, 3_600_000),
    jobLockMs: integer(env, 'JOB_LOCK_MS', 5000, 200, 600_000),
    offerFreshnessS: integer(env, 'OFFER_FRESHNESS_S', 120, 5, 86_400),
    sendLeaseMs: integer(env, 'SEND_LEASE_MS', 12_000, 100, 600_000),
    smsRatePerSecond: smsRate(env),
    reconcileEveryMs: integer(env, 'RECONCILE_EVERY_MS', 5000, 100, 600_000),
    enqueueTimeoutMs: integer(env, 'ENQUEUE_TIMEOUT_MS', 400, 50, 60_000),
    testCrashAfterCommit: integer(env, 'TEST_CRASH_AFTER_COMMIT', 0, 0, 1_000_000),
    database: databaseLimits(env),
    idempotencyKeyTtlHours: integer(env, 'IDEMPOTENCY_KEY_TTL_HOURS', 24, 1, 720),
    drainDelayMs: integer(env, 'DRAIN_DELAY_MS', 2000, 0, 20_000),
    geofenceLimits: geofenceLimits(env),
  };
}

function databaseLimits(env: Env): DatabaseLimits {
  const statementTimeoutMs = integer(env, 'DATABASE_STATEMENT_TIMEOUT_MS', 15_000, 100, 3_600_000);
  return {
    connectTimeoutMs: integer(env, 'DATABASE_CONNECT_TIMEOUT_MS', 5_000, 100, 600_000),
    statementTimeoutMs,
    // Past the server's own limit, so a slow statement is the server's 57014 and only silence is the client's timeout.
    queryTimeoutMs: integer(env, 'DATABASE_QUERY_TIMEOUT_MS', statementTimeoutMs + 5_000, 100, 3_605_000),
    idleInTransactionTimeoutMs: integer(env, 'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS', 60_000, 1_000, 3_600_000),
    keepAliveDelayMs: integer(env, 'DATABASE_KEEPALIVE_MS', 10_000, 1_000, 3_600_000),
  };
}

/**
 * How long the Twilio client waits for an answer: well inside the send lease, so that no live worker's call is
 * still in flight when another run takes its claim for dead and asks Twilio what went out.
 */
export const twilioTimeoutMs = (sendLeaseMs: number) => Math.min(10_000, Math.floor((sendLeaseMs * 2) / 3));

/** Carriers' throughput per sending number type (US): a long code 1 message/s, toll-free 3, a short code 100. */
export const SMS_RATES = { long_code: 1, toll_free: 3, short_code: 100 } as const;

function trustProxy(env: Env): boolean | number | string[] {
  const v = text(env, 'TRUST_PROXY');
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  if (/^\d+$/.test(v)) return integer(env, 'TRUST_PROXY', 0, 0, 16);
  const list = v.split(',').map((x) => x.trim()).filter(Boolean);
  for (const item of list) {
    if (!/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(item)) {
      throw new ConfigError('TRUST_PROXY', `must be true, false, a number of hops or addresses (CIDR allowed), got "${item}"`);
    }
  }
  return list;
}

function geofenceLimits(env: Env): GeofenceLimits {
  return {
    // The ceilings are the request schema's (10,000 positions, 100 rings); past a few hundred km the plane of degrees
    // that polygons are read on drifts from the sphere.
    maxVerticesPerRing: integer(env, 'GEOFENCE_MAX_VERTICES', 1000, 4, 10_000),
    maxRings: integer(env, 'GEOFENCE_MAX_RINGS', 10, 1, 100),
    maxExtentM: integer(env, 'GEOFENCE_MAX_EXTENT_KM', 100, 1, 1000) * 1000,
    perStore: integer(env, 'GEOFENCE_MAX_PER_STORE', 20, 1, 100_000),
    perBrand: integer(env, 'GEOFENCE_MAX_PER_BRAND', 1000, 1, 1_000_000),
    positionsPerBrand: integer(env, 'GEOFENCE_MAX_POSITIONS_PER_BRAND', 50_000, 4, 100_000_000),
  };
}

function smsRate(env: Env): number {
  const explicit = text(env, 'SMS_RATE_PER_SECOND');
  if (explicit !== undefined) return integer(env, 'SMS_RATE_PER_SECOND', 0, 0, 10_000);
  // The local outbox is no carrier: no limit.
  if (text(env, 'TWILIO_ACCOUNT_SID') === undefined) return 0;
  const from = text(env, 'TWILIO_FROM');
  const inferred = from && /^\+18(00|33|44|55|66|77|88)\d{7}$/.test(from) ? 'toll_free' : 'long_code';
  return SMS_RATES[oneOf(env, 'SMS_SENDER_TYPE', ['long_code', 'toll_free', 'short_code'] as const, inferred)];
}
