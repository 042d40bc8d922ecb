// Ingest of the boxes' presence events: authenticate the box, resolve each EID to a member (only members
// holding a key, that is granting ble_detection, can resolve), keep nothing about anyone else, store each
// event once, track which zones each member is in, fuse zone stays into visits, and decide on zone triggers.
import type { PreparedCampaigns, PresenceEvent as RulesEvent } from '../../campaign-rules/index.js';
import type { IngestBatch, PresenceEvent } from '../../beacon-agent/types.js';
import type { Database, Sql } from '../db/database.js';
import { AppError } from '../errors.js';
import { rememberRequest, type Agent, type SignedRequest } from './agents.js';
import { preparedCampaigns } from './campaign-cache.js';
import { currentConsent, grantingAmong } from './consents.js';
import { STALE_AFTER_MS } from './checkins.js';
import { decide, insertDecision, memberContext, type Decision } from './decide.js';
import type { Deps } from './deps.js';
import type { EidRegistry } from './eid-registry.js';
import { getMember } from './members.js';
import { countDrops } from './privacy.js';
import { visitLeft, visitStarted, visitsStarted } from './visits.js';

/** An event stamped further ahead of the gateway's clock than this is refused (a box with a broken clock). */
const FUTURE_SLACK_MS = 5 * 60_000;
/**
 * Boxes send a dwell event at least every 30 minutes while someone is inside (agent config). A zone stay with
 * no event for an hour ended when it was last heard of: its box restarted, or lost the EID without an exit.
 */
export const ZONE_STALE_MS = 60 * 60_000;
/**
 * A phone's EID rotates mid-stay; when the box hears the old one leave before the new one enters, the member
 * is back within this window and the stay resumes instead of starting again.
 */
export const ZONE_RESUME_MS = 2 * 60_000;

export interface Rejected {
  index: number;
  code: 'ZONE_NOT_IN_STORE' | 'EVENT_IN_FUTURE';
}

export interface IngestResult {
  received: number;
  /** Resolved to a consenting member and stored now. */
  accepted: number;
  /** Already stored by an earlier upload of the same event. */
  duplicates: number;
  /** Counted and discarded: no member's key produces the EID, or the member does not grant ble_detection. */
  discarded: number;
  rejected: Rejected[];
  decisions: Decision[];
  deliveryIds: string[];
}

export interface Resolved {
  e: PresenceEvent;
  memberId: string;
  at: Date;
}

interface ZoneState {
  eids: string[];
  enteredAt: Date;
  lastEventAt: Date;
}

export type Transition =
  | { kind: 'zone_enter'; memberId: string; zoneId: string; at: Date; e: PresenceEvent }
  | { kind: 'zone_dwell'; memberId: string; zoneId: string; at: Date; e: PresenceEvent; minutes: number }
  | { kind: 'zone_exit'; memberId: string; zoneId: string; at: Date }
  | { kind: 'zone_resume'; memberId: string; zoneId: string; at: Date };

const KIND_ORDER = { enter: 0, dwell: 1, exit: 2 } as const;

// Zones are only ever added to a store: a cached list is read again only when an event names a zone not in it.
const zoneCache = new Map<string, Set<string>>();
async function zonesOf(tx: Sql, storeId: string, wanted: readonly string[]): Promise<Set<string>> {
  const cached = zoneCache.get(storeId);
  if (cached && wanted.every((z) => cached.has(z))) return cached;
  const zones = new Set((await tx.query<{ id: string }>('SELECT id FROM zones WHERE store_id = $1', [storeId])).map((z) => z.id));
  if (zoneCache.size > 10_000) zoneCache.clear();
  zoneCache.set(storeId, zones);
  return zones;
}

/** `agent` has been verified against `signed` (verifyAgent); the signature is remembered here, with the upload. */
export async function ingestPresence(deps: Deps, registry: EidRegistry, agent: Agent, signed: SignedRequest, batch: IngestBatch): Promise<IngestResult> {
  const now = deps.now();
  if (batch.agentId !== agent.id) {
    throw new AppError('VALIDATION_FAILED', 'body/agentId must be the agent that signs the request', { issues: [{ field: 'body/agentId', problem: 'differs from x-agent-id' }] });
  }
  // Resolution is work on the process's own cache (a first upload builds its tables for every key): it is done
  // before the transaction, so no connection is held meanwhile. The ledger, checked under lock below, decides.
  const zones = await zonesOf(deps.db, agent.storeId, batch.events.map((e) => e.zoneId));
  await registry.sync(deps.db);
  const rejected: Rejected[] = [];
  const resolved: Resolved[] = [];
  let unresolved = 0;
  const seenIds = new Set<string>();
  batch.events.forEach((e, index) => {
    // The same event twice in one batch counts once, as it does across batches.
    if (seenIds.has(e.id)) return;
    seenIds.add(e.id);
    const at = new Date(e.at);
    if (!zones.has(e.zoneId)) return void rejected.push({ index, code: 'ZONE_NOT_IN_STORE' });
    if (at.getTime() > now.getTime() + FUTURE_SLACK_MS) return void rejected.push({ index, code: 'EVENT_IN_FUTURE' });
    const memberId = registry.resolve(e.eid, at.getTime());
    if (memberId) resolved.push({ e, memberId, at });
    else unresolved++;
  });

  const result = await deps.db.transaction(async (tx) => {
    await rememberRequest(tx, agent.id, signed.signature, now);

    // A key outlives its consent by a moment at most, but the ledger is the authority: check it,
    // holding the members' rows, so an erasure or withdrawal is wholly before or wholly after this upload. Locking
    // first, in id order, also keeps two boxes' uploads for the same members from deadlocking later.
    const members = [...new Set(resolved.map((r) => r.memberId))].sort();
    if (members.length > 0) await tx.query('SELECT 1 FROM members WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE', [members]);
    const granted = await grantingAmong(tx, members, 'ble_detection');
    const allowed = resolved.filter((r) => granted.has(r.memberId));

    const stored = new Set(allowed.length === 0 ? [] : (await tx.query<{ event_id: string }>(
      `INSERT INTO detections (event_id, agent_id, member_id, store_id, zone_id, source, kind, confidence, rssi, dwell_ms, occurred_at)
       SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::float8[], $9::int[], $10::bigint[], $11::timestamptz[])
       ON CONFLICT (agent_id, event_id) DO NOTHING RETURNING event_id`,
      [
        allowed.map((r) => r.e.id), allowed.map(() => agent.id), allowed.map((r) => r.memberId), allowed.map(() => agent.storeId),
        allowed.map((r) => r.e.zoneId), allowed.map((r) => r.e.source), allowed.map((r) => r.e.kind), allowed.map((r) => r.e.confidence),
        allowed.map((r) => Math.round(r.e.rssi)), allowed.map((r) => r.e.dwellMs ?? null), allowed.map((r) => r.at),
      ],
    )).map((r) => r.event_id));
    const fresh = allowed.filter((r) => stored.has(r.e.id));

    const prepared = await preparedCampaigns(deps.db, tx);
    const transitions = await updateZonePresence(tx, prepared, agent.storeId, fresh);
    const { decisions, deliveryIds } = await applyTransitions(deps, tx, prepared, agent.storeId, transitions, now);
    return {
      received: batch.events.length, accepted: fresh.length, duplicates: batch.events.length - seenIds.size + allowed.length - fresh.length,
      discarded: unresolved + resolved.length - allowed.length, rejected, decisions, deliveryIds,
      drops: { unresolved, noConsent: resolved.length - allowed.length },
    };
  });
  // Counted after commit, in statements of their own: a shared counter row is never held through an upload.
  await countDrops(deps.db, 'detection_unresolved', now, result.drops.unresolved);
  await countDrops(deps.db, 'detection_no_ble_consent', now, result.drops.noConsent);
  for (const id of result.deliveryIds) await deps.queue.enqueue('sms.send', { deliveryId: id }, { jobId: id }).catch(() => {});
  return result;
}

/** Dwell thresholds (minutes) that zone_dwell campaigns listen for, per zone. */
function dwellThresholds(prepared: PreparedCampaigns): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const c of prepared.campaigns) {
    if (c.trigger.kind !== 'zone_dwell') continue;
    for (const z of c.trigger.zoneIds) out.set(z, [...(out.get(z) ?? []), c.trigger.minutes]);
  }
  return out;
}

/**
 * Folds the fresh events into each member's zone presence, in time order, and returns what changed: a zone
 * entered (its first EID in), a dwell threshold crossed, a zone left (its last EID out). All rows touched are
 * read and written in one statement each, under row locks.
 */
export async function updateZonePresence(tx: Sql, prepared: PreparedCampaigns, storeId: string, fresh: Resolved[]): Promise<Transition[]> {
  if (fresh.length === 0) return [];
  const byPair = new Map<string, Resolved[]>();
  for (const r of fresh) {
    const key = `${r.memberId}|${r.e.zoneId}`;
    byPair.set(key, [...(byPair.get(key) ?? []), r]);
  }
  const pairs = [...byPair.keys()].sort().map((k) => k.split('|') as [string, string]);
  const rows = await tx.query<{ member_id: string; zone_id: string; eids: string[]; entered_at: Date; last_event_at: Date }>(
    `SELECT p.member_id, p.zone_id, p.eids, p.entered_at, p.last_event_at FROM member_zone_presence p
       JOIN unnest($1::uuid[], $2::uuid[]) AS k(member_id, zone_id) USING (member_id, zone_id)
      ORDER BY p.member_id, p.zone_id FOR UPDATE OF p`,
    [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
  );
  const before = new Map(rows.map((r) => [`${r.member_id}|${r.zone_id}`, { eids: r.eids, enteredAt: r.entered_at, lastEventAt: r.last_event_at }]));
  const thresholds = dwellThresholds(prepared);
  const transitions: Transition[] = [];
  const upserts: Array<[string, string, ZoneState]> = [];
  const deletes: Array<[string, string]> = [];

  for (const [memberId, zoneId] of pairs) {
    const key = `${memberId}|${zoneId}`;
    const events = byPair.get(key)!.sort((a, b) => a.at.getTime() - b.at.getTime() || KIND_ORDER[a.e.kind] - KIND_ORDER[b.e.kind]);
    let state: ZoneState | null = before.get(key) ?? null;
    for (const r of events) {
      const { e, at } = r;
      if (state && state.eids.length > 0 && at.getTime() - state.lastEventAt.getTime() > ZONE_STALE_MS) {
        transitions.push({ kind: 'zone_exit', memberId, zoneId, at: state.lastEventAt });
        state = null;
      }
      // Left, and not back within the resume window: the next entry is a new stay.
      if (state && state.eids.length === 0 && at.getTime() - state.lastEventAt.getTime() > ZONE_RESUME_MS) state = null;
      if (e.kind === 'exit') {
        if (!state || !state.eids.includes(e.eid)) continue;
        const eids = state.eids.filter((x) => x !== e.eid);
        // The last EID out: the stay ends, but is kept (with no EIDs) for the resume window.
        state = { ...state, eids, lastEventAt: max(state.lastEventAt, at) };
        if (eids.length === 0) transitions.push({ kind: 'zone_exit', memberId, zoneId, at });
        continue;
      }
      // An enter, or a dwell from an EID the gateway had not seen enter (an upload lost before this one).
      if (!state) {
        state = { eids: [e.eid], enteredAt: at, lastEventAt: at };
        transitions.push({ kind: 'zone_enter', memberId, zoneId, at, e });
        continue;
      }
      // Back within the resume window (a phone's new EID entering after its old one's exit): the same stay goes
      // on, from its first entry, and no new zone_enter is decided.
      if (state.eids.length === 0) {
        state = { eids: [e.eid], enteredAt: state.enteredAt, lastEventAt: at };
        transitions.push({ kind: 'zone_resume', memberId, zoneId, at });
        continue;
      }
      const prevMinutes = (state.lastEventAt.getTime() - state.enteredAt.getTime()) / 60_000;
      state = { eids: state.eids.includes(e.eid) ? state.eids : [...state.eids, e.eid], enteredAt: state.enteredAt, lastEventAt: max(state.lastEventAt, at) };
      const minutes = (state.lastEventAt.getTime() - state.enteredAt.getTime()) / 60_000;
      if ((thresholds.get(zoneId) ?? []).some((t) => prevMinutes < t && t <= minutes)) {
        transitions.push({ kind: 'zone_dwell', memberId, zoneId, at, e, minutes: Math.floor(minutes) });
      }
    }
    if (state) upserts.push([memberId, zoneId, state]);
    else if (before.has(key)) deletes.push([memberId, zoneId]);
  }

  if (upserts.length > 0) {
    await tx.query(
      `INSERT INTO member_zone_presence (member_id, zone_id, store_id, eids, entered_at, last_event_at)
       SELECT m, z, $3, string_to_array(e, ','), en, la FROM unnest($1::uuid[], $2::uuid[], $4::text[], $5::timestamptz[], $6::timestamptz[]) AS u(m, z, e, en, la)
       ON CONFLICT (member_id, zone_id) DO UPDATE SET eids = excluded.eids, entered_at = excluded.entered_at, last_event_at = excluded.last_event_at`,
      [upserts.map((u) => u[0]), upserts.map((u) => u[1]), storeId, upserts.map((u) => u[2].eids.join(',')), upserts.map((u) => u[2].enteredAt), upserts.map((u) => u[2].lastEventAt)],
    );
  }
  if (deletes.length > 0) {
    await tx.query(
      'DELETE FROM member_zone_presence p USING unnest($1::uuid[], $2::uuid[]) AS k(member_id, zone_id) WHERE p.member_id = k.member_id AND p.zone_id = k.zone_id',
      [deletes.map((d) => d[0]), deletes.map((d) => d[1])],
    );
  }
  return transitions;
}

const max = (a: Date, b: Date) => (a > b ? a : b);

/** Visits for zone stays, then a decision for each zone event some campaign listens to. */
export async function applyTransitions(
  deps: Deps, tx: Sql, prepared: PreparedCampaigns, storeId: string, transitions: Transition[], now: Date,
  source: 'ble_zone' | 'app_beacon' = 'ble_zone',
): Promise<{ decisions: Decision[]; deliveryIds: string[] }> {
  const decisions: Decision[] = [];
  const deliveryIds: string[] = [];
  if (transitions.length === 0) return { decisions, deliveryIds };
  const listened = new Set(prepared.campaigns.flatMap((c) => (c.trigger.kind === 'zone_enter' || c.trigger.kind === 'zone_dwell' ? c.trigger.zoneIds.map((z) => `${c.trigger.kind}|${z}`) : [])));
  const members = [...new Set(transitions.map((t) => t.memberId))].sort();
  // Callers hold every member's row lock already: decisions are serialised per member, as check-ins are.
  const byMember = new Map<string, Transition[]>();
  for (const t of transitions) byMember.set(t.memberId, [...(byMember.get(t.memberId) ?? []), t]);
  // The usual case, a member simply walking in, is done for everyone at once; anything more, one by one.
  const simple = members.filter((m) => byMember.get(m)!.every((t) => t.kind === 'zone_enter' || t.kind === 'zone_dwell') && byMember.get(m)!.filter((t) => t.kind === 'zone_enter').length === 1);
  await visitsStarted(tx, storeId, simple.map((m) => ({ memberId: m, at: byMember.get(m)!.find((t) => t.kind === 'zone_enter')!.at })), source);
  const done = new Set(simple);
  for (const memberId of members) {
    const mine = byMember.get(memberId)!;
    for (const t of done.has(memberId) ? [] : mine) {
      const place = { storeId, geofenceId: null };
      if (t.kind === 'zone_exit') await visitLeft(tx, memberId, place, t.at, t.zoneId);
      else if (t.kind === 'zone_enter' || t.kind === 'zone_resume') await visitStarted(tx, memberId, place, source, t.at);
    }
    const events: RulesEvent[] = mine.flatMap((t): RulesEvent[] => {
      if (t.kind === 'zone_exit' || t.kind === 'zone_resume' || !listened.has(`${t.kind}|${t.zoneId}`)) return [];
      const base = { source, confidence: t.e.confidence, at: t.at, zoneId: t.zoneId };
      return [t.kind === 'zone_dwell' ? { ...base, kind: 'zone_dwell', minutes: t.minutes } : { ...base, kind: 'zone_enter' }];
    });
    if (events.length === 0) continue;
    const member = await getMember(tx, memberId);
    const consent = await currentConsent(tx, memberId);
    const context = await memberContext(tx, member, consent, events[0]!.at);
    for (const event of events) {
      // An event uploaded late (the box was offline) still makes the visit, but its moment has passed.
      if (now.getTime() - event.at.getTime() > STALE_AFTER_MS) {
        decisions.push(await insertDecision(tx, {
          memberId, trigger: event.kind, checkinId: null, at: event.at, outcome: 'not_sent', reasonCode: 'STALE_EVENT',
          trace: { consent: {}, event: { ...event, at: event.at.toISOString() }, note: `event is older than ${STALE_AFTER_MS / 60_000} minutes at evaluation` },
        }));
        continue;
      }
      const d = await decide(deps, tx, { member, consent, context, prepared, event, checkinId: null }, now);
      decisions.push(d.decision);
      if (d.deliveryId) deliveryIds.push(d.deliveryId);
    }
  }
  return { decisions, deliveryIds };
}

/** Ends zone stays nobody has reported on for ZONE_STALE_MS (run by the hourly retention job). */
export async function closeStaleZonePresence(db: Database, now: Date): Promise<number> {
  return db.transaction(async (tx) => {
    const stale = await tx.query<{ member_id: string; zone_id: string; store_id: string; last_event_at: Date; inside: number }>(
      `DELETE FROM member_zone_presence WHERE last_event_at < $1 RETURNING member_id, zone_id, store_id, last_event_at, cardinality(eids) AS inside`,
      [new Date(now.getTime() - ZONE_STALE_MS)],
    );
    // Stays already ended (no EIDs left) closed their visits when they ended.
    for (const r of stale.filter((x) => x.inside > 0)) await visitLeft(tx, r.member_id, { storeId: r.store_id, geofenceId: null }, r.last_event_at, r.zone_id);
    return stale.length;
  });
}
