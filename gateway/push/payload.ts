// What a member's app receives for an offer by push: JSON, encrypted to the device by the provider.

export interface OfferPush {
  kind: 'offer';
  title: string;
  /** The offer's text with {code} and {expires} filled in. */
  message: string;
  code: string;
  expiresAt: string;
}

/** The push payload of an offer, as stored on its delivery row and sent as is. */
export function composePush(title: string, template: string, code: string, expiresAt: Date, timeZone: string): string {
  const expires = new Intl.DateTimeFormat('en-US', { timeZone, month: 'short', day: 'numeric' }).format(expiresAt);
  const message = template.replaceAll('{code}', code).replaceAll('{expires}', expires);
  const push: OfferPush = { kind: 'offer', title, message, code, expiresAt: expiresAt.toISOString() };
  return JSON.stringify(push);
}
