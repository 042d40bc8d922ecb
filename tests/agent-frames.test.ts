// Frame decoders against captured advertising data, every truncation, every URL and TLM variant, and
// encode/decode round trips. Captures are the raw advertising data (AD structures) as published with their
// sources; `fromRaw` splits them the way a scanner does before handing us manufacturer and service data.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FrameStats, claimsBeaconFrame, decodeAdvertisement, decodeEddystone, decodeIBeacon, encodeEddystoneEid,
  encodeEddystoneTlm, encodeEddystoneUid, encodeEddystoneUrl, encodeIBeacon,
} from '../beacon-agent/frames.js';
import type { Advertisement, Frame } from '../beacon-agent/types.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** An advertisement from raw AD structures (length, type, body …; a zero length ends them, as in padded scan records). */
function fromRaw(raw: Buffer): Advertisement {
  const ad: Advertisement = { address: 'c0:ff:ee:00:00:01', rssi: -60, seenAt: 0 };
  for (let i = 0; i < raw.length;) {
    const length = raw.readUInt8(i);
    if (length === 0) break;
    const type = raw.readUInt8(i + 1);
    const body = raw.subarray(i + 2, i + 1 + length);
    if (type === 0xff) ad.manufacturerData = body;
    if (type === 0x16) (ad.serviceData ??= []).push({ uuid: body.readUInt16LE(0).toString(16).padStart(4, '0'), data: body.subarray(2) });
    i += 1 + length;
  }
  return ad;
}
const eddystoneData = (ad: Advertisement): Buffer => {
  const entry = ad.serviceData?.find((s) => s.uuid === 'feaa');
  if (!entry) throw new Error('fixture has no 0xFEAA service data');
  return entry.data;
};

const plainTlm = (batteryMv: number | null, temperatureC: number | null, advCount: number, uptimeS: number): Frame =>
  ({ kind: 'eddystone_tlm', version: 0, batteryMv, temperatureC, advCount, uptimeS });

// [where it was published, raw advertising data, the frame it carries]
const captures: Array<[string, Buffer, Frame]> = [
  [
    'iBeacon, AirLocate UUID (Minew gateway JSON-LONG example)',
    hex('0201061AFF4C000215E2C56DB5DFFB48D2B060D0F5A71096E000010001C5'),
    { kind: 'ibeacon', uuid: 'e2c56db5-dffb-48d2-b060-d0f5a71096e0', major: 1, minor: 1, txPower: -59 },
  ],
  [
    'iBeacon, major 100 (HCI report in a Home Assistant BLE monitor parser test, HCI header stripped)',
    hex('02011A1AFF4C000215E2C56DB5DFFB48D2B060D0F5A71096E000640000C5'),
    { kind: 'ibeacon', uuid: 'e2c56db5-dffb-48d2-b060-d0f5a71096e0', major: 100, minor: 0, txPower: -59 },
  ],
  [
    'iBeacon, FDA50693 UUID at -40 dBm (a gateway GAP scan log)',
    hex('0201061aff4c000215fda50693a4e24fb1afcfc6eb0764782500010002d8'),
    { kind: 'ibeacon', uuid: 'fda50693-a4e2-4fb1-afcf-c6eb07647825', major: 1, minor: 2, txPower: -40 },
  ],
  [
    'Eddystone-UID with reserved bytes, then more AD structures and padding (BlueCharm beacon)',
    hex('0201060303AAFE1716AAFE00EE626C7565636861726D31000000000001000009168020691E0EFE13551109426C7565436861726D5F313639363835000000'),
    { kind: 'eddystone_uid', namespace: '626c7565636861726d31', instance: '000000000001', txPower: -18 },
  ],
  [
    'Eddystone-UID without reserved bytes (MagicSystems beacon, Android scanRecord)',
    Buffer.from('AgEGAwOq/hUWqv4Aw6oRIjNEVWZ3iJkAAAAABFYAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'base64'),
    { kind: 'eddystone_uid', namespace: 'aa112233445566778899', instance: '000000000456', txPower: -61 },
  ],
  [
    'Eddystone-URL https://www. + .com (reelyactive/advlib README)',
    hex('1216aafe10fc017265656c7961637469766507'),
    { kind: 'eddystone_url', url: 'https://www.reelyactive.com', txPower: -4 },
  ],
  [
    'Eddystone-URL https:// + .com/ (micro:bit, frawau/aioblescan tests)',
    hex('0201060303aafe1516aafe10f6036d616b65636f646500236162 6f7574'),
    { kind: 'eddystone_url', url: 'https://makecode.com/#about', txPower: -10 },
  ],
  [
    'Eddystone-TLM (reelyactive/advlib README)',
    hex('1116aafe20000c4815200000004500000258'),
    plainTlm(3144, 21.125, 69, 60),
  ],
  [
    'Eddystone-TLM (Minew gateway MQTT payload)',
    hex('0201060303AAFE1116AAFE200009D70C00002A5696002A82DA'),
    plainTlm(2519, 12, 2774678, 278601),
  ],
  [
    'Eddystone-TLM (Home Assistant BLE monitor parser test, which expects 3.183 V and 30.0 °C)',
    hex('0201060303AAFE1116AAFE20000C6F1E000002006D41DB9AB6'),
    plainTlm(3183, 30, 131181, 110491103),
  ],
  [
    'Eddystone-TLM without battery or temperature (same test, unsupported readings)',
    hex('0201060303AAFE1116AAFE2000000080000002006D41DB9AB6'),
    plainTlm(null, null, 131181, 110491103),
  ],
  [
    'Eddystone-TLM encrypted, eTLM (kontakt-beacon-parser test layout: 12 sealed bytes, salt, MIC)',
    hex('1516aafe2001 0102030405060708090a0b0c 0102 1112'),
    { kind: 'eddystone_tlm', version: 1, batteryMv: null, temperatureC: null, advCount: null, uptimeS: null },
  ],
  [
    'Eddystone-EID from a padded Android scan record (allianceswisspass beacon SDK test)',
    hex('0201060303aafe0d16aafe30bec22fe1f198109681000000000000000000000000000000000000000000000000000000000000'),
    { kind: 'eddystone_eid', eid: 'c22fe1f198109681', txPower: -66 },
  ],
  [
    'Eddystone-EID at +4 dBm (kontakt-beacon-parser test)',
    hex('0D16AAFE30045152535455565758'),
    { kind: 'eddystone_eid', eid: '5152535455565758', txPower: 4 },
  ],
];

/** The payload a fixture's decoder reads, and that decoder. */
function payloadOf(ad: Advertisement): [Buffer, (b: Buffer) => Frame | null] {
  return ad.manufacturerData ? [ad.manufacturerData, decodeIBeacon] : [eddystoneData(ad), decodeEddystone];
}

describe('captured advertisements', () => {
  it.each(captures)('%s', (_name, raw, frame) => {
    const ad = fromRaw(raw);
    expect(decodeAdvertisement(ad)).toEqual(frame);
    const [payload, decode] = payloadOf(ad);
    expect(decode(payload)).toEqual(frame);
  });

  it.each(captures)('%s: every truncation is refused, never thrown', (_name, raw, frame) => {
    const [payload, decode] = payloadOf(fromRaw(raw));
    for (let n = 0; n < payload.length; n += 1) {
      const cut = decode(payload.subarray(0, n));
      if (frame.kind === 'eddystone_url' && n >= 4) {
        // A URL frame has no length field: a shorter one is a shorter URL, never anything else.
        expect(cut?.kind).toBe('eddystone_url');
        expect(frame.url.startsWith(cut?.kind === 'eddystone_url' ? cut.url : '\u0000')).toBe(true);
      } else if (frame.kind === 'eddystone_uid' && n === 18) {
        // Without its two reserved bytes a UID frame is the older, still valid, 18-byte form.
        expect(cut).toEqual(frame);
      } else {
        expect(cut, `${n} of ${payload.length} bytes`).toBeNull();
      }
    }
  });

  it.each(captures.filter(([, , f]) => f.kind !== 'eddystone_url'))('%s: one byte too many is refused', (_name, raw) => {
    const [payload, decode] = payloadOf(fromRaw(raw));
    expect(decode(Buffer.concat([payload, Buffer.from([0])]))).toBeNull();
  });
});

describe('decodeIBeacon', () => {
  const good = encodeIBeacon({ uuid: 'e2c56db5-dffb-48d2-b060-d0f5a71096e0', major: 0xffff, minor: 0, txPower: -128 });
  const patched = (offset: number, value: number): Buffer => {
    const b = Buffer.from(good);
    b[offset] = value;
    return b;
  };

  it('reads major and minor big-endian and tx power signed', () => {
    expect(decodeIBeacon(good)).toMatchObject({ major: 65535, minor: 0, txPower: -128 });
    expect(decodeIBeacon(patched(24, 0x7f))).toMatchObject({ txPower: 127 });
  });

  it.each([
    ['another company id (Apple big-endian by mistake)', patched(0, 0x00)],
    ['another company id', patched(1, 0x01)],
    ['another Apple type (0x10, nearby info)', patched(2, 0x10)],
    ['a wrong length byte', patched(3, 0x16)],
  ])('refuses %s', (_name, data) => {
    expect(decodeIBeacon(data)).toBeNull();
  });
});

describe('decodeEddystone', () => {
  it('reads tx power as a signed byte (the Eddystone-URL spec examples 0x12 and 0xEE)', () => {
    expect(decodeEddystone(hex('3012 0102030405060708'))).toMatchObject({ txPower: 18 });
    expect(decodeEddystone(hex('30EE 0102030405060708'))).toMatchObject({ txPower: -18 });
  });

  it.each([
    ['an empty buffer', ''],
    ['a frame type alone', '30'],
    ['Eddystone-KEY (0x11), not one of ours', '1100 0102030405060708090a0b0c0d0e0f10'],
    ['unknown frame type 0x40', '40ee0102030405060708'],
    ['unknown frame type 0xff', 'ffee0102030405060708'],
    ['a UID frame of 19 bytes', '00ee 626c7565636861726d31 000000000001 00'],
    ['an EID frame of 9 bytes', '30ee 01020304050607'],
  ])('refuses %s', (_name, data) => {
    expect(decodeEddystone(hex(data))).toBeNull();
  });
});

describe('Eddystone-URL', () => {
  const url = (scheme: number, ...body: number[]) => decodeEddystone(Buffer.from([0x10, 0xee, scheme, ...body]));
  const a = 0x61;

  it.each([[0, 'http://www.'], [1, 'https://www.'], [2, 'http://'], [3, 'https://']])('scheme 0x0%i is %s', (code, prefix) => {
    expect(url(code, a)).toEqual({ kind: 'eddystone_url', url: `${prefix}a`, txPower: -18 });
  });

  it.each([
    '.com/', '.org/', '.edu/', '.net/', '.info/', '.biz/', '.gov/', '.com', '.org', '.edu', '.net', '.info', '.biz', '.gov',
  ].map((text, code) => [code, text] as const))('expansion 0x%s is %s', (code, text) => {
    expect(url(2, a, code, a)).toMatchObject({ url: `http://a${text}a` });
  });

  it('takes every printable character 0x21..0x7e as itself', () => {
    for (let c = 0x21; c <= 0x7e; c += 1) expect(url(3, c)).toMatchObject({ url: `https://${String.fromCharCode(c)}` });
  });

  it.each([
    ['scheme 0x04', [4, a]],
    ['scheme 0xff', [0xff, a]],
    ['reserved code 0x0e', [2, a, 0x0e]],
    ['reserved code 0x1f', [2, 0x1f]],
    ['a space (0x20)', [2, a, 0x20, a]],
    ['DEL (0x7f)', [2, 0x7f]],
    ['a high byte (0x80)', [2, a, 0x80]],
    ['a high byte (0xff)', [2, 0xff]],
    ['no URL after the scheme', [3]],
    ['18 encoded bytes, one more than fits', [3, ...Array<number>(18).fill(a)]],
  ])('refuses %s', (_name, bytes) => {
    expect(url(...(bytes as [number, ...number[]]))).toBeNull();
  });

  it('accepts 17 encoded bytes, the most that fit', () => {
    expect(url(3, ...Array<number>(17).fill(a))).toMatchObject({ url: `https://${'a'.repeat(17)}` });
  });
});

describe('Eddystone-TLM', () => {
  const tlm = (body: string) => decodeEddystone(hex(`20${body}`));

  it.each([
    ['all fields', '00 0bb8 1980 000003e8 00002710', plainTlm(3000, 25.5, 1000, 1000)],
    ['a temperature below zero (-0.5 °C = 0xff80)', '00 0bb8 ff80 00000000 00000000', plainTlm(3000, -0.5, 0, 0)],
    ['the coldest reading (0x8001)', '00 0bb8 8001 00000000 00000001', plainTlm(3000, -32767 / 256, 0, 0.1)],
    ['the warmest reading (0x7fff)', '00 ffff 7fff ffffffff ffffffff', plainTlm(65535, 32767 / 256, 4294967295, 429496729.5)],
    ['battery not supported (0)', '00 0000 1000 00000001 00000001', plainTlm(null, 16, 1, 0.1)],
    ['temperature not supported (0x8000)', '00 0bb8 8000 00000001 00000001', plainTlm(3000, null, 1, 0.1)],
  ])('plain: %s', (_name, body, frame) => {
    expect(tlm(body)).toEqual(frame);
  });

  it('encrypted (version 1): 18 bytes, fields stay sealed', () => {
    expect(tlm(`01 ${'ab'.repeat(16)}`)).toEqual({ kind: 'eddystone_tlm', version: 1, batteryMv: null, temperatureC: null, advCount: null, uptimeS: null });
  });

  it.each([
    ['plain with 15 bytes', `00 ${'00'.repeat(13)}`],
    ['plain with the length of an eTLM', `00 ${'00'.repeat(16)}`],
    ['encrypted with the length of a plain TLM', `01 ${'00'.repeat(12)}`],
    ['version 2', `02 ${'00'.repeat(12)}`],
    ['version 0xff', `ff ${'00'.repeat(16)}`],
  ])('refuses %s', (_name, body) => {
    expect(tlm(body)).toBeNull();
  });
});

describe('decodeAdvertisement', () => {
  const ibeacon = encodeIBeacon({ uuid: 'fda50693a4e24fb1afcfc6eb07647825', major: 1, minor: 2, txPower: -59 });
  const eid = encodeEddystoneEid('0102030405060708', -20);
  const ad = (extra: Partial<Advertisement>): Advertisement => ({ address: 'aa:bb:cc:dd:ee:ff', rssi: -70, seenAt: 1, ...extra });

  it('prefers the manufacturer data, then looks at 0xFEAA service data', () => {
    expect(decodeAdvertisement(ad({ manufacturerData: ibeacon, serviceData: [{ uuid: 'feaa', data: eid }] }))?.kind).toBe('ibeacon');
    expect(decodeAdvertisement(ad({ manufacturerData: hex('4c001005'), serviceData: [{ uuid: 'feaa', data: eid }] }))?.kind).toBe('eddystone_eid');
  });

  it('skips other services and a broken 0xFEAA entry to find a good one', () => {
    const serviceData = [{ uuid: 'fe9f', data: eid }, { uuid: 'feaa', data: eid.subarray(0, 5) }, { uuid: 'FEAA', data: eid }];
    expect(decodeAdvertisement(ad({ serviceData }))).toEqual({ kind: 'eddystone_eid', eid: '0102030405060708', txPower: -20 });
  });

  it('returns null for an advertisement with no beacon payload', () => {
    expect(decodeAdvertisement(ad({}))).toBeNull();
    expect(decodeAdvertisement(ad({ manufacturerData: hex('0600010920'), serviceData: [{ uuid: 'fe9f', data: eid }] }))).toBeNull();
  });

  it('never throws, whatever the bytes', () => {
    const bytes = fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u));
    fc.assert(fc.property(bytes, bytes, fc.constantFrom('feaa', 'FEAA', 'fe9f'), (m, s, uuid) => {
      decodeIBeacon(m);
      decodeEddystone(s);
      decodeAdvertisement(ad({ manufacturerData: m, serviceData: [{ uuid, data: s }] }));
    }), { numRuns: 2000 });
  });

  it('decodes only frames whose first bytes say they are frames', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 30 }), (u) => {
      const frame = decodeIBeacon(Buffer.from(u));
      if (frame) expect([...u.subarray(0, 4)]).toEqual([0x4c, 0x00, 0x02, 0x15]);
    }), { numRuns: 2000 });
  });
});

describe('FrameStats', () => {
  it('counts decoded frames by kind, malformed beacon payloads, and everything else as skipped', () => {
    const stats = new FrameStats();
    const base = { address: 'aa:bb:cc:dd:ee:ff', rssi: -70, seenAt: 1 };
    const eid = encodeEddystoneEid('0102030405060708', -20);
    stats.record({ ...base, serviceData: [{ uuid: 'feaa', data: eid }] });
    stats.record({ ...base, serviceData: [{ uuid: 'feaa', data: eid }] });
    stats.record({ ...base, manufacturerData: encodeIBeacon({ uuid: '00'.repeat(16), major: 1, minor: 1, txPower: -59 }) });
    stats.record({ ...base, serviceData: [{ uuid: 'feaa', data: eid.subarray(0, 9) }] }); // truncated
    stats.record({ ...base, manufacturerData: hex('4c000215 00') }); // a truncated iBeacon
    stats.record({ ...base, manufacturerData: hex('4c001005031c') }); // an iPhone's "nearby" data
    stats.record(base);
    expect(stats).toMatchObject({ decoded: 3, malformed: 2, skipped: 2 });
    expect(stats.byKind).toEqual({ ibeacon: 1, eddystone_uid: 0, eddystone_url: 0, eddystone_tlm: 0, eddystone_eid: 2 });
    expect(claimsBeaconFrame({ ...base, manufacturerData: hex('4c') })).toBe(false);
  });
});

describe('encoders round-trip through the decoders', () => {
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((u) => Buffer.from(u).toString('hex'));
  const int8 = fc.integer({ min: -128, max: 127 });

  it('iBeacon', () => {
    fc.assert(fc.property(bytes(16), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), int8, (u, major, minor, txPower) => {
      const uuid = `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`;
      const frame = { uuid, major, minor, txPower };
      expect(decodeIBeacon(encodeIBeacon(frame))).toEqual({ kind: 'ibeacon', ...frame });
      expect(decodeIBeacon(encodeIBeacon({ ...frame, uuid: u.toUpperCase() }))).toEqual({ kind: 'ibeacon', ...frame });
    }));
  });

  it('Eddystone-UID', () => {
    fc.assert(fc.property(bytes(10), bytes(6), int8, (namespace, instance, txPower) => {
      const data = encodeEddystoneUid({ namespace, instance, txPower });
      expect(data).toHaveLength(20);
      expect(decodeEddystone(data)).toEqual({ kind: 'eddystone_uid', namespace, instance, txPower });
    }));
  });

  it('Eddystone-URL', () => {
    const printable = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
    const token = fc.oneof(printable, fc.constantFrom('.com/', '.org/', '.info/', '.gov', '.biz', '.net/'));
    const url = fc.tuple(fc.constantFrom('http://www.', 'https://www.', 'http://', 'https://'), fc.array(token, { minLength: 1, maxLength: 17 }))
      .map(([scheme, tokens]) => scheme + tokens.join(''));
    fc.assert(fc.property(url, int8, (u, txPower) => {
      expect(decodeEddystone(encodeEddystoneUrl(u, txPower))).toEqual({ kind: 'eddystone_url', url: u, txPower });
    }));
  });

  it('Eddystone-URL bytes that decode re-encode to the same URL', () => {
    const body = fc.array(fc.oneof(fc.integer({ min: 0, max: 0x0d }), fc.integer({ min: 0x21, max: 0x7e })), { minLength: 1, maxLength: 17 });
    fc.assert(fc.property(fc.integer({ min: 0, max: 3 }), body, (scheme, b) => {
      const frame = decodeEddystone(Buffer.from([0x10, 0, scheme, ...b]));
      if (frame?.kind !== 'eddystone_url') throw new Error('expected a URL frame');
      expect(decodeEddystone(encodeEddystoneUrl(frame.url, 0))).toEqual(frame);
    }));
  });

  it('Eddystone-TLM', () => {
    const temperatureRaw = fc.integer({ min: -0x8000, max: 0x7fff });
    const u32 = fc.integer({ min: 0, max: 0xffffffff });
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), temperatureRaw, u32, u32, (battery, t, advCount, tenths) => {
      const frame = plainTlm(battery === 0 ? null : battery, t === -0x8000 ? null : t / 256, advCount, tenths / 10);
      if (frame.kind !== 'eddystone_tlm' || frame.advCount === null || frame.uptimeS === null) throw new Error('plain TLM');
      const data = encodeEddystoneTlm({ batteryMv: frame.batteryMv, temperatureC: frame.temperatureC, advCount: frame.advCount, uptimeS: frame.uptimeS });
      expect(decodeEddystone(data)).toEqual(frame);
    }));
  });

  it('Eddystone-EID, from hex or bytes', () => {
    fc.assert(fc.property(bytes(8), int8, (eid, txPower) => {
      expect(decodeEddystone(encodeEddystoneEid(eid, txPower))).toEqual({ kind: 'eddystone_eid', eid, txPower });
      expect(decodeEddystone(encodeEddystoneEid(Buffer.from(eid, 'hex'), txPower))).toEqual({ kind: 'eddystone_eid', eid, txPower });
    }));
  });

  it.each<[string, () => unknown]>([
    ['a short uuid', () => encodeIBeacon({ uuid: 'e2c56db5', major: 1, minor: 1, txPower: -59 })],
    ['a uuid with stray dashes', () => encodeIBeacon({ uuid: 'e2c5-6db5dffb48d2b060d0f5a71096e0', major: 1, minor: 1, txPower: -59 })],
    ['major 65536', () => encodeIBeacon({ uuid: '00'.repeat(16), major: 65536, minor: 1, txPower: -59 })],
    ['a fractional minor', () => encodeIBeacon({ uuid: '00'.repeat(16), major: 1, minor: 1.5, txPower: -59 })],
    ['tx power 128', () => encodeEddystoneEid('00'.repeat(8), 128)],
    ['a 9-byte namespace', () => encodeEddystoneUid({ namespace: '00'.repeat(9), instance: '00'.repeat(6), txPower: 0 })],
    ['a URL without a known scheme', () => encodeEddystoneUrl('ftp://example.com', 0)],
    ['a URL with a space', () => encodeEddystoneUrl('https://a b.com', 0)],
    ['a URL with nothing after the scheme', () => encodeEddystoneUrl('https://', 0)],
    ['a URL too long to fit', () => encodeEddystoneUrl('https://abcdefghijklmnopqr', 0)],
    ['-128 °C, the "not supported" marker', () => encodeEddystoneTlm({ batteryMv: 3000, temperatureC: -128, advCount: 0, uptimeS: 0 })],
    ['a NaN temperature', () => encodeEddystoneTlm({ batteryMv: 3000, temperatureC: NaN, advCount: 0, uptimeS: 0 })],
    ['a battery reading of 0 mV (means "not supported")', () => encodeEddystoneTlm({ batteryMv: 0, temperatureC: 20, advCount: 0, uptimeS: 0 })],
    ['a negative uptime', () => encodeEddystoneTlm({ batteryMv: 3000, temperatureC: 20, advCount: 0, uptimeS: -1 })],
    ['a 7-byte EID', () => encodeEddystoneEid(Buffer.alloc(7), 0)],
  ])('encoders refuse %s', (_name, encode) => {
    expect(encode).toThrow(RangeError);
  });
});
