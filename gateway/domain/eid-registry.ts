// The trusted resolver of members' rotating Eddystone-EIDs. A key exists only while the member grants
// ble_detection: it is issued with the grant and destroyed with a withdrawal or an erasure, in the same
// transaction. Each gateway process keeps a cache derived from the database (keys, and per rotation window
// an EID -> member table) and catches up on the change log before lookup batches, so any number of gateways
// resolve alike. Ingest catches up at most once a second, and at once when an EID is unknown (a key just
// issued); each resolution is checked against the stored key in the upload's transaction, so a key
// destroyed a moment ago resolves nothing even while a cache still holds it.
import { randomBytes } from 'node:crypto';
import { eidFromTemporaryKey, rotationWindow, temporaryKey } from '../../beacon-agent/eid.js';
import type { Sql } from '../db/database.js';

/** An EID heard this many windows before or after the one the event's time falls in still resolves. */
export const DRIFT_WINDOWS = 1;
/** How far back the change log is read again on every sync (a transaction that commits later than this after
 * taking its sequence number would be missed). */
const LOOKBACK_S = 300;
/** Window tables kept at most; older ones are rebuilt if a late event ever needs them. */
const MAX_WINDOWS = 8;

export async function issueIdentityKey(tx: Sql, memberId: string, k: number): Promise<boolean> {
  const inserted = await tx.query(
    `INSERT INTO member_identity_keys (member_id, identity_key, rotation_exponent) VALUES ($1, $2, $3)
     ON CONFLICT (member_id) DO NOTHING RETURNING 1`,
    [memberId, randomBytes(16), k],
  );
  if (inserted.length > 0) await tx.query(`INSERT INTO identity_key_changes (member_id, change) VALUES ($1, 'issued')`, [memberId]);
  return inserted.length > 0;
}

export async function destroyIdentityKey(tx: Sql, memberId: string): Promise<boolean> {
  const deleted = await tx.query('DELETE FROM member_identity_keys WHERE member_id = $1 RETURNING 1', [memberId]);
  if (deleted.length > 0) await tx.query(`INSERT INTO identity_key_changes (member_id, change) VALUES ($1, 'destroyed')`, [memberId]);
  return deleted.length > 0;
}

export interface IdentityKeyView {
  identityKey: string;
  rotationExponent: number;
  issuedAt: string;
}

/** The member's own key, for their app to compute its EIDs; null without ble_detection. */
export async function readIdentityKey(db: Sql, memberId: string): Promise<IdentityKeyView | null> {
  const [row] = await db.query<{ identity_key: Buffer; rotation_exponent: number; issued_at: Date }>(
    'SELECT identity_key, rotation_exponent, issued_at FROM member_identity_keys WHERE member_id = $1',
    [memberId],
  );
  return row ? { identityKey: row.identity_key.toString('base64'), rotationExponent: row.rotation_exponent, issuedAt: row.issued_at.toISOString() } : null;
}

interface KeyEntry {
  key: Buffer;
  k: number;
  /** The temporary key changes only every 2^16 s; cached by that epoch. */
  tk?: { epoch: number; key: Buffer };
}

interface WindowTable {
  eids: Map<string, string>;
  byMember: Map<string, string>;
}

export class EidRegistry {
  private readonly keys = new Map<string, KeyEntry>();
  /** How many keys use each rotation exponent: resolve() tries only the exponents in use. */
  private readonly perExponent = new Map<number, number>();
  private readonly windows = new Map<string, WindowTable>();
  private seq = -1;
  /** Changes of the look-back period already applied, by seq, with their time. */
  private readonly applied = new Map<number, number>();

  private syncing: Promise<void> | null = null;
  /** When the last sync started (process clock, ms). */
  private syncedAt = -Infinity;

  /** @param maxAgeMs how long syncUnlessFresh() lets the cache go without catching up. */
  constructor(private readonly maxAgeMs = 1000) {}

  /** Brings the cache up to date with the change log; cheap when nothing changed. Concurrent callers share one run. */
  sync(db: Sql): Promise<void> {
    if (!this.syncing) {
      this.syncedAt = performance.now();
      this.syncing = this.catchUp(db).finally(() => {
        this.syncing = null;
      });
    }
    return this.syncing;
  }

  /**
   * sync(), unless one started less than maxAgeMs ago; says whether this call waited for a sync. For callers
   * that check each resolution against the stored keys anyway (resolveKey), and sync when an EID is unknown.
   */
  async syncUnlessFresh(db: Sql): Promise<boolean> {
    if (!this.syncing && performance.now() - this.syncedAt < this.maxAgeMs) return false;
    await this.sync(db);
    return true;
  }

  private async catchUp(db: Sql): Promise<void> {
    if (this.seq < 0) {
      const [top] = await db.query<{ seq: number | null }>('SELECT max(seq)::bigint AS seq FROM identity_key_changes');
      const rows = await db.query<{ member_id: string; identity_key: Buffer; rotation_exponent: number }>(
        'SELECT member_id, identity_key, rotation_exponent FROM member_identity_keys',
      );
      for (const r of rows) this.learn(r.member_id, { key: r.identity_key, k: r.rotation_exponent });
      this.seq = top?.seq ?? 0;
      return;
    }
    // Sequence numbers are taken at insert and become visible at commit, so a lower one can appear after a
    // higher one was read. Changes of the last few minutes are read again; those already applied are skipped.
    const log = await db.query<{ seq: number; member_id: string; at: Date }>(
      `SELECT seq, member_id, at FROM identity_key_changes WHERE seq > $1 OR at > now() - interval '${LOOKBACK_S} seconds' ORDER BY seq`,
      [this.seq],
    );
    const changes = log.filter((c) => !this.applied.has(c.seq));
    for (const c of changes) this.applied.set(c.seq, c.at.getTime());
    const oldest = Date.now() - 2 * LOOKBACK_S * 1000;
    for (const [seq, at] of this.applied) if (at < oldest) this.applied.delete(seq);
    if (changes.length === 0) return;
    const members = [...new Set(changes.map((c) => c.member_id))];
    // The rows as they are now: a key issued, destroyed and issued again is simply the current key.
    const rows = await db.query<{ member_id: string; identity_key: Buffer; rotation_exponent: number }>(
      'SELECT member_id, identity_key, rotation_exponent FROM member_identity_keys WHERE member_id = ANY($1::uuid[])',
      [members],
    );
    const current = new Map(rows.map((r) => [r.member_id, r]));
    for (const id of members) {
      this.forget(id);
      const row = current.get(id);
      if (row) this.learn(id, { key: row.identity_key, k: row.rotation_exponent });
    }
    this.seq = Math.max(this.seq, changes[changes.length - 1]!.seq);
  }

  /** resolve(), with the key that produced the EID, so that the caller can check the key is still the member's. */
  resolveKey(eid: string, atMs: number): { memberId: string; key: Buffer } | undefined {
    const memberId = this.resolve(eid, atMs);
    const entry = memberId === undefined ? undefined : this.keys.get(memberId);
    return entry && { memberId: memberId!, key: entry.key };
  }

  /** The member whose phone broadcast this EID around this time, if any key we hold produces it. */
  resolve(eid: string, atMs: number): string | undefined {
    const atS = Math.floor(atMs / 1000);
    for (const k of this.perExponent.keys()) {
      const span = 2 ** k;
      const start = rotationWindow(atS, k);
      for (let d = 0; d <= DRIFT_WINDOWS; d++) {
        for (const w of d === 0 ? [start] : [start - d * span, start + d * span]) {
          const member = this.table(k, w).eids.get(eid);
          if (member) return member;
        }
      }
    }
    return undefined;
  }

  /** The member's identity key and the EIDs their phone may be broadcasting around this time (drift included). */
  identity(memberId: string, atMs: number): { key: Buffer; eids: string[] } | undefined {
    const entry = this.keys.get(memberId);
    if (!entry) return undefined;
    const span = 2 ** entry.k;
    const start = rotationWindow(Math.floor(atMs / 1000), entry.k);
    const eids: string[] = [];
    for (let d = -DRIFT_WINDOWS; d <= DRIFT_WINDOWS; d++) {
      const w = start + d * span;
      if (w >= 0) eids.push(this.eidOf(entry, w));
    }
    return { key: entry.key, eids };
  }

  get size(): number {
    return this.keys.size;
  }

  private eidOf(entry: KeyEntry, windowStart: number): string {
    const epoch = Math.floor(windowStart / 0x10000);
    if (!entry.tk || entry.tk.epoch !== epoch) entry.tk = { epoch, key: temporaryKey(entry.key, windowStart) };
    return eidFromTemporaryKey(entry.tk.key, entry.k, windowStart).toString('hex');
  }

  private table(k: number, windowStart: number): WindowTable {
    const id = `${k}:${windowStart}`;
    let t = this.windows.get(id);
    if (t) return t;
    t = { eids: new Map(), byMember: new Map() };
    for (const [member, entry] of this.keys) {
      if (entry.k !== k) continue;
      const eid = this.eidOf(entry, windowStart);
      t.eids.set(eid, member);
      t.byMember.set(member, eid);
    }
    this.windows.set(id, t);
    // Maps keep insertion order: the first is the oldest built.
    while (this.windows.size > MAX_WINDOWS) this.windows.delete(this.windows.keys().next().value!);
    return t;
  }

  private forget(member: string): void {
    const entry = this.keys.get(member);
    if (!entry) return;
    this.keys.delete(member);
    const n = (this.perExponent.get(entry.k) ?? 1) - 1;
    if (n > 0) this.perExponent.set(entry.k, n);
    else this.perExponent.delete(entry.k);
    for (const t of this.windows.values()) {
      const eid = t.byMember.get(member);
      if (eid === undefined) continue;
      t.byMember.delete(member);
      if (t.eids.get(eid) === member) t.eids.delete(eid);
    }
  }

  private learn(member: string, entry: KeyEntry): void {
    this.forget(member);
    this.keys.set(member, entry);
    this.perExponent.set(entry.k, (this.perExponent.get(entry.k) ?? 0) + 1);
    for (const [id, t] of this.windows) {
      const [k, start] = id.split(':').map(Number) as [number, number];
      if (k !== entry.k) continue;
      const eid = this.eidOf(entry, start);
      t.eids.set(eid, member);
      t.byMember.set(member, eid);
    }
  }
}
