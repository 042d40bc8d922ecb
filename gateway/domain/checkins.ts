// The decision path of a GPS check-in: location consent first; then the fix updates the member's presence
// (geofence enter, exit, dwell, pass-by); the check-in and each presence event are evaluated by the rules.
import { DEFAULT_PRESENCE_POLICY, signedDistanceM, stepAll, type GeofencePresence, type PreparedCampaigns, type PresenceEvent } from '../../campaign-rules/index.js';
import { checkConsent, type ConsentState } from '../../consent/index.js';
import type { Sql } from '../db/database.js';
import { preparedCampaigns } from './campaign-cache.js';
import { currentConsent } from './consents.js';
import { decide, insertDecision, memberContext, type Decision } from './decide.js';
import { countDrop } from './privacy.js';
import { queueDeliveries } from './deliveries.js';
import type { Deps } from './deps.js';
import { getMember, type Member } from './members.js';
import { visitLeft, visitStarted } from './visits.js';

/** A fix older than this has missed its moment: it is kept but triggers nothing. */
export const STALE_AFTER_MS = 10 * 60_000;
/** How long an offer SMS stays worth delivering once queued. */

export interface CheckinInput {
  memberId: string;
  lat: number;
  lon: number;
  accuracyM: number;
  at: Date;
}

export interface CheckinResult {
  /** Null when the check-in was not kept (no location consent). */
  checkinId: string | null;
  /** The check-in's own decision first, then one for each presence event a campaign listens to. */
  decisions: Decision[];
  deliveryIds: string[];
}

/** GPS confidence falls with the reported accuracy: 10 m is 0.9, 50 m is 0.5, 100 m or worse is 0. */
export const gpsConfidence = (accuracyM: number) => Math.max(0, Math.min(1, 1 - accuracyM / 100));

async function insertCheckin(db: Sql, c: CheckinInput): Promise<string> {
  const [row] = await db.query<{ id: string }>(
    'INSERT INTO checkins (member_id, lat, lon, accuracy_m, occurred_at) VALUES ($1, $2, $3, $4, $5) RETURNING id',
    [c.memberId, c.lat, c.lon, c.accuracyM, c.at],
  );
  return row!.id;
}

/** Steps the member's presence in every geofence near the fix; stores the new state and the visits. */
async function updatePresence(tx: Sql, prepared: PreparedCampaigns, member: Member, input: CheckinInput): Promise<PresenceEvent[]> {
  const point = { lat: input.lat, lon: input.lon };
  const [row] = await tx.query<{ fences: Record<string, GeofencePresence>; last_fix_at: Date }>(
    'SELECT fences, last_fix_at FROM member_presence WHERE member_id = $1',
    [member.id],
  );
  // A fix older than the newest one already seen says nothing about where the member is now.
  if (row && input.at < row.last_fix_at) return [];
  const near = prepared.index.near(point, Math.max(input.accuracyM, DEFAULT_PRESENCE_POLICY.exitBufferFloorM) + 1);
  const rules = {
    dwellMinutes: [...new Set(prepared.campaigns.flatMap((c) => (c.trigger.kind === 'geofence_dwell' ? [c.trigger.minutes] : [])))],
    passByMinutes: [...new Set(prepared.campaigns.flatMap((c) => (c.trigger.kind === 'pass_by' ? [c.trigger.withinMinutes] : [])))],
  };
  const { next, events } = stepAll(
    row?.fences ?? {},
    near.map((f) => ({ fenceId: f.id, signedDistanceM: signedDistanceM(f, point) })),
    { accuracyM: input.accuracyM, at: input.at },
    rules,
  );
  await tx.query(
    `INSERT INTO member_presence (member_id, fences, last_fix_at) VALUES ($1, $2, $3)
     ON CONFLICT (member_id) DO UPDATE SET fences = $2, last_fix_at = greatest(member_presence.last_fix_at, $3), updated_at = now()`,
    [member.id, next, input.at],
  );
  for (const e of events) {
    if (e.kind !== 'geofence_enter' && e.kind !== 'geofence_exit') continue;
    const [fence] = await tx.query<{ store_id: string | null }>('SELECT store_id FROM geofences WHERE id = $1', [e.geofenceId]);
    const place = { storeId: fence?.store_id ?? null, geofenceId: e.geofenceId };
    if (e.kind === 'geofence_enter') await visitStarted(tx, member.id, place, 'gps', e.at);
    else await visitLeft(tx, member.id, place, e.at);
  }
  return events.map((e) => ({
    kind: e.kind,
    source: 'gps',
    confidence: gpsConfidence(input.accuracyM),
    at: e.at,
    position: point,
    accuracyM: input.accuracyM,
    geofenceId: e.geofenceId,
    ...(e.minutes !== undefined ? { minutes: e.minutes } : {}),
  }));
}

export async function handleCheckin(deps: Deps, input: CheckinInput): Promise<CheckinResult> {
  const { db } = deps;
  const now = deps.now();
  const result = await db.transaction(async (tx) => {
    // The member's row lock serialises this member's decisions, so caps hold under concurrent check-ins.
    await tx.query('SELECT 1 FROM members WHERE id = $1 FOR UPDATE', [input.memberId]);
    const member = await getMember(tx, input.memberId);
    const consent: ConsentState = await currentConsent(tx, member.id);

    // Without location consent the position is never stored or used; only the decision not to use it is.
    const location = checkConsent(consent, ['location']);
    if (!location.allowed) {
      await countDrop(tx, 'checkin_no_location_consent', now);
      const decision = await insertDecision(tx, {
        memberId: member.id, trigger: 'checkin', checkinId: null, at: input.at, outcome: 'dropped', reasonCode: location.reason,
        trace: { consent: { location }, note: 'check-in discarded unstored: location consent is not granted' },
      });
      return { checkinId: null, decisions: [decision], deliveryIds: [] };
    }

    const checkinId = await insertCheckin(tx, input);
    if (now.getTime() - input.at.getTime() > STALE_AFTER_MS) {
      const decision = await insertDecision(tx, {
        memberId: member.id, trigger: 'checkin', checkinId, at: input.at, outcome: 'not_sent', reasonCode: 'STALE_EVENT',
        trace: { consent: { location }, note: `fix is older than ${STALE_AFTER_MS / 60_000} minutes at evaluation` },
      });
      return { checkinId, decisions: [decision], deliveryIds: [] };
    }

    const prepared = await preparedCampaigns(db, tx);
    const presence = await updatePresence(tx, prepared, member, input);
    // A presence event is decided on only where some campaign listens for it: that kind, that geofence.
    const listened = new Set(prepared.campaigns.flatMap((c) => c.geofences.map((f) => `${c.trigger.kind}|${f.id}`)));
    const events: PresenceEvent[] = [
      {
        kind: 'checkin', source: 'gps', confidence: gpsConfidence(input.accuracyM), at: input.at,
        position: { lat: input.lat, lon: input.lon }, accuracyM: input.accuracyM,
      },
      ...presence.filter((e) => listened.has(`${e.kind}|${e.geofenceId}`)),
    ];
    const context = await memberContext(tx, member, consent, input.at, prepared);
    const decisions: Decision[] = [];
    const deliveryIds: string[] = [];
    for (const event of events) {
      const d = await decide(deps, tx, { member, consent, context, prepared, event, checkinId }, now);
      decisions.push(d.decision);
      if (d.deliveryId) deliveryIds.push(d.deliveryId);
    }
    return { checkinId, decisions, deliveryIds };
  });
  // After commit, bounded in time: what does not reach the queue stays 'queued', and the reconciler queues it.
  await queueDeliveries(deps, result.deliveryIds);
  return result;
}
