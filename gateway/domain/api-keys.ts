// API keys: random, shown once, stored as a hash, revocable and rotatable. A key is `pmk.<id>.<secret>`: the
// id finds the row, the secret (256 random bits) is compared by its SHA-256, in constant time. A slow hash
// buys nothing for a secret nobody chose and nobody can guess.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database, Sql } from '../db/database.js';
import { AppError } from '../errors.js';
import { UUID_SOURCE } from './ids.js';

export const ROLES = ['administrator', 'marketer', 'merchant', 'member', 'agent'] as const;
export type Role = (typeof ROLES)[number];
/** Roles an API key can carry; agents sign with their Ed25519 key instead. */
export type KeyRole = Exclude<Role, 'agent'>;

/** Who is calling, as far as access checks go. */
export interface Principal {
  role: Role;
  /** The key (or the agent) that authenticated the request. */
  credentialId: string;
  merchantId: string | null;
  memberId: string | null;
}

export interface ApiKeyView {
  id: string;
  role: KeyRole;
  name: string;
  merchantId: string | null;
  memberId: string | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  replacedBy: string | null;
}

interface Row {
  id: string;
  role: KeyRole;
  name: string;
  merchant_id: string | null;
  member_id: string | null;
  secret_hash: Buffer;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
}

const PREFIX = 'pmk';
const KEY_PATTERN = new RegExp(`^pmk\\.(${UUID_SOURCE})\\.([A-Za-z0-9_-]{43})$`);

const hashOf = (secret: string) => createHash('sha256').update(secret).digest();

function view(r: Row): ApiKeyView {
  return {
    id: r.id, role: r.role, name: r.name, merchantId: r.merchant_id, memberId: r.member_id,
    createdAt: r.created_at.toISOString(), expiresAt: r.expires_at?.toISOString() ?? null,
    revokedAt: r.revoked_at?.toISOString() ?? null, replacedBy: r.replaced_by,
  };
}

export interface IssueInput {
  role: KeyRole;
  name: string;
  merchantId?: string | null;
  memberId?: string | null;
  expiresAt?: Date | null;
}

/** Makes a key; the answer holds the key itself, which is never stored nor shown again. */
export async function issueApiKey(db: Sql, input: IssueInput): Promise<{ key: string; apiKey: ApiKeyView }> {
  const merchantId = input.merchantId ?? null;
  const memberId = input.memberId ?? null;
  if ((input.role === 'marketer' || input.role === 'merchant') !== (merchantId !== null)) {
    throw new AppError('VALIDATION_FAILED', `a ${input.role} key ${merchantId ? 'names no merchant' : 'needs merchantId'}`);
  }
  if ((input.role === 'member') !== (memberId !== null)) {
    throw new AppError('VALIDATION_FAILED', `a ${input.role} key ${memberId ? 'names no member' : 'needs memberId'}`);
  }
  if (merchantId) {
    const [m] = await db.query<{ kind: string }>('SELECT kind FROM merchants WHERE id = $1', [merchantId]);
    if (!m) throw new AppError('MERCHANT_NOT_FOUND', `merchant ${merchantId} does not exist`);
    if (input.role === 'marketer' && m.kind !== 'brand') {
      throw new AppError('VALIDATION_FAILED', `marketer keys belong to brands; merchant ${merchantId} is a ${m.kind}`);
    }
  }
  if (memberId) {
    const [m] = await db.query('SELECT 1 FROM members WHERE id = $1', [memberId]);
    if (!m) throw new AppError('MEMBER_NOT_FOUND', `member ${memberId} does not exist`);
  }
  const secret = randomBytes(32).toString('base64url');
  const [row] = await db.query<Row>(
    `INSERT INTO api_keys (role, merchant_id, member_id, name, secret_hash, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
    [input.role, merchantId, memberId, input.name, hashOf(secret), input.expiresAt ?? null],
  );
  return { key: `${PREFIX}.${row!.id}.${secret}`, apiKey: view(row!) };
}

export async function getApiKey(db: Sql, id: string): Promise<ApiKeyView> {
  const [row] = await db.query<Row>('SELECT * FROM api_keys WHERE id = $1', [id]);
  if (!row) throw new AppError('API_KEY_NOT_FOUND', `API key ${id} does not exist`);
  return view(row);
}

export async function listApiKeys(db: Sql, filter: { merchantId?: string; memberId?: string }): Promise<ApiKeyView[]> {
  const rows = await db.query<Row>(
    `SELECT * FROM api_keys WHERE ($1::uuid IS NULL OR merchant_id = $1) AND ($2::uuid IS NULL OR member_id = $2)
      ORDER BY created_at, id LIMIT 1000`,
    [filter.merchantId ?? null, filter.memberId ?? null],
  );
  return rows.map(view);
}

/**
 * Revokes a key and every key that replaced it: whoever rotated a stolen key holds nothing once it is revoked.
 * Returns the key as it now is, and the ids of every key revoked.
 */
export async function revokeApiKey(db: Sql, id: string, now: Date): Promise<{ apiKey: ApiKeyView; revokedIds: string[] }> {
  const rows = await db.query<Row>(
    `WITH RECURSIVE chain AS (
       SELECT id, replaced_by FROM api_keys WHERE id = $1
       UNION ALL SELECT k.id, k.replaced_by FROM api_keys k JOIN chain c ON k.id = c.replaced_by)
     UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id IN (SELECT id FROM chain) RETURNING *`,
    [id, now],
  );
  const row = rows.find((r) => r.id === id);
  if (!row) throw new AppError('API_KEY_NOT_FOUND', `API key ${id} does not exist`);
  return { apiKey: view(row), revokedIds: rows.map((r) => r.id) };
}

/**
 * A successor with the same role and scope; the old key keeps working for `graceSeconds` (0: not at all), so a
 * till or a server can switch without a gap. Rotating a key that was already replaced is refused.
 */
export async function rotateApiKey(db: Database, id: string, graceSeconds: number, now: Date): Promise<{ key: string; apiKey: ApiKeyView }> {
  return db.transaction(async (tx) => {
    const [old] = await tx.query<Row>('SELECT * FROM api_keys WHERE id = $1 FOR UPDATE', [id]);
    if (!old) throw new AppError('API_KEY_NOT_FOUND', `API key ${id} does not exist`);
    if (old.revoked_at || old.replaced_by || (old.expires_at && old.expires_at <= now)) {
      throw new AppError('API_KEY_STATE_CONFLICT', `API key ${id} is ${old.revoked_at ? 'revoked' : old.replaced_by ? 'already rotated' : 'expired'}`);
    }
    const issued = await issueApiKey(tx, {
      role: old.role, name: old.name, merchantId: old.merchant_id, memberId: old.member_id, expiresAt: old.expires_at,
    });
    const until = new Date(now.getTime() + graceSeconds * 1000);
    await tx.query(
      `UPDATE api_keys SET replaced_by = $2, expires_at = LEAST(COALESCE(expires_at, $3), $3) WHERE id = $1`,
      [id, issued.apiKey.id, until],
    );
    return issued;
  });
}

/** Revokes a member's app tokens (erasure). */
export async function revokeMemberKeys(db: Sql, memberId: string, now: Date): Promise<void> {
  await db.query('UPDATE api_keys SET revoked_at = $2 WHERE member_id = $1 AND revoked_at IS NULL', [memberId, now]);
}

interface Cached {
  row: Row;
  fetchedAt: number;
}

/**
 * Checks bearer keys. Rows are cached for `maxAgeMs`, so a revocation reaches every gateway within that time
 * (and the gateway that revoked it at once, through `forget`). An unknown id is never cached.
 */
export class KeyVerifier {
  private readonly cache = new Map<string, Cached>();

  constructor(private readonly maxAgeMs = 5_000, private readonly maxEntries = 50_000) {}

  forget(id: string): void {
    this.cache.delete(id);
  }

  /** After an erasure: the member's tokens are read again (and found revoked) on their next use. */
  forgetMember(memberId: string): void {
    for (const [id, hit] of this.cache) if (hit.row.member_id === memberId) this.cache.delete(id);
  }

  async verify(db: Sql, key: string, now: Date): Promise<Principal> {
    const m = KEY_PATTERN.exec(key);
    if (!m) throw new AppError('API_KEY_INVALID', 'the API key is malformed');
    const [, id, secret] = m as unknown as [string, string, string];
    let hit = this.cache.get(id);
    if (!hit || Date.now() - hit.fetchedAt > this.maxAgeMs) {
      const [row] = await db.query<Row>('SELECT * FROM api_keys WHERE id = $1', [id]);
      if (!row) throw new AppError('API_KEY_INVALID', 'the API key is not known');
      if (this.cache.size >= this.maxEntries) this.cache.clear();
      hit = { row, fetchedAt: Date.now() };
      this.cache.set(id, hit);
    }
    const { row } = hit;
    if (!timingSafeEqual(hashOf(secret), row.secret_hash)) throw new AppError('API_KEY_INVALID', 'the API key is not known');
    if (row.revoked_at && row.revoked_at <= now) throw new AppError('API_KEY_REVOKED', `API key ${id} was revoked at ${row.revoked_at.toISOString()}`);
    if (row.expires_at && row.expires_at <= now) throw new AppError('API_KEY_EXPIRED', `API key ${id} expired at ${row.expires_at.toISOString()}`);
    return { role: row.role, credentialId: row.id, merchantId: row.merchant_id, memberId: row.member_id };
  }
}

/**
 * The first start of an installation has no way in: when no administrator key is live, one is made and
 * returned (to be shown once). Gateways starting together make one between them.
 */
export async function bootstrapAdministratorKey(db: Database, now: Date): Promise<string | null> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(7331001)');
    const [live] = await tx.query(
      `SELECT 1 FROM api_keys WHERE role = 'administrator' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) LIMIT 1`, [now],
    );
    if (live) return null;
    return (await issueApiKey(tx, { role: 'administrator', name: 'first administrator' })).key;
  });
}
