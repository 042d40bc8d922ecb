// The one place that reads the environment. Everything else receives a typed Config.
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
  /** Name of the programme, shown in every SMS. */
  programName: string;
  /** Where members get help, named in the opt-in and HELP messages. */
  programHelp: string;
  /** Expected message frequency, named in the opt-in message (CTIA). */
  programFrequency: string;
  /** The gateway's address as Twilio calls it (it may sit behind a proxy); webhook signatures are checked against it. */
  publicUrl: string;
  /** Raw check-ins and detections older than this are purged. */
  retentionDays: number;
  /** Members' phones rotate their Eddystone-EID every 2^K seconds; K for keys issued from now on. */
  eidRotationExponent: number;
  couponValidDays: number;
  /** A till may void a redemption this many minutes after it. */
  voidWindowMinutes: number;
  jobAttempts: number;
  jobBackoffMs: number;
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
    programName: text(env, 'PROGRAM_NAME') ?? 'Nearby Offers',
    programHelp: text(env, 'PROGRAM_HELP') ?? 'help@example.com',
    programFrequency: text(env, 'PROGRAM_FREQUENCY') ?? 'Up to 3 msgs/week',
    publicUrl: (url(env, 'PUBLIC_URL', ['http:', 'https:']) ?? `http://${text(env, 'HOST') ?? '127.0.0.1'}:${integer(env, 'PORT', 3000, 0, 65535)}`).replace(/\/$/, ''),
    retentionDays: integer(env, 'RETENTION_DAYS', 30, 1, 3650),
    eidRotationExponent: integer(env, 'EID_ROTATION_EXPONENT', 10, 0, 15),
    couponValidDays: integer(env, 'COUPON_VALID_DAYS', 7, 1, 365),
    voidWindowMinutes: integer(env, 'REDEMPTION_VOID_WINDOW_MINUTES', 30, 1, 10_080),
    jobAttempts: integer(env, 'JOB_ATTEMPTS', 5, 1, 50),
    jobBackoffMs: integer(env, 'JOB_BACKOFF_MS', 1000, 1, 3_600_000),
  };
}
