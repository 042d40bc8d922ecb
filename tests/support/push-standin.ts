// A local stand-in for a Web Push service (RFC 8030), so the gateway's pushes can be checked end to end with no
// network. Like a browser and its push service together, it hands out subscriptions whose keys it made itself;
// it checks each push's VAPID token (RFC 8292) against the key the subscription was made with, decrypts the
// aes128gcm payload (RFC 8291, RFC 8188) and records it. It can be told to answer the next pushes with an error.
import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, verify, type ECDH } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  expirationTime: null;
}

export interface ReceivedPush {
  endpoint: string;
  /** The decrypted payload, parsed as JSON. */
  payload: unknown;
  ttl: number;
  urgency: string | null;
  topic: string | null;
  /** The VAPID token's claims, once verified. */
  vapid: { aud: string; sub: string; exp: number };
  at: Date;
}

/** A push the stand-in refused because it was malformed or wrongly signed: these point at a gateway bug. */
export interface RefusedPush {
  endpoint: string;
  status: number;
  reason: string;
}

export interface PushStandIn {
  /** The push service's origin: the audience its VAPID tokens must name. */
  url: string;
  /** A new subscription, as pushManager.subscribe({ applicationServerKey }) would give it. */
  subscribe(applicationServerKey: string): StandInSubscription;
  received: ReceivedPush[];
  refused: RefusedPush[];
  /** Well-formed pushes are answered with these statuses, in order, before any is accepted (for one endpoint, or any). */
  answerNext(status: number, endpoint?: string, retryAfter?: string): void;
  /** Statuses answered so far from answerNext, in order, with when (ms since the epoch). */
  answered: Array<{ endpoint: string; status: number; at: number }>;
  close(): Promise<void>;
}

interface Device {
  ecdh: ECDH;
  publicKey: Buffer;
  auth: Buffer;
  applicationServerKey: string;
}

const MAX_PAYLOAD_BYTES = 4096; // what push services accept (RFC 8030 §7.2)
const DAY_S = 24 * 3600;

class Refusal extends Error {
  constructor(readonly status: number, reason: string) {
    super(reason);
  }
}

function p256PublicKey(raw: Buffer) {
  if (raw.length !== 65 || raw[0] !== 0x04) throw new Refusal(401, 'k is not an uncompressed P-256 point');
  return createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') },
    format: 'jwk',
  });
}

/** RFC 8292: `Authorization: vapid t=<JWT>, k=<public key>`; the JWT signed ES256 by that key for this origin. */
function checkVapid(header: string | undefined, device: Device, origin: string): ReceivedPush['vapid'] {
  const params = /^vapid\s+(.+)$/i.exec(header ?? '')?.[1];
  if (!params) throw new Refusal(401, 'no VAPID authorization');
  const fields = Object.fromEntries(params.split(',').map((p) => p.trim().split('=') as [string, string]));
  const token = fields.t;
  const key = fields.k;
  if (!token || !key) throw new Refusal(401, 'VAPID authorization lacks t or k');
  if (key !== device.applicationServerKey) throw new Refusal(403, 'k is not the key this subscription was made with');
  const [head, body, signature] = token.split('.');
  if (!head || !body || !signature) throw new Refusal(401, 't is not a JWT');
  const header_ = JSON.parse(Buffer.from(head, 'base64url').toString()) as { alg?: string };
  if (header_.alg !== 'ES256') throw new Refusal(401, `JWT alg is ${header_.alg}, not ES256`);
  const signed = verify(
    'sha256', Buffer.from(`${head}.${body}`), { key: p256PublicKey(Buffer.from(key, 'base64url')), dsaEncoding: 'ieee-p1363' },
    Buffer.from(signature, 'base64url'),
  );
  if (!signed) throw new Refusal(401, 'JWT signature does not verify with k');
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as { aud?: string; sub?: string; exp?: number };
  if (claims.aud !== origin) throw new Refusal(401, `JWT aud is ${claims.aud}, not ${origin}`);
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp <= now) throw new Refusal(401, 'JWT has expired');
  if (claims.exp > now + DAY_S) throw new Refusal(401, 'JWT expires more than 24 hours from now');
  if (typeof claims.sub !== 'string' || !/^(mailto:|https:)/.test(claims.sub)) throw new Refusal(401, 'JWT sub is not a mailto: or https: URI');
  return { aud: claims.aud, sub: claims.sub, exp: claims.exp };
}

/** RFC 8291 on RFC 8188: the receiving device's side of aes128gcm, one record. */
function decrypt(body: Buffer, device: Device): Buffer {
  if (body.length < 21) throw new Refusal(400, 'body shorter than the aes128gcm header');
  const salt = body.subarray(0, 16);
  const recordSize = body.readUInt32BE(16);
  const idLength = body[20]!;
  const senderKey = body.subarray(21, 21 + idLength);
  const record = body.subarray(21 + idLength);
  if (idLength !== 65) throw new Refusal(400, 'keyid is not the sender public key');
  if (record.length > recordSize || record.length < 17) throw new Refusal(400, 'not a single record');
  const shared = device.ecdh.computeSecret(senderKey);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), device.publicKey, senderKey]);
  const ikm = Buffer.from(hkdfSync('sha256', shared, device.auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  } catch {
    throw new Refusal(400, 'payload does not decrypt with the subscription keys');
  }
  // Padding: the last record ends with the delimiter 0x02 followed by zeros.
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--;
  if (plain[end] !== 0x02) throw new Refusal(400, 'last record lacks its padding delimiter');
  return plain.subarray(0, end);
}

export async function startPushStandIn(): Promise<PushStandIn> {
  const devices = new Map<string, Device>();
  const received: ReceivedPush[] = [];
  const refused: RefusedPush[] = [];
  // A 429 says Retry-After: 1 unless a test gives another (or '' for none).
  const queued: Array<{ status: number; endpoint?: string; retryAfter?: string }> = [];
  const answered: PushStandIn['answered'] = [];
  let origin = '';
  let seq = 0;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const endpoint = `${origin}${req.url ?? ''}`;
      const answer = (status: number, headers: Record<string, string> = {}, text = '') => {
        res.writeHead(status, { 'content-type': 'text/plain', ...headers });
        res.end(text);
      };
      const device = /^\/push\/[\w-]+$/.test(req.url ?? '') ? devices.get(req.url!.slice('/push/'.length)) : undefined;
      if (req.method !== 'POST') return answer(405);
      if (!device) return answer(404, {}, 'no such subscription');
      try {
        const vapid = checkVapid(req.headers.authorization, device, origin);
        const ttlHeader = req.headers.ttl;
        if (typeof ttlHeader !== 'string' || !/^\d+$/.test(ttlHeader)) throw new Refusal(400, 'TTL header missing or not a number');
        if (req.headers['content-encoding'] !== 'aes128gcm') throw new Refusal(415, `content encoding ${req.headers['content-encoding']}`);
        const body = Buffer.concat(chunks);
        if (body.length > MAX_PAYLOAD_BYTES) throw new Refusal(413, 'payload too large');
        const payload = JSON.parse(decrypt(body, device).toString('utf8')) as unknown;
        const i = queued.findIndex((q) => q.endpoint === undefined || q.endpoint === endpoint);
        if (i >= 0) {
          const [{ status, retryAfter }] = queued.splice(i, 1) as [{ status: number; retryAfter?: string }];
          answered.push({ endpoint, status, at: Date.now() });
          const wait = retryAfter ?? (status === 429 ? '1' : '');
          return answer(status, wait ? { 'retry-after': wait } : {}, `stand-in answers ${status}`);
        }
        received.push({
          endpoint, payload, ttl: Number(ttlHeader), vapid, at: new Date(),
          urgency: (req.headers.urgency as string | undefined) ?? null, topic: (req.headers.topic as string | undefined) ?? null,
        });
        answer(201, { location: `${origin}/messages/${++seq}` });
      } catch (err) {
        const status = err instanceof Refusal ? err.status : 400;
        refused.push({ endpoint, status, reason: (err as Error).message });
        answer(status, {}, (err as Error).message);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: origin,
    subscribe(applicationServerKey) {
      const ecdh = createECDH('prime256v1');
      const publicKey = ecdh.generateKeys();
      const auth = randomBytes(16);
      const id = randomBytes(12).toString('base64url');
      devices.set(id, { ecdh, publicKey, auth, applicationServerKey });
      return { endpoint: `${origin}/push/${id}`, keys: { p256dh: publicKey.toString('base64url'), auth: auth.toString('base64url') }, expirationTime: null };
    },
    received,
    refused,
    answered,
    answerNext: (status, endpoint, retryAfter) => queued.push({ status, endpoint, ...(retryAfter !== undefined ? { retryAfter } : {}) }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
