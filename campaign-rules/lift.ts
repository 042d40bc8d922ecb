/**
 * Lift of a campaign over its control group: pure statistics, no I/O.
 *
 * - unit: a member in a campaign (their first decision in it that made them treated or control), never a
 *   decision, so a member decided ten times counts once.
 * - treated: members whose first such decision was `offer_queued` (offered; intention to treat: counted
 *   whether or not the message reached them). control: members whose first such decision was `held_out`.
 * - converted: the outcome, the same event for both groups; the caller counts it (see gateway/domain/reports.ts).
 * - lift: treated rate minus control rate (absolute, in proportion points), and that difference over the
 *   control rate (relative). Its 95% confidence interval is Newcombe's hybrid score interval (Newcombe 1998,
 *   method 10): built from the Wilson score interval of each rate. Unlike the Wald interval it stays inside
 *   [-1, 1] and keeps its coverage with small groups and rates near 0 or 1.
 */

/** The two-sided 95% normal quantile. */
export const Z95 = 1.959963984540054;

export interface Interval {
  low: number;
  high: number;
}

export interface GroupCounts {
  members: number;
  converted: number;
}

/** Wilson score interval for x successes in n trials; null when n is 0 (no estimate). */
export function wilsonInterval(x: number, n: number, z = Z95): Interval | null {
  if (n <= 0) return null;
  if (x < 0 || x > n) throw new RangeError(`successes ${x} must be within 0..${n}`);
  const p = x / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At p = 0 or 1 one bound is exactly the proportion; rounding must not push it past.
  return { low: x === 0 ? 0 : Math.max(0, centre - half), high: x === n ? 1 : Math.min(1, centre + half) };
}

/**
 * Newcombe's hybrid score interval for p1 - p0 (treated minus control), from the two Wilson intervals:
 * low = d - sqrt((p1 - l1)² + (u0 - p0)²), high = d + sqrt((u1 - p1)² + (p0 - l0)²). Null when either group is empty.
 */
export function newcombeInterval(treated: GroupCounts, control: GroupCounts, z = Z95): Interval | null {
  const w1 = wilsonInterval(treated.converted, treated.members, z);
  const w0 = wilsonInterval(control.converted, control.members, z);
  if (!w1 || !w0) return null;
  const p1 = treated.converted / treated.members;
  const p0 = control.converted / control.members;
  const d = p1 - p0;
  return {
    low: d - Math.sqrt((p1 - w1.low) ** 2 + (w0.high - p0) ** 2),
    high: d + Math.sqrt((w1.high - p1) ** 2 + (p0 - w0.low) ** 2),
  };
}

export interface GroupRate extends GroupCounts {
  /** converted / members; null for an empty group. */
  rate: number | null;
}

export interface Lift {
  treated: GroupRate;
  control: GroupRate;
  /** Treated rate minus control rate; null unless both groups have members. */
  absolute: number | null;
  /** absolute / control rate; null also when the control rate is 0. */
  relative: number | null;
  /** 95% interval of `absolute` (Newcombe hybrid score). */
  ci95: Interval | null;
  /** Whether the interval excludes 0: the difference is significant at the 5% level. */
  significant: boolean | null;
}

const rate = (g: GroupCounts): GroupRate => ({ ...g, rate: g.members > 0 ? g.converted / g.members : null });

export function lift(treated: GroupCounts, control: GroupCounts): Lift {
  const t = rate(treated);
  const c = rate(control);
  if (t.rate === null || c.rate === null) return { treated: t, control: c, absolute: null, relative: null, ci95: null, significant: null };
  const absolute = t.rate - c.rate;
  const ci95 = newcombeInterval(treated, control)!;
  return {
    treated: t,
    control: c,
    absolute,
    relative: c.rate > 0 ? absolute / c.rate : null,
    ci95,
    significant: ci95.low > 0 || ci95.high < 0,
  };
}

/** Share of offers (coupons issued) that were redeemed; null with no offers. */
export const redemptionRate = (redeemed: number, offered: number): number | null => (offered > 0 ? redeemed / offered : null);
