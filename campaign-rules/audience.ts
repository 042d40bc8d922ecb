import type { Audience, MemberContext } from './model.js';
import type { RfmProfile } from './rfm.js';

const DAY_MS = 86_400_000;

export interface AudienceFailure {
  rule: string;
  expected: unknown;
  actual: unknown;
  /** An RFM condition failed because the member has no RFM profile: the purpose and the consent's reason. */
  withheld?: { purpose: 'profiling'; reason: string };
}

const RFM_RULES = ['rfmSegments', 'valueTiers', 'minRecencyScore', 'minFrequencyScore', 'minMonetaryScore'] as const;

function rfmFailure(a: Audience, m: MemberContext): AudienceFailure | null {
  const rule = RFM_RULES.find((r) => a[r] !== undefined);
  if (!rule) return null;
  const rfm = m.rfm ?? { status: 'withheld', reason: 'NOT_COMPUTED' };
  if (rfm.status === 'withheld') return { rule, expected: a[rule], actual: null, withheld: { purpose: 'profiling', reason: rfm.reason } };
  const p: RfmProfile = rfm.profile;
  if (a.rfmSegments && !a.rfmSegments.includes(p.segment)) return { rule: 'rfmSegments', expected: a.rfmSegments, actual: p.segment };
  if (a.valueTiers && !a.valueTiers.includes(p.valueTier)) return { rule: 'valueTiers', expected: a.valueTiers, actual: p.valueTier };
  if (a.minRecencyScore !== undefined && p.recency < a.minRecencyScore) return { rule: 'minRecencyScore', expected: a.minRecencyScore, actual: p.recency };
  if (a.minFrequencyScore !== undefined && p.frequency < a.minFrequencyScore) {
    return { rule: 'minFrequencyScore', expected: a.minFrequencyScore, actual: p.frequency };
  }
  if (a.minMonetaryScore !== undefined && p.monetary < a.minMonetaryScore) return { rule: 'minMonetaryScore', expected: a.minMonetaryScore, actual: p.monetary };
  return null;
}

/** The first audience condition the member fails, with the values compared; null when all hold. */
export function audienceFailure(a: Audience, m: MemberContext, now: Date): AudienceFailure | null {
  if (a.tiers && !(m.tier !== null && a.tiers.includes(m.tier))) return { rule: 'tiers', expected: a.tiers, actual: m.tier };
  if (a.tagsAny && !a.tagsAny.some((t) => m.tags.includes(t))) return { rule: 'tagsAny', expected: a.tagsAny, actual: m.tags };
  if (a.tagsAll && !a.tagsAll.every((t) => m.tags.includes(t))) return { rule: 'tagsAll', expected: a.tagsAll, actual: m.tags };
  if (a.minVisits !== undefined && m.visitCount < a.minVisits) return { rule: 'minVisits', expected: a.minVisits, actual: m.visitCount };
  if (a.maxVisits !== undefined && m.visitCount > a.maxVisits) return { rule: 'maxVisits', expected: a.maxVisits, actual: m.visitCount };
  if (a.minDaysSinceLastVisit !== undefined || a.maxDaysSinceLastVisit !== undefined) {
    // A member who never visited is infinitely long ago: they pass a minimum and fail a maximum.
    const days = m.lastVisitAt ? (now.getTime() - m.lastVisitAt.getTime()) / DAY_MS : Infinity;
    const shown = Number.isFinite(days) ? Math.floor(days * 100) / 100 : null;
    if (a.minDaysSinceLastVisit !== undefined && days < a.minDaysSinceLastVisit) {
      return { rule: 'minDaysSinceLastVisit', expected: a.minDaysSinceLastVisit, actual: shown };
    }
    if (a.maxDaysSinceLastVisit !== undefined && days > a.maxDaysSinceLastVisit) {
      return { rule: 'maxDaysSinceLastVisit', expected: a.maxDaysSinceLastVisit, actual: shown };
    }
  }
  if (a.minLifetimeRedemptions !== undefined && m.lifetimeRedemptions < a.minLifetimeRedemptions) {
    return { rule: 'minLifetimeRedemptions', expected: a.minLifetimeRedemptions, actual: m.lifetimeRedemptions };
  }
  if (a.maxLifetimeRedemptions !== undefined && m.lifetimeRedemptions > a.maxLifetimeRedemptions) {
    return { rule: 'maxLifetimeRedemptions', expected: a.maxLifetimeRedemptions, actual: m.lifetimeRedemptions };
  }
  if (a.homeStoreIds && !(m.homeStoreId !== null && a.homeStoreIds.includes(m.homeStoreId))) {
    return { rule: 'homeStoreIds', expected: a.homeStoreIds, actual: m.homeStoreId };
  }
  return rfmFailure(a, m);
}
