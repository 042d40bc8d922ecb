// Offers handed over by Bluetooth are sealed by the gateway for one member: the box stores and serves bytes it
// cannot read, and only the member's app, holding the identity key, can open them. The sealing key is derived
// from the member's EID identity key (HKDF-SHA256, its own label), so one secret serves both and both die
// together when ble_detection is withdrawn. AES-256-GCM: a tampered or misdelivered blob fails to open.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const INFO = Buffer.from('proximity-offer-seal-v1');
const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface OfferPayload {
  couponCode: string;
  title: string;
  message: string;
  expiresAt: string;
}

function sealingKey(identityKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', identityKey, Buffer.alloc(0), INFO, 32));
}

/** version (1 byte) ‖ nonce (12) ‖ ciphertext ‖ tag (16). */
export function sealOffer(identityKey: Buffer, offer: OfferPayload, random: (n: number) => Buffer = randomBytes): Buffer {
  const nonce = random(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(identityKey), nonce);
  cipher.setAAD(Buffer.from([VERSION]));
  const body = Buffer.concat([cipher.update(JSON.stringify(offer), 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]);
}

/** The offer, or null when the blob is not for this key, was altered, or is not a sealed offer at all. */
export function openOffer(identityKey: Buffer, sealed: Buffer): OfferPayload | null {
  if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== VERSION) return null;
  const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
  const body = sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', sealingKey(identityKey), nonce);
  decipher.setAAD(Buffer.from([VERSION]));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    const text = Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    const offer = JSON.parse(text) as OfferPayload;
    return typeof offer.couponCode === 'string' ? offer : null;
  } catch {
    return null;
  }
}
