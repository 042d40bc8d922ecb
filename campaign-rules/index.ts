// Campaign rules: a pure, deterministic engine. No I/O and no clock: time is always an argument.
export type { Campaign, CampaignStatus, Geofence, LatLon, Offer, PresenceEvent, Trigger } from './model.js';
export { DEFAULT_MAX_ACCURACY_M } from './model.js';
export { evaluate, type CandidateTrace, type Evaluation, type Failure } from './evaluate.js';
