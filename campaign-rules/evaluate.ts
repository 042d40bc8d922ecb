import { audienceFailure, type AudienceFailure } from './audience.js';
import { budgetFailure, contactLimitFailure, memberCapFailure, type CapFailure } from './caps.js';
import { contains, signedDistanceM } from './geometry.js';
import { isHeldOut } from './holdout.js';
import {
  DEFAULT_CONTACT_LIMITS, type Campaign, type Channel, type EvaluationContext, type EventSource, type Geofence, type PresenceEvent,
} from './model.js';
import { inWindows, localTime } from './schedule.js';
import { buildGeofenceIndex, type GeofenceIndex } from './spatial-index.js';

/** Why a campaign did not match, with the values that decided it. */
export type Failure =
  | { condition: 'status'; status: Campaign['status'] }
  | { condition: 'not_started'; startsAt: string }
  | { condition: 'ended'; endsAt: string }
  | { condition: 'schedule'; localTime: string; timeZone: string }
  | { condition: 'trigger'; expected: Campaign['trigger']['kind']; got: PresenceEvent['kind'] }
  | { condition: 'source'; accepted: EventSource[]; got: EventSource }
  | { condition: 'confidence'; min: number; got: number }
  | { condition: 'accuracy'; accuracyM: number | null; maxAccuracyM: number }
  | { condition: 'outside_geofences'; nearest: { geofenceId: string; distanceM: number } | null }
  | { condition: 'geofence'; got: string | null }
  | { condition: 'zone'; expected: string[]; got: string | null }
  | { condition: 'dwell'; minMinutes: number; minutes: number | null }
  | { condition: 'pass_by'; withinMinutes: number; minutes: number | null }
  | { condition: 'closed'; geofenceId: string; localTime: string; timeZone: string }
  | ({ condition: 'audience' } & AudienceFailure)
  | { condition: 'channel'; allowed: Channel[]; memberChannels: Channel[] }
  | CapFailure
  | { condition: 'arbitration'; winner: string };

export interface CandidateTrace {
  campaignId: string;
  version: number;
  /** Every condition held; the campaign was eligible at this moment. */
  matched: boolean;
  /** First failing condition; absent when matched and chosen. */
  failed?: Failure;
  /** The geofence the event counted in, when one did. */
  geofenceId?: string;
  /** Eligible, but the member is in this campaign's control group. */
  heldOut?: boolean;
}

export interface Chosen {
  campaignId: string;
  version: number;
  channel: Channel;
  geofenceId: string | null;
  /** The member is in the winner's control group: decided, recorded, never sent. */
  heldOut: boolean;
}

export interface Evaluation {
  at: string;
  candidates: CandidateTrace[];
  chosen: Chosen | null;
}

/** Campaigns made ready for many evaluations: a spatial index over all their geofences. */
export interface PreparedCampaigns {
  campaigns: readonly Campaign[];
  index: GeofenceIndex;
}

export function prepareCampaigns(campaigns: readonly Campaign[]): PreparedCampaigns {
  const fences = new Map<string, Geofence>();
  for (const c of campaigns) for (const f of c.geofences) fences.set(f.id, f);
  return { campaigns, index: buildGeofenceIndex([...fences.values()]) };
}

const describeLocal = (at: Date, timeZone: string) => {
  const t = localTime(at, timeZone);
  return `${t.weekday} ${String(Math.floor(t.minute / 60)).padStart(2, '0')}:${String(t.minute % 60).padStart(2, '0')}`;
};

function openAt(fence: Geofence, now: Date): Failure | null {
  if (!fence.hours || !fence.timeZone) return null;
  if (inWindows(fence.hours, localTime(now, fence.timeZone))) return null;
  return { condition: 'closed', geofenceId: fence.id, localTime: describeLocal(now, fence.timeZone), timeZone: fence.timeZone };
}

/** Where the event happened, for this campaign: the geofence it counts in, or why it does not count. */
function place(c: Campaign, e: PresenceEvent, inside: ReadonlySet<string> | null): { geofenceId: string | null } | Failure {
  switch (c.trigger.kind) {
    case 'checkin': {
      if (!e.position) return { condition: 'outside_geofences', nearest: null };
      const hit = c.geofences.find((f) => (inside ? inside.has(f.id) : contains(f, e.position!)));
      if (hit) return openAt(hit, e.at) ?? { geofenceId: hit.id };
      let nearest: { geofenceId: string; distanceM: number } | null = null;
      for (const f of c.geofences) {
        const d = signedDistanceM(f, e.position);
        if (!nearest || d < nearest.distanceM) nearest = { geofenceId: f.id, distanceM: Math.round(d * 10) / 10 };
      }
      return { condition: 'outside_geofences', nearest };
    }
    case 'geofence_enter':
    case 'geofence_exit':
    case 'geofence_dwell':
    case 'pass_by': {
      const hit = c.geofences.find((f) => f.id === e.geofenceId);
      if (!hit) return { condition: 'geofence', got: e.geofenceId ?? null };
      if (c.trigger.kind === 'geofence_dwell' && (e.minutes ?? -1) < c.trigger.minutes) {
        return { condition: 'dwell', minMinutes: c.trigger.minutes, minutes: e.minutes ?? null };
      }
      if (c.trigger.kind === 'pass_by' && (e.minutes === undefined || e.minutes > c.trigger.withinMinutes)) {
        return { condition: 'pass_by', withinMinutes: c.trigger.withinMinutes, minutes: e.minutes ?? null };
      }
      // Opening hours are judged at the moment the event happened (an exit, when the member left).
      return openAt(hit, e.at) ?? { geofenceId: hit.id };
    }
    case 'zone_enter':
    case 'zone_dwell': {
      if (!e.zoneId || !c.trigger.zoneIds.includes(e.zoneId)) return { condition: 'zone', expected: c.trigger.zoneIds, got: e.zoneId ?? null };
      if (c.trigger.kind === 'zone_dwell' && (e.minutes ?? -1) < c.trigger.minutes) {
        return { condition: 'dwell', minMinutes: c.trigger.minutes, minutes: e.minutes ?? null };
      }
      return { geofenceId: null };
    }
    default: {
      const never: never = c.trigger;
      throw new Error(`unknown trigger ${JSON.stringify(never)}`);
    }
  }
}

function check(c: Campaign, ctx: EvaluationContext, inside: ReadonlySet<string> | null, now: Date): CandidateTrace {
  // A literal, not a spread of a shared base: this runs for every campaign on every event, and V8 builds a
  // spread object several times slower.
  const fail = (failed: Failure): CandidateTrace => ({ campaignId: c.id, version: c.version, matched: false, failed });
  const e = ctx.event;
  const s = c.schedule;
  if (c.status !== 'active') return fail({ condition: 'status', status: c.status });
  if (s.startsAt && now < s.startsAt) return fail({ condition: 'not_started', startsAt: s.startsAt.toISOString() });
  if (s.endsAt && now >= s.endsAt) return fail({ condition: 'ended', endsAt: s.endsAt.toISOString() });
  if (s.weekly && !inWindows(s.weekly, localTime(now, s.timeZone))) {
    return fail({ condition: 'schedule', localTime: describeLocal(now, s.timeZone), timeZone: s.timeZone });
  }
  if (c.trigger.kind !== e.kind) return fail({ condition: 'trigger', expected: c.trigger.kind, got: e.kind });
  if (!c.sources.includes(e.source)) return fail({ condition: 'source', accepted: c.sources, got: e.source });
  if (e.confidence < c.minConfidence) return fail({ condition: 'confidence', min: c.minConfidence, got: e.confidence });
  if (e.source === 'gps' && !(e.accuracyM !== undefined && e.accuracyM <= c.maxAccuracyM)) {
    return fail({ condition: 'accuracy', accuracyM: e.accuracyM ?? null, maxAccuracyM: c.maxAccuracyM });
  }
  const where = place(c, e, inside);
  if ('condition' in where) return fail(where);
  const audience = audienceFailure(c.audience, ctx.member, now);
  if (audience) return fail({ condition: 'audience', ...audience });
  if (!c.channels.some((ch) => ctx.member.channels.includes(ch))) {
    return fail({ condition: 'channel', allowed: c.channels, memberChannels: ctx.member.channels });
  }
  const cap =
    memberCapFailure(c, ctx.member, now) ??
    contactLimitFailure(ctx.contactLimits ?? DEFAULT_CONTACT_LIMITS, ctx.member, now) ??
    budgetFailure(c, ctx.counters.get(c.id));
  if (cap) return fail(cap);
  const trace: CandidateTrace = { campaignId: c.id, version: c.version, matched: true };
  if (where.geofenceId) trace.geofenceId = where.geofenceId;
  return trace;
}

/**
 * Evaluates every campaign against one presence event. Deterministic: time is `now`, never the clock.
 * Of the eligible campaigns one wins (highest priority, then highest expected value, then lowest id); the
 * others are recorded as having lost arbitration to it. If the member is in the winner's control group the
 * decision is "held out": nothing is sent, and no other campaign steps in, so the control group sees what an
 * untreated member would.
 */
export function evaluate(set: readonly Campaign[] | PreparedCampaigns, ctx: EvaluationContext, now: Date): Evaluation {
  const prepared = 'index' in set ? set : null;
  const campaigns = prepared ? prepared.campaigns : (set as readonly Campaign[]);
  const position = ctx.event.kind === 'checkin' ? ctx.event.position : undefined;
  const inside = prepared && position ? new Set(prepared.index.containing(position).map((f) => f.id)) : null;

  const candidates = campaigns.map((c) => check(c, ctx, inside, now));
  // Ties go to the lower id in code-unit order, which does not depend on the machine's locale.
  const eligible = candidates
    .flatMap((t, i) => (t.matched ? [{ t, c: campaigns[i]! }] : []))
    .sort((a, b) => b.c.priority - a.c.priority || b.c.expectedValue - a.c.expectedValue || (a.c.id < b.c.id ? -1 : a.c.id > b.c.id ? 1 : 0));
  const top = eligible[0];
  if (!top) return { at: now.toISOString(), candidates, chosen: null };

  const { t: winner, c: campaign } = top;
  for (const { t } of eligible.slice(1)) t.failed = { condition: 'arbitration', winner: winner.campaignId };
  const heldOut = isHeldOut(ctx.member.id, campaign.id, campaign.holdoutPercent);
  if (heldOut) winner.heldOut = true;
  return {
    at: now.toISOString(),
    candidates,
    chosen: {
      campaignId: winner.campaignId,
      version: winner.version,
      channel: campaign.channels.find((ch) => ctx.member.channels.includes(ch))!,
      geofenceId: winner.geofenceId ?? null,
      heldOut,
    },
  };
}
