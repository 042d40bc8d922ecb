// Eddystone-EID computation, exactly as google/eddystone eddystone-eid/eid-computation.md specifies it
// (and as its tools/eidtools.py GetAndPrintEid does it). Pure: the time is an argument.
//
//   temporary key = AES-128-ECB(identity key, 00 × 11 ‖ FF ‖ 00 00 ‖ bits 31..16 of the time, big-endian)
//   EID           = first 8 bytes of AES-128-ECB(temporary key, 00 × 11 ‖ K ‖ time with its K low bits cleared,
//                   32-bit big-endian)
//
// The spec's time is "a beacon-specific 32-bit seconds counter" with no required epoch. Our members' apps use
// Unix seconds: the gateway issues the identity key, both the phone and the gateway read Unix time, so no
// clock offset has to be registered or stored per member. Unix seconds fit the 32-bit counter until 2106.
import { createCipheriv, randomBytes } from 'node:crypto';

export const IDENTITY_KEY_BYTES = 16;
export const MAX_ROTATION_EXPONENT = 15;
const MAX_COUNTER = 0xffffffff;

function aes128(key: Buffer, block: Buffer): Buffer {
  const cipher = createCipheriv('aes-128-ecb', key, null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(block), cipher.final()]);
}

function checkKey(identityKey: Buffer): void {
  if (identityKey.length !== IDENTITY_KEY_BYTES) throw new RangeError(`identity key must be ${IDENTITY_KEY_BYTES} bytes, got ${identityKey.length}`);
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 0 || k > MAX_ROTATION_EXPONENT) throw new RangeError(`rotation exponent K must be an integer in 0..${MAX_ROTATION_EXPONENT}, got ${k}`);
}

/** The 32-bit counter value for a time in seconds; fractions are dropped. */
function counter(timestampS: number): number {
  const t = Math.floor(timestampS);
  // Catches milliseconds passed by mistake (they overflow 32 bits) as well as negative or non-finite times.
  if (!Number.isFinite(t) || t < 0 || t > MAX_COUNTER) throw new RangeError(`timestamp must be seconds in 0..${MAX_COUNTER}, got ${timestampS}`);
  return t;
}

/** Start (in seconds) of the 2^K-second window holding the timestamp. */
export function rotationWindow(timestampS: number, k: number): number {
  checkK(k);
  const t = counter(timestampS);
  // Arithmetic, not bit shifts: JavaScript shifts are signed 32-bit and would go negative past 2^31.
  return t - (t % 2 ** k);
}

/** The temporary key, which changes every 65 536 s (when bits 31..16 of the time change). */
export function temporaryKey(identityKey: Buffer, timestampS: number): Buffer {
  checkKey(identityKey);
  const block = Buffer.alloc(16);
  block[11] = 0xff;
  block.writeUInt16BE(Math.floor(counter(timestampS) / 0x10000), 14);
  return aes128(identityKey, block);
}

/** The 8-byte EID a beacon with this identity key and exponent K broadcasts at this time. */
export function computeEid(identityKey: Buffer, k: number, timestampS: number): Buffer {
  return eidFromTemporaryKey(temporaryKey(identityKey, timestampS), k, timestampS);
}

/**
 * The second step alone, for a resolver that computes many windows of one key: the temporary key it reuses
 * must be the one for this time's 65 536-second epoch.
 */
export function eidFromTemporaryKey(tempKey: Buffer, k: number, timestampS: number): Buffer {
  const windowStart = rotationWindow(timestampS, k);
  const block = Buffer.alloc(16);
  block[11] = k;
  block.writeUInt32BE(windowStart, 12);
  return aes128(tempKey, block).subarray(0, 8);
}

/** computeEid as 16 lower-case hex characters, the form frames and sightings carry. */
export function eidHex(identityKey: Buffer, k: number, timestampS: number): string {
  return computeEid(identityKey, k, timestampS).toString('hex');
}

/**
 * The EIDs to accept around a time: the current window and `driftWindows` windows before and after it, oldest
 * first, so a phone whose clock runs a little early or late still resolves. Windows before 0 or past the
 * 32-bit counter are left out.
 */
export function candidateEids(identityKey: Buffer, k: number, timestampS: number, driftWindows = 1): Array<{ eid: string; windowStart: number }> {
  if (!Number.isInteger(driftWindows) || driftWindows < 0) throw new RangeError(`driftWindows must be a non-negative integer, got ${driftWindows}`);
  const current = rotationWindow(timestampS, k);
  const size = 2 ** k;
  const out: Array<{ eid: string; windowStart: number }> = [];
  for (let i = -driftWindows; i <= driftWindows; i += 1) {
    const windowStart = current + i * size;
    if (windowStart < 0 || windowStart > MAX_COUNTER) continue;
    out.push({ eid: eidHex(identityKey, k, windowStart), windowStart });
  }
  return out;
}

/** A fresh 16-byte identity key. `random` is injectable for tests. */
export function newIdentityKey(random: (size: number) => Buffer = randomBytes): Buffer {
  const key = random(IDENTITY_KEY_BYTES);
  checkKey(key);
  return key;
}
