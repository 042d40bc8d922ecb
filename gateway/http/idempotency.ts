// Idempotent member-app writes (IETF httpapi draft "The Idempotency-Key HTTP Header Field"). A retry with the
// key of an earlier request gets that request's answer, status and body, without running it again:
//
//   first time               claim the key, run, record the answer (in the write's transaction where it can)
//   same key, answer kept    the kept answer, with Idempotent-Replayed: true
//   same key, still running  wait for its answer up to WAIT_MS, else 409 IDEMPOTENCY_KEY_IN_PROGRESS
//   same key, other request  409 IDEMPOTENCY_KEY_REUSED (another method, path or body)
//   5xx answer               not kept: the claim is released and a retry runs the request again
//
// Keys belong to a caller (a member, or a staff key) and expire after IDEMPOTENCY_KEY_TTL_HOURS. A claim whose
// attempt died (crash, lost connection) is taken over after LEASE_MS; where the answer is recorded in the
// write's transaction, that recording checks the claim is still its own, so a late first attempt rolls back.
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Sql } from '../db/database.js';
import type { Deps } from '../domain/deps.js';
import { AppError } from '../errors.js';
import { rawBodyOf } from './raw-body.js';

const WAIT_MS = 5_000;
const POLL_MS = 100;
const LEASE_MS = 30_000;

/** The header as the draft writes it, a quoted string ("..."); the bare form is taken too. */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({
    pattern: '^(?:"[A-Za-z0-9._:~+/=-]{1,255}"|[A-Za-z0-9._:~+/=-]{1,255})$',
    description: 'Makes the request safe to retry: a retry with the same key gets the first answer (Idempotent-Replayed: true) '
      + 'instead of running again; the same key with another body is 409 IDEMPOTENCY_KEY_REUSED. A UUID is a good key. '
      + 'Kept IDEMPOTENCY_KEY_TTL_HOURS (24 h by default), per member.',
  })),
});

interface Claim {
  scope: string;
  key: string;
  token: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    idempotencyClaim?: Claim;
  }
}

function scopeOf(req: FastifyRequest): string {
  const p = req.principal;
  if (p) return p.memberId ? `member:${p.memberId}` : `key:${p.credentialId}`;
  // A route signed by the member's own key (checked before this hook) names the member in its path.
  return `member:${(req.params as { id: string }).id}`;
}

const fingerprintOf = (req: FastifyRequest) =>
  createHash('sha256').update(`${req.method} ${req.url}\n${rawBodyOf(req) || JSON.stringify(req.body ?? null)}`).digest('base64url');

const CLAIM = `INSERT INTO idempotency_keys (scope, key, fingerprint, claim, claimed_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, claim = EXCLUDED.claim, claimed_at = EXCLUDED.claimed_at,
    status = NULL, body = NULL, expires_at = EXCLUDED.expires_at
  WHERE idempotency_keys.expires_at <= $5
     OR (idempotency_keys.status IS NULL AND idempotency_keys.claimed_at <= $7 AND idempotency_keys.fingerprint = EXCLUDED.fingerprint)
  RETURNING claim`;

const RECORD = `UPDATE idempotency_keys SET status = $4, body = $5
  WHERE scope = $1 AND key = $2 AND claim = $3 AND status IS NULL RETURNING 1`;

/** Records the answer of a claimed request; false when the claim is no longer this attempt's. */
async function record(db: Sql, c: Claim, status: number, body: string | null): Promise<boolean> {
  return (await db.query(RECORD, [c.scope, c.key, c.token, status, body])).length > 0;
}

/** The hooks that make a route idempotent; with them, its schema takes IdempotencyHeaders as `headers`. */
export function idempotency(deps: Deps) {
  const preHandler = async (req: FastifyRequest, reply: FastifyReply) => {
    const raw = req.headers['idempotency-key'];
    if (typeof raw !== 'string') return;
    const key = raw.replace(/^"(.*)"$/, '$1');
    const scope = scopeOf(req);
    const fingerprint = fingerprintOf(req);
    const token = randomUUID();
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const now = deps.now();
      const expires = new Date(now.getTime() + deps.config.idempotencyKeyTtlHours * 3_600_000);
      const stale = new Date(now.getTime() - LEASE_MS);
      const claimed = await deps.db.query(CLAIM, [scope, key, fingerprint, token, now, expires, stale]);
      if (claimed.length > 0) {
        req.idempotencyClaim = { scope, key, token };
        return;
      }
      const [kept] = await deps.db.query<{ fingerprint: string; status: number | null; body: string | null }>(
        'SELECT fingerprint, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2',
        [scope, key],
      );
      if (kept && kept.fingerprint !== fingerprint) {
        throw new AppError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for another request; use a new key for a new request');
      }
      if (kept?.status != null) {
        void reply.code(kept.status).header('idempotent-replayed', 'true');
        return reply.send(kept.body === null ? undefined : JSON.parse(kept.body));
      }
      if (Date.now() >= deadline) {
        throw new AppError('IDEMPOTENCY_KEY_IN_PROGRESS', 'a request with this Idempotency-Key is still running; try again shortly', { retryAfterSeconds: 1 });
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  };

  const onSend = async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const claim = req.idempotencyClaim;
    if (!claim) return payload;
    try {
      if (reply.statusCode >= 500) {
        await deps.db.query('DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND claim = $3 AND status IS NULL', [claim.scope, claim.key, claim.token]);
      } else {
        await record(deps.db, claim, reply.statusCode, typeof payload === 'string' && payload !== '' ? payload : null);
      }
    } catch (err) {
      // The answer goes out all the same; the claim lapses after LEASE_MS and a retry runs the request again.
      req.log.warn({ err }, 'could not record the answer to an Idempotency-Key');
    }
    return payload;
  };

  return { preHandler, onSend };
}

/**
 * The deps a handler decides with when its answer is what its (first) transaction returns, sent with `status`:
 * the answer is recorded in that transaction, so the decision and its answer commit together or not at all.
 */
export function answeredInTransaction(req: FastifyRequest, deps: Deps, status: number): Deps {
  const claim = req.idempotencyClaim;
  if (!claim) return deps;
  let first = true;
  const db: Deps['db'] = {
    ...deps.db,
    transaction(fn, opening) {
      if (!first) return deps.db.transaction(fn, opening);
      first = false;
      return deps.db.transaction(async (tx, opened) => {
        const result = await fn(tx, opened);
        if (!(await record(tx, claim, status, JSON.stringify(result)))) {
          throw new AppError('IDEMPOTENCY_KEY_IN_PROGRESS', 'a retry with this Idempotency-Key took over this request', { retryAfterSeconds: 1 });
        }
        return result;
      }, opening);
    },
  };
  return { ...deps, db };
}

/** Keys past their time (the hourly retention job). */
export async function purgeIdempotencyKeys(db: Sql, now: Date): Promise<number> {
  return (await db.query('DELETE FROM idempotency_keys WHERE expires_at <= $1 RETURNING 1', [now])).length;
}
