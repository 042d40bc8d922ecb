// Web Push (RFC 8030) with VAPID (RFC 8292): the web-push library builds the request (the payload encrypted to
// the device's keys as aes128gcm, RFC 8291, and the signed VAPID token); fetch sends it, so a push service
// stand-in on plain http works as well as the real ones on https.
import webpush from 'web-push';
import { PushSendError, type PushProvider } from './provider.js';

export interface VapidIdentity {
  subject: string;
  publicKey: string;
  privateKey: string;
}

const TIMEOUT_MS = 10_000;
// Statuses where the push service may take the message later: rate limited, timed out, or its own fault.
const isRetryable = (status: number) => status === 408 || status === 429 || status >= 500;

export function webPushProvider(vapid: VapidIdentity, options: { timeoutMs?: number } = {}): PushProvider {
  return {
    kind: 'webpush',
    async send(target, message) {
      let details: ReturnType<typeof webpush.generateRequestDetails>;
      try {
        details = webpush.generateRequestDetails(
          { endpoint: target.endpoint, keys: { p256dh: target.p256dh, auth: target.auth } },
          message.payload,
          {
            vapidDetails: vapid,
            TTL: Math.max(0, Math.floor(message.ttlSeconds)),
            contentEncoding: 'aes128gcm',
            ...(message.urgency ? { urgency: message.urgency } : {}),
            ...(message.topic ? { topic: message.topic } : {}),
          },
        );
      } catch (err) {
        throw new PushSendError(`push request could not be built: ${(err as Error).message}`, 'refused', 'REQUEST_INVALID');
      }
      // fetch sets Content-Length from the body itself.
      const headers = Object.fromEntries(
        Object.entries(details.headers).filter(([name]) => name.toLowerCase() !== 'content-length').map(([name, value]) => [name, String(value)]),
      );
      let res: Response;
      try {
        res = await fetch(details.endpoint, {
          method: 'POST',
          headers,
          body: details.body,
          // A push service answers; it does not send the gateway elsewhere.
          redirect: 'manual',
          signal: AbortSignal.timeout(options.timeoutMs ?? TIMEOUT_MS),
        });
      } catch (err) {
        const cause = (err as Error).cause as Error | undefined;
        throw new PushSendError(`push service could not be reached: ${cause?.message ?? (err as Error).message}`, 'retry', 'NETWORK');
      }
      const text = (await res.text().catch(() => '')).slice(0, 200);
      if (res.status >= 200 && res.status < 300) return { providerId: res.headers.get('location') };
      const why = `push service answered ${res.status}${text ? `: ${text}` : ''}`;
      if (res.status === 404 || res.status === 410) throw new PushSendError(why, 'gone', String(res.status));
      throw new PushSendError(why, isRetryable(res.status) ? 'retry' : 'refused', String(res.status), retryAfterMs(res.headers.get('retry-after'), Date.now()));
    },
  };
}

/** Retry-After (RFC 9110): delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(v)) return undefined; // IMF-fixdate
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** A new P-256 key pair for VAPID, base64url (public key uncompressed, 65 bytes). */
export const generateVapidKeys = (): { publicKey: string; privateKey: string } => webpush.generateVAPIDKeys();
