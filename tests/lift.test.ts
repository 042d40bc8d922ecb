// Lift statistics against hand computations and published values: Wilson score intervals, Newcombe's hybrid
// score interval for a difference of proportions, relative lift and its edge cases.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lift, newcombeInterval, redemptionRate, wilsonInterval, Z95 } from '../campaign-rules/index.js';

describe('wilsonInterval', () => {
  it('matches a hand computation for 2 of 10', () => {
    // p = 0.2, z² = 3.841459, 1 + z²/n = 1.384146
    // centre = (0.2 + 3.841459 / 20) / 1.384146 = 0.392073 / 1.384146 = 0.283260
    // half = (1.959964 / 1.384146) × sqrt(0.2 × 0.8 / 10 + 3.841459 / 400) = 1.416010 × 0.160012 = 0.226578
    const w = wilsonInterval(2, 10)!;
    expect(w.low).toBeCloseTo(0.283260 - 0.226578, 5);
    expect(w.high).toBeCloseTo(0.283260 + 0.226578, 5);
  });

  it('keeps 0 of n and n of n inside [0, 1], with the observed bound exact', () => {
    // 0 of 10: centre = half = (z² / 20) / 1.384146 = 0.138766, so [0, 0.277533].
    expect(wilsonInterval(0, 10)).toEqual({ low: 0, high: expect.closeTo(0.277533, 5) });
    expect(wilsonInterval(10, 10)).toEqual({ low: expect.closeTo(1 - 0.277533, 5), high: 1 });
  });

  it('matches the textbook 81 of 263 (0.2553, 0.3662)', () => {
    const w = wilsonInterval(81, 263)!;
    expect(w.low).toBeCloseTo(0.2553, 4);
    expect(w.high).toBeCloseTo(0.3662, 4);
  });

  it('has no estimate for an empty group and refuses impossible counts', () => {
    expect(wilsonInterval(0, 0)).toBeNull();
    expect(() => wilsonInterval(3, 2)).toThrow(RangeError);
  });

  it('uses the 95% normal quantile', () => {
    expect(Z95).toBeCloseTo(1.959964, 6);
  });
});

describe('newcombeInterval', () => {
  it('reproduces Newcombe (1998) method 10: 56/70 vs 48/80 is 0.2000 (0.0524, 0.3339)', () => {
    const ci = newcombeInterval({ members: 70, converted: 56 }, { members: 80, converted: 48 })!;
    expect(ci.low).toBeCloseTo(0.0524, 4);
    expect(ci.high).toBeCloseTo(0.3339, 4);
  });

  it('reproduces Newcombe (1998) method 10 with an empty arm: 5/56 vs 0/29 is (-0.0381, 0.1926)', () => {
    const ci = newcombeInterval({ members: 56, converted: 5 }, { members: 29, converted: 0 })!;
    expect(ci.low).toBeCloseTo(-0.0381, 4);
    expect(ci.high).toBeCloseTo(0.1926, 4);
  });

  it('matches a hand computation for 6/10 treated vs 1/5 control', () => {
    // Wilson 6/10: centre 0.572247, half 0.259573 → [0.312674, 0.831820]
    // Wilson 1/5:  centre 0.330345, half 0.294121 → [0.036224, 0.624465]
    // d = 0.6 - 0.2 = 0.4
    // low  = 0.4 - sqrt((0.6 - 0.312674)² + (0.624465 - 0.2)²) = 0.4 - sqrt(0.082556 + 0.180171) = 0.4 - 0.512569 = -0.112569
    // high = 0.4 + sqrt((0.831820 - 0.6)² + (0.2 - 0.036224)²) = 0.4 + sqrt(0.053740 + 0.026823) = 0.4 + 0.283836 = 0.683836
    const ci = newcombeInterval({ members: 10, converted: 6 }, { members: 5, converted: 1 })!;
    expect(ci.low).toBeCloseTo(-0.112569, 5);
    expect(ci.high).toBeCloseTo(0.683836, 5);
  });

  it('is null when either group is empty', () => {
    expect(newcombeInterval({ members: 0, converted: 0 }, { members: 5, converted: 1 })).toBeNull();
    expect(newcombeInterval({ members: 5, converted: 1 }, { members: 0, converted: 0 })).toBeNull();
  });

  it('always holds the difference and stays within [-1, 1]', () => {
    const arm = fc.integer({ min: 1, max: 400 }).chain((n) => fc.record({ members: fc.constant(n), converted: fc.integer({ min: 0, max: n }) }));
    fc.assert(
      fc.property(arm, arm, (t, c) => {
        const d = t.converted / t.members - c.converted / c.members;
        const ci = newcombeInterval(t, c)!;
        return ci.low <= d + 1e-12 && d <= ci.high + 1e-12 && ci.low >= -1 - 1e-12 && ci.high <= 1 + 1e-12;
      }),
    );
  });
});

describe('lift', () => {
  it('gives the absolute and relative lift, the interval and whether it excludes 0', () => {
    const l = lift({ members: 10, converted: 6 }, { members: 5, converted: 1 });
    expect(l.treated).toEqual({ members: 10, converted: 6, rate: 0.6 });
    expect(l.control).toEqual({ members: 5, converted: 1, rate: 0.2 });
    expect(l.absolute).toBeCloseTo(0.4, 12);
    expect(l.relative).toBeCloseTo(2, 12); // 0.4 / 0.2
    expect(l.significant).toBe(false); // the interval (-0.1126, 0.6838) holds 0
    const big = lift({ members: 70, converted: 56 }, { members: 80, converted: 48 });
    expect(big.significant).toBe(true); // (0.0524, 0.3339)
    const worse = lift({ members: 80, converted: 48 }, { members: 70, converted: 56 });
    expect(worse.absolute).toBeCloseTo(-0.2, 12);
    expect(worse.ci95!.high).toBeCloseTo(-0.0524, 4);
    expect(worse.significant).toBe(true);
  });

  it('has no relative lift over a control rate of 0, and no estimate without both groups', () => {
    const zero = lift({ members: 56, converted: 5 }, { members: 29, converted: 0 });
    expect(zero.absolute).toBeCloseTo(5 / 56, 12);
    expect(zero.relative).toBeNull();
    expect(lift({ members: 3, converted: 1 }, { members: 0, converted: 0 })).toEqual({
      treated: { members: 3, converted: 1, rate: 1 / 3 }, control: { members: 0, converted: 0, rate: null },
      absolute: null, relative: null, ci95: null, significant: null,
    });
  });
});

describe('redemptionRate', () => {
  it('is redeemed over offered, and null with no offers', () => {
    expect(redemptionRate(3, 16)).toBe(0.1875);
    expect(redemptionRate(0, 0)).toBeNull();
  });
});
