// The simulated member app: its advertisement decodes to the EID the spec computation gives, its address
// rotates with the EID, and the GATT write format round-trips and refuses anything else.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { candidateEids, eidHex } from '../beacon-agent/eid.js';
import { decodeAdvertisement } from '../beacon-agent/frames.js';
import {
  ACTIVE_WRITE_LENGTH, DEFAULT_TX_POWER, activeWrite, decodeActiveWrite, encodeActiveWrite, nextRotationMs, passiveAdvertisement,
} from '../beacon-agent/member-app-sim.js';

const app = { identityKey: Buffer.from('8c5e0d1fa2b3c4d5e6f708192a3b4c5d', 'hex'), k: 10 };
const nowMs = Date.UTC(2026, 0, 1, 12, 0, 0);

describe('passive path', () => {
  it('advertises the current EID as an Eddystone-EID frame, with the RSSI and time given', () => {
    const ad = passiveAdvertisement(app, nowMs, -67);
    expect(decodeAdvertisement(ad)).toEqual({ kind: 'eddystone_eid', eid: eidHex(app.identityKey, app.k, nowMs / 1000), txPower: DEFAULT_TX_POWER });
    expect(ad).toMatchObject({ rssi: -67, seenAt: nowMs });
    expect(ad.manufacturerData).toBeUndefined();
    expect(passiveAdvertisement(app, nowMs, -67, -12).serviceData?.[0]?.data.readInt8(1)).toBe(-12);
  });

  it('the gateway resolves it: the EID is among the candidates for the same key', () => {
    const frame = decodeAdvertisement(passiveAdvertisement(app, nowMs, -60));
    const eid = frame?.kind === 'eddystone_eid' ? frame.eid : '';
    expect(candidateEids(app.identityKey, app.k, nowMs / 1000).map((c) => c.eid)).toContain(eid);
  });

  it('keeps EID and address through a window and changes both at the next', () => {
    const next = nextRotationMs(app, nowMs);
    expect(next % (2 ** app.k * 1000)).toBe(0);
    expect(next).toBeGreaterThan(nowMs);
    const before = passiveAdvertisement(app, next - 1, -60);
    const same = passiveAdvertisement(app, next - 2 ** app.k * 1000, -60);
    const after = passiveAdvertisement(app, next, -60);
    expect(same.address).toBe(before.address);
    expect(decodeAdvertisement(same)).toEqual(decodeAdvertisement(before));
    expect(after.address).not.toBe(before.address);
    expect(decodeAdvertisement(after)).not.toEqual(decodeAdvertisement(before));
  });

  it('uses a well-formed non-resolvable private address (top two bits 00)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 }), (s) => {
      const { address } = passiveAdvertisement(app, s * 1000, -70);
      expect(address).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      expect(parseInt(address.slice(0, 2), 16) & 0xc0).toBe(0);
    }), { numRuns: 200 });
  });
});

describe('active path', () => {
  it('writes version 0x01 and the current EID', () => {
    const bytes = activeWrite(app, nowMs);
    expect(bytes).toHaveLength(ACTIVE_WRITE_LENGTH);
    expect(bytes[0]).toBe(0x01);
    expect(decodeActiveWrite(bytes)).toEqual({ eid: eidHex(app.identityKey, app.k, nowMs / 1000) });
  });

  it('round-trips any EID, upper-case hex coming back lower-case', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (u) => {
      const eid = Buffer.from(u).toString('hex');
      expect(decodeActiveWrite(encodeActiveWrite({ eid }))).toEqual({ eid });
      expect(decodeActiveWrite(encodeActiveWrite({ eid: eid.toUpperCase() }))).toEqual({ eid });
    }));
  });

  it.each([
    ['an empty write', ''],
    ['the version byte alone', '01'],
    ['one EID byte short', '0101020304050607'],
    ['one byte too many', '01010203040506070809'],
    ['version 0x00', '000102030405060708'],
    ['version 0x02', '020102030405060708'],
    ['an Eddystone-EID frame written by mistake', '30ee0102030405060708'],
  ])('refuses %s', (_name, h) => {
    expect(decodeActiveWrite(Buffer.from(h, 'hex'))).toBeNull();
  });

  it('never throws on any bytes, and accepts only 9 bytes starting 0x01', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 20 }), (u) => {
      const decoded = decodeActiveWrite(Buffer.from(u));
      expect(decoded !== null).toBe(u.length === 9 && u[0] === 0x01);
    }), { numRuns: 2000 });
  });

  it.each(['', '0102030405060708aa', '01020304050607', 'zz02030405060708', '01-02-03-04-05-06'])('encodeActiveWrite refuses eid "%s"', (eid) => {
    expect(() => encodeActiveWrite({ eid })).toThrow(RangeError);
  });
});
