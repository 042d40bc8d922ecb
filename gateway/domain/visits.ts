// Fusion: a visit is one stay of a member at a store, whatever saw it. GPS geofence presence and BLE zone
// presence at the same store join one visit; a stay that resumes within VISIT_GAP_MS of its end (a GPS
// wobble, a phone's EID rotating, a box restarting) continues the same visit. Free-standing geofences
// (no store) keep a visit per geofence, as GPS alone sees them.
import type { Sql } from '../db/database.js';

export const VISIT_GAP_MS = 5 * 60_000;

export type VisitSource = 'gps' | 'ble_zone' | 'app_beacon';

export interface Place {
  storeId: string | null;
  geofenceId: string | null;
}

/** Someone is at this place now: joins the member's current or just-ended visit there, or starts one. */
export async function visitStarted(tx: Sql, memberId: string, place: Place, source: VisitSource, at: Date): Promise<{ visitId: string; started: boolean }> {
  const [open] = place.storeId
    ? await tx.query<{ id: string }>(
      `SELECT id FROM visits WHERE member_id = $1 AND store_id = $2 AND started_at <= $3::timestamptz + $4 * interval '1 millisecond'
          AND (ended_at IS NULL OR ended_at >= $3::timestamptz - $4 * interval '1 millisecond')
        ORDER BY started_at DESC LIMIT 1 FOR UPDATE`,
      [memberId, place.storeId, at, VISIT_GAP_MS],
    )
    : [];
  if (open) {
    await tx.query(
      `UPDATE visits SET ended_at = NULL, last_seen_at = greatest(last_seen_at, $2),
              sources = CASE WHEN $3 = ANY(sources) THEN sources ELSE sources || $3::text END
        WHERE id = $1`,
      [open.id, at, source],
    );
    return { visitId: open.id, started: false };
  }
  const [row] = await tx.query<{ id: string }>(
    `INSERT INTO visits (member_id, geofence_id, store_id, source, sources, started_at, last_seen_at)
     VALUES ($1, $2, $3, $4, ARRAY[$4::text], $5, $5) RETURNING id`,
    [memberId, place.geofenceId, place.storeId, source, at],
  );
  return { visitId: row!.id, started: true };
}

/** visitStarted for many members at one store, one moment each, in three statements. */
export async function visitsStarted(tx: Sql, storeId: string, starts: ReadonlyArray<{ memberId: string; at: Date }>, source: VisitSource): Promise<void> {
  if (starts.length === 0) return;
  const members = starts.map((s) => s.memberId);
  const ats = starts.map((s) => s.at);
  // DISTINCT ON cannot take row locks: lock every candidate, keep each member's newest.
  const rows = await tx.query<{ id: string; member_id: string; started_at: Date }>(
    `SELECT v.id, v.member_id, v.started_at FROM unnest($2::uuid[], $3::timestamptz[]) AS s(member_id, at)
       JOIN visits v ON v.member_id = s.member_id AND v.store_id = $1
        AND v.started_at <= s.at + $4 * interval '1 millisecond'
        AND (v.ended_at IS NULL OR v.ended_at >= s.at - $4 * interval '1 millisecond')
      ORDER BY v.id FOR UPDATE OF v`,
    [storeId, members, ats, VISIT_GAP_MS],
  );
  const newest = new Map<string, { id: string; started_at: Date }>();
  for (const r of rows) if ((newest.get(r.member_id)?.started_at ?? 0) < r.started_at) newest.set(r.member_id, r);
  const joined = starts.filter((s) => newest.has(s.memberId));
  const fresh = starts.filter((s) => !newest.has(s.memberId));
  if (joined.length > 0) {
    await tx.query(
      `UPDATE visits v SET ended_at = NULL, last_seen_at = greatest(v.last_seen_at, j.at),
              sources = CASE WHEN $3 = ANY(v.sources) THEN v.sources ELSE v.sources || $3::text END
         FROM unnest($1::uuid[], $2::timestamptz[]) AS j(id, at) WHERE v.id = j.id`,
      [joined.map((s) => newest.get(s.memberId)!.id), joined.map((s) => s.at), source],
    );
  }
  if (fresh.length > 0) {
    await tx.query(
      `INSERT INTO visits (member_id, store_id, source, sources, started_at, last_seen_at)
       SELECT m, $1, $4, ARRAY[$4::text], at, at FROM unnest($2::uuid[], $3::timestamptz[]) AS f(m, at)`,
      [storeId, fresh.map((s) => s.memberId), fresh.map((s) => s.at), source],
    );
  }
}

/** Whether any source still places the member at the store: a BLE zone, or a GPS geofence of the store. */
async function stillAtStore(tx: Sql, memberId: string, storeId: string, exceptZoneId: string | null): Promise<boolean> {
  const [row] = await tx.query<{ there: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM member_zone_presence WHERE member_id = $1 AND store_id = $2 AND zone_id IS DISTINCT FROM $3::uuid AND cardinality(eids) > 0)
         OR EXISTS (SELECT 1 FROM member_presence p JOIN geofences g ON p.fences ? g.id::text
                     WHERE p.member_id = $1 AND g.store_id = $2) AS there`,
    [memberId, storeId, exceptZoneId],
  );
  return row?.there ?? false;
}

/**
 * One source says the member left: the visit ends when no source places them there any more. A zone that was
 * left is not asked again (its presence row, if any, is a later stay that this batch already recorded).
 */
export async function visitLeft(tx: Sql, memberId: string, place: Place, at: Date, leftZoneId: string | null = null): Promise<boolean> {
  if (!place.storeId) {
    const rows = await tx.query('UPDATE visits SET ended_at = $3 WHERE member_id = $1 AND geofence_id = $2 AND ended_at IS NULL RETURNING 1', [memberId, place.geofenceId, at]);
    return rows.length > 0;
  }
  if (await stillAtStore(tx, memberId, place.storeId, leftZoneId)) return false;
  const rows = await tx.query(
    'UPDATE visits SET ended_at = greatest(started_at, $3), last_seen_at = greatest(last_seen_at, $3) WHERE member_id = $1 AND store_id = $2 AND ended_at IS NULL RETURNING 1',
    [memberId, place.storeId, at],
  );
  return rows.length > 0;
}

/** Ends every zone stay of the member (ble_detection withdrawn): the rows go, and each store's visit ends
 * unless GPS still places the member there. */
export async function endZoneStays(tx: Sql, memberId: string, at: Date): Promise<void> {
  const stays = await tx.query<{ zone_id: string; store_id: string }>(
    'DELETE FROM member_zone_presence WHERE member_id = $1 RETURNING zone_id, store_id', [memberId],
  );
  for (const s of stays) await visitLeft(tx, memberId, { storeId: s.store_id, geofenceId: null }, at, s.zone_id);
}
