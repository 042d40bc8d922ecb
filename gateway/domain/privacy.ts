// The member's rights and the system's storage limits: export everything held, erase personal data while
// keeping anonymous aggregates and the proof of consent, purge raw presence after the retention period,
// and count (never store) presence refused at the door.
import { revokeMemberKeys } from './api-keys.js';
import { PURPOSES } from '../../consent/index.js';
import type { Database, Sql } from '../db/database.js';
import { AppError } from '../errors.js';
import { appendConsent, currentConsent } from './consents.js';
import { destroyIdentityKey } from './eid-registry.js';
import { forgetNumber } from './limits.js';
import { getMember } from './members.js';

export type DropKind = 'checkin_no_location_consent' | 'detection_no_ble_consent' | 'detection_unresolved' | 'offer_stale';

/** Counts one refused item of presence data for today; the item itself is gone. */
export async function countDrop(db: Sql, kind: DropKind, at: Date): Promise<void> {
  await countDrops(db, kind, at, 1);
}

export async function countDrops(db: Sql, kind: DropKind, at: Date, n: number): Promise<void> {
  if (n <= 0) return;
  await db.query(
    `INSERT INTO drop_counters (day, kind, count) VALUES ($1::date, $2, $3)
     ON CONFLICT (day, kind) DO UPDATE SET count = drop_counters.count + $3`,
    [at.toISOString().slice(0, 10), kind, n],
  );
}

// Every table that holds rows about a member, with the column that names them. Export reads them all, and
// the erasure test searches them all, so a table added later without an entry here fails loudly there.
export const MEMBER_TABLES: Array<{ table: string; column: string; order: string; columns?: string }> = [
  { table: 'consent_events', column: 'member_id', order: 'id' },
  { table: 'consent_receipts', column: 'member_id', order: 'id' },
  { table: 'checkins', column: 'member_id', order: 'occurred_at' },
  { table: 'detections', column: 'member_id', order: 'occurred_at' },
  { table: 'visits', column: 'member_id', order: 'started_at' },
  { table: 'member_presence', column: 'member_id', order: 'member_id' },
  { table: 'decisions', column: 'member_id', order: 'occurred_at' },
  { table: 'coupons', column: 'member_id', order: 'issued_at' },
  { table: 'deliveries', column: 'member_id', order: 'created_at' },
  { table: 'inbound_sms', column: 'member_id', order: 'received_at' },
  { table: 'member_zone_presence', column: 'member_id', order: 'zone_id' },
  // The key itself stays out of exports: it is what the app computes its EIDs from, not information.
  { table: 'member_identity_keys', column: 'member_id', order: 'issued_at', columns: 'member_id, rotation_exponent, issued_at' },
  { table: 'identity_key_changes', column: 'member_id', order: 'seq' },
  // The devices' encryption keys stay out too: the endpoints say which devices; the keys say nothing more.
  { table: 'push_subscriptions', column: 'member_id', order: 'created_at', columns: 'id, member_id, provider, endpoint, expires_at, created_at, last_success_at' },
  // The app's tokens: that they exist and when they were made or revoked; never the secret's hash.
  { table: 'api_keys', column: 'member_id', order: 'created_at', columns: 'id, role, member_id, name, created_at, expires_at, revoked_at, replaced_by' },
  // The app's signed beacon reports seen (kept a short while to refuse replays): when, not what.
  { table: 'agent_requests', column: 'member_id', order: 'seen_at', columns: 'member_id, seen_at' },
];

/** Everything held about a member, table by table, as stored. */
export async function exportMember(db: Sql, memberId: string): Promise<Record<string, unknown>> {
  const [member] = await db.query('SELECT * FROM members WHERE id = $1', [memberId]);
  if (!member) throw new AppError('MEMBER_NOT_FOUND', `member ${memberId} does not exist`);
  const out: Record<string, unknown> = { exportedAt: new Date().toISOString(), member };
  for (const { table, column, order, columns } of MEMBER_TABLES) {
    out[table] = await db.query(`SELECT ${columns ?? '*'} FROM ${table} WHERE ${column} = $1 ORDER BY ${order}`, [memberId]);
  }
  out.redemptions = await db.query(
    'SELECT r.* FROM redemptions r JOIN coupons c ON c.id = r.coupon_id WHERE c.member_id = $1 ORDER BY r.redeemed_at',
    [memberId],
  );
  out.redemption_voids = await db.query(
    'SELECT v.* FROM redemption_voids v JOIN coupons c ON c.id = v.coupon_id WHERE c.member_id = $1 ORDER BY v.voided_at',
    [memberId],
  );
  return out;
}

/**
 * Erasure: the member's identity (phone, external id, tags, tier, home store, push subscriptions) and all raw presence
 * (check-ins, detections, visits, presence state, positions in decision traces) are destroyed; every purpose
 * still granted is withdrawn, with the withdrawal kept as proof; queued messages are cancelled. What stays
 * is anonymous: the member row's id, coupons, deliveries (their text holds a code, no contact), redemptions,
 * and decisions without positions, so campaign counts and lift still add up.
 */
export async function eraseMember(db: Database, memberId: string, now: Date): Promise<{ erasedAt: string; withdrawn: string[] }> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT 1 FROM members WHERE id = $1 FOR UPDATE', [memberId]);
    await getMember(tx, memberId);
    const state = await currentConsent(tx, memberId);
    const withdrawn = PURPOSES.filter((p) => state[p].granted || state[p].pending);
    for (const purpose of withdrawn) {
      await appendConsent(tx, memberId, { purpose, action: 'withdraw', source: 'api', actor: 'erasure', occurredAt: now });
    }
    // The number's sign-up and opt-in counts say it was texted: they go with it.
    const [phone] = await tx.query<{ phone_e164: string | null }>('SELECT phone_e164 FROM members WHERE id = $1', [memberId]);
    if (phone?.phone_e164) await forgetNumber(tx, phone.phone_e164);
    // Evidence keeps what was decided and when; the network identity of the device goes.
    await tx.query('UPDATE consent_events SET ip = NULL, user_agent = NULL WHERE member_id = $1', [memberId]);
    await tx.query(
      `UPDATE members SET phone_e164 = NULL, external_ref = NULL, tags = '{}', tier = NULL, home_store_id = NULL, erased_at = $2
        WHERE id = $1`,
      [memberId, now],
    );
    await destroyIdentityKey(tx, memberId);
    // The app's tokens go too: nothing is left to sign in as.
    await revokeMemberKeys(tx, memberId, now);
    for (const table of ['checkins', 'detections', 'visits', 'member_presence', 'member_zone_presence', 'push_subscriptions', 'agent_requests']) {
      await tx.query(`DELETE FROM ${table} WHERE member_id = $1`, [memberId]);
    }
    // Answers kept for Idempotency-Key retries hold decision traces (positions) and push endpoints.
    await tx.query(`DELETE FROM idempotency_keys WHERE scope = 'member:' || $1`, [memberId]);
    // Traces hold the fix and distances to geofences: both say where the member was.
    await tx.query(`UPDATE decisions SET trace = trace - 'event' - 'evaluation' WHERE member_id = $1`, [memberId]);
    await tx.query(
      `UPDATE deliveries SET status = 'cancelled', status_reason = 'MEMBER_ERASED', updated_at = now() WHERE member_id = $1 AND status = 'queued'`,
      [memberId],
    );
    return { erasedAt: now.toISOString(), withdrawn };
  });
}

/**
 * Storage limitation: raw check-ins and detections, and the positions and distances in decision traces,
 * live `days` days. Decisions themselves (outcome, campaign, reason) stay for reporting.
 */
export async function purgeExpired(db: Database, now: Date, days: number): Promise<{ checkins: number; detections: number; traces: number }> {
  const before = new Date(now.getTime() - days * 86_400_000);
  return db.transaction(async (tx) => {
    // Decisions keep their checkin_id's row only while it exists (ON DELETE SET NULL).
    const checkins = await tx.query('DELETE FROM checkins WHERE occurred_at < $1 RETURNING 1', [before]);
    const detections = await tx.query('DELETE FROM detections WHERE occurred_at < $1 RETURNING 1', [before]);
    const traces = await tx.query(
      `UPDATE decisions SET trace = trace - 'event' - 'evaluation' WHERE occurred_at < $1 AND (trace ? 'event' OR trace ? 'evaluation') RETURNING 1`,
      [before],
    );
    return { checkins: checkins.length, detections: detections.length, traces: traces.length };
  });
}

/**
 * Members who signed up in the app without a phone and never used the programme, `days` after they joined:
 * deleted with their app tokens. Never used: no row about them in any member table but their tokens (no
 * consent ever given or asked, no check-in, detection, visit, decision, coupon, delivery, push device or EID
 * key), no fact set by the operator (external ref, tier, tags, home store), not erased (an erased member's
 * row keeps aggregates whole), and no token rotated (a rotation is use).
 */
export async function purgeUnusedMembers(db: Sql, now: Date, days: number): Promise<number> {
  const unused = MEMBER_TABLES.filter((t) => t.table !== 'api_keys')
    .map((t) => `AND NOT EXISTS (SELECT 1 FROM ${t.table} x WHERE x.${t.column} = m.id)`).join('\n        ');
  const rows = await db.query(
    `DELETE FROM members m
      WHERE m.joined_via = 'app' AND m.phone_e164 IS NULL AND m.created_at < $1 AND m.erased_at IS NULL
        AND m.external_ref IS NULL AND m.tier IS NULL AND m.tags = '{}' AND m.home_store_id IS NULL
        ${unused}
        AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.member_id = m.id AND k.replaced_by IS NOT NULL)
      RETURNING m.id`,
    [new Date(now.getTime() - days * 86_400_000)],
  );
  if (rows.length > 0) {
    await db.query(`DELETE FROM idempotency_keys WHERE scope = ANY($1::text[])`, [rows.map((r) => `member:${(r as { id: string }).id}`)]);
  }
  return rows.length;
}
