// The third detection path: a member's app hears the store's iBeacon and reports it straight to the gateway.
// The report is signed with a key only the app and the gateway hold: derived (HKDF-SHA256, its own label) from
// the member's EID identity key, which exists only while the member grants ble_detection. So a report proves
// the member's own app sent it, and withdrawing consent ends the app's ability to report at the same moment.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { canonical, canonicalSignature, type SignedParts } from './signing.js';

export const HEADER_APP_TIMESTAMP = 'x-app-timestamp';
export const HEADER_APP_SIGNATURE = 'x-app-signature';

const INFO = Buffer.from('proximity-app-report-v1');

function reportKey(identityKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', identityKey, Buffer.alloc(0), INFO, 32));
}

/** base64 HMAC-SHA256 over the same canonical parts the boxes sign (method, path, timestamp, body digest). */
export function signAppReport(identityKey: Buffer, parts: SignedParts): string {
  return createHmac('sha256', reportKey(identityKey)).update(canonical(parts)).digest('base64');
}

/** Only the canonical base64 spelling of the HMAC counts, as for the boxes' signatures (see canonicalSignature). */
export function verifyAppReport(identityKey: Buffer, parts: SignedParts, signature: string): boolean {
  const expected = Buffer.from(signAppReport(identityKey, parts), 'base64');
  const given = canonicalSignature(signature, expected.length);
  return given !== null && timingSafeEqual(given, expected);
}

/** One beacon report from the app: an iBeacon region entered, still in range, or left. */
export interface BeaconReport {
  /** The app's own id for the report, stable across retries. */
  id: string;
  kind: 'enter' | 'dwell' | 'exit';
  beacon: { uuid: string; major: number; minor: number };
  at: string;
  rssi?: number;
}
