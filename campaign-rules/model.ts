/**
 * Glossary
 * - campaign: a marketer's rule set that turns a member's presence into an offer; versioned, every edit a new version.
 * - trigger: the kind of presence event a campaign reacts to: a GPS check-in, a geofence enter / exit / dwell /
 *   pass-by, or a beacon zone enter / dwell.
 * - geofence: an area on the map, a circle or a polygon (GeoJSON, holes allowed), with optional opening hours.
 * - zone: an area inside a store covered by beacons (entrance, counter).
 * - dwell: staying inside a geofence or zone for at least N minutes.
 * - pass-by: entering and leaving a geofence within N minutes, without dwelling.
 * - source / confidence: where a presence event came from (GPS, a BLE zone, a beacon the app heard) and how
 *   sure it is, 0..1.
 * - audience: conditions on the member (tier, tags, visits, redemptions, home store, RFM segment and value tier).
 * - cap: a limit on how often a member is contacted; budget: a limit on a campaign's coupons and redemptions.
 * - holdout: a stable share of eligible members kept as a control group; they are never sent the offer.
 * - offer: what the member receives; a coupon offer issues a unique code per decision.
 * - decision: the outcome of evaluating all campaigns for one member at one moment, with a trace per campaign.
 */
import type { RfmSegment, RfmStatus, ValueTier } from './rfm.js';

export interface LatLon {
  lat: number;
  lon: number;
}

/** GeoJSON order: [longitude, latitude]. */
export type Position = [number, number];

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** A local time window on some weekdays; `to` may be earlier than `from` for a window past midnight. */
export interface WeeklyWindow {
  days: Weekday[];
  /** "HH:MM", 24-hour, local to the schedule's time zone. */
  from: string;
  to: string;
}

export interface GeofenceBase {
  id: string;
  /** Opening hours; absent means always open. Evaluated in `timeZone`. */
  hours?: WeeklyWindow[];
  /** IANA zone of the hours (the store's); required when hours are given. */
  timeZone?: string;
}

export type Geofence =
  | (GeofenceBase & { kind: 'circle'; center: LatLon; radiusM: number })
  /** rings[0] is the outer boundary, the rest are holes; each ring is closed (first = last position). */
  | (GeofenceBase & { kind: 'polygon'; rings: Position[][] });

export type Trigger =
  | { kind: 'checkin' }
  | { kind: 'geofence_enter' }
  | { kind: 'geofence_exit' }
  | { kind: 'geofence_dwell'; minutes: number }
  | { kind: 'pass_by'; withinMinutes: number }
  | { kind: 'zone_enter'; zoneIds: string[] }
  | { kind: 'zone_dwell'; zoneIds: string[]; minutes: number };

export type TriggerKind = Trigger['kind'];

export type EventSource = 'gps' | 'ble_zone' | 'app_beacon';

/** Something the member's presence did at a moment; produced by check-ins, the presence tracker or BLE ingest. */
export interface PresenceEvent {
  kind: TriggerKind;
  source: EventSource;
  /** 0..1: how sure the source is that the member is where the event says. */
  confidence: number;
  at: Date;
  /** GPS events: the fix and its reported horizontal accuracy. */
  position?: LatLon;
  accuracyM?: number;
  /** Geofence events: which geofence. */
  geofenceId?: string;
  /** Zone events: which zone of which store. */
  zoneId?: string;
  storeId?: string;
  /** Dwell events: minutes inside so far; pass-by: minutes between enter and exit. */
  minutes?: number;
}

export type Channel = 'sms' | 'push';

export interface Schedule {
  /** IANA zone the weekly windows are read in (the store's, not the server's). */
  timeZone: string;
  startsAt?: Date | null;
  endsAt?: Date | null;
  /** Absent means any time between startsAt and endsAt. */
  weekly?: WeeklyWindow[];
}

export interface Audience {
  tiers?: string[];
  /** At least one of these tags. */
  tagsAny?: string[];
  /** All of these tags. */
  tagsAll?: string[];
  minVisits?: number;
  maxVisits?: number;
  minDaysSinceLastVisit?: number;
  maxDaysSinceLastVisit?: number;
  minLifetimeRedemptions?: number;
  maxLifetimeRedemptions?: number;
  homeStoreIds?: string[];
  /**
   * RFM conditions (campaign-rules/rfm.ts). They need the member's RFM profile, which exists only with
   * `profiling` consent: without it a member never matches any of them, and the trace says why.
   */
  rfmSegments?: RfmSegment[];
  valueTiers?: ValueTier[];
  minRecencyScore?: number;
  minFrequencyScore?: number;
  minMonetaryScore?: number;
}

export interface MemberCaps {
  perDay?: number;
  perWeek?: number;
  lifetime?: number;
  /** No new offer of this campaign for so many hours after the member redeemed one. */
  cooldownAfterRedemptionHours?: number;
}

export interface Budget {
  maxCoupons?: number;
  maxRedemptions?: number;
}

export interface Offer {
  id: string;
  kind: 'coupon';
  title: string;
  /** Text of the message; {code} and {expires} are filled in at issue time. */
  message: string;
  validDays: number;
}

export type CampaignStatus = 'active' | 'paused' | 'archived';

export interface Campaign {
  id: string;
  version: number;
  status: CampaignStatus;
  /** Higher wins when several campaigns match one moment. */
  priority: number;
  /** Expected value of sending (e.g. margin per redemption × redemption rate); breaks priority ties. */
  expectedValue: number;
  schedule: Schedule;
  trigger: Trigger;
  /** Where the trigger counts; empty only for zone triggers. */
  geofences: Geofence[];
  /** Sources the campaign accepts, and the least confidence it accepts. */
  sources: EventSource[];
  minConfidence: number;
  /** A GPS fix reported less precise than this does not trigger. */
  maxAccuracyM: number;
  audience: Audience;
  channels: Channel[];
  caps: MemberCaps;
  budget: Budget;
  /** Percent (0..50) of eligible members kept as a control group. */
  holdoutPercent: number;
  offer: Offer;
  /** Present when the campaign hands out a partner's offer instead of its own (see alliance.ts). */
  alliance?: AllianceChoice;
}

/**
 * Which partner offers a brand's campaign may hand out: the nearest one (of offerIds) with a redeemable store
 * within withinM metres of the campaign's store (near 'store') or of where the member is (near 'member').
 */
export interface AllianceChoice {
  offerIds: string[];
  near: 'store' | 'member';
  withinM: number;
  /** The campaign's store: the origin when near is 'store'. */
  storeId: string | null;
}

/** What is known of the member at the moment of the decision. */
export interface MemberContext {
  id: string;
  tier: string | null;
  tags: string[];
  visitCount: number;
  lastVisitAt: Date | null;
  lifetimeRedemptions: number;
  homeStoreId: string | null;
  /** Channels the member can be reached on and has consented to. */
  channels: Channel[];
  /** Offers sent (or queued) to the member, newest first; used by caps. */
  offers: Array<{ campaignId: string; at: Date }>;
  /** Redemptions by the member, newest first; used by cooldowns. */
  redemptions: Array<{ campaignId: string; at: Date }>;
  /** The member's RFM profile, present only with `profiling` consent; absent means not computed (never matches). */
  rfm?: RfmStatus;
}

/** A limit across all campaigns: at most `count` offers in any window of `hours`. */
export interface ContactLimit {
  count: number;
  hours: number;
}

export const DEFAULT_CONTACT_LIMITS: ContactLimit[] = [
  { count: 1, hours: 4 },
  { count: 3, hours: 7 * 24 },
];

export interface CampaignCounters {
  couponsIssued: number;
  redemptions: number;
}

export interface EvaluationContext {
  member: MemberContext;
  event: PresenceEvent;
  /** Per campaign id; a campaign absent here has issued nothing yet. */
  counters: ReadonlyMap<string, CampaignCounters>;
  contactLimits?: ContactLimit[];
}

export const DEFAULT_MAX_ACCURACY_M = 50;
