// Ingest of the boxes' presence events: authenticate the box, resolve each EID to a member (only members
// holding a key, that is granting ble_detection, can resolve), keep nothing about anyone else, store each
// event once, track which zones each member is in, fuse zone stays into visits, and decide on zone triggers.
import type { PreparedCampaigns, PresenceEvent as RulesEvent } from '../../campaign-rules/index.js';
import type { IngestBatch, PresenceEvent } from '../../beacon-agent/types.js';
import type { Database, Sql } from '../db/database.js';
import { AppError } from '../errors.js';
import type { Agent, SignedRequest } from './agents.js';
import { CAMPAIGN_STAMP_SQL, preparedForStamp } from './campaign-cache.js';
import { currentConsent, latestConsentAction } from './consents.js';
import { STALE_AFTER_MS } from './checkins.js';
import { decide, insertDecision, memberContext, type Decision } from './decide.js';
import { queueDeliveries } from './deliveries.js';
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

/** A member's stay in a zone as stored (json_agg gives the instants as strings). */
export interface PresenceRow {
  member_id: string;
  zone_id: string;
  eids: string[];
  entered_at: Date;
  last_event_at: Date;
}

type PresenceJson = Omit<PresenceRow, 'entered_at' | 'last_event_at'> & { entered_at: string; last_event_at: string };

function presenceFromJson(r: PresenceJson): PresenceRow {
  return { ...r, entered_at: new Date(r.entered_at), last_event_at: new Date(r.last_event_at) };
}

// Array parameters as their literals, built here: the driver's per-element escaping costs more than the statement,
// and the server reads an array far faster than the same rows as JSON (json_to_recordset makes a hash table per row).
/** uuids need no quoting. */
const uuidArray = (ids: readonly string[]) => `{${ids.join(',')}}`;
/** Each element quoted, its quotes and backslashes escaped: any string is safe. Most have none to escape. */
const ESCAPED = /["\\]/;
const textArray = (xs: readonly string[]) => `{${xs.map((x) => `"${ESCAPED.test(x) ? x.replace(/["\\]/g, '\\$&') : x}"`).join(',')}}`;
const numberArray = (xs: ReadonlyArray<number | null>) => `{${xs.map((x) => (x === null ? 'NULL' : String(x))).join(',')}}`;

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
  // before the transaction, so no connection is held meanwhile. The stored keys and the ledger, checked under
  // lock below, decide.
  const zones = await zonesOf(deps.db, agent.storeId, batch.events.map((e) => e.zoneId));
  const synced = await registry.syncUnlessFresh(deps.db);
  const rejected: Rejected[] = [];
  const valid: Array<{ e: PresenceEvent; at: Date; hit?: { memberId: string; key: Buffer } }> = [];
  const seenIds = new Set<string>();
  batch.events.forEach((e, index) => {
    // The same event twice in one batch counts once, as it does across batches.
    if (seenIds.has(e.id)) return;
    seenIds.add(e.id);
    const at = new Date(e.at);
    if (!zones.has(e.zoneId)) return void rejected.push({ index, code: 'ZONE_NOT_IN_STORE' });
    if (at.getTime() > now.getTime() + FUTURE_SLACK_MS) return void rejected.push({ index, code: 'EVENT_IN_FUTURE' });
    valid.push({ e, at, hit: registry.resolveKey(e.eid, at.getTime()) });
  });
  // An EID nobody's key produces may be a key issued since the cache last caught up.
  if (!synced && valid.some((v) => !v.hit)) {
    await registry.sync(deps.db);
    for (const v of valid) v.hit ??= registry.resolveKey(v.e.eid, v.at.getTime());
  }
  const resolved: Array<Resolved & { key: Buffer }> = valid.flatMap((v) => (v.hit ? [{ e: v.e, at: v.at, memberId: v.hit.memberId, key: v.hit.key }] : []));
  const unresolvedHere = valid.length - resolved.length;

  const members = [...new Set(resolved.map((r) => r.memberId))].sort();
  // The agent's revocation read again, the signature remembered (a replay is refused), the members' rows locked in id order (so an erasure or
  // withdrawal is wholly before or wholly after this upload, and two boxes' uploads for the same members do
  // not deadlock), and the campaigns' change stamp: the transaction's first statement, sent with its BEGIN.
  const opening = {
    text: `WITH remembered AS (
             INSERT INTO agent_requests (signature, agent_id, seen_at) VALUES ($1, $2::uuid, $3::timestamptz) ON CONFLICT DO NOTHING RETURNING 1),
           locked AS (SELECT id FROM members WHERE id = ANY($4::uuid[]) ORDER BY id FOR UPDATE)
           SELECT (SELECT count(*) FROM remembered)::int AS fresh, (SELECT count(*) FROM locked)::int AS locked,
                  (SELECT revoked_at IS NOT NULL FROM agents WHERE id = $2::uuid) AS revoked,
                  ${CAMPAIGN_STAMP_SQL} AS stamp`,
    values: [signed.signature, agent.id, now, uuidArray(members)],
  };
  // Four round trips in all (BEGIN with the first statement, the events, the presence write, COMMIT): an
  // upload is the busiest request there is, and each statement saved is a wait on a shared machine.
  const result = await deps.db.transaction(async (tx, opened) => {
    const first = opened[0] as { fresh: number; revoked: boolean; stamp: string };
    // The signature was checked against a copy of the agent's row: its revocation is read here, under the transaction.
    if (first.revoked) throw new AppError('AGENT_REVOKED', `agent ${agent.id} is revoked`);
    if (first.fresh === 0) throw new AppError('REQUEST_REPLAYED', 'this signed request was already received');

    // This statement starts after the locks are held, so it reads the keys and the ledger as of now. An event
    // counts only if the key that resolved it is still the member's (a cache may hold a key destroyed a moment
    // ago) and the ledger says the member grants ble_detection. Only those events are stored; their zone
    // presence rows come back locked. The events go as one array per column.
    const [second] = await tx.query<{ unkeyed: string[]; refused: string[]; duplicates: string[]; presence: PresenceJson[] }>(
      `WITH ev AS (
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::float8[], $8::int[], $9::bigint[], $10::timestamptz[])
                    AS ev(event_id, member_id, key, zone_id, source, kind, confidence, rssi, dwell_ms, occurred_at)),
       checked AS (
         SELECT ev.*, k.member_id IS NOT NULL AS keyed FROM ev
           LEFT JOIN member_identity_keys k ON k.member_id = ev.member_id AND k.identity_key = decode(ev.key, 'hex')),
       granted AS (
         SELECT m.id FROM (SELECT DISTINCT member_id AS id FROM checked WHERE keyed) m ${latestConsentAction('m', `'ble_detection'`)}
          WHERE latest.action = 'grant'),
       ok AS (SELECT * FROM checked WHERE keyed AND member_id IN (SELECT id FROM granted)),
       stored AS (
         INSERT INTO detections (event_id, agent_id, member_id, store_id, zone_id, source, kind, confidence, rssi, dwell_ms, occurred_at)
         SELECT event_id, $11, member_id, $12, zone_id, source, kind, confidence, rssi, dwell_ms, occurred_at FROM ok
         ON CONFLICT (agent_id, event_id) DO NOTHING RETURNING event_id),
       presence AS (
         SELECT p.member_id, p.zone_id, p.eids, p.entered_at, p.last_event_at FROM member_zone_presence p
           JOIN (SELECT DISTINCT member_id, zone_id FROM ok) k USING (member_id, zone_id)
          ORDER BY p.member_id, p.zone_id FOR UPDATE OF p)
       -- What did not happen comes back, not what did: in the usual upload, the three lists are empty.
       SELECT ARRAY(SELECT event_id FROM checked WHERE NOT keyed) AS unkeyed,
              ARRAY(SELECT event_id FROM checked WHERE keyed AND member_id NOT IN (SELECT id FROM granted)) AS refused,
              ARRAY(SELECT event_id FROM ok EXCEPT SELECT event_id FROM stored) AS duplicates,
              (SELECT coalesce(json_agg(presence), '[]') FROM presence) AS presence`,
      [
        textArray(resolved.map((r) => r.e.id)), uuidArray(resolved.map((r) => r.memberId)), textArray(resolved.map((r) => r.key.toString('hex'))),
        uuidArray(resolved.map((r) => r.e.zoneId)), textArray(resolved.map((r) => r.e.source)), textArray(resolved.map((r) => r.e.kind)),
        numberArray(resolved.map((r) => r.e.confidence)), numberArray(resolved.map((r) => Math.round(r.e.rssi))),
        numberArray(resolved.map((r) => r.e.dwellMs ?? null)), textArray(resolved.map((r) => r.e.at)),
        agent.id, agent.storeId,
      ],
    );
    const unkeyed = new Set(second!.unkeyed);
    const refused = new Set(second!.refused);
    const duplicates = new Set(second!.duplicates);
    const allowed = unkeyed.size + refused.size === 0 ? resolved : resolved.filter((r) => !unkeyed.has(r.e.id) && !refused.has(r.e.id));
    const fresh = duplicates.size === 0 ? allowed : allowed.filter((r) => !duplicates.has(r.e.id));

    const prepared = await preparedForStamp(deps.db, tx, first.stamp);
    const transitions = await updateZonePresence(tx, prepared, agent.storeId, fresh, second!.presence.map(presenceFromJson));
    const { decisions, deliveryIds } = await applyTransitions(deps, tx, prepared, agent.storeId, transitions, now);
    return {
      received: batch.events.length, accepted: fresh.length, duplicates: batch.events.length - seenIds.size + allowed.length - fresh.length,
      discarded: unresolvedHere + resolved.length - allowed.length, rejected, decisions, deliveryIds,
      // An EID whose key was destroyed is nobody's now: unresolved, as it will be once the cache catches up.
      drops: { unresolved: unresolvedHere + unkeyed.size, noConsent: refused.size },
    };
  }, opening);
  // Counted after commit, in statements of their own: a shared counter row is never held through an upload.
  await countDrops(deps.db, 'detection_unresolved', now, result.drops.unresolved);
  await countDrops(deps.db, 'detection_no_ble_consent', now, result.drops.noConsent);
  // After commit, bounded in time: what does not reach the queue stays 'queued', and the reconciler queues it.
  await queueDeliveries(deps, result.deliveryIds);
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
export async function updateZonePresence(
  tx: Sql, prepared: PreparedCampaigns, storeId: string, fresh: Resolved[], locked?: PresenceRow[],
): Promise<Transition[]> {
  if (fresh.length === 0) return [];
  const byPair = new Map<string, Resolved[]>();
  for (const r of fresh) {
    const key = `${r.memberId}|${r.e.zoneId}`;
    byPair.set(key, [...(byPair.get(key) ?? []), r]);
  }
  // Sorted: rows are always locked in this order.
  const pairs = [...byPair.keys()].sort().map((k) => k.split('|') as [string, string]);
  const rows = locked ?? await tx.query<PresenceRow>(
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

  if (upserts.length > 0 || deletes.length > 0) {
    await tx.query(
      `WITH gone AS (
         DELETE FROM member_zone_presence p USING unnest($6::uuid[], $7::uuid[]) AS k(member_id, zone_id)
          WHERE p.member_id = k.member_id AND p.zone_id = k.zone_id)
       INSERT INTO member_zone_presence (member_id, zone_id, store_id, eids, entered_at, last_event_at)
       SELECT member_id, zone_id, $8, eids::text[], to_timestamp(entered_ms / 1000.0), to_timestamp(last_event_ms / 1000.0)
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::float8[], $5::float8[]) AS u(member_id, zone_id, eids, entered_ms, last_event_ms)
       ON CONFLICT (member_id, zone_id) DO UPDATE SET eids = excluded.eids, entered_at = excluded.entered_at, last_event_at = excluded.last_event_at`,
      [
        // Each stay's EIDs as an array literal of its own; instants as epoch milliseconds (formatting a Date costs more).
        uuidArray(upserts.map((u) => u[0])), uuidArray(upserts.map((u) => u[1])), textArray(upserts.map((u) => textArray(u[2].eids))),
        numberArray(upserts.map((u) => u[2].enteredAt.getTime())), numberArray(upserts.map((u) => u[2].lastEventAt.getTime())),
        uuidArray(deletes.map((d) => d[0])), uuidArray(deletes.map((d) => d[1])),
        storeId,
      ],
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
    const context = await memberContext(tx, member, consent, events[0]!.at, prepared);
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
