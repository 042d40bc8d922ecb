/**
 * RFM profile of a member: recency, frequency and monetary value of their live (not voided) coupon
 * redemptions, each scored 1..5 against fixed thresholds, plus a named segment and a value tier. Pure: the
 * caller reads the facts, and only for members who grant `profiling`; without that consent there is no
 * profile, and an audience condition on it never matches.
 *
 * Fixed thresholds (not quintiles of the population): a member's score does not move because other members
 * did something, and the same facts always give the same profile.
 *
 * | score | recency: days since the last redemption | frequency: redemptions in 365 days | monetary: amount in 365 days |
 * | ----- | --------------------------------------- | ---------------------------------- | --------------------------- |
 * | 5     | ≤ 7                                     | ≥ 12                               | ≥ 500                       |
 * | 4     | ≤ 30                                    | 6-11                               | 200-499.99                  |
 * | 3     | ≤ 90                                    | 3-5                                | 100-199.99                  |
 * | 2     | ≤ 180                                   | 2                                  | 25-99.99                    |
 * | 1     | more, or never                          | 0-1                                | under 25                    |
 *
 * Amounts are what tills reported with the redemption (optional `amount`, in the programme's currency);
 * a redemption without one counts as 0 toward monetary value.
 */

export const RFM_WINDOW_DAYS = 365;

/** Score 5, 4, 3, 2 at or below these many days since the last redemption; 1 beyond, or never. */
export const RECENCY_MAX_DAYS = [7, 30, 90, 180] as const;
/** Score 5, 4, 3, 2 from these many redemptions in the window; 1 below. */
export const FREQUENCY_MIN = [12, 6, 3, 2] as const;
/** Score 5, 4, 3, 2 from this amount redeemed in the window; 1 below. */
export const MONETARY_MIN = [500, 200, 100, 25] as const;

export const RFM_SEGMENTS = ['champions', 'loyal', 'recent', 'at_risk', 'occasional', 'hibernating', 'no_redemptions'] as const;
export type RfmSegment = (typeof RFM_SEGMENTS)[number];

export const VALUE_TIERS = ['top', 'high', 'medium', 'low'] as const;
export type ValueTier = (typeof VALUE_TIERS)[number];

export type Score = 1 | 2 | 3 | 4 | 5;

export interface RfmFacts {
  /** The latest live redemption at or before the reference time, any age. */
  lastRedemptionAt: Date | null;
  /** Live redemptions in the RFM_WINDOW_DAYS before the reference time. */
  redemptions: number;
  /** Sum of their amounts (missing amounts count 0). */
  amount: number;
}

export interface RfmProfile {
  recency: Score;
  frequency: Score;
  monetary: Score;
  segment: RfmSegment;
  valueTier: ValueTier;
  /** Whole days since the last redemption; null if never. */
  daysSinceLastRedemption: number | null;
  redemptions: number;
  amount: number;
}

/** Whether the member has a profile: only with `profiling` consent; otherwise the consent's reason. */
export type RfmStatus = { status: 'profiled'; profile: RfmProfile } | { status: 'withheld'; reason: string };

const DAY_MS = 86_400_000;

const fromTop = (i: number): Score => (i < 0 ? 1 : ((5 - i) as Score));

export function recencyScore(days: number | null): Score {
  return days === null ? 1 : fromTop(RECENCY_MAX_DAYS.findIndex((max) => days <= max));
}

export function frequencyScore(count: number): Score {
  return fromTop(FREQUENCY_MIN.findIndex((min) => count >= min));
}

export function monetaryScore(amount: number): Score {
  return fromTop(MONETARY_MIN.findIndex((min) => amount >= min));
}

/**
 * First rule that holds: never redeemed → no_redemptions; R ≥ 4 and F ≥ 4 → champions; R ≥ 3 and F ≥ 3 →
 * loyal; R ≥ 4 → recent; F ≥ 3 → at_risk (frequent, but not lately); R = 3 → occasional; else hibernating.
 */
export function rfmSegment(recency: Score, frequency: Score, everRedeemed: boolean): RfmSegment {
  if (!everRedeemed) return 'no_redemptions';
  if (recency >= 4 && frequency >= 4) return 'champions';
  if (recency >= 3 && frequency >= 3) return 'loyal';
  if (recency >= 4) return 'recent';
  if (frequency >= 3) return 'at_risk';
  if (recency === 3) return 'occasional';
  return 'hibernating';
}

/** Value tier by monetary score: 5 top, 4 high, 3 and 2 medium, 1 low. */
export function valueTier(monetary: Score): ValueTier {
  return monetary === 5 ? 'top' : monetary === 4 ? 'high' : monetary >= 2 ? 'medium' : 'low';
}

export function rfmProfile(facts: RfmFacts, at: Date): RfmProfile {
  const days = facts.lastRedemptionAt ? Math.max(0, Math.floor((at.getTime() - facts.lastRedemptionAt.getTime()) / DAY_MS)) : null;
  const recency = recencyScore(days);
  const frequency = frequencyScore(facts.redemptions);
  const monetary = monetaryScore(facts.amount);
  return {
    recency,
    frequency,
    monetary,
    segment: rfmSegment(recency, frequency, facts.lastRedemptionAt !== null),
    valueTier: valueTier(monetary),
    daysSinceLastRedemption: days,
    redemptions: facts.redemptions,
    amount: facts.amount,
  };
}
