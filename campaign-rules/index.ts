// Campaign rules: a pure, deterministic engine. No I/O and no clock: time is always an argument.
export * from './model.js';
export { evaluate, prepareCampaigns, type CandidateTrace, type Chosen, type Evaluation, type Failure, type PreparedCampaigns } from './evaluate.js';
export { contains, signedDistanceM, boundingBox } from './geometry.js';
export { DEFAULT_SHAPE_LIMITS, MAX_RADIUS_M, validateGeofence, type GeofenceProblem, type ShapeLimits } from './fence-checks.js';
export { buildGeofenceIndex, linearContaining, type GeofenceIndex } from './spatial-index.js';
export { DEFAULT_PRESENCE_POLICY, stepPresence, stepAll, type GeofencePresence, type PresencePolicy } from './presence.js';
export { validateSchedule, validateTrigger, validateWindows, type Problem, type ScheduleSpec } from './validate.js';
export { holdoutBucket, isHeldOut } from './holdout.js';
export { inWindows, isTimeZone, localTime, parseClock } from './schedule.js';
export { lift, newcombeInterval, redemptionRate, wilsonInterval, Z95, type GroupCounts, type GroupRate, type Interval, type Lift } from './lift.js';
export {
  FREQUENCY_MIN, MONETARY_MIN, RECENCY_MAX_DAYS, RFM_SEGMENTS, RFM_WINDOW_DAYS, VALUE_TIERS, frequencyScore, monetaryScore, recencyScore, rfmProfile,
  rfmSegment, valueTier, type RfmFacts, type RfmProfile, type RfmSegment, type RfmStatus, type Score, type ValueTier,
} from './rfm.js';
export { nearestOffers, type NearOffer, type OfferStore } from './alliance.js';
