// The push port: the delivery worker hands a payload to a push provider for one of the member's devices and
// learns whether it was accepted. Web Push is one provider; others (FCM's own API) fit the same shape.

/** A device to push to, as its subscription was registered. */
export interface WebPushTarget {
  provider: 'webpush';
  /** The push service's URL for this device. */
  endpoint: string;
  /** The device's ECDH P-256 public key and auth secret, base64url: the payload is encrypted to them. */
  p256dh: string;
  auth: string;
}

export type PushTarget = WebPushTarget;
export type PushProviderKind = PushTarget['provider'];

export type PushUrgency = 'very-low' | 'low' | 'normal' | 'high';

export interface PushMessage {
  /** What the app receives, encrypted end to end: the push service sees only its size. */
  payload: string;
  /** Seconds the push service keeps the message for a device that is offline; 0 = now or never. */
  ttlSeconds: number;
  urgency?: PushUrgency;
  /** A newer message with the same topic replaces one still waiting at the push service (≤ 32 base64url characters). */
  topic?: string;
}

export interface PushProvider {
  readonly kind: PushProviderKind;
  /** Resolves once the push service accepted the message; `providerId` is its id for it, when it gives one. */
  send(target: PushTarget, message: PushMessage): Promise<{ providerId: string | null }>;
}

/**
 * A push the service did not accept. `gone`: the subscription no longer exists (404, 410) and must be dropped;
 * `retry`: trying again later may succeed (429, 5xx, no answer); `refused`: it never will (other 4xx).
 */
export class PushSendError extends Error {
  constructor(
    message: string,
    readonly outcome: 'gone' | 'retry' | 'refused',
    /** The push service's HTTP status, or NETWORK when there was no answer. */
    readonly code: string,
    /** How long the push service asked to be left alone (its Retry-After), when it said. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'PushSendError';
  }
}

/** What the gateway pushes with: the application server's public VAPID key and a provider per kind. */
export interface PushChannel {
  /** P-256 public key, base64url: the app's `applicationServerKey` when it subscribes. */
  vapidPublicKey: string;
  providers: Record<PushProviderKind, PushProvider>;
}
