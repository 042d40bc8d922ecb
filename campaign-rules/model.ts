/**
 * Glossary
 * - campaign: a marketer's rule set that turns a member's presence into an offer; versioned, every edit a new version.
 * - trigger: the kind of presence event a campaign reacts to (a GPS check-in here; geofence and zone events later).
 * - geofence: an area on the map; a point is inside a circle when its distance to the centre is within the radius.
 * - offer: what the member receives; a coupon offer issues a unique code per decision.
 * - decision: the outcome of evaluating all campaigns for one member at one moment, with a trace per campaign.
 */

export interface LatLon {
  lat: number;
  lon: number;
}

export type Geofence = { kind: 'circle'; id: string; center: LatLon; radiusM: number };

export type Trigger = { kind: 'checkin' };

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
  startsAt: Date | null;
  endsAt: Date | null;
  trigger: Trigger;
  geofences: Geofence[];
  /** A fix reported less precise than this does not trigger. */
  maxAccuracyM: number;
  channel: 'sms';
  offer: Offer;
}

export type PresenceEvent = { kind: 'checkin'; position: LatLon; accuracyM: number; at: Date };

export const DEFAULT_MAX_ACCURACY_M = 50;
