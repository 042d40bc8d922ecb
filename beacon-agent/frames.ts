// Beacon frame decoders and encoders: pure bytes-in, data-out functions, no I/O.
//
// Decoders take the payloads a scanner hands over (manufacturer data with its company id first; Eddystone
// service data without the 0xFEAA uuid) and return a Frame, or null for anything that is not a well-formed
// frame: wrong length, unknown frame type or version, unknown URL scheme, unprintable URL byte. They never
// throw, because every byte comes off the air from devices we do not control.
// Encoders are for simulators and tests; they throw RangeError on input no decoder would give back.
//
// Layouts: Apple iBeacon (manufacturer data 4C 00 02 15 …) and google/eddystone: eddystone-uid, eddystone-url,
// eddystone-tlm (tlm-plain.md, tlm-encrypted.md) and eddystone-eid READMEs. Multi-byte fields are big-endian.
import type { Advertisement, Frame } from './types.js';

export const APPLE_COMPANY_ID = 0x004c;
export const EDDYSTONE_SERVICE_UUID = 'feaa';

const IBEACON_TYPE = 0x02;
const IBEACON_BODY_LENGTH = 0x15; // uuid (16) + major (2) + minor (2) + tx power (1)
const IBEACON_LENGTH = 4 + IBEACON_BODY_LENGTH; // plus company id (2), type, length

const FRAME_UID = 0x00;
const FRAME_URL = 0x10;
const FRAME_TLM = 0x20;
const FRAME_EID = 0x30;
/** Older UID beacons leave out the two reserved bytes (Service Data Length 0x15 instead of 0x17). */
const UID_LENGTHS = [18, 20];
const TLM_PLAIN_LENGTH = 14;
const TLM_ENCRYPTED_LENGTH = 18; // 12 bytes sealed telemetry, 2 salt, 2 MIC
const EID_LENGTH = 10;
const URL_MAX_ENCODED = 17;

const URL_SCHEMES = ['http://www.', 'https://www.', 'http://', 'https://'];
const URL_EXPANSIONS = [
  '.com/', '.org/', '.edu/', '.net/', '.info/', '.biz/', '.gov/',
  '.com', '.org', '.edu', '.net', '.info', '.biz', '.gov',
];
/** The printable US-ASCII range a URL byte may take when it is not an expansion code (RFC 2936). */
const isUrlChar = (b: number): boolean => b >= 0x21 && b <= 0x7e;

/** An iBeacon from manufacturer data (company id little-endian first), or null. */
export function decodeIBeacon(data: Buffer): Frame | null {
  if (data.length !== IBEACON_LENGTH) return null;
  if (data.readUInt16LE(0) !== APPLE_COMPANY_ID || data[2] !== IBEACON_TYPE || data[3] !== IBEACON_BODY_LENGTH) return null;
  const uuid = data.toString('hex', 4, 20);
  return {
    kind: 'ibeacon',
    uuid: `${uuid.slice(0, 8)}-${uuid.slice(8, 12)}-${uuid.slice(12, 16)}-${uuid.slice(16, 20)}-${uuid.slice(20)}`,
    major: data.readUInt16BE(20),
    minor: data.readUInt16BE(22),
    txPower: data.readInt8(24),
  };
}

/** An Eddystone frame from 0xFEAA service data (frame type first), or null. */
export function decodeEddystone(data: Buffer): Frame | null {
  if (data.length < 2) return null;
  switch (data[0]) {
    case FRAME_UID:
      if (!UID_LENGTHS.includes(data.length)) return null;
      return { kind: 'eddystone_uid', namespace: data.toString('hex', 2, 12), instance: data.toString('hex', 12, 18), txPower: data.readInt8(1) };
    case FRAME_URL:
      return decodeUrl(data);
    case FRAME_TLM:
      return decodeTlm(data);
    case FRAME_EID:
      if (data.length !== EID_LENGTH) return null;
      return { kind: 'eddystone_eid', eid: data.toString('hex', 2, 10), txPower: data.readInt8(1) };
    default:
      return null;
  }
}

function decodeUrl(data: Buffer): Frame | null {
  // At least one encoded byte: a bare "https://" names nothing.
  if (data.length < 4 || data.length > 3 + URL_MAX_ENCODED) return null;
  const scheme = URL_SCHEMES[data[2] ?? -1];
  if (scheme === undefined) return null;
  let url = scheme;
  for (const b of data.subarray(3)) {
    const expansion = URL_EXPANSIONS[b];
    if (expansion !== undefined) url += expansion;
    else if (isUrlChar(b)) url += String.fromCharCode(b);
    else return null;
  }
  return { kind: 'eddystone_url', url, txPower: data.readInt8(1) };
}

function decodeTlm(data: Buffer): Frame | null {
  if (data[1] === 0x01) {
    if (data.length !== TLM_ENCRYPTED_LENGTH) return null;
    // Sealed with the beacon's identity key (AES-EAX); only the gateway could open it.
    return { kind: 'eddystone_tlm', version: 1, batteryMv: null, temperatureC: null, advCount: null, uptimeS: null };
  }
  if (data[1] !== 0x00 || data.length !== TLM_PLAIN_LENGTH) return null;
  const battery = data.readUInt16BE(2);
  const temperature = data.readInt16BE(4);
  return {
    kind: 'eddystone_tlm',
    version: 0,
    batteryMv: battery === 0 ? null : battery, // 0: not supported (e.g. USB powered)
    temperatureC: temperature === -0x8000 ? null : temperature / 256, // 0x8000: not supported
    advCount: data.readUInt32BE(6),
    uptimeS: data.readUInt32BE(10) / 10, // SEC_CNT counts tenths of a second
  };
}

/** The frame an advertisement carries: an iBeacon in its manufacturer data, else an Eddystone service data frame. */
export function decodeAdvertisement(ad: Advertisement): Frame | null {
  const fromManufacturer = ad.manufacturerData ? decodeIBeacon(ad.manufacturerData) : null;
  if (fromManufacturer) return fromManufacturer;
  for (const entry of ad.serviceData ?? []) {
    if (entry.uuid.toLowerCase() !== EDDYSTONE_SERVICE_UUID) continue;
    const frame = decodeEddystone(entry.data);
    if (frame) return frame;
  }
  return null;
}

/** Whether an advertisement claims to carry a beacon frame (Apple type 0x02 or any 0xFEAA service data). */
export function claimsBeaconFrame(ad: Advertisement): boolean {
  const m = ad.manufacturerData;
  const apple = m !== undefined && m.length >= 3 && m.readUInt16LE(0) === APPLE_COMPANY_ID && m[2] === IBEACON_TYPE;
  return apple || (ad.serviceData ?? []).some((s) => s.uuid.toLowerCase() === EDDYSTONE_SERVICE_UUID);
}

/**
 * Counts what the scanner heard. `malformed` is what claimed to be a beacon frame and failed to decode (a bad
 * transmitter, a corrupted packet, someone probing us); `skipped` is everything else that was not a beacon
 * (phones, headphones, Apple's other manufacturer data types), normal and uninteresting.
 */
export class FrameStats {
  decoded = 0;
  malformed = 0;
  skipped = 0;
  readonly byKind: Record<Frame['kind'], number> = {
    ibeacon: 0, eddystone_uid: 0, eddystone_url: 0, eddystone_tlm: 0, eddystone_eid: 0,
  };

  /** Decodes the advertisement, counts the outcome and hands the frame back. */
  record(ad: Advertisement): Frame | null {
    const frame = decodeAdvertisement(ad);
    if (frame) {
      this.decoded += 1;
      this.byKind[frame.kind] += 1;
    } else if (claimsBeaconFrame(ad)) this.malformed += 1;
    else this.skipped += 1;
    return frame;
  }
}

// ---- encoders ----

function int(value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${what} must be an integer in ${min}..${max}, got ${value}`);
  return value;
}

/** Exactly `bytes` bytes from hex. */
function hexBytes(hex: string, bytes: number, what: string): Buffer {
  if (!new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(hex)) throw new RangeError(`${what} must be ${bytes} bytes of hex, got "${hex}"`);
  return Buffer.from(hex, 'hex');
}

const UUID_DASHES = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function txByte(txPower: number): number {
  return int(txPower, -128, 127, 'txPower') & 0xff;
}

/** Manufacturer data (company id included) for an iBeacon; the uuid with or without its dashes. */
export function encodeIBeacon(f: { uuid: string; major: number; minor: number; txPower: number }): Buffer {
  const out = Buffer.alloc(IBEACON_LENGTH);
  out.writeUInt16LE(APPLE_COMPANY_ID, 0);
  out[2] = IBEACON_TYPE;
  out[3] = IBEACON_BODY_LENGTH;
  hexBytes(UUID_DASHES.test(f.uuid) ? f.uuid.replaceAll('-', '') : f.uuid, 16, 'uuid').copy(out, 4);
  out.writeUInt16BE(int(f.major, 0, 0xffff, 'major'), 20);
  out.writeUInt16BE(int(f.minor, 0, 0xffff, 'minor'), 22);
  out[24] = txByte(f.txPower);
  return out;
}

/** Service data for an Eddystone-UID frame, with the two reserved bytes (20 bytes). */
export function encodeEddystoneUid(f: { namespace: string; instance: string; txPower: number }): Buffer {
  return Buffer.concat([Buffer.from([FRAME_UID, txByte(f.txPower)]), hexBytes(f.namespace, 10, 'namespace'), hexBytes(f.instance, 6, 'instance'), Buffer.alloc(2)]);
}

/** Service data for an Eddystone-URL frame; expansion codes are used greedily, longest first. */
export function encodeEddystoneUrl(url: string, txPower: number): Buffer {
  const byLength = (list: string[]) => list.map((text, code) => ({ text, code })).sort((a, b) => b.text.length - a.text.length);
  const scheme = byLength(URL_SCHEMES).find((s) => url.startsWith(s.text));
  if (!scheme) throw new RangeError(`URL must start with one of ${URL_SCHEMES.join(' ')}: "${url}"`);
  const expansions = byLength(URL_EXPANSIONS);
  const encoded: number[] = [];
  for (let i = scheme.text.length; i < url.length;) {
    const expansion = expansions.find((e) => url.startsWith(e.text, i));
    if (expansion) {
      encoded.push(expansion.code);
      i += expansion.text.length;
    } else {
      const c = url.charCodeAt(i);
      if (!isUrlChar(c)) throw new RangeError(`URL may hold only printable ASCII: "${url}"`);
      encoded.push(c);
      i += 1;
    }
  }
  if (encoded.length < 1 || encoded.length > URL_MAX_ENCODED) throw new RangeError(`URL must encode to 1..${URL_MAX_ENCODED} bytes after the scheme: "${url}"`);
  return Buffer.from([FRAME_URL, txByte(txPower), scheme.code, ...encoded]);
}

/** Service data for a plain (version 0) Eddystone-TLM frame; null battery or temperature means "not supported". */
export function encodeEddystoneTlm(f: { batteryMv: number | null; temperatureC: number | null; advCount: number; uptimeS: number }): Buffer {
  const out = Buffer.alloc(TLM_PLAIN_LENGTH);
  out[0] = FRAME_TLM;
  out.writeUInt16BE(f.batteryMv === null ? 0 : int(f.batteryMv, 1, 0xffff, 'batteryMv'), 2);
  // -0x8000 (-128 °C) is the "not supported" marker, so a real reading must stay above it.
  const temperature = f.temperatureC === null ? -0x8000 : int(Math.round(f.temperatureC * 256), -0x7fff, 0x7fff, 'temperatureC * 256');
  out.writeInt16BE(temperature, 4);
  out.writeUInt32BE(int(f.advCount, 0, 0xffffffff, 'advCount'), 6);
  out.writeUInt32BE(int(Math.round(f.uptimeS * 10), 0, 0xffffffff, 'uptimeS * 10'), 10);
  return out;
}

/** Service data for an Eddystone-EID frame. */
export function encodeEddystoneEid(eid: Buffer | string, txPower: number): Buffer {
  const bytes = typeof eid === 'string' ? hexBytes(eid, 8, 'eid') : eid;
  if (bytes.length !== 8) throw new RangeError(`eid must be 8 bytes, got ${bytes.length}`);
  return Buffer.concat([Buffer.from([FRAME_EID, txByte(txPower)]), bytes]);
}
