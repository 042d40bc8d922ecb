import type { Campaign, CampaignCounters, ContactLimit, MemberContext } from './model.js';
import { localTime } from './schedule.js';

const HOUR_MS = 3_600_000;

export type CapFailure =
  | { condition: 'member_cap'; period: 'day' | 'week' | 'lifetime'; limit: number; count: number }
  | { condition: 'cooldown'; hours: number; lastRedemptionAt: string }
  | { condition: 'contact_limit'; count: number; hours: number; sentInWindow: number }
  | { condition: 'budget'; limit: 'maxCoupons' | 'maxRedemptions'; max: number; used: number };

/**
 * Per member and campaign: "per day" is the member's offers of this campaign on the same local date in the
 * campaign's time zone; "per week" is the last 7 × 24 hours (a rolling window, so no reset at midnight Sunday
 * lets a burst through).
 */
export function memberCapFailure(c: Campaign, m: MemberContext, now: Date): CapFailure | null {
  const mine = m.offers.filter((o) => o.campaignId === c.id);
  const { caps } = c;
  if (caps.lifetime !== undefined && mine.length >= caps.lifetime) {
    return { condition: 'member_cap', period: 'lifetime', limit: caps.lifetime, count: mine.length };
  }
  if (caps.perWeek !== undefined) {
    const count = mine.filter((o) => now.getTime() - o.at.getTime() < 7 * 24 * HOUR_MS).length;
    if (count >= caps.perWeek) return { condition: 'member_cap', period: 'week', limit: caps.perWeek, count };
  }
  if (caps.perDay !== undefined) {
    const today = localTime(now, c.schedule.timeZone).date;
    const count = mine.filter((o) => localTime(o.at, c.schedule.timeZone).date === today).length;
    if (count >= caps.perDay) return { condition: 'member_cap', period: 'day', limit: caps.perDay, count };
  }
  if (caps.cooldownAfterRedemptionHours !== undefined) {
    const last = m.redemptions.find((r) => r.campaignId === c.id);
    if (last && now.getTime() - last.at.getTime() < caps.cooldownAfterRedemptionHours * HOUR_MS) {
      return { condition: 'cooldown', hours: caps.cooldownAfterRedemptionHours, lastRedemptionAt: last.at.toISOString() };
    }
  }
  return null;
}

/** The global per-member contact cap, across all campaigns. */
export function contactLimitFailure(limits: readonly ContactLimit[], m: MemberContext, now: Date): CapFailure | null {
  for (const l of limits) {
    const sentInWindow = m.offers.filter((o) => now.getTime() - o.at.getTime() < l.hours * HOUR_MS).length;
    if (sentInWindow >= l.count) return { condition: 'contact_limit', count: l.count, hours: l.hours, sentInWindow };
  }
  return null;
}

export function budgetFailure(c: Campaign, counters: CampaignCounters | undefined): CapFailure | null {
  const used = counters ?? { couponsIssued: 0, redemptions: 0 };
  if (c.budget.maxCoupons !== undefined && used.couponsIssued >= c.budget.maxCoupons) {
    return { condition: 'budget', limit: 'maxCoupons', max: c.budget.maxCoupons, used: used.couponsIssued };
  }
  if (c.budget.maxRedemptions !== undefined && used.redemptions >= c.budget.maxRedemptions) {
    return { condition: 'budget', limit: 'maxRedemptions', max: c.budget.maxRedemptions, used: used.redemptions };
  }
  return null;
}
