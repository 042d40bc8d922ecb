// The SMS port: the delivery worker needs one thing, to hand a text to a carrier and learn its id.

export interface SmsMessage {
  to: string;
  body: string;
  /** Seconds after which the carrier should give up; an offer is worthless once its moment has passed. */
  validitySeconds?: number;
}

export interface SmsSender {
  readonly kind: 'twilio' | 'outbox';
  send(message: SmsMessage): Promise<{ providerId: string }>;
}

/** A send that failed; `retryable` says whether trying again later may succeed. */
export class SmsSendError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'SmsSendError';
  }
}
