import type { Audience, MemberContext } from './model.js';

const DAY_MS = 86_400_000;

/** The first audience condition the member fails, with the values compared; null when all hold. */
export function audienceFailure(a: Audience, m: MemberContext, now: Date): { rule: string; expected: unknown; actual: unknown } | null {
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
  return null;
}
