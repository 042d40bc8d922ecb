// The box's GATT service, as bytes: what a member's app writes (its current EID, the active path) and what it
// reads back (the sealed offers waiting for it). Pure; the radio file only moves these bytes.

/** The service and its two characteristics (128-bit UUIDs of our own, lower-case without dashes as bleno wants). */
export const SERVICE_UUID = '6e2a0001b5a34f393c2e8a54d1f0c7a1';
export const EID_WRITE_UUID = '6e2a0002b5a34f393c2e8a54d1f0c7a1';
export const OFFERS_READ_UUID = '6e2a0003b5a34f393c2e8a54d1f0c7a1';

/** The first byte of a write; a later format gets a new version rather than a new meaning for old bytes. */
export const ACTIVE_WRITE_VERSION = 0x01;
/** Version byte, then the 8 EID bytes. */
export const ACTIVE_WRITE_LENGTH = 9;
const EID_HEX = /^[0-9a-f]{16}$/i;

/** The bytes the app writes to the box's characteristic. Throws RangeError unless `eid` is 16 hex characters. */
export function encodeActiveWrite(w: { eid: string }): Buffer {
  if (!EID_HEX.test(w.eid)) throw new RangeError(`eid must be 16 hex characters, got "${w.eid}"`);
  return Buffer.concat([Buffer.from([ACTIVE_WRITE_VERSION]), Buffer.from(w.eid, 'hex')]);
}

/** The EID in a write, or null for anything but exactly version 0x01 and 8 bytes (never throws). */
export function decodeActiveWrite(buf: Buffer): { eid: string } | null {
  if (buf.length !== ACTIVE_WRITE_LENGTH || buf[0] !== ACTIVE_WRITE_VERSION) return null;
  return { eid: buf.toString('hex', 1) };
}

/** Sealed offers as the app reads them: a count byte, then each blob with a 16-bit big-endian length. */
export function encodeOffers(sealed: readonly Buffer[]): Buffer {
  const list = sealed.slice(0, 255);
  return Buffer.concat([Buffer.from([list.length]), ...list.flatMap((b) => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return [len, b];
  })]);
}

/** The blobs in a read, or null if the bytes are not such a list (never throws). */
export function decodeOffers(buf: Buffer): Buffer[] | null {
  if (buf.length < 1) return null;
  const out: Buffer[] = [];
  let at = 1;
  for (let i = 0; i < buf[0]!; i++) {
    if (at + 2 > buf.length) return null;
    const len = buf.readUInt16BE(at);
    if (at + 2 + len > buf.length) return null;
    out.push(buf.subarray(at + 2, at + 2 + len));
    at += 2 + len;
  }
  return at === buf.length ? out : null;
}
