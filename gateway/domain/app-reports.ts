// Beacons of a store (iBeacon uuid/major/minor, each in a zone) and the app-reported path: a member's app
// tells the gateway which store beacon it heard, signed with a key derived from the member's EID identity key.
// Reports join the same zone presence, visits and zone triggers as the boxes' own detections.
import { verifyAppReport, type BeaconReport } from '../../beacon-agent/app-report.js';
import type { SignedParts } from '../../beacon-agent/signing.js';
import { MAX_SKEW_MS } from '../../beacon-agent/signing.js';
import type { Sql } from '../db/database.js';
import { AppError } from '../errors.js';
import { preparedCampaigns } from './campaign-cache.js';
import { currentConsent } from './consents.js';
import type { Decision } from './decide.js';
import { queueDeliveries } from './deliveries.js';
import type { Deps } from './deps.js';
import { checkFresh } from './agents.js';
import { applyTransitions, updateZonePresence, type Resolved } from './detections.js';
import { getMember } from './members.js';

export interface Beacon {
  id: string;
  storeId: string;
  zoneId: string | null;
  uuid: string;
  major: number;
  minor: number;
}

export async function addBeacon(db: Sql, storeId: string, b: { uuid: string; major: number; minor: number; zoneId: string }): Promise<Beacon> {
  const [zone] = await db.query('SELECT 1 FROM zones WHERE id = $1 AND store_id = $2', [b.zoneId, storeId]);
  if (!zone) {
    const [store] = await db.query('SELECT 1 FROM stores WHERE id = $1', [storeId]);
    throw store ? new AppError('ZONE_NOT_FOUND', `zone ${b.zoneId} is not a zone of store ${storeId}`) : new AppError('STORE_NOT_FOUND', `store ${storeId} does not exist`);
  }
  const [row] = await db.query<{ id: string }>(
    'INSERT INTO beacons (store_id, zone_id, uuid, major, minor) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uuid, major, minor) DO NOTHING RETURNING id',
    [storeId, b.zoneId, b.uuid.toLowerCase(), b.major, b.minor],
  );
  if (!row) throw new AppError('BEACON_TAKEN', `beacon ${b.uuid} ${b.major}/${b.minor} is already registered`);
  return { id: row.id, storeId, zoneId: b.zoneId, uuid: b.uuid.toLowerCase(), major: b.major, minor: b.minor };
}

export async function listBeacons(db: Sql, storeId: string): Promise<Beacon[]> {
  const rows = await db.query<{ id: string; store_id: string; zone_id: string | null; uuid: string; major: number; minor: number }>(
    'SELECT id, store_id, zone_id, uuid, major, minor FROM beacons WHERE store_id = $1 ORDER BY uuid, major, minor',
    [storeId],
  );
  return rows.map((r) => ({ id: r.id, storeId: r.store_id, zoneId: r.zone_id, uuid: r.uuid, major: r.major, minor: r.minor }));
}

export interface ReportResult {
  received: number;
  accepted: number;
  duplicates: number;
  rejected: Array<{ index: number; code: 'UNKNOWN_BEACON' | 'EVENT_IN_FUTURE' }>;
  decisions: Decision[];
  deliveryIds: string[];
}

/** The app's own EID-like marker in zone presence: a stay the app reported is left only by the app's exit. */
const APP_EID = 'app';

async function checkSignature(db: Sql, memberId: string, signed: SignedParts & { signature: string }, now: Date): Promise<void> {
  const [key] = await db.query<{ identity_key: Buffer }>('SELECT identity_key FROM member_identity_keys WHERE member_id = $1', [memberId]);
  if (!key || !verifyAppReport(key.identity_key, signed, signed.signature)) {
    throw new AppError('SIGNATURE_INVALID', 'x-app-signature does not match this request (or the member holds no key to sign with)');
  }
  checkFresh(signed.timestamp, now);
}

/** The report's signature checked on its own, before anything is looked up for the request (its Idempotency-Key). */
export const checkReportSignature = (deps: Deps, memberId: string, signed: SignedParts & { signature: string }) =>
  checkSignature(deps.db, memberId, signed, deps.now());

export async function reportBeacons(
  deps: Deps, memberId: string, signed: SignedParts & { signature: string }, sent: readonly BeaconReport[],
): Promise<ReportResult> {
  const now = deps.now();
  const reports = sent;
  const result = await deps.db.transaction(async (tx) => {
    // The signature first: an unsigned request learns nothing (403 whoever the member is) and locks nothing.
    await checkSignature(tx, memberId, signed, now);
    // Then the member's row, so a withdrawal or erasure is wholly before or after this report, and the ledger.
    await tx.query('SELECT 1 FROM members WHERE id = $1 FOR UPDATE', [memberId]);
    await getMember(tx, memberId);
    if (!(await currentConsent(tx, memberId)).ble_detection.granted) throw new AppError('CONSENT_REQUIRED', 'beacon reports need ble_detection consent');
    const seenIds = new Set<string>();

    const beacons = reports.length === 0 ? [] : await tx.query<{ uuid: string; major: number; minor: number; store_id: string; zone_id: string | null }>(
      `SELECT b.uuid::text, b.major, b.minor, b.store_id, b.zone_id FROM beacons b
         JOIN unnest($1::uuid[], $2::int[], $3::int[]) AS r(uuid, major, minor) USING (uuid, major, minor)`,
      [reports.map((r) => r.beacon.uuid.toLowerCase()), reports.map((r) => r.beacon.major), reports.map((r) => r.beacon.minor)],
    );
    const where = new Map(beacons.map((b) => [`${b.uuid}|${b.major}|${b.minor}`, b]));
    const rejected: ReportResult['rejected'] = [];
    const byStore = new Map<string, Resolved[]>();
    reports.forEach((r, index) => {
      // The same report twice in one request counts once, as it does across requests.
      if (seenIds.has(r.id)) return;
      seenIds.add(r.id);
      const b = where.get(`${r.beacon.uuid.toLowerCase()}|${r.beacon.major}|${r.beacon.minor}`);
      const at = new Date(r.at);
      if (!b?.zone_id) return void rejected.push({ index, code: 'UNKNOWN_BEACON' });
      if (at.getTime() > now.getTime() + MAX_SKEW_MS) return void rejected.push({ index, code: 'EVENT_IN_FUTURE' });
      const e = { id: r.id, kind: r.kind, eid: APP_EID, zoneId: b.zone_id, at: r.at, source: 'ble_passive' as const, confidence: 0.7, rssi: r.rssi ?? -70 };
      byStore.set(b.store_id, [...(byStore.get(b.store_id) ?? []), { e, memberId, at }]);
    });

    const prepared = await preparedCampaigns(deps.db, tx);
    const decisions: Decision[] = [];
    const deliveryIds: string[] = [];
    let accepted = 0;
    let valid = 0;
    for (const [storeId, items] of byStore) {
      valid += items.length;
      const stored = new Set((await tx.query<{ event_id: string }>(
        `INSERT INTO detections (event_id, agent_id, member_id, store_id, zone_id, source, kind, confidence, rssi, occurred_at)
         SELECT e, NULL, $1, $2, z, 'app_beacon', k, 0.7, r, t FROM unnest($3::text[], $4::uuid[], $5::text[], $6::int[], $7::timestamptz[]) AS u(e, z, k, r, t)
         ON CONFLICT (member_id, event_id) WHERE agent_id IS NULL DO NOTHING RETURNING event_id`,
        [memberId, storeId, items.map((i) => i.e.id), items.map((i) => i.e.zoneId), items.map((i) => i.e.kind), items.map((i) => Math.round(i.e.rssi)), items.map((i) => i.at)],
      )).map((r) => r.event_id));
      const fresh = items.filter((i) => stored.has(i.e.id));
      accepted += fresh.length;
      const transitions = await updateZonePresence(tx, prepared, storeId, fresh);
      const d = await applyTransitions(deps, tx, prepared, storeId, transitions, now, 'app_beacon');
      decisions.push(...d.decisions);
      deliveryIds.push(...d.deliveryIds);
    }
    return { received: sent.length, accepted, duplicates: sent.length - seenIds.size + valid - accepted, rejected, decisions, deliveryIds };
  });
  // After commit, bounded in time: what does not reach the queue stays 'queued', and the reconciler queues it.
  await queueDeliveries(deps, result.deliveryIds);
  return result;
}
