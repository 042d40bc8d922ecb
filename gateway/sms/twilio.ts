// SMS through the real twilio client. TWILIO_API_URL (tests, staging) redirects it via the client's httpClient option.
import twilio from 'twilio';
import type RequestClientModule from 'twilio/lib/base/RequestClient.js';
import type { TwilioConfig } from '../config.js';
import { SmsSendError, type SmsSender } from './sender.js';

const { RequestClient } = twilio;
type RequestOptions<T> = RequestClientModule.RequestOptions<T>;

/** Sends every request the client makes to `baseUrl` instead of *.twilio.com, path and query unchanged. */
class RedirectingRequestClient extends RequestClient {
  constructor(private readonly baseUrl: URL, timeoutMs: number) {
    super({ timeout: timeoutMs });
  }

  override request<TData>(opts: RequestOptions<TData>) {
    const target = new URL(opts.uri);
    target.protocol = this.baseUrl.protocol;
    target.host = this.baseUrl.host;
    return super.request<TData>({ ...opts, uri: target.href });
  }
}

// Twilio error codes where retrying cannot help: bad or unreachable numbers, opted-out recipients, account problems.
const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/**
 * `statusCallback`: where Twilio reports each message's progress (queued, sent, delivered, undelivered, failed).
 * `timeoutMs`: how long a call may take; shorter than the send lease (config.ts, twilioTimeoutMs).
 */
export function twilioSender(config: TwilioConfig, statusCallback?: string, timeoutMs = 10_000): SmsSender {
  const client = twilio(config.accountSid, config.authToken, {
    httpClient: config.apiUrl ? new RedirectingRequestClient(new URL(config.apiUrl), timeoutMs) : undefined,
    timeout: timeoutMs,
  });
  return {
    kind: 'twilio',
    async send({ to, body, validitySeconds, reference }) {
      try {
        const message = await client.messages.create({
          to,
          body,
          ...(statusCallback ? { statusCallback: reference ? `${statusCallback}?d=${encodeURIComponent(reference)}` : statusCallback } : {}),
          ...(config.messagingServiceSid ? { messagingServiceSid: config.messagingServiceSid } : { from: config.from! }),
          // Twilio accepts 1..36000 s and applies it only with a Messaging Service.
          ...(validitySeconds && config.messagingServiceSid
            ? { validityPeriod: Math.max(1, Math.min(36_000, Math.floor(validitySeconds))) }
            : {}),
        });
        return { providerId: message.sid };
      } catch (err) {
        const e = err as { status?: number; code?: number; message?: string };
        if (typeof e.status === 'number') {
          throw new SmsSendError(e.message ?? `Twilio answered ${e.status}`, RETRYABLE_STATUS.has(e.status), e.code ? String(e.code) : undefined);
        }
        // No HTTP answer at all (refused, reset, timed out): the carrier may be back soon. Only a connection never
        // made is sure to have sent nothing; after a timeout or a reset Twilio may have taken the message.
        const never = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(String((err as { code?: unknown }).code));
        throw new SmsSendError(e.message ?? 'Twilio could not be reached', true, 'NETWORK', !never);
      }
    },
    async findSent({ to, body, since }) {
      // Newest first; a claimed send is at most a lease old, so the first page holds it if it exists.
      try {
        const recent = await client.messages.list({ to, limit: 100 });
        const hit = recent.find((m) => m.body === body && (!m.dateCreated || m.dateCreated.getTime() >= since.getTime() - 60_000));
        return hit ? { providerId: hit.sid } : null;
      } catch (err) {
        const e = err as { status?: number; message?: string };
        throw new SmsSendError(`could not ask Twilio whether the message went out: ${e.message ?? e.status}`, true, 'LOOKUP');
      }
    },
  };
}
