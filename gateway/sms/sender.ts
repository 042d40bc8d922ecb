// The SMS port: the delivery worker needs one thing, to hand a text to a carrier and learn its id.

export interface SmsMessage {
  to: string;
  body: string;
  /** Seconds after which the carrier should give up; an offer is worthless once its moment has passed. */
  validitySeconds?: number;
  /** Our delivery's id, carried on the carrier's status callbacks (so they find the delivery before its provider id is stored). */
  reference?: string;
}

export interface SmsSender {
  readonly kind: 'twilio' | 'outbox';
  send(message: SmsMessage): Promise<{ providerId: string }>;
  /**
   * The message the carrier accepted with exactly this recipient and text since `since`, if any: how a
   * worker that finds a send claimed but never recorded learns whether it went out. Offer texts carry a
   * unique coupon code, so the text identifies the delivery.
   */
  findSent(query: { to: string; body: string; since: Date }): Promise<{ providerId: string } | null>;
}

/** A send that failed; `retryable` says whether trying again later may succeed. */
export class SmsSendError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code?: string,
    /** No answer came (a timeout, a reset): the carrier may have taken the message. */
    readonly maybeSent = false,
  ) {
    super(message);
    this.name = 'SmsSendError';
  }
}
