// How an agent signs its uploads and how the gateway checks them. Each agent holds an Ed25519 private key
// that the gateway generated, showed once, and kept only the public half of: a leaked database signs nothing.
// The signature covers the method, the path, a timestamp and a SHA-256 of the exact body bytes, so a body
// cannot be swapped under a valid signature, and an old request cannot be sent again once it is stale.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

export const HEADER_AGENT = 'x-agent-id';
export const HEADER_TIMESTAMP = 'x-agent-timestamp';
export const HEADER_SIGNATURE = 'x-agent-signature';

/** How far a request's timestamp may be from the gateway's clock, either way. */
export const MAX_SKEW_MS = 5 * 60_000;

export interface SignedParts {
  method: string;
  /** Path with query string, as sent (e.g. /ingest/presence). */
  path: string;
  /** Milliseconds since the epoch, as a decimal string in the header. */
  timestamp: number;
  body: Buffer | string;
}

export function canonical({ method, path, timestamp, body }: SignedParts): Buffer {
  const digest = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`${method.toUpperCase()}\n${path}\n${timestamp}\n${digest}`);
}

/** A new key pair: the private key in PKCS#8 PEM (for the agent), the public key as base64 SPKI DER (for the gateway). */
export function newAgentKeyPair(): { privateKeyPem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
  };
}

export function loadPrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`agent key must be Ed25519, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

export function loadPublicKey(spkiBase64: string): KeyObject {
  return createPublicKey({ key: Buffer.from(spkiBase64, 'base64'), format: 'der', type: 'spki' });
}

/** The headers to send with a request. */
export function signRequest(privateKey: KeyObject, agentId: string, parts: SignedParts): Record<string, string> {
  return {
    [HEADER_AGENT]: agentId,
    [HEADER_TIMESTAMP]: String(parts.timestamp),
    [HEADER_SIGNATURE]: sign(null, canonical(parts), privateKey).toString('base64'),
  };
}

/**
 * The bytes of a signature of `length` bytes, if `text` is their canonical base64 spelling (padded, standard
 * alphabet, nothing after it); otherwise null. The gateway remembers signatures as text, so another spelling
 * of the same bytes must not pass as a new request.
 */
export function canonicalSignature(text: string, length: number): Buffer | null {
  const bytes = Buffer.from(text, 'base64');
  return bytes.length === length && bytes.toString('base64') === text ? bytes : null;
}

export function verifySignature(publicKey: KeyObject, parts: SignedParts, signatureBase64: string): boolean {
  // Ed25519 signatures are 64 bytes; anything else is not worth a verification.
  const signature = canonicalSignature(signatureBase64, 64);
  return signature !== null && verify(null, canonical(parts), publicKey, signature);
}
