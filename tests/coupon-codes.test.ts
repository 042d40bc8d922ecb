// Coupon codes: 60 random bits in Crockford base32, a check character that catches every single typo and
// most swapped neighbours, what a cashier types made canonical, and a payload a QR code carries as is.
import { describe, expect, it } from 'vitest';
import { CODE_LENGTH, RANDOM_LENGTH, checkCharacter, isWellFormedCode, newCouponCode, normalizeCouponCode, qrPayload } from '../gateway/domain/coupons.js';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

describe('coupon codes', () => {
  const codes = Array.from({ length: 2000 }, () => newCouponCode());

  it('carry 60 random bits and a check character, in an alphabet without I, L, O or U', () => {
    expect(RANDOM_LENGTH * Math.log2(ALPHABET.length)).toBe(60);
    for (const c of codes) {
      expect(c).toMatch(/^[0-9A-HJKMNP-TV-Z]{13}$/);
      expect(c).toHaveLength(CODE_LENGTH);
      expect(isWellFormedCode(c)).toBe(true);
    }
    expect(new Set(codes).size).toBe(codes.length);
    // Every character of the alphabet turns up in every random position, about equally often.
    for (let p = 0; p < RANDOM_LENGTH; p++) {
      const seen = new Map<string, number>();
      for (const c of codes) seen.set(c[p]!, (seen.get(c[p]!) ?? 0) + 1);
      expect(seen.size).toBe(32);
      for (const n of seen.values()) expect(n).toBeGreaterThan(2000 / 32 / 3);
    }
  });

  it('catches every single mistyped character', () => {
    for (const code of codes.slice(0, 100)) {
      for (let p = 0; p < CODE_LENGTH; p++) {
        for (const ch of ALPHABET) {
          if (ch === code[p]) continue;
          expect(isWellFormedCode(code.slice(0, p) + ch + code.slice(p + 1)), `${code} with ${ch} at ${p}`).toBe(false);
        }
      }
    }
  });

  it('catches most swaps of neighbouring characters, and every dropped or added one', () => {
    let swaps = 0;
    let caught = 0;
    for (const code of codes) {
      for (let p = 0; p + 1 < CODE_LENGTH; p++) {
        if (code[p] === code[p + 1]) continue;
        swaps++;
        if (!isWellFormedCode(code.slice(0, p) + code[p + 1] + code[p] + code.slice(p + 2))) caught++;
      }
      expect(isWellFormedCode(code.slice(1))).toBe(false);
      expect(isWellFormedCode(`${code}0`)).toBe(false);
    }
    expect(caught / swaps).toBeGreaterThan(0.9);
  });

  it('reads what a cashier types: case, dashes, spaces, O for 0 and I or L for 1', () => {
    const body = '0123456789AB';
    const code = body + checkCharacter(body);
    expect(normalizeCouponCode(`o123-4567 89ab${code.slice(-1).toLowerCase()}`)).toBe(code);
    expect(normalizeCouponCode('Il')).toBe('11');
    expect(isWellFormedCode(normalizeCouponCode(`${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`))).toBe(true);
  });

  it('gives a QR payload in the alphanumeric mode (digits, capitals, colon)', () => {
    for (const c of codes.slice(0, 50)) expect(qrPayload(c)).toMatch(/^COUPON:[0-9A-Z]{13}$/);
  });
});
