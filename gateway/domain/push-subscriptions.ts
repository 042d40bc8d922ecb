// The member's devices subscribed to Web Push: registered by the member's app, listed, removed; and dropped
// when a push service says a subscription is gone.
import { ECDH } from 'node:crypto';
import type { PushConfig } from '../config.js';
import type { Database, Sql } from '../db/database.js';
import { AppError } from '../errors.js';
import type { WebPushTarget } from '../push/provider.js';

/** Devices one member may have subscribed at once; each offer is pushed to all of them. */
export const MAX_SUBSCRIPTIONS_PER_MEMBER = 10;

export interface PushSubscriptionInput {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  /** The browser's PushSubscription.expirationTime: ms since the epoch, or null. */
  expirationTime?: number | null;
}

export interface PushSubscriptionView {
  id: string;
  endpoint: string;
  expiresAt: string | null;
  createdAt: string;
  lastSuccessAt: string | null;
}

export interface SubscriptionRow {
  id: string;
  member_id: string;
  provider: 'webpush';
  endpoint: string;
  p256dh: string;
  auth: string;
  expires_at: Date | null;
  created_at: Date;
  last_success_at: Date | null;
}

const toView = (r: SubscriptionRow): PushSubscriptionView => ({
  id: r.id,
  endpoint: r.endpoint,
  expiresAt: r.expires_at?.toISOString() ?? null,
  createdAt: r.created_at.toISOString(),
  lastSuccessAt: r.last_success_at?.toISOString() ?? null,
});

export const toTarget = (r: SubscriptionRow): WebPushTarget => ({ provider: r.provider, endpoint: r.endpoint, p256dh: r.p256dh, auth: r.auth });

/**
 * An endpoint, kept exactly as the browser gave it, is an https URL of a known push service (or of an origin the configuration adds): the gateway
 * POSTs to it, so an arbitrary URL would let any app make the gateway call any address.
 */
export function checkEndpoint(endpoint: string, config: Pick<PushConfig, 'serviceHosts' | 'serviceOrigins'>): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new AppError('PUSH_ENDPOINT_INVALID', 'endpoint is not a URL', { field: 'body/endpoint' });
  }
  if (url.username || url.password) {
    throw new AppError('PUSH_ENDPOINT_INVALID', 'endpoint must not carry credentials', { field: 'body/endpoint' });
  }
  if (config.serviceOrigins.includes(url.origin)) return endpoint;
  if (url.protocol !== 'https:') throw new AppError('PUSH_ENDPOINT_INVALID', 'endpoint must be an https URL', { field: 'body/endpoint' });
  const host = url.hostname.toLowerCase();
  if (!config.serviceHosts.some((h) => host === h || host.endsWith(`.${h}`))) {
    throw new AppError('PUSH_ENDPOINT_INVALID', `endpoint's host ${host} is not a known push service`, {
      field: 'body/endpoint', accepted: [...config.serviceHosts, ...config.serviceOrigins],
    });
  }
  return endpoint;
}

function decodeKey(value: string, field: string, bytes: number, what: string): Buffer {
  // Browsers give base64url without padding; padding is tolerated.
  const decoded = /^[A-Za-z0-9_-]+={0,2}$/.test(value) ? Buffer.from(value.replace(/=+$/, ''), 'base64url') : null;
  if (!decoded || decoded.length !== bytes) {
    throw new AppError('PUSH_KEYS_INVALID', `${field} must be ${what}: ${bytes} bytes, URL-safe base64`, { field });
  }
  return decoded;
}

/** p256dh is the device's P-256 public key (uncompressed point on the curve), auth its 16-byte secret. */
export function checkKeys(keys: { p256dh: string; auth: string }): { p256dh: string; auth: string } {
  const p256dh = decodeKey(keys.p256dh, 'body/keys/p256dh', 65, 'an uncompressed P-256 public key');
  const auth = decodeKey(keys.auth, 'body/keys/auth', 16, 'the auth secret');
  try {
    if (p256dh[0] !== 0x04) throw new Error('not an uncompressed point');
    ECDH.convertKey(p256dh, 'prime256v1'); // refuses a point that is not on the curve
  } catch {
    throw new AppError('PUSH_KEYS_INVALID', 'body/keys/p256dh is not a point on the P-256 curve', { field: 'body/keys/p256dh' });
  }
  return { p256dh: p256dh.toString('base64url'), auth: auth.toString('base64url') };
}

/**
 * Registers a device for the member; registering the same endpoint again is idempotent (its keys and expiry are
 * refreshed). An endpoint registered by another member is refused: the app unsubscribes before switching members.
 */
export async function registerSubscription(
  db: Database, config: PushConfig, memberId: string, input: PushSubscriptionInput,
): Promise<{ subscription: PushSubscriptionView; created: boolean }> {
  const endpoint = checkEndpoint(input.endpoint, config);
  const keys = checkKeys(input.keys);
  const expiresAt = input.expirationTime == null ? null : new Date(input.expirationTime);
  return db.transaction(async (tx) => {
    // The member's row lock: the count below holds against the member's concurrent registrations.
    const [member] = await tx.query<{ erased_at: Date | null }>('SELECT erased_at FROM members WHERE id = $1 FOR UPDATE', [memberId]);
    if (!member) throw new AppError('MEMBER_NOT_FOUND', `member ${memberId} does not exist`);
    if (member.erased_at) throw new AppError('MEMBER_ERASED', `member ${memberId} was erased`);
    const [existing] = await tx.query<{ member_id: string }>('SELECT member_id FROM push_subscriptions WHERE endpoint = $1', [endpoint]);
    if (!existing) {
      // An expired subscription is no device any more (browsers move to a new endpoint): it goes, and does not count.
      await tx.query('DELETE FROM push_subscriptions WHERE member_id = $1 AND expires_at <= now()', [memberId]);
      const [{ n }] = (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM push_subscriptions WHERE member_id = $1', [memberId])) as [{ n: number }];
      if (n >= MAX_SUBSCRIPTIONS_PER_MEMBER) {
        throw new AppError('PUSH_SUBSCRIPTION_LIMIT', `member ${memberId} already has ${n} subscribed devices`, { max: MAX_SUBSCRIPTIONS_PER_MEMBER });
      }
    }
    // Of concurrent registrations of one endpoint, one inserts; the others update it if it is this member's.
    const [row] = await tx.query<SubscriptionRow & { created: boolean }>(
      `INSERT INTO push_subscriptions (member_id, endpoint, p256dh, auth, expires_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth, expires_at = excluded.expires_at
         WHERE push_subscriptions.member_id = excluded.member_id
       RETURNING *, (xmax = 0) AS created`,
      [memberId, endpoint, keys.p256dh, keys.auth, expiresAt],
    );
    if (!row) throw new AppError('PUSH_ENDPOINT_TAKEN', 'this endpoint is registered to another member', { field: 'body/endpoint' });
    const { created, ...subscription } = row;
    return { subscription: toView(subscription), created };
  });
}

export async function listSubscriptions(db: Sql, memberId: string): Promise<PushSubscriptionView[]> {
  const [member] = await db.query('SELECT 1 FROM members WHERE id = $1', [memberId]);
  if (!member) throw new AppError('MEMBER_NOT_FOUND', `member ${memberId} does not exist`);
  const rows = await db.query<SubscriptionRow>('SELECT * FROM push_subscriptions WHERE member_id = $1 ORDER BY created_at, id', [memberId]);
  return rows.map(toView);
}

export async function removeSubscription(db: Sql, memberId: string, subscriptionId: string): Promise<void> {
  const [member] = await db.query('SELECT 1 FROM members WHERE id = $1', [memberId]);
  if (!member) throw new AppError('MEMBER_NOT_FOUND', `member ${memberId} does not exist`);
  const deleted = await db.query('DELETE FROM push_subscriptions WHERE id = $1 AND member_id = $2 RETURNING 1', [subscriptionId, memberId]);
  if (deleted.length === 0) throw new AppError('PUSH_SUBSCRIPTION_NOT_FOUND', `member ${memberId} has no push subscription ${subscriptionId}`);
}

/** Subscriptions that have not expired at `at`: the devices an offer would be pushed to. */
export async function liveSubscriptions(db: Sql, memberId: string, at: Date): Promise<SubscriptionRow[]> {
  return db.query<SubscriptionRow>(
    'SELECT * FROM push_subscriptions WHERE member_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at, id',
    [memberId, at],
  );
}

export async function hasPushSubscription(db: Sql, memberId: string, at: Date): Promise<boolean> {
  const rows = await db.query('SELECT 1 FROM push_subscriptions WHERE member_id = $1 AND (expires_at IS NULL OR expires_at > $2) LIMIT 1', [memberId, at]);
  return rows.length > 0;
}

/** A push service said the subscription no longer exists (404, 410): it is removed, and counted for the day. */
export async function dropGoneSubscription(db: Sql, subscriptionId: string, at: Date): Promise<void> {
  const deleted = await db.query('DELETE FROM push_subscriptions WHERE id = $1 RETURNING 1', [subscriptionId]);
  if (deleted.length === 0) return; // removed already, by a concurrent send or by the app
  await db.query(
    `INSERT INTO push_counters (day, kind, count) VALUES ($1::date, 'subscription_gone', 1)
     ON CONFLICT (day, kind) DO UPDATE SET count = push_counters.count + 1`,
    [at.toISOString().slice(0, 10)],
  );
}

export async function pushCounters(db: Sql): Promise<Array<{ day: string; kind: string; count: number }>> {
  return db.query(`SELECT to_char(day, 'YYYY-MM-DD') AS day, kind, count FROM push_counters ORDER BY day DESC, kind LIMIT 1000`);
}
