// Eddystone-EID computation: published vectors, a second implementation written straight from the spec's
// tables, rotation every 2^K seconds, and the drift window the resolver searches.
//
// google/eddystone publishes no test vectors (eid-computation.md and tools/eidtools.py have none), so the
// vectors below come from three independent implementations' own tests; ours agrees with all of them.
import { createCipheriv } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { candidateEids, computeEid, eidHex, newIdentityKey, rotationWindow, temporaryKey } from '../beacon-agent/eid.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

describe('published vectors', () => {
  it.each([
    // RadiusNetworks/ephemeral_calc spec/encryptor_spec.rb: an encryptor started "now" reads beacon time 0 …
    ['ephemeral_calc, time 0', '0102030405060708090a111213141516', 10, 0, 'a9b76a71c5f89290'],
    // … and one started 2000 s ago reads 2000, in the window starting at 1024.
    ['ephemeral_calc, time 2000', '0102030405060708090a111213141516', 10, 2000, '4144413e45fefa58'],
    ['ephemeral_calc, same window start', '0102030405060708090a111213141516', 10, 1024, '4144413e45fefa58'],
    // sandeepmistry/node-eddystone-beacon-scanner lib/eid.spec.js, with the scanner's key 00112233…eeff.
    ['node-eddystone-beacon-scanner, Unix time', '00112233445566778899aabbccddeeff', 12, 1518080946, '7dd8169dae94258c'],
    // A Python EID resolver's unit test (module ephemeral_id_python): identity key derived by ECDH + HKDF, K = 0.
    ['ephemeral_id_python, K = 0', '7c91330e61dfea4606b5b3ecb4457d76', 0, 0, '436bfe57d5a09505'],
  ])('%s', (_source, key, k, t, eid) => {
    expect(eidHex(hex(key), k, t)).toBe(eid);
    expect(computeEid(hex(key), k, t)).toEqual(hex(eid));
  });

  it('temporary key (node-eddystone-beacon-scanner lib/eid.spec.js)', () => {
    expect(temporaryKey(hex('00112233445566778899aabbccddeeff'), 1518080946)).toEqual(hex('b7c2d909d27d22df8343271162480210'));
  });
});

/** The spec's two tables, byte by byte, with BigInt arithmetic: shares no code with the module under test. */
function specEid(identityKey: Buffer, k: number, t: number): string {
  const aes = (key: Buffer, block: number[]): Buffer => {
    const cipher = createCipheriv('aes-128-ecb', key, null);
    cipher.setAutoPadding(false);
    return Buffer.concat([cipher.update(Buffer.from(block)), cipher.final()]);
  };
  const T = BigInt(t);
  const byte = (v: bigint, shift: bigint): number => Number((v >> shift) & 0xffn);
  // Offsets 0-10 padding, 11 salt 0xFF, 12-13 padding, 14-15 top 16 bits of the counter.
  const tk = aes(identityKey, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, byte(T, 24n), byte(T, 16n)]);
  // Offsets 0-10 padding, 11 K, 12-15 the counter with its K lowest bits cleared.
  const cleared = T & ~((1n << BigInt(k)) - 1n);
  const block = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, k, byte(cleared, 24n), byte(cleared, 16n), byte(cleared, 8n), byte(cleared, 0n)];
  return aes(tk, block).subarray(0, 8).toString('hex');
}

describe('against a second implementation of the spec', () => {
  const key = hex('2b7e151628aed2a6abf7158809cf4f3c');

  it.each([
    ['a present-day Unix time', 15, 1_767_225_600],
    ['past 2^31, where signed 32-bit shifts go wrong', 10, 2 ** 31 + 12_345],
    ['the last second of the 32-bit counter', 15, 0xffffffff],
    ['just before a temporary-key rollover', 0, 0x1_ffff],
    ['just after it', 0, 0x2_0000],
  ])('%s', (_name, k, t) => {
    expect(eidHex(key, k, t)).toBe(specEid(key, k, t));
  });

  it('agrees for any key, K and time', () => {
    const keys = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((u) => Buffer.from(u));
    fc.assert(fc.property(keys, fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 0xffffffff }), (ik, k, t) => {
      expect(eidHex(ik, k, t)).toBe(specEid(ik, k, t));
    }), { numRuns: 300 });
  });
});

describe('rotation', () => {
  const key = hex('000102030405060708090a0b0c0d0e0f');
  const now = 1_767_225_600; // 2026-01-01T00:00:00Z

  it.each([0, 1, 8, 10, 15])('K = %i: one EID through each 2^K-second window, a new one at the next', (k) => {
    const start = rotationWindow(now + 12_345, k);
    const size = 2 ** k;
    expect(start % size).toBe(0);
    const eid = eidHex(key, k, start);
    expect(eidHex(key, k, start + size - 1)).toBe(eid);
    expect(eidHex(key, k, start + Math.floor(size / 2))).toBe(eid);
    expect(eidHex(key, k, start + size)).not.toBe(eid);
    expect(eidHex(key, k, start - 1)).not.toBe(eid);
  });

  it('rotationWindow clears the K low bits', () => {
    expect(rotationWindow(2000, 10)).toBe(1024);
    expect(rotationWindow(1023, 10)).toBe(0);
    expect(rotationWindow(0xffffffff, 15)).toBe(0xffff8000);
    expect(rotationWindow(12.9, 0)).toBe(12);
  });

  it('the temporary key changes every 65 536 s', () => {
    expect(temporaryKey(key, 0)).toEqual(temporaryKey(key, 65_535));
    expect(temporaryKey(key, 65_536)).not.toEqual(temporaryKey(key, 65_535));
  });

  it('K is part of the input: the same window start under another K gives another EID', () => {
    expect(eidHex(key, 10, 1024)).not.toBe(eidHex(key, 9, 1024));
  });

  it('takes fractional seconds as the second they fall in', () => {
    expect(eidHex(key, 0, now + 0.999)).toBe(eidHex(key, 0, now));
  });

  it('different keys give different EIDs', () => {
    const keys = fc.uniqueArray(fc.uint8Array({ minLength: 16, maxLength: 16 }).map((u) => Buffer.from(u).toString('hex')), { minLength: 2, maxLength: 2 });
    fc.assert(fc.property(keys, fc.integer({ min: 0, max: 15 }), ([a = '', b = ''], k) => {
      expect(eidHex(hex(a), k, now)).not.toBe(eidHex(hex(b), k, now));
    }), { numRuns: 200 });
  });
});

describe('candidateEids', () => {
  const key = hex('0f0e0d0c0b0a09080706050403020100');

  it('holds the current window and driftWindows either side, oldest first', () => {
    const t = 1_767_225_600 + 700;
    const start = rotationWindow(t, 10);
    const candidates = candidateEids(key, 10, t);
    expect(candidates.map((c) => c.windowStart)).toEqual([start - 1024, start, start + 1024]);
    for (const c of candidates) expect(c.eid).toBe(eidHex(key, 10, c.windowStart));
    expect(candidates[1]?.eid).toBe(eidHex(key, 10, t));
    expect(new Set(candidates.map((c) => c.eid)).size).toBe(3);
  });

  it('a phone whose clock is one window off still matches', () => {
    const t = 1_767_225_600;
    const phoneAhead = eidHex(key, 8, t + 256);
    const phoneBehind = eidHex(key, 8, t - 256);
    const eids = candidateEids(key, 8, t).map((c) => c.eid);
    expect(eids).toContain(phoneAhead);
    expect(eids).toContain(phoneBehind);
    expect(eids).not.toContain(eidHex(key, 8, t + 512));
  });

  it('drift 0 is the current window alone; drift 2 is five windows', () => {
    expect(candidateEids(key, 4, 1000, 0)).toEqual([{ eid: eidHex(key, 4, 1000), windowStart: 992 }]);
    expect(candidateEids(key, 4, 1000, 2).map((c) => c.windowStart)).toEqual([960, 976, 992, 1008, 1024]);
  });

  it('leaves out windows before 0 and past the 32-bit counter', () => {
    expect(candidateEids(key, 10, 5).map((c) => c.windowStart)).toEqual([0, 1024]);
    expect(candidateEids(key, 15, 0xffffffff).map((c) => c.windowStart)).toEqual([0xffff0000, 0xffff8000]);
  });
});

describe('input checks', () => {
  const key = Buffer.alloc(16, 7);

  it.each([-1, 16, 1.5, Number.NaN])('K = %s is a RangeError', (k) => {
    expect(() => computeEid(key, k, 0)).toThrow(RangeError);
    expect(() => rotationWindow(0, k)).toThrow(RangeError);
    expect(() => candidateEids(key, k, 0)).toThrow(RangeError);
  });

  it.each([0, 15])('K = %i is accepted', (k) => {
    expect(computeEid(key, k, 0)).toHaveLength(8);
  });

  it.each([
    ['negative', -1],
    ['milliseconds passed as seconds', 1_767_225_600_000],
    ['past the 32-bit counter', 2 ** 32],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])('a timestamp that is %s is a RangeError', (_name, t) => {
    expect(() => computeEid(key, 10, t)).toThrow(RangeError);
  });

  it('an identity key must be 16 bytes', () => {
    expect(() => computeEid(Buffer.alloc(15), 10, 0)).toThrow(RangeError);
    expect(() => computeEid(Buffer.alloc(32), 10, 0)).toThrow(RangeError);
  });

  it('driftWindows must be a non-negative integer', () => {
    expect(() => candidateEids(key, 10, 0, -1)).toThrow(RangeError);
    expect(() => candidateEids(key, 10, 0, 0.5)).toThrow(RangeError);
  });
});

describe('newIdentityKey', () => {
  it('is 16 random bytes, different each time', () => {
    const a = newIdentityKey();
    expect(a).toHaveLength(16);
    expect(newIdentityKey()).not.toEqual(a);
  });

  it('uses the random source it is given, and checks what it returns', () => {
    expect(newIdentityKey((n) => Buffer.alloc(n, 0xab))).toEqual(Buffer.alloc(16, 0xab));
    expect(() => newIdentityKey(() => Buffer.alloc(15))).toThrow(RangeError);
  });
});
