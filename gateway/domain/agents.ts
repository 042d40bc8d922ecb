// Store edge boxes: registration, key rotation and revocation, and the check of every signed upload
// (known agent, not revoked, fresh timestamp, valid signature, never seen before).
import { isUuid } from './ids.js';
import type { KeyObject } from 'node:crypto';
import { MAX_SKEW_MS, loadPublicKey, newAgentKeyPair, verifySignature, type SignedParts } from '../../beacon-agent/signing.js';
import type { Sql } from '../db/database.js';
import { AppError } from '../errors.js';

/** After a rotation the previous key keeps signing this long, so a box can pick up its new key. */
export const ROTATION_GRACE_MS = 15 * 60_000;

export interface Agent {
  id: string;
  storeId: string;
  name: string;
  keyVersion: number;
  createdAt: string;
  revokedAt: string | null;
}

interface AgentRow {
  id: string;
  store_id: string;
  name: string;
  public_key: string;
  key_version: number;
  previous_public_key: string | null;
  previous_valid_until: Date | null;
  created_at: Date;
  revoked_at: Date | null;
}

const toAgent = (r: AgentRow): Agent => ({
  id: r.id, storeId: r.store_id, name: r.name, keyVersion: r.key_version, createdAt: r.created_at.toISOString(),
  revokedAt: r.revoked_at?.toISOString() ?? null,
});

/** A new agent and its private key, which is shown this once and never stored. */
export async function registerAgent(db: Sql, input: { storeId: string; name: string }): Promise<{ agent: Agent; privateKey: string }> {
  const [store] = await db.query('SELECT 1 FROM stores WHERE id = $1', [input.storeId]);
  if (!store) throw new AppError('STORE_NOT_FOUND', `store ${input.storeId} does not exist`);
  const keys = newAgentKeyPair();
  const [row] = await db.query<AgentRow>(
    'INSERT INTO agents (store_id, name, public_key) VALUES ($1, $2, $3) RETURNING *',
    [input.storeId, input.name, keys.publicKey],
  );
  return { agent: toAgent(row!), privateKey: keys.privateKeyPem };
}

export async function getAgent(db: Sql, id: string): Promise<Agent> {
  const [row] = await db.query<AgentRow>('SELECT * FROM agents WHERE id = $1', [id]);
  if (!row) throw new AppError('AGENT_NOT_FOUND', `agent ${id} does not exist`);
  return toAgent(row);
}

/** A new key; the old one keeps working for ROTATION_GRACE_MS. */
export async function rotateAgentKey(db: Sql, id: string, now: Date): Promise<{ agent: Agent; privateKey: string }> {
  const keys = newAgentKeyPair();
  const [row] = await db.query<AgentRow>(
    `UPDATE agents SET previous_public_key = public_key, previous_valid_until = $3, public_key = $2, key_version = key_version + 1
      WHERE id = $1 AND revoked_at IS NULL RETURNING *`,
    [id, keys.publicKey, new Date(now.getTime() + ROTATION_GRACE_MS)],
  );
  if (!row) {
    await getAgent(db, id);
    throw new AppError('AGENT_REVOKED', `agent ${id} is revoked`);
  }
  return { agent: toAgent(row), privateKey: keys.privateKeyPem };
}

export async function revokeAgent(db: Sql, id: string, now: Date): Promise<Agent> {
  const [row] = await db.query<AgentRow>(
    'UPDATE agents SET revoked_at = coalesce(revoked_at, $2), previous_public_key = NULL, previous_valid_until = NULL WHERE id = $1 RETURNING *',
    [id, now],
  );
  if (!row) throw new AppError('AGENT_NOT_FOUND', `agent ${id} does not exist`);
  return toAgent(row);
}

// Parsing a public key costs more than a signature check; keys are immutable text, so cache them by value.
const parsed = new Map<string, KeyObject>();
function publicKey(spki: string): KeyObject {
  let key = parsed.get(spki);
  if (!key) {
    key = loadPublicKey(spki);
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(spki, key);
  }
  return key;
}

export interface SignedRequest extends SignedParts {
  agentId: string;
  signature: string;
}

/** A signed request's timestamp must be within MAX_SKEW_MS of the gateway's clock; the answer says the gateway's time. */
export function checkFresh(timestamp: number, now: Date): void {
  if (!Number.isFinite(timestamp) || Math.abs(now.getTime() - timestamp) > MAX_SKEW_MS) {
    throw new AppError('REQUEST_STALE', `the request's timestamp is more than ${MAX_SKEW_MS / 60_000} minutes from the gateway's clock`, {
      gatewayTime: now.toISOString(),
    });
  }
}

/** The agent behind a signed request, or a 401/403 that says what was wrong; remembers nothing. */
export async function verifyAgent(db: Sql, req: SignedRequest, now: Date): Promise<Agent> {
  return checkSigned(await loadAgentRow(db, req.agentId), req, now);
}

async function loadAgentRow(db: Sql, agentId: string): Promise<AgentRow | undefined> {
  return isUuid(agentId) ? (await db.query<AgentRow>('SELECT * FROM agents WHERE id = $1', [agentId]))[0] : undefined;
}

function checkSigned(row: AgentRow | undefined, req: SignedRequest, now: Date): Agent {
  if (!row) throw new AppError('AGENT_UNKNOWN', 'the request names no known agent');
  if (row.revoked_at) throw new AppError('AGENT_REVOKED', `agent ${row.id} is revoked`);
  checkFresh(req.timestamp, now);
  const keys = [row.public_key];
  if (row.previous_public_key && row.previous_valid_until && row.previous_valid_until > now) keys.push(row.previous_public_key);
  if (!keys.some((k) => verifySignature(publicKey(k), req, req.signature))) {
    throw new AppError('SIGNATURE_INVALID', 'x-agent-signature does not match this request');
  }
  return toAgent(row);
}

/**
 * verifyAgent with each agent's row kept for a few seconds, so that a busy box's uploads are checked without
 * a round trip. The copy is never the last word: a signature it refuses is checked again against the stored
 * row (the box may have rotated its key), and callers re-read the revocation inside their transaction
 * (ingest does, in its first statement).
 */
export class AgentVerifier {
  private readonly rows = new Map<string, { row: AgentRow; at: number }>();

  constructor(private readonly maxAgeMs = 5_000) {}

  async verify(db: Sql, req: SignedRequest, now: Date): Promise<Agent> {
    const hit = this.rows.get(req.agentId);
    if (hit && performance.now() - hit.at < this.maxAgeMs) {
      try {
        return checkSigned(hit.row, req, now);
      } catch (err) {
        if (!(err instanceof AppError) || err.code !== 'SIGNATURE_INVALID') throw err;
      }
    }
    const row = await loadAgentRow(db, req.agentId);
    if (row) {
      if (this.rows.size >= 10_000) this.rows.clear();
      this.rows.set(row.id, { row, at: performance.now() });
    }
    return checkSigned(row, req, now);
  }
}

/**
 * verifyAgent, and the signature remembered: the same signed request sent again is refused. Run inside the
 * transaction that stores the upload, so a request that fails to store can be sent again.
 */
export async function authenticateAgent(tx: Sql, req: SignedRequest, now: Date): Promise<Agent> {
  const agent = await verifyAgent(tx, req, now);
  await rememberRequest(tx, { agentId: agent.id }, req.signature, now);
  return agent;
}

/**
 * Refuses a signature seen before, 409 REQUEST_REPLAYED; otherwise remembers it (in the caller's transaction).
 * The sender is a box, or a member's app for its beacon reports.
 */
export async function rememberRequest(tx: Sql, sender: { agentId: string } | { memberId: string }, signature: string, now: Date): Promise<void> {
  const [agentId, memberId] = 'agentId' in sender ? [sender.agentId, null] : [null, sender.memberId];
  // seen_at on the gateway's clock, the clock the staleness check and the purge use.
  const fresh = await tx.query(
    'INSERT INTO agent_requests (signature, agent_id, member_id, seen_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1',
    [signature, agentId, memberId, now],
  );
  if (fresh.length === 0) throw new AppError('REQUEST_REPLAYED', 'this signed request was already received');
}

/** Signatures older than the allowed skew can no longer be replayed (their timestamps are stale). */
export async function purgeAgentRequests(db: Sql, now: Date): Promise<number> {
  const rows = await db.query('DELETE FROM agent_requests WHERE seen_at < $1 RETURNING 1', [new Date(now.getTime() - 2 * MAX_SKEW_MS)]);
  return rows.length;
}
