// A member's phone app as the box sees it, simulated: pure functions of (identity key, K, time).
//
// - Passive path: the app advertises an Eddystone-EID frame under a private Bluetooth address that changes
//   with every EID window (the eddystone-eid README asks for the address to rotate with the EID, otherwise the
//   address alone would let anyone follow the phone across windows).
// - Active path: the app connects to the box's GATT service and writes its current EID to one characteristic.
//   The write format is in gatt.ts.
// - App-reported path: the app tells the gateway which store iBeacon it heard, signed with a key derived
//   from its identity key (app-report.ts).
import { createHash } from 'node:crypto';
import { HEADER_APP_SIGNATURE, HEADER_APP_TIMESTAMP, signAppReport, type BeaconReport } from './app-report.js';
import { eidHex, rotationWindow } from './eid.js';
import { EDDYSTONE_SERVICE_UUID, encodeEddystoneEid } from './frames.js';
import type { Advertisement } from './types.js';

/** Calibrated power at 0 m the simulated phone announces: about -61 dBm at 1 m, plus the 41 dB of the first metre. */
export const DEFAULT_TX_POWER = -20;

export interface MemberApp {
  identityKey: Buffer;
  /** Rotation exponent: a new EID every 2^k seconds. */
  k: number;
}

/**
 * A private address for one EID window: 6 bytes hashed from the EID, shown most significant byte first, the
 * way scanners print it. The top two bits are cleared, which marks a non-resolvable private address.
 */
export function privateAddress(eid: string): string {
  const bytes = createHash('sha256').update(`address:${eid}`).digest().subarray(0, 6);
  bytes[0] = (bytes[0] ?? 0) & 0x3f;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The advertisement the box hears from the app at `nowMs` (ms since the epoch), with the given RSSI. */
export function passiveAdvertisement(app: MemberApp, nowMs: number, rssi: number, txPower = DEFAULT_TX_POWER): Advertisement {
  const eid = eidHex(app.identityKey, app.k, nowMs / 1000);
  return {
    address: privateAddress(eid),
    rssi,
    serviceData: [{ uuid: EDDYSTONE_SERVICE_UUID, data: encodeEddystoneEid(eid, txPower) }],
    seenAt: nowMs,
  };
}

/** When the app's current EID (and so its address) next changes, in ms since the epoch. */
export function nextRotationMs(app: MemberApp, nowMs: number): number {
  return (rotationWindow(nowMs / 1000, app.k) + 2 ** app.k) * 1000;
}

import { encodeActiveWrite } from './gatt.js';

// ---- active path: the GATT write (format in gatt.ts) ----

export { ACTIVE_WRITE_LENGTH, ACTIVE_WRITE_VERSION, decodeActiveWrite, encodeActiveWrite } from './gatt.js';

/** What the app writes at `nowMs`: its current EID. */
export function activeWrite(app: MemberApp, nowMs: number): Buffer {
  return encodeActiveWrite({ eid: eidHex(app.identityKey, app.k, nowMs / 1000) });
}

// ---- app-reported path: the app tells the gateway which store beacon it heard ----

/** The signed request the app sends for its beacon reports (path, exact body, headers). */
export function appReportRequest(app: MemberApp, memberId: string, reports: readonly BeaconReport[], nowMs: number) {
  const path = `/members/${memberId}/beacon-reports`;
  const body = JSON.stringify({ reports });
  const signature = signAppReport(app.identityKey, { method: 'POST', path, timestamp: nowMs, body });
  return {
    path, body,
    headers: { 'content-type': 'application/json', [HEADER_APP_TIMESTAMP]: String(nowMs), [HEADER_APP_SIGNATURE]: signature },
  };
}
