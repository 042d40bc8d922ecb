import { getDistance } from 'geolib';
import type { Campaign, Geofence, PresenceEvent } from './model.js';

/** Why a campaign did not match, with the values that decided it. */
export type Failure =
  | { condition: 'status'; status: Campaign['status'] }
  | { condition: 'not_started'; startsAt: string }
  | { condition: 'ended'; endsAt: string }
  | { condition: 'trigger'; expected: Campaign['trigger']['kind']; got: PresenceEvent['kind'] }
  | { condition: 'accuracy'; accuracyM: number; maxAccuracyM: number }
  | { condition: 'outside_geofences'; nearest: { geofenceId: string; distanceM: number; radiusM: number } | null }
  | { condition: 'arbitration'; winner: string };

export interface CandidateTrace {
  campaignId: string;
  version: number;
  matched: boolean;
  /** First failing condition; absent when matched and chosen. */
  failed?: Failure;
  /** The geofence that matched, when one did. */
  geofenceId?: string;
}

export interface Evaluation {
  at: string;
  candidates: CandidateTrace[];
  chosen: { campaignId: string; version: number } | null;
}

function distanceTo(fence: Geofence, event: PresenceEvent): number {
  switch (fence.kind) {
    case 'circle':
      return getDistance(
        { latitude: event.position.lat, longitude: event.position.lon },
        { latitude: fence.center.lat, longitude: fence.center.lon },
        0.01,
      );
    default: {
      const never: never = fence.kind;
      throw new Error(`unknown geofence kind ${String(never)}`);
    }
  }
}

function check(c: Campaign, event: PresenceEvent, now: Date): CandidateTrace {
  const base = { campaignId: c.id, version: c.version };
  if (c.status !== 'active') return { ...base, matched: false, failed: { condition: 'status', status: c.status } };
  if (c.startsAt && now < c.startsAt) {
    return { ...base, matched: false, failed: { condition: 'not_started', startsAt: c.startsAt.toISOString() } };
  }
  if (c.endsAt && now >= c.endsAt) return { ...base, matched: false, failed: { condition: 'ended', endsAt: c.endsAt.toISOString() } };
  if (c.trigger.kind !== event.kind) {
    return { ...base, matched: false, failed: { condition: 'trigger', expected: c.trigger.kind, got: event.kind } };
  }
  if (event.accuracyM > c.maxAccuracyM) {
    return { ...base, matched: false, failed: { condition: 'accuracy', accuracyM: event.accuracyM, maxAccuracyM: c.maxAccuracyM } };
  }
  let nearest: { geofenceId: string; distanceM: number; radiusM: number } | null = null;
  for (const fence of c.geofences) {
    const distanceM = distanceTo(fence, event);
    if (distanceM <= fence.radiusM) return { ...base, matched: true, geofenceId: fence.id };
    if (!nearest || distanceM - fence.radiusM < nearest.distanceM - nearest.radiusM) {
      nearest = { geofenceId: fence.id, distanceM, radiusM: fence.radiusM };
    }
  }
  return { ...base, matched: false, failed: { condition: 'outside_geofences', nearest } };
}

/**
 * Evaluates every campaign against one presence event. Deterministic: time is `now`, never the clock.
 * Of the matching campaigns one is chosen (highest priority, then lowest id); the rest are marked as
 * having lost arbitration to it.
 */
export function evaluate(campaigns: readonly Campaign[], event: PresenceEvent, now: Date): Evaluation {
  const candidates = campaigns.map((c) => check(c, event, now));
  const byId = new Map(campaigns.map((c) => [c.id, c]));
  const matched = candidates
    .filter((t) => t.matched)
    .sort((a, b) => byId.get(b.campaignId)!.priority - byId.get(a.campaignId)!.priority || a.campaignId.localeCompare(b.campaignId));
  const winner = matched[0];
  for (const t of matched.slice(1)) t.failed = { condition: 'arbitration', winner: winner!.campaignId };
  return {
    at: now.toISOString(),
    candidates,
    chosen: winner ? { campaignId: winner.campaignId, version: winner.version } : null,
  };
}
